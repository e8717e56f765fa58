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
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from failover._secrets import SecretKey, key_fingerprint, scrub, shown_url
from failover._tasks import BackgroundTasks, running_on_trio
from failover.catalog import canonical_provider, default_catalog
from failover.config import FailoverConfig
from failover.errors import ConfigError, did_you_mean
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


_CREDENTIAL_PARAMETERS = frozenset(
    {
        "key",
        "api-key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "secret",
        "password",
        "sig",
        "signature",
        "auth",
    }
)


def _refuse_credentials_in(name: str, url: SplitResult, key: SecretKey) -> None:
    """Refuse a base URL that carries a secret: HTTP libraries log URLs, status shows them.

    Raises:
        ConfigError: The URL has a user or password, a credential-like query parameter,
            or the key itself (the message never shows any of them).
    """
    secret = key.get_secret_value()
    names = {pair.partition("=")[0].lower() for pair in url.query.split("&") if pair}
    if url.username is not None or url.password is not None:
        found = "a user or password"
    elif names & _CREDENTIAL_PARAMETERS:
        found = "a credential in its query"
    elif secret and secret in url.geturl():
        found = "the key"
    else:
        return
    raise ConfigError(
        f"AuthProfile {name!r}: base_url must not carry {found} (URLs are logged and shown); "
        "put the key in api_key"
    )


_BREAKER_LIMIT = 1024
"""Endpoint-and-model breakers a manager keeps; the least recently used are forgotten."""

_ROUTING_FIELDS = frozenset(
    {
        "name",
        "provider",
        "api_key",
        "base_url",
        "models",
        "priority",
        "rate_limit_rpm",
        "rate_limit_tpm",
        "weight",
    }
)
"""The fields that decide where a profile is routed; only the manager may change them."""


_KEY_PREFIXES = ("sk-", "sk_", "AIza", "gsk_", "xai-", "hf_", "pplx-", "nvapi-", "r8_")
"""How API keys of well-known providers begin (OpenAI, Anthropic, Google, Groq, ...)."""


def _looks_like_key(value: str) -> bool:
    """Whether ``value`` looks like an API key: a key's prefix, or long and high-entropy."""
    if value.startswith(_KEY_PREFIXES):
        return True
    if len(value) < 20:
        return False
    counts = [value.count(char) for char in set(value)]
    entropy = -sum(c / len(value) * math.log2(c / len(value)) for c in counts)
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return len(value) >= 40 or (mixed and entropy >= 3.5)


def _check_provider(name: str, provider: str) -> None:
    """Refuse a provider no registry knows: with a did-you-mean, never echoing a key."""
    from failover import providers  # the adapters' registry; imported late (it imports failover)

    known = set(providers.registered_providers()) | set(default_catalog.providers())
    if canonical_provider(provider) in known:
        return
    if _looks_like_key(provider.strip()):
        raise ConfigError(
            f"AuthProfile {name!r}: the provider looks like an API key (not shown); are the "
            "arguments swapped? Write AuthProfile(name, provider, api_key), e.g. "
            f"AuthProfile({name!r}, 'openai', key); providers: {', '.join(sorted(known))}"
        )
    hint = did_you_mean(canonical_provider(provider), known)
    raise ConfigError(
        f"AuthProfile {name!r}: unknown provider {provider!r}{hint} "
        f"(providers: {', '.join(sorted(known))}; add others with providers.add_provider)"
    )


def _cloud_adapter(provider: str) -> Any:
    """The adapter of a cloud provider (one with ``base_url_for``: its credentials may come
    from the cloud's own chain, its URL from a region), or ``None``."""
    from failover import providers

    try:
        adapter = providers.get_adapter(provider)
    except ConfigError:
        return None
    return adapter if hasattr(adapter, "base_url_for") else None


def _checked_key(name: str, api_key: object) -> SecretKey:
    """Return ``api_key`` as a :class:`SecretKey`, refusing what no header can carry."""
    if isinstance(api_key, SecretKey):
        value = api_key.get_secret_value()
    elif isinstance(api_key, str):
        value = api_key
    else:
        raise ConfigError(
            f"AuthProfile {name!r}: api_key must be a str, got {type(api_key).__name__}"
        )
    for position, char in enumerate(value):
        if char.isspace() or unicodedata.category(char).startswith("C"):
            kind = "whitespace" if char.isspace() else "a control character"
            raise ConfigError(
                f"AuthProfile {name!r}: api_key contains {kind} at position {position} "
                f"(of {len(value)}); copy the key without spaces, newlines or quotes"
            )
    return api_key if isinstance(api_key, SecretKey) else SecretKey(value)


@dataclass(eq=False, init=False)
class AuthProfile:
    """One API key for one provider, with its health.

    The routing fields (``name``, ``provider``, ``api_key``, ``base_url``, ``models``,
    ``priority``, ``rate_limit_rpm``, ``rate_limit_tpm``) cannot be assigned once the
    profile exists; change them with :meth:`FailoverManager.update_profile`, which keeps
    the manager's pools consistent.

    Attributes:
        name: Unique name; used in events, logs and status instead of the key.
        provider: Provider name (``openai``, ``anthropic``, ``gemini``, ...).
        api_key: The secret, as a :class:`~failover._secrets.SecretKey` (a plain ``str``
            is accepted and wrapped). Its ``repr``/``str``/f-string show only the masked
            form; ``api_key.get_secret_value()`` gives the real key.
        base_url: Where this key may be sent; the provider's public URL when ``None``.
        models: Model ids this key may be used for (``None``: any).
        priority: Lower is tried first; equal priorities share the load.
        rate_limit_rpm: Requests per minute this key is allowed; the manager holds the
            key back once it has handed it out that often in the last 60 s.
        rate_limit_tpm: Tokens per minute this key is allowed (informational).
        metadata: Free-form data for the application.
        weight: This key's share of the load under the ``weighted`` routing strategy
            (and its deployment's, summed over the deployment's keys).
        region: The cloud region of a cloud provider (``bedrock``: ``us-east-1``, ...;
            ``vertex_*``: ``us-east5``, ``global``, ...); with ``project`` it gives the
            default ``base_url``.
        project: The Google Cloud project of a ``vertex_*`` provider.
        credentials: A cloud provider's credentials when ``api_key`` is empty: for
            ``bedrock`` a botocore ``Credentials`` or ``Session`` (default: the AWS
            chain), for ``vertex_*`` a google-auth ``Credentials`` or the path of a
            service-account file (default: application default credentials). Never shown.
    """

    name: str
    provider: str
    api_key: SecretKey = field(repr=False)
    base_url: str | None = None
    models: frozenset[str] | None = None
    priority: int = 0
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    region: str | None = None
    project: str | None = None
    credentials: Any = field(default=None, repr=False)
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
    """Models this key's endpoint is resting from (model id -> clock time) while the
    circuit breaker of that model at that endpoint is open; the key stays usable for
    others. A view kept by the manager, which decides with the breaker itself."""
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def __init__(
        self,
        name: str,
        provider: str,
        api_key: str | SecretKey,
        base_url: str | None = None,
        models: Collection[str] | None = None,
        priority: int = 0,
        rate_limit_rpm: int | None = None,
        rate_limit_tpm: int | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        weight: float = 1.0,
        status: ProfileStatus = ProfileStatus.AVAILABLE,
        cooldown_until: float = 0.0,
        region: str | None = None,
        project: str | None = None,
        credentials: Any = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"AuthProfile.name must be a non-empty string, got {name!r}")
        if not isinstance(provider, str) or not provider.strip():
            raise ConfigError(f"AuthProfile {name!r}: provider must be a non-empty string")
        _check_provider(name, provider)
        key = _checked_key(name, api_key)
        cloud = _cloud_adapter(provider)
        if base_url is None and cloud is not None:
            base_url = cloud.base_url_for(region=region, project=project)
        if not key.get_secret_value() and not default_catalog.is_local(provider) and cloud is None:
            raise ConfigError(
                f"AuthProfile {name!r}: api_key is empty; {canonical_provider(provider)} needs "
                "a key (only local providers such as ollama and vllm take none)"
            )
        if base_url is not None:
            parts = urlsplit(base_url) if isinstance(base_url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                shown = scrub(base_url, key) if isinstance(base_url, str) else base_url
                raise ConfigError(
                    f"AuthProfile {name!r}: base_url must be an http(s) URL with a host, "
                    f"got {shown!r}"
                )
            _refuse_credentials_in(name, parts, key)
            base_url = base_url.rstrip("/")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"AuthProfile {name!r}: priority must be an int")
        for limit, value in (
            ("rate_limit_rpm", rate_limit_rpm),
            ("rate_limit_tpm", rate_limit_tpm),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ConfigError(f"AuthProfile {name!r}: {limit} must be a positive int")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (0 <= weight < math.inf)
        ):
            raise ConfigError(f"AuthProfile {name!r}: weight must be a number >= 0")
        if models is not None and isinstance(models, str):
            raise ConfigError(f"AuthProfile {name!r}: models must be a list, not a str")
        if metadata is not None and not isinstance(metadata, dict):
            raise ConfigError(f"AuthProfile {name!r}: metadata must be a dict")
        routing = {
            "name": name,
            "provider": canonical_provider(provider),
            "api_key": key,
            "base_url": base_url,
            "models": None if models is None else frozenset(models),
            "priority": priority,
            "rate_limit_rpm": rate_limit_rpm,
            "rate_limit_tpm": rate_limit_tpm,
            "weight": float(weight),
        }
        for attribute, routed in routing.items():
            object.__setattr__(self, attribute, routed)
        self.metadata = {} if metadata is None else metadata
        self.region = region
        self.project = project
        self.credentials = credentials
        self.status = ProfileStatus(status)
        self.last_error = None
        self.last_error_at = None
        self.cooldown_until = cooldown_until
        self.consecutive_failures = 0
        self.cooldown_strikes = 0
        self.success_count = 0
        self.failure_count = 0
        self.last_used_at = 0.0
        self.requests_remaining = None
        self.tokens_remaining = None
        self.model_cooldowns = {}
        self._recent = deque()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ROUTING_FIELDS:
            raise AttributeError(
                f"AuthProfile.{name} cannot be assigned once the profile exists; use "
                f"FailoverManager.update_profile({self.name!r}, {name}=...) so the "
                "manager's pools stay consistent"
            )
        object.__setattr__(self, name, value)

    @property
    def masked_key(self) -> str:
        """The key as it may be shown: ``***`` and its last four characters."""
        return self.api_key.masked

    @property
    def fingerprint(self) -> str:
        """A short digest of the key that tells keys apart and reveals nothing of them."""
        return key_fingerprint(self.api_key)

    @property
    def endpoint(self) -> tuple[str, str | None]:
        """Where this key's requests go: ``(provider, base_url)``."""
        return self.provider, self.base_url

    def allows(self, model: str | None) -> bool:
        """Return whether this key may be used for ``model`` (any key allows ``None``)."""
        return model is None or self.models is None or model in self.models

    def resting_from(self, model: str | None, now: float) -> bool:
        """Return whether this key's endpoint rests ``model`` at clock time ``now``."""
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
    conflict: str | None = None
    """Why a shared store keeps this key's state apart from another process's under the
    same name (``"base_url"``: the same key at another base URL; ``"routing"``: other
    models, priority or rpm), or ``None``."""

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
            "conflict": self.conflict,
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


Resting = Callable[[AuthProfile], bool]
"""Whether a ready profile is resting from the wanted model (its endpoint's breaker)."""


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
        for priority in self._priorities:
            for profile in self._buckets[priority].values():
                if (
                    profile.name not in exclude
                    and profile.allows(model)
                    and (resting is None or not resting(profile))
                ):
                    return profile
        return None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())


_ALL = "\x00all"  # the pool of every provider's profiles
_set = object.__setattr__  # for the counters the hot path updates: no routing-field check
_BUCKETS = 10  # a breaker's window is kept as this many time buckets


class _Breaker:
    """The circuit breaker of one model at one endpoint.

    Closed, it counts outcomes over a sliding window (in ``_BUCKETS`` time buckets, so
    memory does not grow with traffic) and opens when the share of failures reaches the
    configured rate over at least the minimum volume. Open, it rests the model until
    ``open_until``. Half-open (``open_until`` has passed), it lets one probe through:
    the probe's success closes it, its failure re-opens it for longer.
    """

    __slots__ = ("buckets", "closed_at", "failed", "open_until", "probe_at", "strikes", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [start, total, failed]
        self.total = 0
        self.failed = 0
        self.open_until = 0.0  # 0.0: closed
        self.strikes = 0  # openings in a row, for the escalating rest
        self.closed_at = -math.inf
        self.probe_at: float | None = None  # when the half-open probe was handed out

    def count(self, failed: bool, now: float, window: float) -> None:
        width = window / _BUCKETS
        buckets = self.buckets
        while buckets and buckets[0][0] <= now - window:
            _, total, failures = buckets.popleft()
            self.total -= int(total)
            self.failed -= int(failures)
        if not buckets or buckets[-1][0] + width <= now:
            buckets.append([now, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self.total += 1
        if failed:
            bucket[2] += 1
            self.failed += 1

    def forget(self) -> None:
        self.buckets.clear()
        self.total = self.failed = 0

    def resting(self, now: float, probe_timeout: float) -> bool:
        """Whether no request may go now (open, or half-open with its probe out)."""
        if now < self.open_until:
            return True
        return self.probe_at is not None and now < self.probe_at + probe_timeout

    def ready_at(self, now: float, probe_timeout: float) -> float:
        if now < self.open_until:
            return self.open_until
        if self.probe_at is not None and now < self.probe_at + probe_timeout:
            return self.probe_at + probe_timeout
        return now


class FailoverManager:
    """Hands out auth profiles in priority order and tracks their health.

    Two kinds of health are tracked. A *key* leaves rotation when it is rate limited,
    out of quota, revoked, or reported failing through the seed's API
    (``mark_failure(name, error)``). A *model at an endpoint* (provider and base URL)
    rests when its circuit breaker opens: the client reports transient failures with
    ``kind="error", model=...``, and when enough of the recent requests failed
    (``FailoverConfig.breaker_*``), every key of that endpoint rests from that model
    only, then one probe request finds out whether it has recovered.

    Args:
        config: Retry and cooldown settings.
        profiles: Profiles to add at once.
        clock: A monotonic clock in seconds; inject a fake one in tests.
        store: Where the state is kept: :class:`~failover.store.MemoryStore` (the
            default, this process only) or :class:`~failover.store.RedisStore` (shared
            with every process using the same Redis). Picks are always served from
            memory; a shared store syncs in a background task that ``async with
            manager:`` (or :meth:`start` / :meth:`aclose`) runs.

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
        self._tasks = BackgroundTasks()
        self._breakers: dict[BreakerKey, _Breaker] = {}
        self._tripped: dict[BreakerKey, _Breaker] = {}  # the breakers not closed
        if store is not None and not isinstance(store, Store):
            raise ConfigError(f"store must be a failover.store.Store, got {type(store).__name__}")
        self.store: Store = store or MemoryStore()
        self._shared = self.store.shared
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
        self._mirror_breakers(profile)
        if self._shared:
            self.store.register(profile)
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
        profile = self._require(name)
        allowed = (_ROUTING_FIELDS - {"name"}) | {"metadata"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            hint = "; to rename, remove_profile and add_profile" if "name" in unknown else ""
            raise ConfigError(
                f"update_profile({name!r}): cannot change {', '.join(unknown)}; "
                f"changeable: {', '.join(sorted(allowed))}{hint}"
            )
        current: dict[str, Any] = {
            field_name: getattr(profile, field_name) for field_name in _ROUTING_FIELDS
        }
        current["metadata"] = profile.metadata
        current.update(changes)
        checked = AuthProfile(**current)  # validates every field the AuthProfile way
        ready = profile in self._pools[_ALL]
        if ready:
            self._withdraw(profile)
        for field_name in _ROUTING_FIELDS - {"name"}:
            object.__setattr__(profile, field_name, getattr(checked, field_name))
        profile.metadata = checked.metadata
        self._pools.setdefault(profile.provider, _Pool())
        self._mirror_breakers(profile)
        if ready:
            self._make_ready(profile)
        if self._shared:
            self.store.register(profile)
        return profile

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
        comes first. Cooling and disabled profiles are never returned, nor profiles whose
        endpoint rests ``model`` (an open circuit breaker), except that a half-open
        breaker lets exactly one probe request through.

        Args:
            provider: Only profiles of this provider (``None``: any provider).
            model: Only profiles whose allowlist admits this model id.
            exclude: Names of profiles not to return (e.g. those tried already).
        """
        now = self.clock()
        if self._cooling:
            self._wake(now)
        pool = self._pool_for(provider)
        if pool is None:
            return None
        resting = self._resting_check(model, now)
        while (profile := pool.pick(model, exclude, resting)) is not None:
            if self._within_rpm(profile, now):
                self._count_use(profile, now)
                if resting is not None and model is not None:
                    breaker = self._tripped.get((profile.provider, profile.base_url, model))
                    if breaker is not None:
                        breaker.probe_at = now  # the half-open breaker's one probe
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
        return None if pool is None else pool.pick(model, exclude, self._resting_check(model, now))

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
        now = self.clock()
        self._wake(now)
        wanted = canonical_provider(provider)
        best: AuthProfile | None = None
        best_rank = (math.inf, math.inf)
        for profile in self._profiles.values():
            if (
                profile.provider != wanted
                or profile.name in exclude
                or not profile.allows(model)
                or profile.status in (ProfileStatus.RATE_LIMITED, ProfileStatus.DISABLED)
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
                if self._shared:
                    self.store.used(best, now)
            self._count_use(best, now)
        return best

    def next_available_at(
        self, provider: str | None = None, *, model: str | None = None
    ) -> float | None:
        """Return the clock time at which a profile of ``provider`` is next usable.

        With ``model``, only profiles that may serve it count, and their endpoint's rest
        from that model too. The current time when one is usable now; ``None`` when every
        one is disabled for good (or there are none).
        """
        now = self.clock()
        self._wake(now)
        pool = self._pool_for(provider)
        resting = self._resting_check(model, now)
        if pool is not None and pool.pick(model, (), resting) is not None:
            return now
        wanted = None if provider is None else canonical_provider(provider)
        times = [
            max(
                p.cooldown_until if p.status is not ProfileStatus.AVAILABLE else now,
                self._model_ready_at(p, model, now),
            )
            for p in self._profiles.values()
            if (wanted is None or p.provider == wanted) and p.allows(model)
        ]
        finite = [t for t in times if not math.isinf(t)]
        return min(finite) if finite else None

    def model_rest_until(self, name: str, model: str) -> float:
        """Return the clock time until which ``name``'s endpoint rests ``model``.

        ``0.0`` when the breaker of ``model`` at that endpoint is closed; a time already
        past while it is half-open (waiting for its probe's outcome).
        """
        profile = self._require(name)
        breaker = self._tripped.get((profile.provider, profile.base_url, model))
        return 0.0 if breaker is None else breaker.open_until

    # -- reporting outcomes -------------------------------------------------------------

    def mark_success(self, name: str, *, model: str | None = None) -> bool:
        """Record a successful call; return whether the profile was recovering.

        A profile cooling down after errors is available again at once (the seed's
        rule); a provider-directed wait (rate limit, quota) is never shortened and a key
        disabled for auth is never re-enabled. With ``model``, the success also counts
        for the circuit breaker of that model at the profile's endpoint, and closes it
        when it was the half-open probe.
        """
        profile = self._profiles.get(name) or self._require(name)
        recovering = profile.consecutive_failures > 0 or profile.cooldown_strikes > 0
        _set(profile, "success_count", profile.success_count + 1)
        if recovering:
            profile.consecutive_failures = 0
        if model is not None:
            recovering = self._breaker_outcome(profile, model, failed=False) or recovering
        if profile.status is ProfileStatus.COOLING_DOWN:
            recovering = True
            self._heal(profile, keep_breakers=True)
        if profile.status is ProfileStatus.AVAILABLE:
            if profile.cooldown_strikes:
                profile.cooldown_strikes = 0
            if self._shared and recovering:  # a key still held here is not announced healed
                self.store.profile_changed(profile, "recover", struck=False)
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
        profile = self._require(name)
        if retry_after is not None and (math.isnan(retry_after) or retry_after < 0):
            raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
        breaker_only = kind == "error" and model is not None
        kind = kind or ("rate_limit" if is_rate_limit else "error")
        now = self.clock()
        self._wake(now)  # a rest that is over no longer counts as "already resting"
        was_available = profile.status is ProfileStatus.AVAILABLE
        before = (profile.status, profile.cooldown_until, profile.cooldown_strikes)
        profile.failure_count += 1
        profile.consecutive_failures += 1
        profile.last_error = scrub(str(error) or type(error).__name__, profile.api_key)
        profile.last_error_at = now
        config = self.config
        if breaker_only:
            assert model is not None
            self._breaker_outcome(profile, model, failed=True)
        elif kind == "auth":
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
        else:
            wait = retry_after
            if wait is None:
                wait = config.escalated(config.cooldown_on_error, profile.cooldown_strikes)
            self._cool(profile, now + wait, ProfileStatus.COOLING_DOWN)
        after = (profile.status, profile.cooldown_until, profile.cooldown_strikes)
        if self._shared and after != before:
            self.store.profile_changed(profile, "cool", struck=after[2] > before[2])
        if was_available and profile.status is not ProfileStatus.AVAILABLE:
            self._notify_failover(profile, model)
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
            if self._shared:
                self.store.profile_changed(profile, "cool", struck=False)

    def disable(
        self, name: str, reason: str | None = None, *, duration: float | None = None
    ) -> None:
        """Take a profile out of rotation until :meth:`enable` (or for ``duration`` s)."""
        profile = self._require(name)
        if reason is not None:
            profile.last_error = scrub(reason, profile.api_key)
            profile.last_error_at = self.clock()
        self._disable(profile, math.inf if duration is None else self.clock() + duration)
        if self._shared:
            self.store.profile_changed(profile, "cool", struck=True)

    def enable(self, name: str) -> None:
        """Put a profile back in rotation with a clean record (in every process sharing
        the store)."""
        profile = self._require(name)
        self._heal(profile)
        if self._shared:
            self.store.profile_changed(profile, "heal", struck=False)

    def reset_all(self) -> None:
        """Make every profile available again, clearing cooldowns, breakers and counts."""
        self._cooling.clear()
        if self._shared:
            for key in self._tripped:
                self.store.breaker_changed(key, 0.0, 0, force=True)
        self._breakers.clear()
        self._tripped.clear()
        for profile in self._profiles.values():
            self._heal(profile)
            if self._shared:
                self.store.profile_changed(profile, "heal", struck=False)

    # -- callbacks ----------------------------------------------------------------------

    def on_failover(self, callback: FailoverCallback) -> FailoverCallback:
        """Register ``callback(failed, next_or_none)``; sync or async; usable as a decorator.

        It is called whenever a failure takes a profile out of rotation. An async one
        runs in the background (on asyncio or trio); :meth:`drain_callbacks` waits for it.
        """
        self._callbacks.append(callback)
        return callback

    async def drain_callbacks(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds for async failover callbacks, then cancel them."""
        await self._tasks.drain(grace)

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
        self._wake(self.clock())
        return [p for p in self._profiles.values() if p.status is not ProfileStatus.AVAILABLE]

    def shared_breakers(self) -> list[tuple[BreakerKey, float, int]]:
        """The breakers open now, as ``(key, open_until, strikes)``."""
        now = self.clock()
        return [
            (k, b.open_until, b.strikes) for k, b in self._tripped.items() if b.open_until > now
        ]

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
        profile = self._profiles.get(name)
        if profile is None or profile.fingerprint != fingerprint:
            return False
        now = self.clock()
        resting = status is not ProfileStatus.AVAILABLE and until > now
        current = profile.status is not ProfileStatus.AVAILABLE and profile.cooldown_until > now
        if not authoritative and (not resting or (current and until <= profile.cooldown_until)):
            return False
        changed = False
        if resting:
            if profile.status is not status or profile.cooldown_until != until:
                profile.status = status
                profile.cooldown_until = until
                self._withdraw(profile)
                if not math.isinf(until):
                    self._push_cooling(profile)
                changed = True
            if error is not None:
                profile.last_error = error
        elif profile.status is not ProfileStatus.AVAILABLE:
            profile.status = ProfileStatus.AVAILABLE
            profile.cooldown_until = 0.0
            self._make_ready(profile)
            changed = True
        profile.cooldown_strikes = (
            strikes if authoritative else max(strikes, profile.cooldown_strikes)
        )
        return changed

    def apply_shared_breaker(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """Take in a breaker's state as another process left it (``open_until`` 0: closed).

        A longer rest is taken in; a close (someone's probe succeeded, or an ``enable``
        with ``force``) closes a breaker here that is half-open, never one that this
        process re-opened since.
        """
        now = self.clock()
        breaker = self._breakers.get(key)
        if open_until > now:
            if breaker is None:
                breaker = self._new_breaker(key)
            breaker.strikes = max(breaker.strikes, strikes)
            if open_until > breaker.open_until:
                breaker.open_until = open_until
                breaker.probe_at = None
                breaker.forget()
                self._tripped[key] = breaker
                self._rest_endpoint(key, open_until)
        elif breaker is not None and key in self._tripped and (force or breaker.open_until <= now):
            self._close_breaker(key)
            breaker.closed_at = now
            if force:
                breaker.strikes = 0

    def apply_shared_use(self, name: str, fingerprint: str, at: float) -> None:
        """Count a use of rpm-limited ``name`` by another process at clock time ``at``."""
        profile = self._profiles.get(name)
        if profile is None or profile.rate_limit_rpm is None or profile.fingerprint != fingerprint:
            return
        recent = profile._recent
        if not recent or recent[-1] <= at:
            recent.append(at)
        else:
            recent.insert(bisect.bisect(recent, at), at)

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
                base_url=shown_url(p.base_url),
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
                conflict=self.store.conflicts.get(p.name),
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
        pool = self._pools.get(_ALL if provider is None else provider)  # canonical already?
        if pool is None and provider is not None:
            pool = self._pools.get(canonical_provider(provider))
        return pool

    def _count_use(self, profile: AuthProfile, now: float) -> None:
        _set(profile, "last_used_at", now)
        self._pools[_ALL].touch(profile)
        self._pools[profile.provider].touch(profile)

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
        if profile.status is ProfileStatus.RATE_LIMITED and status is ProfileStatus.COOLING_DOWN:
            status = ProfileStatus.RATE_LIMITED  # the provider's wait stays provider-directed
        if strike and profile.status is ProfileStatus.AVAILABLE:
            profile.cooldown_strikes += 1  # once per event: not again for requests in flight
        profile.status = status
        profile.cooldown_until = until
        self._withdraw(profile)
        self._push_cooling(profile)

    def _disable(self, profile: AuthProfile, until: float) -> None:
        if profile.status is ProfileStatus.DISABLED and profile.cooldown_until >= until:
            return
        if profile.status is not ProfileStatus.AVAILABLE:
            until = max(until, profile.cooldown_until)
        else:
            profile.cooldown_strikes += 1  # once per event: not again for requests in flight
        profile.status = ProfileStatus.DISABLED
        profile.cooldown_until = until
        self._withdraw(profile)
        if not math.isinf(until):
            self._push_cooling(profile)

    def _heal(self, profile: AuthProfile, *, keep_breakers: bool = False) -> None:
        if not keep_breakers:
            for model in tuple(profile.model_cooldowns):
                key = (profile.provider, profile.base_url, model)
                self._close_breaker(key)
                if self._shared:
                    self.store.breaker_changed(key, 0.0, 0, force=True)
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
            if self._shared:
                self.store.used(profile, now)
            return True
        self._cool(profile, profile._recent[0] + 60.0, ProfileStatus.RATE_LIMITED, strike=False)
        return False

    # -- circuit breakers -----------------------------------------------------------------

    def _resting_check(self, model: str | None, now: float) -> Resting | None:
        """A check for profiles resting from ``model``, or ``None`` when none can be."""
        tripped = self._tripped
        if model is None or not tripped:
            return None
        probe_timeout = self.config.breaker_window

        def resting(profile: AuthProfile) -> bool:
            breaker = tripped.get((profile.provider, profile.base_url, model))
            return breaker is not None and breaker.resting(now, probe_timeout)

        return resting

    def _model_ready_at(self, profile: AuthProfile, model: str | None, now: float) -> float:
        if model is None:
            return now
        breaker = self._tripped.get((profile.provider, profile.base_url, model))
        return now if breaker is None else breaker.ready_at(now, self.config.breaker_window)

    def _breaker_outcome(self, profile: AuthProfile, model: str, *, failed: bool) -> bool:
        """Count one outcome for ``model`` at ``profile``'s endpoint; return True on a close."""
        key = (profile.provider, profile.base_url, model)
        breaker = self._breakers.pop(key, None)
        if breaker is None:
            breaker = self._new_breaker(key)
        else:
            self._breakers[key] = breaker  # the most recently used goes last
        now = self.clock()
        config = self.config
        if breaker.open_until:
            if now < breaker.open_until:
                return False  # open: outcomes of requests sent before it opened do not count
            if failed:  # half-open: the probe (or a straggler) failed
                breaker.strikes += 1
                self._open_breaker(key, breaker, now)
                return False
            self._close_breaker(key)
            breaker.closed_at = now
            if self._shared:
                self.store.breaker_changed(key, 0.0, breaker.strikes)
            return True
        breaker.count(failed, now, config.breaker_window)
        if (
            failed
            and breaker.total >= config.breaker_min_requests
            and breaker.failed >= config.breaker_failure_rate * breaker.total
        ):
            recently_closed = now - breaker.closed_at < config.breaker_window
            breaker.strikes = breaker.strikes + 1 if recently_closed else 0
            self._open_breaker(key, breaker, now)
        return False

    def _new_breaker(self, key: BreakerKey) -> _Breaker:
        """A closed breaker for ``key``; past ``_BREAKER_LIMIT``, the least recently used
        one is forgotten (model ids can come from callers: the map stays bounded)."""
        breaker = self._breakers[key] = _Breaker()
        if len(self._breakers) > _BREAKER_LIMIT:
            oldest = next(iter(self._breakers))
            self._close_breaker(oldest)
            del self._breakers[oldest]
        return breaker

    def _open_breaker(self, key: BreakerKey, breaker: _Breaker, now: float) -> None:
        config = self.config
        breaker.open_until = now + config.escalated(config.cooldown_on_error, breaker.strikes)
        breaker.probe_at = None
        breaker.forget()
        self._tripped[key] = breaker
        if self._shared:
            self.store.breaker_changed(key, breaker.open_until, breaker.strikes)
        self._rest_endpoint(key, breaker.open_until)

    def _rest_endpoint(self, key: BreakerKey, until: float) -> None:
        provider, base_url, model = key
        for profile in self._profiles.values():
            if profile.provider == provider and profile.base_url == base_url:
                profile.model_cooldowns[model] = until

    def _close_breaker(self, key: BreakerKey) -> None:
        breaker = self._tripped.pop(key, None)
        if breaker is None:
            return
        breaker.open_until = 0.0
        breaker.probe_at = None
        breaker.forget()
        provider, base_url, model = key
        for profile in self._profiles.values():
            if profile.provider == provider and profile.base_url == base_url:
                profile.model_cooldowns.pop(model, None)

    def _mirror_breakers(self, profile: AuthProfile) -> None:
        """Make ``profile.model_cooldowns`` show its (new) endpoint's open breakers."""
        profile.model_cooldowns.clear()
        for (provider, base_url, model), breaker in self._tripped.items():
            if provider == profile.provider and base_url == profile.base_url:
                profile.model_cooldowns[model] = breaker.open_until

    # -- callbacks ----------------------------------------------------------------------

    def _notify_failover(self, failed: AuthProfile, model: str | None) -> None:
        if not self._callbacks:
            return
        following = self.peek_next_profile(failed.provider, model=model, exclude=(failed.name,))
        for callback in self._callbacks:
            try:
                result = callback(failed, following)
                if inspect.isawaitable(result):
                    self._schedule(result, callback)
            except Exception:
                logger.exception("failover callback %r raised", callback)

    def _schedule(self, awaitable: Awaitable[None], callback: FailoverCallback) -> None:
        if not running_on_trio():
            import asyncio

            try:
                asyncio.get_running_loop()
            except RuntimeError:  # called from sync code: run it to the end here
                try:
                    asyncio.run(_awaited(awaitable))
                except Exception:
                    logger.exception("async failover callback %r raised", callback)
                return
        self._tasks.spawn(awaitable, callback)


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


def _thread_safe(cls: type[FailoverManager]) -> None:
    """Make ``cls``'s public synchronous methods hold one re-entrant lock per manager.

    A manager may be shared by async clients on their event loop and by sync SDK clients
    (whose ResilientTransport runs the engine on a thread of its own), so every public
    method takes the instance's ``threading.RLock``; re-entrant, because methods call each
    other and failover callbacks may call back into the manager.
    """
    import functools
    import threading

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: FailoverManager, *args: Any, **kwargs: Any) -> Any:
            with self._thread_lock:  # type: ignore[attr-defined]
                return method(self, *args, **kwargs)

        return call

    original_init = cls.__init__

    @functools.wraps(original_init)
    def init(self: FailoverManager, *args: Any, **kwargs: Any) -> None:
        vars(self)["_thread_lock"] = threading.RLock()
        original_init(self, *args, **kwargs)

    cls.__init__ = init  # type: ignore[method-assign]
    for name, member in list(vars(cls).items()):
        if name.startswith("_") and name != "__len__":
            continue
        if inspect.isfunction(member) and not inspect.iscoroutinefunction(member):
            setattr(cls, name, locked(member))


_thread_safe(FailoverManager)
