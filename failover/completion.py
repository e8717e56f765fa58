"""Completion: a successful answer and how it was obtained; Accept: a check of one.

Below the client and the streams (both build Completions); an :data:`Accept` is what
``accept=`` takes: a function, sync or async, that keeps a reply (``True``) or rejects it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from failover._records import built_at_once
from failover.attempts import Attempt
from failover.catalog import TokenUsage
from failover.providers.base import ToolCall, assistant_message

__all__ = ["Accept", "Completion"]


@built_at_once
@dataclass(frozen=True)
class Completion:
    """A successful completion and how it was obtained.

    Attributes:
        text: The answer.
        model: ``provider/model`` that answered.
        provider: The provider that answered.
        profile: The name of the auth profile used.
        usage: Token counts.
        cost_usd: Cost from the catalog's prices, ``None`` when a price is unknown.
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``content_filter``.
        attempts: Every attempt, the successful one last.
        latency: Seconds from the call to the answer.
        raw: The provider's parsed reply.
        tool_calls: The tool calls the model made (``id``, ``name``, ``arguments`` JSON text,
            ``args`` parsed).
        raw_finish_reason: The provider's own stop reason.
    """

    text: str
    model: str
    provider: str
    profile: str
    usage: TokenUsage
    cost_usd: float | None
    finish_reason: str | None
    attempts: tuple[Attempt, ...]
    latency: float
    raw: Any
    tool_calls: tuple[ToolCall, ...] = ()
    raw_finish_reason: str | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape, to append to the conversation and send
        to any provider next turn."""
        return assistant_message(self.text, self.tool_calls)


Accept = Callable[[Completion], bool | Awaitable[bool]]
"""Keeps a reply (``True``) or rejects it (the next model is tried); sync or async."""
