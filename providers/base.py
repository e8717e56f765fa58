"""The ProviderAdapter protocol and the normalised request/response types.

An adapter knows one wire protocol: how to build the HTTP request for a chat request,
how to read the reply, how to read a stream, and what an error reply means. It does no
I/O: the client sends what the adapter builds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from failover.catalog import TokenUsage
from failover.classify import classify_http_error
from failover.errors import MalformedResponseError, ProviderError

__all__ = [
    "BaseAdapter",
    "ChatRequest",
    "ChatResult",
    "HttpRequest",
    "ProviderAdapter",
    "StreamChunk",
    "StreamParser",
    "load_json",
    "merge_params",
]

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request in OpenAI's shape, before any provider's translation."""

    messages: Sequence[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False

    def split_system(self) -> tuple[str | None, list[Message]]:
        """Return the system messages joined (or ``None``) and the other messages."""
        system = [str(m.get("content", "")) for m in self.messages if m.get("role") == "system"]
        rest = [m for m in self.messages if m.get("role") != "system"]
        return ("\n\n".join(system) if system else None), rest


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What to send: method, absolute URL, headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A parsed reply."""

    text: str
    finish_reason: str | None
    usage: TokenUsage
    raw: Any


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a stream: a text delta; the last carries finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage | None = None


class StreamParser(Protocol):
    """Reads one stream's events; knows whether the stream's terminator has been seen."""

    complete: bool

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """Parse one SSE event (``event`` is ``""`` for NDJSON lines); raise on an error event."""
        ...


class ProviderAdapter(Protocol):
    """One wire protocol."""

    api: str
    default_base_url: str
    stream_format: Literal["sse", "ndjson"]

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Return the HTTP request for ``request`` to ``model`` with this key and base URL."""
        ...

    def parse_response(self, body: bytes) -> ChatResult:
        """Parse a 200 reply; raise ProviderError for content blocks or malformed bodies."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Turn an error reply into the right ProviderError."""
        ...

    def stream_parser(self) -> StreamParser:
        """Return a fresh parser for one stream."""
        ...


def load_json(body: bytes | str) -> Any:
    """Parse a JSON body, raising MalformedResponseError for anything else."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MalformedResponseError(f"reply is not valid JSON: {exc}") from exc


class BaseAdapter:
    """What every adapter shares: its default base URL, and errors via the shared classifier.

    Subclasses set ``default_base_url`` (the provider's public URL); an instance may be
    given another, e.g. one adapter class registered for several compatible providers.
    """

    default_base_url: str

    def __init__(self, default_base_url: str | None = None) -> None:
        if default_base_url is not None:
            self.default_base_url = default_base_url

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Turn an error reply into the right ProviderError."""
        return classify_http_error(status, headers, body)


def merge_params(payload: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Add caller parameters the adapter did not set itself (unknown ones pass through)."""
    for key, value in params.items():
        payload.setdefault(key, value)
    return payload
