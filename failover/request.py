"""What one request carries through the engine: its state, and each attempt's context.

Below the engine and telemetry (both read these types), above nothing but the catalog and
the profiles.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage

if TYPE_CHECKING:
    from failover.profiles import AuthProfile
    from failover.telemetry import RequestTelemetry

__all__ = ["TYPICAL_USAGE", "AttemptContext", "RequestState"]

TYPICAL_USAGE = TokenUsage(input_tokens=1000, output_tokens=500)
"""The tokens a request is expected to take when it does not say (the ``cost`` strategy)."""


@dataclass(frozen=True, slots=True)
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

    @property
    def api_key(self) -> str:
        """The profile's key."""
        return self.profile.api_key.get_secret_value()


@dataclass(slots=True)
class RequestState:
    """The bookkeeping of one request: its id, clock and every attempt so far."""

    id: str
    started: float
    deadline_at: float
    attempts: list[Attempt] = field(default_factory=list)
    release: Callable[[Any], Awaitable[None]] | None = None
    """Frees what a losing hedged attempt produced (e.g. closes an opened stream)."""
    estimated_usage: TokenUsage = TYPICAL_USAGE
    """The request's expected tokens, for the ``cost`` strategy."""
    telemetry: RequestTelemetry | None = None
    asyncio_cancel_safe: bool = False
    """Whether asyncio's own cancellation may interrupt the attempts anywhere (aiohttp):
    they are then bounded by asyncio's cheaper timer, not by anyio's cancel scope."""

    def time_left(self) -> float:
        """Seconds until the request's deadline (``inf`` without one)."""
        return self.deadline_at - time.monotonic()
