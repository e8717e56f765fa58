"""The ProviderAdapter protocol, the normalised request types and the request checks.

An adapter knows one wire protocol: how to build the HTTP request for a chat request,
how to read the reply, how to read a stream, what an error reply means, and which request
fields a model cannot take. It does no I/O: the client sends what the adapter builds.

Replies come out in one shape whatever the wire (:mod:`failover.providers.results`:
:class:`ChatResult`, :class:`StreamChunk`, ...), read with the shared readers of
:mod:`failover.providers.reading`; both are re-exported here, where they have always been
imported from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from failover._records import built_at_once
from failover.catalog import ModelEntry
from failover.classify import classify_http_error
from failover.errors import ConfigError, FailoverError, ProviderError
from failover.providers.messages import ToolCall, Turn, read_messages
from failover.providers.reading import (
    SHAPE_ERRORS,
    StreamParser,
    StreamReader,
    error_status,
    guarded,
    input_usage,
    load_json,
    not_understood,
    read_usage,
    read_vector,
)
from failover.providers.results import (
    FINISH_REASONS,
    ChatResult,
    EmbeddingResult,
    StreamAssembler,
    StreamChunk,
    ToolCallDelta,
    assistant_message,
    call_deltas,
    chat_result,
    check_vectors,
    embedding_result,
)

__all__ = [
    "FINISH_REASONS",
    "PLAIN_ROLES",
    "BaseAdapter",
    "ChatRequest",
    "ChatResult",
    "EmbeddingAdapter",
    "EmbeddingRequest",
    "EmbeddingResult",
    "HttpRequest",
    "ProviderAdapter",
    "StreamAssembler",
    "StreamChunk",
    "StreamParser",
    "StreamReader",
    "ToolCall",
    "ToolCallDelta",
    "assistant_message",
    "call_deltas",
    "catalog_unsupported",
    "chat_result",
    "check_json",
    "check_params",
    "check_vectors",
    "embedding_result",
    "embedding_unsupported",
    "error_status",
    "first_unknown",
    "guarded",
    "has_part",
    "input_usage",
    "json_body",
    "json_headers",
    "load_json",
    "max_output_tokens",
    "merge_params",
    "not_understood",
    "read_usage",
    "read_vector",
]

logger = logging.getLogger("failover.providers")

Message = Mapping[str, Any]

PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))
"""The roles of a plain message (:attr:`ChatRequest.plain`): every wire format has them."""


@built_at_once
@dataclass(frozen=True)
class ChatRequest:
    """A chat request in OpenAI's shape, before any provider's translation.

    Its readings of itself (:attr:`plain`, :meth:`turns`) are made on first use and kept in
    its dictionary (``cached_property``): not fields, so never compared nor shown; a copy or
    a pickle keeps them, as the fields they read.
    """

    messages: Sequence[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False

    @cached_property
    def plain(self) -> bool:
        """Whether this is text alone (string contents, no parameters): what every model
        of every wire format takes, so no adapter has a field to refuse (read once, then
        a plain attribute)."""
        if self.params:
            return False
        return all(
            type(message.get("content")) is str
            and message.get("role") in PLAIN_ROLES
            and len(message) == 2
            for message in self.messages
        )

    def known_plain(self, plain: bool) -> ChatRequest:
        """Record what :attr:`plain` finds, read by a caller that has just looked at every
        message (``chat_request``): the request is not read twice. Returns the request."""
        self.__dict__["plain"] = plain  # where cached_property keeps it
        return self

    def turns(self) -> tuple[Turn, ...]:
        """The messages read once (see :func:`providers.messages.read_messages`).

        Raises:
            ConfigError: A message is not in OpenAI's shape.
        """
        return self._turns

    @cached_property
    def _turns(self) -> tuple[Turn, ...]:
        return read_messages(self.messages)


@built_at_once
@dataclass(frozen=True)
class HttpRequest:
    """What to send: method, absolute URL, headers and body.

    ``repr`` shows the method and URL only: the headers carry the credentials (an API key,
    a bearer token, a SigV4 signature and session token) and the body may echo them.
    """

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


class ProviderAdapter(Protocol):
    """One wire protocol."""

    api: str
    default_base_url: str

    @property
    def stream_format(self) -> Literal["sse", "ndjson", "eventstream"]:
        """How a stream's body is framed: SSE, NDJSON lines, or AWS event-stream frames."""
        ...

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Return the HTTP request for ``request`` to ``model`` with this key and base URL."""
        ...

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """The name of a request field ``model`` cannot honour on this wire, or ``None``."""
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


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Texts to embed, before any provider's translation.

    Attributes:
        inputs: The texts, one vector each.
        dimensions: The vector length to ask the model for (``None``: the model's own).
        task_type: What the vectors are for (Gemini's ``taskType``, e.g.
            ``RETRIEVAL_QUERY``); other wires have no such field and ignore it.
        params: Further fields for the wire (``user``, ``truncate``, ``title``, ...).
    """

    inputs: tuple[str, ...]
    dimensions: int | None = None
    task_type: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


class EmbeddingAdapter(Protocol):
    """A wire protocol's embeddings endpoint (OpenAI-compatible, Azure, Gemini, Ollama)."""

    def embedding_unsupported(self, request: EmbeddingRequest, model: ModelEntry) -> str | None:
        """The name of a request field ``model`` cannot take on this wire, or ``None``."""
        ...

    def build_embedding_request(
        self, request: EmbeddingRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Return the HTTP request embedding ``request.inputs`` with ``model``."""
        ...

    def parse_embedding_response(self, body: bytes, inputs: int) -> EmbeddingResult:
        """Parse a 200 reply holding ``inputs`` vectors; raise MalformedResponseError
        for anything else."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """Turn an error reply into the right ProviderError."""
        ...


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
        """Turn an error reply into the right ProviderError.

        A body or headers the classifier cannot read never crash: the error is then
        classified by its status alone.
        """
        try:
            return classify_http_error(status, headers, body)
        except FailoverError:
            raise
        except SHAPE_ERRORS:
            logger.warning("HTTP %s error reply not understood; classified by status", status)
            return classify_http_error(status, {}, b"")

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """The name of a request field ``model`` cannot honour, or ``None`` (default: none)."""
        return None


def json_headers(api_key: str) -> dict[str, str]:
    """A JSON request's headers, with ``api_key`` as a bearer token (none when it is empty:
    a local server without keys)."""
    if api_key:
        return {"content-type": "application/json", "authorization": f"Bearer {api_key}"}
    return {"content-type": "application/json"}


_DEFAULT = json.JSONEncoder().default  # its TypeError names the type json cannot write
_ENCODE_ASCII = json.encoder.encode_basestring_ascii


def _c_encoder_maker() -> Callable[..., Callable[[Any, int], Sequence[str]]] | None:
    """json's C encoder maker (what ``json.dumps`` runs), or ``None`` without the C
    accelerator or when it takes other arguments than these."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        make({}, _DEFAULT, _ENCODE_ASCII, None, ": ", ", ", False, False, True)
    except TypeError:
        return None
    return make  # type: ignore[no-any-return]


_MAKE_ENCODER = _c_encoder_maker()

# json's C encoder that keeps no record of the containers it is in (no circular check):
# nothing in it is per body, so one serves every body that cannot hold a cycle
_ACYCLIC_ENCODE = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(None, _DEFAULT, _ENCODE_ASCII, None, ": ", ", ", False, False, True)
)


def json_body(payload: Any, *, acyclic: bool = False) -> bytes:
    """``json.dumps(payload).encode()``: the same bytes, or the same error.

    json's C encoder is called directly (a fresh one per body, so that its record of the
    containers it is in, which finds circular references, is never shared), without
    ``dumps``' pure-Python wrappers; without the C accelerator, ``json.dumps`` itself.
    ``acyclic``: the caller knows ``payload`` cannot hold a cycle (a plain request's, see
    :attr:`ChatRequest.plain`: its messages are dicts of strings), so one shared encoder
    that looks for none writes it, the same bytes (a cycle given all the same would raise
    RecursionError there, not ``dumps``' ValueError).
    """
    if acyclic and _ACYCLIC_ENCODE is not None:
        return "".join(_ACYCLIC_ENCODE(payload, 0)).encode()
    make = _MAKE_ENCODER
    if make is None:
        return json.dumps(payload).encode()
    encode = make({}, _DEFAULT, _ENCODE_ASCII, None, ": ", ", ", False, False, True)
    return "".join(encode(payload, 0)).encode()


def merge_params(payload: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Add caller parameters the adapter did not set itself (unknown ones pass through)."""
    for key, value in params.items():
        payload.setdefault(key, value)
    return payload


def check_json(params: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first parameter that cannot be sent as JSON."""
    for name, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"parameter {name!r} cannot be sent as JSON: {exc}") from None


def has_part(request: ChatRequest, kind: type) -> bool:
    """Whether any message of ``request`` has a part of ``kind`` (Image, Audio)."""
    return any(isinstance(part, kind) for turn in request.turns() for part in turn.parts)


def check_params(params: Mapping[str, Any]) -> None:
    """Check the shared parameters are in OpenAI's shape, whichever provider gets them.

    Raises:
        ConfigError: ``tools``, ``tool_choice``, ``response_format``, ``stop`` or
            ``reasoning_effort`` is not in OpenAI's shape, or ``cache_control`` is not a
            marker (``{"type": "ephemeral"}``).
    """
    from failover.providers import messages

    messages.read_tools(params.get("tools"))
    messages.read_tool_choice(params.get("tool_choice"))
    messages.read_response_format(params.get("response_format"))
    messages.read_stop(params.get("stop"))
    marker = params.get("cache_control")
    if marker is not None and not (
        isinstance(marker, Mapping) and isinstance(marker.get("type"), str)
    ):
        raise ConfigError(f"cache_control must be {{'type': 'ephemeral'}}, got {marker!r}")
    effort = params.get("reasoning_effort")
    if effort is not None and effort not in messages.REASONING_EFFORTS:
        raise ConfigError(
            f"reasoning_effort must be one of {', '.join(messages.REASONING_EFFORTS)}, "
            f"got {effort!r}"
        )


def catalog_unsupported(request: ChatRequest, model: ModelEntry) -> str | None:
    """A field the catalog says ``model`` cannot take (images, audio, tools, reasoning)."""
    from failover.providers.messages import Audio, Image

    params = request.params
    effort = params.get("reasoning_effort")
    if model.input is not None:
        if "image" not in model.input and has_part(request, Image):
            return "image_url"
        if "audio" not in model.input and has_part(request, Audio):
            return "input_audio"
    if model.tools is False and params.get("tools"):
        return "tools"
    if model.reasoning is False and effort is not None and effort != "none":
        return "reasoning_effort"
    return None


def max_output_tokens(request: ChatRequest) -> int | None:
    """``max_tokens``, from the argument or ``max_completion_tokens``/``max_tokens`` params."""
    if request.max_tokens is not None:
        return request.max_tokens
    for name in ("max_completion_tokens", "max_tokens"):
        value = request.params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def embedding_unsupported(
    request: EmbeddingRequest, model: ModelEntry, *, max_inputs: int | None = None
) -> str | None:
    """A field ``model`` cannot take: ``dimensions`` when the catalog says its vectors
    cannot be shortened, ``inputs`` when there are more than the wire takes at once."""
    if request.dimensions is not None and model.adjustable_dimensions is False:
        return "dimensions"
    if max_inputs is not None and len(request.inputs) > max_inputs:
        return "inputs"
    return None


def first_unknown(params: Mapping[str, Any], known: frozenset[str]) -> str | None:
    """The first parameter not in ``known`` (sorted, so the answer is stable)."""
    unknown = sorted(set(params) - known)
    return unknown[0] if unknown else None
