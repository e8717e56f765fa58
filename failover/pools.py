"""Key pools: which keys are ready, in which order, and which are cooling until when.

Ready profiles wait in per-priority buckets in least-recently-used order, one pool per
provider and one for every provider; cooling ones wait in a heap ordered by recovery
time, so picking a key never scans the cooling ones. A key leaves the pools when it is
cooled (rate limited, failing) or disabled (auth, quota) and comes back when its cooldown
runs out (:meth:`KeyPools.wake`) or it is healed.

Not thread-safe on its own: the :class:`~failover.profiles.FailoverManager` calls it
under its lock.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from failover.auth_profile import FailureKind, ProfileStatus
from failover.catalog import canonical_provider
from failover.replication import Replica

if TYPE_CHECKING:
    from failover.auth_profile import AuthProfile
    from failover.breakers import Resting
    from failover.config import FailoverConfig

__all__ = ["KeyPools", "ReadyPool"]

_ALL = None  # the pool of every provider's profiles (asked for with provider=None)
_set = object.__setattr__  # for the counters the hot path updates: no routing-field check
_HELD_BY_PROVIDER = (ProfileStatus.RATE_LIMITED, ProfileStatus.DISABLED)


class ReadyPool:
    """The ready profiles of one provider: by priority, least recently used first."""

    __slots__ = ("_buckets", "_ordered", "_priorities")

    def __init__(self) -> None:
        self._buckets: dict[int, dict[str, AuthProfile]] = {}
        self._priorities: list[int] = []
        self._ordered: list[dict[str, AuthProfile]] = []  # the buckets, by priority

    def add(self, profile: AuthProfile) -> dict[str, AuthProfile]:
        """Put ``profile`` last among its priority's ready profiles (where it is, if there);
        return their bucket (name -> profile, least recently used first)."""
        bucket = self._buckets.get(profile.priority)
        if bucket is None:
            bucket = self._buckets[profile.priority] = {}
            index = bisect.bisect(self._priorities, profile.priority)
            self._priorities.insert(index, profile.priority)
            self._ordered.insert(index, bucket)
        bucket[profile.name] = profile
        return bucket

    def discard(self, profile: AuthProfile) -> None:
        """Take ``profile`` out, if it is here."""
        bucket = self._buckets.get(profile.priority)
        if bucket is not None:
            bucket.pop(profile.name, None)

    def __contains__(self, profile: AuthProfile) -> bool:
        bucket = self._buckets.get(profile.priority)
        return bucket is not None and bucket.get(profile.name) is profile

    def touch(self, profile: AuthProfile) -> None:
        """Move a ready ``profile`` behind its equals (no-op when it is not ready here)."""
        bucket = self._buckets.get(profile.priority)
        if bucket is not None and len(bucket) > 1 and bucket.get(profile.name) is profile:
            del bucket[profile.name]
            bucket[profile.name] = profile

    def pick(
        self, model: str | None, exclude: Collection[str], resting: Resting | None
    ) -> AuthProfile | None:
        """The first ready profile that admits ``model``, is not excluded nor resting."""
        for bucket in self._ordered:
            for profile in bucket.values():
                if (
                    profile.name not in exclude
                    and (model is None or profile.models is None or model in profile.models)
                    and (resting is None or not resting(profile))
                ):  # profile.allows(model), spelled out: this runs for every pick
                    return profile
        return None

    def lone_head(self) -> AuthProfile | None:
        """The profile alone in the first priority that has any ready, when there is one
        (``None``: ask :meth:`pick`)."""
        for bucket in self._ordered:
            if bucket:
                if len(bucket) == 1:
                    for profile in bucket.values():
                        return profile
                return None
        return None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())


class KeyPools:
    """The profiles by name, their ready pools and the cooling heap.

    Args:
        replica: Where cooldowns and uses of rpm-limited keys are shared.
    """

    __slots__ = (
        "_cooling",
        "_homes",
        "_lone",
        "_lone_asked",
        "_ready",
        "_sequence",
        "profiles",
        "replica",
    )

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.profiles: dict[str, AuthProfile] = {}
        """Every profile by name, in the order they were added."""
        self._ready: dict[str | None, ReadyPool] = {_ALL: ReadyPool()}
        self._homes: dict[str, tuple[dict[str, AuthProfile], dict[str, AuthProfile]]] = {}
        """A ready profile's buckets: in the pool of every provider, in its provider's (a
        part of the first: the same priority)."""
        self._cooling: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._lone: dict[str | None, AuthProfile | None] = {}
        """Per provider served (``None``: every provider): the profile a plain pick
        returns without reordering anything, or ``None`` when a pick must walk the pool
        (:meth:`_lone_in`). Forgotten whenever a profile enters or leaves the ready pools
        (a cooldown, a heal, a wake, another process's state, a change of routing)."""
        self._lone_asked: set[str | None] = set()
        """The providers picked from once since the pools last changed: the next pick
        finds out their lone head (pools that just changed often change again at once:
        a request walking past a failing key)."""

    # -- the registry -------------------------------------------------------------------

    def add(self, profile: AuthProfile, now: float) -> None:
        """Register ``profile``: ready, cooling until its ``cooldown_until``, or disabled."""
        self.profiles[profile.name] = profile
        self.serve(profile.provider)
        if profile.status is ProfileStatus.AVAILABLE or profile.cooldown_until <= now:
            profile.status = ProfileStatus.AVAILABLE
            self.make_ready(profile)
        elif not math.isinf(profile.cooldown_until):
            self._push_cooling(profile)

    def remove(self, name: str) -> AuthProfile | None:
        """Forget the profile called ``name``; return it (``None``: there was none)."""
        profile = self.profiles.pop(name, None)
        if profile is not None:
            self.withdraw(profile)
            self._homes.pop(name, None)
        return profile

    def is_ready(self, profile: AuthProfile) -> bool:
        """Whether ``profile`` waits in the ready pools."""
        return profile in self._ready[_ALL]

    def make_ready(self, profile: AuthProfile) -> None:
        """Put ``profile`` in its provider's pool and the pool of every provider."""
        everyone = self._ready[_ALL].add(profile)
        self._homes[profile.name] = (everyone, self._ready[profile.provider].add(profile))
        self._forget_lone()

    def withdraw(self, profile: AuthProfile) -> None:
        """Take ``profile`` out of the ready pools."""
        homes = self._homes.get(profile.name)
        if homes is None:  # never made ready
            return
        everyone, own = homes  # where it was made ready (a profile not ready is in neither)
        everyone.pop(profile.name, None)
        own.pop(profile.name, None)
        self._forget_lone()

    def serve(self, provider: str) -> None:
        """Make room for ``provider``'s ready profiles (before one of them is made ready)."""
        if provider not in self._ready:
            self._ready[provider] = ReadyPool()

    def pool_for(self, provider: str | None) -> ReadyPool | None:
        """The ready profiles of ``provider`` (``None``: of every provider)."""
        pool = self._ready.get(provider)  # canonical already (None: _ALL)?
        if pool is None and provider is not None:
            pool = self._ready.get(canonical_provider(provider))
        return pool

    # -- choosing -----------------------------------------------------------------------

    def pick(
        self,
        provider: str | None,
        model: str | None,
        exclude: Collection[str],
        resting: Resting | None,
        now: float,
    ) -> AuthProfile | None:
        """The next ready profile within its rpm, counted as used (``None``: none is)."""
        if self._cooling:
            self.wake(now)
        # not found since the pools last changed (or a provider's other name): found now
        lone = self._lone[provider] if provider in self._lone else self._lone_once_asked(provider)
        if (
            lone is not None
            and resting is None
            and lone.name not in exclude
            # open to every model (no allowlist), no rpm to count: read at each pick (a
            # profile shared with another manager may be updated through it, unseen here)
            and lone.models is None
            and lone.rate_limit_rpm is None
        ):
            _set(lone, "last_used_at", now)  # the only one of its priority: no order to keep
            return lone
        pool = self._ready.get(provider)  # None: _ALL
        if pool is None:
            pool = self.pool_for(provider)  # a provider's alias
            if pool is None:
                return None
        while (profile := pool.pick(model, exclude, resting)) is not None:
            if profile.rate_limit_rpm is None or self._within_rpm(profile, now):
                _set(profile, "last_used_at", now)  # _count_use, for a profile known ready
                everyone, own = self._homes[profile.name]
                if len(everyone) > 1:  # it has equals (own, a part of everyone, may not)
                    del everyone[profile.name]
                    everyone[profile.name] = profile
                    if len(own) > 1:
                        del own[profile.name]
                        own[profile.name] = profile
                return profile
        return None

    def peek(
        self,
        provider: str | None,
        model: str | None,
        exclude: Collection[str],
        resting: Resting | None,
        now: float,
    ) -> AuthProfile | None:
        """The profile :meth:`pick` would return, without using it."""
        if self._cooling:
            self.wake(now)
        pool = self.pool_for(provider)
        return None if pool is None else pool.pick(model, exclude, resting)

    def least_recently_failed(
        self, provider: str, model: str | None, exclude: Collection[str], now: float
    ) -> AuthProfile | None:
        """The least-bad profile held back for transient reasons, counted as used.

        Cooling after errors, or ready (resting from the model at its endpoint) qualify;
        rate-limited and disabled keys, and keys out of rpm, never do. The oldest last
        failure wins, then the least recently used.
        """
        self.wake(now)
        wanted = canonical_provider(provider)
        best: AuthProfile | None = None
        best_rank = (math.inf, math.inf)
        for profile in self.profiles.values():
            if (
                profile.provider != wanted
                or profile.name in exclude
                or not profile.allows(model)
                or profile.status in _HELD_BY_PROVIDER
                or not self._rpm_room(profile, now)
            ):
                continue
            failed_at = profile.last_error_at
            rank = (-math.inf if failed_at is None else failed_at, profile.last_used_at)
            if best is None or rank < best_rank:
                best, best_rank = profile, rank
        if best is not None:
            if best.rate_limit_rpm is not None:
                best._recent.append(now)
                self.replica.used(best, now)
            self._count_use(best, now)
        return best

    def has_ready(
        self, provider: str | None, model: str | None, resting: Resting | None, now: float
    ) -> bool:
        """Whether a profile of ``provider`` that admits ``model`` is usable at ``now``."""
        if self._cooling:
            self.wake(now)
        pool = self.pool_for(provider)
        return pool is not None and pool.pick(model, (), resting) is not None

    def earliest_ready(
        self,
        provider: str | None,
        model: str | None,
        model_ready_at: Callable[[AuthProfile], float],
        now: float,
    ) -> float | None:
        """The earliest time a profile of ``provider`` that admits ``model`` is usable.

        The end of its cooldown or (through ``model_ready_at``) of its endpoint's rest
        from ``model``, whichever is later; ``None`` when all are disabled for good.
        """
        wanted = None if provider is None else canonical_provider(provider)
        times = [
            max(
                p.cooldown_until if p.status is not ProfileStatus.AVAILABLE else now,
                model_ready_at(p),
            )
            for p in self.profiles.values()
            if (wanted is None or p.provider == wanted) and p.allows(model)
        ]
        finite = [t for t in times if not math.isinf(t)]
        return min(finite) if finite else None

    def held_out(self, now: float) -> list[AuthProfile]:
        """The profiles out of rotation at ``now``."""
        self.wake(now)
        return [p for p in self.profiles.values() if p.status is not ProfileStatus.AVAILABLE]

    # -- cooling and healing ------------------------------------------------------------

    def fail(
        self,
        profile: AuthProfile,
        kind: FailureKind,
        retry_after: float | None,
        now: float,
        config: FailoverConfig,
    ) -> None:
        """Cool or disable ``profile`` for a failure of ``kind`` (the provider's wait wins)."""
        if kind == "auth":
            self.disable(profile, math.inf)
        elif kind == "quota":
            base = retry_after or config.escalated(
                config.cooldown_on_quota, profile.cooldown_strikes, quota=True
            )
            self.disable(profile, now + base)
        elif kind == "rate_limit":
            wait = retry_after
            if wait is None:
                wait = config.escalated(config.cooldown_on_rate_limit, profile.cooldown_strikes)
            self.cool(profile, now + wait, ProfileStatus.RATE_LIMITED)
        else:
            wait = retry_after
            if wait is None:
                wait = config.escalated(config.cooldown_on_error, profile.cooldown_strikes)
            self.cool(profile, now + wait, ProfileStatus.COOLING_DOWN)

    def cool(
        self, profile: AuthProfile, until: float, status: ProfileStatus, *, strike: bool = True
    ) -> None:
        """Hold ``profile`` out until ``until``; never shortens a longer hold."""
        if profile.status is ProfileStatus.DISABLED:
            return
        if profile.status is not ProfileStatus.AVAILABLE and profile.cooldown_until >= until:
            return  # never shorten a longer cooldown
        if profile.status is ProfileStatus.RATE_LIMITED and status is ProfileStatus.COOLING_DOWN:
            status = ProfileStatus.RATE_LIMITED  # the provider's wait stays provider-directed
        if strike and profile.status is ProfileStatus.AVAILABLE:
            # once per event: not again for requests in flight
            _set(profile, "cooldown_strikes", profile.cooldown_strikes + 1)
        _set(profile, "status", status)
        _set(profile, "cooldown_until", until)
        self.withdraw(profile)
        self._push_cooling(profile)

    def disable(self, profile: AuthProfile, until: float) -> None:
        """Disable ``profile`` until ``until`` (``inf``: until healed)."""
        if profile.status is ProfileStatus.DISABLED and profile.cooldown_until >= until:
            return
        if profile.status is not ProfileStatus.AVAILABLE:
            until = max(until, profile.cooldown_until)
        else:
            profile.cooldown_strikes += 1  # once per event: not again for requests in flight
        profile.status = ProfileStatus.DISABLED
        profile.cooldown_until = until
        self.withdraw(profile)
        if not math.isinf(until):
            self._push_cooling(profile)

    def heal(self, profile: AuthProfile) -> None:
        """Make ``profile`` ready with a clean record of failures."""
        profile.status = ProfileStatus.AVAILABLE
        profile.cooldown_until = 0.0
        profile.consecutive_failures = 0
        profile.cooldown_strikes = 0
        self.make_ready(profile)

    def wake(self, now: float) -> None:
        """Return to the pools every profile whose cooldown ran out by ``now``."""
        cooling = self._cooling
        while cooling and cooling[0][0] <= now:
            until, _, name = heapq.heappop(cooling)
            profile = self.profiles.get(name)
            if (
                profile is not None
                and profile.status is not ProfileStatus.AVAILABLE
                and profile.cooldown_until == until
            ):
                profile.status = ProfileStatus.AVAILABLE
                self.make_ready(profile)

    def forget_cooling(self) -> None:
        """Drop the cooling heap (every profile is about to be healed)."""
        self._cooling.clear()

    # -- from other processes -----------------------------------------------------------

    def take_in(
        self,
        profile: AuthProfile,
        status: ProfileStatus,
        until: float,
        strikes: int,
        *,
        error: str | None,
        authoritative: bool,
        now: float,
    ) -> bool:
        """Take in ``profile``'s state as another process left it; return whether it changed.

        Not ``authoritative`` (changes of this process are still on the way), only a
        longer rest is taken in.
        """
        resting = status is not ProfileStatus.AVAILABLE and until > now
        current = profile.status is not ProfileStatus.AVAILABLE and profile.cooldown_until > now
        if not authoritative and (not resting or (current and until <= profile.cooldown_until)):
            return False
        changed = False
        if resting:
            if profile.status is not status or profile.cooldown_until != until:
                profile.status = status
                profile.cooldown_until = until
                self.withdraw(profile)
                if not math.isinf(until):
                    self._push_cooling(profile)
                changed = True
            if error is not None:
                profile.last_error = error
        elif profile.status is not ProfileStatus.AVAILABLE:
            profile.status = ProfileStatus.AVAILABLE
            profile.cooldown_until = 0.0
            self.make_ready(profile)
            changed = True
        profile.cooldown_strikes = (
            strikes if authoritative else max(strikes, profile.cooldown_strikes)
        )
        return changed

    def give_back_use(self, name: str) -> None:
        """A handout that was never sent (admission refused it): its rpm place is free."""
        profile = self.profiles.get(name)
        if profile is not None and profile.rate_limit_rpm is not None and profile._recent:
            profile._recent.pop()

    def take_in_use(self, name: str, fingerprint: str, at: float) -> None:
        """Count a use of rpm-limited ``name`` by another process at clock time ``at``."""
        profile = self.profiles.get(name)
        if profile is None or profile.rate_limit_rpm is None or profile.fingerprint != fingerprint:
            return
        recent = profile._recent
        if not recent or recent[-1] <= at:
            recent.append(at)
        else:
            recent.insert(bisect.bisect(recent, at), at)

    # -- internals ----------------------------------------------------------------------

    def _forget_lone(self) -> None:
        """Forget the lone heads found: a profile entered or left the ready pools."""
        self._lone.clear()
        self._lone_asked.clear()

    def _lone_once_asked(self, provider: str | None) -> AuthProfile | None:
        """:meth:`_lone_in` at the second pick for ``provider`` since the pools changed
        (``None`` at the first: that pick walks the pool)."""
        asked = self._lone_asked
        if provider in asked:
            return self._lone_in(provider)
        if provider in self._ready:  # (others, names not canonical, always walk)
            asked.add(provider)
        return None

    def _lone_in(self, provider: str | None) -> AuthProfile | None:
        """What :meth:`pick` may hand out at once for ``provider`` (kept in ``_lone``): the
        pool's lone head, when the pool of every provider holds it alone among its
        priority too (a pick then moves it behind no equal, in neither pool); ``pick``
        still checks that it is open to the pick."""
        lone = self._ready[provider].lone_head()  # (a provider served: asked once)
        if lone is not None and len(self._homes[lone.name][0]) > 1:
            lone = None
        self._lone[provider] = lone
        return lone

    def _push_cooling(self, profile: AuthProfile) -> None:
        heapq.heappush(self._cooling, (profile.cooldown_until, next(self._sequence), profile.name))

    def _count_use(self, profile: AuthProfile, now: float) -> None:
        _set(profile, "last_used_at", now)
        self._ready[_ALL].touch(profile)
        self._ready[profile.provider].touch(profile)

    def _rpm_room(self, profile: AuthProfile, now: float) -> bool:
        rpm = profile.rate_limit_rpm
        if rpm is None:
            return True
        recent = profile._recent
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        return len(recent) < rpm

    def _within_rpm(self, profile: AuthProfile, now: float) -> bool:
        if profile.rate_limit_rpm is None:
            return True
        if self._rpm_room(profile, now):
            profile._recent.append(now)
            self.replica.used(profile, now)
            return True
        self.cool(profile, profile._recent[0] + 60.0, ProfileStatus.RATE_LIMITED, strike=False)
        return False
