"""Spend budgets: Budget's windows and scopes, and both ledgers (in process and on Redis)."""

from __future__ import annotations

import asyncio
import calendar
import math
import multiprocessing
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.budgets import EPSILON, Budget, BudgetLedger, Ledger, Refusal, Reservation
from failover.errors import ConfigError
from failover.store.redis_budgets import RedisBudgetLedger, budget_key
from tests.redis_server import RedisServer, free_port


def utc(*parts: int) -> float:
    """Epoch seconds of a UTC date and time given as (year, month, day, hour, min, sec)."""
    return float(calendar.timegm((*parts, *(0,) * (6 - len(parts)))))  # type: ignore[arg-type]


class WallClock:
    """An epoch-seconds clock that only moves when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall() -> WallClock:
    return WallClock(utc(2026, 12, 7, 10, 30))


@pytest.fixture(params=["memory", "redis"])
async def new_ledger(
    request: pytest.FixtureRequest, redis_server: RedisServer, wall: WallClock
) -> AsyncIterator[Callable[[], Ledger]]:
    """Makes ledgers that share what they count (two processes, or one restarted)."""
    if request.param == "memory":
        shared = BudgetLedger(clock=wall)
        yield lambda: shared
        return
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    prefix = f"b{uuid.uuid4().hex[:8]}"
    yield lambda: RedisBudgetLedger(client, prefix, clock=wall)
    await client.aclose()


@pytest.fixture
def ledger(new_ledger: Callable[[], Ledger]) -> Ledger:
    return new_ledger()


def held(result: Reservation | Refusal) -> Reservation:
    assert isinstance(result, Reservation), f"refused: {result}"
    return result


# --- Budget: validation, identity, scopes -------------------------------------------------


@pytest.mark.parametrize("usd", [0, -1, math.nan, math.inf, True, "5", None])
def test_a_budget_needs_a_positive_finite_usd_and_the_error_names_it(usd: Any) -> None:
    with pytest.raises(ConfigError, match=r"usd.*" + repr(usd).replace("(", r"\(")):
        Budget(usd=usd)


@pytest.mark.parametrize("per", ["week", "Day", "", 0, -60, math.inf, math.nan, True, None])
def test_a_budget_window_is_a_calendar_name_or_positive_seconds(per: Any) -> None:
    with pytest.raises(ConfigError, match=r"per"):
        Budget(usd=1, per=per)


@pytest.mark.parametrize(
    "scope",
    ["", "profile:", "profile:  ", "team:x", "client:x", "model:gpt-4o", "model:/gpt", "tag", 7],
)
def test_a_budget_scope_must_name_what_it_limits(scope: Any) -> None:
    with pytest.raises(ConfigError, match=r"scope"):
        Budget(usd=1, scope=scope)


def test_kind_and_target_split_the_scope() -> None:
    assert (Budget(1).kind, Budget(1).target) == ("client", None)
    budget = Budget(1, scope="model:openai/gpt-4o-mini")
    assert (budget.kind, budget.target) == ("model", "openai/gpt-4o-mini")
    assert Budget(1, scope="tag:tenant:eu").target == "tenant:eu"


def test_the_identity_is_scope_and_window_not_the_limit() -> None:
    assert Budget(50, "day", "profile:a").id == Budget(80, "day", "profile:a").id
    assert Budget(1, 60).id == Budget(1, 60.0).id
    assert Budget(1, 60) == Budget(1, 60.0)
    ids = {
        Budget(1, per, scope).id for per in ("hour", "day", 3600) for scope in ("client", "tag:a")
    }
    assert len(ids) == 6


def test_a_budget_reads_as_a_sentence() -> None:
    assert str(Budget(50, "day", "profile:openai-1")) == "$50.00 per day for profile:openai-1"
    assert str(Budget(1234.5, "month")) == "$1,234.50 per month for client"
    assert str(Budget(0.005, 90, "tag:t")) == "$0.005 per 90 s for tag:t"


def test_which_attempts_a_budget_applies_to() -> None:
    attempt = {"profile": "a", "model": "openai/gpt-4o", "groups": ("fast",), "tags": ("t1",)}
    assert Budget(1).applies(**attempt)  # type: ignore[arg-type]
    applies = {
        "profile:a": True,
        "profile:b": False,
        "model:openai/gpt-4o": True,
        "model:openai/gpt-4o-mini": False,
        "group:fast": True,
        "group:slow": False,
        "tag:t1": True,
        "tag:t2": False,
    }
    for scope, expected in applies.items():
        assert Budget(1, scope=scope).applies(**attempt) is expected, scope  # type: ignore[arg-type]


def test_importing_budgets_does_not_import_redis() -> None:
    code = "import sys, failover.budgets; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- windows ------------------------------------------------------------------------------


def test_hour_windows_roll_over_on_the_utc_hour() -> None:
    budget = Budget(1, "hour")
    before = utc(2026, 12, 7, 6, 59, 59) + 0.999
    assert budget.window(before) == ("2026-12-07T06", utc(2026, 12, 7, 6), utc(2026, 12, 7, 7))
    assert budget.window(utc(2026, 12, 7, 7))[0] == "2026-12-07T07"


def test_day_windows_roll_over_at_utc_midnight_into_the_new_year() -> None:
    budget = Budget(1, "day")
    assert budget.window(utc(2026, 12, 31, 23, 59, 59)) == (
        "2026-12-31",
        utc(2026, 12, 31),
        utc(2027, 1, 1),
    )
    assert budget.window(utc(2027, 1, 1))[0] == "2027-01-01"


def test_month_windows_follow_the_calendar() -> None:
    budget = Budget(1, "month")
    assert budget.window(utc(2026, 12, 15, 12)) == ("2026-12", utc(2026, 12, 1), utc(2027, 1, 1))
    assert budget.window(utc(2027, 1, 1)) == ("2027-01", utc(2027, 1, 1), utc(2027, 2, 1))
    _, start, end = budget.window(utc(2028, 2, 10))  # a leap year's February
    assert end - start == 29 * 86400
    _, start, end = budget.window(utc(2027, 2, 28, 23, 59, 59))
    assert end == utc(2027, 3, 1) and end - start == 28 * 86400


def test_second_windows_are_aligned_to_the_epoch() -> None:
    budget = Budget(1, per=60)
    assert budget.window(1000.0) == ("16", 960.0, 1020.0)
    assert budget.window(1020.0) == ("17", 1020.0, 1080.0)
    assert budget.window(1019.999)[0] == "16"


@settings(max_examples=300, deadline=None)
@given(
    now=st.floats(0, 4e9, allow_nan=False),
    per=st.one_of(
        st.sampled_from(["hour", "day", "month"]), st.floats(0.5, 1e7), st.integers(1, 10**6)
    ),
)
def test_now_always_falls_inside_its_window(now: float, per: str | float) -> None:
    window, start, end = Budget(1, per=per).window(now)
    assert start <= now < end
    if not isinstance(per, str):
        assert end - start == pytest.approx(per, rel=1e-6)
    # the same window id from anywhere inside it
    assert Budget(1, per=per).window(start)[0] == window


# --- the ledgers: arithmetic ----------------------------------------------------------------


async def test_reserve_holds_settle_replaces_and_release_gives_back(ledger: Ledger) -> None:
    day = Budget(1.0, "day")
    first = held(await ledger.reserve([day], 0.30))
    second = held(await ledger.reserve([day], 0.20))
    assert await ledger.used(day) == pytest.approx(0.50)
    await ledger.settle(first, 0.05)
    assert await ledger.used(day) == pytest.approx(0.25)
    await ledger.release(second)
    assert await ledger.used(day) == pytest.approx(0.05)
    assert first.done and second.done


async def test_a_second_settle_or_release_changes_nothing(ledger: Ledger) -> None:
    day = Budget(1.0)
    reservation = held(await ledger.reserve([day], 0.40))
    await ledger.settle(reservation, 0.10)
    await ledger.settle(reservation, 0.0)
    await ledger.release(reservation)
    assert await ledger.used(day) == pytest.approx(0.10)


async def test_a_reservation_that_would_overrun_is_refused_naming_the_budget(
    ledger: Ledger, wall: WallClock
) -> None:
    day = Budget(1.0, "day", "tag:tenant-a")
    held(await ledger.reserve([day], 0.70))
    refusal = await ledger.reserve([day], 0.31)
    assert isinstance(refusal, Refusal)
    assert refusal.budget == day
    assert refusal.spent == pytest.approx(0.70)  # in flight counts
    assert refusal.amount == pytest.approx(0.31)
    assert refusal.resets_at == utc(2026, 12, 8)
    assert await ledger.used(day) == pytest.approx(0.70)  # the refusal held nothing
    held(await ledger.reserve([day], 0.30))  # exactly up to the limit fits


async def test_reservations_are_all_or_nothing_across_budgets(ledger: Ledger) -> None:
    client = Budget(10.0, "day")
    tenant = Budget(1.0, "hour", "tag:t")
    model = Budget(5.0, "month", "model:openai/gpt-4o")
    held(await ledger.reserve([tenant], 0.9))
    refusal = await ledger.reserve([client, tenant, model], 0.2)
    assert isinstance(refusal, Refusal) and refusal.budget == tenant
    assert await ledger.used(client) == 0 and await ledger.used(model) == 0
    reservation = held(await ledger.reserve([client, tenant, model], 0.1))
    assert [await ledger.used(b) for b in (client, tenant, model)] == pytest.approx([0.1, 1.0, 0.1])
    await ledger.settle(reservation, 0.04)
    assert [await ledger.used(b) for b in (client, tenant, model)] == pytest.approx(
        [0.04, 0.94, 0.04]
    )


async def test_the_first_refusing_budget_in_the_order_given_is_named(ledger: Ledger) -> None:
    small, smaller = Budget(1.0, "day", "tag:a"), Budget(0.5, "day", "tag:b")
    refusal = await ledger.reserve([small, smaller], 2.0)
    assert isinstance(refusal, Refusal) and refusal.budget == small
    refusal = await ledger.reserve([smaller, small], 2.0)
    assert isinstance(refusal, Refusal) and refusal.budget == smaller


async def test_a_zero_reservation_always_passes_and_a_real_cost_still_counts(
    ledger: Ledger,
) -> None:
    day = Budget(1.0)
    full = held(await ledger.reserve([day], 1.0))
    unpriced = held(await ledger.reserve([day], 0))
    await ledger.settle(full, 1.0)
    await ledger.settle(unpriced, 0.25)  # priced after all: charged
    assert await ledger.used(day) == pytest.approx(1.25)
    assert isinstance(await ledger.reserve([day], 0.01), Refusal)


async def test_a_reply_costing_more_than_reserved_is_charged_in_full(ledger: Ledger) -> None:
    day = Budget(1.0)
    reservation = held(await ledger.reserve([day], 0.5))
    await ledger.settle(reservation, 0.8)
    assert await ledger.used(day) == pytest.approx(0.8)
    assert isinstance(await ledger.reserve([day], 0.3), Refusal)


@pytest.mark.parametrize("amount", [-0.01, math.nan, math.inf, -math.inf])
async def test_negative_nan_or_infinite_dollars_are_refused_loudly(
    ledger: Ledger, amount: float
) -> None:
    with pytest.raises(ValueError, match="amount"):
        await ledger.reserve([Budget(1.0)], amount)
    reservation = held(await ledger.reserve([Budget(1.0)], 0.5))
    with pytest.raises(ValueError, match="actual"):
        await ledger.settle(reservation, amount)
    assert await ledger.used(Budget(1.0)) == pytest.approx(0.5)


async def test_the_same_budget_twice_counts_once_against_the_stricter_limit(
    ledger: Ledger,
) -> None:
    loose, strict = Budget(5.0, "day"), Budget(1.0, "day")
    refusal = await ledger.reserve([loose, strict, loose], 2.0)
    assert isinstance(refusal, Refusal) and refusal.budget == strict
    reservation = held(await ledger.reserve([loose, loose], 0.5))
    assert reservation.budgets == (loose,)
    assert await ledger.used(loose) == pytest.approx(0.5)


async def test_raising_a_limit_keeps_what_was_spent_in_the_window(ledger: Ledger) -> None:
    await ledger.settle(held(await ledger.reserve([Budget(1.0)], 0.9)), 0.9)
    assert await ledger.used(Budget(3.0)) == pytest.approx(0.9)
    assert isinstance(await ledger.reserve([Budget(1.0)], 0.2), Refusal)
    held(await ledger.reserve([Budget(3.0)], 0.2))


async def test_scopes_and_windows_count_apart(ledger: Ledger) -> None:
    await ledger.settle(held(await ledger.reserve([Budget(1.0, scope="tag:a")], 0.4)), 0.4)
    assert await ledger.used(Budget(1.0, scope="tag:b")) == 0
    assert await ledger.used(Budget(1.0, per="hour", scope="tag:a")) == 0
    assert await ledger.used(Budget(1.0, scope="tag:a")) == pytest.approx(0.4)


async def test_a_new_window_starts_from_nothing(ledger: Ledger, wall: WallClock) -> None:
    wall.now = utc(2026, 12, 31, 23, 59)
    month = Budget(1.0, "month")
    await ledger.settle(held(await ledger.reserve([month], 1.0)), 1.0)
    assert isinstance(await ledger.reserve([month], 0.1), Refusal)
    wall.now = utc(2027, 1, 1)
    assert await ledger.used(month) == 0
    held(await ledger.reserve([month], 1.0))


async def test_settling_after_a_rollover_corrects_the_old_window_not_the_new(
    ledger: Ledger, wall: WallClock
) -> None:
    minute = Budget(1.0, per=60)
    wall.now = 60_000.0 + 59
    late = held(await ledger.reserve([minute], 0.6))
    wall.advance(2)  # the next window
    fresh = held(await ledger.reserve([minute], 0.7))
    await ledger.release(late)  # no credit in the new window
    assert await ledger.used(minute) == pytest.approx(0.7)
    assert isinstance(await ledger.reserve([minute], 0.4), Refusal)
    await ledger.settle(fresh, 0.7)
    later = held(await ledger.reserve([minute], 0.3))
    wall.advance(60)
    await ledger.settle(later, 0.9)  # costs more than held: charged to its own window
    assert await ledger.used(minute) == 0


async def test_snapshot_shows_spend_what_is_left_and_when_it_resets(
    ledger: Ledger, wall: WallClock
) -> None:
    wall.now = utc(2026, 12, 7, 22, 0)
    day, tenant = Budget(2.0, "day"), Budget(1.0, "hour", "tag:t")
    await ledger.settle(held(await ledger.reserve([day, tenant], 0.75)), 0.25)
    held(await ledger.reserve([tenant], 0.7))
    assert await ledger.snapshot([]) == []
    rows = await ledger.snapshot([day, tenant])
    assert rows == [
        {
            "scope": "client",
            "per": "day",
            "usd": 2.0,
            "used": pytest.approx(0.25),
            "remaining": pytest.approx(1.75),
            "resets_in": 7200.0,
        },
        {
            "scope": "tag:t",
            "per": "hour",
            "usd": 1.0,
            "used": pytest.approx(0.95),  # a reservation in flight counts
            "remaining": pytest.approx(0.05),
            "resets_in": 3600.0,
        },
    ]
    wall.advance(3600)  # the tenant's next hour; the same day
    over = held(await ledger.reserve([day], 1.75))
    await ledger.settle(over, 2.5)  # cost more than held: over the limit, nothing left
    rows = await ledger.snapshot([day, tenant])
    assert (rows[0]["used"], rows[0]["remaining"], rows[0]["resets_in"]) == (
        pytest.approx(2.75),
        0.0,
        3600.0,
    )
    assert (rows[1]["used"], rows[1]["resets_in"]) == (0.0, 3600.0)


async def test_two_ledgers_over_one_store_share_the_spend(
    new_ledger: Callable[[], Ledger],
) -> None:
    first, second = new_ledger(), new_ledger()
    day = Budget(1.0)
    held(await first.reserve([day], 0.6))
    assert isinstance(await second.reserve([day], 0.6), Refusal)
    assert await second.used(day) == pytest.approx(0.6)


def test_the_local_ledger_runs_under_trio_too() -> None:
    import trio

    async def main() -> float:
        ledger = BudgetLedger()
        await ledger.settle(held(await ledger.reserve([Budget(1.0)], 0.5)), 0.2)
        return await ledger.used(Budget(1.0))

    assert trio.run(main) == pytest.approx(0.2)


def test_the_local_ledger_never_overspends_under_threads() -> None:
    ledger = BudgetLedger()
    budget = Budget(1.0, "day")
    granted: list[int] = []

    def hammer() -> None:
        async def run() -> int:
            count = 0
            for _ in range(200):
                if isinstance(await ledger.reserve([budget], 0.01), Reservation):
                    count += 1
            return count

        granted.append(asyncio.run(run()))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100
    assert asyncio.run(ledger.used(budget)) == pytest.approx(1.0)


# --- property: no interleaving lets used exceed usd ---------------------------------------

BUDGETS = (Budget(1.0, per=60), Budget(0.7, per=60, scope="tag:t"), Budget(2.0, per=90))

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("reserve"),
            st.sets(st.sampled_from(range(len(BUDGETS))), min_size=1),
            st.sampled_from([0.0, 0.05, 0.1, 0.25, 1 / 3, 0.5, 0.7, 1.2]),
        ),
        st.tuples(st.just("settle"), st.integers(0, 30), st.floats(0, 1)),
        st.tuples(st.just("release"), st.integers(0, 30), st.just(0.0)),
        st.tuples(st.just("tick"), st.sampled_from([1.0, 29.0, 61.0]), st.just(0.0)),
    ),
    max_size=40,
)


async def check_interleaving(ledger: Ledger, wall: WallClock, ops: list[Any]) -> None:
    """Replay ``ops``; after each, every budget's use matches a plain model and fits."""
    expected: dict[tuple[int, str], float] = {}
    open_: list[tuple[Reservation, list[tuple[int, str]]]] = []
    for op, first, second in ops:
        if op == "tick":
            wall.advance(first)
        elif op == "reserve":
            chosen = sorted(first)
            slots = [(i, BUDGETS[i].window(wall.now)[0]) for i in chosen]
            result = await ledger.reserve([BUDGETS[i] for i in chosen], second)
            if isinstance(result, Refusal):
                assert second > 0 and not all(
                    expected.get(s, 0.0) + second <= BUDGETS[s[0]].usd - 1e-6 for s in slots
                )
            else:
                assert second == 0 or all(
                    expected.get(s, 0.0) + second <= BUDGETS[s[0]].usd + 1e-6 for s in slots
                )
                for slot in slots:
                    expected[slot] = expected.get(slot, 0.0) + second
                open_.append((result, slots))
        elif open_:
            reservation, slots = open_.pop(first % len(open_))
            actual = reservation.amount * second if op == "settle" else 0.0
            await (
                ledger.settle(reservation, actual)
                if op == "settle"
                else ledger.release(reservation)
            )
            for slot in slots:
                expected[slot] = expected[slot] - reservation.amount + actual
        for i, budget in enumerate(BUDGETS):
            used = await ledger.used(budget)
            assert used <= budget.usd + EPSILON
            assert used == pytest.approx(
                max(0.0, expected.get((i, budget.window(wall.now)[0]), 0.0)), abs=1e-9
            )


@settings(max_examples=200, deadline=None)
@given(ops=OPS)
def test_no_interleaving_of_reserve_settle_release_overspends(ops: list[Any]) -> None:
    wall = WallClock(1_000_000.0)
    asyncio.run(check_interleaving(BudgetLedger(clock=wall), wall, ops))


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_no_interleaving_overspends_on_redis_either(
    redis_server: RedisServer, ops: list[Any]
) -> None:
    async def run() -> None:
        client = aioredis.from_url(redis_server.url)  # bytes replies, on purpose
        wall = WallClock(1_000_000.0)
        try:
            ledger = RedisBudgetLedger(client, f"p{uuid.uuid4().hex[:8]}", clock=wall)
            await check_interleaving(ledger, wall, ops)
        finally:
            await client.aclose()

    asyncio.run(run())


# --- Redis: keys, restarts, several processes ------------------------------------------------


async def test_redis_keeps_one_key_per_budget_and_window_until_an_hour_after_it(
    redis_server: RedisServer,
) -> None:
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    wall = WallClock(utc(2026, 12, 7, 22, 0))
    ledger = RedisBudgetLedger(client, "kx" + uuid.uuid4().hex[:6], clock=wall)
    try:
        day = Budget(5.0, "day", "profile:openai-1")
        await ledger.settle(held(await ledger.reserve([day], 0.5)), 0.125)
        key = budget_key(ledger.prefix, day, "2026-12-07")
        assert key == f"{ledger.prefix}:budget:profile:openai-1|day:2026-12-07"
        assert float(await client.get(key)) == pytest.approx(0.125)
        ttl = await client.ttl(key)
        assert 3 * 3600 - 5 <= ttl <= 3 * 3600  # 2 h left of the day, then 1 h more
    finally:
        await client.aclose()


async def test_a_restarted_ledger_keeps_the_spend_of_its_window(
    redis_server: RedisServer, wall: WallClock
) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    day = Budget(1.0, "day")
    before = aioredis.from_url(redis_server.url, decode_responses=True)
    ledger = RedisBudgetLedger(before, prefix, clock=wall)
    await ledger.settle(held(await ledger.reserve([day], 0.5)), 0.75)
    await before.aclose()

    after = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        restarted = RedisBudgetLedger(after, prefix, clock=wall)
        assert await restarted.used(day) == pytest.approx(0.75)
        assert isinstance(await restarted.reserve([day], 0.3), Refusal)
        await after.script_flush()  # scripts lost too (a Redis restart): loaded again
        held(await restarted.reserve([day], 0.25))
    finally:
        await after.aclose()


async def test_a_release_never_takes_a_key_below_zero(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        ledger = RedisBudgetLedger(client, f"z{uuid.uuid4().hex[:8]}")
        day = Budget(1.0)
        reservation = held(await ledger.reserve([day], 0.3))
        key = budget_key(ledger.prefix, day, day.window(ledger._clock())[0])
        await client.set(key, "0.1", keepttl=True)  # drift, or someone else's correction
        await ledger.release(reservation)
        assert await client.get(key) == "0"
        assert await client.ttl(key) > 0
        assert await ledger.used(day) == 0
    finally:
        await client.aclose()


def _hammer(url: str, prefix: str, seed: int, start: Any, settle: bool) -> None:
    """One process: reserve from a shared $1 budget until it keeps being refused."""

    async def run() -> None:
        client = aioredis.from_url(url, decode_responses=True)
        ledger = RedisBudgetLedger(client, prefix)
        budget = Budget(1.0, "day")
        rng = random.Random(seed)
        granted, charged, refused = 0, 0.0, 0
        start.wait(60)
        while refused < 30:
            amount = 0.01 if not settle else rng.choice([0.01, 0.03, 0.07])
            result = await ledger.reserve([budget], amount)
            if isinstance(result, Refusal):
                refused += 1
                continue
            granted += 1
            if settle:
                actual = rng.choice([0.0, amount / 2, amount])
                await ledger.settle(result, actual)
                charged += actual
            else:
                charged += amount
        await client.incr(f"{prefix}:granted", granted)
        await client.incrbyfloat(f"{prefix}:charged", charged)
        await client.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("settle", [False, True], ids=["reserve-only", "reserve-settle"])
def test_processes_hammering_one_dollar_never_spend_more_together(
    redis_server: RedisServer, settle: bool
) -> None:
    prefix = f"mp{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    workers = 4
    start = context.Barrier(workers)
    processes = [
        context.Process(target=_hammer, args=(redis_server.url, prefix, seed, start, settle))
        for seed in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers

    async def read() -> tuple[float, int, float]:
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        try:
            used = await RedisBudgetLedger(client, prefix).used(Budget(1.0, "day"))
            return (
                used,
                int(await client.get(f"{prefix}:granted")),
                float(await client.get(f"{prefix}:charged")),
            )
        finally:
            await client.aclose()

    used, granted, charged = asyncio.run(read())
    assert used <= 1.0 + EPSILON
    assert used == pytest.approx(charged, abs=1e-9)  # every process's charges, none lost
    if not settle:
        assert granted == 100  # exactly $1 of $0.01 reservations, across 4 processes


async def test_a_redis_ledger_needs_a_prefix_word() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0")
    try:
        for prefix in ("", "two words", None):
            with pytest.raises(ConfigError, match="prefix"):
                RedisBudgetLedger(client, prefix)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def test_unreachable_redis_is_an_error_for_the_caller_never_a_silent_pass() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        ledger = RedisBudgetLedger(client, "down")
        with pytest.raises(RedisConnectionError):
            await ledger.reserve([Budget(1.0)], 0.5)
        held(await ledger.reserve([Budget(1.0)], 0))  # nothing to hold: no round trip
    finally:
        await client.aclose()
