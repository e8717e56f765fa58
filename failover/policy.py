"""The error -> action table, and backoff (tenacity stays private to this module)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from failover.config import FailoverConfig
from failover.errors import (
    AuthenticationError,
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ReplyRejected,
)
from failover.profiles import FailureKind

__all__ = ["Action", "Backoff", "Decision", "Policy", "decide", "set_testing"]

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
    if isinstance(error, (ModelNotFoundError, ReplyRejected)):
        return Decision(Action.NEXT_MODEL, None)
    if isinstance(error, ContextWindowExceededError):
        return Decision(Action.LARGER_MODEL, None)
    if isinstance(error, ContentFilteredError):
        return Decision(Action.RAISE if raise_on_content_filter else Action.NEXT_MODEL, None)
    if isinstance(error, InvalidRequestError) and error.should_retry is not True:
        return Decision(Action.RAISE, None)
    return Decision(Action.RETRY, "error")  # overloaded, 5xx, timeout, connection, malformed


_ACTION_NAMES = {
    "retry": Action.RETRY,
    "rotate": Action.ROTATE,
    "next_model": Action.NEXT_MODEL,
    "raise": Action.RAISE,
}


class Policy:
    """The table of :func:`decide`, with the caller's own rules on top.

    Args:
        raise_on_content_filter: Raise a content block instead of trying the next model.
        overrides: Error class -> action (an :class:`Action` or ``"retry"``, ``"rotate"``,
            ``"next_model"``, ``"raise"``); the most specific class of an error wins.
        fallback_on: Decides last: ``False`` raises the error to the caller, ``True``
            falls over even where the table would raise. A tuple of exception classes
            means "fall over on these, raise the rest", as pydantic-ai's FallbackModel.

    Raises:
        ConfigError: An override names something that is not a ProviderError class or an
            unknown action, or ``fallback_on`` is neither callable nor a tuple of classes.
    """

    def __init__(
        self,
        *,
        raise_on_content_filter: bool = False,
        overrides: Mapping[type[ProviderError], Action | str] | None = None,
        fallback_on: Callable[[ProviderError], bool]
        | tuple[type[ProviderError], ...]
        | None = None,
    ) -> None:
        self.raise_on_content_filter = raise_on_content_filter
        self._overrides: dict[type[ProviderError], Action] = {}
        for error_type, action in (overrides or {}).items():
            if not (isinstance(error_type, type) and issubclass(error_type, ProviderError)):
                raise ConfigError(
                    f"policy override keys must be ProviderError classes, got {error_type!r}"
                )
            if isinstance(action, str):
                if action not in _ACTION_NAMES:
                    raise ConfigError(
                        f"unknown action {action!r} for {error_type.__name__}; "
                        f"one of: {', '.join(_ACTION_NAMES)}"
                    )
                action = _ACTION_NAMES[action]
            if not isinstance(action, Action) or action is Action.LARGER_MODEL:
                raise ConfigError(f"invalid action {action!r} for {error_type.__name__}")
            self._overrides[error_type] = action
        if isinstance(fallback_on, tuple):
            classes = fallback_on
            if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
                raise ConfigError("fallback_on must be a callable or a tuple of exception classes")
            self._fallback_on: Callable[[ProviderError], bool] | None = lambda error: isinstance(
                error, classes
            )
        elif fallback_on is None or callable(fallback_on):
            self._fallback_on = fallback_on
        else:
            raise ConfigError(f"fallback_on must be callable, got {fallback_on!r}")

    def decide(self, error: ProviderError) -> Decision:
        """The action for ``error``; how it counts against the key stays the table's."""
        decision = decide(error, raise_on_content_filter=self.raise_on_content_filter)
        action = decision.action
        for error_type in type(error).__mro__:
            if error_type in self._overrides:
                action = self._overrides[error_type]
                break
        if self._fallback_on is not None:
            if not self._fallback_on(error):
                action = Action.RAISE
            elif action is Action.RAISE:
                action = Action.NEXT_MODEL
        if action is decision.action:
            return decision
        return Decision(action, decision.failure)


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
