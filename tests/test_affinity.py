"""Session affinity through ResilientClient: a conversation stays on the model and key that
served it while they are healthy, moves (with a RepinnedEvent) when they fail, expires,
is shared through a RedisStore, and may be derived from the conversation's prefix."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
import respx

from failover import AuthProfile, ConfigError, ResilientClient
from failover.events import RepinnedEvent
from tests.conftest import BOTH_BACKENDS
from tests.redis_server import RedisServer

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
KEY_A = "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-proj-bbbbbbbbbbbbbbbbbbbbbbbb2222"
KEY_C = "sk-ant-cccccccccccccccccccccccc3333"
GPT, CLAUDE = "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"
SYSTEM = {"role": "system", "content": "You are a travel agent."}


def turns(n: int, first: str = "plan a trip") -> list[dict[str, str]]:
    conversation = [SYSTEM, {"role": "user", "content": first}]
    for i in range(n - 1):
        conversation += [
            {"role": "assistant", "content": f"answer {i}"},
            {"role": "user", "content": f"follow-up {i}"},
        ]
    return conversation


def ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
    )


def claude_ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": [{"type": "text", "text": "claude"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    )


def keyed(request: httpx.Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def keys() -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", KEY_A),
        AuthProfile("b", "openai", KEY_B),
        AuthProfile("c", "anthropic", KEY_C),
    ]


def make(chain: list[str] | None = None, **kwargs: Any) -> ResilientClient:
    return ResilientClient(chain or [GPT, CLAUDE], keys(), **kwargs)


@respx.mock
async def test_a_session_stays_on_its_key_while_calls_without_one_share_the_load() -> None:
    route = respx.post(OPENAI).mock(side_effect=lambda request: ok())
    client = make()
    spread = [(await client.complete(turns(1))).profile for _ in range(4)]
    assert sorted(set(spread)) == ["a", "b"]  # equal keys share the load
    pinned = [(await client.complete(turns(n), session="conv-7")).profile for n in range(1, 6)]
    assert len(set(pinned)) == 1
    assert [keyed(c.request) for c in route.calls][-5:] == [{"a": KEY_A, "b": KEY_B}[pinned[0]]] * 5


@respx.mock
async def test_a_failed_pin_moves_the_session_and_says_so_and_it_stays_moved() -> None:
    broken: set[str] = set()

    def reply(request: httpx.Request) -> httpx.Response:
        if keyed(request) in broken:
            return httpx.Response(
                429, json={"error": {"message": "slow"}}, headers={"retry-after": "1"}
            )
        return ok()

    respx.post(OPENAI).mock(side_effect=reply)
    client = make()
    moved: list[RepinnedEvent] = []
    client.on_repinned(moved.append)
    first = await client.complete(turns(1), session="conv-9")
    broken.add({"a": KEY_A, "b": KEY_B}[first.profile])
    second = await client.complete(turns(2), session="conv-9")
    assert second.profile != first.profile
    assert [a.outcome for a in second.attempts] == ["rate_limit", "ok"]
    broken.clear()  # the first key is fine again: the conversation stays where it went
    third = await client.complete(turns(3), session="conv-9")
    assert third.profile == second.profile and len(third.attempts) == 1
    await client.aclose()
    assert [(e.session, e.from_profile, e.to_profile) for e in moved] == [
        ("conv-9", first.profile, second.profile)
    ]


@respx.mock
async def test_a_session_moved_to_another_model_stays_on_it_though_the_first_recovers() -> None:
    down = True
    respx.post(OPENAI).mock(
        side_effect=lambda request: (
            httpx.Response(500, json={"error": {"message": "x"}}) if down else ok()
        )
    )
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    client = make()
    assert (await client.complete(turns(1), session="s")).model == CLAUDE
    down = False
    later = await client.complete(turns(2), session="s")
    assert later.model == CLAUDE and [a.outcome for a in later.attempts] == ["ok"]
    assert (await client.complete(turns(1))).model == GPT  # no session: the chain's order


@respx.mock
async def test_a_pin_expires_session_ttl_after_its_last_turn() -> None:
    route = respx.post(OPENAI).mock(side_effect=lambda request: ok())
    client = make([GPT], session_ttl=0.2)
    first = (await client.complete(turns(1), session="short")).profile
    other = {"a": "b", "b": "a"}[first]  # the pools' turn (least recently used) is its
    assert (await client.complete(turns(2), session="short")).profile == first  # pinned
    await anyio.sleep(0.3)
    assert (await client.complete(turns(3), session="short")).profile == other  # expired
    assert route.call_count == 3


@respx.mock
async def test_affinity_prefix_keeps_every_turn_of_a_conversation_on_one_key() -> None:
    respx.post(OPENAI).mock(side_effect=lambda request: ok())
    client = make([GPT], affinity="prefix")
    one = {(await client.complete(turns(n))).profile for n in range(1, 5)}
    two = {(await client.complete(turns(n, first="book a hotel"))).profile for n in range(1, 5)}
    assert len(one) == 1 and len(two) == 1


@respx.mock
async def test_a_client_session_is_the_default_and_affinity_off_ignores_sessions() -> None:
    respx.post(OPENAI).mock(side_effect=lambda request: ok())
    pinned = make([GPT], session="whole-client")
    assert len({(await pinned.complete(turns(n))).profile for n in range(1, 5)}) == 1
    off = make([GPT], affinity="off")
    assert len({(await off.complete(turns(1), session="x")).profile for _ in range(4)}) == 2
    with pytest.raises(ConfigError, match="affinity"):
        make(affinity="sticky")
    with pytest.raises(ConfigError, match="session"):
        await pinned.complete(turns(1), session="")


async def test_pins_are_shared_by_every_process_through_a_redis_store(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    if anyio_backend == "trio":
        pytest.skip("redis-py runs on asyncio")
    import uuid

    from failover.store import RedisStore

    prefix = f"s{uuid.uuid4().hex[:8]}"
    with respx.mock:
        route = respx.post(OPENAI).mock(side_effect=lambda request: ok())
        first = make([GPT], store=RedisStore(redis_server.url, prefix=prefix))
        second = make([GPT], store=RedisStore(redis_server.url, prefix=prefix))
        async with first, second:
            served = (await first.complete(turns(1), session="web-42")).profile
            for _ in range(3):  # another worker of the web app, its own rotation
                second.manager.get_next_profile("openai")
                assert (await second.complete(turns(2), session="web-42")).profile == served
        assert route.call_count == 4


@pytest.mark.parametrize("affinity", ["session", "prefix"])
async def test_sdk_calls_through_the_transport_keep_their_conversation_on_one_key(
    affinity: str,
) -> None:
    import openai

    from failover import FailoverManager, ResilientTransport

    seen: list[tuple[str, bool]] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append((keyed(request), "x-failover-session" in request.headers))
        return ok()

    manager = FailoverManager(profiles=keys())
    transport = ResilientTransport(
        manager, provider="openai", inner=httpx.MockTransport(provider), affinity=affinity
    )
    sdk = openai.AsyncOpenAI(
        api_key="sdk-key-never-sent",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    header = {"x-failover-session": "chat-77"} if affinity == "session" else None
    for n in range(1, 6):
        await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=turns(n), extra_headers=header
        )
    await sdk.close()
    assert len({key for key, _ in seen}) == 1  # every turn on the key that served the first
    assert not any(forwarded for _, forwarded in seen)  # the header stays with us
