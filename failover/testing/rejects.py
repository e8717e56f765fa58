"""What the real APIs reject, checked by the simulator before it answers.

Each check returns ``None`` for a request the provider would take, or ``(status, body)``:
the provider's own error reply, with the message the real API gives, so a mis-translation
fails a test over the simulator the way it would fail in production.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_request"]

Reject = tuple[int, dict[str, Any]] | None

_ANTHROPIC_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "output_config",
        "context_management",
    }
)
_OPENAI_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""What OpenAI's own API (and Azure's) takes; compatible servers are laxer."""
_ANTHROPIC_BLOCKS = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
_GEMINI_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "system_instruction",
        "tools",
        "toolConfig",
        "tool_config",
        "safetySettings",
        "safety_settings",
        "generationConfig",
        "generation_config",
        "cachedContent",
        "cached_content",
    }
)
_GEMINI_PART_DATA = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
)
_GEMINI_PART_META = frozenset({"thought", "thoughtSignature", "mediaResolution"})
_GEMINI_GENERATION = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "thinkingConfig",
        "responseModalities",
        "mediaResolution",
    }
)
_GEMINI_SCHEMA = frozenset(
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


def check_request(wire: str, provider: str, body: dict[str, Any], model: str = "") -> Reject:
    """The error the real ``provider`` (speaking ``wire``) would answer ``body`` with."""
    if wire == "anthropic":
        return _anthropic(body)
    if wire == "gemini":
        return _gemini(body) or (_signatures(body) if model.startswith("gemini-3") else None)
    if wire == "ollama":
        return _ollama(body)
    return _openai(provider, body)


# -- OpenAI ---------------------------------------------------------------------------------


def _openai_error(message: str, param: str | None = None) -> Reject:
    return 400, {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def _openai(provider: str, body: dict[str, Any]) -> Reject:
    if provider == "mistral" and "stream_options" in body:
        return 422, {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "stream_options"],
                        "msg": "Extra inputs are not permitted",
                    }
                ]
            },
            "type": "invalid_request_message_error",
            "param": None,
            "code": None,
        }
    if provider in ("openai", "azure"):
        for key in body:
            if key not in _OPENAI_FIELDS:
                return _openai_error(f"Unrecognized request argument supplied: {key}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        return _openai_error("'messages' is a required property", "messages")
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return _openai_error(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'tool', and 'developer'.",
                f"messages[{index}].role",
            )
        assert isinstance(message, dict)
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return _openai_error(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            return _openai_error(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                "messages",
            )
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                    return _openai_error(
                        "Invalid type for 'messages[{index}].tool_calls[0].function.arguments':"
                        " expected a string.",
                        f"messages[{index}].tool_calls",
                    )
                pending.append(call.get("id"))
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not function:
            return _openai_error(f"Missing required parameter: 'tools[{index}].function'.")
    return None


# -- Anthropic ------------------------------------------------------------------------------


def _anthropic_error(message: str) -> Reject:
    return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def _anthropic(body: dict[str, Any]) -> Reject:
    for key in body:
        if key not in _ANTHROPIC_FIELDS:
            return _anthropic_error(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("max_tokens"), int):
        return _anthropic_error("max_tokens: Field required")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("budget_tokens", 0) >= body["max_tokens"]:
        return _anthropic_error("`max_tokens` must be greater than `thinking.budget_tokens`.")
    system = body.get("system")
    if (
        system is not None
        and not isinstance(system, str)
        and (
            not isinstance(system, list)
            or any(not isinstance(b, dict) or b.get("type") != "text" for b in system)
        )
    ):
        return _anthropic_error("system: Input should be a valid string")
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or "input_schema" not in tool or "name" not in tool:
            return _anthropic_error(f"tools.{index}.custom.input_schema: Field required")
        for key in tool:
            if key not in ("name", "description", "input_schema", "cache_control", "type"):
                return _anthropic_error(
                    f"tools.{index}.custom.{key}: Extra inputs are not permitted"
                )
    choice = body.get("tool_choice")
    if choice is not None and (
        not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
    ):
        return _anthropic_error("tool_choice: Input should be a valid dictionary or object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        return _anthropic_error("messages: Field required")
    previous_uses: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return _anthropic_error(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        assert isinstance(message, dict)
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            blocks = content
        else:
            return _anthropic_error(f"messages.{index}.content: Input should be a valid list")
        uses: set[str] = set()
        results: set[str] = set()
        for number, block in enumerate(blocks):
            problem = _anthropic_block(role, block)
            if problem:
                return _anthropic_error(f"messages.{index}.content.{number}: {problem}")
            if block.get("type") == "tool_use":
                uses.add(block["id"])
            elif block.get("type") == "tool_result":
                if block.get("tool_use_id") not in previous_uses:
                    return _anthropic_error(
                        f"messages.{index}.content.{number}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous message."
                    )
                results.add(block["tool_use_id"])
        if previous_uses - results:
            return _anthropic_error(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(previous_uses - results))}. Each "
                "`tool_use` block must have a corresponding `tool_result` block in the next "
                "message."
            )
        previous_uses = uses
    return None


def _anthropic_block(role: str, block: Any) -> str | None:
    if not isinstance(block, dict):
        return "Input should be a valid dictionary or object to extract fields from"
    kind = block.get("type")
    if kind not in _ANTHROPIC_BLOCKS:
        return (
            f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking'"
        )
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
        return "text content blocks must be non-empty"
    if kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
            return "image.source: Input should be a valid dictionary"
        if source["type"] == "base64" and not source.get("media_type"):
            return "image.source.base64.media_type: Field required"
        if role != "user":
            return "image blocks are only allowed in user messages"
    if kind == "tool_use":
        if not isinstance(block.get("input"), dict) or not isinstance(block.get("id"), str):
            return "tool_use.input: Input should be a valid dictionary"
        if role != "assistant":
            return "tool_use blocks are only allowed in assistant messages"
    if kind == "tool_result" and role != "user":
        return "tool_result blocks are only allowed in user messages"
    return None


# -- Gemini ---------------------------------------------------------------------------------


def _gemini_error(message: str) -> Reject:
    return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def _unknown(name: str, where: str) -> Reject:
    return _gemini_error(
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    )


def _gemini(body: dict[str, Any]) -> Reject:
    for key in body:
        if key not in _GEMINI_FIELDS:
            return _gemini_error(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _gemini_error("* GenerateContentRequest.contents: contents is not specified\n")
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role") not in ("user", "model", None):
            return _gemini_error("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return _gemini_error(
                f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not "
                "be empty.\n"
            )
        for number, part in enumerate(parts):
            where = f"contents[{index}].parts[{number}]"
            if not isinstance(part, dict):
                return _gemini_error(f"Invalid value at '{where}': Starting an object failed")
            for key in part:
                if key not in _GEMINI_PART_DATA | _GEMINI_PART_META:
                    return _unknown(key, where)
            if len(_GEMINI_PART_DATA & set(part)) != 1:
                return _gemini_error(
                    f"* GenerateContentRequest.{where}.data: required oneof field 'data' "
                    "must have one initialized field\n"
                )
            if "text" in part and not isinstance(part["text"], str):
                return _gemini_error(f"Invalid value at '{where}.text' (TYPE_STRING)")
            response = part.get("functionResponse")
            if response is not None and not (isinstance(response, dict) and response.get("name")):
                return _gemini_error(
                    f"* GenerateContentRequest.{where}.function_response.name: Name cannot be "
                    "empty.\n"
                )
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict):
            return _gemini_error(f"Invalid value at 'tools[{index}]'")
        for key in tool:
            if key not in ("functionDeclarations", "function_declarations", "googleSearch"):
                return _unknown(key, f"tools[{index}]")
        for number, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{index}].function_declarations[{number}]"
            if not isinstance(declaration, dict) or not declaration.get("name"):
                return _gemini_error(
                    f"* GenerateContentRequest.{where}.name: Name cannot be empty."
                )
            if problem := _schema(declaration.get("parameters"), f"{where}.parameters"):
                return problem
    config = body.get("generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            return _gemini_error("Invalid value at 'generation_config'")
        for key in config:
            if key not in _GEMINI_GENERATION:
                return _unknown(key, "generation_config")
        if problem := _schema(config.get("responseSchema"), "generation_config.response_schema"):
            return problem
    return None


def _signatures(body: dict[str, Any]) -> Reject:
    """Gemini 3 wants the first function call of each model turn to carry its signature."""
    for index, content in enumerate(body.get("contents") or []):
        if content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts") or [] if "functionCall" in p]
        if calls and not calls[0].get("thoughtSignature"):
            return _gemini_error(
                f"Function call is missing a thought_signature in functionCall parts. This is "
                f"required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call "
                f"`{calls[0]['functionCall'].get('name')}` , position {index + 1}."
            )
    return None


def _schema(node: Any, where: str) -> Reject:
    if node is None:
        return None
    if not isinstance(node, dict):
        return _gemini_error(f"Invalid value at '{where}'")
    for key, value in node.items():
        if key not in _GEMINI_SCHEMA:
            return _unknown(key, where)
        if key == "properties" and isinstance(value, dict):
            for name, child in value.items():
                if problem := _schema(child, f"{where}.properties[{name}].value"):
                    return problem
        elif key == "items":
            if problem := _schema(value, f"{where}.items"):
                return problem
        elif key == "anyOf" and isinstance(value, list):
            for number, child in enumerate(value):
                if problem := _schema(child, f"{where}.any_of[{number}]"):
                    return problem
    return None


# -- Ollama ---------------------------------------------------------------------------------


def _ollama(body: dict[str, Any]) -> Reject:
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            return 400, {"error": "invalid message role"}
        if not isinstance(message.get("content", ""), str):
            return 400, {
                "error": "json: cannot unmarshal array into Go struct field "
                "Message.messages.content of type string"
            }
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), dict):
                return 400, {
                    "error": "json: cannot unmarshal string into Go struct field "
                    "ToolCallFunction.messages.tool_calls.function.arguments of type "
                    "api.ToolCallFunctionArguments"
                }
    return None
