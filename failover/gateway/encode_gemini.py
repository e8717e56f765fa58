"""Replies in Gemini's ``generateContent`` format: a response object, or SSE events that
are each a whole response object (``:streamGenerateContent?alt=sse``).

The candidate's parts hold the text and a ``functionCall`` per tool call (``args`` an
object, its ``id``, and the ``thoughtSignature`` a Gemini call came with). Finish reasons
map stop and tool_calls -> ``STOP``, length -> ``MAX_TOKENS``, content_filter ->
``SAFETY`` (a Gemini provider's own reason is kept). A stream sends text as it comes;
Gemini sends whole calls, so a call's fragments are gathered and sent whole in the last
event, which carries ``finishReason`` and ``usageMetadata``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from failover.catalog import TokenUsage
from failover.gateway.errors import error_payload
from failover.gateway.framing import arguments_object, dumps, new_id, sse
from failover.gateway.stream import OpenCall, StreamEnd, fed_each
from failover.gateway.types import WireResponse
from failover.gateway.usage import gemini_usage
from failover.providers.base import ChatResult, StreamChunk, ToolCall

__all__ = ["GeminiStream", "encode_gemini_result", "gemini_finish"]

_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
_BLOCKED = ("content_filter",)
_RAW_MEANS = {
    "STOP": ("stop", "tool_calls"),
    "MAX_TOKENS": ("length",),
    "SAFETY": _BLOCKED,
    "RECITATION": _BLOCKED,
    "BLOCKLIST": _BLOCKED,
    "PROHIBITED_CONTENT": _BLOCKED,
    "SPII": _BLOCKED,
}
"""Gemini's own reasons, kept when they mean the normalised one."""


def gemini_finish(finish_reason: str | None, raw: str | None) -> str:
    """The ``finishReason`` for a normalised finish reason (a Gemini reason is kept)."""
    finish = finish_reason or "stop"
    if raw in _RAW_MEANS and finish in _RAW_MEANS[str(raw)]:
        return str(raw)
    return _FINISH.get(finish, "STOP")


def _call_part(call: ToolCall) -> dict[str, Any]:
    part: dict[str, Any] = {
        "functionCall": {"id": call.id, "name": call.name, "args": arguments_object(call.arguments)}
    }
    if call.thought_signature:
        part["thoughtSignature"] = call.thought_signature
    return part


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts or finish is None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


def _response(
    candidate: dict[str, Any], usage: TokenUsage | None, model: str, response_id: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = gemini_usage(usage)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def encode_gemini_result(result: ChatResult, *, model: str) -> WireResponse:
    """A ``GenerateContentResponse`` for ``result``, answered by ``model``."""
    finish = gemini_finish(result.finish_reason, result.raw_finish_reason)
    parts: list[dict[str, Any]] = [{"text": result.text}] if result.text else []
    parts.extend(_call_part(call) for call in result.tool_calls)
    if not parts and finish != "SAFETY":
        parts = [{"text": ""}]
    body = _response(_candidate(parts, finish), result.usage, model, new_id("", 22))
    return WireResponse(200, {"content-type": "application/json"}, dumps(body))


class GeminiStream:
    """Gemini SSE events for one stream (see the module's docstring)."""

    media_type = "text/event-stream"

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._id = new_id("", 22)
        self._calls: dict[int, OpenCall] = {}
        self._end = StreamEnd()

    def _event(self, candidate: dict[str, Any], usage: TokenUsage | None) -> bytes:
        return sse(_response(candidate, usage, self._model, self._id), gemini=True)

    def feed(self, chunk: StreamChunk) -> bytes:
        """An event with the chunk's text; tool-call fragments are kept for the end."""
        for delta in chunk.tool_calls:
            call = self._calls.get(delta.index)
            if call is None:
                call = self._calls[delta.index] = OpenCall.start(delta)
            call.add(delta)
        self._end.note(chunk)
        if not chunk.text:
            return b""
        return self._event(_candidate([{"text": chunk.text}], None), None)

    def feed_many(self, chunks: Sequence[StreamChunk]) -> bytes:
        """:meth:`feed` of each chunk, joined."""
        return fed_each(self.feed, chunks)

    def close(self) -> bytes:
        """The last event: whole function calls, ``finishReason`` and ``usageMetadata``."""
        calls = [
            ToolCall(call.id, call.name, call.text, call.thought_signature)
            for _, call in sorted(self._calls.items())
        ]
        finish = gemini_finish(self._end.finish_reason, self._end.raw_finish_reason)
        parts = [_call_part(call) for call in calls] or (
            [] if finish == "SAFETY" else [{"text": ""}]
        )
        return self._event(_candidate(parts, finish), self._end.usage or TokenUsage())

    def fail(self, error: BaseException) -> bytes:
        """Gemini's mid-stream ``data: {"error": ...}`` event."""
        return sse(error_payload("gemini", error)[1], gemini=True)
