"""What one request carries through the engine: its state, each attempt's context, and
who listens to its life.

Below the engine and telemetry (both read these types), above nothing but the catalog and
the profiles. The engine tells a request's :class:`RequestListener` (telemetry's span of
the request) of each attempt, the first chunk of a stream and the end; a
:class:`RequestWatcher` (``Telemetry``) starts one per request and hears the engine's events.
Nothing but the engine calls them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from failover._records import built_at_once
from failover._secrets import secret_reader
from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage

if TYPE_CHECKING:
    from failover.admission import Ticket
    from failover.events import HookDispatcher
    from failover.plan import PinnedPlan, Plan
    from failover.profiles import AuthProfile, FailoverManager
    from failover.recovery import RecoveryLine

__all__ = [
    "TYPICAL_USAGE",
    "AttemptContext",
    "RequestListener",
    "RequestState",
    "RequestWatcher",
]

TYPICAL_USAGE = TokenUsage(input_tokens=1000, output_tokens=500)
"""The tokens a request is expected to take when it does not say (the ``cost`` strategy)."""


@built_at_once
@dataclass(frozen=True)
class AttemptContext:
    """What one attempt gets: the key to use, where to send it, and for which model.

    Attributes:
        profile: The auth profile (its ``api_key`` may only go to ``base_url``).
        model: The model entry.
        base_url: The profile's base URL, or the provider's public one.
        attempt: 1 for the first attempt of the request, 2 for the next, ...
        request_id: The request's id, as in events.
        timeout: Seconds this attempt may take (bounded by the request's deadline).
    """

    profile: AuthProfile
    model: ModelEntry
    base_url: str
    attempt: int
    request_id: str
    timeout: float

    if TYPE_CHECKING:

        @property
        def api_key(self) -> str:
            """The profile's key."""

    else:  # read in C: once per attempt, on the success path
        api_key = property(secret_reader("profile.api_key"), doc="The profile's key.")


class RequestState:
    """The bookkeeping of one request: its id, clock and every attempt so far.

    What a request leaves as it was is read from the class (the per-request cost of the
    hot path is watched): only what a request changes is set on it.
    """

    release: Callable[[Any], Awaitable[None]] | None = None
    """Frees what a losing hedged attempt produced (e.g. closes an opened stream)."""
    estimated_usage: TokenUsage = TYPICAL_USAGE
    """The request's expected tokens, for the ``cost`` strategy."""
    telemetry: RequestListener | None = None
    """Who hears this request's life (telemetry's span of it), when anyone does."""
    max_tokens: int | None = None
    """The request's ``max_tokens``: the most output admission reserves for it."""
    priority: int = 0
    """Its place in the line of requests waiting for room (higher goes first)."""
    tags: tuple[str, ...] = ()
    """The caller's tags (e.g. a tenant): budgets scoped ``tag:<tag>`` apply to it."""
    groups: Mapping[str, str] | None = None
    """Model -> the name of its chain step's group (budgets scoped ``group:<name>``)."""
    session: str | None = None
    """The conversation this request belongs to: it is tried first where that was last
    served (prompt caches stay warm)."""
    estimate: Callable[[], int] | None = None
    """Estimates ``input_tokens`` when admission first needs it (then ``None``)."""
    input_tokens: int | None = None
    """The request's estimated input tokens, once admission needed them (else those of
    ``estimated_usage``)."""
    ticket: Ticket | None = None
    """What the successful attempt holds until the reply is charged (admission)."""
    place: int | None = None
    """Its place in the line, kept when it must wait again (ahead of those after it)."""
    queued: bool = False
    """Whether it has had its turn in the line for room (newcomers go behind those
    waiting; it no longer does)."""
    plan: Plan | PinnedPlan | None = None
    """Its plan, once the engine made one past its first candidate (a request whose first
    attempt succeeds needs none): read where a run's deadline ends it, by a run that
    clears it first."""

    def __init__(
        self,
        id: str,
        started: float,
        deadline_at: float,
        *,
        asyncio_cancel_safe: bool = False,
    ) -> None:
        self.id = id
        self.started = started
        self.deadline_at = deadline_at
        self.attempts: list[Attempt] = []
        self.asyncio_cancel_safe = asyncio_cancel_safe
        """Whether asyncio's own cancellation may interrupt the attempts anywhere
        (aiohttp; a whole reply through HttpxSender on asyncio, which keeps it from
        httpcore): they are then bounded by asyncio's cheaper timer, not anyio's scope."""

    def __repr__(self) -> str:
        return f"RequestState({self.id!r}, attempts={len(self.attempts)})"

    def time_left(self) -> float:
        """Seconds until the request's deadline (``inf`` without one)."""
        return self.deadline_at - time.monotonic()


class RequestListener(Protocol):
    """Hears one request's life from the engine (telemetry's span of the request)."""

    def attempt_started(self, ctx: AttemptContext) -> None:
        """An attempt starts with ``ctx``."""

    def attempt_ended(
        self, ctx: AttemptContext, outcome: str, error: BaseException | None = None
    ) -> None:
        """The attempt of ``ctx`` ended: ``ok``, ``cancelled`` or its error's kind."""

    def first_chunk(self) -> None:
        """A streamed answer's first chunk is out."""

    def queued(self, seconds: float) -> None:
        """The request waited ``seconds`` in the line (for a key to recover, or for room)."""

    def charged(self, usd: float, budgets: Sequence[str]) -> None:
        """The answer was charged ``usd`` to the ``budgets`` named (their scopes)."""

    def capture(self, messages: Sequence[Mapping[str, Any]], text: str) -> None:
        """The request's messages and the answer's text (kept only when content is)."""

    def finished(
        self,
        model: ModelEntry | None = None,
        usage: TokenUsage | None = None,
        cost: float | None = None,
        error: BaseException | None = None,
        *,
        profile: str | None = None,
    ) -> None:
        """The request ended: answered by ``model`` on ``profile``, or with ``error``."""


class RequestWatcher(Protocol):
    """Starts a listener per request and hears the engine's events (``Telemetry``)."""

    def attach(
        self, hooks: HookDispatcher, manager: FailoverManager, line: RecoveryLine | None = None
    ) -> None:
        """Listen to the events of the engine whose hooks are ``hooks``; ``line``: the
        engine's line of waiting requests (its length is a metric)."""

    def start_request(
        self, operation: str, request_id: str, chain: Sequence[ModelEntry | Sequence[ModelEntry]]
    ) -> RequestListener | None:
        """The listener of a new request over ``chain`` (``None``: nothing would record it)."""
