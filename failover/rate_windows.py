"""Token-rate windows: each key's tokens and requests per minute, taken before a request goes.

A profile's ``rate_limit_tpm`` and ``rate_limit_rpm`` become two token buckets per key, the
way providers keep them: each holds up to its per-minute limit and refills continuously at
limit / 60 per second, starting full. Before a request is sent it takes one request and its
estimated tokens (:meth:`RateWindows.take`); when neither bucket can give that much, it
learns how many seconds until both could, and nothing is taken. Afterwards the estimate is
trued up from the reply's usage (:meth:`~RateWindows.correct`), a request that never reached
the provider gives everything back (:meth:`~RateWindows.refund`), and the provider's
``x-ratelimit-remaining-*`` headers lower a bucket that believed it held more
(:meth:`~RateWindows.observe`).

A request estimated above the whole ``tpm`` could never fit: it is let through when the
token bucket is full and empties it.

:class:`RateWindows` is local to the process;
:class:`~failover.store.redis_rates.RedisRateWindows` keeps the same buckets in Redis,
shared by every process using the key.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SLACK", "RateTicket", "RateWindows", "check_limits", "describe"]

SLACK = 1e-6
"""Tokens or requests a bucket may lack and still admit (float rounding of the refill)."""

_PRUNE_AT = 4096  # buckets kept before full (= forgotten) ones are dropped
_INF = math.inf


class RateTicket:
    """What :meth:`RateWindows.take` hands back: one request and its tokens, taken from a key.

    Give it to :meth:`~RateWindows.correct` once the usage is known, or to
    :meth:`~RateWindows.refund` if the request never reached the provider.
    """

    __slots__ = ("identity", "issuer", "profile", "refunded", "rpm", "tokens", "tpm")

    def __init__(
        self,
        profile: str,
        identity: str,
        tokens: int,
        tpm: int | None,
        rpm: int | None,
        issuer: object = None,
    ) -> None:
        self.profile = profile
        """The profile (key) name the ticket was taken from."""
        self.identity = identity
        """The key's identity (fingerprint) the bucket is kept under."""
        self.tokens = tokens
        """The tokens the ticket holds now: the estimate, then the actual after a correction."""
        self.tpm = tpm
        """The tokens-per-minute limit the ticket was taken under (None: unlimited)."""
        self.rpm = rpm
        """The requests-per-minute limit the ticket was taken under (None: unlimited)."""
        self.issuer = issuer
        """Which windows issued the ticket (internal: a shared one may fall back to local)."""
        self.refunded = False
        """Whether the ticket was refunded (later corrections and refunds do nothing)."""

    def __repr__(self) -> str:
        return f"RateTicket(profile={self.profile!r}, tokens={self.tokens})"


def check_limits(tpm: int | None, rpm: int | None, tokens: int | None = None) -> None:
    """Raise ``ValueError`` unless the limits are positive (or None) and ``tokens`` >= 0."""
    for name, limit in (("tpm", tpm), ("rpm", rpm)):
        if limit is not None and not limit > 0:
            raise ValueError(f"{name} must be positive or None, got {limit!r}")
    if tokens is not None and not tokens >= 0:
        raise ValueError(f"tokens must be 0 or more, got {tokens!r}")


class _Bucket:
    __slots__ = ("at", "requests", "tokens")

    def __init__(self, tpm: int | None, rpm: int | None, now: float) -> None:
        # Unlimited is held as infinite: a limit set later starts full.
        self.tokens = _INF if tpm is None else float(tpm)
        self.requests = _INF if rpm is None else float(rpm)
        self.at = now

    def refill(self, tpm: int | None, rpm: int | None, now: float) -> None:
        elapsed = now - self.at
        if elapsed > 0:
            self.at = now
        else:
            elapsed = 0.0  # a clock that went back refills nothing
        if tpm is None:
            self.tokens = _INF
        else:
            tokens = self.tokens + elapsed * tpm / 60.0
            self.tokens = tokens if tokens < tpm else float(tpm)
        if rpm is None:
            self.requests = _INF
        else:
            requests = self.requests + elapsed * rpm / 60.0
            self.requests = requests if requests < rpm else float(rpm)


class RateWindows:
    """Each key's token and request buckets, in this process; thread-safe, never suspends.

    Args:
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def __repr__(self) -> str:
        return f"RateWindows(keys={len(self._buckets)})"

    def _new(self, key: tuple[str, str], tpm: int | None, rpm: int | None, now: float) -> _Bucket:
        if len(self._buckets) >= _PRUNE_AT:
            self._prune(now)
        bucket = self._buckets[key] = _Bucket(tpm, rpm, now)
        return bucket

    def _bucket(
        self, name: str, identity: str, tpm: int | None, rpm: int | None, now: float
    ) -> _Bucket:
        key = (name, identity)
        bucket = self._buckets.get(key) or self._new(key, tpm, rpm, now)
        bucket.refill(tpm, rpm, now)
        return bucket

    def _prune(self, now: float) -> None:
        # A bucket that has refilled whatever its limits were is as good as new: forget it.
        for key, bucket in list(self._buckets.items()):
            if now - bucket.at >= 60.0:
                del self._buckets[key]

    async def take(
        self, name: str, identity: str, tpm: int | None, rpm: int | None, tokens: int
    ) -> RateTicket | float:
        """Take one request and ``tokens`` tokens from the key's buckets if both have room.

        Args:
            name: The profile name.
            identity: The key's identity (its fingerprint): two keys under one name never
                share a bucket.
            tpm: Tokens per minute (None: unlimited).
            rpm: Requests per minute (None: unlimited).
            tokens: The request's estimated tokens (input and the most it may produce).

        Returns:
            A ticket, or the seconds until both buckets would have room (nothing taken).
            A request estimated above the whole ``tpm`` is let through when the bucket is
            full (it could never fit otherwise) and empties it.

        Raises:
            ValueError: A limit is not positive, or ``tokens`` is negative.
        """
        if not ((tpm is None or tpm > 0) and (rpm is None or rpm > 0) and tokens >= 0):
            check_limits(tpm, rpm, tokens)  # raises
        key = (name, identity)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key) or self._new(key, tpm, rpm, now)
            bucket.refill(tpm, rpm, now)
            wait = 0.0
            if tpm is not None:
                need = tokens if tokens < tpm else tpm
                if bucket.tokens + SLACK < need:
                    wait = (need - bucket.tokens) * 60.0 / tpm
            if rpm is not None and bucket.requests + SLACK < 1:
                wait = max(wait, (1 - bucket.requests) * 60.0 / rpm)
            if wait > 0:
                return wait
            if tpm is not None:
                left = bucket.tokens - tokens
                bucket.tokens = left if left > 0 else 0.0
            if rpm is not None:
                left = bucket.requests - 1
                bucket.requests = left if left > 0 else 0.0
        return RateTicket(name, identity, tokens, tpm, rpm, self)

    def _adjust(self, ticket: RateTicket, tokens: float, requests: float) -> None:
        # Take ``tokens`` and ``requests`` more (negative: give back), within [0, limit].
        with self._lock:
            bucket = self._bucket(
                ticket.profile, ticket.identity, ticket.tpm, ticket.rpm, self._clock()
            )
            if ticket.tpm is not None:
                bucket.tokens = min(float(ticket.tpm), max(0.0, bucket.tokens - tokens))
            if ticket.rpm is not None:
                bucket.requests = min(float(ticket.rpm), max(0.0, bucket.requests - requests))

    async def correct(self, ticket: RateTicket, actual_tokens: int) -> None:
        """The request used ``actual_tokens``: give back, or take more of, the difference.

        A bucket never goes below empty nor above its limit. May be called again with a
        later count (the ticket remembers the last); does nothing after a refund.
        """
        if not actual_tokens >= 0:
            check_limits(None, None, actual_tokens)  # raises
        if ticket.refunded or actual_tokens == ticket.tokens:
            return
        tpm = ticket.tpm
        if tpm is not None:
            key = (ticket.profile, ticket.identity)
            with self._lock:
                now = self._clock()
                bucket = self._buckets.get(key) or self._new(key, tpm, ticket.rpm, now)
                bucket.refill(tpm, ticket.rpm, now)
                level = bucket.tokens - (actual_tokens - ticket.tokens)
                bucket.tokens = 0.0 if level < 0 else level if level < tpm else float(tpm)
        ticket.tokens = actual_tokens

    async def refund(self, ticket: RateTicket) -> None:
        """Nothing reached the provider (e.g. connection refused): give back the tokens and
        the request. A second refund does nothing."""
        if ticket.refunded:
            return
        ticket.refunded = True
        self._adjust(ticket, -ticket.tokens, -1.0)

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
        """The provider said what is left (``x-ratelimit-remaining-*``): lower a bucket that
        holds more to it; never raise one. A bucket without a limit ignores its figure."""
        check_limits(tpm, rpm)
        with self._lock:
            bucket = self._bucket(name, identity, tpm, rpm, self._clock())
            if tpm is not None and remaining_tokens is not None:
                bucket.tokens = max(0.0, min(bucket.tokens, float(remaining_tokens)))
            if rpm is not None and remaining_requests is not None:
                bucket.requests = max(0.0, min(bucket.requests, float(remaining_requests)))

    async def snapshot(
        self, name: str, identity: str, tpm: int | None, rpm: int | None
    ) -> dict[str, Any]:
        """What the key's buckets hold now, for ``failover status`` and telemetry.

        Returns:
            ``tokens_available`` and ``requests_available`` (whole numbers, rounded down;
            None when unlimited) and ``capacity``: ``{"tokens": tpm, "requests": rpm}``.
        """
        check_limits(tpm, rpm)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get((name, identity))
            if bucket is not None:
                bucket.refill(tpm, rpm, now)
                tokens, requests = bucket.tokens, bucket.requests
            else:
                tokens, requests = float(tpm or 0), float(rpm or 0)  # a new one: full
        return describe(tpm, rpm, tokens, requests)


def describe(tpm: int | None, rpm: int | None, tokens: float, requests: float) -> dict[str, Any]:
    """A snapshot of buckets holding ``tokens`` and ``requests`` (shared with Redis's)."""
    return {
        "tokens_available": None if tpm is None else math.floor(tokens + SLACK),
        "requests_available": None if rpm is None else math.floor(requests + SLACK),
        "capacity": {"tokens": tpm, "requests": rpm},
    }
