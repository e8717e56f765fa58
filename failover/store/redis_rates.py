"""RedisRateWindows: each key's token and request buckets, shared by every process through Redis.

The same buckets as :class:`~failover.rate_windows.RateWindows` (same arithmetic, same
API), kept in one Redis hash per key, ``{prefix}:rate:{name}:{identity}`` = ``{t, r, at}``
(tokens, requests, last refill), and changed only by one Lua script, so a take by one
process and a take by another can never both spend the last room. Times come from the
``clock`` passed in (wall-clock seconds by default; every process sharing a bucket must use
the same kind of clock); a process whose clock lags behind never refills twice. A bucket
untouched for two minutes has refilled whatever it held and is let expire.

Redis unreachable costs no request: the windows go on in this process alone (one warning
says so, per outage) until Redis answers again; tickets are given back to whichever
windows issued them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.rate_windows import SLACK, RateTicket, RateWindows, check_limits, describe
from failover.store.outage import Outage

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRateWindows", "rate_key"]

logger = logging.getLogger("failover.store")

IDLE_EXPIRY_MS = 120_000
"""A bucket untouched this long (ms) is full again whatever its limits: Redis forgets it."""


def rate_key(prefix: str, name: str, identity: str) -> str:
    """The Redis key of one key's token and request buckets (``failover status`` reads it)."""
    return f"{prefix}:rate:{name}:{identity}"


# One key's buckets: a hash {t, r, at}. ARGV: op, now, tpm, rpm (0: unlimited), a, b.
# take: a = tokens -> 'ok' or the seconds to wait; adjust: take a tokens and b requests more
# (negative: give back); observe: a, b = remaining tokens, requests ('' = not said);
# peek: -> {t, r}. Numbers go back as strings (Lua numbers would be cut to integers).
_RATE_SCRIPT = """
local k = KEYS[1]
local op, now = ARGV[1], tonumber(ARGV[2])
local tpm, rpm = tonumber(ARGV[3]), tonumber(ARGV[4])
local got = redis.call('HMGET', k, 't', 'r', 'at')
local t, r, at = tonumber(got[1]), tonumber(got[2]), tonumber(got[3]) or now
local elapsed = now - at
if elapsed > 0 then at = now else elapsed = 0 end
-- A bucket not kept yet (or kept while unlimited) starts full.
if tpm > 0 then t = math.min(tpm, (t or tpm) + elapsed * tpm / 60) else t = nil end
if rpm > 0 then r = math.min(rpm, (r or rpm) + elapsed * rpm / 60) else r = nil end
local function fmt(x) return string.format('%.17g', x or 0) end
local slack = tonumber(ARGV[7])
if op == 'peek' then
  return {fmt(t), fmt(r)}
elseif op == 'take' then
  local tokens = tonumber(ARGV[5])
  local wait = 0
  if t then
    local need = math.min(tokens, tpm)
    if t + slack < need then wait = (need - t) * 60 / tpm end
  end
  if r and r + slack < 1 then wait = math.max(wait, (1 - r) * 60 / rpm) end
  if wait > 0 then return fmt(wait) end
  if t then t = math.max(0, t - tokens) end
  if r then r = math.max(0, r - 1) end
elseif op == 'adjust' then
  if t then t = math.min(tpm, math.max(0, t - tonumber(ARGV[5]))) end
  if r then r = math.min(rpm, math.max(0, r - tonumber(ARGV[6]))) end
elseif op == 'observe' then
  if t and ARGV[5] ~= '' then t = math.max(0, math.min(t, tonumber(ARGV[5]))) end
  if r and ARGV[6] ~= '' then r = math.max(0, math.min(r, tonumber(ARGV[6]))) end
end
redis.call('HSET', k, 'at', fmt(at))
if t then redis.call('HSET', k, 't', fmt(t)) else redis.call('HDEL', k, 't') end
if r then redis.call('HSET', k, 'r', fmt(r)) else redis.call('HDEL', k, 'r') end
redis.call('PEXPIRE', k, tonumber(ARGV[8]))
return 'ok'
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRateWindows:
    """Each key's token and request buckets, shared through Redis; the API of
    :class:`~failover.rate_windows.RateWindows`.

    Args:
        redis: A ``redis.asyncio.Redis`` client (e.g. :attr:`RedisStore.redis
            <failover.store.RedisStore.redis>`).
        prefix: Starts every Redis key (the store's prefix).
        clock: Seconds, the same kind in every process sharing the buckets (wall clock by
            default; injectable for tests).
        retry: Seconds, by ``clock``, between tries of an unreachable Redis (meanwhile
            requests do not wait for it: the windows in this process answer at once).
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
        retry: float = 1.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix must be a non-empty word, got {prefix!r}")
        if not retry >= 0:
            raise ValueError(f"retry must be 0 or more seconds, got {retry!r}")
        self._redis = redis
        self.prefix = prefix
        """Starts every Redis key."""
        self._clock = clock
        self._script = redis.register_script(_RATE_SCRIPT)
        self.local = RateWindows(clock=clock)
        """The windows used in this process alone while Redis is unreachable."""
        self._outage = Outage(
            logger, f"failover rate windows {prefix}", "token and request windows are kept here"
        )
        self._retry = retry
        self._retry_at = 0.0

    @property
    def outage(self) -> bool:
        """Whether Redis was unreachable at the last try."""
        return self._outage.down

    def __repr__(self) -> str:
        return f"RedisRateWindows(prefix={self.prefix!r}, outage={self.outage})"

    async def _run(
        self,
        op: str,
        name: str,
        identity: str,
        tpm: int | None,
        rpm: int | None,
        a: int | str = "",
        b: int | str = "",
    ) -> Any:
        """Run the script; None if Redis is unreachable (then use :attr:`local`)."""
        now = self._clock()
        if self.outage and now < self._retry_at:
            return None
        args: list[str | int | float] = [
            op,
            now,
            tpm or 0,
            rpm or 0,
            a,
            b,
            SLACK,
            IDLE_EXPIRY_MS,
        ]
        try:
            result = await self._script(keys=[rate_key(self.prefix, name, identity)], args=args)
        except Exception as exc:
            if not self._outage.failed(exc):
                raise
            self._retry_at = self._clock() + self._retry
            return None
        self._outage.answered()
        return result

    async def take(
        self, name: str, identity: str, tpm: int | None, rpm: int | None, tokens: int
    ) -> RateTicket | float:
        """Take one request and ``tokens`` tokens from the key's shared buckets if both have
        room; else the seconds until both would (nothing taken). See
        :meth:`RateWindows.take <failover.rate_windows.RateWindows.take>`."""
        check_limits(tpm, rpm, tokens)
        result = await self._run("take", name, identity, tpm, rpm, tokens)
        if result is None:
            return await self.local.take(name, identity, tpm, rpm, tokens)
        text = _text(result)
        if text != "ok":
            return float(text)
        return RateTicket(name, identity, tokens, tpm, rpm, self)

    async def correct(self, ticket: RateTicket, actual_tokens: int) -> None:
        """The request used ``actual_tokens``: give back, or take more of, the difference
        (never below empty nor above the limit; nothing after a refund)."""
        if ticket.issuer is self.local:
            await self.local.correct(ticket, actual_tokens)
            return
        check_limits(None, None, actual_tokens)
        if ticket.refunded or actual_tokens == ticket.tokens:
            return
        delta = actual_tokens - ticket.tokens
        ticket.tokens = actual_tokens
        await self._adjust(ticket, delta, 0)

    async def refund(self, ticket: RateTicket) -> None:
        """Nothing reached the provider: give back the tokens and the request (once)."""
        if ticket.issuer is self.local:
            await self.local.refund(ticket)
            return
        if ticket.refunded:
            return
        ticket.refunded = True
        await self._adjust(ticket, -ticket.tokens, -1)

    async def _adjust(self, ticket: RateTicket, tokens: int, requests: int) -> None:
        # A ticket from Redis whose correction cannot reach it is dropped: the shared
        # bucket refills by itself within the minute.
        await self._run(
            "adjust", ticket.profile, ticket.identity, ticket.tpm, ticket.rpm, tokens, requests
        )

    async def observe(
        self,
        name: str,
        identity: str,
        tpm: int | None,
        rpm: int | None,
        *,
        remaining_tokens: int | None,
        remaining_requests: int | None,
    ) -> None:
        """The provider said what is left: lower a shared bucket that holds more to it."""
        check_limits(tpm, rpm)
        a = "" if remaining_tokens is None else remaining_tokens
        b = "" if remaining_requests is None else remaining_requests
        if await self._run("observe", name, identity, tpm, rpm, a, b) is None:
            await self.local.observe(
                name,
                identity,
                tpm,
                rpm,
                remaining_tokens=remaining_tokens,
                remaining_requests=remaining_requests,
            )

    async def snapshot(
        self, name: str, identity: str, tpm: int | None, rpm: int | None
    ) -> dict[str, Any]:
        """What the key's shared buckets hold now: ``tokens_available``,
        ``requests_available`` and ``capacity`` (see :meth:`RateWindows.snapshot
        <failover.rate_windows.RateWindows.snapshot>`)."""
        check_limits(tpm, rpm)
        result = await self._run("peek", name, identity, tpm, rpm)
        if result is None:
            return await self.local.snapshot(name, identity, tpm, rpm)
        return describe(tpm, rpm, float(_text(result[0])), float(_text(result[1])))
