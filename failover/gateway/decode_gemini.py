"""Gemini ``generateContent`` / ``streamGenerateContent`` requests read into the common
request; the model comes from the URL (``models/{model}:generateContent``).

``systemInstruction`` becomes a system message; ``contents`` (roles user/model) become
user and assistant messages: ``text``; images and audio as ``inlineData`` (base64) or
``fileData`` (an https URL); ``functionCall`` parts become ``tool_calls`` (with their
``id``, or one made from their position, and Gemini's ``thoughtSignature`` kept for the
next Gemini call), ``functionResponse`` parts ``role: "tool"`` messages answering the call
of that id, else the earliest unanswered call of that name. ``tools.functionDeclarations``
(``parameters`` or ``parametersJsonSchema``), ``toolConfig.functionCallingConfig``
(AUTO/ANY/NONE/VALIDATED, ``allowedFunctionNames``) and ``generationConfig``
(``maxOutputTokens``, ``temperature``, ``topP``, ``topK``, ``seed``, penalties,
``stopSequences``, ``responseMimeType`` with ``responseSchema``/``responseJsonSchema``,
``thinkingConfig``) keep their meaning; ``:streamGenerateContent?alt=sse`` streams.
Thought parts and ``safetySettings`` (Gemini's own filters) are dropped.

Refused, naming the field: ``cachedContent`` and files uploaded to Gemini (state on
Google's servers), tools other than function declarations (Google Search, code
execution, URL context, ...), ``candidateCount`` > 1, log probabilities, non-text
output modalities, and streams without ``alt=sse``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from failover.gateway.gemini_schema import json_schema
from failover.gateway.types import (
    CannotTranslateError,
    Decoded,
    assistant_turn,
    invalid_request,
    query_of,
    readable,
)
from failover.providers.base import ChatRequest

__all__ = ["decode_gemini", "gemini_target"]

_TOP = {
    "contents": "contents",
    "systemInstruction": "systemInstruction",
    "system_instruction": "systemInstruction",
    "tools": "tools",
    "toolConfig": "toolConfig",
    "tool_config": "toolConfig",
    "generationConfig": "generationConfig",
    "generation_config": "generationConfig",
    "safetySettings": "safetySettings",
    "safety_settings": "safetySettings",
    "labels": "labels",
}
_GENERATION = {
    "maxOutputTokens": None,
    "temperature": None,
    "topP": "top_p",
    "topK": "top_k",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "stopSequences": "stop",
    "responseMimeType": None,
    "responseSchema": None,
    "responseJsonSchema": None,
    "_responseJsonSchema": None,
    "candidateCount": None,
    "thinkingConfig": None,
    "responseModalities": None,
    "mediaResolution": None,
    "enableEnhancedCivicAnswers": None,
}
_THINKING_BUDGETS = (("none", 0), ("minimal", 512), ("low", 1024), ("medium", 8192))
_GEMINI_FILES = "generativelanguage.googleapis.com"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def _camel_keys(value: Any) -> Any:
    """A mapping's keys in camelCase (Gemini takes both; proto JSON's snake_case too)."""
    if isinstance(value, Mapping):
        return {_camel(k) if "_" in k and not k.startswith("_") else k: v for k, v in value.items()}
    return value


def gemini_target(url: str) -> tuple[str, bool]:
    """The model named in a Gemini URL and whether the call is a stream.

    Raises:
        CannotTranslateError: A stream without ``alt=sse`` (a JSON array stream).
        InvalidRequestError: The URL names no model.
    """
    path = unquote(urlsplit(url).path)
    name, _, method = path.rsplit("/", 1)[-1].partition(":")
    if not name or "/models/" not in path:
        raise invalid_request(f"no model in the URL path {path!r}")
    stream = method == "streamGenerateContent"
    if stream and query_of(url).get("alt") != "sse":
        raise CannotTranslateError("alt", "only alt=sse streams are translated")
    return name, stream


def decode_gemini(body: dict[str, Any], url: str) -> Decoded:
    """Read a generateContent body; the model and streaming come from ``url``.

    Raises:
        CannotTranslateError: A field cannot be sent to another provider.
        InvalidRequestError: The body is not a generateContent request.
    """
    model, stream = gemini_target(url)
    read: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _TOP:
            if key in ("cachedContent", "cached_content"):
                raise CannotTranslateError(key, "the cached content is stored on Google's servers")
            if key == "model":
                continue
            raise CannotTranslateError(key, "a Gemini field the gateway does not translate")
        read[_TOP[key]] = value
    contents = read.get("contents")
    if not isinstance(contents, list):
        raise invalid_request("generateContent needs a list of 'contents'")
    messages = _system(read.get("systemInstruction"))
    messages.extend(_contents(contents))
    tools = _tools(read.get("tools"))
    params: dict[str, Any] = {}
    if tools:
        tools, choice = _tool_config(read.get("toolConfig"), tools)
        params["tools"] = tools
        if choice is not None:
            params["tool_choice"] = choice
    limit, temperature = _generation(read.get("generationConfig"), params)
    request = ChatRequest(
        messages, max_tokens=limit, temperature=temperature, params=params, stream=stream
    )
    readable(request)
    return Decoded("gemini", model, request)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    parts = system.get("parts") if isinstance(system, Mapping) else None
    if not isinstance(parts, list):
        raise invalid_request("systemInstruction must be a content with 'parts'")
    texts = []
    for number, part in enumerate(parts):
        if not isinstance(part, Mapping) or not isinstance(part.get("text"), str):
            raise CannotTranslateError(f"systemInstruction.parts[{number}]", "not text")
        texts.append({"type": "text", "text": part["text"]})
    return [{"role": "system", "content": texts}] if texts else []


class _Calls:
    """The function calls made so far, to answer by id or, lacking one, by name."""

    def __init__(self) -> None:
        self._open: list[tuple[str, str]] = []

    def made(self, call_id: str, name: str) -> None:
        self._open.append((call_id, name))

    def answer(self, call_id: Any, name: Any, where: str) -> str:
        for index, (open_id, open_name) in enumerate(self._open):
            if (isinstance(call_id, str) and call_id == open_id) or (
                not isinstance(call_id, str) and open_name == name
            ):
                del self._open[index]
                return open_id
        raise invalid_request(f"{where}: the functionResponse answers no earlier functionCall")


def _contents(contents: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    calls = _Calls()
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
            raise invalid_request(f"{where} must be a content with 'parts'")
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise invalid_request(f"{where}.role must be 'user' or 'model'")
        parts = [_camel_keys(p) for p in content["parts"]]
        if role == "model":
            messages.append(_model_turn(parts, where, calls, index))
            continue
        user: list[dict[str, Any]] = []
        for number, part in enumerate(parts):
            at = f"{where}.parts[{number}]"
            if not isinstance(part, Mapping):
                raise invalid_request(f"{at} is not an object")
            if "functionResponse" in part:
                response = _camel_keys(part["functionResponse"])
                call_id = calls.answer(response.get("id"), response.get("name"), at)
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "content": _result(response)}
                )
            elif part.get("thought") is True:
                continue
            else:
                user.append(_user_part(part, at))
        if user:
            messages.append({"role": "user", "content": user})
    return messages


def _model_turn(parts: list[Any], where: str, calls: _Calls, index: int) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for number, part in enumerate(parts):
        at = f"{where}.parts[{number}]"
        if not isinstance(part, Mapping):
            raise invalid_request(f"{at} is not an object")
        if part.get("thought") is True:
            continue
        if "functionCall" in part:
            call = _camel_keys(part["functionCall"])
            name = call.get("name")
            if not isinstance(name, str):
                raise invalid_request(f"{at}.functionCall needs a 'name'")
            call_id = call.get("id") if isinstance(call.get("id"), str) else None
            call_id = call_id or f"call_{index}_{number}"
            calls.made(call_id, name)
            item: dict[str, Any] = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(call.get("args") or {})},
            }
            if isinstance(part.get("thoughtSignature"), str):
                signature = part["thoughtSignature"]
                item["extra_content"] = {"google": {"thought_signature": signature}}
            tool_calls.append(item)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = next(iter(part), None)
            raise CannotTranslateError(at, f"a {kind} part is not translated to other providers")
    return assistant_turn("".join(texts), tool_calls)


def _result(response: Mapping[str, Any]) -> str:
    value = response.get("response")
    if isinstance(value, Mapping) and set(value) == {"output"}:
        value = value["output"]
    return value if isinstance(value, str) else json.dumps(value)


def _user_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    if isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if "inlineData" in part:
        data = _camel_keys(part["inlineData"])
        mime = str(data.get("mimeType") or "")
        if mime.startswith("image/"):
            url = f"data:{mime};base64,{data.get('data')}"
            return {"type": "image_url", "image_url": {"url": url}}
        if mime.startswith("audio/"):
            audio = {"data": data.get("data"), "format": mime.split("/", 1)[1]}
            return {"type": "input_audio", "input_audio": audio}
        raise CannotTranslateError(f"{where}.inlineData", f"{mime or 'data'} is not translated")
    if "fileData" in part:
        data = _camel_keys(part["fileData"])
        uri = str(data.get("fileUri") or "")
        mime = str(data.get("mimeType") or "")
        if _GEMINI_FILES in uri or not uri.startswith(("https://", "http://")):
            raise CannotTranslateError(
                f"{where}.fileData", "the file is stored on Google's servers"
            )
        if mime and not mime.startswith("image/"):
            raise CannotTranslateError(f"{where}.fileData", f"{mime} is not translated")
        return {"type": "image_url", "image_url": {"url": uri}}
    kind = next(iter(part), None)
    raise CannotTranslateError(where, f"a {kind} part is not translated to other providers")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list")
    read: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        tool = _camel_keys(tool)
        if not isinstance(tool, Mapping):
            raise invalid_request(f"tools[{index}] is not an object")
        for key, value in tool.items():
            if key != "functionDeclarations":
                raise CannotTranslateError(
                    f"tools[{index}].{key}", "the tool runs on Google's servers, not another's"
                )
            for declaration in value or []:
                read.append(_declaration(_camel_keys(declaration), f"tools[{index}]"))
    return read


def _declaration(declaration: Any, where: str) -> dict[str, Any]:
    if not isinstance(declaration, Mapping) or not isinstance(declaration.get("name"), str):
        raise invalid_request(f"{where}.functionDeclarations: each needs a 'name'")
    function: dict[str, Any] = {"name": declaration["name"]}
    if isinstance(declaration.get("description"), str):
        function["description"] = declaration["description"]
    if declaration.get("parametersJsonSchema") is not None:
        function["parameters"] = declaration["parametersJsonSchema"]
    elif declaration.get("parameters") is not None:
        function["parameters"] = json_schema(declaration["parameters"])
    else:
        function["parameters"] = {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _tool_config(config: Any, tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    calling = _camel_keys(_camel_keys(config).get("functionCallingConfig")) if config else None
    if not isinstance(calling, Mapping):
        return tools, None
    mode = str(calling.get("mode") or "AUTO").upper()
    names = calling.get("allowedFunctionNames") or []
    if names:
        tools = [t for t in tools if t["function"]["name"] in names]
    if mode == "NONE":
        return tools, "none"
    if mode == "ANY":
        if len(names) == 1:
            return tools, {"type": "function", "function": {"name": names[0]}}
        return tools, "required"
    return tools, "auto"


def _generation(config: Any, params: dict[str, Any]) -> tuple[int | None, float | None]:
    if config is None:
        return None, None
    config = _camel_keys(config)
    if not isinstance(config, Mapping):
        raise invalid_request("generationConfig must be an object")
    for key in sorted(config):
        if key not in _GENERATION:
            if key in ("responseLogprobs", "logprobs") and not config[key]:
                continue
            raise CannotTranslateError(
                f"generationConfig.{key}", "a Gemini setting the gateway does not translate"
            )
        if _GENERATION[key] is not None and config[key] is not None:
            params[str(_GENERATION[key])] = config[key]
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise CannotTranslateError("generationConfig.candidateCount", "one candidate is answered")
    modalities = config.get("responseModalities")
    if modalities and any(str(m).upper() != "TEXT" for m in modalities):
        raise CannotTranslateError("generationConfig.responseModalities", "only text crosses")
    _json_mode(config, params)
    effort = _thinking(config.get("thinkingConfig"))
    if effort is not None:
        params["reasoning_effort"] = effort
    limit = config.get("maxOutputTokens")
    temperature = config.get("temperature")
    return (
        limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        float(temperature) if isinstance(temperature, (int, float)) else None,
    )


def _json_mode(config: Mapping[str, Any], params: dict[str, Any]) -> None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema") or config.get("_responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = json_schema(config["responseSchema"])
    if mime in (None, "text/plain") and schema is None:
        return
    if mime not in (None, "application/json"):
        raise CannotTranslateError("generationConfig.responseMimeType", f"{mime} is not JSON")
    if schema is None:
        params["response_format"] = {"type": "json_object"}
    else:
        spec = {"name": "response", "schema": schema}
        params["response_format"] = {"type": "json_schema", "json_schema": spec}


def _thinking(config: Any) -> str | None:
    config = _camel_keys(config)
    if not isinstance(config, Mapping):
        return None
    level = config.get("thinkingLevel")
    if isinstance(level, str) and level.lower() in ("minimal", "low", "medium", "high"):
        return level.lower()
    budget = config.get("thinkingBudget")
    if not isinstance(budget, int) or budget < 0:
        return None  # dynamic thinking: the model's own choice
    for effort, limit in _THINKING_BUDGETS:
        if budget <= limit:
            return effort
    return "high"
