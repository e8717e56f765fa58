"""The simulator's OpenAI Responses API (``POST .../v1/responses``): the ``response``
object, its stream events, and the responses it remembers for ``previous_response_id``.

Pure helpers; the server in ``simulator.py`` sends what they build and ``rejects.py``
checks the requests. The shapes follow the openai SDK's types (``openai.types.responses``):
a ``response`` with ``output`` items (an assistant ``message`` with one ``output_text``
part, or ``function_call`` items) and ``usage``; a stream of ``response.created``,
``response.in_progress``, per item ``response.output_item.added`` ...
``response.output_item.done``, and ``response.completed`` (``response.incomplete``,
``response.failed``), each numbered by ``sequence_number``, with no ``[DONE]``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "REASONING_TOKENS",
    "ResponseStore",
    "call_item",
    "context_chars",
    "failed_response",
    "failure_event",
    "input_items",
    "message_item",
    "new_id",
    "response_events",
    "response_object",
    "usage_body",
]

Event = tuple[str | None, str]
"""(SSE event name, data), as the simulator's ``_send`` writes them."""

REASONING_TOKENS = {"minimal": 8, "low": 32, "medium": 128, "high": 512, "xhigh": 1024}
"""Reasoning tokens a simulated model spends per ``reasoning.effort``."""

_ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "safety_identifier": None,
    "service_tier": "default",
    "temperature": 1.0,
    "tool_choice": "auto",
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}
"""Request fields the ``response`` object repeats, with the API's defaults."""


def new_id(prefix: str) -> str:
    """An id the way OpenAI writes them: ``resp_``/``msg_``/``fc_`` and 48 hex digits."""
    return prefix + secrets.token_hex(24)


def input_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as items (a string is one user message); items without a
    ``type`` are messages. Whatever is not an object is left out (the request was checked)."""
    given = body.get("input")
    if isinstance(given, str):
        part = {"type": "input_text", "text": given}
        return [{"type": "message", "role": "user", "content": [part]}] if given else []
    if not isinstance(given, list):
        return []
    return [
        {"type": "message", **item} if "type" not in item else dict(item)
        for item in given
        if isinstance(item, dict)
    ]


def context_chars(items: Iterable[Mapping[str, Any]], instructions: Any = None) -> int:
    """How many characters of text a conversation holds (for ``context_limit`` and usage)."""
    total = len(instructions) if isinstance(instructions, str) else 0
    for item in items:
        kind = item.get("type")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                total += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict):
                        text = part.get("text", part.get("refusal"))
                        total += len(text) if isinstance(text, str) else 0
        elif kind == "function_call":
            total += len(str(item.get("arguments", "")))
        elif kind == "function_call_output":
            output = item.get("output")
            total += len(output if isinstance(output, str) else json.dumps(output))
    return total


def usage_body(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:
    """Responses' ``usage``; ``output_tokens`` counts the reasoning tokens too,
    ``input_tokens`` the ``cached`` ones (read from the prompt cache)."""
    output = completion + reasoning
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """An assistant ``message`` output item; ``text=None``: no content part yet."""
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """A ``function_call`` output item."""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_object(
    response_id: str,
    created: int,
    model: str,
    body: Mapping[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object repeating the request's settings, as the API answers."""
    echo = {
        name: default if body.get(name) is None else body[name]
        for name, default in _ECHO_DEFAULTS.items()
    }
    reasoning = _object(body.get("reasoning"))
    text = _object(body.get("text"))
    tools = body.get("tools")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        **echo,
        "model": model,
        "output": output,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store") is not False,
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium",
        },
        "tools": list(tools) if isinstance(tools, list) else [],
        "usage": usage,
        "metadata": _object(body.get("metadata")),
    }


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def failed_response(response: Mapping[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    """``response`` failed part-way: ``status: failed`` with a ``server_error``."""
    return {
        **response,
        "status": "failed",
        "completed_at": None,
        "incomplete_details": None,
        "output": [
            {**item, "status": "incomplete"} if item.get("status") == "in_progress" else item
            for item in output
        ],
        "usage": None,
        "error": {
            "code": "server_error",
            "message": "The server had an error processing your request. Sorry about that! "
            "You can retry your request (simulated).",
        },
    }


class _Events:
    """Numbers the events of one stream."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(self.events), **fields}
        self.events.append((kind, json.dumps(payload)))


def response_events(
    response: Mapping[str, Any], pieces: Sequence[str]
) -> tuple[list[Event], int, list[list[dict[str, Any]]]]:
    """The stream of ``response`` (its final form), its text sent in ``pieces``.

    Returns the events, the index of the first delta event (where a failing stream is cut),
    and per event the output as it stood after that event (what a ``response.failed`` sent
    then carries).
    """
    events = _Events()
    start = {**response, "status": "in_progress", "completed_at": None, "output": []}
    start.update(usage=None, incomplete_details=None, error=None)
    events.add("response.created", response=start)
    events.add("response.in_progress", response=start)
    so_far: list[dict[str, Any]] = []
    partial: list[list[dict[str, Any]]] = [[], []]
    first_delta = -1

    def note() -> None:
        partial.append([dict(item) for item in so_far])

    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            item_id = item["id"]
            so_far.append(message_item(item_id, None, "in_progress"))
            events.add("response.output_item.added", output_index=index, item=so_far[-1])
            note()
            if not item["content"]:
                so_far[-1] = item
                events.add("response.output_item.done", output_index=index, item=item)
                note()
                continue
            text = item["content"][0]["text"]
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            events.add("response.content_part.added", **where, part=_text_part(""))
            note()
            written = ""
            for piece in pieces:
                if first_delta < 0:
                    first_delta = len(events.events)
                written += piece
                events.add("response.output_text.delta", **where, delta=piece, logprobs=[])
                so_far[-1] = message_item(item_id, written, "in_progress")
                note()
            events.add("response.output_text.done", **where, text=text, logprobs=[])
            note()
            events.add("response.content_part.done", **where, part=_text_part(text))
            note()
        else:
            item_id, arguments = item["id"], item["arguments"]
            so_far.append(call_item(item_id, item["call_id"], item["name"], "", "in_progress"))
            events.add("response.output_item.added", output_index=index, item=so_far[-1])
            note()
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                if first_delta < 0:
                    first_delta = len(events.events)
                so_far[-1] = {**so_far[-1], "arguments": so_far[-1]["arguments"] + piece}
                events.add(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=index,
                    delta=piece,
                )
                note()
            events.add(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=item["name"],
                arguments=arguments,
            )
            note()
        so_far[-1] = item
        events.add("response.output_item.done", output_index=index, item=item)
        note()
    final = "response.completed" if response["status"] == "completed" else "response.incomplete"
    events.add(final, response=response)
    note()
    return events.events, first_delta if first_delta >= 0 else len(events.events) - 1, partial


def failure_event(
    response: Mapping[str, Any], output: list[dict[str, Any]], sequence: int
) -> Event:
    """A ``response.failed`` event numbered ``sequence``, carrying the output so far."""
    payload = {
        "type": "response.failed",
        "sequence_number": sequence,
        "response": failed_response(response, output),
    }
    return "response.failed", json.dumps(payload)


class ResponseStore:
    """The responses the simulator created, per key, as the conversation each ends: the
    items a later request naming it by ``previous_response_id`` continues from.

    Bounded: the newest ``per_key`` responses of each of the newest ``keys`` keys.
    """

    def __init__(self, *, per_key: int = 1000, keys: int = 1000) -> None:
        self.per_key = per_key
        self.keys = keys
        self._kept: OrderedDict[str, OrderedDict[str, tuple[dict[str, Any], ...]]] = OrderedDict()

    def remember(self, key: str, response_id: str, items: Iterable[dict[str, Any]]) -> None:
        """Keep the conversation ``response_id`` (created with ``key``) ends."""
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = OrderedDict()
            while len(self._kept) > self.keys:
                self._kept.popitem(last=False)
        self._kept.move_to_end(key)
        kept[response_id] = tuple(items)
        while len(kept) > self.per_key:
            kept.popitem(last=False)

    def recall(self, key: str, response_id: str) -> tuple[dict[str, Any], ...] | None:
        """The conversation ``response_id`` ended, if ``key`` created it and it is kept."""
        kept = self._kept.get(key)
        return None if kept is None else kept.get(response_id)

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())
