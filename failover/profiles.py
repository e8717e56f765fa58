"""Auth profiles and the FailoverManager that hands them out, cools them and heals them.

The manager is synchronous and does no I/O: every method is a few dictionary operations.
Ready profiles wait in per-priority buckets in least-recently-used order; cooling ones wait
in a heap ordered by recovery time, so picking a key never scans the cooling ones.
"""

from __future__ import annotations

import bisect
import heapq
import inspect
import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from failover._secrets import mask_key, scrub
from failover.catalog import canonical_provider
from failover.config import FailoverConfig
from failover.errors import ConfigError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AuthProfile",
    "FailoverCallback",
    "FailoverManager",
    "FailoverStatus",
    "FailureKind",
    "ProfileSnapshot",
    "ProfileStatus",
]

logger = logging.getLogger("failover")

FailureKind = Literal["error", "rate_limit", "quota", "auth"]
"""How a failure affects a key: transient error, rate limit, out of quota, or dead key."""


class ProfileStatus(str, Enum):
    """The health of an auth profile."""

    AVAILABLE = "available"
    RATE_LIMITED = "rate_limited"
    COOLING_DOWN = "cooling_down"
    DISABLED = "disabled"


@dataclass(eq=False)
class AuthProfile:
    """One API key for one provider, with its health.

    Attributes:
        name: Unique name; used in events, logs and status instead of the key.
        provider: Provider name (``openai``, ``anthropic``, ``gemini``, ...).
        api_key: The secret. Never shown in ``repr``, events, logs or status.
        base_url: Where this key may be sent; the provider's public URL when ``None``.
        models: Model ids this key may be used for (``None``: any).
        priority: Lower is tried first; equal priorities share the load.
        rate_limit_rpm: Requests per minute this key is allowed; the manager holds the
            key back once it has handed it out that often in the last 60 s.
        rate_limit_tpm: Tokens per minute this key is allowed (informational).
        metadata: Free-form data for the application.
    """

    name: str
    provider: str
    api_key: str = field(repr=False)
    base_url: str | None = None
    models: Collection[str] | None = None
    priority: int = 0
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    status: ProfileStatus = ProfileStatus.AVAILABLE
    last_error: str | None = None
    last_error_at: float | None = None
    cooldown_until: float = 0.0
    consecutive_failures: int = 0
    cooldown_strikes: int = 0
    success_count: int = 0
    failure_count: int = 0
    last_used_at: float = field(default=0.0, repr=False)
    requests_remaining: int | None = field(default=None, repr=False)
    """Requests left in the key's window, from the last reply's rate-limit headers."""
    tokens_remaining: int | None = field(default=None, repr=False)
    """Tokens left in the key's window, from the last reply's rate-limit headers."""
    model_cooldowns: dict[str, float] = field(default_factory=dict, repr=False)
    """Models this key is resting from (model id -> clock time) after repeated transient
    failures of that model at this key's endpoint; the key stays usable for others."""
    _recent: deque[float] = field(default_factory=deque, repr=False, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"AuthProfile.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.provider, str) or not self.provider.strip():
            raise ConfigError(f"AuthProfile {self.name!r}: provider must be a non-empty string")
        self.provider = canonical_provider(self.provider)
        if not isinstance(self.api_key, str):
            raise ConfigError(f"AuthProfile {self.name!r}: api_key must be a string")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"AuthProfile {self.name!r}: base_url must be an http(s) URL with a host, "
                    f"got {scrub(self.base_url, self.api_key)!r}"
                )
            self.base_url = self.base_url.rstrip("/")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ConfigError(f"AuthProfile {self.name!r}: priority must be an int")
        for limit in ("rate_limit_rpm", "rate_limit_tpm"):
            value = getattr(self, limit)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"AuthProfile {self.name!r}: {limit} must be a positive int")
        if self.models is not None:
            if isinstance(self.models, str):
                raise ConfigError(f"AuthProfile {self.name!r}: models must be a list, not a str")
            self.models = frozenset(self.models)

    @property
    def masked_key(self) -> str:
        """The key as it may be shown: ``***`` and its last four characters."""
        return mask_key(self.api_key)

    def allows(self, model: str | None) -> bool:
        """Return whether this key may be used for ``model`` (any key allows ``None``)."""
        return model is None or self.models is None or model in self.models

    def resting_from(self, model: str | None, now: float) -> bool:
        """Return whether this key is resting from ``model`` at clock time ``now``."""
        return bool(self.model_cooldowns) and self.model_cooldowns.get(model or "", 0.0) > now

    def __repr__(self) -> str:
        return (
            f"AuthProfile(name={self.name!r}, provider={self.provider!r}, "
            f"key={self.masked_key!r}, priority={self.priority}, status={self.status.value!r})"
        )


@dataclass(frozen=True, slots=True)
class ProfileSnapshot:
    """A profile's health at one moment, safe to log: the key is masked."""

    name: str
    provider: str
    key: str
    base_url: str | None
    priority: int
    status: ProfileStatus
    cooldown_remaining: float
    consecutive_failures: int
    success_count: int
    failure_count: int
    last_error: str | None
    resting_models: dict[str, float] = field(default_factory=dict)
    requests_remaining: int | None = None
    tokens_remaining: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as a JSON-ready dict."""
        remaining = self.cooldown_remaining
        return {
            "name": self.name,
            "provider": self.provider,
            "key": self.key,
            "base_url": self.base_url,
            "priority": self.priority,
            "status": self.status.value,
            "cooldown_remaining": None if math.isinf(remaining) else round(remaining, 3),
            "consecutive_failures": self.consecutive_failures,
            "success_count": self.success_count,
            "failure_count": self.failure_count,
            "last_error": self.last_error,
            "resting_models": {m: round(t, 3) for m, t in self.resting_models.items()},
            "requests_remaining": self.requests_remaining,
            "tokens_remaining": self.tokens_remaining,
        }


@dataclass(frozen=True, slots=True)
class FailoverStatus:
    """The manager's state: profile counts, each profile's snapshot, and the config."""

    total_profiles: int
    available_profiles: int
    profiles: tuple[ProfileSnapshot, ...]
    config: FailoverConfig

    def to_dict(self) -> dict[str, Any]:
        """Return the status as a JSON-ready dict."""
        return {
            "total_profiles": self.total_profiles,
            "available_profiles": self.available_profiles,
            "profiles": [snapshot.to_dict() for snapshot in self.profiles],
            "config": self.config.to_dict(),
        }


FailoverCallback = Callable[[AuthProfile, "AuthProfile | None"], "Awaitable[None] | None"]
"""Called with the profile that failed and the one that will be used next (or ``None``)."""


class _Pool:
    """The ready profiles of one provider: by priority, least recently used first."""

    __slots__ = ("_buckets", "_priorities")

    def __init__(self) -> None:
        self._buckets: dict[int, dict[str, AuthProfile]] = {}
        self._priorities: list[int] = []

    def add(self, profile: AuthProfile) -> None:
        bucket = self._buckets.get(profile.priority)
        if bucket is None:
            bucket = self._buckets[profile.priority] = {}
            bisect.insort(self._priorities, profile.priority)
        bucket[profile.name] = profile

    def discard(self, profile: AuthProfile) -> None:
        bucket = self._buckets.get(profile.priority)
        if bucket is not None:
            bucket.pop(profile.name, None)

    def touch(self, profile: AuthProfile) -> None:
        bucket = self._buckets[profile.priority]
        del bucket[profile.name]
        bucket[profile.name] = profile

    def pick(self, model: str | None, exclude: Collection[str], now: float) -> AuthProfile | None:
        for priority in self._priorities:
            for profile in self._buckets[priority].values():
                if (
                    profile.name not in exclude
                    and profile.allows(model)
                    and not profile.resting_from(model, now)
                ):
                    return profile
        return None

    def has_usable(self, model: str | None, now: float) -> bool:
        return self.pick(model, (), now) is not None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())


_ALL = "\x00all"  # the pool of every provider's profiles


class FailoverManager:
    """Hands out auth profiles in priority order and tracks their health.

    Args:
        config: Retry and cooldown settings.
        profiles: Profiles to add at once.
        clock: A monotonic clock in seconds; inject a fake one in tests.

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
    ) -> None:
        if config is not None and not isinstance(config, FailoverConfig):
            raise ConfigError(f"config must be a FailoverConfig, got {type(config).__name__}")
        self.config = config or FailoverConfig()
        self.clock = clock
        self._profiles: dict[str, AuthProfile] = {}
        self._pools: dict[str, _Pool] = {_ALL: _Pool()}
        self._cooling: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._callbacks: list[FailoverCallback] = []
        self._pending: set[asyncio.Task[None]] = set()  # asyncio is imported when needed
        for profile in profiles:
            self.add_profile(profile)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> FailoverManager:
        """Build a manager from a ``failover.toml`` file's profiles and ``[settings]``."""
        from failover.config_file import load_config

        return load_config(path).manager()

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
        if profile.name in self._profiles:
            raise ConfigError(f"a profile named {profile.name!r} exists already")
        self._profiles[profile.name] = profile
        self._pools.setdefault(profile.provider, _Pool())
        now = self.clock()
        if profile.status is ProfileStatus.AVAILABLE or profile.cooldown_until <= now:
            profile.status = ProfileStatus.AVAILABLE
            self._make_ready(profile)
        elif not math.isinf(profile.cooldown_until):
            self._push_cooling(profile)

    def remove_profile(self, name: str) -> bool:
        """Remove the profile called ``name``; return whether there was one."""
        profile = self._profiles.pop(name, None)
        if profile is None:
            return False
        self._withdraw(profile)
        return True

    def get_profile(self, name: str) -> AuthProfile | None:
        """Return the profile called ``name``, or ``None``."""
        return self._profiles.get(name)

    def list_profiles(self) -> list[AuthProfile]:
        """Return every profile in priority order (stable: equal priorities keep their order)."""
        return sorted(self._profiles.values(), key=lambda profile: profile.priority)

    def providers(self) -> set[str]:
        """Return the names of the providers that have at least one profile."""
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
        comes first. Cooling and disabled profiles are never returned.

        Args:
            provider: Only profiles of this provider (``None``: any provider).
            model: Only profiles whose allowlist admits this model id.
            exclude: Names of profiles not to return (e.g. those tried already).
        """
        now = self.clock()
        self._wake(now)
        pool = self._pool_for(provider)
        if pool is None:
            return None
        while (profile := pool.pick(model, exclude, now)) is not None:
            if self._within_rpm(profile, now):
                profile.last_used_at = now
                self._pools[_ALL].touch(profile)
                self._pools[profile.provider].touch(profile)
                return profile
        return None

    def peek_next_profile(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        exclude: Collection[str] = (),
    ) -> AuthProfile | None:
        """Return the profile :meth:`get_next_profile` would return, without using it."""
        now = self.clock()
        self._wake(now)
        pool = self._pool_for(provider)
        return None if pool is None else pool.pick(model, exclude, now)

    def next_available_at(
        self, provider: str | None = None, *, model: str | None = None
    ) -> float | None:
        """Return the clock time at which a profile of ``provider`` is next usable.

        With ``model``, only profiles that may serve it count, and their rest from that
        model too. The current time when one is usable now; ``None`` when every one is
        disabled for good (or there are none).
        """
        now = self.clock()
        self._wake(now)
        pool = self._pool_for(provider)
        if pool is not None and pool.has_usable(model, now):
            return now
        wanted = None if provider is None else canonical_provider(provider)
        times = [
            max(
                p.cooldown_until if p.status is not ProfileStatus.AVAILABLE else now,
                p.model_cooldowns.get(model or "", now),
            )
            for p in self._profiles.values()
            if (wanted is None or p.provider == wanted) and p.allows(model)
        ]
        finite = [t for t in times if not math.isinf(t)]
        return min(finite) if finite else None

    # -- reporting outcomes -------------------------------------------------------------

    def mark_success(self, name: str) -> bool:
        """Record a successful call; return whether the profile was recovering from failures."""
        profile = self._require(name)
        recovering = profile.consecutive_failures > 0 or profile.cooldown_strikes > 0
        profile.success_count += 1
        profile.consecutive_failures = 0
        profile.cooldown_strikes = 0
        return recovering

    def mark_failure(
        self,
        name: str,
        error: str | BaseException,
        *,
        is_rate_limit: bool = False,
        retry_after: float | None = None,
        kind: FailureKind | None = None,
        model: str | None = None,
    ) -> ProfileStatus:
        """Record a failed call and cool, disable or keep the profile accordingly.

        Args:
            name: The profile's name.
            error: What went wrong; kept (scrubbed of keys) as ``last_error``.
            is_rate_limit: The seed's flag; the same as ``kind="rate_limit"``.
            retry_after: The provider's own wait in seconds; sets the cooldown.
            kind: ``"error"`` (transient; cools after ``failure_threshold`` in a row),
                ``"rate_limit"``, ``"quota"`` (long, escalating) or ``"auth"`` (disabled).
            model: For ``"error"``: the model that failed. Then every key of the provider
                at the same base URL rests from that model only (a per-endpoint, per-model
                circuit breaker) and stays usable for other models.

        Returns:
            The profile's status afterwards.
        """
        profile = self._require(name)
        if retry_after is not None and (math.isnan(retry_after) or retry_after < 0):
            raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
        kind = kind or ("rate_limit" if is_rate_limit else "error")
        now = self.clock()
        profile.failure_count += 1
        profile.consecutive_failures += 1
        profile.last_error = scrub(str(error) or type(error).__name__, profile.api_key)
        profile.last_error_at = now
        config = self.config
        if kind == "auth":
            self._disable(profile, math.inf)
        elif kind == "quota":
            base = retry_after or config.escalated(
                config.cooldown_on_quota, profile.cooldown_strikes, quota=True
            )
            self._disable(profile, now + base)
        elif kind == "rate_limit":
            wait = retry_after
            if wait is None:
                wait = config.escalated(config.cooldown_on_rate_limit, profile.cooldown_strikes)
            self._cool(profile, now + wait, ProfileStatus.RATE_LIMITED)
        elif retry_after is not None:
            self._cool(profile, now + retry_after, ProfileStatus.COOLING_DOWN)
        elif profile.consecutive_failures >= config.failure_threshold:
            wait = config.escalated(config.cooldown_on_error, profile.cooldown_strikes)
            if model is None:
                self._cool(profile, now + wait, ProfileStatus.COOLING_DOWN)
            else:
                self._rest_model(profile, model, now + wait)
        if profile.status is not ProfileStatus.AVAILABLE:
            self._notify_failover(profile)
        return profile.status

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
        profile = self._require(name)
        profile.requests_remaining = requests_remaining
        profile.tokens_remaining = tokens_remaining
        if spent_for is not None:
            self.hold_until_reset(name, spent_for)

    def hold_until_reset(self, name: str, reset_after: float) -> None:
        """Keep a profile whose budget is spent out of rotation for ``reset_after`` seconds."""
        profile = self._require(name)
        if reset_after > 0 and profile.status is not ProfileStatus.DISABLED:
            self._cool(
                profile, self.clock() + reset_after, ProfileStatus.RATE_LIMITED, strike=False
            )

    def disable(
        self, name: str, reason: str | None = None, *, duration: float | None = None
    ) -> None:
        """Take a profile out of rotation until :meth:`enable` (or for ``duration`` s)."""
        profile = self._require(name)
        if reason is not None:
            profile.last_error = scrub(reason, profile.api_key)
            profile.last_error_at = self.clock()
        self._disable(profile, math.inf if duration is None else self.clock() + duration)

    def enable(self, name: str) -> None:
        """Put a profile back in rotation with a clean record."""
        self._heal(self._require(name))

    def reset_all(self) -> None:
        """Make every profile available again, clearing cooldowns and failure counts."""
        self._cooling.clear()
        for profile in self._profiles.values():
            self._heal(profile)

    # -- callbacks ----------------------------------------------------------------------

    def on_failover(self, callback: FailoverCallback) -> FailoverCallback:
        """Register ``callback(failed, next_or_none)``; sync or async; usable as a decorator.

        It is called whenever a failure takes a profile out of rotation.
        """
        self._callbacks.append(callback)
        return callback

    async def drain_callbacks(self) -> None:
        """Wait for async failover callbacks still running."""
        import asyncio

        while self._pending:
            await asyncio.gather(*tuple(self._pending), return_exceptions=True)

    # -- delays and status ----------------------------------------------------------------

    def get_retry_delay(self, attempt: int) -> float:
        """The seed's delay before retry ``attempt``: ``min(retry_delay * 2**attempt, max)``."""
        return self.config.retry_delay_for(attempt)

    def effective_status(self, profile: AuthProfile) -> ProfileStatus:
        """The profile's status now (a cooldown that has run out counts as available)."""
        self._wake(self.clock())
        return profile.status

    def status(self) -> FailoverStatus:
        """Return a key-free snapshot of every profile."""
        now = self.clock()
        self._wake(now)
        snapshots = tuple(
            ProfileSnapshot(
                name=p.name,
                provider=p.provider,
                key=p.masked_key,
                base_url=p.base_url,
                priority=p.priority,
                status=p.status,
                cooldown_remaining=max(0.0, p.cooldown_until - now)
                if p.status is not ProfileStatus.AVAILABLE
                else 0.0,
                consecutive_failures=p.consecutive_failures,
                success_count=p.success_count,
                failure_count=p.failure_count,
                last_error=p.last_error,
                resting_models={m: t - now for m, t in p.model_cooldowns.items() if t > now},
                requests_remaining=p.requests_remaining,
                tokens_remaining=p.tokens_remaining,
            )
            for p in self.list_profiles()
        )
        available = sum(1 for s in snapshots if s.status is ProfileStatus.AVAILABLE)
        return FailoverStatus(len(snapshots), available, snapshots, self.config)

    def __repr__(self) -> str:
        return f"FailoverManager(profiles={len(self._profiles)}, config={self.config!r})"

    # -- internals --------------------------------------------------------------------

    def _require(self, name: str) -> AuthProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise KeyError(f"no profile named {name!r}") from None

    def _pool_for(self, provider: str | None) -> _Pool | None:
        """The ready profiles of ``provider`` (``None``: of every provider)."""
        return self._pools.get(_ALL if provider is None else canonical_provider(provider))

    def _make_ready(self, profile: AuthProfile) -> None:
        self._pools[_ALL].add(profile)
        self._pools[profile.provider].add(profile)

    def _withdraw(self, profile: AuthProfile) -> None:
        self._pools[_ALL].discard(profile)
        self._pools[profile.provider].discard(profile)

    def _push_cooling(self, profile: AuthProfile) -> None:
        heapq.heappush(self._cooling, (profile.cooldown_until, next(self._sequence), profile.name))

    def _cool(
        self, profile: AuthProfile, until: float, status: ProfileStatus, *, strike: bool = True
    ) -> None:
        if profile.status is ProfileStatus.DISABLED:
            return
        if profile.status is not ProfileStatus.AVAILABLE and profile.cooldown_until >= until:
            return  # never shorten a longer cooldown
        profile.status = status
        profile.cooldown_until = until
        if strike:
            profile.cooldown_strikes += 1
        self._withdraw(profile)
        self._push_cooling(profile)

    def _disable(self, profile: AuthProfile, until: float) -> None:
        if profile.status is ProfileStatus.DISABLED and profile.cooldown_until >= until:
            return
        if profile.status is not ProfileStatus.AVAILABLE:
            until = max(until, profile.cooldown_until)
        profile.status = ProfileStatus.DISABLED
        profile.cooldown_until = until
        profile.cooldown_strikes += 1
        self._withdraw(profile)
        if not math.isinf(until):
            self._push_cooling(profile)

    def _rest_model(self, failed: AuthProfile, model: str, until: float) -> None:
        """Rest ``model`` on every key that reaches it at the failed key's endpoint."""
        failed.cooldown_strikes += 1
        failed.consecutive_failures = 0
        for profile in self._profiles.values():
            if profile.provider == failed.provider and profile.base_url == failed.base_url:
                profile.model_cooldowns[model] = max(until, profile.model_cooldowns.get(model, 0))

    def _heal(self, profile: AuthProfile) -> None:
        profile.model_cooldowns.clear()
        profile.status = ProfileStatus.AVAILABLE
        profile.cooldown_until = 0.0
        profile.consecutive_failures = 0
        profile.cooldown_strikes = 0
        self._make_ready(profile)

    def _wake(self, now: float) -> None:
        cooling = self._cooling
        while cooling and cooling[0][0] <= now:
            until, _, name = heapq.heappop(cooling)
            profile = self._profiles.get(name)
            if (
                profile is not None
                and profile.status is not ProfileStatus.AVAILABLE
                and profile.cooldown_until == until
            ):
                profile.status = ProfileStatus.AVAILABLE
                self._make_ready(profile)

    def _within_rpm(self, profile: AuthProfile, now: float) -> bool:
        rpm = profile.rate_limit_rpm
        if rpm is None:
            return True
        recent = profile._recent
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) < rpm:
            recent.append(now)
            return True
        self._cool(profile, recent[0] + 60.0, ProfileStatus.RATE_LIMITED, strike=False)
        return False

    def _notify_failover(self, failed: AuthProfile) -> None:
        if not self._callbacks:
            return
        following = self.peek_next_profile(failed.provider, exclude=(failed.name,))
        for callback in self._callbacks:
            try:
                result = callback(failed, following)
                if inspect.isawaitable(result):
                    self._schedule(result)
            except Exception:
                logger.exception("failover callback %r raised", callback)

    def _schedule(self, awaitable: Awaitable[None]) -> None:
        import asyncio

        async def run() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception("async failover callback raised")

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(run())
            return
        task = loop.create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
