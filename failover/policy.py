"""The error -> action table, and backoff (tenacity stays private to this module)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from failover.config import FailoverConfig
from failover.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
)
from failover.profiles import FailureKind

__all__ = ["Action", "Backoff", "Decision", "decide", "set_testing"]

_testing = False


def set_testing(on: bool = True) -> None:
    """Zero every backoff sleep (for test suites); cooldown bookkeeping is unchanged."""
    global _testing
    _testing = on


class Action(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "transient: go sideways now, back off and retry only when nothing else is left"
    ROTATE = "rotate key"
    NEXT_MODEL = "next model"
    LARGER_MODEL = "next model with a larger context window"
    RAISE = "raise"


@dataclass(frozen=True, slots=True)
class Decision:
    """The action, and how the failure counts against the profile (``None``: it does not)."""

    action: Action
    failure: FailureKind | None


def decide(error: ProviderError, *, raise_on_content_filter: bool = False) -> Decision:
    """Apply DESIGN.md's table to ``error``.

    A provider's ``x-should-retry: true`` makes an otherwise invalid request transient.
    """
    if isinstance(error, RateLimitError):
        return Decision(Action.ROTATE, "rate_limit")
    if isinstance(error, QuotaExceededError):
        return Decision(Action.ROTATE, "quota")
    if isinstance(error, AuthenticationError):
        return Decision(Action.ROTATE, "auth")
    if isinstance(error, ModelNotFoundError):
        return Decision(Action.NEXT_MODEL, None)
    if isinstance(error, ContextWindowExceededError):
        return Decision(Action.LARGER_MODEL, None)
    if isinstance(error, ContentFilteredError):
        return Decision(Action.RAISE if raise_on_content_filter else Action.NEXT_MODEL, None)
    if isinstance(error, InvalidRequestError) and error.should_retry is not True:
        return Decision(Action.RAISE, None)
    return Decision(Action.RETRY, "error")  # overloaded, 5xx, timeout, connection, malformed


class Backoff:
    """The wait before a retry: the provider's own, else tenacity's jittered exponential.

    Args:
        config: ``retry_delay``, ``max_retry_delay``, ``jitter``, ``exponential_backoff``.
    """

    def __init__(self, config: FailoverConfig) -> None:
        import tenacity  # private: never part of a public signature

        self._state = tenacity.RetryCallState(tenacity.AsyncRetrying(), None, (), {})
        if config.exponential_backoff:
            self._wait: Callable[[tenacity.RetryCallState], float] = (
                tenacity.wait_exponential_jitter(
                    initial=config.retry_delay, max=config.max_retry_delay, jitter=config.jitter
                )
            )
        else:
            self._wait = tenacity.wait_fixed(config.retry_delay) + tenacity.wait_random(
                0, config.jitter
            )

    def delay(self, retry: int, provider_wait: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); 0 under :func:`set_testing`."""
        if _testing:
            return 0.0
        if provider_wait is not None:
            return provider_wait
        self._state.attempt_number = retry
        return float(self._wait(self._state))
