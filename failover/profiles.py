"""The FailoverManager: hands out auth profiles, cools them and heals them.

The manager is synchronous and does no I/O: every method is a few dictionary operations,
under one re-entrant lock. It is a facade over parts with one job each::

    FailoverManager      the public API (the seed's and more); the lock
      AuthProfile        auth_profile.py: the record, its checks, snapshots and status
      KeyPools           pools.py: ready keys by priority and use, the cooling heap
      Breakers           breakers.py: one circuit breaker per model at an endpoint
      Replica            replication.py: what a shared store hears (nothing, when local)
      FailoverCallbacks  failover_callbacks.py: on_failover, run outside the lock

The record's names are re-exported here: ``from failover.profiles import AuthProfile``.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from operator import attrgetter
from typing import Any

from failover._secrets import remember_secret, scrub
from failover.admission import Admission
from failover.affinity import DEFAULT_SESSION_TTL, PinStore, SessionPins, check_ttl
from failover.auth_profile import (
    AuthProfile,
    FailoverStatus,
    FailureKind,
    ProfileSnapshot,
    ProfileStatus,
    adopt_routing,
    checked_changes,
)
from failover.breakers import Breakers
from failover.budgets import Budget
from failover.config import FailoverConfig
from failover.errors import ConfigError
from failover.failover_callbacks import FailoverCallback, FailoverCallbacks
from failover.pools import KeyPools
from failover.replication import replica_for
from failover.store.base import BreakerKey, Store
from failover.store.memory import MemoryStore

__all__ = [
    "AuthProfile",
    "FailoverCallback",
    "FailoverManager",
    "FailoverStatus",
    "FailureKind",
    "ProfileSnapshot",
    "ProfileStatus",
    "last_profile_change",
]

_set = object.__setattr__  # for the counters the hot path updates: no routing-field check
_AVAILABLE = ProfileStatus.AVAILABLE
_priority = attrgetter("priority")
_profile_changes = itertools.count(1)
_last_profile_change = [0]


def last_profile_change() -> int:
    """A number that changes, to one never seen before, whenever any manager in this
    process adds, removes or updates a profile: what is made from profiles (the engine's
    key scrubber) is made again when it differs from the number it was made at.

    Process-wide, since managers may hold the same :class:`AuthProfile` objects (one list
    given to several transports): an update through one changes what the others hold.
    """
    return _last_profile_change[0]


def _profiles_changed() -> None:
    _last_profile_change[0] = next(_profile_changes)  # next() is atomic: no two alike


class FailoverManager:
    """Hands out auth profiles in priority order and tracks their health.

    Two kinds of health are tracked. A *key* leaves rotation when it is rate limited,
    out of quota, revoked, or reported failing through the seed's API
    (``mark_failure(name, error)``). A *model at an endpoint* (provider and base URL)
    rests when its circuit breaker opens: the client reports transient failures with
    ``kind="error", model=...``, and when enough of the recent requests failed
    (``FailoverConfig.breaker_*``), every key of that endpoint rests from that model
    only, then one probe request finds out whether it has recovered.

    Thread-safe: every method holds the manager's one re-entrant lock while it reads or
    changes its parts, so async clients on an event loop and sync SDK clients on threads
    of their own can share a manager. Failover callbacks run after the lock is released.

    Args:
        config: Retry and cooldown settings.
        profiles: Profiles to add at once.
        clock: A monotonic clock in seconds; inject a fake one in tests.
        store: Where the state is kept: :class:`~failover.store.MemoryStore` (the
            default, this process only) or :class:`~failover.store.RedisStore` (shared
            with every process using the same Redis). Picks are always served from
            memory; a shared store syncs in a background task that ``async with
            manager:`` (or :meth:`start` / :meth:`aclose`) runs.
        budgets: Spend budgets (:class:`~failover.budgets.Budget`) every request of every
            client and transport over this manager is held to; kept in the store.
        max_in_flight: Deployment (``provider/model``) -> how many requests it may run at
            once in this process (a key's own cap is its ``max_in_flight``).
        session_ttl: Seconds a conversation stays pinned to where it was last served after
            its last turn (near the providers' prompt-cache lifetimes, 5 minutes).

    Example:
        >>> manager = FailoverManager(profiles=[AuthProfile("a", "openai", "sk-...")])
        >>> manager.get_next_profile("openai").name
        'a'
    """

    def __init__(
        self,
        config: FailoverConfig | None = None,
        *,
        profiles: Iterable[AuthProfile] = (),
        clock: Callable[[], float] = time.monotonic,
        store: Store | None = None,
        budgets: Sequence[Budget] = (),
        max_in_flight: Mapping[str, int] | None = None,
        session_ttl: float = DEFAULT_SESSION_TTL,
    ) -> None:
        if config is not None and not isinstance(config, FailoverConfig):
            raise ConfigError(f"config must be a FailoverConfig, got {type(config).__name__}")
        self.config = config or FailoverConfig()
        self.clock = clock
        if store is not None and not isinstance(store, Store):
            raise ConfigError(f"store must be a failover.store.Store, got {type(store).__name__}")
        self.store: Store = store or MemoryStore()
        # Re-entrant: failover callbacks and a shared store's sync may call back in.
        self._lock = threading.RLock()
        self._replica = replica_for(self.store)  # "shared or not" is decided here, once
        self._pools = KeyPools(self._replica)
        self._profiles = self._pools.profiles
        self._breakers = Breakers(self._profiles, self._replica)
        self._tripped = self._breakers.tripped  # the open and half-open breakers
        self._callbacks = FailoverCallbacks()
        self.store.attach(self)
        if (
            profiles is None
            or isinstance(profiles, (str, bytes))
            or not isinstance(profiles, Iterable)
        ):
            raise ConfigError(
                f"profiles must be a list of AuthProfile, got {type(profiles).__name__}"
            )
        for profile in profiles:
            self.add_profile(profile)
        self.admission = Admission(budgets, max_in_flight=max_in_flight, store=self.store)
        self._session_ttl = check_ttl("session", session_ttl)
        self._sessions: PinStore | None = None
        """The gates before every attempt: spend budgets, token windows, in-flight caps,
        shared by every client and transport over this manager."""

    @property
    def sessions(self) -> PinStore:
        """Where each conversation (session) was last served, for as long as ``session_ttl``
        after its last turn: in the store (shared by every process with a RedisStore)."""
        if self._sessions is None:
            store = self.store
            if getattr(store, "shared", False):
                from failover.store.redis_sessions import RedisSessionPins

                redis, prefix = store.redis, store.prefix  # type: ignore[attr-defined]
                self._sessions = RedisSessionPins(redis, prefix, ttl=self._session_ttl)
            else:
                self._sessions = SessionPins(ttl=self._session_ttl)
        return self._sessions

    @classmethod
    def default_config(cls) -> FailoverManager:
        """Create a manager with the default configuration."""
        return cls()

    # -- registry ---------------------------------------------------------------------

    def add_profile(self, profile: AuthProfile) -> None:
        """Register ``profile``.

        Raises:
            ConfigError: A profile with the same name exists already.
        """
        if not isinstance(profile, AuthProfile):
            raise ConfigError(f"expected an AuthProfile, got {type(profile).__name__}")
        with self._lock:
            if profile.name in self._profiles:
                raise ConfigError(f"a profile named {profile.name!r} exists already")
            self._pools.add(profile, self.clock())
            self._breakers.mirror(profile)
            self._replica.registered(profile)
            _profiles_changed()

    def remove_profile(self, name: str) -> bool:
        """Remove the profile called ``name``; return whether there was one."""
        with self._lock:
            removed = self._pools.remove(name)
            if removed is None:
                return False
            # a request in flight may still meet its key in a reply: scrubbed all the same
            remember_secret(removed.api_key.get_secret_value())
            _profiles_changed()
            return True

    def update_profile(self, name: str, /, **changes: Any) -> AuthProfile:
        """Change a profile's routing fields, keeping the manager consistent.

        Args:
            name: The profile's name.
            **changes: New values for ``provider``, ``api_key``, ``base_url``, ``models``,
                ``priority``, ``rate_limit_rpm``, ``rate_limit_tpm``, ``weight`` or
                ``metadata``;
                validated as :class:`AuthProfile` validates them.

        Returns:
            The profile (the same object, changed in place).

        Raises:
            KeyError: No profile is called ``name``.
            ConfigError: An unknown field, a rename, or an invalid value.
        """
        with self._lock:
            profile = self._require(name)
            checked = checked_changes(profile, changes)
            pools = self._pools
            ready = pools.is_ready(profile)
            if ready:
                pools.withdraw(profile)
            if "api_key" in changes:
                # a request in flight may meet the old key in a reply; one that reads the new
                # key before the change is numbered below may fail with it meanwhile
                remember_secret(profile.api_key.get_secret_value())
                remember_secret(checked.api_key.get_secret_value())
            adopt_routing(profile, checked)
            pools.serve(profile.provider)
            self._breakers.mirror(profile)
            if ready:
                pools.make_ready(profile)
            self._replica.registered(profile)
            _profiles_changed()
            return profile

    def get_profile(self, name: str) -> AuthProfile | None:
        """Return the profile called ``name``, or ``None``."""
        return self._profiles.get(name)

    def list_profiles(self) -> list[AuthProfile]:
        """Return every profile in priority order (stable: equal priorities keep their order)."""
        with self._lock:
            return sorted(self._profiles.values(), key=_priority)

    def providers(self) -> set[str]:
        """Return the names of the providers that have at least one profile."""
        with self._lock:
            return {profile.provider for profile in self._profiles.values()}

    def __len__(self) -> int:
        return len(self._profiles)

    def len(self) -> int:
        """Return the number of profiles."""
        return len(self._profiles)

    def is_empty(self) -> bool:
        """Return whether no profile is registered."""
        return not self._profiles

    # -- choosing -----------------------------------------------------------------------

    def get_next_profile(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        exclude: Collection[str] = (),
    ) -> AuthProfile | None:
        """Return the next usable profile and count it as used, or ``None``.

        Profiles come in priority order; among equal priorities the least recently used
        comes first. Cooling and disabled profiles are never returned, nor profiles whose
        endpoint rests ``model`` (an open circuit breaker), except that a half-open
        breaker lets exactly one probe request through.

        Args:
            provider: Only profiles of this provider (``None``: any provider).
            model: Only profiles whose allowlist admits this model id.
            exclude: Names of profiles not to return (e.g. those tried already).
        """
        with self._lock:
            now = self.clock()
            if not self._tripped or model is None:  # no breaker open: none to ask (hot path)
                return self._pools.pick(provider, model, exclude, None, now)
            breakers = self._breakers
            resting = breakers.resting_check(model, now, self.config.breaker_window)
            profile = self._pools.pick(provider, model, exclude, resting, now)
            if profile is not None:
                breakers.probe_sent(profile, model, now)  # the half-open breaker's one probe
            return profile

    def peek_next_profile(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        exclude: Collection[str] = (),
    ) -> AuthProfile | None:
        """Return the profile :meth:`get_next_profile` would return, without using it."""
        with self._lock:
            now = self.clock()
            resting = self._breakers.resting_check(model, now, self.config.breaker_window)
            return self._pools.peek(provider, model, exclude, resting, now)

    def least_recently_failed(
        self,
        provider: str,
        *,
        model: str | None = None,
        exclude: Collection[str] = (),
    ) -> AuthProfile | None:
        """Return the least-bad profile when none is usable, and count it as used.

        Among the profiles of ``provider`` that admit ``model`` and are not excluded,
        only those held back for transient reasons are candidates: cooling down after
        errors, or resting from ``model`` because their endpoint's breaker is open. A
        rate-limited key, one out of quota and a disabled one never are. The one whose
        last failure is oldest wins (then the least recently used).

        Returns:
            The profile, or ``None`` when no candidate is left.
        """
        with self._lock:
            return self._pools.least_recently_failed(provider, model, exclude, self.clock())

    def next_available_at(
        self, provider: str | None = None, *, model: str | None = None
    ) -> float | None:
        """Return the clock time at which a profile of ``provider`` is next usable.

        With ``model``, only profiles that may serve it count, and their endpoint's rest
        from that model too. The current time when one is usable now; ``None`` when every
        one is disabled for good (or there are none).
        """
        with self._lock:
            now = self.clock()
            window = self.config.breaker_window
            breakers = self._breakers
            resting = breakers.resting_check(model, now, window)
            if self._pools.has_ready(provider, model, resting, now):
                return now
            ready_at = partial(breakers.ready_at, model=model, now=now, window=window)
            return self._pools.earliest_ready(provider, model, ready_at, now)

    def model_rest_until(self, name: str, model: str) -> float:
        """Return the clock time until which ``name``'s endpoint rests ``model``.

        ``0.0`` when the breaker of ``model`` at that endpoint is closed; a time already
        past while it is half-open (waiting for its probe's outcome).
        """
        with self._lock:
            return self._breakers.rest_until(self._require(name), model)

    # -- reporting outcomes -------------------------------------------------------------

    def mark_success(self, name: str, *, model: str | None = None) -> bool:
        """Record a successful call; return whether the profile was recovering.

        A profile cooling down after errors is available again at once (the seed's
        rule); a provider-directed wait (rate limit, quota) is never shortened and a key
        disabled for auth is never re-enabled. With ``model``, the success also counts
        for the circuit breaker of that model at the profile's endpoint, and closes it
        when it was the half-open probe.
        """
        with self._lock:
            profile = self._profiles.get(name) or self._require(name)
            _set(profile, "success_count", profile.success_count + 1)
            closed = model is not None and self._breakers.succeeded(
                profile, model, self.clock(), self.config
            )
            if (
                profile.status is _AVAILABLE
                and not (profile.consecutive_failures or profile.cooldown_strikes)
                and not closed
            ):
                return False  # a healthy key: nothing else changes
            return self._recovered(profile, closed)

    def _recovered(self, profile: AuthProfile, closed: bool) -> bool:
        """The rest of :meth:`mark_success` for a key that failed before, is held out, or
        whose success ``closed`` its endpoint's breaker of the model."""
        recovering = profile.consecutive_failures > 0 or profile.cooldown_strikes > 0
        if recovering:
            profile.consecutive_failures = 0
        recovering = closed or recovering
        if profile.status is ProfileStatus.COOLING_DOWN:
            recovering = True
            self._pools.heal(profile)  # the endpoint's breakers stay as they are
        if profile.status is ProfileStatus.AVAILABLE:
            if profile.cooldown_strikes:
                profile.cooldown_strikes = 0
            if recovering:  # a key still held here is not announced healed
                self._replica.profile_changed(profile, "recover", struck=False)
        return recovering

    def mark_failure(
        self,
        name: str,
        error: str | BaseException,
        is_rate_limit: bool = False,
        *,
        retry_after: float | None = None,
        kind: FailureKind | None = None,
        model: str | None = None,
    ) -> ProfileStatus:
        """Record a failed call and cool, disable or keep the profile accordingly.

        Called as the seed calls it (``mark_failure(name, error, is_rate_limit)``), the
        profile leaves rotation at once, for ``cooldown_on_error`` (or, rate limited,
        for ``retry_after`` or ``cooldown_on_rate_limit``), escalating for repeat
        offenders, and the :meth:`on_failover` callbacks run with ``(failed, next)``.

        Args:
            name: The profile's name.
            error: What went wrong; kept (scrubbed of keys) as ``last_error``.
            is_rate_limit: The seed's flag; the same as ``kind="rate_limit"``.
            retry_after: The provider's own wait in seconds; sets the cooldown.
            kind: ``"error"`` (transient), ``"rate_limit"``, ``"quota"`` (long,
                escalating) or ``"auth"`` (disabled until :meth:`enable`).
            model: With ``kind="error"``: the model that failed. The failure then counts
                for the circuit breaker of that model at the profile's endpoint
                (provider and base URL) and the key itself is not cooled.

        Returns:
            The profile's status afterwards.
        """
        with self._lock:
            profile = self._require(name)
            if retry_after is not None and (math.isnan(retry_after) or retry_after < 0):
                raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
            breaker_only = kind == "error" and model is not None
            kind = kind or ("rate_limit" if is_rate_limit else "error")
            now = self.clock()
            self._pools.wake(now)  # a rest that is over no longer counts as "already resting"
            was_available = profile.status is ProfileStatus.AVAILABLE
            before = (profile.status, profile.cooldown_until, profile.cooldown_strikes)
            _set(profile, "failure_count", profile.failure_count + 1)
            _set(profile, "consecutive_failures", profile.consecutive_failures + 1)
            error_text = scrub(str(error) or type(error).__name__, profile.api_key)
            _set(profile, "last_error", error_text)
            _set(profile, "last_error_at", now)
            if breaker_only:
                assert model is not None
                self._breakers.outcome(profile, model, now, self.config, failed=True)
            else:
                self._pools.fail(profile, kind, retry_after, now, self.config)
            status = profile.status
            after = (status, profile.cooldown_until, profile.cooldown_strikes)
            if after != before:
                self._replica.profile_changed(profile, "cool", struck=after[2] > before[2])
            callbacks = self._callbacks.registered() if was_available else ()
            if not callbacks or status is ProfileStatus.AVAILABLE:
                return status
            following = self.peek_next_profile(profile.provider, model=model, exclude=(name,))
        self._callbacks.notify(callbacks, profile, following)  # outside the lock
        return status

    def record_headroom(
        self,
        name: str,
        *,
        requests_remaining: int | None,
        tokens_remaining: int | None,
        spent_for: float | None = None,
    ) -> None:
        """Note what a reply said is left of the key's budgets.

        When a budget is spent (``spent_for`` seconds until it resets), the key is held out
        of rotation until then, before it ever earns a 429. That counts as no failure.
        """
        with self._lock:
            profile = self._require(name)
            _set(profile, "requests_remaining", requests_remaining)  # not routing fields
            _set(profile, "tokens_remaining", tokens_remaining)
            if spent_for is not None:
                self.hold_until_reset(name, spent_for)

    def hold_until_reset(self, name: str, reset_after: float) -> None:
        """Keep a profile whose budget is spent out of rotation for ``reset_after`` seconds."""
        with self._lock:
            profile = self._require(name)
            if reset_after > 0 and profile.status is not ProfileStatus.DISABLED:
                until = self.clock() + reset_after
                self._pools.cool(profile, until, ProfileStatus.RATE_LIMITED, strike=False)
                self._replica.profile_changed(profile, "cool", struck=False)

    def disable(
        self, name: str, reason: str | None = None, *, duration: float | None = None
    ) -> None:
        """Take a profile out of rotation until :meth:`enable` (or for ``duration`` s)."""
        with self._lock:
            profile = self._require(name)
            if reason is not None:
                profile.last_error = scrub(reason, profile.api_key)
                profile.last_error_at = self.clock()
            until = math.inf if duration is None else self.clock() + duration
            self._pools.disable(profile, until)
            self._replica.profile_changed(profile, "cool", struck=True)

    def enable(self, name: str) -> None:
        """Put a profile back in rotation with a clean record (in every process sharing
        the store)."""
        with self._lock:
            profile = self._require(name)
            self._breakers.close_endpoint_of(profile)
            self._pools.heal(profile)
            self._replica.profile_changed(profile, "heal", struck=False)

    def reset_all(self) -> None:
        """Make every profile available again, clearing cooldowns, breakers and counts."""
        with self._lock:
            self._pools.forget_cooling()
            self._breakers.clear()
            for profile in self._profiles.values():
                self._pools.heal(profile)
                self._replica.profile_changed(profile, "heal", struck=False)

    # -- callbacks ----------------------------------------------------------------------

    def on_failover(self, callback: FailoverCallback) -> FailoverCallback:
        """Register ``callback(failed, next_or_none)``; sync or async; usable as a decorator.

        It is called whenever a failure takes a profile out of rotation. An async one
        runs in the background (on asyncio or trio); :meth:`drain_callbacks` waits for it.
        """
        with self._lock:
            self._callbacks.add(callback)
        return callback

    async def drain_callbacks(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds for async failover callbacks, then cancel them."""
        await self._callbacks.drain(grace)

    # -- sharing ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the store's background sync (nothing to do for a :class:`MemoryStore`)."""
        await self.store.start()

    @property
    def ready(self) -> bool:
        """Whether picks see what other processes stored (always, for a :class:`MemoryStore`).

        A shared store is not ready from :meth:`start` until its first load of the shared
        state is done, or it gave up (Redis unreachable, or its ``ready_timeout`` passed).
        """
        return self.store.ready

    async def wait_ready(self) -> None:
        """Wait until :attr:`ready`, so that a new process's first requests skip the keys
        other processes closed.

        Bounded by the store: a :class:`~failover.store.RedisStore` waits at most its
        ``ready_timeout`` (1 s by default) from :meth:`start`, then fails open (requests go
        ahead on this process's own view) with one warning. Returns at once when ready.
        """
        await self.store.wait_ready()

    async def aclose(self) -> None:
        """Stop the store's background sync and wait for async failover callbacks."""
        try:
            await self.drain_callbacks()
        finally:
            await self.store.aclose()

    async def __aenter__(self) -> FailoverManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def shared_profiles(self) -> list[AuthProfile]:
        """The profiles out of rotation now: what a shared store re-publishes on reconnect."""
        with self._lock:
            return self._pools.held_out(self.clock())

    def shared_breakers(self) -> list[tuple[BreakerKey, float, int]]:
        """The breakers open now, as ``(key, open_until, strikes)``."""
        with self._lock:
            return self._breakers.open_now(self.clock())

    def apply_shared_profile(
        self,
        name: str,
        fingerprint: str,
        status: ProfileStatus,
        until: float,
        strikes: int,
        *,
        error: str | None = None,
        authoritative: bool = True,
    ) -> bool:
        """Take in a profile's state as another process left it; return whether it changed.

        Called by a shared store. ``until`` is on this manager's clock. A profile unknown
        here, or whose key differs (another fingerprint), is left alone. Not
        ``authoritative`` (this process has changes of its own still on the way), only a
        longer rest is taken in.
        """
        with self._lock:
            profile = self._profiles.get(name)
            if profile is None or profile.fingerprint != fingerprint:
                return False
            return self._pools.take_in(
                profile,
                status,
                until,
                strikes,
                error=error,
                authoritative=authoritative,
                now=self.clock(),
            )

    def apply_shared_breaker(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """Take in a breaker's state as another process left it (``open_until`` 0: closed).

        A longer rest is taken in; a close (someone's probe succeeded, or an ``enable``
        with ``force``) closes a breaker here that is half-open, never one that this
        process re-opened since.
        """
        with self._lock:
            self._breakers.take_in(key, open_until, strikes, force=force, now=self.clock())

    def give_back_use(self, name: str) -> None:
        """The key ``name`` was handed out but nothing was sent (admission refused the
        attempt): the place it took in its ``rate_limit_rpm`` minute is free again (in
        this process; other processes sharing a store keep counting it for the minute)."""
        with self._lock:
            self._pools.give_back_use(name)

    def apply_shared_use(self, name: str, fingerprint: str, at: float) -> None:
        """Count a use of rpm-limited ``name`` by another process at clock time ``at``."""
        with self._lock:
            self._pools.take_in_use(name, fingerprint, at)

    # -- delays and status ----------------------------------------------------------------

    def get_retry_delay(self, attempt: int) -> float:
        """The seed's delay before retry ``attempt``: ``min(retry_delay * 2**attempt, max)``."""
        return self.config.retry_delay_for(attempt)

    def effective_status(self, profile: AuthProfile) -> ProfileStatus:
        """The profile's status now (a cooldown that has run out counts as available)."""
        with self._lock:
            self._pools.wake(self.clock())
            return profile.status

    def status(self) -> FailoverStatus:
        """Return a key-free snapshot of every profile."""
        with self._lock:
            now = self.clock()
            self._pools.wake(now)
            conflicts = self.store.conflicts
            snapshots = tuple(
                ProfileSnapshot.of(p, now, conflicts.get(p.name)) for p in self.list_profiles()
            )
        available = sum(1 for s in snapshots if s.status is ProfileStatus.AVAILABLE)
        return FailoverStatus(len(snapshots), available, snapshots, self.config)

    def __repr__(self) -> str:
        return f"FailoverManager(profiles={len(self._profiles)}, config={self.config!r})"

    def _require(self, name: str) -> AuthProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise KeyError(f"no profile named {name!r}") from None
