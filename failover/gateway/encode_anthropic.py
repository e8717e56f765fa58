"""Replies in Anthropic Messages' format: a ``message`` object, or its named events.

``content`` holds a ``text`` block and a ``tool_use`` block per call (``input`` an
object; ids made ``[A-Za-z0-9_-]``, as Anthropic's are, so the next turn can go to
Anthropic itself). Finish reasons map stop -> ``end_turn`` (``stop_sequence`` when the
provider said so), length -> ``max_tokens``, tool_calls -> ``tool_use``, content_filter ->
``refusal``.

A stream sends ``message_start`` (usage so far), ``ping``, then per block
``content_block_start``, ``content_block_delta`` (``text_delta`` or ``input_json_delta``)
... and ``content_block_stop``, then ``message_delta`` (stop reason and the whole usage)
and ``message_stop``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from failover.catalog import TokenUsage
from failover.gateway.errors import error_payload
from failover.gateway.framing import (
    ESCAPING,
    arguments_object,
    dumps,
    encode_string,
    new_id,
    sse,
)
from failover.gateway.stream import OpenCall, StreamEnd, fed_each, texts_alone
from failover.gateway.types import WireResponse
from failover.gateway.usage import anthropic_usage
from failover.providers.base import ChatResult, StreamChunk

__all__ = ["AnthropicStream", "anthropic_stop", "encode_anthropic_result"]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def anthropic_stop(finish_reason: str | None, raw: str | None, has_tool_calls: bool) -> str:
    """The ``stop_reason`` for a normalised finish reason."""
    if finish_reason == "stop" and raw == "stop_sequence":
        return "stop_sequence"
    if finish_reason in _STOP:
        return _STOP[str(finish_reason)]
    return "tool_use" if has_tool_calls else "end_turn"


def _tool_id(call_id: str) -> str:
    return _ID_CHARS.sub("_", call_id) or new_id("toolu_01", 22)


def _message(model: str) -> dict[str, Any]:
    return {
        "id": new_id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def encode_anthropic_result(result: ChatResult, *, model: str) -> WireResponse:
    """A ``message`` reply for ``result``, answered by ``model``."""
    body = _message(model)
    if result.text:
        body["content"].append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        body["content"].append(
            {
                "type": "tool_use",
                "id": _tool_id(call.id),
                "name": call.name,
                "input": arguments_object(call.arguments),
            }
        )
    body["stop_reason"] = anthropic_stop(
        result.finish_reason, result.raw_finish_reason, bool(result.tool_calls)
    )
    body["usage"] = {**anthropic_usage(result.usage), "service_tier": "standard"}
    return WireResponse(200, {"content-type": "application/json"}, dumps(body))


_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_MIDDLE = b',"delta":'
_CLOSE = b"}\n\n"
_TEXT_MIDDLE = ',"delta":{"type":"text_delta","text":'
_TEXT_HEAD = _DELTA_HEAD.decode()  # a text delta's event, up to its block's index
_TEXT_CLOSE = "}}\n\n"
"""A text delta's event (``_delta``'s bytes) is ``_DELTA_HEAD``, the block's index, this
middle, the text as JSON and this close."""


class AnthropicStream:
    """Messages stream events for one stream (see the module's docstring)."""

    media_type = "text/event-stream"

    def __init__(self, *, model: str) -> None:
        self._message = _message(model)
        self._started = False
        self._block = -1  # the open block's index
        self._open: str | None = None  # "text" or "tool_use"
        self._calls: dict[int, tuple[OpenCall, int]] = {}  # call index -> call, block index
        self._end = StreamEnd()

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = {**anthropic_usage(TokenUsage()), "service_tier": "standard"}
        start = {"type": "message_start", "message": {**self._message, "usage": usage}}
        return sse(start, "message_start") + sse({"type": "ping"}, "ping")

    def _stop_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse({"type": "content_block_stop", "index": self._block}, "content_block_stop")

    def _start_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._stop_block()
        self._block += 1
        self._open = kind
        event = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + sse(event, "content_block_start")

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        # sse({"type": "content_block_delta", "index": index, "delta": delta}, its type)
        return b"".join((_DELTA_HEAD, str(index).encode(), _DELTA_MIDDLE, dumps(delta), _CLOSE))

    def _texts(self, texts: Iterable[str]) -> bytes:
        """The text delta events of ``texts`` in the open text block (``_delta``'s bytes),
        written as one text and encoded once."""
        head = f"{_TEXT_HEAD}{self._block}{_TEXT_MIDDLE}"
        joined = (_TEXT_CLOSE + head).join(map(encode_string, texts))
        return (head + joined + _TEXT_CLOSE).encode("utf-8", ESCAPING)

    def feed(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk's text and tool-call fragments."""
        if (  # most of a stream: a text delta alone, in the text block already open
            self._open == "text"
            and not chunk.tool_calls
            and chunk.finish_reason is None
            and chunk.usage is None
        ):
            if not chunk.text:
                return b""
            return self._texts((chunk.text,))
        out = [self._start()]
        if chunk.text:
            if self._open != "text":
                out.append(self._start_block("text", {"type": "text", "text": ""}))
            out.append(self._texts((chunk.text,)))
        for delta in chunk.tool_calls:
            known = self._calls.get(delta.index)
            if known is None:
                call = OpenCall.start(delta, id_prefix="toolu_01")
                block = {
                    "type": "tool_use",
                    "id": _tool_id(call.id),
                    "name": call.name,
                    "input": {},
                }
                out.append(self._start_block("tool_use", block))
                known = self._calls[delta.index] = (call, self._block)
            call, index = known
            if delta.arguments:
                call.add(delta)
                fragment = {"type": "input_json_delta", "partial_json": delta.arguments}
                out.append(self._delta(index, fragment))
        self._end.note(chunk)
        return b"".join(out)

    def feed_many(self, chunks: Sequence[StreamChunk]) -> bytes:
        """:meth:`feed` of each chunk, joined; a run of text deltas alone in the open text
        block (a stream's usual chunks, read together) written at once."""
        if self._open == "text" and (texts := texts_alone(chunks)) is not None:
            return self._texts(texts) if texts else b""
        return fed_each(self.feed, chunks)

    def close(self) -> bytes:
        """The last block's stop, ``message_delta`` and ``message_stop``."""
        stop = anthropic_stop(
            self._end.finish_reason, self._end.raw_finish_reason, bool(self._calls)
        )
        usage = anthropic_usage(self._end.usage or TokenUsage())
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": usage,
        }
        return (
            self._start()
            + self._stop_block()
            + sse(delta, "message_delta")
            + sse({"type": "message_stop"}, "message_stop")
        )

    def fail(self, error: BaseException) -> bytes:
        """Anthropic's mid-stream ``error`` event (e.g. ``overloaded_error``)."""
        return self._start() + sse(error_payload("anthropic", error)[1], "error")
