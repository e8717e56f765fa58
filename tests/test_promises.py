"""Promises the README makes about waiting and retrying, kept under load (issue 18).

A transient failure's retry goes to another key; a request waits for a resting key when its
deadline allows, in the order requests came; a failing request still lets other tasks run;
one outsized Retry-After does not bench a healthy key for a day.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

import failover
from failover import (
    AllAttemptsFailed,
    AttemptContext,
    AuthProfile,
    FailoverConfig,
    FailoverManager,
    NoProfileAvailable,
    ProfileStatus,
    ResilientClient,
    ResilientTransport,
)
from failover.testing import Simulator
from tests.conftest import BOTH_BACKENDS, FakeClock, simulator_in_thread

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
KEY_A = "sk-proj-promise-aaaaaaaaaaaaaaaa1111"
KEY_B = "sk-proj-promise-bbbbbbbbbbbbbbbb2222"
ANT_A = "sk-ant-promise-aaaaaaaaaaaaaaaa3333"
ANT_B = "sk-ant-promise-bbbbbbbbbbbbbbbb4444"
HI = [{"role": "user", "content": "hi"}]


def _key_of(request: httpx.Request) -> str:
    return request.headers.get("x-api-key") or request.headers["authorization"][7:]


def _openai_ok(request: httpx.Request) -> httpx.Response:
    choice = {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    return httpx.Response(200, json={"choices": [choice], "usage": {}})


def _anthropic_ok(request: httpx.Request) -> httpx.Response:
    body = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {}}
    return httpx.Response(200, json=body)


async def _instant(delay: float) -> None:
    await anyio.lowlevel.checkpoint()


def _preferred_key_first(provider: str, first: str, second: str, **kw: Any) -> FailoverManager:
    """Two keys of one provider at one base URL; the first is preferred (priority 0)."""
    return FailoverManager(
        profiles=[
            AuthProfile("first", provider, first, priority=0, **kw),
            AuthProfile("second", provider, second, priority=1, **kw),
        ]
    )


# -- a transient failure's retry goes to another key ------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "url", "keys", "status", "ok"),
    [
        ("openai", "openai/gpt-4o-mini", OPENAI, (KEY_A, KEY_B), 503, _openai_ok),
        ("anthropic", "anthropic/claude-haiku-4-5", ANTHROPIC, (ANT_A, ANT_B), 529, _anthropic_ok),
    ],
)
@respx.mock
async def test_a_retry_after_503_or_529_goes_to_the_other_key_not_the_preferred_one(
    provider: str, model: str, url: str, keys: tuple[str, str], status: int, ok: Any
) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(_key_of(request))
        if calls[-1] == keys[0]:
            return httpx.Response(status, json={"error": {"message": "overloaded"}})
        return ok(request)

    respx.post(url).mock(side_effect=handler)
    manager = _preferred_key_first(provider, *keys)
    async with ResilientClient([model], manager, sleep=_instant) as client:
        result = await client.complete(HI)
    assert result.profile == "second" and calls == list(keys)
    assert [a.outcome for a in result.attempts] == ["overloaded", "ok"]


@pytest.fixture
def sim() -> Any:
    keys = {"openai": [KEY_A, KEY_B], "anthropic": [ANT_A, ANT_B]}
    with simulator_in_thread(keys=keys) as simulator:
        yield simulator


async def test_an_openai_sdk_call_retries_a_503_on_the_other_key(sim: Simulator) -> None:
    httpx2 = pytest.importorskip("httpx2")
    openai = pytest.importorskip("openai")
    sim.script("overloaded", key=KEY_A)
    manager = _preferred_key_first("openai", KEY_A, KEY_B, base_url=sim.base_url("openai"))
    transport = ResilientTransport(manager, provider="openai", sleep=_instant)
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(
            api_key="replaced", base_url=sim.base_url("openai"), max_retries=0, http_client=http
        )
        reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    assert sim.calls(key=KEY_A) == 1 and sim.calls(key=KEY_B) == 1


async def test_an_anthropic_sdk_call_retries_a_529_on_the_other_key(sim: Simulator) -> None:
    httpx2 = pytest.importorskip("httpx2")
    anthropic = pytest.importorskip("anthropic")
    sim.script("overloaded", key=ANT_A)
    base = sim.base_url("anthropic")
    manager = _preferred_key_first("anthropic", ANT_A, ANT_B, base_url=base)
    transport = ResilientTransport(manager, provider="anthropic", sleep=_instant)
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(
            api_key="replaced", base_url=base, max_retries=0, http_client=http
        )
        message = await sdk.messages.create(
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=HI,  # type: ignore[arg-type]
        )
    assert message.content
    assert sim.calls(key=ANT_A) == 1 and sim.calls(key=ANT_B) == 1


@respx.mock
async def test_when_every_key_failed_the_retry_goes_to_the_one_that_failed_longest_ago() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(_key_of(request))
        if len(calls) <= 2:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        return _openai_ok(request)

    respx.post(OPENAI).mock(side_effect=handler)
    manager = _preferred_key_first("openai", KEY_A, KEY_B)
    async with ResilientClient(["openai/gpt-4o-mini"], manager, sleep=_instant) as client:
        result = await client.complete(HI)
    assert calls == [KEY_A, KEY_B, KEY_A] and result.profile == "first"


# -- waiting for a resting key is the default when the deadline allows -------------------


def _resting_client(
    clock: FakeClock, rest: float, **options: Any
) -> tuple[ResilientClient, FailoverManager]:
    manager = FailoverManager(clock=clock, profiles=[AuthProfile("only", "openai", KEY_A)])
    manager.mark_failure("only", "429", is_rate_limit=True, retry_after=rest)
    return ResilientClient(["openai/gpt-4o-mini"], manager, **options), manager


async def test_a_burst_on_resting_keys_is_served_once_they_recover_in_arrival_order(
    clock: FakeClock,
) -> None:
    """Ten requests find the only key resting for 2 s; with a deadline they all wait, and
    go on in the order they came, even when the later ones wake first."""
    arrivals = iter(range(10))
    all_waiting = anyio.Event()

    async def sleep(delay: float) -> None:
        until, arrival = clock.now + delay, next(arrivals)
        await all_waiting.wait()
        await anyio.sleep((10 - arrival) * 0.002)  # the first to arrive wakes last
        clock.now = max(clock.now, until)

    client, _ = _resting_client(clock, 2.0, deadline=10, sleep=sleep)
    started: list[int] = []

    def request(number: int) -> Any:
        async def attempt(ctx: AttemptContext) -> int:
            started.append(number)
            await anyio.lowlevel.checkpoint()
            return number

        return attempt

    served: list[int] = []

    async def one(number: int) -> None:
        served.append(await client.call(request(number)))

    async with client, anyio.create_task_group() as group:
        for number in range(10):
            group.start_soon(one, number)
            await anyio.lowlevel.checkpoint()  # each starts waiting before the next comes
        all_waiting.set()
    assert started == list(range(10)) and sorted(served) == list(range(10))


async def test_without_a_deadline_a_short_rest_is_waited_for_and_a_long_one_fails_at_once(
    clock: FakeClock,
) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        clock.advance(delay)

    async def ok(ctx: AttemptContext) -> str:
        return "served"

    short, _ = _resting_client(clock, 2.0, sleep=sleep)
    assert await short.call(ok) == "served" and waits == [pytest.approx(2.0)]
    waits.clear()
    default_cap = FailoverConfig().max_recovery_wait
    long, _ = _resting_client(clock, default_cap + 5, sleep=sleep)
    with pytest.raises(NoProfileAvailable) as failed:
        await long.call(ok)
    assert waits == [] and failed.value.retry_after == pytest.approx(default_cap + 5)


async def test_wait_for_recovery_false_fails_at_once(clock: FakeClock) -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    async def ok(ctx: AttemptContext) -> str:
        return "served"

    client, _ = _resting_client(clock, 1.0, deadline=30, sleep=sleep, wait_for_recovery=False)
    with pytest.raises(NoProfileAvailable) as failed:
        await client.call(ok)
    assert waits == [] and failed.value.retry_after == pytest.approx(1.0)


async def test_a_wait_that_would_pass_the_deadline_is_not_made(clock: FakeClock) -> None:
    async def sleep(delay: float) -> None:
        raise AssertionError("no wait should be made")

    async def ok(ctx: AttemptContext) -> str:
        return "served"

    client, _ = _resting_client(clock, 5.0, deadline=2, sleep=sleep)
    with pytest.raises(AllAttemptsFailed):
        await client.call(ok)


async def test_a_cancelled_waiter_leaves_the_line_and_the_next_goes_on(clock: FakeClock) -> None:
    async def sleep(delay: float) -> None:
        until = clock.now + delay
        await anyio.sleep(0.01)
        clock.now = max(clock.now, until)

    client, _ = _resting_client(clock, 1.0, deadline=10, sleep=sleep)

    async def ok(ctx: AttemptContext) -> str:
        return "served"

    with anyio.move_on_after(0.001):
        await client.call(ok)  # cancelled while first in line
    with anyio.fail_after(5):  # a line stuck behind the cancelled waiter would hang here
        assert await client.call(ok) == "served"


# -- a failing request yields to the event loop ------------------------------------------


async def test_failing_requests_in_a_loop_do_not_starve_other_tasks(clock: FakeClock) -> None:
    client, _ = _resting_client(clock, 600.0, wait_for_recovery=False)
    ran = 0
    done = anyio.Event()

    async def other_task() -> None:
        nonlocal ran
        while not done.is_set():
            ran += 1
            await anyio.lowlevel.checkpoint()

    async def ok(ctx: AttemptContext) -> str:
        return "never"

    async with anyio.create_task_group() as group:
        group.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        ran = 0
        for _ in range(2000):
            with pytest.raises(NoProfileAvailable):
                await client.call(ok)
        done.set()
    assert ran >= 500


# -- one outsized Retry-After does not bench a healthy key for a day ---------------------


@respx.mock
async def test_a_huge_retry_after_on_a_healthy_key_is_capped_at_an_hour(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(
        return_value=httpx.Response(
            429, json={"error": {"message": "slow down"}}, headers={"retry-after": "99999999"}
        )
    )
    manager = FailoverManager(clock=clock, profiles=[AuthProfile("a", "openai", KEY_A)])
    cooldowns: list[Any] = []
    client = ResilientClient(["openai/gpt-4o-mini"], manager, sleep=_instant)
    client.on_cooldown(cooldowns.append)
    async with client:
        with pytest.raises(AllAttemptsFailed):
            await client.complete(HI)
        hour = manager.config.max_first_wait
        profile = manager.get_profile("a")
        assert profile is not None
        assert profile.cooldown_until - clock.now == pytest.approx(hour)
        assert cooldowns[0].capped_from == 99999999
        # a key that keeps failing gets the provider's word, up to max_provider_wait
        clock.advance(hour + 1)
        with pytest.raises(AllAttemptsFailed):
            await client.complete(HI)
        day = manager.config.max_provider_wait
        assert profile.cooldown_until - clock.now == pytest.approx(day)


@respx.mock
async def test_a_quota_error_keeps_its_long_disable(clock: FakeClock) -> None:
    body = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
    respx.post(OPENAI).mock(return_value=httpx.Response(429, json=body))
    manager = FailoverManager(clock=clock, profiles=[AuthProfile("a", "openai", KEY_A)])
    async with ResilientClient(["openai/gpt-4o-mini"], manager, sleep=_instant) as client:
        with pytest.raises(AllAttemptsFailed):
            await client.complete(HI)
    profile = manager.get_profile("a")
    assert profile is not None and profile.status is ProfileStatus.DISABLED
    assert profile.cooldown_until - clock.now > manager.config.max_first_wait


def test_the_new_limits_are_validated() -> None:
    with pytest.raises(failover.ConfigError, match="max_recovery_wait"):
        FailoverConfig(max_recovery_wait=-1)
    with pytest.raises(failover.ConfigError, match="max_first_wait"):
        FailoverConfig(max_first_wait=float("nan"))


@respx.mock
async def test_a_model_resting_after_a_transient_failure_is_waited_for_within_the_deadline(
    clock: FakeClock,
) -> None:
    """No backoff budget left (``max_retries=0``), the only model resting after a 503 for 2 s:
    with a deadline of 10 s the client waits for it rather than fail."""
    replies = iter([httpx.Response(503, json={"error": {"message": "overloaded"}})])
    respx.post(OPENAI).mock(side_effect=lambda request: next(replies, _openai_ok(request)))
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        clock.advance(delay)

    config = FailoverConfig(
        max_retries=0, cooldown_on_error=2.0, breaker_min_requests=1, breaker_failure_rate=1.0
    )
    manager = FailoverManager(config, clock=clock, profiles=[AuthProfile("a", "openai", KEY_A)])
    async with ResilientClient(
        ["openai/gpt-4o-mini"], manager, deadline=10, sleep=sleep
    ) as client:
        result = await client.complete(HI)
    assert [a.outcome for a in result.attempts] == ["overloaded", "ok"]
    assert waits == [pytest.approx(2.0)]
