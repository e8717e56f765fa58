"""Session pins (in-process and on a real redis-server) and the sessions named by a prefix."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from failover.affinity import (
    DEFAULT_SESSION_TTL,
    Pin,
    PinStore,
    SessionPins,
    prefix_session,
    session_of_payload,
)
from failover.errors import ConfigError
from failover.store.redis_sessions import RedisSessionPins, session_key
from tests.redis_server import RedisServer, free_port

CLAUDE = Pin("anthropic/claude-sonnet-4-5", "anthropic-1")
CLAUDE_2 = Pin("anthropic/claude-sonnet-4-5", "anthropic-2")
GPT = Pin("openai/gpt-4o", "openai-1")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- SessionPins ------------------------------------------------------------------------------


async def test_a_pin_is_kept_and_setting_again_returns_the_one_it_replaces() -> None:
    pins = SessionPins()
    assert await pins.get("conv-7") is None
    assert await pins.set("conv-7", CLAUDE) is None
    assert await pins.get("conv-7") == CLAUDE
    assert await pins.set("conv-7", GPT) == CLAUDE
    assert await pins.get("conv-7") == GPT
    assert await pins.get("conv-8") is None


async def test_a_pin_expires_ttl_after_its_last_use_and_reading_does_not_refresh_it() -> None:
    clock = Clock()
    pins = SessionPins(ttl=300.0, clock=clock)
    await pins.set("conv", CLAUDE)
    clock.now += 299.9
    assert await pins.get("conv") == CLAUDE  # a read is not a use
    clock.now += 0.1
    assert await pins.get("conv") is None
    assert await pins.set("conv", GPT) is None  # the expired pin is not "previous"


async def test_touch_and_set_start_the_ttl_again() -> None:
    clock = Clock()
    pins = SessionPins(ttl=10.0, clock=clock)
    await pins.set("conv", CLAUDE)
    clock.now += 8
    await pins.touch("conv")
    clock.now += 8
    assert await pins.get("conv") == CLAUDE  # 16 s after set, 8 after the touch
    assert await pins.set("conv", CLAUDE_2) == CLAUDE
    clock.now += 9.9
    assert await pins.get("conv") == CLAUDE_2
    clock.now += 0.1
    assert await pins.get("conv") is None
    await pins.touch("conv")  # an expired pin is not brought back
    assert await pins.get("conv") is None
    await pins.touch("never-seen")
    assert await pins.get("never-seen") is None


async def test_forget_drops_the_pin() -> None:
    pins = SessionPins()
    await pins.set("conv", CLAUDE)
    await pins.forget("conv")
    await pins.forget("conv")  # twice is fine
    assert await pins.get("conv") is None
    assert await pins.set("conv", GPT) is None


async def test_the_least_recently_used_session_goes_when_the_bound_is_reached() -> None:
    clock = Clock()
    pins = SessionPins(max_sessions=3, clock=clock)
    for name in ("a", "b", "c"):
        await pins.set(name, CLAUDE)
        clock.now += 1
    await pins.touch("a")  # now b is the least recently used
    await pins.set("d", GPT)
    assert await pins.get("b") is None
    assert [await pins.get(name) for name in ("a", "c", "d")] == [CLAUDE, CLAUDE, GPT]
    assert len(pins) == 3


async def test_expired_pins_are_swept_so_they_do_not_hold_memory() -> None:
    clock = Clock()
    pins = SessionPins(ttl=5.0, clock=clock)
    for number in range(100):
        await pins.set(f"old-{number}", CLAUDE)
    clock.now += 5
    await pins.set("new", GPT)
    assert len(pins) == 1


def test_pins_stay_bounded_and_consistent_under_threads() -> None:
    pins = SessionPins(max_sessions=50)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        async def run() -> None:
            for number in range(500):
                session = f"s{number % 80}"
                await pins.set(session, Pin("openai/gpt-4o", f"key-{worker}"))
                await pins.touch(session)
                got = await pins.get(session)
                assert got is None or got.model == "openai/gpt-4o"

        try:
            asyncio.run(run())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(pins) <= 50


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan, True, "300"])
def test_a_ttl_that_is_not_a_finite_positive_number_is_refused(ttl: Any) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        SessionPins(ttl)


def test_max_sessions_below_one_is_refused_and_the_default_ttl_is_five_minutes() -> None:
    with pytest.raises(ConfigError, match="max_sessions"):
        SessionPins(max_sessions=0)
    assert SessionPins().ttl == DEFAULT_SESSION_TTL == 300.0


def test_a_pin_names_a_model_on_one_line_and_a_profile() -> None:
    with pytest.raises(ValueError, match="model"):
        Pin("openai/gpt-4o\nx", "k")
    with pytest.raises(ValueError, match="profile"):
        Pin("openai/gpt-4o", "")
    assert Pin("openai/gpt-4o", "k") == Pin("openai/gpt-4o", "k")
    assert hash(Pin("openai/gpt-4o", "k")) == hash(Pin("openai/gpt-4o", "k"))


def test_importing_affinity_loads_neither_redis_nor_httpx() -> None:
    code = (
        "import sys, failover.affinity; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'httpx')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- prefix_session -----------------------------------------------------------------------------

SYSTEM = "You are a terse assistant for the billing team."
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]


def chat_turns(first: str, system: str = SYSTEM) -> list[list[dict[str, Any]]]:
    """Three turns of one conversation, each the whole history sent that turn."""
    one = [{"role": "system", "content": system}, {"role": "user", "content": first}]
    two = [
        *one,
        {"role": "assistant", "content": "Which invoice?"},
        {"role": "user", "content": "INV-42"},
    ]
    three = [
        *two,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "paid"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]
    return [one, two, three]


def test_every_turn_of_a_conversation_has_one_session() -> None:
    sessions = {prefix_session(turn, tools=TOOLS) for turn in chat_turns("Refund INV-42?")}
    assert len(sessions) == 1
    session = sessions.pop()
    assert len(session) == 32 and int(session, 16) >= 0
    assert "Refund" not in session


def test_conversations_that_differ_in_their_prefix_have_different_sessions() -> None:
    base = chat_turns("Refund INV-42?")[0]
    sessions = {
        prefix_session(base, tools=TOOLS),
        prefix_session(chat_turns("Refund INV-43?")[0], tools=TOOLS),
        prefix_session(chat_turns("Refund INV-42?", system="Another prompt")[0], tools=TOOLS),
        prefix_session(base),  # no tools
        prefix_session(base, tools=[{"type": "function", "function": {"name": "other"}}]),
        prefix_session(base[1:], tools=TOOLS),  # no system prompt
    }
    assert len(sessions) == 6


def test_cache_markers_and_the_shape_of_text_content_do_not_change_the_session() -> None:
    plain = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]
    marked = [
        {
            "role": "system",
            "content": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    assert prefix_session(plain) == prefix_session(marked)
    # A system prompt given apart (Anthropic's ``system``) is the same prefix.
    assert prefix_session(plain[1:], system=SYSTEM) == prefix_session(plain)
    assert prefix_session(plain[1:], system=[{"type": "text", "text": SYSTEM}]) == prefix_session(
        plain
    )


def test_images_in_the_first_turn_are_part_of_the_prefix() -> None:
    def turn(url: str) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]

    cat, dog = turn("https://img.example/cat.png"), turn("data:image/png;base64,AAAA")
    assert prefix_session(cat) != prefix_session(dog)
    assert prefix_session(cat) == prefix_session(
        [*cat, {"role": "assistant", "content": "A cat."}, {"role": "user", "content": "Sure?"}]
    )


def test_a_system_message_added_after_the_first_turn_keeps_the_session() -> None:
    one = chat_turns("Hello")[0]
    later = [
        *one,
        {"role": "assistant", "content": "Hi"},
        {"role": "system", "content": "Be brief"},
    ]
    assert prefix_session(later) == prefix_session(one)


# -- session_of_payload: each wire's request bodies ------------------------------------------


def chat_bodies(first: str) -> list[dict[str, Any]]:
    return [
        {"model": "gpt-4o", "messages": turn, "tools": TOOLS, "stream": n == 2}
        for n, turn in enumerate(chat_turns(first))
    ]


def responses_bodies(first: str) -> list[dict[str, Any]]:
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    one = {"model": "gpt-4o", "instructions": SYSTEM, "input": first, "tools": tools}
    two = {
        "model": "gpt-4o",
        "instructions": SYSTEM,
        "tools": tools,
        "input": [
            {"role": "user", "content": first},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Which one?"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "paid"},
            {"role": "user", "content": [{"type": "input_text", "text": "INV-42"}]},
        ],
    }
    return [one, two]


def anthropic_bodies(first: str) -> list[dict[str, Any]]:
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    system = [{"type": "text", "text": SYSTEM}]
    one = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": system,
        "tools": tools,
        "messages": [{"role": "user", "content": first}],
    }
    two = {
        **one,
        "system": [{**system[0], "cache_control": {"type": "ephemeral"}}],
        "tools": [{**tools[0], "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": first}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "paid"}],
            },
        ],
    }
    return [one, two]


def gemini_bodies(first: str) -> list[dict[str, Any]]:
    tools = [{"functionDeclarations": [{"name": "lookup"}]}]
    system = {"parts": [{"text": SYSTEM}]}
    one = {
        "systemInstruction": system,
        "tools": tools,
        "contents": [{"role": "user", "parts": [{"text": first}]}],
    }
    two = {
        **one,
        "contents": [
            {"role": "user", "parts": [{"text": first}]},
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {}}}]},
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
    }
    return [one, two]


@pytest.mark.parametrize("bodies", [chat_bodies, responses_bodies, anthropic_bodies, gemini_bodies])
def test_every_turn_of_one_wire_maps_to_one_session_and_conversations_differ(bodies: Any) -> None:
    ours = {session_of_payload(body) for body in bodies("Refund INV-42?")}
    theirs = {session_of_payload(body) for body in bodies("Refund INV-43?")}
    assert len(ours) == 1 and len(theirs) == 1
    assert None not in ours
    assert ours != theirs


def test_chat_bodies_name_the_same_session_as_prefix_session() -> None:
    turn = chat_turns("Hello")[1]
    assert session_of_payload({"messages": turn, "tools": TOOLS}) == prefix_session(
        turn, tools=TOOLS
    )


def test_gemini_snake_case_bodies_are_read_too() -> None:
    body = {
        "system_instruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
    }
    other = {**body, "system_instruction": {"parts": [{"text": "Other"}]}}
    assert session_of_payload(body) is not None
    assert session_of_payload(body) != session_of_payload(other)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model": "gpt-4o"},
        {"messages": []},
        {"contents": []},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
        {"input": "Hi", "previous_response_id": "resp_1"},
        {"input": "Hi", "conversation": "conv_1"},
        {"input": 3},
    ],
)
def test_a_body_without_a_conversation_in_it_has_no_session(body: dict[str, Any]) -> None:
    assert session_of_payload(body) is None


# -- RedisSessionPins on a real redis-server --------------------------------------------------


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def test_two_redis_pin_stores_share_pins(redis_server: RedisServer) -> None:
    name = prefix()
    first = aioredis.from_url(redis_server.url)
    second = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        ours, theirs = RedisSessionPins(first, name), RedisSessionPins(second, name)
        assert await theirs.get("conv-7") is None
        assert await ours.set("conv-7", CLAUDE) is None
        assert await theirs.get("conv-7") == CLAUDE
        assert await theirs.set("conv-7", CLAUDE_2) == CLAUDE
        assert await ours.get("conv-7") == CLAUDE_2
        await ours.forget("conv-7")
        assert await theirs.get("conv-7") is None
        # Another prefix is another application.
        assert await RedisSessionPins(first, prefix()).get("conv-7") is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_pins_expire_ttl_after_their_last_use(client: aioredis.Redis) -> None:
    name = prefix()
    pins = RedisSessionPins(client, name, ttl=2.5)
    await pins.set("conv", GPT)
    key = session_key(name, "conv")
    assert 0 < await client.pttl(key) <= 2500  # milliseconds: PX, not EX
    await client.pexpire(key, 100)
    await pins.touch("conv")
    assert 100 < await client.pttl(key) <= 2500  # the touch started the ttl again
    short = RedisSessionPins(client, name, ttl=0.05)
    await short.set("conv", GPT)
    for _ in range(100):
        if await short.get("conv") is None:
            break
        await asyncio.sleep(0.02)
    assert await pins.get("conv") is None
    await pins.touch("conv")  # touching an expired pin does not bring it back
    assert await pins.get("conv") is None
    assert await client.exists(key) == 0


async def test_redis_never_holds_the_session_text(client: aioredis.Redis) -> None:
    name = prefix()
    secret_session = "user:alice@example.com:conversation-about-her-divorce"
    pins = RedisSessionPins(client, name)
    await pins.set(secret_session, CLAUDE)
    await pins.set(prefix_session([{"role": "user", "content": "hello"}]), GPT)
    keys = [key async for key in client.scan_iter(match=f"{name}:*")]
    assert len(keys) == 2
    everything = b"".join([*keys, *[await client.get(key) or b"" for key in keys]])
    assert b"alice" not in everything and b"divorce" not in everything
    assert session_key(name, secret_session).encode() in keys
    assert (
        await client.get(session_key(name, secret_session))
        == b"anthropic/claude-sonnet-4-5\nanthropic-1"
    )


class OldRedis:
    """A client to a real redis-server that refuses ``SET ... GET`` as Redis 6.0 does."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.refused = 0

    async def set(self, *args: Any, get: bool = False, **kwargs: Any) -> Any:
        if get:
            self.refused += 1
            raise ResponseError("ERR syntax error")
        return await self._redis.set(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)


async def test_an_older_redis_swaps_pins_with_getset_in_a_transaction(
    client: aioredis.Redis,
) -> None:
    name = prefix()
    old = OldRedis(client)
    pins = RedisSessionPins(old, name, ttl=60)  # type: ignore[arg-type]
    assert await pins.set("conv", CLAUDE) is None
    assert await pins.set("conv", GPT) == CLAUDE
    assert old.refused == 1  # asked once, then GETSET every time
    assert await pins.get("conv") == GPT
    assert 0 < await client.pttl(session_key(name, "conv")) <= 60_000


def test_redis_pins_check_their_prefix_and_ttl() -> None:
    redis = aioredis.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="prefix"):
        RedisSessionPins(redis, "has space")
    with pytest.raises(ConfigError, match="ttl"):
        RedisSessionPins(redis, "app", ttl=0)
    assert "app" in repr(RedisSessionPins(redis, "app"))
    assert isinstance(RedisSessionPins(redis, "app"), PinStore)
    assert isinstance(SessionPins(), PinStore)


async def test_unreachable_redis_keeps_pins_in_the_process_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    pins = RedisSessionPins(redis, prefix())
    with caplog.at_level(logging.WARNING, logger="failover.affinity"):
        assert await pins.set("conv", CLAUDE) is None
        assert await pins.get("conv") == CLAUDE
        assert await pins.set("conv", GPT) == CLAUDE
        await pins.touch("conv")
        await pins.forget("conv")
        assert await pins.get("conv") is None
    warnings = [r for r in caplog.records if r.name == "failover.affinity"]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0].getMessage()
    await redis.aclose()


async def test_pins_are_shared_again_once_redis_is_back(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer()
    server.start()
    redis = aioredis.from_url(server.url)
    try:
        pins = RedisSessionPins(redis, prefix())
        await pins.set("conv", CLAUDE)
        server.kill()
        with caplog.at_level(logging.WARNING, logger="failover.affinity"):
            assert await pins.get("conv") is None  # what Redis held is out of reach
            await pins.set("conv", GPT)
            assert await pins.get("conv") == GPT
            server.start()  # empty: it was not saved
            assert await pins.get("conv") is None
            assert await pins.set("conv", CLAUDE_2) is None
            other = RedisSessionPins(redis, pins.prefix)
            assert await other.get("conv") == CLAUDE_2
        messages = [r.getMessage() for r in caplog.records if r.name == "failover.affinity"]
        assert len(messages) == 2
        assert "unreachable" in messages[0] and "back" in messages[1]
    finally:
        await redis.aclose()
        server.kill()
