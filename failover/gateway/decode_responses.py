"""OpenAI Responses requests (``POST /responses``) read into the common request.

``instructions`` becomes a system message; ``input`` (a string, or items: messages with
``input_text``/``input_image``/``input_audio`` parts, assistant messages with
``output_text``, ``function_call`` and ``function_call_output``) becomes the messages,
consecutive function calls joining one assistant message; flat function ``tools``,
``tool_choice`` (including ``allowed_tools``), ``text.format``, ``reasoning.effort``,
``max_output_tokens``, ``temperature``, ``top_p``, ``parallel_tool_calls``, ``metadata``
and ``user`` keep their meaning. ``reasoning`` items (OpenAI's own encrypted reasoning)
are dropped, as are OpenAI's storage, caching and truncation hints.

Refused, naming the field: state kept on OpenAI's servers (``previous_response_id``,
``conversation``, ``prompt``, ``item_reference`` items, uploaded ``file_id`` s,
``background``), server-side tools (web search, file search, code interpreter, computer
use, MCP, image generation, shell, ...) and their items, and any field not listed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from failover.gateway.types import (
    CannotTranslateError,
    Decoded,
    common_request,
    invalid_request,
)

__all__ = ["decode_responses"]

_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "metadata",
        "user",
        "safety_identifier",
        "stream",
        "top_logprobs",
    }
)
_DROPPED = frozenset(
    {
        "store",
        "include",
        "truncation",
        "service_tier",
        "stream_options",
        "prompt_cache_key",
        "prompt_cache_retention",
        "max_tool_calls",
    }
)
"""Hints with no meaning elsewhere: OpenAI's storage and caching, server-side truncation,
and limits on built-in tools (which cannot cross anyway)."""
_STATE = {
    "previous_response_id": "it continues a response stored on OpenAI's servers",
    "conversation": "the conversation is stored on OpenAI's servers",
    "prompt": "a prompt template stored on OpenAI's servers",
    "background": "background responses are kept on OpenAI's servers",
    "context_management": "compaction runs on OpenAI's servers",
}
_ECHO = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
)
"""Fields the Response object repeats from the request."""


def decode_responses(body: dict[str, Any]) -> Decoded:
    """Read a Responses body.

    Raises:
        CannotTranslateError: A field cannot be sent to another provider.
        InvalidRequestError: The body is not a Responses request.
    """
    model = body.get("model")
    if not isinstance(model, str):
        raise invalid_request("a response needs 'model'")
    for key in sorted(body):
        if body[key] is None or key in _TRANSLATED or key in _DROPPED:
            continue
        if key in _STATE:
            if body[key] is False:
                continue
            raise CannotTranslateError(key, _STATE[key])
        raise CannotTranslateError(key, "a Responses field the gateway does not translate")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise CannotTranslateError("instructions", "only text instructions are translated")
    messages.extend(_messages(body.get("input")))
    request = common_request(
        messages,
        body.get("max_output_tokens"),
        body.get("temperature"),
        _params(body),
        stream=body.get("stream") is True,
    )
    echo = {key: body[key] for key in _ECHO if body.get(key) is not None}
    return Decoded("responses", model, request, echo)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = {
            t.get("name")
            for t in choice.get("tools") or []
            if isinstance(t, Mapping) and t.get("type") == "function"
        }
        if len(allowed) != len(choice.get("tools") or []):
            raise CannotTranslateError("tool_choice", "only function tools can be allowed")
        tools = [t for t in tools if t["function"]["name"] in allowed]
        choice = choice.get("mode", "auto")
    if tools:
        params["tools"] = tools
        if choice is not None:
            params["tool_choice"] = _tool_choice(choice)
        if isinstance(body.get("parallel_tool_calls"), bool):
            params["parallel_tool_calls"] = body["parallel_tool_calls"]
    elif choice not in (None, "auto", "none"):
        raise CannotTranslateError("tool_choice", "it names a tool the request does not declare")
    text = body.get("text")
    if isinstance(text, Mapping):
        response_format = _format(text.get("format"))
        if response_format is not None:
            params["response_format"] = response_format
        if text.get("verbosity") is not None:
            params["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        params["reasoning_effort"] = reasoning["effort"]
    if body.get("top_p") is not None:
        params["top_p"] = body["top_p"]
    if body.get("top_logprobs"):
        raise CannotTranslateError("top_logprobs", "token log probabilities are OpenAI's own")
    if isinstance(body.get("metadata"), Mapping) and body["metadata"]:
        params["metadata"] = dict(body["metadata"])
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str):
        params["user"] = user
    return params


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list")
    read: list[dict[str, Any]] = []
    for number, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind != "function":
            raise CannotTranslateError(
                f"tools[{number}]", f"a {kind} tool runs on OpenAI's servers, not another's"
            )
        assert isinstance(tool, Mapping)
        if not isinstance(tool.get("name"), str):
            raise invalid_request(f"tools[{number}] needs a 'name'")
        function: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        read.append({"type": "function", "function": function})
    return read


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    kind = choice.get("type") if isinstance(choice, Mapping) else choice
    raise CannotTranslateError("tool_choice", f"{kind!r} names a tool of OpenAI's servers")


def _format(spec: Any) -> dict[str, Any] | None:
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if spec is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        assert isinstance(spec, Mapping)
        schema: dict[str, Any] = {
            "name": spec.get("name") or "response",
            "schema": spec.get("schema"),
        }
        for key in ("strict", "description"):
            if spec.get(key) is not None:
                schema[key] = spec[key]
        return {"type": "json_schema", "json_schema": schema}
    raise CannotTranslateError("text.format", f"format type {kind!r} is not translated")


class _History:
    """Builds Chat messages from Responses items, joining function calls into one
    assistant message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._assistant: dict[str, Any] | None = None

    def assistant(self) -> dict[str, Any]:
        if self._assistant is None:
            self._assistant = {"role": "assistant", "content": None}
            self.messages.append(self._assistant)
        return self._assistant

    def close(self) -> None:
        self._assistant = None

    def say(self, text: str) -> None:
        if self._assistant is not None and self._assistant.get("tool_calls"):
            self.close()
        message = self.assistant()
        message["content"] = (message["content"] or "") + text

    def call(self, call_id: str, name: str, arguments: str) -> None:
        function = {"name": name, "arguments": arguments}
        calls = self.assistant().setdefault("tool_calls", [])
        calls.append({"id": call_id, "type": "function", "function": function})

    def add(self, message: dict[str, Any]) -> None:
        self.close()
        self.messages.append(message)


def _messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise invalid_request("input must be a string or a list of items")
    history = _History()
    for number, item in enumerate(items):
        where = f"input[{number}]"
        if not isinstance(item, Mapping):
            raise invalid_request(f"{where} is not an object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            _message(history, item, where)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise invalid_request(f"{where}: a function_call needs 'call_id' and 'name'")
            arguments = item.get("arguments")
            history.call(call_id, name, arguments if isinstance(arguments, str) else "{}")
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise invalid_request(f"{where}: a function_call_output needs 'call_id'")
            output = _output(item.get("output"), f"{where}.output")
            history.add({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # OpenAI's own (encrypted) reasoning: no other provider can read it
        elif kind == "item_reference":
            raise CannotTranslateError(where, "it refers to an item stored on OpenAI's servers")
        else:
            raise CannotTranslateError(where, f"a {kind} item belongs to OpenAI's server tools")
    return history.messages


def _message(history: _History, item: Mapping[str, Any], where: str) -> None:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        if isinstance(content, str):
            history.say(content)
            return
        texts = []
        for number, part in enumerate(content if isinstance(content, list) else []):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("output_text", "input_text", "text"):
                texts.append(str(part.get("text") or ""))
            elif kind == "refusal":
                texts.append(str(part.get("refusal") or ""))
            else:
                raise CannotTranslateError(f"{where}.content[{number}]", f"a {kind} part")
        history.say("".join(texts))
        return
    if role not in ("user", "system", "developer"):
        raise invalid_request(f"{where}: role must be user, system, developer or assistant")
    system = role != "user"
    if isinstance(content, str):
        history.add({"role": "system" if system else "user", "content": content})
        return
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of parts")
    parts = [
        _part(part, f"{where}.content[{n}]", media=not system) for n, part in enumerate(content)
    ]
    history.add({"role": "system" if system else "user", "content": parts})


def _part(part: Any, where: str, *, media: bool) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in ("input_text", "output_text", "text"):
        assert isinstance(part, Mapping)
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "input_image" and media:
        assert isinstance(part, Mapping)
        if part.get("file_id"):
            raise CannotTranslateError(f"{where}.file_id", "the file is stored on OpenAI's servers")
        image: dict[str, Any] = {"url": part.get("image_url")}
        if part.get("detail") not in (None, "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_audio" and media:
        assert isinstance(part, Mapping)
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    if kind == "input_file":
        raise CannotTranslateError(where, "files are not translated to other providers")
    raise CannotTranslateError(where, f"a {kind} part is not translated here")


def _output(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for number, part in enumerate(output):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind not in ("input_text", "output_text", "text"):
                raise CannotTranslateError(
                    f"{where}[{number}]", "a tool result reaches other providers as text only"
                )
            assert isinstance(part, Mapping)
            texts.append(str(part.get("text") or ""))
        return "".join(texts)
    return json.dumps(output)
