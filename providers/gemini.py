"""Google Gemini ``generateContent`` (key in ``x-goog-api-key``, never in the URL).

What the caller's OpenAI-shaped request becomes:

- system (and developer) messages -> ``systemInstruction``; roles user/assistant -> user/model,
  consecutive same-role messages merged into one turn;
- assistant ``tool_calls`` -> ``functionCall`` parts (with Gemini's ``thoughtSignature`` when
  the call came from Gemini); tool results -> ``functionResponse`` parts in a user turn,
  carrying the function's name looked up from the history and ``{"output": ...}``;
- images -> ``inlineData`` (data URLs) or ``fileData`` (https URLs); audio -> ``inlineData``;
- ``tools`` -> ``functionDeclarations`` with the JSON Schema reduced to the OpenAPI subset
  Gemini accepts; ``tool_choice`` -> ``toolConfig.functionCallingConfig``;
- ``stop``, ``top_p``, ``top_k``, ``seed``, ``max_tokens``, ``temperature``, ``n``, penalties,
  ``response_format`` (``responseMimeType`` + ``responseSchema``) and ``reasoning_effort``
  (``thinkingConfig``) -> ``generationConfig``.

``user``, ``metadata`` and ``parallel_tool_calls`` have no Gemini equivalent: dropped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import classify_http_error
from failover.errors import ContentFilteredError, MalformedResponseError
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
    error_status,
    first_unknown,
    guarded,
    input_usage,
    json_body,
    load_json,
    max_output_tokens,
    read_usage,
    read_vector,
)
from failover.providers.messages import (
    Audio,
    Image,
    Text,
    Turn,
    read_response_format,
    read_stop,
    read_tool_choice,
    read_tools,
)
from failover.providers.results import text_delta

__all__ = ["MAX_BATCH_EMBEDDINGS", "THINKING_BUDGETS", "GeminiAdapter", "gemini_schema"]

MAX_BATCH_EMBEDDINGS = 100
"""The most requests ``batchEmbedContents`` takes at once."""
_EMBED_NATIVE = frozenset({"title"})
_EMBED_DROPPED = frozenset({"user", "encoding_format"})

_BLOCKED = {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}
THINKING_BUDGETS = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
}
"""``reasoning_effort`` -> ``thinkingConfig.thinkingBudget`` (Gemini 2.5)."""
_SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Gemini's documented stand-in signature for calls that did not come from Gemini."""

_TRANSLATED = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "top_p",
        "top_k",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "max_tokens",
        "max_completion_tokens",
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
"""Hints with no meaning here: dropped (``cache_control``: Gemini caches implicitly)."""
_NATIVE = frozenset({"safetySettings", "cachedContent", "generationConfig"})

_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce a JSON Schema to the OpenAPI subset Gemini accepts.

    ``$ref`` is inlined from ``$defs``/``definitions`` (recursion stops at an open object),
    ``["x", "null"]`` types and ``null`` branches become ``nullable``, ``const`` an ``enum``,
    ``oneOf`` an ``anyOf``; keys Gemini rejects (``additionalProperties``, ``$schema``, ...)
    are left out.
    """
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    return _reduce(schema, defs, ())


def _reduce(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen or ref not in defs:
            return {"type": "object"}
        return _reduce(defs[ref], defs, (*seen, ref))
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        kept = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
        if len(kept) < len(branches):
            out["nullable"] = True
        reduced = [_reduce(b, defs, seen) for b in kept]
        if len(reduced) == 1:
            out.update(reduced[0])
        elif reduced:
            out["anyOf"] = reduced
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        out.update(_reduce(all_of[0], defs, seen))
    if "const" in node:
        out["enum"] = [node["const"]]
    for key, value in node.items():
        if key not in _SCHEMA_KEYS or key in ("type", "anyOf"):
            continue
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {name: _reduce(v, defs, seen) for name, v in value.items()}
        elif key == "items":
            out["items"] = _reduce(value, defs, seen)
        else:
            out[key] = value
    if "enum" in out:
        if all(isinstance(v, str) for v in out["enum"]):
            out.setdefault("type", "string")
        else:
            del out["enum"]
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def _usage(data: Mapping[str, Any]) -> TokenUsage | None:
    meta = data.get("usageMetadata")

    def build(count: Any) -> TokenUsage:
        cached = count(meta, "cachedContentTokenCount")
        thoughts = count(meta, "thoughtsTokenCount")
        prompt = count(meta, "promptTokenCount") + count(meta, "toolUsePromptTokenCount")
        return TokenUsage(
            input_tokens=max(0, prompt - cached),
            output_tokens=count(meta, "candidatesTokenCount") + thoughts,
            cache_read_tokens=cached,
            reasoning_tokens=thoughts,
        )

    return read_usage(meta, "gemini", build)


def _finish(raw: str | None, has_calls: bool) -> str | None:
    if raw is None:
        return None
    if raw == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def _read(data: Any) -> tuple[str, list[ToolCall], str | None]:
    """Return (text, tool calls, finishReason) of one response object; raise on blocks."""
    if not isinstance(data, dict):
        raise MalformedResponseError("reply is not an object")
    feedback = data.get("promptFeedback") or {}
    if not isinstance(feedback, dict):
        raise MalformedResponseError("promptFeedback is not an object")
    if feedback.get("blockReason"):
        raise ContentFilteredError(
            f"prompt blocked: {feedback['blockReason']}", code=str(feedback["blockReason"])
        )
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise MalformedResponseError(f"reply has no candidates: {json.dumps(data)[:200]}")
    candidate = candidates[0]
    finish = candidate.get("finishReason")
    if finish is not None and not isinstance(finish, str):
        raise MalformedResponseError("candidates[0].finishReason is not a string")
    if finish in _BLOCKED:
        raise ContentFilteredError(f"answer blocked: {finish}", code=str(finish))
    if finish in ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"):
        raise MalformedResponseError(f"the model produced a bad function call ({finish})")
    content = candidate.get("content") or {}
    parts = content.get("parts") or [] if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise MalformedResponseError("candidates[0].content.parts is not a list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for number, part in enumerate(parts):
        if not isinstance(part, dict):
            raise MalformedResponseError(f"candidates[0].content.parts[{number}] is not an object")
        call = part.get("functionCall")
        if call is not None:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise MalformedResponseError(f"parts[{number}].functionCall has no name")
            call_id = call.get("id")
            signature = part.get("thoughtSignature")
            calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) and call_id else _new_id(),
                    call["name"],
                    json.dumps(call.get("args") or {}),
                    signature if isinstance(signature, str) else None,
                )
            )
        elif "text" in part and not part.get("thought"):
            if not isinstance(part["text"], str):
                raise MalformedResponseError(f"parts[{number}].text is not a string")
            texts.append(part["text"])
    return "".join(texts), calls, finish


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _user_part(part: Text | Image | Audio) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    if isinstance(part, Audio):
        return {"inlineData": {"mimeType": f"audio/{part.format}", "data": part.data}}
    if part.data is not None:
        return {"inlineData": {"mimeType": part.guessed_mime_type(), "data": part.data}}
    return {"fileData": {"mimeType": part.guessed_mime_type(), "fileUri": part.url}}


def _response(turn: Turn) -> dict[str, Any]:
    text = turn.text
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return {"functionResponse": {"name": turn.name, "response": {"output": value}}}


def _contents(turns: tuple[Turn, ...], model: str) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    needs_signature = model.startswith("gemini-3")

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for turn in turns:
        if turn.role == "system":
            continue
        if turn.role == "tool":
            add("user", [_response(turn)])
        elif turn.role == "assistant":
            parts: list[dict[str, Any]] = [
                {"text": p.text} for p in turn.parts if isinstance(p, Text)
            ]
            for number, call in enumerate(turn.tool_calls):
                part: dict[str, Any] = {
                    "functionCall": {"name": call.name, "args": _args(call.arguments)}
                }
                signature = call.thought_signature or (
                    _SKIP_SIGNATURE if needs_signature and number == 0 else None
                )
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            add("model", parts)
        else:
            add("user", [_user_part(p) for p in turn.parts])
    return contents


def _args(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


class GeminiAdapter(BaseAdapter):
    """Translates OpenAI-shaped requests to ``generateContent`` (see the module's docstring)."""

    api = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """What ``generateContent`` cannot express, or the catalog says the model cannot take."""
        check_params(request.params)
        params = request.params
        for name in ("logit_bias", "logprobs", "top_logprobs"):
            if params.get(name) not in (None, False, 0, {}):
                return name
        effort = params.get("reasoning_effort")
        if effort is not None:
            if model.id.startswith(("gemini-1", "gemini-2.0")) and effort != "none":
                return "reasoning_effort"  # these models do not think
            if effort == "none" and (model.id.startswith("gemini-3") or "-pro" in model.id):
                return "reasoning_effort"  # these models cannot stop thinking
        unknown = first_unknown(params, _TRANSLATED | _DROPPED | _NATIVE)
        return unknown or catalog_unsupported(request, model)

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the generateContent (or streamGenerateContent) request."""
        params = request.params
        turns = request.turns()
        payload: dict[str, Any] = {"contents": _contents(turns, model)}
        system = [
            {"text": p.text}
            for t in turns
            if t.role == "system"
            for p in t.parts
            if isinstance(p, Text)
        ]
        if system:
            payload["systemInstruction"] = {"parts": system}
        specs = read_tools(params.get("tools"))
        if specs:
            declarations = []
            for spec in specs:
                declaration: dict[str, Any] = {"name": spec.name}
                if spec.description:
                    declaration["description"] = spec.description
                if spec.parameters and spec.parameters.get("properties"):
                    declaration["parameters"] = gemini_schema(spec.parameters)
                declarations.append(declaration)
            payload["tools"] = [{"functionDeclarations": declarations}]
            choice = read_tool_choice(params.get("tool_choice"))
            if choice is not None:
                mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
                config: dict[str, Any] = {"mode": mode[choice.mode]}
                if choice.name:
                    config["allowedFunctionNames"] = [choice.name]
                payload["toolConfig"] = {"functionCallingConfig": config}
        payload["generationConfig"] = self._generation(request, model)
        if not payload["generationConfig"]:
            del payload["generationConfig"]
        for key in ("safetySettings", "cachedContent"):
            if key in params:
                payload[key] = params[key]
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        headers = {"content-type": "application/json", "x-goog-api-key": api_key}
        url = f"{base_url}/v1beta/models/{model}:{method}"
        return HttpRequest("POST", url, headers, json_body(payload, acyclic=request.plain))

    @staticmethod
    def _generation(request: ChatRequest, model: str) -> dict[str, Any]:
        params = request.params
        generation: dict[str, Any] = {}
        limit = max_output_tokens(request)
        if limit is not None:
            generation["maxOutputTokens"] = limit
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        for ours, theirs in (
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("seed", "seed"),
            ("n", "candidateCount"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ):
            if params.get(ours) is not None:
                generation[theirs] = params[ours]
        if stop := read_stop(params.get("stop")):
            generation["stopSequences"] = stop
        json_mode = read_response_format(params.get("response_format"))
        if json_mode is not None:
            generation["responseMimeType"] = "application/json"
            if json_mode.schema is not None:
                generation["responseSchema"] = gemini_schema(json_mode.schema)
        effort = params.get("reasoning_effort")
        if effort is not None:
            if model.startswith("gemini-3"):
                level = "low" if effort in ("minimal", "low") else "high"
                generation["thinkingConfig"] = {"thinkingLevel": level}
            else:
                budget = THINKING_BUDGETS.get(str(effort), THINKING_BUDGETS["medium"])
                generation["thinkingConfig"] = {"thinkingBudget": budget}
        own = params.get("generationConfig")
        if isinstance(own, Mapping):
            generation.update(own)
        return generation

    @guarded
    def parse_response(self, body: bytes) -> ChatResult:
        """Read the first candidate; a prompt or answer block raises."""
        data = load_json(body)
        text, calls, finish = _read(data)
        if not text and not calls and finish is None and "content" not in data["candidates"][0]:
            raise MalformedResponseError("candidates[0] has no answer: no content, no finishReason")
        return chat_result(text, _finish(finish, bool(calls)), _usage(data), data, calls, finish)

    def stream_parser(self) -> _GeminiStream:
        """A parser for SSE events that are each a whole response; the last has finishReason."""
        return _GeminiStream()

    # -- embeddings -----------------------------------------------------------------------

    def embedding_unsupported(self, request: EmbeddingRequest, model: ModelEntry) -> str | None:
        """Too many inputs for one batch, ``dimensions`` on a model that cannot shorten, or
        a parameter Gemini has no field for (``title`` is its own)."""
        unknown = first_unknown(request.params, _EMBED_NATIVE | _EMBED_DROPPED)
        return unknown or embedding_unsupported(request, model, max_inputs=MAX_BATCH_EMBEDDINGS)

    @staticmethod
    def _embed_content(request: EmbeddingRequest, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
        if request.task_type is not None:
            content["taskType"] = request.task_type
        if request.dimensions is not None:
            content["outputDimensionality"] = request.dimensions
        if "title" in request.params:
            content["title"] = request.params["title"]
        return content

    def build_embedding_request(
        self, request: EmbeddingRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """``embedContent`` for one input, ``batchEmbedContents`` for several."""
        headers = {"content-type": "application/json", "x-goog-api-key": api_key}
        if len(request.inputs) == 1:
            payload = self._embed_content(request, request.inputs[0])
            method = "embedContent"
        else:
            payload = {
                "requests": [
                    {"model": f"models/{model}", **self._embed_content(request, text)}
                    for text in request.inputs
                ]
            }
            method = "batchEmbedContents"
        url = f"{base_url}/v1beta/models/{model}:{method}"
        return HttpRequest("POST", url, headers, json.dumps(payload).encode())

    @guarded
    def parse_embedding_response(self, body: bytes, inputs: int) -> EmbeddingResult:
        """Read ``embedding.values`` (one input) or ``embeddings[].values`` (a batch).

        Gemini's embedding replies carry no token counts, so usage is unknown unless a
        ``usageMetadata`` is present.
        """
        data = load_json(body)
        if not isinstance(data, dict):
            raise MalformedResponseError("reply is not an object")
        if isinstance(data.get("embeddings"), list):
            items = data["embeddings"]
        elif isinstance(data.get("embedding"), dict):
            items = [data["embedding"]]
        else:
            raise MalformedResponseError(f"reply has no embeddings: {str(body)[:200]}")
        vectors = [
            read_vector(item.get("values") if isinstance(item, dict) else None, f"embeddings[{n}]")
            for n, item in enumerate(items)
        ]
        usage = input_usage(data.get("usageMetadata"), "gemini embeddings", "promptTokenCount")
        return embedding_result(vectors, inputs, usage)


class _GeminiStream:
    """Reads a stream's response objects: one of a single text part, the usual one, at once
    (:meth:`feed`); anything else through every check (:meth:`_read_event`)."""

    def __init__(self) -> None:
        self.complete = False
        self._calls = 0

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """The chunk of one event's data.

        Raises:
            ProviderError: An error object; a block.
            MalformedResponseError: Data that is not a response object.
        """
        payload = load_json(data)
        # a text part and nothing else: what _read_event makes of it, without reading it twice.
        # ``payload``, ``candidates[0]``, ``content`` and ``parts[0]`` are objects, and
        # ``candidates`` and ``parts`` lists, once subscripted so (a string, a number or
        # null raises TypeError, an object subscripted by a number KeyError)
        try:
            candidate = payload["candidates"][0]
            parts = candidate["content"]["parts"]
            part = parts[0]
            text = part["text"]
        except (KeyError, IndexError, TypeError):
            return self._read_event(payload, data)
        if (
            type(text) is str
            and len(parts) == 1
            and len(part) == 1  # no call, no thought
            and candidate.get("finishReason") is None
            and "error" not in payload
            and not payload.get("promptFeedback")
        ):
            return text_delta(text)
        return self._read_event(payload, data)

    @guarded
    def _read_event(self, payload: Any, data: str) -> StreamChunk | None:
        """The chunk of one event's data, ``payload`` (parsed), every field checked (a shape
        it does not understand is a MalformedResponseError: :func:`guarded`)."""
        if isinstance(payload, dict) and "error" in payload:
            raise classify_http_error(error_status(payload), {}, data)
        text, calls, finish = _read(payload)
        deltas = call_deltas(calls, self._calls)
        self._calls += len(calls)
        if finish:
            self.complete = True
            usage = _usage(payload)
            return StreamChunk(text, _finish(finish, self._calls > 0), usage, deltas, finish)
        return StreamChunk(text, None, None, deltas)
