"""Anthropic Messages requests (``POST /v1/messages``) read into the common request.

``system`` (a string or text blocks) becomes a system message; user turns' ``text`` and
``image`` blocks (base64 or URL) become parts, their ``tool_result`` blocks ``role:
"tool"`` messages (an ``is_error`` result's text is prefixed ``Error:``); assistant turns'
``text`` and ``tool_use`` blocks become the content and ``tool_calls``. ``tools``
(``input_schema``), ``tool_choice`` (auto/any/tool/none, ``disable_parallel_tool_use``),
``max_tokens``, ``stop_sequences``, ``temperature``, ``top_p``, ``top_k``,
``output_config`` (``format`` -> ``response_format``, ``effort``), ``thinking``
(``budget_tokens`` -> the nearest ``reasoning_effort``), ``metadata.user_id`` (-> ``user``)
and ``stream`` keep their meaning. Prompt-cache markers (``cache_control``) stay where they
are: on the text and image parts, on a tool result's or an assistant turn's message, on
the tools, and the top-level one as the request's ``cache_control``; Claude's wires send
them on as their own breakpoints, the others drop them. Thinking blocks (signed for
Anthropic alone) are dropped.

Refused, naming the field: server tools (web search, code execution, bash, text editor,
computer use, ...) and their blocks, documents and search results, images inside tool
results, ``container``, ``mcp_servers``, ``context_management``, ``inference_geo`` and any
field not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.gateway.framing import dumps
from failover.gateway.types import (
    CannotTranslateError,
    Decoded,
    assistant_turn,
    common_request,
    invalid_request,
)

__all__ = ["decode_anthropic", "effort_of_budget"]

_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "metadata",
        "stream",
        "cache_control",
    }
)
_DROPPED = frozenset({"service_tier", "speed", "diagnostics"})
"""Anthropic's tier and speed hints: no meaning elsewhere."""
_BUDGETS = (("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384))


def effort_of_budget(budget: int) -> str:
    """The ``reasoning_effort`` nearest a thinking budget (the adapters' own budgets)."""
    for effort, limit in _BUDGETS:
        if budget <= limit:
            return effort
    return "xhigh"


def decode_anthropic(body: dict[str, Any]) -> Decoded:
    """Read a Messages body.

    Raises:
        CannotTranslateError: A field cannot be sent to another provider.
        InvalidRequestError: The body is not a Messages request.
    """
    model = body.get("model")
    turns = body.get("messages")
    if not isinstance(model, str) or not isinstance(turns, list):
        raise invalid_request("a message needs 'model' and a list of 'messages'")
    for key in sorted(body):
        if key not in _TRANSLATED and key not in _DROPPED and body[key] is not None:
            raise CannotTranslateError(key, "an Anthropic field the gateway does not translate")
    messages = _system(body.get("system"))
    for number, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages[{number}]"))
    request = common_request(
        messages,
        body.get("max_tokens"),
        body.get("temperature"),
        _params(body),
        stream=body.get("stream") is True,
    )
    return Decoded("anthropic", model, request)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise invalid_request("system must be a string or a list of text blocks")
    parts = []
    for number, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise CannotTranslateError(f"system[{number}]", "only text blocks are translated")
        parts.append({"type": "text", "text": str(block.get("text") or ""), **_marker(block)})
    return [{"role": "system", "content": parts}] if parts else []


def _marker(block: Mapping[str, Any]) -> dict[str, Any]:
    """``{"cache_control": ...}`` when ``block`` carries a prompt-cache marker, else ``{}``."""
    marker = block.get("cache_control")
    return {"cache_control": marker} if marker is not None else {}


def _turn(turn: Any, where: str) -> list[dict[str, Any]]:
    role = turn.get("role") if isinstance(turn, Mapping) else None
    if role not in ("user", "assistant"):
        raise invalid_request(f"{where}.role must be 'user' or 'assistant'")
    assert isinstance(turn, Mapping)
    content = turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content must be a string or a list of blocks")
    if role == "assistant":
        return [_assistant(content, where)]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for number, block in enumerate(content):
        at = f"{where}.content[{number}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "tool_result":
            assert isinstance(block, Mapping)
            results.append(_tool_result(block, at))
        elif kind == "text":
            assert isinstance(block, Mapping)
            parts.append({"type": "text", "text": str(block.get("text") or ""), **_marker(block)})
        elif kind == "image":
            assert isinstance(block, Mapping)
            parts.append(_image(block, at) | _marker(block))
        else:
            raise CannotTranslateError(at, f"a {kind} block is not translated to other providers")
    messages = results
    if parts:
        messages.append({"role": "user", "content": parts})
    return messages


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    marker: dict[str, Any] = {}  # a marked block marks the whole turn (its last block)
    for number, block in enumerate(content):
        at = f"{where}.content[{number}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if isinstance(block, Mapping) and kind in ("text", "tool_use"):
            marker = _marker(block) or marker
        if kind == "text":
            assert isinstance(block, Mapping)
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            assert isinstance(block, Mapping)
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise invalid_request(f"{at}: a tool_use block needs 'id' and 'name'")
            arguments = dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic alone: no other provider can read it
        else:
            raise CannotTranslateError(at, f"a {kind} block belongs to Anthropic's server tools")
    return assistant_turn("".join(texts), calls) | marker


def _image(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind == "base64":
        assert isinstance(source, Mapping)
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        assert isinstance(source, Mapping)
        url = str(source.get("url"))
    else:
        raise CannotTranslateError(f"{where}.source", f"a {kind} image source (a stored file)")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise invalid_request(f"{where}: a tool_result needs 'tool_use_id'")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for number, item in enumerate(content):
            if not isinstance(item, Mapping) or item.get("type") != "text":
                kind = item.get("type") if isinstance(item, Mapping) else None
                raise CannotTranslateError(
                    f"{where}.content[{number}]",
                    f"a {kind} block in a tool result (other providers take text only)",
                )
            texts.append(str(item.get("text") or ""))
        text = "".join(texts)
    else:
        raise invalid_request(f"{where}.content must be a string or a list of blocks")
    if block.get("is_error") is True:
        text = text if text.lower().startswith("error") else f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text, **_marker(block)}


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if tools:
        params["tools"] = tools
        if isinstance(choice, Mapping):
            params.update(_tool_choice(choice))
    if body.get("stop_sequences"):
        params["stop"] = list(body["stop_sequences"])
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            params[key] = body[key]
    effort = _effort(body.get("thinking"), body.get("output_config"))
    if effort is not None:
        params["reasoning_effort"] = effort
    config = body.get("output_config")
    spec = config.get("format") if isinstance(config, Mapping) else None
    if isinstance(spec, Mapping):
        if spec.get("type") != "json_schema" or not isinstance(spec.get("schema"), Mapping):
            raise CannotTranslateError("output_config.format", "only json_schema is translated")
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": dict(spec["schema"]), "strict": True},
        }
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        params["user"] = metadata["user_id"]
    if body.get("cache_control") is not None:
        params["cache_control"] = body["cache_control"]
    return params


def _effort(thinking: Any, config: Any) -> str | None:
    effort = config.get("effort") if isinstance(config, Mapping) else None
    if isinstance(effort, str):
        return "xhigh" if effort == "max" else effort
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "enabled":
        assert isinstance(thinking, Mapping)
        budget = thinking.get("budget_tokens")
        return effort_of_budget(budget if isinstance(budget, int) else 8192)
    return None  # disabled, or adaptive: the model's own choice


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_request("tools must be a list")
    read = []
    for number, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind not in (None, "custom") or not isinstance(tool, Mapping):
            raise CannotTranslateError(
                f"tools[{number}]", f"a {kind} tool runs on Anthropic's servers, not another's"
            )
        if not isinstance(tool.get("name"), str):
            raise invalid_request(f"tools[{number}] needs a 'name'")
        function: dict[str, Any] = {
            "name": tool["name"],
            "parameters": dict(tool.get("input_schema") or {"type": "object"}),
        }
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        read.append({"type": "function", "function": function, **_marker(tool)})
    return read


def _tool_choice(choice: Mapping[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    params: dict[str, Any] = {}
    if kind in ("auto", "none"):
        params["tool_choice"] = kind
    elif kind == "any":
        params["tool_choice"] = "required"
    elif kind == "tool":
        params["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise invalid_request(f"tool_choice type {kind!r} is not auto, any, tool or none")
    if choice.get("disable_parallel_tool_use") is True:
        params["parallel_tool_calls"] = False
    return params
