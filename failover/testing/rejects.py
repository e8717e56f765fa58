"""What the real APIs reject, checked by the simulator before it answers.

Each check returns ``None`` for a request the provider would take, or ``(status, body)``:
the provider's own error reply, with the message the real API gives, so a mis-translation
fails a test over the simulator the way it would fail in production.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_request", "responses_pairing", "responses_state_error"]

Reject = tuple[int, dict[str, Any]] | None

_ANTHROPIC_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
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
    if wire == "responses":
        return _responses(provider, body)
    return _openai(provider, body)


# -- OpenAI ---------------------------------------------------------------------------------


def _openai_error(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> Reject:
    return status, {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
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


# -- OpenAI Responses -----------------------------------------------------------------------

_RESPONSES_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "max_tool_calls",
        "temperature",
        "top_p",
        "top_logprobs",
        "stream",
        "stream_options",
        "previous_response_id",
        "store",
        "metadata",
        "parallel_tool_calls",
        "include",
        "truncation",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "service_tier",
        "background",
        "conversation",
        "prompt",
        "context_management",
        "moderation",
    }
)
"""What OpenAI's Responses API takes (``POST /v1/responses``)."""
_RESPONSES_MOVED = {
    "messages": "input",
    "response_format": "text.format",
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
}
"""Chat Completions fields the Responses API names in its 400: where they moved."""
_RESPONSES_ITEMS = (
    "additional_tools",
    "apply_patch_call",
    "apply_patch_call_output",
    "code_interpreter_call",
    "compaction",
    "computer_call",
    "computer_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "file_search_call",
    "function_call",
    "function_call_output",
    "image_generation_call",
    "item_reference",
    "local_shell_call",
    "local_shell_call_output",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "mcp_list_tools",
    "message",
    "reasoning",
    "shell_call",
    "shell_call_output",
    "tool_search_call",
    "tool_search_output",
    "web_search_call",
)
_RESPONSES_PARTS = (
    "input_text",
    "input_image",
    "input_audio",
    "output_text",
    "refusal",
    "input_file",
    "computer_screenshot",
    "summary_text",
)
_RESPONSES_INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
_RESPONSES_OUTPUT_PARTS = ("output_text", "refusal")
_RESPONSES_ROLES = ("assistant", "system", "developer", "user")
_RESPONSES_MESSAGE_MEMBERS = frozenset({"type", "role", "content", "id", "status"})
_RESPONSES_ENUMS: dict[str, tuple[str, ...]] = {
    "truncation": ("auto", "disabled"),
    "service_tier": ("auto", "default", "flex", "scale", "priority"),
    "prompt_cache_retention": ("in_memory", "24h"),
}
_RESPONSES_BOOLEANS = ("stream", "store", "parallel_tool_calls", "background")
_RESPONSES_STRINGS = (
    "instructions",
    "previous_response_id",
    "user",
    "safety_identifier",
    "prompt_cache_key",
)
_RESPONSES_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_ABSENT = object()


def _kind(value: Any) -> str:
    """How OpenAI's validation names a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _missing(param: str) -> Reject:
    return _openai_error(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _invalid_type(param: str, expected: str, value: Any) -> Reject:
    return _openai_error(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
        "invalid_type",
    )


def _invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> Reject:
    shown = value if isinstance(value, str) else ""
    return _openai_error(
        f"Invalid value: '{shown}'. Supported values are: {_listed(supported)}.",
        param,
        "invalid_value",
    )


def _unknown_parameter(param: str) -> Reject:
    return _openai_error(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def _responses(provider: str, body: dict[str, Any]) -> Reject:
    """What the Responses API answers a malformed request with (state is checked later:
    see :func:`responses_state_error` and :func:`responses_pairing`)."""
    model = body.get("model", _ABSENT)
    if model is _ABSENT:
        return _missing("model")
    if not isinstance(model, str):
        return _invalid_type("model", "a string", model)
    if "input" not in body:
        return _missing("input")
    if provider in ("openai", "azure"):
        for key in body:
            if key in _RESPONSES_MOVED:
                return _openai_error(
                    f"Unsupported parameter: '{key}'. In the Responses API, this parameter has "
                    f"moved to '{_RESPONSES_MOVED[key]}'. Try again with the new parameter. See "
                    "the API documentation for more information: "
                    "https://platform.openai.com/docs/api-reference/responses/create.",
                    None if key == "messages" else key,
                    "unsupported_parameter",
                )
            if key not in _RESPONSES_FIELDS:
                return _unknown_parameter(key)
    given = body["input"]
    if not isinstance(given, (str, list)):
        return _invalid_type("input", "one of a string or array of input items", given)
    if isinstance(given, list):
        for index, item in enumerate(given):
            if problem := _responses_item(index, item):
                return problem
    for check in (_responses_tools, _responses_tool_choice, _responses_text, _responses_fields):
        if problem := check(body):
            return problem
    stateful = ("previous_response_id", "prompt", "conversation")
    if not given and not any(body.get(name) for name in stateful):
        return _openai_error(
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must "
            "be provided.",
            None,
            "missing_required_parameter",
        )
    return None


def _responses_item(index: int, item: Any) -> Reject:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        return _invalid_type(where, "an input item", item)
    kind = item.get("type", "message")
    if kind not in _RESPONSES_ITEMS:
        return _invalid_value(where, kind, _RESPONSES_ITEMS)
    if kind == "function_call":
        for member in ("call_id", "name", "arguments"):
            if member not in item:
                return _missing(f"{where}.{member}")
            if not isinstance(item[member], str):
                return _invalid_type(f"{where}.{member}", "a string", item[member])
        return None
    if kind == "function_call_output":
        for member in ("call_id", "output"):
            if member not in item:
                return _missing(f"{where}.{member}")
        if not isinstance(item["call_id"], str):
            return _invalid_type(f"{where}.call_id", "a string", item["call_id"])
        if not isinstance(item["output"], (str, list)):
            return _invalid_type(
                f"{where}.output", "one of a string or array of input content", item["output"]
            )
        return None
    if kind != "message":
        return None
    role = item.get("role")
    if role not in _RESPONSES_ROLES:
        return _invalid_value(where, role, _RESPONSES_ROLES)
    for member in item:
        if member not in _RESPONSES_MESSAGE_MEMBERS and not (
            role == "assistant" and member == "phase"
        ):
            return _unknown_parameter(f"{where}.{member}")
    if "content" not in item:
        return _missing(f"{where}.content")
    content = item["content"]
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _invalid_type(f"{where}.content", "one of a string or array of content", content)
    allowed = _RESPONSES_OUTPUT_PARTS if role == "assistant" else _RESPONSES_INPUT_PARTS
    for number, part in enumerate(content):
        spot = f"{where}.content[{number}]"
        if not isinstance(part, dict):
            return _invalid_type(spot, "an object", part)
        part_kind = part.get("type")
        if part_kind not in _RESPONSES_PARTS:
            return _invalid_value(f"{spot}.type", part_kind, _RESPONSES_PARTS)
        if part_kind not in allowed:
            return _invalid_value(spot, part_kind, allowed)
        if part_kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            if "text" not in part:
                return _missing(f"{spot}.text")
            return _invalid_type(f"{spot}.text", "a string", part["text"])
        if part_kind == "input_image":
            url = part.get("image_url")
            if url is None and not part.get("file_id"):
                return _missing(f"{spot}.image_url")
            if url is not None and not isinstance(url, str):
                return _invalid_type(f"{spot}.image_url", "a string", url)
    return None


def _responses_tools(body: dict[str, Any]) -> Reject:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _invalid_type("tools", "an array of tools", tools)
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            return _invalid_type(where, "an object", tool)
        if "type" not in tool:
            return _missing(f"{where}.type")
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            return _missing(f"{where}.name")
    return None


def _responses_tool_choice(body: dict[str, Any]) -> Reject:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            return _invalid_value("tool_choice", choice, ("none", "auto", "required"))
        return None
    if not isinstance(choice, dict):
        return _invalid_type(
            "tool_choice", "one of an object or 'none', 'auto', or 'required'", choice
        )
    if choice.get("type") == "function" and not isinstance(choice.get("name"), str):
        return _missing("tool_choice.name")
    return None


def _responses_text(body: dict[str, Any]) -> Reject:
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict):
        return _invalid_type("text", "an object", text)
    for member in text:
        if member not in ("format", "verbosity"):
            return _unknown_parameter(f"text.{member}")
    form = text.get("format")
    if form is not None:
        if not isinstance(form, dict):
            return _invalid_type("text.format", "an object", form)
        formats = ("json_object", "text", "json_schema")
        if form.get("type") not in formats:
            return _invalid_value("text.format.type", form.get("type"), formats)
        if form["type"] == "json_schema":
            for member in ("name", "schema"):
                if member not in form:
                    return _missing(f"text.format.{member}")
    verbosity = text.get("verbosity")
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        return _invalid_value("text.verbosity", verbosity, ("low", "medium", "high"))
    return None


def _responses_fields(body: dict[str, Any]) -> Reject:
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            return _invalid_type("reasoning", "an object", reasoning)
        for member in reasoning:
            if member not in ("effort", "summary"):
                return _unknown_parameter(f"reasoning.{member}")
        effort = reasoning.get("effort")
        if effort is not None and effort not in _RESPONSES_EFFORTS:
            return _invalid_value("reasoning.effort", effort, _RESPONSES_EFFORTS)
        summary = reasoning.get("summary")
        if summary is not None and summary not in ("concise", "detailed", "auto"):
            return _invalid_value("reasoning.summary", summary, ("concise", "detailed", "auto"))
    for name in ("max_output_tokens", "max_tool_calls", "top_logprobs"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return _invalid_type(name, "an integer", value)
    for name, floor in (("max_output_tokens", 16), ("max_tool_calls", 1)):
        value = body.get(name)
        if isinstance(value, int) and value < floor:
            return _openai_error(
                f"Invalid '{name}': integer below minimum value. Expected a value >= {floor}, "
                f"but got {value} instead.",
                name,
                "integer_below_min_value",
            )
    for name, top in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return _invalid_type(name, "a decimal", value)
        if value > top or value < 0:
            above = value > top
            return _openai_error(
                f"Invalid '{name}': decimal {'above maximum' if above else 'below minimum'} "
                f"value. Expected a value {'<=' if above else '>='} {top if above else 0}, but "
                f"got {value} instead.",
                name,
                "decimal_above_max_value" if above else "decimal_below_min_value",
            )
    for name in _RESPONSES_BOOLEANS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            return _invalid_type(name, "a boolean", body[name])
    for name in _RESPONSES_STRINGS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return _invalid_type(name, "a string", body[name])
    for name, values in _RESPONSES_ENUMS.items():
        if body.get(name) is not None and body[name] not in values:
            return _invalid_value(name, body[name], values)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return _invalid_type("metadata", "a metadata object", metadata)
        if len(metadata) > 16:
            return _openai_error(
                "Invalid 'metadata': too many properties. Expected an object with at most 16 "
                f"properties, but got an object with {len(metadata)} properties instead.",
                "metadata",
                "object_above_max_properties",
            )
    return None


def responses_state_error(body: dict[str, Any], found: bool) -> Reject:
    """The 400/404 for state the simulator does not hold: a ``previous_response_id`` it did
    not create for this key (``found`` false), a ``conversation``, a stored ``prompt``;
    ``background`` responses are not simulated."""
    previous = body.get("previous_response_id")
    conversation = body.get("conversation")
    if conversation is not None and previous is not None:
        return _openai_error(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            None,
            "mutually_exclusive_parameters",
        )
    if previous is not None and not found:
        return _openai_error(
            f"Previous response with id '{previous}' not found.",
            "previous_response_id",
            "previous_response_not_found",
        )
    if conversation is not None:
        name = conversation.get("id") if isinstance(conversation, dict) else conversation
        return _openai_error(f"Conversation with id '{name}' not found.", status=404)
    prompt = body.get("prompt")
    if prompt is not None:
        name = prompt.get("id") if isinstance(prompt, dict) else prompt
        return _openai_error(f"Prompt with id '{name}' not found.", status=404)
    if body.get("background") is True:
        return _openai_error(
            "Background responses are not simulated: send the request without 'background'.",
            "background",
            "unsupported_parameter",
        )
    return None


def responses_pairing(items: list[dict[str, Any]]) -> Reject:
    """Each ``function_call_output`` must answer an earlier ``function_call`` of the
    conversation (the previous responses' included), and each call must be answered."""
    answered: dict[str, bool] = {}
    for item in items:
        if item.get("type") == "function_call":
            answered[str(item.get("call_id"))] = False
        elif item.get("type") == "function_call_output":
            call_id = str(item.get("call_id"))
            if call_id not in answered:
                return _openai_error(
                    f"No tool call found for function call output with call_id {call_id}.",
                    "input",
                )
            answered[call_id] = True
    for call_id, done in answered.items():
        if not done:
            return _openai_error(f"No tool output found for function call {call_id}.", "input")
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
