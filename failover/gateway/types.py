"""The gateway's shared types: the four SDK wires, a decoded request, an encoded reply.

A request an SDK built arrives as a URL and a body in one of four wire formats; decoding
it gives a :class:`Decoded`: the common :class:`~failover.providers.base.ChatRequest` plus what the
encoders need to answer in the SDK's own format. A field that only the SDK's own provider
can honour raises :class:`CannotTranslateError` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from failover._records import lean_init
from failover.errors import ConfigError, InvalidRequestError, UnsupportedParameterError
from failover.providers.base import ChatRequest, check_params

__all__ = [
    "WIRES",
    "CannotTranslateError",
    "Decoded",
    "Wire",
    "WireResponse",
    "assistant_turn",
    "common_request",
    "invalid_request",
    "readable",
    "wire_of",
]

Wire = Literal["openai", "responses", "anthropic", "gemini"]
"""An SDK's wire format: OpenAI Chat Completions, OpenAI Responses, Anthropic Messages,
Gemini generateContent."""

WIRES: tuple[Wire, ...] = ("openai", "responses", "anthropic", "gemini")


class CannotTranslateError(UnsupportedParameterError):
    """A field of the SDK's request has no meaning on another provider (state kept on the
    SDK provider's servers, a server-side tool, an output the gateway cannot carry back).

    Attributes:
        field: Where the field is in the SDK's request (``previous_response_id``,
            ``tools[1]``, ``input[3]``, ...).
        reason: Why it cannot cross providers.
    """

    def __init__(self, field: str, reason: str) -> None:
        InvalidRequestError.__init__(
            self,
            f"{field} cannot be sent to another provider: {reason}",
            status=400,
            code="unsupported_parameter",
        )
        self.field = field
        self.models = ()
        self.reason = reason


_FIELD = re.compile(r"[A-Za-z_][\w\[\].]*")


def readable(request: ChatRequest) -> ChatRequest:
    """``request``, checked as every adapter will read it (messages and shared parameters).

    Raises:
        CannotTranslateError: A part of it no adapter can read (a ``file`` part, say),
            named as the adapters' reader names it (``messages[2].content[0]``).
    """
    try:
        request.turns()
        if request.params:  # (none: nothing to check)
            check_params(request.params)
    except ConfigError as exc:
        match = _FIELD.match(str(exc))
        raise CannotTranslateError(match.group(0) if match else "messages", str(exc)) from None
    return request


def invalid_request(message: str) -> InvalidRequestError:
    """The error for an SDK request that is not in its wire's shape at all."""
    return InvalidRequestError(message, status=400, code="invalid_request_error")


@lean_init
@dataclass(frozen=True, slots=True)
class Decoded:
    """An SDK's request, read.

    Attributes:
        wire: The SDK's wire format, which the reply must be encoded in.
        model: The model the SDK asked for (from the body, or Gemini's URL).
        request: The request in the common shape, ready for any adapter.
        echo: Request fields the reply repeats or depends on (OpenAI's
            ``stream_options.include_usage``; the Responses object's ``instructions``,
            ``tools``, ``tool_choice``, ...).
    """

    wire: Wire
    model: str
    request: ChatRequest
    echo: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        """Whether the SDK asked for a stream."""
        return self.request.stream


@lean_init
@dataclass(frozen=True, slots=True)
class WireResponse:
    """A whole HTTP reply in an SDK's wire format.

    Attributes:
        status: The HTTP status.
        headers: Lower-case header names and their values (``content-type`` always).
        body: The body's bytes.
    """

    status: int
    headers: dict[str, str]
    body: bytes


def wire_of(url: str) -> Wire | None:
    """The wire format of an SDK request to ``url`` (a whole URL or its path), or ``None``.

    Example:
        >>> wire_of("https://api.anthropic.com/v1/messages")
        'anthropic'
        >>> wire_of("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        'gemini'
    """
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/messages") and not path.endswith("/batches/messages"):
        return "anthropic"
    method = path.rsplit("/", 1)[-1].partition(":")[2]
    if method in ("generateContent", "streamGenerateContent"):
        return "gemini"
    return None


def query_of(url: str) -> dict[str, str]:
    """The URL's query parameters (the last value of each)."""
    return dict(parse_qsl(urlsplit(url).query))


def common_request(
    messages: list[dict[str, Any]],
    limit: Any,
    temperature: Any,
    params: dict[str, Any],
    *,
    stream: bool,
) -> ChatRequest:
    """The common request of a decoded body, checked (:func:`readable`): its token limit
    and temperature kept only when they are numbers (the SDK's own validation is the
    provider's)."""
    return readable(
        ChatRequest(
            messages,
            max_tokens=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            temperature=temperature if isinstance(temperature, (int, float)) else None,
            params=params,
            stream=stream,
        )
    )


def assistant_turn(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant turn of the history in OpenAI's shape: its text, its tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message
