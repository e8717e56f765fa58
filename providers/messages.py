"""The caller's request, read once: OpenAI Chat Completions shapes turned into plain values.

Every adapter but the OpenAI one translates from these values, so each shape is read (and
checked) in one place: messages and their parts, tool calls and tool results, ``tools``,
``tool_choice``, ``response_format``, ``stop`` and ``reasoning_effort``. A shape that is not
OpenAI's raises :class:`~failover.errors.ConfigError` naming where it is, before any call.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from failover.errors import ConfigError

__all__ = [
    "REASONING_EFFORTS",
    "Audio",
    "Image",
    "JsonFormat",
    "MarkedImage",
    "MarkedText",
    "MarkedToolSpec",
    "MarkedTurn",
    "Marker",
    "Part",
    "Text",
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "Turn",
    "marker_of",
    "read_messages",
    "read_response_format",
    "read_stop",
    "read_tool_choice",
    "read_tools",
]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""The values of ``reasoning_effort`` the adapters translate."""

Marker = Mapping[str, Any] | None
"""A prompt-cache marker as given on a content part, a message or a tool: Anthropic's
``cache_control`` (``{"type": "ephemeral"}``, optionally with ``"ttl": "5m" | "1h"``), or
``None``. Claude's wires turn it into their own breakpoints; the others drop it."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model made, in OpenAI's terms.

    Attributes:
        id: The call's id (answer it with a ``role: "tool"`` message with this ``tool_call_id``).
        name: The function's name.
        arguments: The arguments as JSON text, as OpenAI gives them.
        thought_signature: Gemini's signature of the reasoning behind the call; sent back to
            Gemini with the history (Gemini 3 requires it), ignored by other providers.
    """

    id: str
    name: str
    arguments: str
    thought_signature: str | None = None

    @property
    def args(self) -> Any:
        """The arguments parsed from JSON (usually a dict).

        Raises:
            ValueError: The model produced arguments that are not valid JSON.
        """
        try:
            return json.loads(self.arguments) if self.arguments.strip() else {}
        except ValueError as exc:
            raise ValueError(f"tool call {self.name!r} has arguments that are not JSON") from exc

    def to_openai(self) -> dict[str, Any]:
        """This call as an item of an OpenAI assistant message's ``tool_calls``."""
        call: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        if self.thought_signature:
            call["extra_content"] = {"google": {"thought_signature": self.thought_signature}}
        return call


@dataclass(frozen=True, slots=True)
class Text:
    """A text part."""

    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image part: an https URL, or base64 ``data`` with its ``mime_type``."""

    url: str | None = None
    data: str | None = None
    mime_type: str | None = None

    def guessed_mime_type(self) -> str:
        """The MIME type: the data URL's, else guessed from the URL's extension."""
        if self.mime_type:
            return self.mime_type
        guessed, _ = mimetypes.guess_type((self.url or "").split("?")[0])
        return guessed or "image/jpeg"


@dataclass(frozen=True, slots=True)
class Audio:
    """An ``input_audio`` part: base64 ``data`` in ``format`` (``wav``, ``mp3``)."""

    data: str
    format: str


Part = Text | Image | Audio


@dataclass(frozen=True, slots=True)
class Turn:
    """One message, read.

    Attributes:
        role: ``system`` (also for ``developer``), ``user``, ``assistant`` or ``tool``.
        parts: The content's parts, in order (empty for ``content: null``).
        tool_calls: An assistant message's tool calls.
        tool_call_id: A tool result's call id.
        name: A tool result's function name (looked up from the call it answers).
    """

    role: str
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The text parts joined."""
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A declared function: name, description and JSON Schema parameters."""

    name: str
    description: str | None
    parameters: Mapping[str, Any] | None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``tool_choice`` read: ``auto``, ``none``, ``required``, or ``tool`` with a ``name``."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class JsonFormat:
    """``response_format`` read: JSON mode, with a schema when ``json_schema`` was asked."""

    schema: Mapping[str, Any] | None = None
    name: str = "response"
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class MarkedText(Text):
    """A text part given with a prompt-cache marker (see :func:`marker_of`)."""

    cache_control: Marker = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MarkedImage(Image):
    """An image part given with a prompt-cache marker."""

    cache_control: Marker = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MarkedTurn(Turn):
    """A message given with a prompt-cache marker on itself (LiteLLM's form for a string
    content): it marks the message's last block."""

    cache_control: Marker = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MarkedToolSpec(ToolSpec):
    """A declared function given with a prompt-cache marker."""

    cache_control: Marker = field(default=None, compare=False)


def marker_of(item: Part | Turn | ToolSpec) -> Marker:
    """The prompt-cache marker given on a part, a message or a tool, or ``None``.

    Markers are rare, so they live on subclasses (:class:`MarkedText`, ...): reading a
    request without any costs nothing.
    """
    return getattr(item, "cache_control", None)


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def read_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[Turn, ...]:
    """Read OpenAI-shaped messages.

    Raises:
        ConfigError: A message is not in OpenAI's shape (the error names which and why).
    """
    turns: list[Turn] = []
    names: dict[str, str] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise ConfigError(f"{where} must be a dict with 'role' and 'content'")
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ConfigError(f"{where}: a 'tool' message needs its 'tool_call_id'")
            name = names.get(call_id) or message.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"{where}: tool_call_id {call_id!r} answers no earlier assistant tool call"
                )
            parts = _parts(message.get("content"), where, allow_media=False)
            if (marker := message.get("cache_control")) is None:
                turns.append(Turn("tool", parts, tool_call_id=call_id, name=name))
            else:
                marked = _marker(marker, where)
                turns.append(MarkedTurn("tool", parts, (), call_id, name, marked))
            continue
        if role not in _ROLES:
            raise ConfigError(
                f"{where}: role must be system, developer, user, assistant or tool, got {role!r}"
            )
        calls: tuple[ToolCall, ...] = ()
        if role == "assistant":
            calls = _tool_calls(message.get("tool_calls"), where)
            names.update((call.id, call.name) for call in calls)
            content = message.get("content")
            if content is None and isinstance(message.get("refusal"), str):
                content = message["refusal"]
            parts = _parts(content, where, allow_media=False)
        else:
            parts = _parts(message.get("content"), where, allow_media=role == "user")
        if (marker := message.get("cache_control")) is None:
            turns.append(Turn(_ROLES[role], parts, calls))
        else:  # rare: a prompt-cache marker on the message itself
            turns.append(MarkedTurn(_ROLES[role], parts, calls, None, None, _marker(marker, where)))
    return tuple(turns)


def _marker(value: Any, where: str) -> Marker:
    """A ``cache_control`` marker, checked to be an object (``None`` when absent)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise ConfigError(f"{where}.cache_control must be {{'type': 'ephemeral'}}, got {value!r}")
    return value


def _parts(content: Any, where: str, *, allow_media: bool) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(content),) if content else ()
    if not isinstance(content, Sequence) or isinstance(content, (bytes, bytearray)):
        raise ConfigError(f"{where}.content must be a string or a list of parts")
    parts: list[Part] = []
    for number, part in enumerate(content):
        at = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise ConfigError(f"{at}: a {kind} part needs a string {kind!r}")
            if text:
                marker = part.get("cache_control")
                parts.append(
                    Text(text) if marker is None else MarkedText(text, _marker(marker, at))
                )
        elif kind == "image_url" and allow_media:
            image = _image(part.get("image_url"), at)
            if (marker := part.get("cache_control")) is not None:
                marked = _marker(marker, at)
                image = MarkedImage(image.url, image.data, image.mime_type, marked)
            parts.append(image)
        elif kind == "input_audio" and allow_media:
            audio = part.get("input_audio")
            if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
                raise ConfigError(f"{at}: input_audio needs {{'data': base64, 'format': ...}}")
            parts.append(Audio(audio["data"], str(audio.get("format") or "wav")))
        else:
            allowed = "text, image_url, input_audio" if allow_media else "text"
            raise ConfigError(f"{at}: part type {kind!r} is not one of: {allowed}")
    return tuple(parts)


def _image(spec: Any, where: str) -> Image:
    url = spec.get("url") if isinstance(spec, Mapping) else spec
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: image_url needs {{'url': 'https://...' or 'data:...'}}")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not mime:
            raise ConfigError(f"{where}: a data URL must be 'data:<mime type>;base64,<data>'")
        return Image(data=data, mime_type=mime)
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: image_url must be an http(s) or a data: URL")
    return Image(url=url)


def _tool_calls(calls: Any, where: str) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes)):
        raise ConfigError(f"{where}.tool_calls must be a list")
    read: list[ToolCall] = []
    for number, call in enumerate(calls):
        at = f"{where}.tool_calls[{number}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ConfigError(f"{at} must be {{'id', 'type': 'function', 'function': {{...}}}}")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise ConfigError(f"{at} needs its 'id'")
        arguments = function.get("arguments") or "{}"
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        extra = call.get("extra_content")
        google = extra.get("google") if isinstance(extra, Mapping) else None
        signature = google.get("thought_signature") if isinstance(google, Mapping) else None
        read.append(
            ToolCall(
                call_id,
                function["name"],
                arguments,
                signature if isinstance(signature, str) else None,
            )
        )
    return tuple(read)


def read_tools(tools: Any) -> tuple[ToolSpec, ...]:
    """Read ``tools`` (OpenAI's ``[{type: "function", function: {...}}]``).

    Raises:
        ConfigError: ``tools`` is not in that shape.
    """
    if tools is None:
        return ()
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)):
        raise ConfigError("tools must be a list of {'type': 'function', 'function': {...}}")
    specs: list[ToolSpec] = []
    for number, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type", "function") != "function"
            or not isinstance(function, Mapping)
            or not isinstance(function.get("name"), str)
        ):
            raise ConfigError(
                f"tools[{number}] must be {{'type': 'function', 'function': {{'name', ...}}}}"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ConfigError(f"tools[{number}].function.parameters must be a JSON Schema dict")
        description = function.get("description")
        strict = function.get("strict")
        spec = ToolSpec(
            function["name"],
            description if isinstance(description, str) else None,
            parameters,
            strict if isinstance(strict, bool) else None,
        )
        if (marker := tool.get("cache_control")) is not None:
            marked = _marker(marker, f"tools[{number}]")
            spec = MarkedToolSpec(spec.name, spec.description, spec.parameters, spec.strict, marked)
        specs.append(spec)
    return tuple(specs)


def read_tool_choice(choice: Any) -> ToolChoice | None:
    """Read ``tool_choice``: ``"auto" | "none" | "required"`` or a named function.

    Raises:
        ConfigError: Another value.
    """
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return ToolChoice("tool", function["name"])
    raise ConfigError(
        "tool_choice must be 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}"
    )


def read_response_format(value: Any) -> JsonFormat | None:
    """Read ``response_format``: ``None`` for text, else JSON mode with an optional schema.

    Raises:
        ConfigError: Another shape.
    """
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return JsonFormat()
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise ConfigError("response_format json_schema needs {'json_schema': {'schema': ...}}")
        assert isinstance(spec, Mapping)
        name = spec.get("name")
        strict = spec.get("strict")
        return JsonFormat(
            schema,
            name if isinstance(name, str) and name else "response",
            strict if isinstance(strict, bool) else None,
        )
    raise ConfigError("response_format type must be 'text', 'json_object' or 'json_schema'")


def read_stop(stop: Any) -> list[str]:
    """Read ``stop``: a string or a list of strings.

    Raises:
        ConfigError: Another value.
    """
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, Sequence) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise ConfigError("stop must be a string or a list of strings")
