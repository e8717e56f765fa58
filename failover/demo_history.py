"""Each demo request's attempts with their timing, so a failed one can be shown step by step.

The engine logs every attempt at DEBUG on ``failover.engine`` (see :mod:`failover.logs`),
and every decision (a retry, a rotation, ...) at INFO or WARNING. While :func:`capturing`
is active, a filter on that logger hands each of these records to
the request it belongs to (the request's task holds a list in a context variable, set by
:func:`request_history`), and lets through to the application's handlers only what they
would have received anyway. The attempts themselves come from the error's ``attempts``;
the records only add when each attempt started, hence how long the request waited
before it. Names and numbers only: a record carries no key and no prompt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.attempts import Attempt

__all__ = ["Step", "capturing", "request_history", "retries", "steps"]

_CURRENT: ContextVar[list[logging.LogRecord] | None] = ContextVar(
    "failover_demo_history", default=None
)
_ENGINE = "failover.engine"


@dataclass(frozen=True, slots=True)
class Step:
    """One attempt of a request, for people.

    Attributes:
        number: 1 for the first attempt.
        model: ``provider/model``.
        profile: The key's profile name (never the key); ``None`` when no key was used.
        outcome: ``ok`` or what went wrong (``rate_limit``, ``overloaded``, ``timeout``, ...).
        status: The HTTP status, when there was one.
        waited: Seconds between the previous attempt's end (or the request's start) and
            this attempt's start, when known: backoff or a wait for a key to recover.
        took: Seconds the attempt took.
        retry_after: Seconds the provider asked to wait, when it said.
    """

    number: int
    model: str
    profile: str | None
    outcome: str
    status: int | None
    waited: float | None
    took: float
    retry_after: float | None


class _Capture(logging.Filter):
    """Hands attempt records to their request; passes on only what was enabled before."""

    def __init__(self, passes_from: int) -> None:
        super().__init__()
        self.passes_from = passes_from

    def filter(self, record: logging.LogRecord) -> bool:
        records = _CURRENT.get()
        if records is not None and hasattr(record, "failover_decision"):
            records.append(record)
        return record.levelno >= self.passes_from


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """Record attempts for :func:`request_history` while the block runs; restore after."""
    logger = logging.getLogger(_ENGINE)
    before = logger.level
    capture = _Capture(logger.getEffectiveLevel())
    logger.addFilter(capture)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(before)
        logger.removeFilter(capture)


@contextlib.contextmanager
def request_history() -> Iterator[list[logging.LogRecord]]:
    """The attempt records of the request made in this block (by this task and its children)."""
    records: list[logging.LogRecord] = []
    token = _CURRENT.set(records)
    try:
        yield records
    finally:
        _CURRENT.reset(token)


def steps(
    attempts: Sequence[Attempt], records: Sequence[logging.LogRecord], began: float
) -> list[Step]:
    """``attempts`` (from the error) with the waits read from their ``records``.

    Args:
        attempts: The request's attempts, in order.
        records: The attempt records captured for the request.
        began: When the request started, as ``time.time()``.
    """
    started: dict[int, float] = {}
    for record in records:
        if getattr(record, "failover_decision", None) != "attempt":
            continue
        number = getattr(record, "failover_attempt", None)
        elapsed = getattr(record, "failover_elapsed", None)
        if isinstance(number, int) and isinstance(elapsed, (int, float)):
            started[number] = record.created - elapsed
    result = []
    free_since: float | None = began
    for number, attempt in enumerate(attempts, start=1):
        start = started.get(number)
        waited = None
        if start is not None and free_since is not None:
            waited = max(0.0, start - free_since)
        free_since = None if start is None else start + attempt.elapsed
        result.append(
            Step(
                number,
                attempt.model,
                attempt.profile,
                attempt.outcome,
                attempt.status,
                waited,
                attempt.elapsed,
                attempt.retry_after,
            )
        )
    return result


def retries(records: Sequence[logging.LogRecord]) -> int:
    """How many retries after a backoff the request's ``records`` show."""
    return sum(getattr(r, "failover_decision", None) == "retry" for r in records)
