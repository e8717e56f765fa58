"""Event payloads and the hook dispatcher.

Events are frozen, slotted dataclasses that carry model and profile *names*, never keys.
Dispatch never blocks or fails a request: sync hooks run inline inside a ``try``, async
hooks run as background tasks (on asyncio or trio), and :meth:`HookDispatcher.drain` awaits
them for a grace period, then cancels what is still running.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from failover._tasks import BackgroundTasks

__all__ = [
    "CooldownEvent",
    "Event",
    "ExhaustedEvent",
    "FailoverEvent",
    "HedgeEvent",
    "HookDispatcher",
    "RecoveredEvent",
    "RepinnedEvent",
    "RetryEvent",
    "SuccessEvent",
]

logger = logging.getLogger("failover")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries: the request it belongs to and when it happened."""

    request_id: str
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverEvent(Event):
    """The request moved to another key (``kind="key"``), another deployment of the same
    chain step (``kind="deployment"``) or the next step's model (``kind="model"``); or a
    stream that broke goes on elsewhere: ``kind="continue"`` (its text so far continued,
    ``error_message`` starting with the characters kept) or ``kind="restart"`` (started
    over). ``reason``: the error's kind (``over_budget``, ``over_rate`` and ``at_capacity``
    for admission's refusals, ``rejected`` for a reply ``accept`` refused)."""

    kind: str
    from_model: str
    from_profile: str | None
    to_model: str | None
    to_profile: str | None
    reason: str
    error_message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent(Event):
    """The same key is retried after ``delay`` seconds."""

    model: str
    profile: str
    attempt: int
    delay: float
    reason: str
    error_message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CooldownEvent(Event):
    """A profile was taken out of rotation for ``duration`` seconds (``inf``: disabled).

    With ``model`` set, the key rests from that model only (repeated transient failures).
    With ``capped_from`` set, the provider asked for that many seconds and the wait was cut
    to ``max_provider_wait``.
    """

    profile: str
    provider: str
    status: str
    duration: float
    reason: str
    error_message: str
    model: str | None = None
    capped_from: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveredEvent(Event):
    """A profile that had been failing succeeded again."""

    profile: str
    provider: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SuccessEvent(Event):
    """The request succeeded."""

    model: str
    profile: str
    attempts: int
    latency: float
    cost_usd: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeEvent(Event):
    """The first attempt had no answer after ``after`` seconds: a second one started."""

    model: str
    profile: str
    to_model: str
    to_profile: str
    after: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExhaustedEvent(Event):
    """Every model and key was tried and the request failed."""

    attempts: int
    retry_after: float | None
    error_message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RepinnedEvent(Event):
    """A conversation (``session``) was served somewhere else than last time: it is pinned
    there now (its prompt cache starts again on the new key)."""

    session: str
    from_model: str
    from_profile: str
    to_model: str
    to_profile: str


Hook = Callable[[Any], "Awaitable[None] | None"]
H = TypeVar("H", bound=Hook)


class HookDispatcher:
    """Calls the hooks registered for each event type."""

    def __init__(self) -> None:
        self._hooks: dict[type[Event], list[Hook]] = {}
        self._pending = BackgroundTasks()
        self.wants: Callable[[type[Event]], bool] = self._hooks.__contains__
        """Return whether any hook listens for an event type (so events can be skipped):
        the registry's own membership test, asked in C (asked before most events are built,
        and of every success)."""

    def add(self, event_type: type[Event], hook: H) -> H:
        """Register ``hook`` for ``event_type``; return it (so it works as a decorator)."""
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}")
        self._hooks.setdefault(event_type, []).append(hook)
        return hook

    def emit(self, event: Event) -> None:
        """Deliver ``event``; never raises, never waits."""
        for hook in self._hooks.get(type(event), ()):
            try:
                result = hook(event)
            except Exception:
                logger.exception("hook %r raised on %s", hook, type(event).__name__)
                continue
            if inspect.isawaitable(result):
                self._pending.spawn(result, hook)

    async def drain(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds for the async hooks still running, then cancel them."""
        await self._pending.drain(grace)
