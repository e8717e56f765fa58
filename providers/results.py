"""What an adapter reads out of a reply, the same shape from every wire format.

:class:`ChatResult` (text, tool calls, the assistant ``message`` in OpenAI's shape, a
normalised finish reason, usage), streams as :class:`StreamChunk` s that a
:class:`StreamAssembler` turns into the same, and :class:`EmbeddingResult`. The adapters
build them through :func:`chat_result`, :func:`call_deltas` and :func:`embedding_result`,
so that "usage could not be read" and a tool call's numbering mean one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from failover._records import built_at_once, lean_init
from failover.catalog import TokenUsage
from failover.errors import MalformedResponseError
from failover.providers.messages import ToolCall

__all__ = [
    "FINISH_REASONS",
    "ChatResult",
    "EmbeddingResult",
    "StreamAssembler",
    "StreamChunk",
    "ToolCallDelta",
    "assistant_message",
    "call_deltas",
    "chat_result",
    "check_vectors",
    "embedding_result",
    "text_delta",
]

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
"""The normalised finish reasons (the provider's own is kept as ``raw_finish_reason``)."""


def assistant_message(text: str, tool_calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The assistant message in OpenAI's shape, ready to append to the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = [call.to_openai() for call in tool_calls]
    elif not text:
        message["content"] = ""
    return message


@built_at_once
@dataclass(frozen=True)
class ChatResult:
    """A parsed reply, the same shape from every wire format.

    Attributes:
        text: The answer's text (reasoning excluded).
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``content_filter``.
        usage: Token counts (zeros when ``usage_known`` is false).
        raw: The provider's parsed reply.
        tool_calls: The tool calls the model made.
        raw_finish_reason: The provider's own stop reason.
        usage_known: False when the reply's usage could not be read (it is logged).
    """

    text: str
    finish_reason: str | None
    usage: TokenUsage
    raw: Any
    tool_calls: tuple[ToolCall, ...] = ()
    raw_finish_reason: str | None = None
    usage_known: bool = True

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape (``content`` and ``tool_calls``)."""
        return assistant_message(self.text, self.tool_calls)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call, keyed by ``index``.

    The first piece of a call carries its ``id`` and ``name``; ``arguments`` pieces join into
    the arguments' JSON text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    thought_signature: str | None = None


@lean_init
@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a stream: a text delta and/or tool-call deltas; the last carries the
    finish reason and usage.

    A chunk with ``restart`` set carries nothing else: the stream broke and starts over
    from another candidate (``on_stream_break="restart"``); discard what it gave so far.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    raw_finish_reason: str | None = None
    restart: bool = False


class _Unfrozen:
    """A twin of :class:`StreamChunk`'s layout (its slots) whose fields take plain
    assignment (see :func:`text_delta`)."""

    __slots__ = StreamChunk.__slots__


_new = object.__new__


def text_delta(text: str) -> StreamChunk:
    """``StreamChunk(text)``: a delta of text alone, a stream's usual chunk, made with less
    work (what a wire's parser hands on for each of them).

    A frozen dataclass's fields are set through calls that build their arguments (its own
    ``__setattr__`` refuses, and the slots' setters take no fast call): about half of the
    work per chunk once the event is read. This one is made with the twin's layout, its
    fields assigned as plain slots, then made a StreamChunk (the same layout): equal,
    hashed, shown, copied, pickled and frozen as ``StreamChunk(text)`` is.
    """
    chunk: Any = _new(_Unfrozen)
    chunk.text = text
    chunk.finish_reason = None
    chunk.usage = None
    chunk.tool_calls = ()
    chunk.raw_finish_reason = None
    chunk.restart = False
    chunk.__class__ = StreamChunk
    return chunk  # type: ignore[no-any-return]


class StreamAssembler:
    """Accumulates stream chunks into the text, tool calls, message, usage and finish reason.

    Attributes:
        add_delta: Take a chunk that carries no finish reason and no usage (a reader's
            delta): what :meth:`add` does with it, kept as it is (a C call, no Python
            frame) and assembled when the text or tool calls are read.

    Example:
        >>> assembler = StreamAssembler()
        >>> assembler.add(StreamChunk(tool_calls=(ToolCallDelta(0, "c1", "f", '{"a"'),)))
        >>> assembler.add_delta(StreamChunk(tool_calls=(ToolCallDelta(0, arguments=": 1}"),)))
        >>> assembler.tool_calls[0].args
        {'a': 1}
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._deltas: list[StreamChunk] = []  # taken by add_delta, not yet assembled
        self.add_delta: Callable[[StreamChunk], None] = self._deltas.append
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: TokenUsage | None = None

    def add(self, chunk: StreamChunk) -> None:
        """Take one chunk."""
        if self._deltas:
            self._assemble()
        self._take(chunk)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason or chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    def _take(self, chunk: StreamChunk) -> None:
        """Take one chunk's text and tool-call deltas."""
        if chunk.text:
            self._text.append(chunk.text)
        for delta in chunk.tool_calls:
            call = self._calls.setdefault(
                delta.index, {"id": None, "name": None, "arguments": [], "signature": None}
            )
            call["id"] = call["id"] or delta.id
            call["name"] = call["name"] or delta.name
            call["signature"] = call["signature"] or delta.thought_signature
            if delta.arguments:
                call["arguments"].append(delta.arguments)

    def _assemble(self) -> None:
        """Take the chunks :attr:`add_delta` was given, in order."""
        deltas = self._deltas
        if any(map(_TOOL_CALLS, deltas)):
            for chunk in deltas:
                self._take(chunk)
        else:  # text alone (the usual stream): in C
            self._text += map(_TEXT, deltas)
        deltas.clear()  # the list add_delta appends to

    @property
    def text(self) -> str:
        """The text so far."""
        if self._deltas:
            self._assemble()
        return "".join(self._text)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls so far, in index order."""
        if self._deltas:
            self._assemble()
        return tuple(
            ToolCall(
                call["id"] or f"call_{index}",
                call["name"] or "",
                "".join(call["arguments"]),
                call["signature"],
            )
            for index, call in sorted(self._calls.items())
        )

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape."""
        return assistant_message(self.text, self.tool_calls)


_TEXT = attrgetter("text")
_TOOL_CALLS = attrgetter("tool_calls")


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """A parsed embeddings reply: one vector per input, in the inputs' order.

    Attributes:
        vectors: The vectors.
        usage: Input tokens (zeros when ``usage_known`` is false).
        usage_known: False when the reply carries no usage (Gemini's) or an odd one.
    """

    vectors: list[list[float]]
    usage: TokenUsage
    usage_known: bool = True


def chat_result(
    text: str,
    finish_reason: str | None,
    usage: TokenUsage | None,
    raw: Any,
    tool_calls: Sequence[ToolCall] = (),
    raw_finish_reason: str | None = None,
) -> ChatResult:
    """A whole reply's result; ``usage`` is ``None`` when it could not be read (then zeros,
    with ``usage_known`` false)."""
    return ChatResult(
        text,
        finish_reason,
        usage or TokenUsage(),
        raw,
        tuple(tool_calls),
        raw_finish_reason,
        usage_known=usage is not None,
    )


def call_deltas(calls: Sequence[ToolCall], first: int) -> tuple[ToolCallDelta, ...]:
    """Whole tool calls of one stream event as deltas, numbered on from ``first`` (the calls
    the stream's earlier events made): for wires that stream each call whole."""
    return tuple(
        ToolCallDelta(first + number, call.id, call.name, call.arguments, call.thought_signature)
        for number, call in enumerate(calls)
    )


def check_vectors(vectors: list[list[float]], inputs: int) -> list[list[float]]:
    """Check a reply has one vector per input, all of one length; return them."""
    if len(vectors) != inputs:
        raise MalformedResponseError(f"reply has {len(vectors)} vectors for {inputs} inputs")
    if len({len(vector) for vector in vectors}) > 1:
        raise MalformedResponseError("reply's vectors differ in length")
    return vectors


def embedding_result(
    vectors: list[list[float]], inputs: int, usage: TokenUsage | None, *, known: bool = True
) -> EmbeddingResult:
    """An embeddings reply's result, its vectors checked against ``inputs`` (see
    :func:`check_vectors`); ``usage`` is ``None`` when it could not be read."""
    return EmbeddingResult(
        check_vectors(vectors, inputs),
        usage or TokenUsage(),
        usage_known=known and usage is not None,
    )
