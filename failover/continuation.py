"""Streams that continue: which wires can, the request that continues one, the splice.

A stream cut after its first chunk can be finished by another candidate when that
candidate's wire takes an *assistant prefill*: the conversation with the text received so
far as a last, unfinished assistant turn, which the model continues rather than answers.

Wires that continue a trailing assistant turn (:func:`prefill_unsupported` says ``None``):

* Anthropic Messages (``anthropic``, ``vertex_anthropic``), and Claude on Bedrock
  (Converse): a last ``assistant`` message is continued; it may not end with whitespace
  (the API refuses it), so the prefill is sent without its trailing whitespace and the
  continuation's leading whitespace is matched against it (:class:`Splice`). Not with
  extended thinking (``reasoning_effort``): Anthropic refuses a prefill then.
* Gemini (``gemini``, ``vertex_gemini``): a last ``model`` turn is continued.
* Ollama's own API (``ollama-native``): a last ``assistant`` message is continued.

OpenAI Chat Completions and every OpenAI-compatible server (``openai``, ``azure``,
``groq``, ``mistral``, ...) answer a trailing assistant message with a new message, not its
continuation: they cannot continue a stream and are passed over (an ``unsupported``
attempt naming :data:`PREFILL`). So are Bedrock's other models, and every model for a
request with a JSON ``response_format`` (Claude's forced JSON tool would start its answer
over; no wire promises a schema across a prefill): such a stream restarts instead.

Everything here is pure: no I/O, no engine. :class:`ResumedReader` is the reader a stream
reads after it was resumed (the continuation's first chunk, then its reader, spliced);
a stream that never breaks never meets any of it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from failover.catalog import ModelEntry, TokenUsage
from failover.chat_input import estimate_input_tokens
from failover.providers.base import ChatRequest, StreamChunk

__all__ = [
    "CONTINUES",
    "PREFILL",
    "ChunkSource",
    "Continuing",
    "ResumedReader",
    "Splice",
    "combined",
    "continuation_request",
    "continuation_steps",
    "continued_text",
    "continuing",
    "partial_usage",
    "prefill_unsupported",
    "reported_usage",
    "summed",
]

PREFILL = "assistant prefill"
"""The field a model that cannot continue a stream is recorded as unable to take."""

CONTINUES = frozenset(
    {"anthropic", "vertex_anthropic", "bedrock", "gemini", "vertex_gemini", "ollama-native"}
)
"""Providers whose wire continues a trailing assistant turn (Bedrock: Claude models only)."""

_THINKING = frozenset({"anthropic", "vertex_anthropic", "bedrock"})


def prefill_unsupported(model: ModelEntry, request: ChatRequest) -> str | None:
    """:data:`PREFILL` when ``model`` cannot continue ``request``'s answer, else ``None``.

    Args:
        model: A candidate for the continuation.
        request: The original request (its parameters matter: Claude refuses a prefill
            with extended thinking).
    """
    provider = model.provider
    if provider not in CONTINUES:
        return PREFILL
    if provider == "bedrock" and "claude" not in model.id and "anthropic" not in model.id:
        return PREFILL
    response_format = request.params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") not in (None, "text"):
        return PREFILL  # Claude's forced JSON tool would start over; schemas are not promised
    if provider in _THINKING:
        effort = request.params.get("reasoning_effort")
        if (effort is not None and effort != "none") or request.params.get("thinking"):
            return PREFILL
    return None


def _own_prefill(request: ChatRequest) -> str | None:
    """The text of the request's own prefill: its last message when that is an assistant
    turn of text alone."""
    messages = request.messages
    last = messages[-1] if messages else None
    if (
        last is not None
        and last.get("role") == "assistant"
        and isinstance(last.get("content"), str)
        and not last.get("tool_calls")
    ):
        return str(last["content"])
    return None


def continued_text(request: ChatRequest, kept: str) -> str:
    """The whole assistant text a continuation continues: ``kept``, after the request's
    own prefill when it ends with one."""
    return (_own_prefill(request) or "") + kept


def continuation_request(request: ChatRequest, kept: str) -> ChatRequest:
    """``request`` with ``kept`` (the text the caller has) as an assistant prefill.

    The prefill goes without its trailing whitespace (Anthropic refuses it; a model
    continues a word better than a space); :class:`Splice` matches it back. A request
    that ends with a prefill of its own has ``kept`` added to it (one assistant turn).
    When nothing but whitespace would be sent, the request goes as it was.
    """
    own = _own_prefill(request)
    prefill = ((own or "") + kept).rstrip()
    if not prefill:
        return request
    messages = list(request.messages)
    if own is not None:
        messages.pop()
    messages.append({"role": "assistant", "content": prefill})
    return dataclasses.replace(request, messages=messages)


Continuing = tuple[list[tuple[ModelEntry, ...]], Callable[[ModelEntry], "str | None"]]
"""The steps a continuation walks, and which of their models cannot take its prefill."""


def continuing(
    steps: Sequence[tuple[ModelEntry, ...]], broken: ModelEntry, request: ChatRequest
) -> Continuing | None:
    """How ``request``'s stream, broken on ``broken``, can be continued: the steps to walk
    (:func:`continuation_steps`) and the prefill check; ``None`` when no model of them
    takes a prefill."""
    ordered = continuation_steps(steps, broken)
    check = functools.partial(prefill_unsupported, request=request)
    if any(check(model) is None for step in ordered for model in step):
        return ordered, check
    return None


def continuation_steps(
    steps: Sequence[tuple[ModelEntry, ...]], broken: ModelEntry
) -> list[tuple[ModelEntry, ...]]:
    """The chain a resumed stream walks: the steps after the broken model's first, then
    the rest, its own step (the broken model last in it) at the end.

    The broken key has its failure recorded already (it may rest); the next candidate is
    the next model, and the broken model stays a last resort.
    """
    at = next((i for i, step in enumerate(steps) if broken in step), None)
    if at is None:
        return list(steps)
    own = (*(m for m in steps[at] if m is not broken), broken)
    return [*steps[at + 1 :], *steps[:at], own]


def summed(usages: Iterable[TokenUsage]) -> TokenUsage:
    """Token counts added up, field by field (what every attempt of a stream billed)."""
    names = [f.name for f in dataclasses.fields(TokenUsage)]
    totals = dict.fromkeys(names, 0)
    for usage in usages:
        for name in names:
            totals[name] += getattr(usage, name)
    return TokenUsage(**totals)


def partial_usage(reported: TokenUsage | None, request: ChatRequest, text: str) -> TokenUsage:
    """What a stream cut after ``text`` was billed: what it reported so far (Anthropic
    and Gemini tell the input tokens at the start), else an estimate (4 characters a
    token) of the request's input; its output at least the estimate of ``text``."""
    output = (len(text) + 3) // 4
    if reported is not None and reported.input_tokens:
        return dataclasses.replace(reported, output_tokens=max(reported.output_tokens, output))
    return TokenUsage(input_tokens=estimate_input_tokens(request), output_tokens=output)


class Splice:
    """Joins a continuation's text to the text the caller has.

    The prefill was sent without ``trimmed`` (the kept text's trailing whitespace), which
    the caller already has; the continuation's leading whitespace is dropped as far as it
    repeats ``trimmed``, so no character is doubled and none is lost.
    """

    __slots__ = ("_pending",)

    def __init__(self, trimmed: str) -> None:
        self._pending = trimmed

    @classmethod
    def after(cls, kept: str) -> Splice:
        """The splice for a continuation of ``kept``."""
        return cls(kept[len(kept.rstrip()) :])

    def text(self, text: str) -> str:
        """The part of the continuation's next ``text`` that the caller is to get."""
        pending = self._pending
        if not pending or not text:
            return text
        same = 0
        for mine, theirs in zip(pending, text, strict=False):
            if mine != theirs:
                break
            same += 1
        if same == len(text) and same < len(pending):  # whitespace alone, more may match
            self._pending = pending[same:]
            return ""
        self._pending = ""
        return text[same:]


class ChunkSource(Protocol):
    """What a stream reads chunks from (``failover.chat_calls.ChunkReader``)."""

    done: bool

    async def next(self) -> StreamChunk | None:
        """The next chunk, then ``None``."""
        ...

    async def aclose(self) -> None:
        """Stop reading."""
        ...


class ResumedReader:
    """The reader of a resumed stream: the continuation's first chunk, then the rest of
    its reader, each chunk's text through the :class:`Splice` (when continuing).

    Chunks left without text or tool calls by the splice are skipped (the summary chunk,
    ``done`` set, always passes).
    """

    def __init__(
        self, reader: ChunkSource, first: StreamChunk, splice: Splice | None = None
    ) -> None:
        self._reader = reader
        self._first: StreamChunk | None = first
        self._splice = splice

    @property
    def done(self) -> bool:
        """Whether the underlying reader has ended."""
        return self._first is None and self._reader.done

    @property
    def inner(self) -> ChunkSource:
        """The continuation's own reader."""
        return self._reader

    async def next(self) -> StreamChunk | None:
        """The next chunk to hand on, then ``None``."""
        while True:
            chunk, self._first = self._first, None
            if chunk is None:
                chunk = await self._reader.next()
                if chunk is None:
                    return None
            splice = self._splice
            if splice is None or not chunk.text:
                return chunk
            text = splice.text(chunk.text)
            if text or chunk.tool_calls or self._reader.done:
                return dataclasses.replace(chunk, text=text) if text != chunk.text else chunk

    async def aclose(self) -> None:
        """Stop reading."""
        await self._reader.aclose()


def combined(
    *checks: Callable[[ModelEntry], str | None] | None,
) -> Callable[[ModelEntry], str | None] | None:
    """One ``unsupported`` check of several (the first field named wins)."""
    present = [check for check in checks if check is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def check(model: ModelEntry) -> str | None:
        for one in present:
            if (field := one(model)) is not None:
                return field
        return None

    return check


def reported_usage(reader: Any) -> TokenUsage | None:
    """The usage a chunk reader has seen so far: a summary's, or the input count a stream
    tells at its start (Anthropic's ``message_start``), read from its parser."""
    if isinstance(reader, ResumedReader):
        reader = reader.inner
    for usage in (
        getattr(reader, "_usage", None),
        getattr(getattr(reader, "_parser", None), "_input", None),
    ):
        if isinstance(usage, TokenUsage):
            return usage
    return None
