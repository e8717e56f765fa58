"""Admission through ResilientClient: budgets checked before and charged after, token
windows, in-flight caps, the line for room, and what a refusal looks like to the caller."""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
import respx

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    BudgetExceededError,
    ConfigError,
    FailoverConfig,
    FailoverManager,
    ResilientClient,
)
from failover.budgets import Budget
from failover.catalog import ModelEntry, TokenUsage, default_catalog
from failover.events import FailoverEvent
from tests.conftest import BOTH_BACKENDS
from tests.redis_server import RedisServer

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
OPENAI_EMBED = "https://api.openai.com/v1/embeddings"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
KEY_A = "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-proj-bbbbbbbbbbbbbbbbbbbbbbbb2222"
KEY_C = "sk-ant-cccccccccccccccccccccccc3333"
MESSAGES = [{"role": "user", "content": "hello there"}]
GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-haiku-4-5"


def price(model_id: str) -> ModelEntry:
    entry = default_catalog.resolve(model_id)
    assert entry is not None and entry.cost_input and entry.cost_output
    return entry


def ok(prompt: int = 10, completion: int = 5) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
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


def profiles(**limits: dict[str, Any]) -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", KEY_A, **limits.get("a", {})),
        AuthProfile("b", "openai", KEY_B, **limits.get("b", {})),
        AuthProfile("c", "anthropic", KEY_C, **limits.get("c", {})),
    ]


def client(
    chain: list[str] | None = None, keys: list[AuthProfile] | None = None, **kwargs: Any
) -> ResilientClient:
    return ResilientClient(chain or [GPT, CLAUDE], keys or profiles(), **kwargs)


def worst(model_id: str, max_tokens: int) -> float:
    """The worst case admission reserves for MESSAGES with ``max_tokens``."""
    input_tokens = len(MESSAGES[0]["content"]) // 4 + 1
    cost = price(model_id).calculate_cost(TokenUsage(input_tokens, max_tokens))
    assert cost is not None
    return cost


# -- budgets ----------------------------------------------------------------------------------


@respx.mock
async def test_a_reply_is_charged_its_real_cost_not_its_worst_case() -> None:
    respx.post(OPENAI).mock(return_value=ok(prompt=10, completion=5))
    budget = Budget(usd=1.0, per="day")
    resilient = client(budgets=[budget])
    done = await resilient.complete(MESSAGES, max_tokens=1000)
    used = await resilient.manager.admission.ledger.used(budget)
    assert done.cost_usd is not None and used == pytest.approx(done.cost_usd)
    assert used < worst(GPT, 1000)


@respx.mock
async def test_a_model_whose_worst_case_would_overrun_its_budget_is_skipped_for_the_next() -> None:
    gpt = respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    budget = Budget(usd=worst(GPT, 100) * 1.5, per="hour", scope=f"model:{GPT}")
    resilient = client(budgets=[budget])
    moves: list[FailoverEvent] = []
    resilient.on_failover(moves.append)
    first = await resilient.complete(MESSAGES, max_tokens=100)
    second = await resilient.complete(MESSAGES, max_tokens=100)  # spent ~1/10 of the worst
    assert (first.model, second.model) == (GPT, GPT)
    third = await resilient.complete(MESSAGES, max_tokens=100_000)  # could never fit
    assert third.model == CLAUDE
    assert [a.outcome for a in third.attempts] == ["over_budget", "ok"]
    assert gpt.call_count == 2
    await resilient.aclose()
    assert [(m.reason, m.to_model) for m in moves] == [("over_budget", CLAUDE)]


@respx.mock
async def test_nothing_within_budget_raises_a_typed_error_naming_it_and_its_reset() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    budget = Budget(usd=0.000001, per="day")
    resilient = client(budgets=[budget])
    with pytest.raises(BudgetExceededError) as caught:
        await resilient.complete(MESSAGES, max_tokens=100)
    error = caught.value
    assert error.budget is budget
    assert [a.outcome for a in error.attempts] == ["over_budget", "over_budget"]
    assert 0 < error.retry_after <= 86_400 and error.resets_at > 0
    assert "per day" in str(error) and "resets in" in str(error)
    assert await resilient.manager.admission.ledger.used(budget) == 0  # nothing held


@respx.mock
async def test_a_keys_own_budget_rotates_to_another_key_of_the_model() -> None:
    route = respx.post(OPENAI).mock(side_effect=lambda request: ok())
    resilient = client(budgets=[Budget(usd=0.000001, per="day", scope="profile:a")])
    done = await resilient.complete(MESSAGES, max_tokens=100)
    assert (done.model, done.profile) == (GPT, "b")
    assert [keyed(call.request) for call in route.calls] == [KEY_B]


@respx.mock
async def test_a_tag_budget_holds_only_the_requests_that_carry_the_tag() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    resilient = client([GPT], budgets=[Budget(usd=0.000001, per="day", scope="tag:tenant-a")])
    untagged = await resilient.complete(MESSAGES, max_tokens=100, tags="tenant-b")
    assert untagged.model == GPT
    with pytest.raises(BudgetExceededError):
        await resilient.complete(MESSAGES, max_tokens=100, tags=["tenant-a", "x"])


@respx.mock
async def test_a_group_budget_covers_every_deployment_of_the_named_step() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    chain: list[Any] = [{"name": "mini", "deployments": [GPT]}, CLAUDE]
    resilient = ResilientClient(
        chain, profiles(), budgets=[Budget(usd=0.000001, per="day", scope="group:mini")]
    )
    done = await resilient.complete(MESSAGES, max_tokens=100)
    assert done.model == CLAUDE and done.attempts[0].outcome == "over_budget"
    # a call's own chain names its own groups
    plain = client([GPT, CLAUDE], budgets=[Budget(usd=0.000001, per="day", scope="group:mini")])
    assert (await plain.complete(MESSAGES, max_tokens=100)).model == GPT
    grouped = await plain.complete(MESSAGES, max_tokens=100, chain=chain)
    assert grouped.model == CLAUDE and grouped.attempts[0].outcome == "over_budget"


@respx.mock
async def test_a_stream_is_charged_at_its_end_and_its_worst_case_when_closed_early() -> None:
    chunks = [
        'data: {"choices":[{"delta":{"content":"one "}}]}\n\n',
        'data: {"choices":[{"delta":{"content":"two"},"finish_reason":"stop"}]}\n\n',
        'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n',
        "data: [DONE]\n\n",
    ]
    respx.post(OPENAI).mock(
        side_effect=lambda request: httpx.Response(
            200, content="".join(chunks).encode(), headers={"content-type": "text/event-stream"}
        )
    )
    budget = Budget(usd=1.0, per="day")
    resilient = client([GPT], budgets=[budget])
    ledger = resilient.manager.admission.ledger
    async with resilient.stream(MESSAGES, max_tokens=50) as stream:
        first = await stream.__anext__()
        assert await ledger.used(budget) == pytest.approx(worst(GPT, 50))  # reserved
        text = first.text + "".join([chunk.text async for chunk in stream])
    assert text == "one two"
    real = price(GPT).calculate_cost(TokenUsage(4, 2))
    assert await ledger.used(budget) == pytest.approx(real)

    async with resilient.stream(MESSAGES, max_tokens=50) as stream:
        async for _ in stream:
            break  # closed after its first chunk: what it produced is billed
    assert await ledger.used(budget) == pytest.approx(real + worst(GPT, 50))


@respx.mock
async def test_an_embedding_is_checked_and_charged() -> None:
    respx.post(OPENAI_EMBED).mock(
        return_value=httpx.Response(
            200,
            json={
                "data": [{"embedding": [0.1, 0.2], "index": 0}],
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            },
        )
    )
    model = "openai/text-embedding-3-small"
    budget = Budget(usd=1.0, per="day")
    resilient = client([model], budgets=[budget])
    done = await resilient.embed("hello", dimensions=2)
    assert await resilient.manager.admission.ledger.used(budget) == pytest.approx(done.cost_usd)


@respx.mock
async def test_a_failed_attempt_gives_its_reservation_back() -> None:
    respx.post(OPENAI).mock(return_value=httpx.Response(500, json={"error": {"message": "x"}}))
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    budget = Budget(usd=1.0, per="day")
    resilient = client(budgets=[budget])
    done = await resilient.complete(MESSAGES, max_tokens=10)
    assert done.model == CLAUDE
    used = await resilient.manager.admission.ledger.used(budget)
    assert used == pytest.approx(done.cost_usd)


def test_budgets_go_to_the_manager_when_the_client_is_given_one() -> None:
    manager = FailoverManager(profiles=profiles(), budgets=[Budget(usd=5.0)])
    with pytest.raises(ConfigError, match="budgets"):
        ResilientClient([GPT], manager, budgets=[Budget(usd=1.0)])
    with pytest.raises(ConfigError, match="Budget"):
        ResilientClient([GPT], profiles(), budgets=[{"usd": 1}])  # type: ignore[list-item]


async def test_bad_tags_and_priorities_are_refused_before_any_call() -> None:
    resilient = client([GPT])
    with pytest.raises(ConfigError, match="tags"):
        await resilient.complete(MESSAGES, tags=[""])
    with pytest.raises(ConfigError, match="priority"):
        await resilient.complete(MESSAGES, priority="high")  # type: ignore[arg-type]


# -- token windows ----------------------------------------------------------------------------


@respx.mock
async def test_a_key_without_room_in_its_minute_is_passed_for_one_with_room() -> None:
    route = respx.post(OPENAI).mock(side_effect=lambda request: ok(prompt=3, completion=890))
    keys = profiles(a={"rate_limit_tpm": 1_000}, b={"priority": 1})  # a is preferred
    resilient = client([GPT], keys)
    first = await resilient.complete(MESSAGES, max_tokens=900)  # uses 893 of a's 1,000
    second = await resilient.complete(MESSAGES, max_tokens=900)
    assert (first.profile, second.profile) == ("a", "b")
    assert [a.outcome for a in second.attempts] == ["over_rate", "ok"]
    assert [keyed(call.request) for call in route.calls] == [KEY_A, KEY_B]


@respx.mock
async def test_the_reply_usage_gives_the_unused_reservation_back_to_the_window() -> None:
    respx.post(OPENAI).mock(side_effect=lambda request: ok(prompt=3, completion=1))
    keys = profiles(a={"rate_limit_tpm": 1_000})
    resilient = client([GPT], keys[:1])
    for _ in range(3):  # each reserves ~903 and gives back all but 4 at once
        done = await resilient.complete(MESSAGES, max_tokens=900)
        assert done.profile == "a" and len(done.attempts) == 1
    snapshot = await resilient.manager.admission.windows.snapshot(
        "a", keys[0].fingerprint, 1_000, None
    )
    assert snapshot["tokens_available"] == pytest.approx(1_000 - 12, abs=2)


@respx.mock
async def test_a_request_with_no_room_anywhere_waits_in_line_for_it() -> None:
    respx.post(OPENAI).mock(side_effect=lambda request: ok(prompt=3, completion=590))
    keys = [AuthProfile("a", "openai", KEY_A, rate_limit_tpm=600)]  # 10 tokens a second
    resilient = client([GPT], keys)
    await resilient.complete(MESSAGES, max_tokens=595)  # 593 of the minute's 600 used
    done = await resilient.complete(MESSAGES, max_tokens=20)  # ~23 more: about 1.6 s away
    assert done.profile == "a"
    assert [a.outcome for a in done.attempts] == ["over_rate", "ok"]
    assert 1.0 < done.attempts[0].retry_after < 2.5  # the window said when, and it waited


# -- in-flight caps ---------------------------------------------------------------------------


@respx.mock
async def test_a_key_at_its_cap_sends_the_next_request_to_another_and_slots_never_leak() -> None:
    release, both = anyio.Event(), anyio.Event()
    seen: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        seen.append(keyed(request))
        if len(seen) == 2:
            both.set()
        await release.wait()
        return ok()

    respx.post(OPENAI).mock(side_effect=slow)
    keys = profiles(a={"max_in_flight": 1}, b={"max_in_flight": 1})
    resilient = client([GPT], keys)
    results: list[Any] = []

    async def one() -> None:
        results.append(await resilient.complete(MESSAGES, max_tokens=5))

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        group.start_soon(one)
        await both.wait()
        group.start_soon(one)  # both keys at their cap: it waits for a place
        await anyio.sleep(0.1)
        assert len(seen) == 2
        release.set()
    assert sorted(r.profile for r in results[:2]) == ["a", "b"] and len(results) == 3
    assert [a.outcome for a in results[2].attempts][-1] == "ok"
    assert "at_capacity" in [a.outcome for a in results[2].attempts]
    assert resilient.manager.admission.in_flight.counts() == {"profiles": {}, "deployments": {}}


@respx.mock
async def test_a_cancelled_request_leaves_its_place_and_is_charged_what_it_may_have_cost() -> None:
    started = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await anyio.sleep(math.inf)
        raise AssertionError

    respx.post(OPENAI).mock(side_effect=hang)
    budget = Budget(usd=1.0, per="day")
    keys = profiles(a={"max_in_flight": 1, "rate_limit_tpm": 10_000})
    resilient = client([GPT], keys, budgets=[budget])
    with anyio.move_on_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(partial(resilient.complete, MESSAGES, max_tokens=100))
            await started.wait()
            reserved = await resilient.manager.admission.ledger.used(budget)
            assert reserved == pytest.approx(worst(GPT, 100))
            group.cancel_scope.cancel()
    admission = resilient.manager.admission
    assert admission.in_flight.count("a") == 0  # its place is free at once
    # it was sent: the provider may have served and billed it, so its worst case stays
    assert await admission.ledger.used(budget) == pytest.approx(reserved)


@respx.mock
async def test_admission_off_sends_regardless() -> None:
    route = respx.post(OPENAI).mock(return_value=ok())
    resilient = client([GPT], budgets=[Budget(usd=0.000001)], admission=False)
    await resilient.complete(MESSAGES, max_tokens=100)
    assert route.call_count == 1


# -- the SDK transport ------------------------------------------------------------------------


async def test_an_sdk_call_through_the_transport_is_admitted_charged_and_leaves_its_place() -> None:
    import openai

    from failover import ResilientTransport
    from tests.conftest import simulator_in_thread

    with simulator_in_thread(keys={"openai": [KEY_A]}) as sim:
        budget = Budget(usd=1.0, per="day")
        manager = FailoverManager(
            profiles=[
                AuthProfile("a", "openai", KEY_A, base_url=sim.base_url("openai"), max_in_flight=1)
            ],
            budgets=[budget],
        )
        transport = ResilientTransport(manager, provider="openai")
        sdk = openai.AsyncOpenAI(
            api_key="sdk-key-never-sent",
            base_url=sim.base_url("openai"),
            max_retries=0,
            http_client=httpx.AsyncClient(transport=transport),
        )
        for _ in range(2):  # the second finds the key's one place free again
            reply = await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=100
            )
            assert reply.choices[0].message.content
        await sdk.close()
        admission = manager.admission
        assert admission.in_flight.counts() == {"profiles": {}, "deployments": {}}
        charged = await admission.ledger.used(budget)
        one = worst(GPT, 100)
        assert charged == pytest.approx(2 * one, rel=0.5)  # its worst case, estimated


@respx.mock
async def test_budgets_are_counted_in_process_while_the_shared_store_is_unreachable(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if anyio_backend == "trio":
        pytest.skip("redis-py runs on asyncio")
    from failover.store import RedisStore
    from tests.redis_server import free_port

    respx.post(OPENAI).mock(return_value=ok())
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)  # nobody listens
    budget = Budget(usd=1.0, per="day")
    resilient = client([GPT], profiles(), store=store, budgets=[budget])
    with caplog.at_level("WARNING", logger="failover.admission"):
        done = await resilient.complete(MESSAGES, max_tokens=10)
        await resilient.complete(MESSAGES, max_tokens=10)
    assert done.model == GPT  # Redis down costs no request
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage
    assert caplog.text.count(KEY_A) == 0
    local = resilient.manager.admission._local_ledger
    assert local is not None and await local.used(budget) == pytest.approx(2 * done.cost_usd)


@respx.mock
async def test_the_providers_remaining_tokens_header_lowers_the_keys_window() -> None:
    route = respx.post(OPENAI).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
            headers={"x-ratelimit-remaining-tokens": "50", "x-ratelimit-limit-tokens": "1000"},
        )
    )
    keys = profiles(a={"rate_limit_tpm": 1_000}, b={"priority": 1})
    resilient = client([GPT], keys)
    await resilient.complete(MESSAGES, max_tokens=10)  # the reply says: 50 tokens left
    second = await resilient.complete(MESSAGES, max_tokens=200)
    assert [a.outcome for a in second.attempts] == ["over_rate", "ok"]
    assert [keyed(call.request) for call in route.calls] == [KEY_A, KEY_B]


@respx.mock
async def test_with_no_room_on_its_keys_a_request_goes_sideways_to_a_model_with_room() -> None:
    respx.post(OPENAI).mock(side_effect=lambda request: ok(prompt=3, completion=590))
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    keys = profiles(a={"rate_limit_tpm": 600}, b={"rate_limit_tpm": 600})
    resilient = client([GPT, CLAUDE], keys)
    for _ in range(2):  # fill both keys' minutes
        await resilient.complete(MESSAGES, max_tokens=595)
    done = await resilient.complete(MESSAGES, max_tokens=100)
    assert done.model == CLAUDE
    assert [a.outcome for a in done.attempts] == ["over_rate", "over_rate", "ok"]


async def test_a_budget_in_a_shared_store_holds_every_process_to_one_spend(
    anyio_backend: str,
    redis_server: RedisServer,
) -> None:
    if anyio_backend == "trio":
        pytest.skip("redis-py runs on asyncio")
    import uuid

    from failover.store import RedisStore

    prefix = f"b{uuid.uuid4().hex[:8]}"
    budget = Budget(usd=1.0, per="day")
    with respx.mock:
        respx.post(OPENAI).mock(return_value=ok(prompt=1_000, completion=1_000))
        first, second = (
            client(
                [GPT],
                profiles(),
                budgets=[budget],
                store=RedisStore(redis_server.url, prefix=prefix),
            )
            for _ in range(2)
        )
        async with first, second:
            one = await first.complete(MESSAGES, max_tokens=1_000)
            two = await second.complete(MESSAGES, max_tokens=1_000)
            seen_by_first = await first.manager.admission.ledger.used(budget)
            # a third "process" started later sees what the two spent
            third = client(
                [GPT],
                profiles(),
                budgets=[budget],
                store=RedisStore(redis_server.url, prefix=prefix),
            )
            seen_by_third = await third.manager.admission.ledger.used(budget)
    assert one.cost_usd is not None and two.cost_usd is not None
    assert seen_by_first == pytest.approx(one.cost_usd + two.cost_usd)
    assert seen_by_third == pytest.approx(seen_by_first)


@respx.mock
async def test_a_spent_model_budget_still_lets_the_request_wait_for_the_next_model() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(return_value=claude_ok())
    budget = Budget(usd=0.000001, per="day", scope=f"model:{GPT}")
    resilient = client(budgets=[budget], deadline=10)
    resilient.manager.hold_until_reset("c", 0.3)  # the next model's only key rests a moment
    done = await resilient.complete(MESSAGES, max_tokens=100)
    assert done.model == CLAUDE  # waited for it: the spent budget is not "usable now"
    outcomes = [a.outcome for a in done.attempts]
    assert outcomes[0] == "over_budget" and outcomes[-1] == "ok"


@respx.mock
async def test_room_given_back_by_replies_wakes_the_line_before_the_window_would_refill() -> None:
    release = anyio.Event()
    arrived: list[str] = []  # who reached the provider, in order

    async def reply(request: httpx.Request) -> httpx.Response:
        arrived.append(json.loads(request.content)["messages"][0]["content"])
        await release.wait()
        return ok(prompt=3, completion=2)  # far less than the 1,900 reserved

    respx.post(OPENAI).mock(side_effect=reply)
    # 100 tokens a second: by refill alone a 1,900-token request waits ~19 s for room,
    # beyond the deadline; the first replies give their reservations back at once
    keys = [AuthProfile("a", "openai", KEY_A, rate_limit_tpm=6_000)]
    resilient = client([GPT], keys, deadline=5)
    results: list[Any] = []

    async def one(name: str, priority: int) -> None:
        asked = [{"role": "user", "content": name}]
        results.append(await resilient.complete(asked, max_tokens=1_900, priority=priority))

    async with anyio.create_task_group() as group:
        for number in range(5):
            group.start_soon(one, f"plain-{number}", 0)
        await anyio.wait_all_tasks_blocked()  # three hold the window, two wait in the line
        group.start_soon(one, "urgent", 9)  # came last, goes first
        await anyio.wait_all_tasks_blocked()
        assert len(resilient.engine.recovery) == 3 and len(arrived) == 3
        release.set()
    assert len(results) == 6 and all(r.attempts[-1].outcome == "ok" for r in results)
    waited = [r for r in results if r.attempts[0].outcome == "over_rate"]
    assert len(waited) == 3
    assert arrived[3] == "urgent"  # the higher priority went first of those waiting


@respx.mock
async def test_room_given_back_does_not_wake_a_request_waiting_for_a_rest_to_end() -> None:
    """Replies that settle give room back, not rest: a request waiting for its only key
    to cool down sleeps the rest through instead of calling that key again at each
    settle (each walk would find it still resting and try it as the least bad)."""
    rested = anyio.Event()
    claude_calls: list[bool] = []

    def claude(request: httpx.Request) -> httpx.Response:
        claude_calls.append(rested.is_set())
        if not rested.is_set():
            return httpx.Response(
                529, json={"type": "error", "error": {"type": "overloaded_error"}}
            )
        return claude_ok()

    respx.post(ANTHROPIC).mock(side_effect=claude)
    respx.post(OPENAI).mock(return_value=ok())
    config = FailoverConfig(max_retries=0, cooldown_on_error=1.0)
    manager = FailoverManager(config, profiles=profiles(), budgets=[Budget(usd=1.0, per="day")])
    resilient = ResilientClient([GPT, CLAUDE], manager, deadline=5)
    await resilient.complete(MESSAGES, max_tokens=10)  # warm: the rest outlasts what follows
    manager.mark_failure("c", "overloaded")  # resting after an error: the least bad once
    results: list[Any] = []

    async def waiting() -> None:
        results.append(await resilient.complete(MESSAGES, max_tokens=10, chain=[CLAUDE]))

    async with anyio.create_task_group() as group:
        group.start_soon(waiting)
        await anyio.wait_all_tasks_blocked()  # its least-bad call failed: it waits the rest
        assert claude_calls == [False]
        for _ in range(5):  # each reply settles, giving its reservation back
            await resilient.complete(MESSAGES, max_tokens=10)
            await anyio.wait_all_tasks_blocked()
        rested.set()
    assert claude_calls == [False, True]  # no call while it rested, one after
    assert results[0].model == CLAUDE


@respx.mock
async def test_a_budget_held_by_a_reservation_wakes_its_waiter_when_the_reply_settles() -> None:
    """A budget refused only because an answer in flight holds its worst case is room, not
    a rest: the waiter goes on when that reply settles for less, not at the window's reset."""
    release = anyio.Event()

    async def reply(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok(prompt=3, completion=2)  # far less than the worst case it reserved

    respx.post(OPENAI).mock(side_effect=reply)
    budget = Budget(usd=worst(GPT, 1_000) * 1.5, per=3_600.0)  # holds one worst case, not two
    resilient = client([GPT], budgets=[budget], deadline=7_200)
    results: list[Any] = []

    async def one() -> None:
        results.append(await resilient.complete(MESSAGES, max_tokens=1_000))

    with anyio.fail_after(10):  # the window resets up to an hour later
        async with anyio.create_task_group() as group:
            group.start_soon(one)
            await anyio.wait_all_tasks_blocked()  # in flight, holding its worst case
            group.start_soon(one)
            await anyio.wait_all_tasks_blocked()  # refused over budget: waiting
            release.set()
    assert len(results) == 2
    assert [a.outcome for a in results[1].attempts] == ["over_budget", "ok"]


@respx.mock
async def test_the_line_for_room_is_first_come_first_served_and_keeps_each_place() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        wanted = body.get("max_tokens") or body["max_completion_tokens"]
        return ok(prompt=3, completion=wanted)  # uses all it reserved: nothing comes back

    respx.post(OPENAI).mock(side_effect=reply)
    keys = [AuthProfile("a", "openai", KEY_A, rate_limit_tpm=6_000)]  # 100 tokens a second
    resilient = client([GPT], keys, deadline=20)
    await resilient.complete(MESSAGES, max_tokens=5_990)  # the minute is spent
    served: list[int] = []

    async def one(number: int) -> None:
        await resilient.complete(MESSAGES, max_tokens=20)  # ~0.25 s of refill each
        served.append(number)

    async with anyio.create_task_group() as group:
        for number in range(5):  # they come one after another
            group.start_soon(one, number)
            await anyio.wait_all_tasks_blocked()
    assert served == [0, 1, 2, 3, 4]


@respx.mock
async def test_a_key_refused_by_admission_keeps_its_requests_per_minute_for_what_is_sent() -> None:
    release = anyio.Event()

    async def reply(request: httpx.Request) -> httpx.Response:
        if keyed(request) == KEY_A and not release.is_set():
            await release.wait()
        return ok(prompt=3, completion=1)

    respx.post(OPENAI).mock(side_effect=reply)
    keys = profiles(a={"rate_limit_tpm": 1_000, "rate_limit_rpm": 2}, b={"priority": 1})
    resilient = client([GPT], keys)
    async with anyio.create_task_group() as group:
        group.start_soon(partial(resilient.complete, MESSAGES, max_tokens=900))  # holds a's minute
        await anyio.wait_all_tasks_blocked()
        # ... so it waits: these three go to b, refused on a by its token window
        for _ in range(3):
            moved = await resilient.complete(MESSAGES, max_tokens=900)
            assert moved.profile == "b" and moved.attempts[0].outcome == "over_rate"
        release.set()
    # a sent one request this minute (of its 2): the refusals took no place in it
    done = await resilient.complete(MESSAGES, max_tokens=900)
    assert done.profile == "a"


@respx.mock
async def test_what_a_failed_attempt_gives_back_is_what_the_provider_did_not_count() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return ok()

    budget = Budget(usd=1.0)
    keys = [AuthProfile("a", "openai", KEY_A, rate_limit_tpm=10_000)]
    resilient = client([GPT], keys, budgets=[budget], timeout=0.2, wait_for_recovery=False)
    admission = resilient.manager.admission
    respx.post(OPENAI).mock(
        return_value=httpx.Response(429, json={"error": {"message": "slow down"}})
    )
    with pytest.raises(AllAttemptsFailed):
        await resilient.complete(MESSAGES, max_tokens=1_000)
    window = await admission.windows.snapshot("a", keys[0].fingerprint, 10_000, None)
    assert window["tokens_available"] >= 9_990  # a 429 counted nothing: all given back
    assert await admission.ledger.used(budget) == 0
    resilient.manager.enable("a")  # the 429 rested the key; try again
    respx.post(OPENAI).mock(side_effect=slow)
    with pytest.raises(AllAttemptsFailed) as caught:
        await resilient.complete(MESSAGES, max_tokens=1_000)
    cut = [a for a in caught.value.attempts if a.outcome == "timeout"]
    assert cut  # each attempt cut short may have been served: charged its worst case
    window = await admission.windows.snapshot("a", keys[0].fingerprint, 10_000, None)
    assert window["tokens_available"] < 10_000 - 900 * len(cut)
    assert await admission.ledger.used(budget) == pytest.approx(len(cut) * worst(GPT, 1_000))


def test_redis_errors_that_mean_it_cannot_serve_now_count_as_an_outage() -> None:
    from redis import exceptions

    from failover.store.outage import unreachable

    for error in (
        exceptions.ConnectionError("down"),
        exceptions.BusyLoadingError("loading"),
        exceptions.TimeoutError("slow"),
        exceptions.ReadOnlyError("replica"),
        ConnectionRefusedError(),
    ):
        assert unreachable(error), error
    assert not unreachable(exceptions.ResponseError("WRONGTYPE"))
    assert not unreachable(ValueError("a bug"))


@respx.mock
async def test_a_request_cancelled_while_its_session_is_pinned_leaves_nothing_held() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    keys = profiles(a={"max_in_flight": 1}, b={"max_in_flight": 1})
    resilient = client([GPT], keys, session_ttl=60)
    pinning = anyio.Event()

    class SlowPins:
        ttl = 60.0

        async def get(self, session: str) -> None:
            return None

        async def set(self, session: str, pin: object) -> None:
            pinning.set()
            await anyio.sleep(math.inf)

    resilient.manager._sessions = SlowPins()  # type: ignore[assignment]
    async with anyio.create_task_group() as group:
        group.start_soon(partial(resilient.complete, MESSAGES, session="s"))
        await pinning.wait()  # answered, its key's place still held
        assert sum(resilient.manager.admission.in_flight.counts()["profiles"].values()) == 1
        group.cancel_scope.cancel()
    assert resilient.manager.admission.in_flight.counts() == {"profiles": {}, "deployments": {}}
