"""Replies in OpenAI Responses' format: a ``response`` object, or its documented events.

The object's ``output`` holds an assistant ``message`` (one ``output_text`` part) and a
``function_call`` item per tool call; ``status`` is ``completed``, or ``incomplete`` with
``incomplete_details.reason`` ``max_output_tokens`` or ``content_filter``. It repeats the
request's settings (``instructions``, ``tools``, ``tool_choice``, ...) and says
``store: false``: nothing is kept to continue from.

A stream sends, each event named by its ``type`` and numbered by ``sequence_number``:
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, for a message ``response.content_part.added``,
``response.output_text.delta`` ..., ``response.output_text.done``,
``response.content_part.done``, for a call ``response.function_call_arguments.delta`` ...,
``response.function_call_arguments.done``, then ``response.output_item.done``; and last
``response.completed`` (or ``response.incomplete``) with the whole response. No
``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from failover.catalog import TokenUsage
from failover.gateway.errors import error_payload
from failover.gateway.framing import ESCAPING, dumps, encode_string, new_id, sse
from failover.gateway.stream import OpenCall, StreamEnd, fed_each
from failover.gateway.types import WireResponse
from failover.gateway.usage import responses_usage
from failover.providers.base import ChatResult, StreamChunk

__all__ = ["ResponsesStream", "encode_responses_result"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_FAILED_CODES = {
    "rate_limit_exceeded": "rate_limit_exceeded",
    "content_policy_violation": "invalid_prompt",
}
"""OpenAI error codes -> the ``response.error.code`` of a failed response."""


def _response(
    response_id: str,
    created: int,
    model: str,
    echo: Mapping[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: TokenUsage | None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish_reason or "") if status == "completed" else None
    if reason is not None:
        status = "incomplete"
    reasoning = echo.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": echo.get("safety_identifier"),
        "service_tier": "default",
        "store": False,
        "temperature": echo.get("temperature", 1.0),
        "text": echo.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": list(echo.get("tools") or []),
        "top_logprobs": 0,
        "top_p": echo.get("top_p", 1.0),
        "truncation": echo.get("truncation", "disabled"),
        "usage": responses_usage(usage) if usage is not None else None,
        "user": echo.get("user"),
        "metadata": dict(echo.get("metadata") or {}),
    }


def _message(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [] if status == "in_progress" else [_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _call(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def encode_responses_result(
    result: ChatResult, *, model: str, echo: Mapping[str, Any] | None = None
) -> WireResponse:
    """A ``response`` object for ``result``, answered by ``model``, repeating ``echo``."""
    item_status = "incomplete" if result.finish_reason in _INCOMPLETE else "completed"
    output: list[dict[str, Any]] = []
    if result.text or not result.tool_calls:
        output.append(_message(new_id("msg_", 48, hexadecimal=True), result.text, item_status))
    for call in result.tool_calls:
        item_id = new_id("fc_", 48, hexadecimal=True)
        output.append(_call(item_id, call.id, call.name, call.arguments, "completed"))
    body = _response(
        new_id("resp_", 48, hexadecimal=True),
        int(time.time()),
        model,
        echo or {},
        status="completed",
        output=output,
        usage=result.usage,
        finish_reason=result.finish_reason,
    )
    return WireResponse(200, {"content-type": "application/json"}, dumps(body))


_TEXT_DELTA_HEAD = (
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","sequence_number":'
)
_TEXT_DELTA_TAIL = b',"logprobs":[]}\n\n'


class ResponsesStream:
    """Responses stream events for one stream (see the module's docstring)."""

    media_type = "text/event-stream"

    def __init__(self, *, model: str, echo: Mapping[str, Any] | None = None) -> None:
        self._id = new_id("resp_", 48, hexadecimal=True)
        self._created = int(time.time())
        self._model = model
        self._echo = echo or {}
        self._sequence = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        self._text: list[str] | None = None  # the open message's text
        self._open: OpenCall | None = None  # the open function call
        self._calls: dict[int, tuple[OpenCall, int, str]] = {}  # index -> call, output, item id
        self._end = StreamEnd()

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(payload, kind)

    def _text_delta(self, text: str) -> bytes:
        """``self._event("response.output_text.delta", item_id=..., output_index=...,
        content_index=0, delta=text, logprobs=[])``, its constant parts encoded once."""
        index = len(self._output) - 1
        sequence, self._sequence = self._sequence, self._sequence + 1
        item_id = encode_string(self._output[index]["id"])
        middle = f'{sequence},"item_id":{item_id},"output_index":{index},"content_index":0,"delta":'
        delta = encode_string(text).encode("utf-8", ESCAPING)
        return b"".join((_TEXT_DELTA_HEAD, middle.encode(), delta, _TEXT_DELTA_TAIL))

    def _snapshot(self, status: str) -> dict[str, Any]:
        return _response(
            self._id,
            self._created,
            self._model,
            self._echo,
            status=status,
            output=list(self._output) if status != "in_progress" else [],
            usage=(self._end.usage or TokenUsage()) if status != "in_progress" else None,
            finish_reason=self._end.finish_reason,
        )

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._event(
            "response.created", response=self._snapshot("in_progress")
        ) + self._event("response.in_progress", response=self._snapshot("in_progress"))

    def _open_message(self) -> bytes:
        self._text = []
        index = len(self._output)
        item_id = new_id("msg_", 48, hexadecimal=True)
        self._output.append(_message(item_id, "", "in_progress"))
        return self._event(
            "response.output_item.added", output_index=index, item=self._output[index]
        ) + self._event(
            "response.content_part.added",
            item_id=item_id,
            output_index=index,
            content_index=0,
            part=_text_part(""),
        )

    def _close_item(self) -> bytes:
        index = len(self._output) - 1
        out = b""
        if self._text is not None:
            text = "".join(self._text)
            self._text = None
            item_id = self._output[index]["id"]
            status = "incomplete" if self._end.finish_reason in _INCOMPLETE else "completed"
            self._output[index] = _message(item_id, text, status)
            out += self._event(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            out += self._event(
                "response.content_part.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=_text_part(text),
            )
        elif self._open is not None:
            call, self._open = self._open, None
            _, index, item_id = self._calls[call.index]
            self._output[index] = _call(item_id, call.id, call.name, call.text, "completed")
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=call.name,
                arguments=call.text,
            )
        else:
            return b""
        return out + self._event(
            "response.output_item.done", output_index=index, item=self._output[index]
        )

    def feed(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk's text and tool-call fragments."""
        out = [self._start()]
        if chunk.text:
            if self._text is None:
                out.append(self._close_item())
                out.append(self._open_message())
            assert self._text is not None
            self._text.append(chunk.text)
            out.append(self._text_delta(chunk.text))
        for delta in chunk.tool_calls:
            known = self._calls.get(delta.index)
            if known is None:
                out.append(self._close_item())
                call = OpenCall.start(delta)
                item_id = new_id("fc_", 48, hexadecimal=True)
                index = len(self._output)
                self._calls[delta.index] = (call, index, item_id)
                self._open = call
                self._output.append(_call(item_id, call.id, call.name, "", "in_progress"))
                out.append(
                    self._event(
                        "response.output_item.added", output_index=index, item=self._output[index]
                    )
                )
                known = self._calls[delta.index]
            call, index, item_id = known
            if delta.arguments:
                call.add(delta)
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item_id,
                        output_index=index,
                        delta=delta.arguments,
                    )
                )
        self._end.note(chunk)
        return b"".join(out)

    def feed_many(self, chunks: Sequence[StreamChunk]) -> bytes:
        """:meth:`feed` of each chunk, joined."""
        return fed_each(self.feed, chunks)

    def close(self) -> bytes:
        """The open item's closing events, then ``response.completed`` (or
        ``response.incomplete``) with the whole response."""
        out = self._start() + self._close_item()
        response = self._snapshot("completed")
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return out + self._event(kind, response=response)

    def fail(self, error: BaseException) -> bytes:
        """``response.failed``, its response carrying the error's code and message."""
        body = error_payload("responses", error)[1]["error"]
        response = self._snapshot("failed")
        code = _FAILED_CODES.get(str(body.get("code")), "server_error")
        response["error"] = {"code": code, "message": body["message"]}
        response["usage"] = None
        return self._start() + self._event("response.failed", response=response)
