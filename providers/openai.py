"""OpenAI Chat Completions, and every server that speaks it (Groq, OpenRouter, vLLM, ...).

The caller's request is already in this shape, so it passes through, except what a given
server rejects: each registered instance knows which fields its server does not take
(``omit``: harmless, dropped; ``rejects``: meaningful, so the model is skipped) and which it
names differently (``rename``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import classify_http_error
from failover.errors import ContentFilteredError, FailoverError, MalformedResponseError
from failover.providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    EmbeddingRequest,
    EmbeddingResult,
    HttpRequest,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    catalog_unsupported,
    check_params,
    embedding_result,
    embedding_unsupported,
    error_status,
    guarded,
    input_usage,
    json_body,
    json_headers,
    load_json,
    max_output_tokens,
    merge_params,
    not_understood,
    read_usage,
    read_vector,
)
from failover.providers.reading import SHAPE_ERRORS
from failover.providers.results import text_delta

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "OTHER_WIRES_FIELDS",
    "OpenAIAdapter",
    "openai_finish",
    "openai_usage",
]

MAX_EMBEDDING_INPUTS = 2048
"""The most inputs OpenAI's ``/embeddings`` takes in one request."""

OTHER_WIRES_FIELDS = frozenset(
    {
        "top_k",
        "thinking",
        "output_config",
        "container",
        "mcp_servers",
        "context_management",
        "safetySettings",
        "cachedContent",
        "generationConfig",
        "options",
        "keep_alive",
        "think",
        "format",
    }
)
"""Other wires' own fields, which OpenAI's API answers with a 400 ("Unrecognized request
argument"): a model there is skipped when a request carries one."""

_ANSWER_KEYS = frozenset(
    ("content", "tool_calls", "refusal", "function_call", "audio", "reasoning_content", "reasoning")
)
"""The message fields that carry an answer (or the thinking towards one); a message with
none of them is malformed. OpenAI always sends ``content`` (``""`` or ``null`` when empty)."""

_PLAIN_FIELDS = frozenset(
    (
        "messages",
        "model",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "stream",
        "stream_options",
    )
)
"""The fields of a plain request's payload (:attr:`ChatRequest.plain`)."""

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _misshapen(data: Any, body: bytes) -> MalformedResponseError | None:
    """What is wrong with a Chat Completions reply's outline (its object, ``choices[0]``,
    their ``message``), or ``None`` when the outline is right; read only for a reply that
    did not parse."""
    if type(data) is not dict:  # JSON's objects are dicts
        return MalformedResponseError("reply is not an object")
    choices = data.get("choices")
    if type(choices) is not list or not choices or type(choices[0]) is not dict:
        return MalformedResponseError(f"reply has no choices: {str(body)[:200]}")
    if type(choices[0].get("message")) is not dict:
        return MalformedResponseError("choices[0].message is not an object")
    return None


def openai_finish(raw: str | None, has_tool_calls: bool) -> str | None:
    """Normalise an OpenAI-style ``finish_reason``, a string its reader has checked (some
    servers say ``stop`` after tools)."""
    if raw is None:
        return None
    finish = _FINISH.get(raw, "stop")
    return "tool_calls" if has_tool_calls and finish == "stop" else finish


def openai_usage(usage: Any, wire: str = "openai") -> TokenUsage | None:
    """Read ``usage`` with cached and reasoning tokens; ``None`` when absent or odd.

    Chat Completions' ``prompt_tokens`` (with ``prompt_tokens_details.cached_tokens``) or
    the Responses API's ``input_tokens`` (with ``input_tokens_details.cached_tokens``);
    DeepSeek's ``prompt_cache_hit_tokens`` when no details are given, and the
    ``cache_write_tokens`` some servers add to the details (Azure, OpenRouter). The prompt
    count includes the cached tokens on these wires; ``TokenUsage.input_tokens`` does not:
    it is the prompt less the cache reads and writes.
    """

    if type(usage) is dict:
        # Chat Completions' usage, read at once when every count in it is a sane integer;
        # else the general way below, which says what is odd
        if usage.keys() <= _COUNTS_ALONE:  # no cache or reasoning counts (many servers)
            prompt = usage.get("prompt_tokens")  # None (the Responses API's, or none): below
            output = usage.get("completion_tokens", 0)
            if type(prompt) is int and type(output) is int and not (prompt | output) >> 53:
                return TokenUsage(prompt, output)  # neither below 0 nor from 2**53 on
        elif (
            "prompt_tokens" in usage
            and (
                counts := _detailed_counts(
                    usage,
                    usage["prompt_tokens"],
                    usage.get("completion_tokens", 0),
                    usage.get("prompt_tokens_details"),
                    usage.get("completion_tokens_details"),
                )
            )
            is not None
        ):
            return counts
    elif usage is None:  # most stream chunks
        return None

    def build(count: Any) -> TokenUsage:
        if "input_tokens" in usage and "prompt_tokens" not in usage:  # the Responses API
            details = usage.get("input_tokens_details")
            prompt = count(usage, "input_tokens")
            output = count(usage, "output_tokens")
            reasoning = count(usage.get("output_tokens_details"), "reasoning_tokens")
        else:
            details = usage.get("prompt_tokens_details")
            prompt = count(usage, "prompt_tokens")
            output = count(usage, "completion_tokens")
            reasoning = count(usage.get("completion_tokens_details"), "reasoning_tokens")
        cached = count(details, "cached_tokens")
        if details is None and "prompt_cache_hit_tokens" in usage:
            cached = count(usage, "prompt_cache_hit_tokens")  # DeepSeek
        written = count(details, "cache_write_tokens")
        return TokenUsage(
            input_tokens=max(0, prompt - cached - written),
            output_tokens=output,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=reasoning,
        )

    return read_usage(usage, wire, build)


_INT = frozenset((int,))
_COUNTS_ALONE = frozenset(("prompt_tokens", "completion_tokens", "total_tokens"))
"""A Chat Completions usage of these names alone has no cache nor reasoning counts."""


def _detailed_counts(
    usage: dict[str, Any], prompt: Any, output: Any, details: Any, more: Any
) -> TokenUsage | None:
    """Chat Completions' usage with its cache or reasoning counts (``details``, ``more``)
    when every count is a sane integer (``None``: read it the general way)."""
    if details is None:
        if "prompt_cache_hit_tokens" in usage:
            return None
        cached = written = 0
    elif type(details) is dict:
        cached = details.get("cached_tokens", 0)
        written = details.get("cache_write_tokens", 0)
    else:
        return None
    if more is None:
        reasoning = 0
    elif type(more) is dict:
        reasoning = more.get("reasoning_tokens", 0)
    else:
        return None
    if (
        set(map(type, (prompt, output, cached, written, reasoning))) != _INT
        or (prompt | output | cached | written | reasoning) >> 53
    ):  # a bool, a float, ..., or a count below 0 or from 2**53 on
        return None
    uncached = prompt - cached - written
    return TokenUsage(uncached if uncached > 0 else 0, output, cached, written, reasoning)


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with parts
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", None)
        )
    raise MalformedResponseError(f"{where}.content is not text")


def _tool_calls(calls: Any, where: str) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise MalformedResponseError(f"{where}.tool_calls is not a list")
    read = []
    for number, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise MalformedResponseError(f"{where}.tool_calls[{number}].function is not a call")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        call_id = call.get("id")
        read.append(
            ToolCall(
                call_id if isinstance(call_id, str) and call_id else f"call_{number}",
                function["name"],
                arguments,
            )
        )
    return tuple(read)


def _marked(content: list[Any]) -> bool:
    """Whether a content part of ``content`` carries a ``cache_control`` marker."""
    for part in content:
        if (type(part) is dict or isinstance(part, Mapping)) and "cache_control" in part:
            return True
    return False


def _unmarked(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """``message`` without ``cache_control`` markers (on it or on its content parts)."""
    message = {k: v for k, v in message.items() if k != "cache_control"}
    content = message.get("content")
    if type(content) is list:
        message["content"] = [
            {k: v for k, v in part.items() if k != "cache_control"}
            if isinstance(part, Mapping)
            else part
            for part in content
        ]
    return message


def _strip_extras(messages: Any, *, markers: bool = False) -> list[Any]:
    """Drop ``extra_content`` (Gemini's thought signatures) from assistant tool calls, and
    ``cache_control`` markers unless ``markers`` (a server that takes them)."""
    out = []
    for message in messages:
        is_mapping = type(message) is dict or isinstance(message, Mapping)
        if (
            is_mapping
            and not markers
            and (
                "cache_control" in message
                or (type(content := message.get("content")) is list and _marked(content))
            )
        ):
            message = _unmarked(message)
        calls = message.get("tool_calls") if is_mapping else None
        if isinstance(calls, list) and any(
            isinstance(c, Mapping) and "extra_content" in c for c in calls
        ):
            message = {
                **message,
                "tool_calls": [
                    {k: v for k, v in c.items() if k != "extra_content"}
                    if isinstance(c, Mapping)
                    else c
                    for c in calls
                ],
            }
        out.append(message)
    return out


class OpenAIAdapter(BaseAdapter):
    """``POST {base}/chat/completions`` with ``Authorization: Bearer``.

    Args:
        default_base_url: The public base URL, ending in ``/v1`` like the SDK's.
        max_tokens_field: ``max_completion_tokens`` (OpenAI) or ``max_tokens`` (older servers).
        omit: Fields this server rejects that are harmless hints: never sent
            (e.g. Mistral's 422 on ``stream_options``).
        rejects: Fields this server cannot honour: a model here is skipped when asked for one.
        rename: Fields this server names differently (Mistral: ``seed`` -> ``random_seed``).
        cache_markers: Whether this server takes Anthropic-style ``cache_control`` markers
            on content parts, messages and tools, and the top-level one (a proxy fronting
            Claude may; register such a server with ``cache_markers=True``). ``False`` (the
            default, OpenRouter's too: it refuses some markers for some models; OpenAI and
            most servers cache prompts implicitly): the markers are dropped before sending,
            as LiteLLM does.
    """

    api = "openai"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def __init__(
        self,
        default_base_url: str,
        *,
        max_tokens_field: str = "max_completion_tokens",
        omit: frozenset[str] = frozenset(),
        rejects: frozenset[str] = frozenset(),
        rename: Mapping[str, str] | None = None,
        cache_markers: bool = False,
    ) -> None:
        super().__init__(default_base_url)
        self.cache_markers = cache_markers
        self.max_tokens_field = max_tokens_field
        self.omit = omit
        self.rejects = rejects
        self._rejects_sorted = tuple(sorted(rejects))
        self.rename = dict(rename or {})

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """A field this server rejects, or one the catalog says the model cannot take."""
        check_params(request.params)
        params = request.params
        if params:
            for name in self._rejects_sorted:
                if params.get(name) is not None:
                    return name
        return catalog_unsupported(request, model)

    def payload(self, request: ChatRequest, model: str | None) -> dict[str, Any]:
        """The JSON body (``model`` left out when ``None``, as Azure names it in the URL)."""
        omit = self.omit
        if request.plain and (
            not omit or (omit.isdisjoint(_PLAIN_FIELDS) and self.max_tokens_field not in omit)
        ):  # nothing to strip, rename or leave out: the fields as they are
            plain: dict[str, Any] = {"messages": list(request.messages)}
            if model is not None:
                plain["model"] = model
            if request.max_tokens is not None:
                plain[self.max_tokens_field] = request.max_tokens
            if request.temperature is not None:
                plain["temperature"] = request.temperature
            if request.stream:
                plain["stream"] = True
                plain["stream_options"] = {"include_usage": True}
            return plain
        markers = self.cache_markers
        payload: dict[str, Any] = {"messages": _strip_extras(request.messages, markers=markers)}
        if model is not None:
            payload["model"] = model
        limit = max_output_tokens(request)
        if limit is not None:
            payload[self.max_tokens_field] = limit
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        for key, value in request.params.items():
            if key in ("max_tokens", "max_completion_tokens") or key in payload:
                continue
            if key == "tools" and not markers and isinstance(value, (list, tuple)):
                value = [_unmarked(tool) if isinstance(tool, Mapping) else tool for tool in value]
            payload.setdefault(self.rename.get(key, key), value)
        for key in self.omit:
            payload.pop(key, None)
        if not markers:
            payload.pop("cache_control", None)
        return payload

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the chat-completions request."""
        headers = json_headers(api_key)
        body = json_body(self.payload(request, model), acyclic=request.plain)
        return HttpRequest("POST", f"{base_url}/chat/completions", headers, body)

    def parse_response(self, body: bytes) -> ChatResult:
        """Read ``choices[0].message``; a content filter or refusal raises.

        Raises:
            ContentFilteredError: The answer was filtered, or refused.
            MalformedResponseError: The reply is not one this reads (as :func:`guarded`
                makes any shape a parser does not understand).
        """
        data = load_json(body)  # (its errors are MalformedResponseError already)
        try:
            # read as the usual reply is shaped: JSON's other values index by name with a
            # TypeError and have no .get (AttributeError), a missing name or choice raises,
            # and _misshapen says which part was wrong
            choice = data["choices"][0]
            message = choice["message"]
            raw_finish = choice.get("finish_reason")
            if type(raw_finish) is not str and raw_finish is not None:
                raise MalformedResponseError("choices[0].finish_reason is not a string")
            refusal = message.get("refusal")
            calls = message.get("tool_calls")
            text = message.get("content")
            if raw_finish == "content_filter" or refusal:
                raise ContentFilteredError(
                    str(refusal or "the answer was blocked by a content filter")[:500],
                    code=raw_finish or "refusal",
                )
            calls = () if calls is None else _tool_calls(calls, "choices[0].message")
            if type(text) is not str:
                text = _text(text, "choices[0].message")
            if not text and not calls and _ANSWER_KEYS.isdisjoint(message):
                raise MalformedResponseError("choices[0].message has no answer: no content field")
            counts = openai_usage(data.get("usage"))
            finish = openai_finish(raw_finish, calls != ())
        except FailoverError:
            raise
        except SHAPE_ERRORS as exc:
            raise (_misshapen(data, body) or not_understood(exc)) from None
        if counts is None:
            return ChatResult(text, finish, TokenUsage(), data, calls, raw_finish, False)
        return ChatResult(text, finish, counts, data, calls, raw_finish)

    def stream_parser(self) -> _OpenAIStream:
        """A parser for ``data: {chunk}`` ... ``data: [DONE]``."""
        return _OpenAIStream()

    # -- embeddings -----------------------------------------------------------------------

    def embedding_unsupported(self, request: EmbeddingRequest, model: ModelEntry) -> str | None:
        """``dimensions`` for a model that cannot shorten its vectors; too many inputs."""
        return embedding_unsupported(request, model, max_inputs=MAX_EMBEDDING_INPUTS)

    def embedding_payload(self, request: EmbeddingRequest, model: str | None) -> dict[str, Any]:
        """The ``/embeddings`` JSON body (``model`` left out when ``None``, as for Azure)."""
        payload: dict[str, Any] = {"input": list(request.inputs)}
        if model is not None:
            payload["model"] = model
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        return merge_params(payload, request.params)

    def build_embedding_request(
        self, request: EmbeddingRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the ``POST {base}/embeddings`` request."""
        headers = json_headers(api_key)
        body = json_body(self.embedding_payload(request, model))
        return HttpRequest("POST", f"{base_url}/embeddings", headers, body)

    @guarded
    def parse_embedding_response(self, body: bytes, inputs: int) -> EmbeddingResult:
        """Read ``data[].embedding`` in ``index`` order, and ``usage.prompt_tokens``."""
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise MalformedResponseError(f"reply has no data: {str(body)[:200]}")
        items = data["data"]
        if not all(isinstance(item, dict) for item in items):
            raise MalformedResponseError("reply's data holds a non-object")
        if all(isinstance(item.get("index"), int) for item in items):
            items = sorted(items, key=lambda item: item["index"])
        vectors = [
            read_vector(item.get("embedding"), f"data[{number}].embedding")
            for number, item in enumerate(items)
        ]
        usage = input_usage(data.get("usage"), "openai embeddings", "prompt_tokens")
        return embedding_result(vectors, inputs, usage)


class _OpenAIStream:
    """Reads ``data: {chunk}`` ... ``data: [DONE]``: a text-only delta, the usual chunk, at
    once (:meth:`feed`); anything else through every check (:meth:`_read`)."""

    __slots__ = ("_tools", "complete")

    def __init__(self) -> None:
        self.complete = False
        self._tools = False

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """The chunk of one event's data (``None`` for one with nothing in it).

        Raises:
            ProviderError: An error event; a refusal or a content filter's block.
            MalformedResponseError: Data that is not a chunk.
        """
        if not data.startswith("{"):
            return self._feed(data)
        chunk = load_json(data)
        # a text delta and nothing else: what _read makes of it, without reading it twice.
        # ``chunk`` is an object (the data starts with "{"); ``choice`` and ``delta`` are
        # too once subscripted by name (a list, a string, a number or null raises TypeError)
        try:
            choice = chunk["choices"][0]
            delta = choice["delta"]
            text = delta["content"]
        except (KeyError, IndexError, TypeError):
            return self._read(chunk, data)
        if (
            type(text) is str
            and text
            and "error" not in chunk
            and chunk.get("usage") is None
            and choice.get("finish_reason") is None
            # a delta of its content alone (the usual one) has no tool calls nor refusal
            and (len(delta) == 1 or (delta.get("tool_calls") is None and not delta.get("refusal")))
        ):
            return text_delta(text)
        return self._read(chunk, data)

    def _feed(self, data: str) -> StreamChunk | None:
        """:meth:`feed` for any data: ``[DONE]``, or a chunk read by :func:`load_json`."""
        if data.strip() == "[DONE]":
            self.complete = True
            return None
        return self._read(load_json(data), data)

    @guarded
    def _read(self, chunk: Any, data: str) -> StreamChunk | None:
        """The chunk of one event's data, ``chunk`` (parsed), every field checked (a shape
        it does not understand is a MalformedResponseError: :func:`guarded`)."""
        if type(chunk) is not dict:  # JSON's objects are dicts
            raise MalformedResponseError("stream chunk is not an object")
        if "error" in chunk:
            raise classify_http_error(error_status(chunk), {}, data)
        usage = chunk.get("usage")
        if usage is not None:
            usage = openai_usage(usage)
        choices = chunk.get("choices") or []
        if type(choices) is not list:
            raise MalformedResponseError("stream chunk choices is not a list")
        choice = choices[0] if choices else {}
        if type(choice) is not dict:
            raise MalformedResponseError("stream chunk choices[0] is not an object")
        delta = choice.get("delta") or {}
        if type(delta) is not dict:
            raise MalformedResponseError("stream chunk delta is not an object")
        if delta.get("refusal"):
            raise ContentFilteredError(str(delta["refusal"])[:500], code="refusal")
        text = delta.get("content")
        if type(text) is not str:
            text = "" if text is None else _text(text, "delta")
        calls = delta.get("tool_calls")
        deltas = () if calls is None else _deltas(calls)
        if deltas:
            self._tools = True
        raw_finish = choice.get("finish_reason")
        if raw_finish is None:
            if not text and not deltas and usage is None:
                return None
            return StreamChunk(text, None, usage, deltas)
        if type(raw_finish) is not str:
            raise MalformedResponseError("stream chunk finish_reason is not a string")
        if raw_finish == "content_filter":
            raise ContentFilteredError(
                "the answer was blocked by a content filter", code=raw_finish
            )
        finish = openai_finish(raw_finish, self._tools)
        return StreamChunk(text, finish, usage, deltas, raw_finish)


def _deltas(calls: Any) -> tuple[ToolCallDelta, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise MalformedResponseError("delta.tool_calls is not a list")
    deltas = []
    for number, call in enumerate(calls):
        if not isinstance(call, dict):
            raise MalformedResponseError("delta.tool_calls item is not an object")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise MalformedResponseError("delta.tool_calls item function is not an object")
        index = call.get("index", number)
        name = function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments)
        call_id = call.get("id")
        deltas.append(
            ToolCallDelta(
                index if isinstance(index, int) and not isinstance(index, bool) else number,
                call_id if isinstance(call_id, str) else None,
                name if isinstance(name, str) else None,
                arguments if isinstance(arguments, str) else "",
            )
        )
    return tuple(deltas)
