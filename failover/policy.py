"""The error -> action table, and backoff (tenacity stays private to this module)."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

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

__all__ = ["Action", "Decision", "decide", "retry_same_key", "set_testing"]

T = TypeVar("T")

_testing = False


def set_testing(on: bool = True) -> None:
    """Zero every backoff sleep (for test suites); cooldown bookkeeping is unchanged."""
    global _testing
    _testing = on


class Action(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "retry same key"
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
    """Apply DESIGN.md's table to ``error``."""
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
    if isinstance(error, InvalidRequestError):
        return Decision(Action.RAISE, None)
    return Decision(Action.RETRY, "error")  # overloaded, 5xx, timeout, connection, malformed


async def retry_same_key(
    call: Callable[[], Awaitable[T]],
    *,
    config: FailoverConfig,
    sleep: Callable[[float], Awaitable[None]],
    time_left: Callable[[], float],
    on_failure: Callable[[ProviderError], Decision],
    on_retry: Callable[[ProviderError, int, float], None],
) -> T:
    """Run ``call``, retrying on the same key while the failure says so.

    Retries at most ``config.max_retries`` times with jittered exponential backoff (the
    provider's Retry-After wins). Gives up at once, re-raising, when the failure is not a
    same-key one, when the wait exceeds ``config.max_retry_delay``, or when it would end
    past the deadline (``time_left()``).
    """
    try:  # the happy path pays nothing for the retry machinery
        return await call()
    except ProviderError as error:
        if on_failure(error).action is not Action.RETRY:
            raise
        first_failure = error
    return await _retry(call, first_failure, config, sleep, time_left, on_failure, on_retry)


async def _retry(
    call: Callable[[], Awaitable[T]],
    first_failure: ProviderError,
    config: FailoverConfig,
    sleep: Callable[[float], Awaitable[None]],
    time_left: Callable[[], float],
    on_failure: Callable[[ProviderError], Decision],
    on_retry: Callable[[ProviderError, int, float], None],
) -> T:
    """The same-key retries after ``first_failure``, driven by tenacity.

    Tenacity's first attempt replays ``first_failure`` (already recorded) so that its
    wait, stop and before-sleep logic apply to every retry alike.
    """
    import tenacity  # private: never part of a public signature

    replay: list[ProviderError] = [first_failure]

    async def attempt() -> T:
        if replay:
            raise replay.pop()
        return await call()

    def should_retry(state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if error is first_failure:
            return True
        return isinstance(error, ProviderError) and on_failure(error).action is Action.RETRY

    if config.exponential_backoff:
        backoff: Callable[[tenacity.RetryCallState], float] = tenacity.wait_exponential_jitter(
            initial=config.retry_delay, max=config.max_retry_delay, jitter=config.jitter
        )
    else:
        backoff = tenacity.wait_fixed(config.retry_delay) + tenacity.wait_random(0, config.jitter)

    def wait(state: tenacity.RetryCallState) -> float:
        """The provider's own wait when it gave one, else jittered exponential backoff."""
        if _testing:
            return 0.0
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return error.retry_after
        return backoff(state)

    def stop(state: tenacity.RetryCallState) -> bool:
        upcoming = state.upcoming_sleep
        return (
            state.attempt_number > config.max_retries
            or upcoming > config.max_retry_delay
            or upcoming >= time_left()
            or math.isinf(upcoming)
        )

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderError):
            on_retry(error, state.attempt_number, state.upcoming_sleep)

    retrying = tenacity.AsyncRetrying(
        retry=should_retry,
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)
