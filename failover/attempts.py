"""The record of one attempt: which model and key were tried, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from failover._records import built_at_once

if TYPE_CHECKING:
    from failover.errors import ProviderError

__all__ = ["Attempt"]


@built_at_once
@dataclass(frozen=True)
class Attempt:
    """One call to one model with one auth profile.

    Attributes:
        model: ``provider/model`` id.
        profile: The auth profile's name (never its key); ``None`` when no key was used
            (a model skipped as ``"unsupported"`` before any call).
        outcome: ``"ok"``, the error kind (``"rate_limit"``, ``"server"``, ...), or
            ``"unsupported"`` (the model cannot take a field of the request; not called).
        status: The HTTP status, when there was one.
        retry_after: Seconds the provider asked to wait, when it said.
        elapsed: Seconds the attempt took.
        error: The error, or ``None`` on success.
    """

    model: str
    profile: str | None
    outcome: str
    status: int | None
    retry_after: float | None
    elapsed: float
    error: ProviderError | None = None

    @property
    def error_kind(self) -> str | None:
        """The error's kind, or ``None`` for a successful attempt."""
        return None if self.error is None else self.error.kind

    def describe(self) -> str:
        """One line for humans: model, profile, outcome and the error's message."""
        via = f" via {self.profile!r}" if self.profile is not None else ""
        line = f"{self.model}{via}: {self.outcome}"
        if self.status is not None:
            line += f" (HTTP {self.status})"
        if self.error is not None:
            line += f": {self.error.message}"
        return line
