"""The ProviderAdapter protocol and the normalised request/response types.

An adapter knows one wire protocol: how to build the HTTP request for a chat request,
how to read the reply, how to read a stream, what an error reply means, and which request
fields a model cannot take. It does no I/O: the client sends what the adapter builds.

Replies come out in one shape whatever the wire: :class:`ChatResult` (text, tool calls, the
assistant ``message`` in OpenAI's shape, a normalised finish reason, usage), and streams as
:class:`StreamChunk` s that a :class:`StreamAssembler` turns into the same.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from failover.catalog import ModelEntry, TokenUsage
from failover.classify import classify_http_error
from failover.errors import ConfigError, FailoverError, MalformedResponseError, ProviderError
from failover.providers.messages import ToolCall, Turn, read_messages

__all__ = [
    "FINISH_REASONS",
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
    "ToolCall",
    "ToolCallDelta",
    "assistant_message",
    "catalog_unsupported",
    "check_json",
    "check_params",
    "check_vectors",
    "embedding_unsupported",
    "error_status",
    "first_unknown",
    "guarded",
    "has_part",
    "load_json",
    "max_output_tokens",
    "merge_params",
    "read_usage",
    "read_vector",
]

logger = logging.getLogger("failover.providers")

Message = Mapping[str, Any]
P = ParamSpec("P")
R = TypeVar("R")

_PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
"""The normalised finish reasons (the provider's own is kept as ``raw_finish_reason``)."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request in OpenAI's shape, before any provider's translation."""

    messages: Sequence[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False
    _turns: list[tuple[Turn, ...]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def plain(self) -> bool:
        """Whether this is text alone (string contents, no parameters): what every model
        of every wire format takes, so no adapter has a field to refuse."""
        return not self.params and all(
            type(message.get("content")) is str
            and message.get("role") in _PLAIN_ROLES
            and len(message) == 2
            for message in self.messages
        )

    def turns(self) -> tuple[Turn, ...]:
        """The messages read once (see :func:`providers.messages.read_messages`).

        Raises:
            ConfigError: A message is not in OpenAI's shape.
        """
        if not self._turns:
            self._turns.append(read_messages(self.messages))
        return self._turns[0]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What to send: method, absolute URL, headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def assistant_message(text: str, tool_calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The assistant message in OpenAI's shape, ready to append to the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = [call.to_openai() for call in tool_calls]
    elif not text:
        message["content"] = ""
    return message


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A parsed reply, the same shape from every wire format.

    Attributes:
        text: The answer's text (reasoning excluded).
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``content_filter``.
        usage: Token counts (zeros when ``usage_known`` is false).
        raw: The provider's parsed reply.
        tool_calls: The tool calls the model made.
        raw_finish_reason: The provider's own stop reason.
        usage_known: False when the reply's usage could not be read (it is logged).
    """

    text: str
    finish_reason: str | None
    usage: TokenUsage
    raw: Any
    tool_calls: tuple[ToolCall, ...] = ()
    raw_finish_reason: str | None = None
    usage_known: bool = True

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape (``content`` and ``tool_calls``)."""
        return assistant_message(self.text, self.tool_calls)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call, keyed by ``index``.

    The first piece of a call carries its ``id`` and ``name``; ``arguments`` pieces join into
    the arguments' JSON text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    thought_signature: str | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a stream: a text delta and/or tool-call deltas; the last carries the
    finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    raw_finish_reason: str | None = None


class StreamAssembler:
    """Accumulates stream chunks into the text, tool calls, message, usage and finish reason.

    Example:
        >>> assembler = StreamAssembler()
        >>> assembler.add(StreamChunk(tool_calls=(ToolCallDelta(0, "c1", "f", '{"a"'),)))
        >>> assembler.add(StreamChunk(tool_calls=(ToolCallDelta(0, arguments=": 1}"),)))
        >>> assembler.tool_calls[0].args
        {'a': 1}
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: TokenUsage | None = None

    def add(self, chunk: StreamChunk) -> None:
        """Take one chunk."""
        if chunk.text:
            self._text.append(chunk.text)
        for delta in chunk.tool_calls:
            call = self._calls.setdefault(
                delta.index, {"id": None, "name": None, "arguments": [], "signature": None}
            )
            call["id"] = call["id"] or delta.id
            call["name"] = call["name"] or delta.name
            call["signature"] = call["signature"] or delta.thought_signature
            if delta.arguments:
                call["arguments"].append(delta.arguments)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason or chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._text)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls so far, in index order."""
        return tuple(
            ToolCall(
                call["id"] or f"call_{index}",
                call["name"] or "",
                "".join(call["arguments"]),
                call["signature"],
            )
            for index, call in sorted(self._calls.items())
        )

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape."""
        return assistant_message(self.text, self.tool_calls)


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


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """A parsed embeddings reply: one vector per input, in the inputs' order.

    Attributes:
        vectors: The vectors.
        usage: Input tokens (zeros when ``usage_known`` is false).
        usage_known: False when the reply carries no usage (Gemini's) or an odd one.
    """

    vectors: list[list[float]]
    usage: TokenUsage
    usage_known: bool = True


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


def read_vector(value: Any, where: str) -> list[float]:
    """A reply's vector as floats: a JSON list of numbers, or base64 of little-endian
    float32s (OpenAI's ``encoding_format: "base64"``).

    Raises:
        MalformedResponseError: Anything else, or a number that is not finite.
    """
    if isinstance(value, str):
        import array
        import base64
        import binascii
        import sys

        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponseError(f"{where} is neither numbers nor base64") from None
        if len(raw) % 4:
            raise MalformedResponseError(f"{where} is not whole float32 values")
        floats = array.array("f", raw)
        if sys.byteorder != "little":
            floats.byteswap()
        vector = floats.tolist()
    elif isinstance(value, list):
        vector = value
    else:
        raise MalformedResponseError(f"{where} is not a list of numbers")
    if not vector:
        raise MalformedResponseError(f"{where} is empty")
    for number in vector:
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not math.isfinite(number)
        ):
            raise MalformedResponseError(f"{where} holds {str(number)[:40]!r}, not a number")
    return [float(number) for number in vector]


def check_vectors(vectors: list[list[float]], inputs: int) -> list[list[float]]:
    """Check a reply has one vector per input, all of one length; return them."""
    if len(vectors) != inputs:
        raise MalformedResponseError(f"reply has {len(vectors)} vectors for {inputs} inputs")
    if len({len(vector) for vector in vectors}) > 1:
        raise MalformedResponseError("reply's vectors differ in length")
    return vectors


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # UTF-8, UTF-16/32 little, big


def load_json(body: bytes | str) -> Any:
    """Parse a JSON body (bytes), or a stream's line (text).

    Bytes are read as UTF-8 (what JSON on the network is); a body that does not parse so
    and starts like another encoding (a BOM, the NUL bytes of UTF-16/32) is read in the
    encoding ``json`` detects. Decoding is strict, never a result holding lone surrogates.
    Text is checked for lone surrogates: that is how a lossless decoder
    (``surrogateescape``) hands on bytes that were not UTF-8.

    Raises:
        MalformedResponseError: The body is not valid text, or not JSON.
    """
    try:
        if isinstance(body, str):
            if not body.isascii():  # isascii is O(1); ASCII text holds no surrogate
                body.encode()
            return json.loads(body)
        try:
            return json.loads(body.decode())
        except ValueError:
            if not body.startswith(_BOMS) and b"\x00" not in body[:4]:
                raise
        return json.loads(body.decode(json.detect_encoding(body)))
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise MalformedResponseError(
            f"reply is not valid {exc.encoding} text: {exc.reason} at position {exc.start}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError(f"reply is not valid JSON: {exc}") from exc


_SHAPE_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    RecursionError,
)


def guarded(parse: Callable[P, R]) -> Callable[P, R]:
    """Make any reply shape a parser does not understand a MalformedResponseError.

    The parsers check the fields they read; this is the net under them, so that whatever a
    server sends, only a result or a FailoverError comes out.
    """

    @functools.wraps(parse)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return parse(*args, **kwargs)
        except FailoverError:
            raise
        except _SHAPE_ERRORS as exc:
            raise MalformedResponseError(
                f"reply not understood ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None

    return wrapper


class _OddUsage(Exception):
    pass


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _OddUsage(name)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _OddUsage(name)
        value = int(value)
    if not 0 <= value < 2**53:
        raise _OddUsage(name)
    return value


def read_usage(
    usage: Any, wire: str, build: Callable[[Callable[[Any, str], int]], TokenUsage]
) -> TokenUsage | None:
    """Read a reply's usage with ``build``; odd counts make it unknown (``None``), logged.

    ``build`` gets ``count(mapping, name)``, which reads a token count (missing: 0) and gives
    up on anything that is not a sane non-negative integer.
    """

    def count(source: Any, name: str) -> int:
        if source is None:
            return 0
        if type(source) is not dict and not isinstance(source, Mapping):
            raise _OddUsage(name)
        return _count(source, name)

    if usage is None:
        return None
    try:
        if type(usage) is not dict and not isinstance(usage, Mapping):
            raise _OddUsage("usage")
        return build(count)
    except _OddUsage as odd:
        logger.warning("%s reply: usage field %r not understood; usage unknown", wire, str(odd))
        return None


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
        except _SHAPE_ERRORS:
            logger.warning("HTTP %s error reply not understood; classified by status", status)
            return classify_http_error(status, {}, b"")

    def unsupported_field(self, request: ChatRequest, model: ModelEntry) -> str | None:
        """The name of a request field ``model`` cannot honour, or ``None`` (default: none)."""
        return None


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


def error_status(payload: Mapping[str, Any]) -> int:
    """The HTTP status an error event of a stream stands for: its ``error.code`` when that is
    one, else 500."""
    error = payload.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500


def has_part(request: ChatRequest, kind: type) -> bool:
    """Whether any message of ``request`` has a part of ``kind`` (Image, Audio)."""
    return any(isinstance(part, kind) for turn in request.turns() for part in turn.parts)


def check_params(params: Mapping[str, Any]) -> None:
    """Check the shared parameters are in OpenAI's shape, whichever provider gets them.

    Raises:
        ConfigError: ``tools``, ``tool_choice``, ``response_format``, ``stop`` or
            ``reasoning_effort`` is not in OpenAI's shape.
    """
    from failover.providers import messages

    messages.read_tools(params.get("tools"))
    messages.read_tool_choice(params.get("tool_choice"))
    messages.read_response_format(params.get("response_format"))
    messages.read_stop(params.get("stop"))
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
