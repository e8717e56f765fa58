"""What every stream encoder shares: its interface and the tool calls it has seen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from failover.catalog import TokenUsage
from failover.gateway.framing import new_id
from failover.providers.base import StreamChunk, ToolCallDelta

__all__ = ["OpenCall", "StreamEncoder", "StreamEnd", "fed_each", "texts_alone"]


class StreamEncoder(Protocol):
    """Turns :class:`~failover.providers.base.StreamChunk` s into one wire's SSE bytes.

    ``feed`` each chunk as it comes (the first call also sends the stream's opening
    events), then ``close`` once for the closing events; or ``fail`` for the wire's own
    mid-stream error event when the stream breaks after it started.
    """

    media_type: str

    def feed(self, chunk: StreamChunk) -> bytes:
        """The bytes for one chunk (possibly none)."""
        ...

    def feed_many(self, chunks: Sequence[StreamChunk]) -> bytes:
        """The bytes for several chunks read together: :meth:`feed` 's of each, joined."""
        ...

    def close(self) -> bytes:
        """The bytes that end the stream: finish reason, usage and terminator."""
        ...

    def fail(self, error: BaseException) -> bytes:
        """The wire's error event for a stream that broke after it started."""
        ...


def fed_each(feed: Callable[[StreamChunk], bytes], chunks: Sequence[StreamChunk]) -> bytes:
    """``feed`` of each chunk, joined: :meth:`StreamEncoder.feed_many` written once for the
    encoders with no shorter way (a C loop, no Python frame per chunk but ``feed``'s)."""
    return b"".join(map(feed, chunks))


def texts_alone(chunks: Sequence[StreamChunk]) -> list[str] | None:
    """The texts of ``chunks`` (the empty ones left out) when they carry nothing else (no
    tool call, finish reason or usage: a stream's usual run of text deltas, read together),
    else ``None``."""
    texts: list[str] = []
    add = texts.append
    for chunk in chunks:  # a plain loop: its attribute reads are the interpreter's fastest
        if chunk.tool_calls or chunk.finish_reason is not None or chunk.usage is not None:
            return None
        if chunk.text:
            add(chunk.text)
    return texts


@dataclass(slots=True)
class OpenCall:
    """A tool call being streamed: its id, name and the argument text so far."""

    index: int
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    thought_signature: str | None = None

    @classmethod
    def start(cls, delta: ToolCallDelta, *, id_prefix: str = "call_") -> OpenCall:
        """A call from its first delta (an id is made when the provider gave none)."""
        return cls(
            delta.index,
            delta.id or new_id(id_prefix, 24),
            delta.name or "",
            [],
            delta.thought_signature,
        )

    def add(self, delta: ToolCallDelta) -> None:
        """Take a later delta of this call."""
        if delta.arguments:
            self.arguments.append(delta.arguments)
        self.name = self.name or delta.name or ""
        self.thought_signature = self.thought_signature or delta.thought_signature

    @property
    def text(self) -> str:
        """The arguments' JSON text so far."""
        return "".join(self.arguments)


@dataclass(slots=True)
class StreamEnd:
    """The finish reason and usage seen so far (they may come in separate chunks)."""

    finish_reason: str | None = None
    raw_finish_reason: str | None = None
    usage: TokenUsage | None = None

    def note(self, chunk: StreamChunk) -> None:
        """Keep a chunk's finish reason and usage."""
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
