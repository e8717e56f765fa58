"""Ollama's native ``POST {base}/api/chat`` with its NDJSON stream.

What the caller's OpenAI-shaped request becomes: text content joined, images (data URLs)
in the message's ``images``, assistant ``tool_calls`` with arguments as objects, tool results
as ``role: "tool"`` with ``tool_name``; ``tools`` as given (OpenAI's shape);
``response_format`` -> ``format`` (``"json"`` or the schema); ``reasoning_effort`` -> ``think``;
``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``, penalties and ``max_tokens``
(``num_predict``) inside ``options``. ``tool_choice: "none"`` sends no tools; a forced tool
choice, https image URLs and audio cannot be expressed, so such a model is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import classify_http_error
from failover.errors import ConfigError, MalformedResponseError
from failover.providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    HttpRequest,
    StreamChunk,
    ToolCall,
    call_deltas,
    catalog_unsupported,
    chat_result,
    check_params,
    embedding_result,
    embedding_unsupported,
    first_unknown,
    guarded,
    input_usage,
    json_headers,
    load_json,
    max_output_tokens,
    read_usage,
    read_vector,
)
from failover.providers.messages import (
    Audio,
    Image,
    read_response_format,
    read_stop,
    read_tool_choice,
)
from failover.providers.results import text_delta

__all__ = ["OllamaAdapter"]

_EMBED_NATIVE = frozenset({"truncate", "keep_alive", "options"})
_EMBED_DROPPED = frozenset({"user", "encoding_format"})

_TRANSLATED = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "top_p",
        "top_k",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "max_tokens",
        "max_completion_tokens",
        "n",
    }
)
_DROPPED = frozenset(
    {
        "user",
        "metadata",
        "parallel_tool_calls",
        "store",
        "stream_options",
        "service_tier",
        "cache_control",
    }
)
_NATIVE = frozenset({"options", "keep_alive", "think", "format"})
_OPTIONS = (
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("seed", "seed"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
)


def _usage(data: Mapping[str, Any]) -> TokenUsage | None:
    def build(count: Any) -> TokenUsage:
        return TokenUsage(
            input_tokens=count(data, "prompt_eval_count"),
            output_tokens=count(data, "eval_count"),
        )

    return read_usage(data, "ollama", build)


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(request.turns()):
        message: dict[str, Any] = {"role": turn.role, "content": turn.text}
        images = []
        for part in turn.parts:
            if isinstance(part, Image):
                if part.data is None:
                    raise ConfigError(f"messages[{index}]: Ollama takes images as data URLs only")
                images.append(part.data)
            elif isinstance(part, Audio):
                raise ConfigError(f"messages[{index}]: Ollama takes no audio input")
        if images:
            message["images"] = images
        if turn.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": call.name, "arguments": _args(call.arguments)}}
                for call in turn.tool_calls
            ]
        if turn.role == "tool":
            message["tool_name"] = turn.name
        messages.append(message)
    return messages


def _args(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read(data: Any, first_index: int) -> tuple[str, list[ToolCall]]:
    message = data.get("message")
    if message is None and data.get("done"):
        return "", []
    if not isinstance(message, dict):
        raise MalformedResponseError("reply has no message object")
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise MalformedResponseError("message.content is not a string")
    calls_in = message.get("tool_calls") or []
    if not isinstance(calls_in, list):
        raise MalformedResponseError("message.tool_calls is not a list")
    calls = []
    for number, call in enumerate(calls_in):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise MalformedResponseError(f"message.tool_calls[{number}] is not a call")
        arguments = function.get("arguments")
        call_id = call.get("id")
        calls.append(
            ToolCall(
                call_id if isinstance(call_id, str) and call_id else f"call_{first_index + number}",
                function["name"],
                arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
            )
        )
    return content, calls


_ANSWER_KEYS = frozenset(("content", "tool_calls", "thinking"))
"""The message fields that carry an answer; Ollama always sends ``content``."""


def _finish(raw: Any, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    return "length" if raw == "length" else "stop"


class OllamaAdapter(BaseAdapter):
    """Translates OpenAI-shaped requests to ``/api/chat`` (see the module's docstring)."""

    api = "ollama"
    default_base_url = "http://localhost:11434"
    stream_format: Literal["sse", "ndjson"] = "ndjson"

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """What ``/api/chat`` cannot express, or the catalog says the model cannot take."""
        check_params(request.params)
        params = request.params
        turns = request.turns()
        parts = [part for turn in turns for part in turn.parts]
        if any(isinstance(p, Image) and p.data is None for p in parts):
            return "image_url"
        if any(isinstance(p, Audio) for p in parts):
            return "input_audio"
        choice = read_tool_choice(params.get("tool_choice"))
        if choice is not None and choice.mode in ("required", "tool"):
            return "tool_choice"
        if (n := params.get("n")) is not None and n != 1:
            return "n"
        for name in ("logit_bias", "logprobs", "top_logprobs"):
            if params.get(name) not in (None, False, 0, {}):
                return name
        unknown = first_unknown(params, _TRANSLATED | _DROPPED | _NATIVE)
        return unknown or catalog_unsupported(request, model)

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the /api/chat request."""
        params = request.params
        options: dict[str, Any] = {}
        limit = max_output_tokens(request)
        if limit is not None:
            options["num_predict"] = limit
        if request.temperature is not None:
            options["temperature"] = request.temperature
        for ours, theirs in _OPTIONS:
            if params.get(ours) is not None:
                options[theirs] = params[ours]
        if stop := read_stop(params.get("stop")):
            options["stop"] = stop
        if isinstance(params.get("options"), Mapping):
            options.update(params["options"])
        payload: dict[str, Any] = {
            "model": model,
            "messages": _messages(request),
            "stream": request.stream,
        }
        choice = read_tool_choice(params.get("tool_choice"))
        if params.get("tools") and (choice is None or choice.mode != "none"):
            payload["tools"] = list(params["tools"])
        json_mode = read_response_format(params.get("response_format"))
        if json_mode is not None:
            payload["format"] = dict(json_mode.schema) if json_mode.schema else "json"
        effort = params.get("reasoning_effort")
        if effort is not None:
            payload["think"] = effort != "none"
        for key in ("keep_alive", "think", "format"):
            if key in params:
                payload[key] = params[key]
        if options:
            payload["options"] = options
        headers = json_headers(api_key)
        return HttpRequest("POST", f"{base_url}/api/chat", headers, json.dumps(payload).encode())

    @guarded
    def parse_response(self, body: bytes) -> ChatResult:
        """Read ``message.content`` and ``message.tool_calls``."""
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise MalformedResponseError(f"reply has no message: {str(body)[:200]}")
        if "error" in data:
            raise classify_http_error(500, {}, body)
        text, calls = _read(data, 0)
        if not text and not calls and _ANSWER_KEYS.isdisjoint(data["message"]):
            raise MalformedResponseError("message has no answer: no content field")
        raw = data.get("done_reason")
        raw = raw if isinstance(raw, str) else None
        return chat_result(text, _finish(raw, bool(calls)), _usage(data), data, calls, raw)

    def stream_parser(self) -> _OllamaStream:
        """A parser for NDJSON lines ending with ``done: true``."""
        return _OllamaStream()

    # -- embeddings -----------------------------------------------------------------------

    def embedding_unsupported(self, request: EmbeddingRequest, model: ModelEntry) -> str | None:
        """``dimensions`` on a model that cannot shorten, or a parameter ``/api/embed``
        has no field for (``truncate``, ``keep_alive`` and ``options`` are its own)."""
        unknown = first_unknown(request.params, _EMBED_NATIVE | _EMBED_DROPPED)
        return unknown or embedding_unsupported(request, model)

    def build_embedding_request(
        self, request: EmbeddingRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the ``POST {base}/api/embed`` request."""
        payload: dict[str, Any] = {"model": model, "input": list(request.inputs)}
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        for key in _EMBED_NATIVE:
            if key in request.params:
                payload[key] = request.params[key]
        headers = json_headers(api_key)
        return HttpRequest("POST", f"{base_url}/api/embed", headers, json.dumps(payload).encode())

    @guarded
    def parse_embedding_response(self, body: bytes, inputs: int) -> EmbeddingResult:
        """Read ``embeddings`` and ``prompt_eval_count``."""
        data = load_json(body)
        if not isinstance(data, dict):
            raise MalformedResponseError("reply is not an object")
        if "error" in data:
            raise classify_http_error(500, {}, body)
        if not isinstance(data.get("embeddings"), list):
            raise MalformedResponseError(f"reply has no embeddings: {str(body)[:200]}")
        vectors = [
            read_vector(vector, f"embeddings[{n}]") for n, vector in enumerate(data["embeddings"])
        ]
        usage = input_usage(data, "ollama embeddings", "prompt_eval_count")
        return embedding_result(vectors, inputs, usage, known="prompt_eval_count" in data)


class _OllamaStream:
    """Reads a stream's NDJSON lines: one of a text message alone, the usual one, at once
    (:meth:`feed`); anything else through every check (:meth:`_read_line`)."""

    def __init__(self) -> None:
        self.complete = False
        self._calls = 0

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """The chunk of one line (``None`` for one with nothing in it).

        Raises:
            ProviderError: An error line.
            MalformedResponseError: A line that is not a reply's piece.
        """
        line = load_json(data)
        # a piece of text and nothing else: what _read_line makes of it, without reading it
        # twice. ``line`` and ``message`` are objects once subscripted by name (a list, a
        # string, a number or null raises TypeError)
        try:
            message = line["message"]
            text = message["content"]
        except (KeyError, TypeError):
            return self._read_line(line, data)
        if (
            type(text) is str
            and text
            and not line.get("done")
            and "error" not in line
            and not message.get("tool_calls")
        ):
            return text_delta(text)
        return self._read_line(line, data)

    @guarded
    def _read_line(self, line: Any, data: str) -> StreamChunk | None:
        """The chunk of one line, ``line`` (parsed), every field checked (a shape it does not
        understand is a MalformedResponseError: :func:`guarded`)."""
        if not isinstance(line, dict):
            raise MalformedResponseError("stream line is not an object")
        if "error" in line:
            raise classify_http_error(500, {}, data)
        text, calls = _read(line, self._calls)
        deltas = call_deltas(calls, self._calls)
        self._calls += len(calls)
        if line.get("done"):
            self.complete = True
            raw = line.get("done_reason")
            raw = raw if isinstance(raw, str) else "stop"
            return StreamChunk(text, _finish(raw, self._calls > 0), _usage(line), deltas, raw)
        return StreamChunk(text, tool_calls=deltas) if text or deltas else None
