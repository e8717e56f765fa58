"""The SDK transport's guards on every reply it hands an SDK.

No header the SDK (or an HTTP library's log) sees shows a key; a 2xx reply of an endpoint
the transport knows (``ENDPOINTS``) must be JSON of that endpoint's shape, or it fails over
like an error; a stream reaches the SDK decoded (whatever its ``Content-Encoding``) and is
read as it passes by its endpoint's own reader, for its terminator, for keys in error
events and for idle gaps (:func:`guard_stream`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import operator
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlsplit

from failover import providers
from failover._secrets import KeyScrubber
from failover._tasks import scope_within
from failover.catalog import ModelEntry
from failover.classify import classify_exception, header_items
from failover.engine import Engine, RequestState
from failover.errors import (
    ContentFilteredError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
)
from failover.profiles import AuthProfile
from failover.providers.base import StreamChunk, StreamReader, load_json
from failover.transport_io import IO, closed_error
from failover.transport_rewrite import made_headers

__all__ = [
    "BODY_HEADERS",
    "Endpoint",
    "Resume",
    "Spliced",
    "checked_reply",
    "endpoint_of",
    "guard_stream",
    "read_response",
    "rebuilt",
    "reread",
    "served_headers",
    "shown",
]

BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
"""Headers that describe a body as it was sent, not as the SDK gets it (decoded)."""
Served = tuple[tuple[str, str], ...]
"""The headers naming who served a reply (``x-failover-provider``, ``x-failover-model``)."""
OnId = Callable[[str], None]
"""Told the ``id`` of each OpenAI Responses reply (whole or streamed) passed to the SDK."""


class Spliced(Protocol):
    """The bytes of a continuation, in the SDK's wire, that follow a broken stream's."""

    async def next(self) -> bytes | None:
        """The next bytes; ``None`` at the end."""
        ...

    async def aclose(self) -> None:
        """Stop (the SDK closed the stream early)."""
        ...


Resume = Callable[[str, int | None, ProviderError], Awaitable[Spliced | None]]
"""Continues a broken stream (``on_stream_break="continue"``): given the text the SDK has,
the index of the content block left open (Anthropic's), and the break, the continuation's
bytes, or ``None`` when nothing could continue it."""


_SERVED = ("x-failover-provider", "x-failover-model")
_NAME = operator.itemgetter(0)
_LOWERED = _PAIR_VALUE = operator.itemgetter(1)  # of httpx's items; of a raw pair
_VALUE = operator.itemgetter(2)


def served_headers(provider: str, model: str) -> Served:
    """The headers that name who served a reply."""
    return ((_SERVED[0], provider), (_SERVED[1], model))


async def checked_reply(
    library: ModuleType,
    response: Any,
    outgoing: Any,
    endpoint: Endpoint | None,
    io: IO,
    scrub: KeyScrubber,
    served: Served,
    on_id: OnId | None = None,
) -> Any:
    """A whole reply below 400 the SDK may be given, its headers scrubbed of keys.

    A JSON body must parse; a 2xx reply of a known endpoint must be JSON of that
    endpoint's shape. Anything else raises MalformedResponseError (failover applies).

    Raises:
        ProviderError: The reply cannot be read, or is not what its endpoint sends.
    """
    content_type = _content_type(response.headers)
    shaped = endpoint if 200 <= response.status_code < 300 else None  # what it must be
    if shaped is None and "json" not in content_type:  # a redirect, audio, a file
        headers = _shown(library.Headers(response.headers), scrub, served=served)
        return rebuilt(library, response, headers)
    content = await io.read_and_close(response)
    if shaped is not None and "json" not in content_type:
        kind = content_type.partition(";")[0].strip() or "untyped"
        raise MalformedResponseError(
            f"a {kind} reply where JSON was expected ({len(content)} bytes)"
        )
    value = load_json(content)
    if shaped is not None:
        if not shaped.fits(value):
            raise MalformedResponseError(
                f"the reply's JSON is {_described(value)}, not an object with "
                + " or ".join(repr(key) for key in shaped.reply_keys)
            )
        if on_id is not None and shaped.stream_wire == "responses":
            _note_id(value, on_id)
    return refilled(library, response, content, outgoing, scrub, served, parsed=value)


def _content_type(headers: Any) -> str:
    """``headers.get("content-type", "")``, read without a pass over every header."""
    items = header_items(headers)
    if items is not None:
        names = list(map(_LOWERED, items))
        if names.count(b"content-type") == 1:
            value = items[names.index(b"content-type")][2]
            if value.isascii():
                return value.decode("ascii")
    found: str = headers.get("content-type", "")
    return found


def refilled(
    library: ModuleType,
    response: Any,
    content: bytes,
    request: Any,
    scrub: KeyScrubber,
    served: Served = (),
    *,
    parsed: Any = None,
) -> Any:
    """:func:`reread`, in place when reading filled the response with ``content``: the
    same response, its headers shown as to the SDK, without a second Response made.

    ``parsed``: ``content`` parsed already (``json.loads``' value, by the guard), which
    the first ``json()`` call without arguments returns rather than parse it again: the
    SDK's own (it is handed on, never kept nor read again here)."""
    try:
        filled = response.content is content
    except Exception:  # not read (a response of another kind): make it anew
        filled = False
    if not filled or not isinstance(response, library.Response):
        return reread(library, response, content, request, scrub, served)
    response.headers = _shown(response.headers, scrub, drop=BODY_HEADERS, served=served)
    response.request = request
    if parsed is not None and type(response) is library.Response:  # its json() as we know it
        response.json = _ParsedOnce(parsed, content)
    return response


class _ParsedOnce:
    """A reply's ``json()`` whose body the guard parsed: that value to the first call
    without arguments, ``json.loads`` of the body (as the library's own ``json()``) to
    any other. It holds the body and the value, not the response (no cycle to collect)."""

    __slots__ = ("_content", "_value")

    def __init__(self, value: Any, content: bytes) -> None:
        self._value, self._content = value, content

    def __call__(self, **kwargs: Any) -> Any:
        value, self._value = self._value, None
        if value is None or kwargs:
            return json.loads(self._content, **kwargs)
        return value


def read_response(
    library: ModuleType,
    status: int,
    headers: Any,
    content: bytes,
    request: Any,
    extensions: dict[str, Any] | None = None,
) -> Any:
    """A response of ``library`` with its body ``content`` read already, as
    ``library.Response(content=...)`` makes one, but without running the body through the
    library's decoders at once (the better part of building it): its ``content`` is set,
    and its stream, should a later version of the library read that instead, holds the
    same bytes. ``headers`` (which have none) gain a ``Content-Length``, as ``content=``
    adds one; the response is closed and its stream consumed, as reading it leaves them."""
    response = library.Response(
        status,
        headers=made_headers(library, [*headers, ("Content-Length", str(len(content)))]),
        stream=library.ByteStream(content),
        request=request,
        extensions=extensions,
    )
    response._content = content  # what reading it would have set
    response.is_stream_consumed = response.is_closed = True
    return response


def reread(
    library: ModuleType,
    response: Any,
    content: bytes,
    request: Any,
    scrub: KeyScrubber,
    served: Served = (),
) -> Any:
    """The response again, with a body already read (and decoded: no encoding headers)."""
    headers = library.Headers(response.headers)  # a copy: the reply keeps its own
    return library.Response(
        response.status_code,
        headers=_shown(headers, scrub, drop=BODY_HEADERS, served=served),
        content=content,
        request=request,
        extensions=response.extensions,
    )


def guard_stream(
    library: ModuleType,
    response: Any,
    endpoint: Endpoint | None,
    engine: Engine,
    chosen: tuple[RequestState, ModelEntry, AuthProfile],
    io: IO,
    idle: float,
    closed: Callable[[], bool],
    served: Served,
    on_id: OnId | None = None,
    resume: Resume | None = None,
) -> Any:
    """The reply with its stream decoded and watched by its endpoint's reader.

    A stream that ends without its terminator, goes ``idle`` seconds without a line, or
    cannot be read raises the library's RemoteProtocolError (ReadTimeout when idle) into
    the SDK, so it is never taken as complete, and counts as a failure of that endpoint
    (recorded on the engine's event loop, whichever thread iterates the stream). A stream
    of an endpoint the transport does not know passes unguarded.

    With ``resume`` (``on_stream_break="continue"``), a stream that breaks after some text
    (and before any tool call) is continued instead: ``resume`` gets the text the SDK has,
    and its bytes follow in the SDK's wire, so the SDK sees one stream. Each event is then
    passed on once whole, so that an in-band error event can be held back.
    """
    scrub = engine.scrubber()
    reader = endpoint.stream_reader(on_id) if endpoint is not None else None
    if reader is None or not 200 <= response.status_code < 300:
        headers = _shown(library.Headers(response.headers), scrub, served=served)
        return rebuilt(library, response, headers)
    assert endpoint is not None
    state, model, profile = chosen
    watch = _TerminatorWatch(
        reader, engine.scrubber, splicing=resume is not None, telling=endpoint.telling
    )

    def failed(error: ProviderError) -> Exception:
        if closed():
            return closed_error(in_flight=True)

        def record() -> None:
            engine.record_attempt(state, model, profile, error, state.started)
            engine.record_failure(state, model, profile, error)

        io.on_loop(record)
        timeout = isinstance(error, ProviderTimeoutError)
        kind = library.ReadTimeout if timeout else library.RemoteProtocolError
        raised: Exception = kind(error.message)
        if resume is not None and watch.can_continue:
            return _Break(error, raised)
        return raised

    guard = _StreamGuard(watch, idle, failed, closed, resume)
    # a copy: the reply's own headers tell how to decode its body as the guard reads it
    headers = _shown(library.Headers(response.headers), scrub, drop=BODY_HEADERS, served=served)
    return rebuilt(library, response, headers, _guarded_stream(library)(response, guard, io))


def shown(
    headers: Any, scrub: KeyScrubber, drop: tuple[str, ...] = (), served: Served = ()
) -> list[tuple[str, str]]:
    """``headers`` as the SDK may see them: every key scrubbed, the ``drop`` ones left out,
    the ``served`` ones added (in place of any the upstream sent)."""
    if served:
        drop += _SERVED
    items = [(k, v) for k, v in headers.multi_items() if k.lower() not in drop]
    block = "\n".join(f"{k}: {v}" for k, v in items)
    if scrub(block) != block:  # the usual case: one pass over them all shows no key
        items = [(scrub(k), scrub(v)) for k, v in items]
    items.extend(served)
    return items


def _shown(
    headers: Any, scrub: KeyScrubber, drop: tuple[str, ...] = (), served: Served = ()
) -> Any:
    """:func:`shown`, made in place when no header shows a key (the usual case): the
    ``drop`` ones taken out of ``headers`` and the ``served`` ones set, no header decoded
    or normalised again; ``headers`` itself is returned then, else :func:`shown`'s, as
    headers of the same class and text encoding (a header that is not ASCII stays as it
    was sent). A reply whose body is still to be read keeps its own headers: pass a copy.

    The check reads the raw bytes, each name and value once per scrubber
    (``KeyScrubber.changes_any``: one seen before in another reply costs a lookup);
    headers that are not all ASCII go to :func:`shown`.
    """
    items = header_items(headers)
    if items is None:
        raw = headers.raw
        shows_a_key = scrub.changes_any(map(_NAME, raw), map(_PAIR_VALUE, raw))
    else:
        shows_a_key = scrub.changes_any(map(_NAME, items), map(_VALUE, items))
    if shows_a_key:
        return type(headers)(shown(headers, scrub, drop, served), encoding=headers.encoding)
    if served:
        drop += _SERVED
    if items is None:
        names = b"\n".join(map(_NAME, raw)).lower().split(b"\n")
        for name in drop:
            if name.encode() in names:
                del headers[name]
        for name, value in served:
            headers[name] = value
        return headers
    # as ``del headers[name]`` and ``headers[name] = value`` do, without their loops
    names = list(map(_LOWERED, items))
    for lowered in _encoded(drop).intersection(names):  # the few present, found in C
        while lowered in names:
            at = names.index(lowered)
            del items[at], names[at]
    if served:  # (none left of these names: they were dropped)
        items.extend(_served_items(served, getattr(headers, "_encoding", None) or "utf-8"))
    return headers


@functools.lru_cache(maxsize=16)  # a few tuples of names
def _encoded(names: tuple[str, ...]) -> frozenset[bytes]:
    return frozenset(name.lower().encode() for name in names)


@functools.lru_cache(maxsize=256)  # per model served (and text encoding): a few
def _served_items(served: Served, encoding: str) -> tuple[tuple[bytes, bytes, bytes], ...]:
    """The ``served`` headers as a library's Headers keeps them (name, name lowered,
    value), encoded as ``headers[name] = value`` encodes them."""
    return tuple(
        (name.encode(encoding), name.encode(encoding).lower(), value.encode(encoding))
        for name, value in served
    )


def rebuilt(library: ModuleType, response: Any, headers: Any, stream: Any = None) -> Any:
    """``response`` with these headers (a list, or a Headers object, copied) and this body
    stream (by default, its own)."""
    return library.Response(
        response.status_code,
        headers=headers,
        stream=response.stream if stream is None else stream,
        extensions=response.extensions,
    )


def _note_id(value: Any, on_id: OnId) -> None:
    """Pass on the ``id`` of a Responses object."""
    response_id = value.get("id") if isinstance(value, dict) else None
    if isinstance(response_id, str) and response_id:
        on_id(response_id)


def _described(value: Any) -> str:
    if isinstance(value, dict):
        return "an object without them" if value else "an empty object"
    return "null" if value is None else f"a JSON {type(value).__name__}"


# -- what the transport knows of each endpoint ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the transport knows of one API endpoint (a POST to a path ending so).

    Attributes:
        reply_keys: A 2xx reply is a JSON object with at least one of these members.
        stream_wire: Whose reader guards its streams: a registered adapter's name, or
            ``"responses"`` (OpenAI Responses events); ``None``: streams pass unguarded.
        needs: A query parameter its streams need to be readable (Gemini's ``alt=sse``).
    """

    reply_keys: tuple[str, ...] = ()
    stream_wire: str | None = None
    needs: tuple[str, str] | None = None

    @property
    def telling(self) -> re.Pattern[bytes] | None:
        """What an event of its streams that can end the stream, fail it or name its
        response has in its bytes lowered (``None``: any event may); see ``_TELLING``."""
        return _TELLING.get(self.stream_wire) if self.stream_wire else None

    def fits(self, value: Any) -> bool:
        """Whether ``value`` (a parsed 2xx reply) has this endpoint's shape."""
        # (the keys' view tells in C, without a generator's frame per reply)
        return isinstance(value, dict) and not value.keys().isdisjoint(self.reply_keys)

    def stream_reader(self, on_id: OnId | None = None) -> StreamReader | None:
        """A fresh reader of one of its streams: the one ``ResilientClient`` reads that
        wire's streams with (``on_id`` is told a Responses stream's response ``id``)."""
        if self.stream_wire is None:
            return None
        if self.stream_wire == "responses":
            return StreamReader(_ResponsesStream(on_id), sse=True)
        adapter = providers.get_adapter(self.stream_wire)
        if adapter.stream_format not in ("sse", "ndjson"):
            return None  # binary frames (Bedrock's event stream) are no lines to read
        return StreamReader(adapter.stream_parser(), sse=adapter.stream_format == "sse")


_TELLING = {
    # OpenAI Chat: ``[DONE]``, an ``error`` member, a ``refusal`` (but ``"refusal":null``,
    # which OpenAI's opening chunk carries), a ``content_filter`` finish
    "openai": re.compile(rb'error|refusal(?!"\s*:\s*null)|content_filter|\[done\]|\\u'),
    # Anthropic Messages: the ``error`` event, ``message_delta`` (its stop reason may be a
    # refusal), ``message_stop`` (the terminator); the parser reads events by name
    "anthropic": re.compile(rb"error|message_delta|message_stop|\\u"),
    # OpenAI Responses: its ends, and the events naming the response (``_ResponsesStream``)
    "responses": re.compile(rb"error|response\.(?:completed|failed|incomplete|created)|\\u"),
}
"""Per stream wire, bytes one of which any event that tells the guard something has: the
terminator, an error or content-filter event, the response's id. An event without any
is a chunk of text or a tool call, or one the reader cannot read, whichever: the guard
has nothing to learn from it (it passes on all the same), so its reader skips it. A JSON
``\\u`` escape could spell a name, so an event with one is always read.

Each is searched for in the bytes lowered, where it finds what ``re.IGNORECASE`` would in
the bytes themselves (in bytes that flag folds ASCII letters alone, and lowering keeps
every offset) in a quarter of the time: with the flag, the search tries each alternative
at every byte."""


ENDPOINTS: tuple[tuple[str, Endpoint], ...] = (
    ("/chat/completions", Endpoint(("choices",), "openai")),
    ("/completions", Endpoint(("choices",), "openai")),
    ("/responses", Endpoint(("output",), "responses")),
    ("/messages", Endpoint(("content",), "anthropic")),
    (":generateContent", Endpoint(("candidates", "promptFeedback"))),
    (":streamGenerateContent", Endpoint((), "gemini", needs=("alt", "sse"))),
    ("/api/chat", Endpoint(("message",), "ollama-native")),
    ("/api/generate", Endpoint(("response",), "ollama-native")),
    ("/embeddings", Endpoint(("data",))),
    (":embedContent", Endpoint(("embedding",))),
    (":batchEmbedContents", Endpoint(("embeddings",))),
    ("/api/embed", Endpoint(("embeddings",))),
)
"""The endpoints whose replies the transport checks, by the end of their path (first match)."""


def endpoint_of(method: str, suffix: str) -> Endpoint | None:
    """The endpoint a request is for, or ``None`` when the transport does not know it."""
    if method != "POST":
        return None
    if "?" in suffix or "#" in suffix:
        parts = urlsplit(suffix)
        path, query = parts.path, parts.query
    else:
        path, query = suffix, ""
    endpoint = _endpoint_at(path)
    if endpoint is not None and endpoint.needs and endpoint.needs not in parse_qsl(query):
        return None
    return endpoint


@functools.lru_cache(maxsize=256)  # by path alone (a query may hold a key): a few paths
def _endpoint_at(path: str) -> Endpoint | None:
    for ending, endpoint in ENDPOINTS:
        if path.endswith(ending):
            return endpoint
    return None


_RESPONSES_ENDS = frozenset(
    ("response.completed", "response.failed", "response.incomplete", "error")
)


_RESPONSES_IDS = frozenset(("response.created", "response.completed"))
"""The Responses events whose ``response`` names the response's ``id``."""


class _ResponsesStream:
    """Reads an OpenAI Responses stream for its end: ``response.completed``, or
    ``response.failed``, ``response.incomplete`` or ``error`` (which the SDK reports).
    Responses streams send no ``[DONE]``. ``on_id`` is told the response's ``id`` (from
    ``response.created`` and ``response.completed``)."""

    def __init__(self, on_id: OnId | None = None) -> None:
        self.complete = False
        self._on_id = on_id

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """Note an event; its name is its ``event:`` line, else its payload's ``type``."""
        payload: Any = None
        if event == "message":  # unnamed: no ``event:`` line
            event = ""
        if not event or (self._on_id is not None and event in _RESPONSES_IDS):
            with contextlib.suppress(MalformedResponseError):
                payload = load_json(data)
            event = event or (payload.get("type", "") if isinstance(payload, dict) else "")
        if self._on_id is not None and event in _RESPONSES_IDS and isinstance(payload, dict):
            _note_id(payload.get("response"), self._on_id)
        self.complete = self.complete or event in _RESPONSES_ENDS
        return None


class _Break(Exception):
    """A stream broke where a continuation can take over; ``fallback`` is what to raise
    into the SDK when none can."""

    def __init__(self, error: ProviderError, fallback: Exception) -> None:
        super().__init__(error.message)
        self.error = error
        self.fallback = fallback


class _TerminatorWatch:
    """Reads a stream's lines as they pass: whether it ended properly, and no key in them.

    Each line goes to the endpoint's reader (to see the terminator: the reader of
    ``ResilientClient``'s streams, or of OpenAI Responses events); a line that carries an
    error (a provider may echo the key in it) is passed on with every key scrubbed. Bytes
    are passed on a whole line at a time.
    """

    # What splicing alone uses is read from the class until a splicing watch sets it: a
    # stream that is not to be continued pays nothing for it.
    _splicing = _sse = False
    _held: list[bytes] | tuple[()] = ()  # the lines of the event not yet whole
    kept: list[str] | tuple[()] = ()  # the text passed on
    tool_calls = False  # a tool call was passed on (no splice then)
    block: int | None = None  # the last content block opened (Anthropic's)
    broken: ProviderError | None = None  # an in-band error event, held back

    def __init__(
        self,
        reader: StreamReader,
        scrubber: Callable[[], KeyScrubber],
        *,
        splicing: bool = False,
        telling: re.Pattern[bytes] | None = None,
    ) -> None:
        self._reader = reader
        self._scrubber = scrubber  # asked only for a line to scrub: most streams have none
        self._ended_by_provider = False
        self._pending = b""
        # an SSE wire whose events that tell something are known by their bytes: the
        # reader is given those alone, each whole (the lines of the one still open kept)
        sse = getattr(reader, "_decoder", None) is not None
        self._telling = telling if sse else None
        self._open: list[bytes] = []
        if splicing:
            self._splicing = True
            self._sse = getattr(reader, "_decoder", None) is not None
            self._held = []
            self.kept = []

    @property
    def can_continue(self) -> bool:
        """Whether a continuation may take over: some text passed, no tool call."""
        return self._splicing and bool(self.kept) and not self.tool_calls

    @property
    def complete(self) -> bool:
        """Whether the stream ended as the wire format ends one: its terminator, or an error
        or content-filter event (which the SDK reads and raises or reports itself)."""
        return self._reader.complete or self._ended_by_provider

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the stream; return the whole lines to pass on.

        Raises:
            MalformedResponseError: A line is not UTF-8 text (bytes in an encoding that
                could not be decoded, say).
        """
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        if self._splicing:
            return self._spliced_lines(lines)
        if self._telling is not None:
            return self._told(lines) if lines else b""
        read = self._reader.line
        for index, raw in enumerate(lines):
            try:
                text = raw.rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedResponseError(
                    "the stream is not UTF-8 text (in an encoding that could not be decoded?)"
                ) from None
            try:
                read(text)
            except MalformedResponseError:  # a line the reader cannot read: only the end counts
                pass
            except ProviderError:  # an error or content-filter event: the SDK reads it itself
                self._ended_by_provider = True
            if b"error" in raw.lower():
                lines[index] = self._scrubbed(raw)
        return b"\n".join([*lines, b""]) if lines else b""

    def _told(self, lines: list[bytes]) -> bytes:
        """:meth:`feed` on a wire with ``telling`` bytes: the whole lines checked as one
        block (UTF-8, keys), and only the events that can tell something read."""
        block = b"\n".join(lines)
        try:
            block.decode("utf-8")  # a line break never falls inside a character
        except UnicodeDecodeError:
            raise MalformedResponseError(
                "the stream is not UTF-8 text (in an encoding that could not be decoded?)"
            ) from None
        telling = self._telling
        assert telling is not None
        held = self._open  # the lines of the event still open, from earlier blocks
        lowered = block.lower()  # (what ``telling`` is searched in)
        if held and telling.search(b"\n".join(held).lower()):
            start = 0  # the open event tells: read from the first line on
        else:
            found = telling.search(lowered)
            end = len(lines) if found is None else block.count(b"\n", 0, found.start())
            start = end  # the first line of the event that tells (or of the one left open)
            while start and lines[start - 1].rstrip(b"\r"):
                start -= 1
            if start:  # the open event ended before it, telling nothing
                held.clear()
            if found is None:
                held.extend(itertools.islice(lines, start, None))
                start = len(lines)
        if start < len(lines):
            self._read_events(lines, start)
        if b"error" in lowered:  # a provider may echo the key in an error
            block = b"\n".join(
                self._scrubbed(raw) if b"error" in raw.lower() else raw for raw in lines
            )
        return block + b"\n"

    def _read_events(self, lines: list[bytes], start: int) -> None:
        """Read the events of ``lines`` from ``start`` on that tell something, each whole;
        keep the lines of the one left open."""
        held, telling = self._open, self._telling
        assert telling is not None
        for raw in itertools.islice(lines, start, None):
            if raw.rstrip(b"\r"):
                held.append(raw)
                continue
            if held and telling.search(b"\n".join(held).lower()):
                for line in held:
                    self._read(line)
                self._read(b"")
            held.clear()

    def _read(self, raw: bytes) -> None:
        """Give the reader one line (UTF-8 already checked)."""
        try:
            self._reader.line(raw.rstrip(b"\r").decode("utf-8"))
        except MalformedResponseError:  # a line the reader cannot read: only the end counts
            pass
        except ProviderError:  # an error or content-filter event: the SDK reads it itself
            self._ended_by_provider = True

    def _spliced_lines(self, lines: list[bytes]) -> bytes:
        """:meth:`feed` when splicing: each event passed on once whole, its text noted;
        an error event held back (``broken``), with everything after it."""
        out: list[bytes] = []
        held = cast("list[bytes]", self._held)
        kept = cast("list[str]", self.kept)
        for raw in lines:
            if self.broken is not None:
                break
            text = _decoded(raw)
            try:
                chunk = self._reader.line(text)
            except MalformedResponseError:
                chunk = None
            except ContentFilteredError:
                self._ended_by_provider = True
                chunk = None
            except ProviderError as error:
                if self.can_continue:
                    self.broken = error
                    held.clear()
                    break
                self._ended_by_provider = True  # passed on: the SDK raises it itself
                chunk = None
            if chunk is not None:
                if chunk.text:
                    kept.append(chunk.text)
                if chunk.tool_calls:
                    self.tool_calls = True
            if b'"content_block_start"' in raw:
                self._note_block(text)
            held.append(self._scrubbed(raw) if b"error" in raw.lower() else raw)
            if not self._sse or not text.strip():  # the event is whole: pass it on
                out.extend(held)
                held.clear()
        return b"\n".join([*out, b""]) if out else b""

    def _note_block(self, line: str) -> None:
        with contextlib.suppress(MalformedResponseError):
            payload = load_json(line.partition(":")[2].strip())
            if isinstance(payload, dict) and isinstance(payload.get("index"), int):
                self.block = payload["index"]

    def rest(self) -> bytes:
        """The bytes after the last line break, at the stream's end."""
        rest, self._pending = self._pending, b""
        rest = self._scrubbed(rest) if rest else rest
        if self._held:  # splicing: an event the stream's end left unfinished
            held, self._held = self._held, []
            rest = b"\n".join([*held, rest])
        return rest

    def _scrubbed(self, raw: bytes) -> bytes:
        """A line with every key scrubbed, in its JSON payload's decoded strings too."""
        line = raw.decode("utf-8", "surrogateescape")
        scrub = self._scrubber()
        if line.startswith("data:"):  # an SSE event's payload
            line = "data: " + scrub.in_json(line[5:].strip())
        elif line.lstrip().startswith("{"):  # an NDJSON line
            line = scrub.in_json(line)
        else:
            line = scrub(line)
        return line.encode("utf-8", "surrogateescape")


class _StreamGuard:
    """One stream's checks as the SDK reads it, sync or async: its terminator and keys
    (``watch``), the time since its last whole line, and the transport being closed.

    ``failed`` records a failure of the stream's endpoint and returns what to raise (a
    :class:`_Break` when ``resume`` may continue the stream).
    """

    def __init__(
        self,
        watch: _TerminatorWatch,
        idle: float,
        failed: Callable[[ProviderError], Exception],
        closed: Callable[[], bool],
        resume: Resume | None = None,
    ) -> None:
        self._watch = watch
        self._idle = idle
        self._failed = failed
        self._closed = closed
        self._progress = time.monotonic()
        self.resume = resume

    def idle_left(self) -> float:
        """Seconds the stream may still go without a whole line."""
        return self._progress + self._idle - time.monotonic()

    def passed(self, chunk: bytes) -> bytes:
        """The whole lines of the next decoded ``chunk``, to pass on."""
        if self._closed():
            raise closed_error(in_flight=True)
        watch = self._watch
        try:
            lines = watch.feed(chunk)
        except MalformedResponseError as error:
            raise self._failed(error) from None
        if watch.broken is not None:
            if lines:  # what came whole before the error event goes first
                self._broken_after = lines
            raise self._failed(watch.broken)
        if lines:
            self._progress = time.monotonic()
        elif self.idle_left() < 0:  # bytes drip in, but no line ends
            raise self._failed(self._idle_error())
        return lines

    _broken_after = b""

    def read_failed(self, exc: Exception) -> Exception:
        """What to raise when reading the stream raised ``exc`` (a timeout: it was idle)."""
        error = classify_exception(exc) or MalformedResponseError(
            f"the stream could not be read ({type(exc).__name__})"
        )
        if isinstance(error, ProviderTimeoutError):
            error = self._idle_error()
        return self._failed(error)

    def end(self) -> bytes:
        """The stream's last bytes, once it ended; raises when it ended before its terminator."""
        rest = self._watch.rest()
        if not self._watch.complete:
            raise self._failed(
                MalformedResponseError("the stream ended before its terminator (a truncated reply)")
            )
        return rest

    def before_break(self) -> bytes:
        """Whole events read with the error event that broke the stream (passed on first)."""
        lines, self._broken_after = self._broken_after, b""
        return lines

    async def spliced(self, brk: _Break) -> Spliced:
        """The continuation after ``brk``; raises ``brk.fallback`` when none can be made."""
        watch = self._watch
        assert self.resume is not None
        found = await self.resume("".join(watch.kept), watch.block, brk.error)
        if found is None:
            raise brk.fallback
        return found

    def _idle_error(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"the stream was idle for more than {self._idle:g}s (stream_idle_timeout)"
        )


def _decoded(raw: bytes) -> str:
    """One line of a stream as text.

    Raises:
        MalformedResponseError: It is not UTF-8.
    """
    try:
        return raw.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponseError(
            "the stream is not UTF-8 text (in an encoding that could not be decoded?)"
        ) from None


@functools.cache  # one class per library (httpx, httpx2), not one per stream
def _guarded_stream(library: ModuleType) -> Any:
    """A byte-stream class of ``library`` that passes a reply's decoded body through a
    :class:`_StreamGuard`. It reads a sync reply (a sync client's) or an async one alike.
    """

    class Guarded(library.SyncByteStream, library.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, response: Any, guard: _StreamGuard, io: IO) -> None:
            self._response, self._guard, self._io = response, guard, io
            self._chunks: Any = None
            self._spliced: Spliced | None = None

        def __iter__(self) -> Iterator[bytes]:
            if self._spliced is not None:
                yield from self._splice_sync(self._spliced)
                return
            try:
                yield from self._read_sync()
            except _Break as brk:
                if lines := self._guard.before_break():
                    yield lines
                self._close_upstream()
                spliced = self._spliced = self._io.call(functools.partial(self._guard.spliced, brk))
                yield from self._splice_sync(spliced)

        def _read_sync(self) -> Iterator[bytes]:
            if self._chunks is None:  # once: iterated again (an SDK draining it), it goes on
                self._chunks = self._response.iter_bytes()  # decoded, whatever the encoding
            chunks = self._chunks
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as exc:  # a read timeout (the stream was idle), a reset
                    raise self._guard.read_failed(exc) from None
                if lines := self._guard.passed(chunk):
                    yield lines
            if rest := self._guard.end():
                yield rest

        def _splice_sync(self, spliced: Spliced) -> Iterator[bytes]:
            while (data := self._io.call(spliced.next)) is not None:
                yield data

        def _close_upstream(self) -> None:
            with contextlib.suppress(Exception):
                if self._chunks is not None:
                    self._chunks.close()
                self._response.close()

        def close(self) -> None:
            if self._spliced is not None:
                spliced = self._spliced
                with contextlib.suppress(Exception):
                    self._io.call(spliced.aclose)
            if self._chunks is not None:
                self._chunks.close()
            self._response.close()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            # the reply read here, in this generator itself (each chunk passes through one
            # generator, not a second one reading for it)
            if self._spliced is None:
                if self._chunks is None:
                    self._chunks = self._response.aiter_bytes()
                chunks, guard = self._chunks, self._guard
                try:
                    while True:
                        try:
                            scope = scope_within(max(guard.idle_left(), 0))
                            with scope:
                                chunk = await chunks.__anext__()
                            if scope.cancelled_caught:  # only its deadline cancels it
                                raise TimeoutError
                        except StopAsyncIteration:
                            break
                        except Exception as exc:  # TimeoutError: the stream was idle; a reset
                            raise guard.read_failed(exc) from None
                        if lines := guard.passed(chunk):
                            yield lines
                    if rest := guard.end():
                        yield rest
                    return
                except _Break as brk:
                    if lines := guard.before_break():
                        yield lines
                    with contextlib.suppress(Exception):
                        await self._aclose_upstream()
                    self._spliced = await guard.spliced(brk)
            spliced = self._spliced
            while (more := await spliced.next()) is not None:
                yield more

        async def _aclose_upstream(self) -> None:
            if self._chunks is not None:
                await self._chunks.aclose()
            await self._response.aclose()

        async def aclose(self) -> None:
            if self._spliced is not None:
                await self._spliced.aclose()
            await self._aclose_upstream()

    return Guarded
