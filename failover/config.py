"""FailoverConfig: how long to wait, how often to retry, how long to cool a failing key."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from failover.errors import ConfigError

__all__ = ["FailoverConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverConfig:
    """Retry, backoff and cooldown settings. Times are in seconds.

    The first six fields and their defaults are the seed's; the rest refine them.

    Attributes:
        max_retries: Same-key retries after a transient failure (5xx, overload, timeout).
        retry_delay: The first backoff delay.
        exponential_backoff: Double the delay on each retry (else a flat ``retry_delay``).
        max_retry_delay: Cap on one backoff sleep; a provider asking for longer is not
            waited for: the client rotates key or falls over instead.
        cooldown_on_rate_limit: How long a rate-limited key rests when the provider gave
            no wait of its own.
        cooldown_on_error: How long a key reported failing through the seed's API rests, and
            how long an open circuit breaker rests a model at an endpoint (escalating when
            it opens again).
        jitter: Up to this many seconds of random delay added to each backoff sleep.
        cooldown_multiplier: Each further cooldown of a repeat offender is this much longer.
        max_cooldown: Cap on escalated rate-limit and error cooldowns.
        cooldown_on_quota: How long a key out of quota or credit is disabled.
        max_quota_cooldown: Cap on escalated quota cooldowns.
        failure_threshold: Deprecated and ignored: a failure reported through the seed's API
            cools the key at once, and the client's circuit breaker opens on a failure
            *rate* (``breaker_*``), not a streak. Kept so existing configs still load.
        max_key_rotations: Keys tried per model after the first (``None``: all of them).
        max_model_fallbacks: Models tried after the first (``None``: the whole chain).
        retry_before_fallback: After a transient failure (5xx, overload, timeout), back off
            and retry the same endpoint before trying another endpoint or the next model.
            Off by default: the client goes sideways first, at once, and backs off only
            when nothing else is left.
        max_provider_wait: Cap on any wait a provider asks for (``Retry-After``, reset
            headers, Gemini's ``retryDelay``): a key is never held longer on a provider's
            word (a day by default); a capped wait says so in its CooldownEvent.
        max_first_wait: Cap on a rate-limit wait the provider asks for on a key that has
            not failed before (an hour by default): one outsized ``Retry-After`` does not
            bench a healthy key for a day. A key that keeps failing gets up to
            ``max_provider_wait``; quota errors keep their long disable.
        max_recovery_wait: When every key is resting and the request has no deadline, the
            longest the client waits for the earliest recovery (with a deadline it waits
            while the deadline allows; ``wait_for_recovery=False`` never waits).
        breaker_window: Seconds of history the per-endpoint, per-model circuit breaker
            looks at.
        breaker_min_requests: Requests the breaker must have seen in its window before it
            may open: a real outage is skipped after this many requests, while a few
            unlucky failures in a row under concurrency do not rest a healthy model.
        breaker_failure_rate: Share of failed requests in the window (0 < rate <= 1) that
            opens the breaker. Once open it stays open for ``cooldown_on_error``
            (escalating on repeat openings), then lets one probe request through: its
            success closes the breaker, its failure re-opens it for longer.
    """

    max_retries: int = 3
    retry_delay: float = 1.0
    exponential_backoff: bool = True
    max_retry_delay: float = 60.0
    cooldown_on_rate_limit: float = 60.0
    cooldown_on_error: float = 30.0
    jitter: float = 0.5
    cooldown_multiplier: float = 2.0
    max_cooldown: float = 3600.0
    cooldown_on_quota: float = 5 * 3600.0
    max_quota_cooldown: float = 24 * 3600.0
    failure_threshold: int = 3
    max_key_rotations: int | None = None
    max_model_fallbacks: int | None = None
    retry_before_fallback: bool = False
    max_provider_wait: float = 24 * 3600.0
    max_first_wait: float = 3600.0
    max_recovery_wait: float = 10.0
    breaker_window: float = 30.0
    breaker_min_requests: int = 8
    breaker_failure_rate: float = 0.5

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ConfigError(f"{field.name} must be a bool, got {value!r}")
                continue
            if value is None and field.name.startswith("max_") and field.type == "int | None":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{field.name} must be a number, got {value!r}")
            if field.type.startswith("int") and not isinstance(value, int):
                raise ConfigError(f"{field.name} must be a whole number, got {value!r}")
            if math.isnan(value) or math.isinf(value) or value < 0:
                raise ConfigError(f"{field.name} must be finite and >= 0, got {value!r}")
        if self.max_retry_delay < self.retry_delay:
            raise ConfigError(
                f"max_retry_delay ({self.max_retry_delay}) must be >= retry_delay "
                f"({self.retry_delay})"
            )
        for name in ("cooldown_on_rate_limit", "cooldown_on_error"):
            if getattr(self, name) > self.max_cooldown:
                raise ConfigError(f"{name} must be <= max_cooldown ({self.max_cooldown})")
        if self.cooldown_on_quota > self.max_quota_cooldown:
            raise ConfigError(
                f"cooldown_on_quota must be <= max_quota_cooldown ({self.max_quota_cooldown})"
            )
        if self.cooldown_multiplier < 1:
            raise ConfigError(f"cooldown_multiplier must be >= 1, got {self.cooldown_multiplier}")
        if self.breaker_window <= 0:
            raise ConfigError(f"breaker_window must be > 0, got {self.breaker_window}")
        if self.breaker_min_requests < 1:
            raise ConfigError(f"breaker_min_requests must be >= 1, got {self.breaker_min_requests}")
        if not 0 < self.breaker_failure_rate <= 1:
            raise ConfigError(
                f"breaker_failure_rate must be > 0 and <= 1, got {self.breaker_failure_rate}"
            )
        if self.failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be >= 1, got {self.failure_threshold}")

    def retry_delay_for(self, attempt: int) -> float:
        """The seed's deterministic delay: ``min(retry_delay * 2**attempt, max_retry_delay)``.

        Flat ``retry_delay`` when ``exponential_backoff`` is off. Safe for huge ``attempt``.
        """
        if attempt < 0:
            raise ConfigError(f"attempt must be >= 0, got {attempt}")
        if not self.exponential_backoff or self.retry_delay == 0:
            return min(self.retry_delay, self.max_retry_delay)
        try:
            return min(math.ldexp(self.retry_delay, attempt), self.max_retry_delay)
        except OverflowError:
            return self.max_retry_delay

    def escalated(self, base: float, strikes: int, *, quota: bool = False) -> float:
        """The cooldown for a key's ``strikes``-th cooldown in a row (0-based)."""
        cap = self.max_quota_cooldown if quota else self.max_cooldown
        multiplier = 2.0 if quota else self.cooldown_multiplier
        if base == 0:
            return 0.0
        try:
            return min(base * multiplier**strikes, cap)
        except OverflowError:
            return cap

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict."""
        return asdict(self)
