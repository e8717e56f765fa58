"""RedisBudgetLedger: spend budgets counted on Redis, atomically across processes.

One key per budget and window, ``{prefix}:budget:{budget id}:{window id}``, holds the dollars
used there (reservations in flight included), changed with ``INCRBYFLOAT``. A Lua script
checks every budget of a reservation and adds to all of them or to none, so processes that
reserve at once can never overspend together. Each key expires an hour after its window
ends, so a process restarted within the window finds what was spent.

It needs no more than a ``redis.asyncio.Redis`` client (``RedisStore.redis`` is one)::

    ledger = RedisBudgetLedger(store.redis, store.prefix)

Errors talking to Redis propagate to the caller (``redis.exceptions.ConnectionError`` and
kin). A reservation whose settle or release failed that way stays held until its window
ends: the ledger errs on the side of counting too much, never too little.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from failover.budgets import (
    EPSILON,
    Budget,
    Refusal,
    Reservation,
    budget_snapshot,
    check_dollars,
    plan_reservation,
)
from failover.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisBudgetLedger", "budget_key"]

_AFTER_WINDOW = 3600.0
"""Seconds a window's key outlives the window (late settles still find it)."""


def budget_key(prefix: str, budget: Budget, window: str) -> str:
    """The Redis key holding the dollars used in one budget's window."""
    return f"{prefix}:budget:{budget.id}:{window}"


# KEYS: one per budget. ARGV: amount, epsilon, then per budget: usd, ttl (seconds).
# Returns {0, ''} when held in every budget, else {index of the first refusing, its used}.
_RESERVE = """
local amount, eps = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  local used = math.max(0, tonumber(redis.call('GET', k) or '0') or 0)
  if used + amount > tonumber(ARGV[1 + 2 * i]) + eps then
    return {i, tostring(used)}
  end
end
for i, k in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', k, ARGV[1])
  redis.call('EXPIRE', k, ARGV[2 + 2 * i])
end
return {0, ''}
"""

# KEYS: one per budget. ARGV: delta, then per budget: ttl (seconds; 0 when its window is
# long over). A key still there takes the delta (never below 0, its expiry kept); a missing
# one (a zero reservation that cost something, or Redis lost it) takes a positive delta.
_ADJUST = """
local delta = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    local used = tonumber(redis.call('INCRBYFLOAT', k, ARGV[1]))
    if used < 0 then
      local ttl = redis.call('PTTL', k)
      redis.call('SET', k, '0')
      if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
    end
  elseif delta > 0 and tonumber(ARGV[1 + i]) > 0 then
    redis.call('SET', k, ARGV[1], 'EX', ARGV[1 + i])
  end
end
return 0
"""


def _dollars(value: Any) -> float:
    """What Redis holds as a float of dollars; 0 for nothing, never below 0 (rounding)."""
    if value is None or value == "" or value == b"":
        return 0.0
    return max(0.0, float(value))


class RedisBudgetLedger:
    """Counts spend per budget and window on Redis, shared by every process using it.

    Args:
        redis: A ``redis.asyncio.Redis`` client (with or without ``decode_responses``).
        prefix: Prepended to every key (``RedisStore.prefix`` to sit beside its state).
        clock: Wall-clock time in epoch seconds; windows are computed with it.

    Raises:
        ConfigError: ``prefix`` is empty or has spaces.
    """

    def __init__(
        self, redis: Redis, prefix: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ConfigError(f"RedisBudgetLedger prefix must be a non-empty word, got {prefix!r}")
        self._redis = redis
        self.prefix = prefix
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._adjust = redis.register_script(_ADJUST)

    def __repr__(self) -> str:
        return f"RedisBudgetLedger(prefix={self.prefix!r})"

    async def reserve(self, budgets: Sequence[Budget], amount: float) -> Reservation | Refusal:
        """Hold ``amount`` dollars in every budget, or in none, atomically on Redis.

        Every budget must have room (``used + amount <= usd``); then ``amount`` is added to
        each. A zero amount (an unpriced model) always passes, without a round trip.

        Returns:
            The reservation to settle or release later, or the first budget's refusal.

        Raises:
            ValueError: ``amount`` is negative, NaN or infinite.
        """
        now = self._clock()
        chosen, windows, amount = plan_reservation(budgets, amount, now)
        reservation = Reservation(chosen, amount, windows)
        if amount == 0 or not chosen:
            return reservation
        keys = [budget_key(self.prefix, b, w) for b, (w, _, _) in zip(chosen, windows, strict=True)]
        args: list[str | int] = [repr(amount), repr(EPSILON)]
        for budget, (_, _, resets_at) in zip(chosen, windows, strict=True):
            args += [repr(budget.usd), _ttl(resets_at, now)]
        refused, spent = await self._reserve(keys=keys, args=args)
        refused = int(refused)
        if refused:
            index = refused - 1
            return Refusal(chosen[index], _dollars(spent), windows[index][2], amount)
        return reservation

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace what ``reservation`` holds by the real cost, in the window it was made in.

        Raises:
            ValueError: ``actual`` is negative, NaN or infinite.
        """
        actual = check_dollars(actual, "actual")
        await self._finish(reservation, actual - reservation.amount)

    async def release(self, reservation: Reservation) -> None:
        """Give back everything ``reservation`` holds (nothing was spent)."""
        await self._finish(reservation, -reservation.amount)

    async def used(self, budget: Budget) -> float:
        """Dollars spent and held in ``budget``'s current window, by every process."""
        window = budget.window(self._clock())[0]
        return _dollars(await self._redis.get(budget_key(self.prefix, budget, window)))

    async def snapshot(self, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
        """Per budget: scope, per, usd, used, remaining and resets_in (seconds)."""
        if not budgets:
            return []
        now = self._clock()
        keys = [budget_key(self.prefix, b, b.window(now)[0]) for b in budgets]
        values = await self._redis.mget(keys)
        return [
            budget_snapshot(budget, _dollars(value), now)
            for budget, value in zip(budgets, values, strict=True)
        ]

    async def _finish(self, reservation: Reservation, delta: float) -> None:
        if not reservation._finish() or delta == 0 or not reservation.budgets:
            return
        now = self._clock()
        keys, args = [], [repr(delta)]
        for budget, (window, _, resets_at) in zip(
            reservation.budgets, reservation._windows, strict=True
        ):
            keys.append(budget_key(self.prefix, budget, window))
            args.append(str(_ttl(resets_at, now)) if resets_at + _AFTER_WINDOW > now else "0")
        await self._adjust(keys=keys, args=args)


def _ttl(resets_at: float, now: float) -> int:
    """Whole seconds from ``now`` until an hour after the window ends (at least 1)."""
    return max(1, math.ceil(resets_at + _AFTER_WINDOW - now))
