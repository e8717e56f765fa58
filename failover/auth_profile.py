"""The auth profile record: one key for one provider, its health, and its checks.

:class:`AuthProfile` checks every field where it is written (a provider no registry knows,
a key no header can carry, a base URL that carries a secret), keeps its routing fields
frozen (only ``FailoverManager.update_profile`` changes them, keeping the pools
consistent) and never shows its key. :class:`ProfileSnapshot` and :class:`FailoverStatus`
are what status reports carry: the key masked.
"""

from __future__ import annotations

import math
import unicodedata
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from failover._secrets import SecretKey, key_fingerprint, scrub, shown_url
from failover.catalog import canonical_provider, default_catalog
from failover.config import FailoverConfig
from failover.errors import ConfigError, did_you_mean

__all__ = [
    "CHANGEABLE",
    "ROUTING_FIELDS",
    "AuthProfile",
    "FailoverStatus",
    "FailureKind",
    "ProfileSnapshot",
    "ProfileStatus",
    "adopt_routing",
    "checked_changes",
]

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


ROUTING_FIELDS = frozenset(
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
        rate_limit_tpm: Tokens per minute this key is allowed: each request takes its
            estimated tokens (input, plus ``max_tokens``) from the key's minute before it
            is sent, corrected by the reply's usage; a request that finds no room goes to
            another key or model, or waits for room (see ``failover.admission``).
        max_in_flight: Requests this key may have running at once in this process; more
            go to another key or model, or wait.
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
    max_in_flight: int | None = None
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
        max_in_flight: int | None = None,
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
            ("max_in_flight", max_in_flight),
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
        self.max_in_flight = max_in_flight
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
        if name in ROUTING_FIELDS:
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
        """A short digest of the key that tells keys apart and reveals nothing of them.

        A cloud profile with no key (its credentials from the cloud's chain) is told apart
        by its account's non-secret identity instead: provider, region, project and the
        credentials' name, file or access key id (see :func:`_cloud_identity`), so two
        accounts never share a record in a shared store.
        """
        key = self.api_key
        if not key:
            return key_fingerprint(_cloud_identity(self))
        cached = self.__dict__.get("_fingerprint")
        if cached is None or cached[0] is not key:  # read per request: made once per key
            cached = (key, key_fingerprint(key))
            self.__dict__["_fingerprint"] = cached
        return cached[1]

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


CHANGEABLE = (ROUTING_FIELDS - {"name"}) | {"metadata"}
"""The fields ``FailoverManager.update_profile`` may change."""


def checked_changes(profile: AuthProfile, changes: Mapping[str, Any]) -> AuthProfile:
    """A new AuthProfile: ``profile``'s routing fields and metadata with ``changes`` made.

    Raises:
        ConfigError: An unknown field, a rename, or a value AuthProfile refuses.
    """
    unknown = sorted(set(changes) - CHANGEABLE)
    if unknown:
        hint = "; to rename, remove_profile and add_profile" if "name" in unknown else ""
        raise ConfigError(
            f"update_profile({profile.name!r}): cannot change {', '.join(unknown)}; "
            f"changeable: {', '.join(sorted(CHANGEABLE))}{hint}"
        )
    current: dict[str, Any] = {name: getattr(profile, name) for name in ROUTING_FIELDS}
    current["metadata"] = profile.metadata
    current.update(changes)
    return AuthProfile(**current)  # checks every field the AuthProfile way


def adopt_routing(profile: AuthProfile, checked: AuthProfile) -> None:
    """Give ``profile`` the routing fields and metadata of ``checked`` (from
    :func:`checked_changes`); only the manager may, with the key out of its pools."""
    for name in ROUTING_FIELDS - {"name"}:
        object.__setattr__(profile, name, getattr(checked, name))
    profile.metadata = checked.metadata


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

    @classmethod
    def of(cls, p: AuthProfile, now: float, conflict: str | None = None) -> ProfileSnapshot:
        """Take ``p``'s snapshot at clock time ``now`` (``conflict``: see the attribute)."""
        return cls(
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
            conflict=conflict,
        )

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


def _credentials_identity(credentials: Any) -> str:
    """What names ``credentials`` without any secret: a profile name or file path as given,
    an AWS access key id, a botocore session's profile, a Google service account's email or
    a user credential's client id; else only the type's name."""
    if credentials is None:
        return "chain"
    if isinstance(credentials, str):
        return f"name:{credentials}"
    parts = [type(credentials).__qualname__]
    # botocore's static Credentials keep the key id as a plain attribute; refreshable ones
    # refresh when asked for it (I/O): only a stored value is read.
    access_key = getattr(credentials, "__dict__", {}).get("access_key")
    if isinstance(access_key, str) and access_key:
        parts.append(f"access_key:{access_key}")
    for attribute in ("profile", "service_account_email", "client_id", "audience"):
        try:
            value = getattr(credentials, attribute, None)
        except Exception:  # a session whose profile lookup fails, say
            value = None
        if isinstance(value, str) and value:
            parts.append(f"{attribute}:{value}")
    return ",".join(parts)


def _cloud_identity(profile: AuthProfile) -> str:
    """The non-secret identity of a keyless cloud profile's account (never a secret)."""
    return "|".join(
        (
            "cloud",
            profile.provider,
            profile.region or "",
            profile.project or "",
            _credentials_identity(profile.credentials),
        )
    )
