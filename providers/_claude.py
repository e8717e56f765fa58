"""What Claude's two wires share: Anthropic's Messages API and Bedrock's Converse.

The forced JSON tool behind ``response_format``, thinking budgets and the checks that go
with them, finish reasons, stop reasons that are failures, tool-call ids, the reading
of tool-use blocks in replies and streams, and prompt-cache breakpoints. One copy, used by
``anthropic.py`` and ``bedrock.py``.

Prompt-cache markers are given as LiteLLM and OpenRouter take them, in OpenAI's shape:
``"cache_control": {"type": "ephemeral"}`` (optionally ``"ttl": "5m" | "1h"``) on a
content part (text or image, system parts included), on a message (it marks the
message's last block: its text, image, tool call or tool result), on a tool of
``tools``, or as the request's own ``cache_control`` parameter (Anthropic's top-level
form: it marks the last block of the last message, so each turn of a conversation
caches all of it). Each becomes a breakpoint of the wire: the same ``cache_control`` on the
matching block (Anthropic, Vertex AI's Claude) or a ``cachePoint`` block after it
(Bedrock's Converse). Claude takes at most :data:`MAX_BREAKPOINTS` in one request; past
that, the last ones are kept (in the cache's own order: tools, system, messages), as the
latest breakpoints cover the longest prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from failover.catalog import TokenUsage, default_catalog
from failover.errors import (
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    MalformedResponseError,
)
from failover.providers.base import (
    ChatRequest,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    max_output_tokens,
    read_usage,
)
from failover.providers.messages import (
    Audio,
    Image,
    Text,
    marker_of,
    read_response_format,
    read_tool_choice,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "JSON_TOOL",
    "MAX_BREAKPOINTS",
    "THINKING_BUDGETS",
    "Blocks",
    "ReplyBlocks",
    "StreamBlocks",
    "cap_breakpoints",
    "check_stop",
    "claude_messages",
    "finish",
    "output_limit",
    "read_claude_usage",
    "thinking_budget",
    "thinking_unsupported",
    "tool_id",
    "tool_input",
]

JSON_TOOL = "json_response"
"""The tool forced for ``response_format``; its input is returned as the answer's text."""
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""``reasoning_effort`` -> ``thinking.budget_tokens``."""
DEFAULT_MAX_TOKENS = 4096
"""The output limit when neither the request nor the catalog gives one."""
MAX_BREAKPOINTS = 4
"""The most prompt-cache breakpoints Claude takes in one request (Anthropic's
``cache_control`` blocks, Bedrock's ``cachePoint`` blocks)."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FILTERED = {
    "refusal": "the model refused to answer",
    "guardrail_intervened": "a guardrail stopped the answer",
    "content_filtered": "a content filter stopped the answer",
}
_MALFORMED = {
    "malformed_model_output": "the model's output was malformed",
    "malformed_tool_use": "the model's tool call was malformed",
}
_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def thinking_budget(params: Mapping[str, Any]) -> int | None:
    """The thinking budget ``reasoning_effort`` asks for, or ``None`` (no thinking)."""
    effort = params.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    return THINKING_BUDGETS.get(str(effort), THINKING_BUDGETS["medium"])


def thinking_unsupported(request: ChatRequest, *, schema_is_native: bool) -> str | None:
    """The field Claude cannot take with this request's thinking or forced JSON tool.

    ``response_format`` becomes a forced tool (always on Bedrock; on Anthropic's API unless
    it carries a schema, ``schema_is_native``): that cannot be combined with other tools
    or with thinking. Thinking also refuses a temperature other than 1, ``top_p`` below
    0.95 and a forced ``tool_choice``.
    """
    params = request.params
    thinking = thinking_budget(params) is not None
    json_mode = read_response_format(params.get("response_format"))
    forced_json = json_mode is not None and not (schema_is_native and json_mode.schema)
    if forced_json and (params.get("tools") or thinking):
        return "response_format"
    if not thinking:
        return None
    if request.temperature is not None and request.temperature != 1:
        return "temperature"
    top_p = params.get("top_p")
    if top_p is not None and not (isinstance(top_p, (int, float)) and top_p >= 0.95):
        return "top_p"
    choice = read_tool_choice(params.get("tool_choice"))
    if choice is not None and choice.mode in ("required", "tool"):
        return "tool_choice"
    return None


def output_limit(request: ChatRequest, catalog_provider: str, model: str) -> int:
    """The request's output limit, else the catalog's for ``model``, else 4096."""
    limit = max_output_tokens(request)
    if limit is None:
        entry = default_catalog.get(catalog_provider, model)
        limit = (entry.max_tokens if entry else None) or DEFAULT_MAX_TOKENS
    return limit


def read_claude_usage(usage: Any, wire: str, names: tuple[str, str, str, str]) -> TokenUsage | None:
    """``usage`` read by its field ``names``: input, output, cache read and cache write."""
    input_name, output_name, read_name, write_name = names

    def build(count: Any) -> TokenUsage:
        return TokenUsage(
            input_tokens=count(usage, input_name),
            output_tokens=count(usage, output_name),
            cache_read_tokens=count(usage, read_name),
            cache_write_tokens=count(usage, write_name),
        )

    return read_usage(usage, wire, build)


def check_stop(stop: Any, field: str) -> None:
    """Raise for a stop reason that is a failure, not an answer.

    Raises:
        MalformedResponseError: Not a string, or the model's output or tool call was
            malformed (Bedrock's ``malformed_model_output``/``malformed_tool_use``).
        ContentFilteredError: A refusal, a guardrail or a content filter.
        ContextWindowExceededError: The context window ran out.
    """
    if stop is None:
        return
    if not isinstance(stop, str):
        raise MalformedResponseError(f"{field} is not a string")
    if stop in _MALFORMED:
        raise MalformedResponseError(f"{_MALFORMED[stop]} ({field}: {stop})", code=stop)
    if stop in _FILTERED:
        raise ContentFilteredError(_FILTERED[stop], code=stop)
    if stop == "model_context_window_exceeded":
        raise ContextWindowExceededError(
            "the model's context window was exceeded", code="model_context_window_exceeded"
        )


def finish(raw: str | None, json_tool: bool) -> str | None:
    """The normalised finish reason of stop reason ``raw`` (the JSON tool's stop is a stop)."""
    if raw is None:
        return None
    if json_tool and raw == "tool_use":
        return "stop"
    return _FINISH.get(raw, "stop")


def tool_id(call_id: str, limit: int | None = None) -> str:
    """``call_id`` made to match ``[a-zA-Z0-9_-]+`` (other providers' ids), cut to ``limit``."""
    return (_ID_CHARS.sub("_", call_id) or "call")[:limit]


def tool_input(arguments: str, where: str, wire: str) -> Any:
    """A tool call's JSON arguments as the object Claude's ``input`` takes.

    Raises:
        ConfigError: The arguments are not a JSON object.
    """
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: tool call arguments must be a JSON object for {wire}")
    return value


class ReplyBlocks:
    """Collects a reply's text and tool-use blocks; the JSON tool's input becomes text."""

    __slots__ = ("calls", "json_tool", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[ToolCall] = []
        self.json_tool = False

    def text(self, value: Any, number: int) -> None:
        """Add text block ``number``."""
        if not isinstance(value, str):
            raise MalformedResponseError(f"content[{number}].text is not a string")
        self.texts.append(value)

    def tool(self, name: Any, call_id: Any, tool_input: Any, number: int) -> None:
        """Add tool-use block ``number``."""
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise MalformedResponseError(f"content[{number}] is not a tool-use block")
        arguments = json.dumps(tool_input or {})
        if name == JSON_TOOL:
            self.json_tool = True
            self.texts.append(arguments)
        else:
            self.calls.append(ToolCall(call_id, name, arguments))


class StreamBlocks:
    """Tracks a stream's tool-use blocks by content index; the JSON tool's input streams as
    text."""

    __slots__ = ("json_blocks", "tools")

    def __init__(self) -> None:
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.json_blocks: set[int] = set()

    def start(self, index: int, name: Any, call_id: Any) -> StreamChunk | None:
        """A tool-use block starts at ``index``."""
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise MalformedResponseError("tool-use block without id and name")
        if name == JSON_TOOL:
            self.json_blocks.add(index)
            return None
        self.tools[index] = len(self.tools)
        return StreamChunk(tool_calls=(ToolCallDelta(self.tools[index], call_id, name),))

    def arguments(self, index: Any, fragment: str) -> StreamChunk:
        """A piece of the JSON input of the tool-use block at ``index``."""
        if index in self.json_blocks:
            return StreamChunk(fragment)
        if index in self.tools:
            return StreamChunk(tool_calls=(ToolCallDelta(self.tools[index], arguments=fragment),))
        raise MalformedResponseError("tool input delta for a block that is not a tool call")


class Blocks(Protocol):
    """How one of Claude's wires writes each kind of content block (``None``: left out)."""

    wire: str
    """The wire's name in errors (``Anthropic``, ``Bedrock's Converse``)."""
    id_limit: int | None
    """The longest tool-call id the wire takes."""

    def system(self, text: str) -> dict[str, Any] | None:
        """A system prompt's text block."""

    def text(self, text: str) -> dict[str, Any] | None:
        """A user or assistant text block."""

    def image(self, part: Image, where: str) -> dict[str, Any]:
        """An image block."""

    def tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        """An assistant's tool call."""

    def tool_result(self, call_id: str, text: str) -> dict[str, Any]:
        """A tool's result, sent in a user turn."""

    def mark(self, blocks: list[dict[str, Any]], marker: Mapping[str, Any]) -> None:
        """Make the last of ``blocks`` a prompt-cache breakpoint (``marker`` as given:
        ``{"type": "ephemeral", "ttl"?}``); a wire or model without caching does nothing."""


def cap_breakpoints(groups: Sequence[list[dict[str, Any]]], key: str, *, separate: bool) -> int:
    """Keep the last :data:`MAX_BREAKPOINTS` breakpoints of ``groups`` (block lists in the
    cache's order: tools, system, then each message's content); return how many went.

    A breakpoint is a block holding ``key``: the key is deleted from it (``cache_control``
    on a block), or the block itself (``separate``: Bedrock's ``cachePoint`` blocks).
    """
    found = [(group, at) for group in groups for at, block in enumerate(group) if key in block]
    excess = len(found) - MAX_BREAKPOINTS
    if excess <= 0:
        return 0
    for group, at in reversed(found[:excess]):  # backwards: deleting keeps earlier indices
        if separate:
            del group[at]
        else:
            del group[at][key]
    return excess


def claude_messages(
    request: ChatRequest, blocks: Blocks
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant messages): consecutive turns of one role
    merged, tool results in a user turn, tool calls as tool-use blocks.

    Raises:
        ConfigError: Audio input, or a tool call whose arguments are not a JSON object.
    """
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, content: list[dict[str, Any]]) -> None:
        if not content:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": role, "content": content})

    # markers are rare: a getattr per part, blocks.mark only for a marked one (marker_of)
    limit = blocks.id_limit
    for index, turn in enumerate(request.turns()):
        where = f"messages[{index}]"
        if turn.role == "system":
            start = len(system)
            for part in turn.parts:
                if isinstance(part, Text) and (block := blocks.system(part.text)) is not None:
                    system.append(block)
                    if (marker := getattr(part, "cache_control", None)) is not None:
                        blocks.mark(system, marker)
            if (marker := marker_of(turn)) is not None and len(system) > start:
                blocks.mark(system, marker)
            continue
        if turn.role == "tool":
            result = [blocks.tool_result(tool_id(turn.tool_call_id or "", limit), turn.text)]
            marker = marker_of(turn)  # the message's own marker, else its last marked part's
            for part in () if marker is not None else turn.parts:
                marker = marker_of(part) or marker
            if marker is not None:
                blocks.mark(result, marker)
            add("user", result)
            continue
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, Text):
                if (block := blocks.text(part.text)) is not None:
                    content.append(block)
                    if (marker := getattr(part, "cache_control", None)) is not None:
                        blocks.mark(content, marker)
            elif isinstance(part, Image):
                content.append(blocks.image(part, where))
                if (marker := getattr(part, "cache_control", None)) is not None:
                    blocks.mark(content, marker)
            elif isinstance(part, Audio):
                raise ConfigError(f"{where}: {blocks.wire} takes no audio input")
        for number, call in enumerate(turn.tool_calls):
            arguments = tool_input(call.arguments, f"{where}.tool_calls[{number}]", blocks.wire)
            content.append(blocks.tool_use(tool_id(call.id, limit), call.name, arguments))
        if (marker := getattr(turn, "cache_control", None)) is not None and content:
            blocks.mark(content, marker)
        add(turn.role, content)
    if messages and (marker := request.params.get("cache_control")) is not None:
        blocks.mark(messages[-1]["content"], marker)
    return system, messages
