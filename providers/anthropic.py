"""Anthropic Messages API (``POST {base}/v1/messages``), pinned to version 2023-06-01.

What the caller's OpenAI-shaped request becomes:

- system (and developer) messages -> top-level ``system`` text blocks;
- user/assistant turns alternate: consecutive same-role messages are merged, tool results
  become ``tool_result`` blocks (keyed by ``tool_use_id``) in a user turn, assistant
  ``tool_calls`` become ``tool_use`` blocks with their parsed ``input``;
- images -> ``image`` blocks (``base64`` with ``media_type``, or ``url``);
- ``tools`` -> ``input_schema``; ``tool_choice`` auto/required/none/named -> auto/any/none/tool;
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``;
- ``stop`` -> ``stop_sequences``; ``user`` -> ``metadata.user_id``;
- ``response_format`` json_schema -> ``output_config.format``; json_object -> a forced tool
  whose input comes back as the answer's text;
- ``reasoning_effort`` -> ``thinking`` with a budget (added on top of ``max_tokens``);
- ``max_tokens`` (required) from the request, else the catalog, else 4096;
- ``cache_control`` markers on content parts, messages and tools -> the same
  ``cache_control`` on the matching system, text, image, tool-use, tool-result block or
  tool; the request's own ``cache_control`` -> on the last message's last block; at most
  4, the last ones kept (see :mod:`failover.providers._claude`).

Not expressible here, so a model of this wire is skipped when asked: ``seed``, ``n`` > 1,
penalties, ``logprobs``, ``logit_bias``, audio input, and sampling settings with thinking.
"""

from __future__ import annotations

from typing import Any, Literal

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import classify_http_error
from failover.errors import MalformedResponseError
from failover.providers._claude import (
    JSON_TOOL,
    MAX_BREAKPOINTS,
    THINKING_BUDGETS,
    ReplyBlocks,
    StreamBlocks,
    cap_breakpoints,
    check_stop,
    claude_messages,
    finish,
    output_limit,
    read_claude_usage,
    thinking_budget,
    thinking_unsupported,
)
from failover.providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    HttpRequest,
    StreamChunk,
    catalog_unsupported,
    chat_result,
    check_params,
    first_unknown,
    guarded,
    has_part,
    json_body,
    load_json,
)
from failover.providers.messages import (
    Audio,
    Image,
    marker_of,
    read_response_format,
    read_stop,
    read_tool_choice,
    read_tools,
)
from failover.providers.results import text_delta

__all__ = ["JSON_TOOL", "THINKING_BUDGETS", "AnthropicAdapter"]

API_VERSION = "2023-06-01"

_TRANSLATED = frozenset(
    {
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stop",
        "top_p",
        "reasoning_effort",
        "user",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "cache_control",
    }
)
_DROPPED = frozenset({"metadata", "store", "stream_options", "service_tier"})
"""OpenAI hints with no meaning here: dropped."""
_NATIVE = frozenset(
    {"top_k", "thinking", "output_config", "container", "mcp_servers", "context_management"}
)
"""Anthropic's own fields: passed through as given."""


_USAGE = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _usage(usage: Any) -> TokenUsage | None:
    return read_claude_usage(usage, "anthropic", _USAGE)


class _Blocks:
    """The Messages API's content blocks (see :func:`claude_messages`)."""

    wire = "Anthropic"
    id_limit: int | None = None

    @staticmethod
    def system(text: str) -> dict[str, Any]:
        return {"type": "text", "text": text}

    text = system

    @staticmethod
    def image(part: Image, where: str) -> dict[str, Any]:
        if part.data is not None:
            source = {"type": "base64", "media_type": part.guessed_mime_type(), "data": part.data}
            return {"type": "image", "source": source}
        return {"type": "image", "source": {"type": "url", "url": part.url}}

    @staticmethod
    def tool_use(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}

    @staticmethod
    def tool_result(call_id: str, text: str) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
        if text:
            block["content"] = text
        return block

    def __init__(self) -> None:
        self.marks = 0

    def mark(self, blocks: list[dict[str, Any]], marker: Any) -> None:
        if "cache_control" not in blocks[-1]:  # the first marker of a block wins, as on Bedrock
            self.marks += 1
            blocks[-1]["cache_control"] = dict(marker)


class AnthropicAdapter(BaseAdapter):
    """Translates OpenAI-shaped requests to the Messages API (see the module's docstring)."""

    api = "anthropic"
    default_base_url = "https://api.anthropic.com"
    stream_format: Literal["sse", "ndjson"] = "sse"
    catalog_provider = "anthropic"

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """What the Messages API cannot express, or the catalog says the model cannot take."""
        check_params(request.params)
        params = request.params
        if has_part(request, Audio):
            return "input_audio"
        if (n := params.get("n")) is not None and n != 1:
            return "n"
        for name in ("presence_penalty", "frequency_penalty"):
            if params.get(name) not in (None, 0, 0.0):
                return name
        for name in ("logprobs", "top_logprobs"):
            if params.get(name) not in (None, False, 0):
                return name
        if refused := thinking_unsupported(request, schema_is_native=True):
            return refused
        unknown = first_unknown(params, _TRANSLATED | _DROPPED | _NATIVE)
        return unknown or catalog_unsupported(request, model)

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the Messages request."""
        params = request.params
        blocks = _Blocks()
        system, messages = claude_messages(request, blocks)
        limit = output_limit(request, self.catalog_provider, model)
        payload: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": limit}
        if system:
            payload["system"] = system
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if params.get("top_p") is not None:
            payload["top_p"] = params["top_p"]
        if stop := read_stop(params.get("stop")):
            payload["stop_sequences"] = stop
        if isinstance(params.get("user"), str):
            payload["metadata"] = {"user_id": params["user"]}
        if (budget := thinking_budget(params)) is not None:
            payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
            payload["max_tokens"] = limit + budget
        self._tools(payload, params)
        json_mode = read_response_format(params.get("response_format"))
        if json_mode is not None and json_mode.schema is not None:
            payload["output_config"] = {
                "format": {"type": "json_schema", "schema": dict(json_mode.schema)}
            }
        elif json_mode is not None:
            payload["tools"] = [
                {
                    "name": JSON_TOOL,
                    "description": "Answer with a JSON object.",
                    "input_schema": {"type": "object"},
                }
            ]
            payload["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        if request.stream:
            payload["stream"] = True
        tools = payload.get("tools", [])
        if blocks.marks + sum("cache_control" in tool for tool in tools) > MAX_BREAKPOINTS:
            groups = [tools, system, *(message["content"] for message in messages)]
            cap_breakpoints(groups, "cache_control", separate=False)
        for key in _NATIVE:
            if key in params:
                payload[key] = params[key]
        headers = {
            "content-type": "application/json",
            "x-api-key": api_key,
            "anthropic-version": API_VERSION,
        }
        body = json_body(payload, acyclic=request.plain)
        return HttpRequest("POST", f"{base_url}/v1/messages", headers, body)

    @staticmethod
    def _tools(payload: dict[str, Any], params: Any) -> None:
        specs = read_tools(params.get("tools"))
        if specs:
            payload["tools"] = [
                {
                    "name": spec.name,
                    **({"description": spec.description} if spec.description else {}),
                    "input_schema": dict(spec.parameters or {"type": "object", "properties": {}}),
                    **({"cache_control": dict(marker)} if (marker := marker_of(spec)) else {}),
                }
                for spec in specs
            ]
        choice = read_tool_choice(params.get("tool_choice"))
        wire: dict[str, Any] | None = None
        if choice is not None:
            kind = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
            wire = {"type": kind[choice.mode]}
            if choice.name:
                wire["name"] = choice.name
        if params.get("parallel_tool_calls") is False and specs:
            wire = wire or {"type": "auto"}
            if wire["type"] != "none":
                wire["disable_parallel_tool_use"] = True
        if wire is not None and specs:
            payload["tool_choice"] = wire

    @guarded
    def parse_response(self, body: bytes) -> ChatResult:
        """Join the text blocks, read ``tool_use`` blocks; a refusal or overflow raises."""
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise MalformedResponseError(f"reply has no content list: {str(body)[:200]}")
        raw = data.get("stop_reason")
        check_stop(raw, "stop_reason")
        blocks = ReplyBlocks()
        for number, block in enumerate(data["content"]):
            if not isinstance(block, dict):
                raise MalformedResponseError(f"content[{number}] is not an object")
            if block.get("type") == "text":
                blocks.text(block.get("text"), number)
            elif block.get("type") == "tool_use":
                blocks.tool(block.get("name"), block.get("id"), block.get("input"), number)
        usage = _usage(data.get("usage"))
        text = "".join(blocks.texts)
        return chat_result(text, finish(raw, blocks.json_tool), usage, data, blocks.calls, raw)

    def stream_parser(self) -> _AnthropicStream:
        """A parser for the named Messages stream events."""
        return _AnthropicStream()


class _AnthropicStream:
    """Reads the named Messages stream events: a text delta, the usual event, at once
    (:meth:`feed`); anything else through every check (:meth:`_read`)."""

    def __init__(self) -> None:
        self.complete = False
        self._input: TokenUsage | None = TokenUsage()
        self._blocks = StreamBlocks()

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """The chunk of one event (``None`` for one with nothing in it).

        Raises:
            ProviderError: An error event.
            MalformedResponseError: An event that is not what its name says.
        """
        if event != "content_block_delta":
            return self._feed(event, data)
        payload = load_json(data)
        # a text delta: what _read makes of it, without reading it twice. ``payload`` and
        # ``delta`` are objects once subscripted by name (a list, a string, a number or
        # null raises TypeError)
        try:
            delta = payload["delta"]
            text = delta["text"]
        except (KeyError, TypeError):
            return self._read(event, payload, data)
        if type(text) is str and text and delta.get("type") == "text_delta":
            return text_delta(text)
        return self._read(event, payload, data)

    def _feed(self, event: str, data: str) -> StreamChunk | None:
        """:meth:`feed` for any event (what it raises: :func:`load_json`'s and
        :meth:`_read`'s)."""
        if event in ("ping", ""):
            return None
        return self._read(event, load_json(data), data)

    @guarded
    def _read(self, event: str, payload: Any, data: str) -> StreamChunk | None:
        """The chunk of one event, ``payload`` (its data, parsed), every field checked (a
        shape it does not understand is a MalformedResponseError: :func:`guarded`)."""
        if not isinstance(payload, dict):
            raise MalformedResponseError("stream event is not an object")
        if event == "error":
            raise classify_http_error(_error_status(payload), {}, data)
        if event == "message_start":
            message = payload.get("message") or {}
            if not isinstance(message, dict):
                raise MalformedResponseError("message_start.message is not an object")
            self._input = _usage(message.get("usage") or {})
        elif event == "content_block_start":
            return self._block_start(payload)
        elif event == "content_block_delta":
            return self._delta(payload)
        elif event == "message_delta":
            delta = payload.get("delta") or {}
            if not isinstance(delta, dict):
                raise MalformedResponseError("message_delta.delta is not an object")
            stop = delta.get("stop_reason")
            check_stop(stop, "stop_reason")
            output = _usage(payload.get("usage") or {})
            usage = None
            if output is not None and self._input is not None:
                usage = TokenUsage(
                    input_tokens=self._input.input_tokens or output.input_tokens,
                    output_tokens=output.output_tokens,
                    cache_read_tokens=self._input.cache_read_tokens or output.cache_read_tokens,
                    cache_write_tokens=self._input.cache_write_tokens or output.cache_write_tokens,
                )
            return StreamChunk("", finish(stop, bool(self._blocks.json_blocks)), usage, (), stop)
        elif event == "message_stop":
            self.complete = True
        return None

    def _block_start(self, payload: dict[str, Any]) -> StreamChunk | None:
        block = payload.get("content_block")
        index = payload.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            raise MalformedResponseError("content_block_start without a block and index")
        if block.get("type") != "tool_use":
            return None
        return self._blocks.start(index, block.get("name"), block.get("id"))

    def _delta(self, payload: dict[str, Any]) -> StreamChunk | None:
        delta = payload.get("delta") or {}
        if not isinstance(delta, dict):
            raise MalformedResponseError("content_block_delta.delta is not an object")
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return StreamChunk(str(delta["text"]))
        if kind == "input_json_delta":
            index = payload.get("index")
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str) or not fragment:
                return None
            return self._blocks.arguments(index, fragment)
        return None


_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "authentication_error": 401,
    "permission_error": 403,
    "billing_error": 402,
    "not_found_error": 404,
    "request_too_large": 413,
    "invalid_request_error": 400,
}


def _error_status(payload: dict[str, Any]) -> int:
    error = payload.get("error") or {}
    return _ERROR_STATUS.get(str(error.get("type")), 500) if isinstance(error, dict) else 500
