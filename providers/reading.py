"""Reading replies and streams: the net under every adapter's parsers.

A body is JSON read strictly (:func:`load_json`); a parser's misreading of a shape is a
MalformedResponseError, never a crash (:func:`guarded`); odd token counts make usage unknown
(:func:`read_usage`). A stream is read line by line by one :class:`StreamReader`, which
cuts SSE events (with httpx-sse's decoder) or NDJSON lines and hands them to the wire's
:class:`StreamParser`: ``ResilientClient`` reads its streams so, and the SDK transport
reads the streams it passes through so (``failover.transport_guard``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from failover.errors import FailoverError, MalformedResponseError

if TYPE_CHECKING:
    from failover.catalog import TokenUsage
    from failover.providers.results import StreamChunk

__all__ = [
    "SHAPE_ERRORS",
    "StreamParser",
    "StreamReader",
    "StreamedReply",
    "check_event_stream",
    "error_status",
    "guarded",
    "input_usage",
    "load_json",
    "not_understood",
    "read_usage",
    "read_vector",
]

logger = logging.getLogger("failover.providers")

P = ParamSpec("P")
R = TypeVar("R")


class StreamParser(Protocol):
    """Reads one stream's events; knows whether the stream's terminator has been seen."""

    complete: bool

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """Parse one SSE event (``event`` is ``""`` for NDJSON lines); raise on an error event."""
        ...


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # UTF-8, UTF-16/32 little, big

# json's own scanner (C when present), made once
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def load_json(body: bytes | str) -> Any:
    """Parse a JSON body (bytes), or a stream's line (text).

    Bytes are read as UTF-8 (what JSON on the network is); a body that does not parse so
    and starts like another encoding (a BOM, the NUL bytes of UTF-16/32) is read in the
    encoding ``json`` detects. Decoding is strict, never a result holding lone surrogates.
    Text is checked for lone surrogates: that is how a lossless decoder
    (``surrogateescape``) hands on bytes that were not UTF-8.

    The value is ``json.loads``' own: json's scanner (C when present, made once) reads it
    without ``loads``' wrappers when it is all there is (maybe with JSON's whitespace
    after it); anything else goes to ``json.loads`` for its own answer.

    Raises:
        MalformedResponseError: The body is not valid text, or not JSON.
    """
    try:
        if isinstance(body, str):
            if not body.isascii():  # isascii is O(1); ASCII text holds no surrogate
                body.encode()
            text = body
        else:
            try:
                text = body.decode()
            except UnicodeDecodeError:
                if not _other_encoding(body):
                    raise
                return json.loads(body.decode(json.detect_encoding(body)))
        try:
            value, end = _scan_once(text, 0)
        except (StopIteration, ValueError):  # no value where it starts, or not JSON: below
            pass
        else:
            if end == len(text) or not text[end:].strip(" \t\n\r"):  # JSON's whitespace
                return value
        if not isinstance(body, str) and _other_encoding(body):
            return json.loads(body.decode(json.detect_encoding(body)))
        return json.loads(text)  # its error (or the value after leading whitespace)
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise MalformedResponseError(
            f"reply is not valid {exc.encoding} text: {exc.reason} at position {exc.start}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError(f"reply is not valid JSON: {exc}") from exc


def _other_encoding(body: bytes) -> bool:
    """Whether ``body`` starts like JSON in another encoding than UTF-8 (a BOM, or the NUL
    bytes of UTF-16/32)."""
    return body.startswith(_BOMS) or b"\x00" in body[:4]


SHAPE_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    RecursionError,
)
"""What a parser raises when a reply is not the shape it reads (:func:`guarded` catches)."""


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
        except SHAPE_ERRORS as exc:
            raise not_understood(exc) from None

    return wrapper


def not_understood(exc: BaseException) -> MalformedResponseError:
    """The MalformedResponseError for a reply shape a parser did not understand (one of
    :data:`SHAPE_ERRORS`, what :func:`guarded` raises; a parser may catch them itself)."""
    return MalformedResponseError(f"reply not understood ({type(exc).__name__}: {str(exc)[:120]})")


class _OddUsage(Exception):
    pass


_MAX_COUNT = 2**53


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    if type(value) is int and 0 <= value < _MAX_COUNT:  # the usual case, checked first
        return value
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _OddUsage(name)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _OddUsage(name)
        value = int(value)
    if not 0 <= value < _MAX_COUNT:
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


def input_usage(usage: Any, wire: str, name: str) -> TokenUsage | None:
    """An embeddings reply's usage: the input tokens counted in ``usage[name]`` (see
    :func:`read_usage`)."""
    from failover.catalog import TokenUsage

    return read_usage(usage, wire, lambda count: TokenUsage(input_tokens=count(usage, name)))


def error_status(payload: Mapping[str, Any]) -> int:
    """The HTTP status an error event of a stream stands for: its ``error.code`` when that is
    one, else 500."""
    error = payload.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500


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


class StreamReader:
    """One stream's lines read into its wire's parser: the one reader of every face.

    With ``sse``, lines are cut into Server-Sent Events by httpx-sse's decoder (the one
    ``httpx_sse.EventSource`` runs) and each event goes to the parser as its name (``message``
    when unnamed) and data; otherwise each non-blank line is an NDJSON value, fed with the
    name ``""``.

    Example:
        >>> from failover.providers.openai import OpenAIAdapter
        >>> parser = OpenAIAdapter("https://api.openai.com/v1").stream_parser()
        >>> reader = StreamReader(parser, sse=True)
        >>> reader.line('data: {"choices": [{"delta": {"content": "Hi"}}]}')
        >>> reader.line("").text
        'Hi'
        >>> reader.line("data: [DONE]"), reader.line(""), reader.complete
        (None, None, True)
    """

    __slots__ = ("_decoder", "parser")

    def __init__(self, parser: StreamParser, *, sse: bool) -> None:
        self.parser = parser
        self._decoder = SSEDecoder() if sse else None

    @property
    def complete(self) -> bool:
        """Whether the stream's terminator has been read."""
        return self.parser.complete

    def line(self, line: str) -> StreamChunk | None:
        """Read one line (without its line break); the chunk an event it ends makes, if any.

        Raises:
            ProviderError: The event is an error event, or cannot be read.
        """
        decoder = self._decoder
        if decoder is None:
            return self.parser.feed("", line) if line.strip() else None
        event = decoder.decode(line)
        return None if event is None else self.parser.feed(event.event, event.data)

    def lines_of(self, reply: StreamedReply) -> AsyncIterator[str]:
        """A streamed reply's lines, cut as its format cuts them: SSE at ``\\r\\n``, ``\\r``
        or ``\\n`` (httpx-sse's line decoder, after checking the reply is an event stream),
        NDJSON at httpx's line breaks (``reply.aiter_lines()``)."""
        if self._decoder is None:
            return reply.aiter_lines()
        return _sse_lines(reply)

    async def chunks(self, lines: AsyncIterator[str]) -> AsyncIterator[StreamChunk]:
        """The chunks of a stream's lines, up to and including its terminator's.

        Raises:
            MalformedResponseError: The lines ended before the terminator.
            ProviderError: An error event, or one that cannot be read.
        """
        async for line in lines:
            if (chunk := self.line(line)) is not None:
                yield chunk
            if self.parser.complete:
                return
        if not self.parser.complete:
            raise MalformedResponseError("the stream ended before its terminator")


class StreamedReply(Protocol):
    """A reply whose body is read as it arrives (``failover.http.Reply``'s shape)."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The reply headers."""
        ...

    def aiter_text(self) -> AsyncIterator[str]:
        """The body as text as it arrives."""
        ...

    def aiter_lines(self) -> AsyncIterator[str]:
        """The body line by line as it arrives."""
        ...


async def _sse_lines(reply: StreamedReply) -> AsyncIterator[str]:
    """An event stream's lines (as ``httpx_sse.EventSource`` reads them).

    Raises:
        MalformedResponseError: The reply is not an event stream (its Content-Type).
    """
    check_event_stream(reply.headers)
    decoder = SSELineDecoder()
    async for text in reply.aiter_text():
        for line in decoder.decode(text):
            yield line
    for line in decoder.flush():
        yield line


def check_event_stream(headers: Mapping[str, str]) -> None:
    """Check a reply's headers say it is an event stream, as ``httpx_sse.EventSource`` does.

    Raises:
        MalformedResponseError: The Content-Type is not ``text/event-stream``.
    """
    content_type = headers.get("content-type", "").partition(";")[0]
    if "text/event-stream" not in content_type:
        raise MalformedResponseError(
            "not an event stream: Expected response header Content-Type to contain "
            f"'text/event-stream', got {content_type!r}"
        )
