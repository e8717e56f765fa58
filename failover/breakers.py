"""Circuit breakers: one per model at one endpoint (provider and base URL).

A breaker counts a model's outcomes at an endpoint over a sliding window and opens when
the share of failures reaches the configured rate (``FailoverConfig.breaker_*``). While it
is open, every key of that endpoint rests from that model only; once the rest is over it
is half-open and lets one probe through, whose success closes it and whose failure
re-opens it for longer. Each profile's ``model_cooldowns`` mirrors the open breakers of
its endpoint, so status and callers can read it without asking the breakers.

Not thread-safe on its own: the :class:`~failover.profiles.FailoverManager` calls it
under its lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from failover.replication import Replica

if TYPE_CHECKING:
    from failover.auth_profile import AuthProfile
    from failover.config import FailoverConfig
    from failover.store.base import BreakerKey

__all__ = ["BREAKER_LIMIT", "Breaker", "Breakers", "Resting"]

BREAKER_LIMIT = 1024
"""Endpoint-and-model breakers a manager keeps; the least recently used are forgotten."""

_BUCKETS = 10  # a breaker's window is kept as this many time buckets

Resting = Callable[["AuthProfile"], bool]
"""Whether a ready profile is resting from the wanted model (its endpoint's breaker)."""


class Breaker:
    """The circuit breaker of one model at one endpoint.

    Closed, it counts outcomes over a sliding window (in ``_BUCKETS`` time buckets, so
    memory does not grow with traffic) and opens when the share of failures reaches the
    configured rate over at least the minimum volume. Open, it rests the model until
    ``open_until``. Half-open (``open_until`` has passed), it lets one probe through:
    the probe's success closes it, its failure re-opens it for longer.
    """

    __slots__ = (
        "buckets",
        "closed_at",
        "failed",
        "fresh_until",
        "fresh_window",
        "older",
        "open_until",
        "probe_at",
        "strikes",
        "total",
    )

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [start, total, failed]
        """The window's buckets; the newest one's total is ``total - older`` (its own
        count is brought up to date only when a bucket is added or forgotten)."""
        self.total = 0
        self.older = 0  # the outcomes counted in every bucket but the newest
        self.failed = 0
        self.open_until = 0.0  # 0.0: closed
        self.strikes = 0  # openings in a row, for the escalating rest
        self.closed_at = -math.inf
        self.probe_at: float | None = None  # when the half-open probe was handed out
        self.fresh_until = -math.inf
        """Before this clock time (over a window of ``fresh_window`` s) an outcome goes to
        the newest bucket and none is forgotten: counting a success is one addition."""
        self.fresh_window = math.nan

    def count(self, failed: bool, now: float, window: float) -> None:
        """Count one outcome at ``now``, forgetting those older than ``window`` seconds."""
        if not (now < self.fresh_until and window == self.fresh_window):
            self._roll(now, window)
        self.total += 1  # the newest bucket's
        if failed:
            self.buckets[-1][2] += 1
            self.failed += 1

    def _roll(self, now: float, window: float) -> None:
        """Forget the buckets older than ``window`` s at ``now``; start a new one when the
        newest is full (``window / _BUCKETS`` s wide)."""
        buckets = self.buckets
        if buckets:
            buckets[-1][1] = self.total - self.older  # the newest bucket's count, settled
        width = window / _BUCKETS
        while buckets and buckets[0][0] <= now - window:
            _, total, failures = buckets.popleft()
            self.total -= int(total)
            self.failed -= int(failures)
        if not buckets or buckets[-1][0] + width <= now:
            buckets.append([now, 0, 0])
        self.older = self.total - int(buckets[-1][1])
        self.fresh_until = min(buckets[-1][0] + width, _kept_before(buckets[0][0], window))
        self.fresh_window = window

    def forget(self) -> None:
        """Forget every outcome counted."""
        self.buckets.clear()
        self.total = self.failed = self.older = 0
        self.fresh_until = -math.inf

    def resting(self, now: float, probe_timeout: float) -> bool:
        """Whether no request may go now (open, or half-open with its probe out)."""
        if now < self.open_until:
            return True
        return self.probe_at is not None and now < self.probe_at + probe_timeout

    def ready_at(self, now: float, probe_timeout: float) -> float:
        """When a request may go next: ``now``, the end of the rest, or of the probe's wait."""
        if now < self.open_until:
            return self.open_until
        if self.probe_at is not None and now < self.probe_at + probe_timeout:
            return self.probe_at + probe_timeout
        return now


def _kept_before(start: float, window: float) -> float:
    """A clock time before which a bucket started at ``start`` is kept by :meth:`Breaker.count`
    (whose test ``start <= now - window`` is false for every ``now`` below it, in floating
    point); ``-inf`` when ``start + window`` is off by more than its last digit (then every
    count takes the long way)."""
    kept = start + window
    if start <= kept - window and start <= math.nextafter(kept, -math.inf) - window:
        return -math.inf
    return kept  # every now below it is at most the float just below it, which is kept


class Breakers:
    """Every breaker a manager has seen, the least recently used forgotten past a bound.

    Args:
        profiles: The manager's profiles by name, whose ``model_cooldowns`` show the open
            breakers of their endpoint (read, never changed, here).
        replica: Where openings and closings are shared.
    """

    __slots__ = ("_newest", "_profiles", "known", "replica", "tripped")

    def __init__(self, profiles: Mapping[str, AuthProfile], replica: Replica) -> None:
        self._profiles = profiles
        self.replica = replica
        self.known: dict[BreakerKey, Breaker] = {}
        """Every breaker, least recently used first (bounded by :data:`BREAKER_LIMIT`)."""
        self._newest: tuple[BreakerKey | None, Breaker] = (None, Breaker())
        """The last of ``known`` and its key, when a use put it there (a success of the
        same model at the same endpoint then finds it without moving it); no key (and a
        breaker of no one): none yet."""
        self.tripped: dict[BreakerKey, Breaker] = {}
        """The breakers not closed: open, or half-open."""

    def __len__(self) -> int:
        return len(self.known)

    # -- reading ------------------------------------------------------------------------

    def resting_check(self, model: str | None, now: float, window: float) -> Resting | None:
        """A check for profiles resting from ``model``, or ``None`` when none can be."""
        tripped = self.tripped
        if model is None or not tripped:
            return None

        def resting(profile: AuthProfile) -> bool:
            breaker = tripped.get((profile.provider, profile.base_url, model))
            return breaker is not None and breaker.resting(now, window)

        return resting

    def ready_at(self, profile: AuthProfile, model: str | None, now: float, window: float) -> float:
        """When ``profile``'s endpoint may next take ``model`` (``now`` when it may now)."""
        if model is None:
            return now
        breaker = self.tripped.get((profile.provider, profile.base_url, model))
        return now if breaker is None else breaker.ready_at(now, window)

    def rest_until(self, profile: AuthProfile, model: str) -> float:
        """The end of the rest of ``model`` at ``profile``'s endpoint (``0.0``: closed)."""
        breaker = self.tripped.get((profile.provider, profile.base_url, model))
        return 0.0 if breaker is None else breaker.open_until

    def open_now(self, now: float) -> list[tuple[BreakerKey, float, int]]:
        """The breakers open at ``now``, as ``(key, open_until, strikes)``."""
        return [(k, b.open_until, b.strikes) for k, b in self.tripped.items() if b.open_until > now]

    # -- outcomes -----------------------------------------------------------------------

    def probe_sent(self, profile: AuthProfile, model: str, now: float) -> None:
        """Note that ``profile`` was handed out for ``model``: a half-open breaker's probe."""
        breaker = self.tripped.get((profile.provider, profile.base_url, model))
        if breaker is not None:
            breaker.probe_at = now

    def outcome(
        self,
        profile: AuthProfile,
        model: str,
        now: float,
        config: FailoverConfig,
        *,
        failed: bool,
    ) -> bool:
        """Count one outcome for ``model`` at ``profile``'s endpoint; return True on a close."""
        key = (profile.provider, profile.base_url, model)
        return self._outcome(key, self._used(key), now, config, failed)

    def _used(self, key: BreakerKey) -> Breaker:
        """The breaker of ``key`` (made when new), moved last: the most recently used."""
        known = self.known
        breaker = known.pop(key, None)
        if breaker is None:
            return self._new(key)
        known[key] = breaker
        self._newest = (key, breaker)
        return breaker

    def succeeded(
        self, profile: AuthProfile, model: str, now: float, config: FailoverConfig
    ) -> bool:
        """:meth:`outcome` for a success (the usual case, made short: a closed breaker
        whose newest bucket takes it); return True when it closed the breaker."""
        key = (profile.provider, profile.base_url, model)
        newest_key, breaker = self._newest
        if key != newest_key:
            breaker = self._used(key)
        if now < breaker.fresh_until and config.breaker_window == breaker.fresh_window:
            breaker.total += 1  # Breaker.count's short way (a closed breaker)
            return False
        return self._outcome(key, breaker, now, config, False)

    def _outcome(
        self, key: BreakerKey, breaker: Breaker, now: float, config: FailoverConfig, failed: bool
    ) -> bool:
        if breaker.open_until:
            if now < breaker.open_until:
                return False  # open: outcomes of requests sent before it opened do not count
            if failed:  # half-open: the probe (or a straggler) failed
                breaker.strikes += 1
                self._open(key, breaker, now, config)
                return False
            self._close(key)
            breaker.closed_at = now
            self.replica.breaker_changed(key, 0.0, breaker.strikes)
            return True
        breaker.count(failed, now, config.breaker_window)
        if (
            failed
            and breaker.total >= config.breaker_min_requests
            and breaker.failed >= config.breaker_failure_rate * breaker.total
        ):
            recently_closed = now - breaker.closed_at < config.breaker_window
            breaker.strikes = breaker.strikes + 1 if recently_closed else 0
            self._open(key, breaker, now, config)
        return False

    # -- by hand and from other processes -----------------------------------------------

    def close_endpoint_of(self, profile: AuthProfile) -> None:
        """Close every breaker resting ``profile``'s endpoint, in every process (enable)."""
        endpoint = (profile.provider, profile.base_url)
        keys = [(*endpoint, model) for model in tuple(profile.model_cooldowns)]
        for key in keys:
            self._close(key)
        self.replica.breakers_cleared(keys)

    def clear(self) -> None:
        """Forget every breaker, closing the open ones in every process (reset_all)."""
        keys = tuple(self.tripped)
        for key in keys:
            self._close(key)
        self.replica.breakers_cleared(keys)
        self.known.clear()
        self._newest = (None, Breaker())

    def take_in(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool, now: float
    ) -> None:
        """Take in a breaker's state as another process left it (``open_until`` 0: closed).

        A longer rest is taken in; a close closes a breaker here that is half-open (or any,
        with ``force``), never one that this process re-opened since.
        """
        breaker = self.known.get(key)
        if open_until > now:
            if breaker is None:
                breaker = self._new(key)
            breaker.strikes = max(breaker.strikes, strikes)
            if open_until > breaker.open_until:
                breaker.open_until = open_until
                breaker.probe_at = None
                breaker.forget()
                self.tripped[key] = breaker
                self._rest_endpoint(key, open_until)
        elif breaker is not None and key in self.tripped and (force or breaker.open_until <= now):
            self._close(key)
            breaker.closed_at = now
            if force:
                breaker.strikes = 0

    def mirror(self, profile: AuthProfile) -> None:
        """Make ``profile.model_cooldowns`` show its (new) endpoint's open breakers."""
        cooldowns = profile.model_cooldowns
        cooldowns.clear()
        for (provider, base_url, model), breaker in self.tripped.items():
            if provider == profile.provider and base_url == profile.base_url:
                cooldowns[model] = breaker.open_until

    # -- internals ----------------------------------------------------------------------

    def _new(self, key: BreakerKey) -> Breaker:
        """A closed breaker for ``key``; past :data:`BREAKER_LIMIT`, the least recently
        used one is forgotten (model ids can come from callers: the map stays bounded)."""
        known = self.known
        breaker = known[key] = Breaker()
        self._newest = (key, breaker)
        if len(known) > BREAKER_LIMIT:
            oldest = next(iter(known))
            self._close(oldest)
            del known[oldest]
        return breaker

    def _open(self, key: BreakerKey, breaker: Breaker, now: float, config: FailoverConfig) -> None:
        breaker.open_until = now + config.escalated(config.cooldown_on_error, breaker.strikes)
        breaker.probe_at = None
        breaker.forget()
        self.tripped[key] = breaker
        self.replica.breaker_changed(key, breaker.open_until, breaker.strikes)
        self._rest_endpoint(key, breaker.open_until)

    def _rest_endpoint(self, key: BreakerKey, until: float) -> None:
        provider, base_url, model = key
        for profile in self._profiles.values():
            if profile.provider == provider and profile.base_url == base_url:
                profile.model_cooldowns[model] = until

    def _close(self, key: BreakerKey) -> None:
        breaker = self.tripped.pop(key, None)
        if breaker is None:
            return
        breaker.open_until = 0.0
        breaker.probe_at = None
        breaker.forget()
        provider, base_url, model = key
        for profile in self._profiles.values():
            if profile.provider == provider and profile.base_url == base_url:
                profile.model_cooldowns.pop(model, None)
