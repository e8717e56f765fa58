"""Replies in OpenAI Chat Completions' format: a ``chat.completion`` object, or
``chat.completion.chunk`` events ending with ``data: [DONE]``.

A tool call from Gemini carries its thought signature in ``extra_content.google``, as
Gemini's own OpenAI-compatible API sends it, so the history the SDK sends back keeps it.

A stream opens with the assistant's role, sends text and tool-call fragments as they come
(a call's first fragment with its ``id``, ``type`` and ``name``), then a chunk with the
finish reason, a ``choices: []`` chunk with usage when ``stream_options.include_usage``
was asked (every other chunk then has ``"usage": null``), and ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from failover.catalog import TokenUsage
from failover.gateway.errors import error_payload
from failover.gateway.framing import (
    ESCAPING,
    dumps,
    encode_compact,
    encode_string,
    new_id,
    sse,
)
from failover.gateway.stream import OpenCall, StreamEnd, fed_each, texts_alone
from failover.gateway.types import WireResponse
from failover.gateway.usage import chat_usage_json
from failover.providers.base import FINISH_REASONS, ChatResult, StreamChunk

__all__ = ["ChatStream", "chat_finish", "encode_chat_result"]


def chat_finish(finish_reason: str | None, has_tool_calls: bool) -> str:
    """The ``finish_reason`` to send: a normalised one as it is, else from the calls."""
    if finish_reason in FINISH_REASONS:
        return str(finish_reason)
    return "tool_calls" if has_tool_calls else "stop"


def encode_chat_result(result: ChatResult, *, model: str) -> WireResponse:
    """A ``chat.completion`` reply for ``result``, answered by ``model``.

    Its body is the compact JSON ``dumps`` makes of the object (``id``, ``object``,
    ``created``, ``model``, one choice with its message, ``logprobs`` and
    ``finish_reason``, ``usage``, ``service_tier``, ``system_fingerprint``, in OpenAI's
    order), written from its parts: the fixed fields as text, each value encoded alone."""
    calls = result.tool_calls
    text = result.text
    content = encode_string(text) if text or not calls else "null"
    tool_calls = (
        ',"tool_calls":' + encode_compact([call.to_openai() for call in calls]) if calls else ""
    )
    finish = encode_string(chat_finish(result.finish_reason, bool(calls)))
    body = (
        f"{_opening('chat.completion', model)},"
        f'"choices":[{{"index":0,"message":{{"role":"assistant","content":{content},'
        f'"refusal":null,"annotations":[]{tool_calls}}},"logprobs":null,'
        f'"finish_reason":{finish}}}],"usage":{chat_usage_json(result.usage)},'
        '"service_tier":"default","system_fingerprint":null}'
    )
    body_bytes = body.encode("utf-8", ESCAPING)  # a lone surrogate escaped
    return WireResponse(200, {"content-type": "application/json"}, body_bytes)


def _opening(kind: str, model: str) -> str:
    """The fields a reply or a chunk opens with (a new id, ``object``, ``created``,
    ``model``), as compact JSON, its object left open."""
    return (
        f'{{"id":"{new_id("chatcmpl-", 29)}","object":"{kind}",'
        f'"created":{int(time.time())},"model":{encode_string(model)}'
    )


_ROLE = encode_compact({"role": "assistant", "content": "", "refusal": None}).encode()
"""The delta of a stream's opening chunk."""
_DONE = sse("[DONE]")
"""A stream's last event."""


class ChatStream:
    """Chat Completions chunks for one stream (see the module's docstring)."""

    media_type = "text/event-stream"

    def __init__(self, *, model: str, include_usage: bool = False) -> None:
        # the fields every chunk opens with (id, object, created, model, service_tier,
        # system_fingerprint), as compact JSON without the closing brace
        self._head = (
            f"{_opening('chat.completion.chunk', model)},"
            '"service_tier":"default","system_fingerprint":null'
        )
        self._include_usage = include_usage
        # every chunk is this prefix, the delta's JSON and a suffix: built once per stream
        prefix = f'data: {self._head},"choices":[{{"index":0,"delta":'
        self._tail = ',"usage":null}\n\n' if include_usage else "}\n\n"
        suffix = f',"logprobs":null,"finish_reason":null}}]{self._tail}'
        # (the model's name as its JSON writes it: a lone surrogate escaped)
        self._prefix = prefix.encode("utf-8", ESCAPING)
        self._suffix = suffix.encode()
        # a text delta's chunk is this head, the text as JSON and this tail; texts read
        # together are joined by the tail and head between them, and encoded at once
        self._text_head = prefix + '{"content":'
        self._text_tail = "}" + suffix
        self._between = self._text_tail + self._text_head
        self._started = False
        self._calls: dict[int, OpenCall] = {}
        self._end = StreamEnd()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        encoded = dumps(delta)
        if finish is None:
            return self._prefix + encoded + self._suffix
        end = f',"logprobs":null,"finish_reason":{encode_string(finish)}}}]{self._tail}'
        return self._prefix + encoded + end.encode()

    def _texts(self, texts: Iterable[str]) -> bytes:
        """The text delta chunks of ``texts`` (each as :meth:`_chunk` writes it), written as
        one text and encoded once."""
        joined = self._between.join(map(encode_string, texts))
        return (self._text_head + joined + self._text_tail).encode("utf-8", ESCAPING)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._prefix + _ROLE + self._suffix

    def feed(self, chunk: StreamChunk) -> bytes:
        """Text and tool-call fragments of one chunk."""
        if (  # most of a stream: a text delta alone, after the opening
            self._started
            and not chunk.tool_calls
            and chunk.finish_reason is None
            and chunk.usage is None
        ):
            return self._texts((chunk.text,)) if chunk.text else b""
        out = [self._start()]
        if chunk.text:
            out.append(self._texts((chunk.text,)))
        fragments = []
        for delta in chunk.tool_calls:
            call = self._calls.get(delta.index)
            if call is None:
                call = self._calls[delta.index] = OpenCall.start(delta)
                call.add(delta)
                function = {"name": call.name, "arguments": delta.arguments}
                first = {
                    "index": delta.index,
                    "id": call.id,
                    "type": "function",
                    "function": function,
                }
                if delta.thought_signature:
                    google = {"thought_signature": delta.thought_signature}
                    first["extra_content"] = {"google": google}
                fragments.append(first)
            elif delta.arguments:
                call.add(delta)
                fragments.append({"index": delta.index, "function": {"arguments": delta.arguments}})
        if fragments:
            out.append(self._chunk({"tool_calls": fragments}))
        self._end.note(chunk)
        return b"".join(out)

    def feed_many(self, chunks: Sequence[StreamChunk]) -> bytes:
        """:meth:`feed` of each chunk, joined; a run of text deltas alone after the opening
        (a stream's usual chunks, read together) written as one text and encoded once."""
        if self._started and (texts := texts_alone(chunks)) is not None:
            return self._texts(texts) if texts else b""
        return fed_each(self.feed, chunks)

    def close(self) -> bytes:
        """The finish chunk, the usage chunk (when asked for) and ``[DONE]``."""
        finish = chat_finish(self._end.finish_reason, bool(self._calls))
        out = [self._start(), self._chunk({}, finish)]
        if self._include_usage:
            usage = chat_usage_json(self._end.usage or TokenUsage())
            usage_chunk = f'data: {self._head},"choices":[],"usage":{usage}}}\n\n'
            out.append(usage_chunk.encode("utf-8", ESCAPING))
        out.append(_DONE)
        return b"".join(out)

    def fail(self, error: BaseException) -> bytes:
        """OpenAI's mid-stream ``data: {"error": ...}`` event."""
        return self._start() + sse(error_payload("openai", error)[1])
