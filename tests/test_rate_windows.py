"""Token-rate windows: each key's tokens and requests per minute, as providers count them.

Every behaviour is checked on the in-process windows and on the Redis ones (a real
redis-server), with an injected clock: buckets start full, refill continuously at
limit / 60 per second, a refused take takes nothing and says how long to wait, estimates
are trued up from usage, refunds give everything back, and the provider's remaining
figures only ever lower a bucket.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.rate_windows import RateTicket, RateWindows
from failover.store.redis_rates import RedisRateWindows, rate_key
from tests.conftest import FakeClock
from tests.redis_server import RedisServer, free_port

T = TypeVar("T")
ID = "fp0123456789abcd@e0"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def windows(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[RateWindows | RedisRateWindows]:
    if request.param == "local":
        yield RateWindows(clock=clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.from_url(server.url, decode_responses=True)
    try:
        yield RedisRateWindows(client, f"t{uuid.uuid4().hex[:8]}", clock=clock)
    finally:
        await client.aclose()


async def held(
    windows: RateWindows | RedisRateWindows, tpm: int | None, rpm: int | None
) -> tuple[Any, Any]:
    snap = await windows.snapshot("a", ID, tpm, rpm)
    return snap["tokens_available"], snap["requests_available"]


def ticket(result: RateTicket | float) -> RateTicket:
    assert isinstance(result, RateTicket), f"refused: wait {result}"
    return result


async def test_a_new_key_starts_full_and_the_next_request_waits_for_the_refill(
    windows: RateWindows | RedisRateWindows, clock: FakeClock
) -> None:
    for _ in range(3):
        ticket(await windows.take("a", ID, None, 3, 0))
    assert await windows.take("a", ID, None, 3, 0) == pytest.approx(20.0)  # 1 request at 3/min
    clock.advance(19.9)
    assert await windows.take("a", ID, None, 3, 0) == pytest.approx(0.1)
    clock.advance(0.1)
    ticket(await windows.take("a", ID, None, 3, 0))


async def test_tokens_refill_continuously_at_the_limit_per_minute(
    windows: RateWindows | RedisRateWindows, clock: FakeClock
) -> None:
    ticket(await windows.take("a", ID, 600, None, 600))  # 10 tokens a second
    assert await held(windows, 600, None) == (0, None)
    assert await windows.take("a", ID, 600, None, 100) == pytest.approx(10.0)
    clock.advance(5)
    assert await held(windows, 600, None) == (50, None)
    assert await windows.take("a", ID, 600, None, 100) == pytest.approx(5.0)
    clock.advance(5)
    ticket(await windows.take("a", ID, 600, None, 100))
    clock.advance(3600)
    assert await held(windows, 600, None) == (600, None)  # never above the limit


async def test_a_refused_take_takes_nothing_and_waits_for_the_slower_of_both_limits(
    windows: RateWindows | RedisRateWindows, clock: FakeClock
) -> None:
    ticket(await windows.take("a", ID, 1200, 2, 1000))  # 20 tokens/s, 1 request per 30 s
    ticket(await windows.take("a", ID, 1200, 2, 100))
    assert await held(windows, 1200, 2) == (100, 0)
    # Tokens would fit in 5 s (100 more), the request needs 30 s: wait for both.
    assert await windows.take("a", ID, 1200, 2, 200) == pytest.approx(30.0)
    assert await held(windows, 1200, 2) == (100, 0)
    clock.advance(30)
    ticket(await windows.take("a", ID, 1200, 2, 200))
    assert await held(windows, 1200, 2) == (500, 0)
    # 30 s on, the request is back but 1200 tokens lack 100 (1100 held): 5 s at 20/s.
    clock.advance(30)
    assert await windows.take("a", ID, 1200, 2, 1200) == pytest.approx(5.0)


async def test_a_request_larger_than_the_whole_window_goes_when_the_bucket_is_full(
    windows: RateWindows | RedisRateWindows, clock: FakeClock
) -> None:
    ticket(await windows.take("a", ID, 100, None, 1))
    # 250 tokens could never fit in 100: it waits until the bucket is full, not for ever.
    assert await windows.take("a", ID, 100, None, 250) == pytest.approx(0.6)
    clock.advance(0.6)
    big = ticket(await windows.take("a", ID, 100, None, 250))
    assert big.tokens == 250
    assert await held(windows, 100, None) == (0, None)  # emptied, never below empty
    assert await windows.take("a", ID, 100, None, 10) == pytest.approx(6.0)


async def test_correcting_gives_back_or_takes_more_and_stays_within_the_bucket(
    windows: RateWindows | RedisRateWindows, clock: FakeClock
) -> None:
    first = ticket(await windows.take("a", ID, 1000, 10, 400))
    await windows.correct(first, 150)  # used less than estimated: 250 back
    assert first.tokens == 150
    assert await held(windows, 1000, 10) == (850, 9)
    second = ticket(await windows.take("a", ID, 1000, 10, 300))
    await windows.correct(second, 1000)  # used more: 700 more of 550, never below empty
    assert await held(windows, 1000, 10) == (0, 8)
    clock.advance(6)  # 100 tokens, 1 request back
    await windows.correct(first, 0)  # a later count: 150 more back, not 400
    assert await held(windows, 1000, 10) == (250, 9)
    await windows.correct(second, 0)  # 1000 back, capped at the limit
    assert await held(windows, 1000, 10) == (1000, 9)
    with pytest.raises(ValueError, match="tokens"):
        await windows.correct(second, -1)


async def test_a_refund_gives_back_the_tokens_and_the_request_once(
    windows: RateWindows | RedisRateWindows,
) -> None:
    first = ticket(await windows.take("a", ID, 1000, 2, 300))
    second = ticket(await windows.take("a", ID, 1000, 2, 300))
    assert isinstance(await windows.take("a", ID, 1000, 2, 1), float)
    await windows.refund(first)
    assert await held(windows, 1000, 2) == (700, 1)
    await windows.refund(first)  # a second refund gives nothing more
    await windows.correct(first, 0)  # nor does a correction after the refund
    assert await held(windows, 1000, 2) == (700, 1)
    await windows.correct(second, 100)
    await windows.refund(second)  # gives back what the ticket holds now
    assert await held(windows, 1000, 2) == (1000, 2)


async def test_the_providers_remaining_figures_lower_a_bucket_but_never_raise_it(
    windows: RateWindows | RedisRateWindows,
) -> None:
    ticket(await windows.take("a", ID, 1000, 100, 100))
    await windows.observe("a", ID, 1000, 100, remaining_tokens=400, remaining_requests=None)
    assert await held(windows, 1000, 100) == (400, 99)
    await windows.observe("a", ID, 1000, 100, remaining_tokens=900, remaining_requests=5)
    assert await held(windows, 1000, 100) == (400, 5)
    await windows.observe("a", ID, 1000, 100, remaining_tokens=-3, remaining_requests=None)
    assert await held(windows, 1000, 100) == (0, 5)
    assert await windows.take("a", ID, 1000, 100, 100) == pytest.approx(6.0)


async def test_keys_never_share_a_bucket_by_name_or_identity(
    windows: RateWindows | RedisRateWindows,
) -> None:
    ticket(await windows.take("a", ID, None, 1, 0))
    assert isinstance(await windows.take("a", ID, None, 1, 0), float)
    ticket(await windows.take("a", "another-key@e0", None, 1, 0))  # same name, other key
    ticket(await windows.take("b", ID, None, 1, 0))


async def test_without_limits_everything_goes_and_nothing_is_counted(
    windows: RateWindows | RedisRateWindows,
) -> None:
    for _ in range(50):
        ticket(await windows.take("a", ID, None, None, 10**9))
    assert await windows.snapshot("a", ID, None, None) == {
        "tokens_available": None,
        "requests_available": None,
        "capacity": {"tokens": None, "requests": None},
    }
    ticket(await windows.take("a", ID, 500, None, 400))  # only tokens limited: no request count
    assert await windows.snapshot("a", ID, 500, None) == {
        "tokens_available": 100,
        "requests_available": None,
        "capacity": {"tokens": 500, "requests": None},
    }


@pytest.mark.parametrize(
    ("tpm", "rpm", "tokens", "message"),
    [(0, None, 1, "tpm"), (None, -5, 1, "rpm"), (100, 10, -1, "tokens")],
)
async def test_limits_must_be_positive_and_tokens_not_negative(
    windows: RateWindows | RedisRateWindows,
    tpm: int | None,
    rpm: int | None,
    tokens: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        await windows.take("a", ID, tpm, rpm, tokens)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that must finish without suspending (the local windows never do)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the local windows suspended")


def test_threads_taking_at_once_never_get_more_than_the_limit(clock: FakeClock) -> None:
    windows = RateWindows(clock=clock)  # the clock stands still: no refill
    granted: list[RateTicket] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(400):
            result = run_now(windows.take("a", ID, 100_000, 1000, 7))
            if isinstance(result, RateTicket):
                granted.append(result)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(granted) == 1000
    assert run_now(windows.snapshot("a", ID, 100_000, 1000))["tokens_available"] == 93_000


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 1000)),
        st.tuples(st.just("correct"), st.floats(0, 1)),  # a share of what the ticket holds
        st.tuples(st.just("refund"), st.just(0)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.01, 0.3, 2.0, 15.0, 70.0])),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, tpm=st.sampled_from([1000, 5000]), rpm=st.sampled_from([3, 20]))
def test_what_is_held_never_exceeds_the_limits_plus_their_refill(
    ops: list[tuple[str, Any]], tpm: int, rpm: int
) -> None:
    """However takes, corrections (each at most what the ticket holds) and refunds interleave, the
    tickets hold no more than a full bucket plus what refilled since: the provider's own
    window never sees more (a request within tpm is never sent into a certain 429)."""
    clock = FakeClock()
    windows = RateWindows(clock=clock)
    tickets: list[RateTicket] = []
    elapsed = 0.0
    for number, (op, value) in enumerate(ops):
        if op == "take":
            result = run_now(windows.take("a", ID, tpm, rpm, min(value, tpm)))
            if isinstance(result, RateTicket):
                tickets.append(result)
            else:
                assert result > 0
        elif op == "correct" and tickets:
            held = tickets[number % len(tickets)]
            run_now(windows.correct(held, int(held.tokens * value)))
        elif op == "refund" and tickets:
            run_now(windows.refund(tickets[number % len(tickets)]))
        elif op == "advance":
            clock.advance(value)
            elapsed += value
        live = [held for held in tickets if not held.refunded]
        slack = 1e-6 * (number + 1)
        assert sum(held.tokens for held in live) <= tpm + elapsed * tpm / 60 + slack
        assert len(live) <= rpm + elapsed * rpm / 60 + slack
        snap = run_now(windows.snapshot("a", ID, tpm, rpm))
        assert 0 <= snap["tokens_available"] <= tpm and 0 <= snap["requests_available"] <= rpm


# --- Redis: shared by processes -------------------------------------------------------------


async def test_two_processes_share_one_bucket_and_never_overspend_it(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    clients = [aioredis.from_url(redis_server.url, decode_responses=True) for _ in range(2)]
    try:
        first, second = (RedisRateWindows(client, prefix, clock=clock) for client in clients)
        results = await asyncio.gather(
            *(w.take("a", ID, 10_000, 50, 100) for _ in range(60) for w in (first, second))
        )
        tickets = [r for r in results if isinstance(r, RateTicket)]
        assert len(tickets) == 50
        assert await second.snapshot("a", ID, 10_000, 50) == await first.snapshot(
            "a", ID, 10_000, 50
        )
        assert (await first.snapshot("a", ID, 10_000, 50))["tokens_available"] == 5_000
        await second.refund(tickets[0])  # a ticket taken by one is given back for everyone
        assert (await first.snapshot("a", ID, 10_000, 50))["requests_available"] == 1
        other = RedisRateWindows(clients[0], f"{prefix}x", clock=clock)  # another prefix
        ticket(await other.take("a", ID, 10_000, 50, 100))
    finally:
        for client in clients:
            await client.aclose()


async def test_a_process_whose_clock_lags_never_refills_twice(
    redis_client: aioredis.Redis,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    ahead, behind = FakeClock(1000.0), FakeClock(990.0)
    first = RedisRateWindows(redis_client, prefix, clock=ahead)
    second = RedisRateWindows(redis_client, prefix, clock=behind)
    for _ in range(60):  # one request a second, all taken at 1000
        ticket(await first.take("a", ID, None, 60, 0))
    assert await second.take("a", ID, None, 60, 0) == pytest.approx(1.0)
    behind.advance(5)  # still behind the last refill: nothing comes back
    assert await second.take("a", ID, None, 60, 0) == pytest.approx(1.0)
    ahead.advance(1)  # one second after the last refill: one request
    ticket(await first.take("a", ID, None, 60, 0))
    assert await second.take("a", ID, None, 60, 0) == pytest.approx(1.0)


async def test_redis_holds_only_numbers_under_the_prefix_and_forgets_an_idle_bucket(
    redis_client: aioredis.Redis, clock: FakeClock
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    windows = RedisRateWindows(redis_client, prefix, clock=clock)
    ticket(await windows.take("a", ID, 1000, 10, 100))
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
    assert keys == [rate_key(prefix, "a", ID)]
    record = await redis_client.hgetall(keys[0])
    assert sorted(record) == ["at", "r", "t"]
    assert {field: float(value) for field, value in record.items()} == {
        "t": 900.0,
        "r": 9.0,
        "at": 1000.0,
    }
    assert 0 < await redis_client.pttl(keys[0]) <= 120_000


async def test_the_redis_windows_agree_with_the_local_ones_step_for_step(
    redis_client: aioredis.Redis,
) -> None:
    for seed in range(4):
        rng = random.Random(seed)
        local_clock, shared_clock = FakeClock(), FakeClock()
        local = RateWindows(clock=local_clock)
        shared = RedisRateWindows(redis_client, f"t{uuid.uuid4().hex[:8]}", clock=shared_clock)
        tpm, rpm = rng.choice([None, 500, 3000]), rng.choice([None, 5, 40])
        pairs: list[tuple[RateTicket, RateTicket]] = []
        for step in range(150):
            op = rng.choice(["take", "take", "take", "correct", "refund", "observe", "advance"])
            if op == "take":
                tokens = rng.randint(0, 800)
                one, two = (
                    await local.take("a", ID, tpm, rpm, tokens),
                    await shared.take("a", ID, tpm, rpm, tokens),
                )
                if isinstance(one, RateTicket) and isinstance(two, RateTicket):
                    pairs.append((one, two))
                else:
                    assert one == pytest.approx(two), (seed, step)
            elif op in ("correct", "refund") and pairs:
                one, two = rng.choice(pairs)
                if op == "refund":
                    await local.refund(one)
                    await shared.refund(two)
                else:
                    actual = rng.randint(0, 900)
                    await local.correct(one, actual)
                    await shared.correct(two, actual)
            elif op == "observe":
                tokens_left = rng.choice([None, rng.randint(0, 3000)])
                requests_left = rng.choice([None, rng.randint(0, 40)])
                for w in (local, shared):
                    await w.observe(
                        "a",
                        ID,
                        tpm,
                        rpm,
                        remaining_tokens=tokens_left,
                        remaining_requests=requests_left,
                    )
            else:
                seconds = rng.choice([0.01, 0.5, 3.0, 20.0])
                local_clock.advance(seconds)
                shared_clock.advance(seconds)
            assert await local.snapshot("a", ID, tpm, rpm) == await shared.snapshot(
                "a", ID, tpm, rpm
            ), (seed, step, op)


async def test_with_redis_unreachable_the_windows_go_on_in_this_process(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, decode_responses=True
    )
    try:
        windows = RedisRateWindows(client, "down", clock=clock)
        with caplog.at_level(logging.WARNING, logger="failover.store"):
            first = ticket(await windows.take("a", ID, None, 2, 0))
            ticket(await windows.take("a", ID, None, 2, 0))
            assert await windows.take("a", ID, None, 2, 0) == pytest.approx(30.0)
            await windows.refund(first)  # given back to the windows that issued it
            ticket(await windows.take("a", ID, None, 2, 0))
        assert windows.outage
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
        assert (await windows.snapshot("a", ID, None, 2))["requests_available"] == 0
    finally:
        await client.aclose()


async def test_a_redis_that_comes_back_is_used_again_a_retry_interval_later(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()
    client = aioredis.from_url(server.url, socket_connect_timeout=0.5, decode_responses=True)
    try:
        windows = RedisRateWindows(client, "back", clock=clock)
        ticket(await windows.take("a", ID, None, 1, 0))  # Redis not started: this process
        assert windows.outage
        server.start()
        # Within a second of the failure, Redis is not tried again: this process's bucket.
        assert await windows.take("a", ID, None, 1, 0) == pytest.approx(60.0)
        clock.advance(1.0)
        ticket(await windows.take("a", ID, None, 1, 0))  # Redis's own bucket, full
        assert not windows.outage
        assert await windows.take("a", ID, None, 1, 0) == pytest.approx(60.0)
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
        server.kill()
