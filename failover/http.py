"""The one seam through which the client sends HTTP: ``Sender.open(request, timeout)``.

The default sender is httpx (``HttpxSender`` also takes an ``httpx2.AsyncClient``); any
object with the same ``open`` method (an aiohttp-based one, a test double) can be plugged in
without touching the policy or the adapters.
Lower-level exceptions are translated here, at the boundary, into ProviderErrors.

httpcore (httpx's pool) is written for anyio's cancellation. It shields its releases with
anyio cancel scopes, which asyncio's own ``task.cancel()`` (``asyncio.wait_for``,
``asyncio.timeout``, a server cancelling its handler) passes straight through: landing in
the lock a release takes first, it leaves the request in the pool and its connection
active, for good. And it awaits outside its cleanup handlers: a cancellation landing after a
connection is made or assigned, before the request's first use of it, leaves that connection
neither idle nor closed, for good (an anyio scope's too, in the turn of the event loop where
the connect completes; httpcore 1.0.9, encode/httpcore#1093). Each holds a pool slot. So on
asyncio ``HttpxSender`` sends, and reads a plain reply, in a task of its own that only an
anyio scope cancels, and closes a streamed reply in a task of its own; after a failed send it
reclaims what the pool was left with.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import importlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from encodings.utf_8 import IncrementalDecoder as _Utf8Decoder
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, Union, cast

import anyio
import httpx

from failover._tasks import _finishing, cancel_scope, finish_even_if_cancelled, on_asyncio
from failover.errors import (
    PoolExhaustedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from failover.providers.base import HttpRequest

if TYPE_CHECKING:
    import httpx2

__all__ = ["HttpxSender", "Reply", "Sender"]

T = TypeVar("T")

AnyHttpxClient = Union[httpx.AsyncClient, "httpx2.AsyncClient"]


class Reply(Protocol):
    """A reply whose body has not been read yet (the shape of ``httpx.Response``)."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The reply headers."""
        ...

    async def aread(self) -> bytes:
        """Read the whole body."""
        ...

    def aiter_text(self) -> AsyncIterator[str]:
        """Iterate over the body as text as it arrives."""
        ...

    def aiter_lines(self) -> AsyncIterator[str]:
        """Iterate over the body line by line as it arrives."""
        ...


class Sender(Protocol):
    """Sends one request and yields the reply, its body still unread.

    A sender whose I/O is written for asyncio's own cancellation (a plain ``task.cancel()``
    anywhere is safe: aiohttp) may set ``asyncio_cancel_safe = True``; the engine then
    bounds its attempts with asyncio's cheaper timer instead of anyio's cancel scope.

    What ``open`` returns may tell, as ``exits_at_once``, that leaving it now waits for
    nothing (its reply released already, or released without waiting): a stream read to
    its end then leaves it in place. Without it, every release runs in a task of its own
    that the caller's cancellation cannot cut short.
    """

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Reply]:
        """Send ``request``; raise ProviderTimeoutError/ProviderConnectionError on failure.

        The caller bounds the whole attempt (the engine runs it in a cancel scope of
        ``timeout`` seconds), so a sender adds only what that scope cannot: ``timeout``
        bounds connecting, and ``read_timeout``, when given, each read (a stream's idle time
        between chunks, which goes on after the attempt). A plain reply gets no per-read
        timer of its own: on loopback each timer costs as much as the client's own work.
        """
        ...


#: httpx's own keep-alive defaults (20 idle connections, 5 s). A larger idle pool costs CPU on
#: every request: httpcore 1.x's pool, at each request and each release, probes every idle
#: connection's socket and counts the pool once per idle connection (quadratic). 64
#: concurrent requests from a cold pool open 64 connections; with 256 kept alive for 30 s they
#: all stayed, and both the client and bare httpx ran at ~60 req/s instead of ~300 until
#: they expired. With 20, surplus idle connections are closed at once, as in bare httpx.
DEFAULT_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=20, keepalive_expiry=5)


def default_http_client() -> httpx.AsyncClient:
    """An httpx client with httpx's keep-alive pool (up to 512 connections); no redirects.

    Many concurrent *slow* calls (a real provider) keep more than 20 connections busy, and
    each one beyond 20 is closed when its reply ends; to keep them (TLS handshakes saved),
    pass your own ``httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=N))``.
    """
    return httpx.AsyncClient(limits=DEFAULT_LIMITS, follow_redirects=False, timeout=None)


class HttpxSender:
    """Sends through an ``httpx.AsyncClient`` (any transport: default, httpx-aiohttp, mock).

    An ``httpx2.AsyncClient`` works too: its pool (httpcore2) assigns requests to
    connections without httpcore 1.x's repeated scans, ~2.5x the throughput of httpx at 64
    concurrent requests on loopback (see the README's Performance section).

    On asyncio a plain reply (no ``read_timeout``) comes read whole, so that no cancellation
    of the caller's can reach httpcore (see the module's docstring).

    A client with no auth, params, cookies or event hooks of its own (the default one) is
    sent through on its transport directly, as ``client.send`` would send it but without
    the layers that would find nothing to do: its headers, mounts, proxies, pool and limits
    apply, and httpx's INFO line is logged. The cookies its replies set are not kept: they
    would link the requests of different keys. A client with any of those settings (or
    that has come to hold a cookie, shared with other code) is sent through ``client.send``.

    The sender keeps each distinct URL parsed, and each distinct set of request headers
    merged with the client's own (while those are unchanged), up to 256 of each: the
    headers hold the keys, as the profiles do, and nothing shows them.
    """

    def __init__(self, client: AnyHttpxClient) -> None:
        self.client = client
        library = library_of(client)
        self._library = library  # httpx or httpx2: their exceptions, their Timeout
        self._errors = _Errors(
            library.TimeoutException, library.TransportError, library.PoolTimeout
        )
        self._urls: dict[str, Any] = {}  # see _parsed_url
        # see _merged_headers: a request's header items -> (the client's then, merged)
        self._merged: dict[tuple[tuple[str, str], ...], tuple[list[Any], Any]] = {}

    def _parsed_url(self, url: str) -> Any:
        """``library.URL(url)``, parsed once per distinct URL and kept (up to
        ``_URLS_KEPT``): a request made with a parsed URL parses nothing, where parsing its
        string is about half the work of making one. A URL is immutable, so one serves
        every request to it."""
        urls = self._urls
        parsed = urls.get(url)
        if parsed is None:
            if len(urls) >= _URLS_KEPT:  # a client of many distinct URLs: start afresh
                urls.clear()
            parsed = urls[url] = self._library.URL(url)
        return parsed

    def _timeout(self, timeout: float, read_timeout: float | None) -> dict[str, float | None]:
        """The httpx timeout for these bounds, as a request's ``timeout`` extension (what
        ``build_request`` would make of an ``httpx.Timeout`` on every request).

        An attempt bounded by a request's deadline gets what is left of it, a new value
        each time: from a second up it is rounded to a sixteenth of a second, so that such
        bounds share a few extensions. Connecting is bounded by the bound rounded up (the
        attempt's own scope, which ends at the exact bound, still comes first), the pool's
        wait by ``_POOL_SHARE`` of it rounded down (it still ends a tenth before the bound).
        """
        pool = timeout * _POOL_SHARE
        if 1.0 <= timeout < math.inf:
            timeout = math.ceil(timeout / _TIMEOUT_GRID) * _TIMEOUT_GRID
            pool = (timeout - _TIMEOUT_GRID) * _POOL_SHARE
        made = _httpx_timeout(self._library, timeout, read_timeout, pool)
        return cast("dict[str, float | None]", made)

    def _merged_headers(self, client: Any, headers: Mapping[str, str]) -> Any:
        """``client._merge_headers(headers)``, kept (up to ``_HEADERS_KEPT``) with the
        client's own headers it was made of, and used while those are unchanged (a request
        copies them): merging normalises every header anew (about a third of the work of
        making a request), and the headers of a key's requests to a model are the same each
        time. Kept only here: the entries hold keys, as the profiles do, and nothing shows
        them."""
        key = tuple(headers.items())
        merged = self._merged
        kept = merged.get(key)
        if kept is None or kept[0] != client.headers._list:
            if len(merged) >= _HEADERS_KEPT:
                merged.clear()
            kept = merged[key] = (list(client.headers._list), client._merge_headers(headers))
        return kept[1]

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        """Send ``request`` on entering; yield the streamed reply; close it on exit."""
        return _Exchange(self, request, timeout, read_timeout)


_HEADERS_KEPT = 256
"""How many distinct sets of merged request headers an HttpxSender keeps (one per key and
provider, mostly)."""

_URLS_KEPT = 256
"""How many distinct parsed URLs an HttpxSender keeps (one per model and endpoint, mostly)."""

_POOL_SHARE = 0.9
"""The share of an attempt's time that may go to waiting for a free pooled connection."""

_TIMEOUT_GRID = 1 / 16
"""What an attempt's bound of a second or more is rounded to in httpx's timeouts (seconds)."""


@functools.lru_cache(maxsize=64)  # deadlines make many distinct values: stay small
def _httpx_timeout(
    library: ModuleType, timeout: float, read_timeout: float | None, pool: float
) -> Any:
    """The ``library.Timeout`` for these bounds as a ``timeout`` extension (its
    ``as_dict()``), made once per distinct set. ``pool``: waiting for our own pool ends a
    little before the attempt's scope would, so that it surfaces as PoolExhaustedError,
    never as the provider's timeout."""
    if read_timeout is None:  # a plain reply: the attempt's scope is its bound
        return library.Timeout(None, connect=timeout, pool=pool).as_dict()
    return library.Timeout(timeout, read=read_timeout, pool=pool).as_dict()


@functools.cache
def _library_named(module: str) -> ModuleType:
    return importlib.import_module(module.partition(".")[0])


def library_of(thing: Any) -> ModuleType:
    """The module (``httpx`` or ``httpx2``) whose object (client, request) ``thing`` is."""
    return _library_named(type(thing).__module__)


class _Exchange:
    """One request's context manager (a plain class: cheaper than a generator-based one)."""

    __slots__ = ("_read_timeout", "_request", "_response", "_sender", "_timeout")

    def __init__(
        self, sender: HttpxSender, request: HttpRequest, timeout: float, read_timeout: float | None
    ) -> None:
        self._sender = sender
        self._request = request
        self._timeout = timeout
        self._read_timeout = read_timeout
        self._response: Any = None  # an httpx or httpx2 Response

    async def __aenter__(self) -> _TranslatingReply:
        sender = self._sender
        client: Any = sender.client  # httpx or httpx2: the same calls
        # read-only to httpx and httpcore: one made per pair of bounds is shared
        extensions = {"timeout": sender._timeout(self._timeout, self._read_timeout)}
        built, direct = _outgoing(client, sender, self._request, extensions)
        errors = sender._errors
        try:  # never follow a redirect, whatever the client says: a key must not travel
            if not on_asyncio():  # trio: every cancellation is a scope's
                response = await _send(client, built, direct, sender._library)
            else:
                whole = self._read_timeout is None  # a plain reply: read whole as it is sent
                response = await _send_apart(client, built, direct, sender._library, whole)
        except errors.pool:  # our own pool, not the provider: no key or model is to blame
            raise PoolExhaustedError(
                f"no free connection in this client's HTTP pool within {self._timeout:.1f}s: "
                "close streams you leave early (async with client.stream(...)) or allow "
                "more connections"
            ) from None
        except errors.timeout as exc:
            raise ProviderTimeoutError(f"no reply within {self._timeout:.1f}s") from exc
        except errors.transport as exc:
            raise ProviderConnectionError(f"{type(exc).__name__}: {exc}") from exc
        self._response = response
        return _TranslatingReply(response, errors)

    @property
    def exits_at_once(self) -> bool:
        """Whether leaving waits for nothing (see :class:`Sender`): no reply, or one httpx
        has closed already (read to its end)."""
        return self._response is None or bool(self._response.is_closed)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        response = self._response
        # a reply read to its end is closed already (httpx closes it as the body ends):
        # nothing to give back; otherwise give it back even if cancelled (on asyncio its
        # stream, a _ReleasedApart, closes in a task of its own)
        if response is not None and not response.is_closed:
            if not on_asyncio():
                await finish_even_if_cancelled(response.aclose)
            else:
                await response.aclose()


async def _send_apart(
    client: Any, request: Any, direct: Any, library: ModuleType, whole: bool
) -> Any:
    """The send (:func:`_send`) in a task that only an anyio cancel scope cancels.

    The caller's cancellation, asyncio's own or a scope's, becomes that scope's (httpcore
    then cleans up as it is written to) and still propagates at once; a reply that arrives
    all the same is closed. A ``whole`` reply is read there too (httpx closes it as its
    body ends); a streamed one closes apart as well (``_ReleasedApart``).
    """
    sending = _Sending(client, request, direct, library, whole)
    try:
        response = await sending.reply
    except asyncio.CancelledError:
        sending.abandon()
        raise
    if not whole:
        response.stream = _released_apart(library)(response.stream)
    return response


class _Sending:
    """One send (:func:`_send`) in a task and a cancel scope of its own; ``reply`` is its
    outcome."""

    __slots__ = ("client", "direct", "library", "reply", "request", "scope", "task", "whole")

    def __init__(
        self, client: Any, request: Any, direct: Any, library: ModuleType, whole: bool
    ) -> None:
        self.client = client
        self.request = request
        self.direct = direct
        self.library = library
        self.whole = whole
        self.scope = cancel_scope()
        loop = asyncio.get_running_loop()
        self.reply: asyncio.Future[Any] = loop.create_future()
        self.task = loop.create_task(_settle(self._exchange(), self.reply))

    async def _exchange(self) -> Any:
        """The reply, read whole if asked; closed at once if its caller has gone."""
        with self.scope:
            response = await _send(self.client, self.request, self.direct, self.library)
            try:
                if self.whole:
                    await response.aread()
            finally:
                if not response.is_closed and (self.whole or self.reply.cancelled()):
                    with anyio.CancelScope(shield=True):  # cut short: give it back
                        await response.aclose()
            return response
        return None  # abandoned

    def abandon(self) -> None:
        """The caller was cancelled: stop the send the anyio way, or close what it sent."""
        reply = self.reply
        reply.cancel()  # whatever comes now, no one takes it
        if reply.cancelled():
            self.scope.cancel()
            _keep(self.task)
        elif reply.exception() is None:  # it came as the caller was cancelled: never taken
            _keep(asyncio.get_running_loop().create_task(reply.result().aclose()))


def _outgoing(
    client: Any, sender: HttpxSender, request: HttpRequest, extensions: dict[str, Any]
) -> tuple[Any, Any]:
    """The library's request for ``request``, and the transport to send it on directly
    (``None``: through ``client.send``; see :class:`HttpxSender`)."""
    if client.is_closed:  # its transport would open new connections all the same
        raise RuntimeError("HttpxSender's HTTP client is closed")
    url = sender._parsed_url(request.url)
    hooks = client.event_hooks
    if client.auth or client.params or client.cookies or any(hooks.values()):
        built = client.build_request(
            request.method,
            url,
            headers=request.headers,
            content=request.body,
            extensions=extensions,
        )
        return built, None
    # what build_request makes of it for such a client (an AuthProfile's URL carries no
    # credentials, so no basic auth either), without its cookie and parameter merging
    built = sender._library.Request(
        request.method,
        url,
        headers=sender._merged_headers(client, request.headers),
        content=request.body,
        extensions=extensions,
    )
    return built, client._transport_for_url(built.url)


async def _send(client: Any, request: Any, direct: Any, library: ModuleType) -> Any:
    """``client.send(request)``, streamed, or the same on the ``direct`` transport (its
    exceptions naming the request, its INFO line logged); a send that fails leaves no
    orphan in the pool."""
    try:
        if direct is None:
            return await client.send(request, stream=True, follow_redirects=False)
        try:
            response = await direct.handle_async_request(request)
        except library.RequestError as exc:
            exc.request = request
            raise
        response.request = request
        logger = _logger_of(library)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _reclaim_orphans(client, request)
        raise


@functools.cache
def _logger_of(library: ModuleType) -> logging.Logger:
    """The logger ``library`` (httpx or httpx2) logs its requests on."""
    return logging.getLogger(library.__name__)


async def _reclaim_orphans(client: Any, request: Any) -> None:
    """Close the connections in httpcore's pool that no request uses and none ever will.

    A cancellation that lands between the pool's giving a request a new connection and the
    request's first use of it (an anyio scope's too, in the loop iteration where the connect
    completes) leaves that connection neither idle nor closed (encode/httpcore#1093, open
    in httpcore 1.0.9): the pool would keep its slot for good. Only pools shaped like
    httpcore's (its ``_requests`` and ``_connections``) are looked at.
    """
    pool: Any = getattr(client._transport_for_url(request.url), "_pool", None)
    requests = getattr(pool, "_requests", None)
    connections = getattr(pool, "_connections", None)
    if requests is None or connections is None:
        return
    used = {pooled.connection for pooled in requests}
    orphans = [
        connection
        for connection in connections
        if connection not in used and not connection.is_idle() and not connection.is_closed()
    ]
    if orphans:
        for connection in orphans:
            connections.remove(connection)
        # the freed slots go to the requests waiting for one, as after any release
        await pool._close_connections(orphans + pool._assign_requests_to_connections())


def _keep(task: asyncio.Task[Any]) -> None:
    """Hold ``task`` until it ends (asyncio keeps only weak references to tasks)."""
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


class _ReleasedApart:
    """A reply's body whose ``aclose`` (the connection's release) runs in a task of its own.

    httpx closes a reply in the reader's task as its body ends; asyncio's cancellation
    landing there would stop httpcore's release half-way (see the module's docstring).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[bytes]:
        iterator: AsyncIterator[bytes] = self._stream.__aiter__()
        return iterator

    async def aclose(self) -> None:
        """Release the connection; the caller's cancellation propagates, the release goes on."""
        loop = asyncio.get_running_loop()
        released = loop.create_future()
        task = loop.create_task(_settle(self._stream.aclose(), released))
        try:
            await released
        except asyncio.CancelledError:
            _keep(task)
            raise


async def _settle(work: Awaitable[Any], outcome: asyncio.Future[Any]) -> None:
    """Await ``work`` and hand its outcome to ``outcome``, unless that was cancelled meanwhile.

    ``asyncio.shield``'s effect, but whoever awaits ``outcome`` resumes one turn of the
    event loop sooner. Whatever ``work`` ends with reaches ``outcome`` (a cancellation as its
    cancel), so whoever awaits it never waits for good; the task itself raises only its
    cancellation and what stops the loop (an interrupt, an exit).
    """
    try:
        result = await work
    except BaseException as exc:
        if not outcome.done():
            if isinstance(exc, asyncio.CancelledError):
                outcome.cancel()
            else:
                outcome.set_exception(exc)
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
            raise
    else:
        if not outcome.done():
            outcome.set_result(result)


@functools.cache
def _released_apart(library: ModuleType) -> type[_ReleasedApart]:
    """``_ReleasedApart`` as a ``library.AsyncByteStream``, the type httpx reads bodies from."""
    return type("ReleasedApart", (_ReleasedApart, library.AsyncByteStream), {})


class _Errors(NamedTuple):
    """The library's (httpx or httpx2) timeout, transport and pool-timeout exception classes."""

    timeout: type[Exception]
    transport: type[Exception]
    pool: type[Exception]


class _TranslatingReply:
    """An httpx.Response whose body reads translate httpx errors into ProviderErrors."""

    __slots__ = ("_errors", "_response")

    def __init__(self, response: Any, errors: _Errors) -> None:
        self._response: httpx.Response = response  # or an httpx2.Response, the same shape
        self._errors = errors

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def aread(self) -> bytes:
        try:
            return await self._response.aread()
        except self._errors.timeout as exc:
            raise ProviderTimeoutError("timed out reading the reply") from exc
        except self._errors.transport as exc:
            raise ProviderConnectionError(f"connection lost: {type(exc).__name__}") from exc

    def aiter_text(self) -> AsyncIterator[str]:
        response = self._response
        if (
            type(response) is not httpx.Response  # httpx2's: its own reading, in one layer
            or response.is_stream_consumed
            or response.is_closed
            or hasattr(response, "_content")  # read already (a reply made with its content)
        ):
            response.encoding = LOSSLESS_UTF8
            return _translated(response.aiter_text(), self._errors)
        return _body_text(response, self._errors)

    def aiter_lines(self) -> AsyncIterator[str]:
        self._response.encoding = LOSSLESS_UTF8
        return _translated(self._response.aiter_lines(), self._errors)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return _translated(self._response.aiter_bytes(), self._errors)


LOSSLESS_UTF8 = "failover-utf-8-lossless"
"""The codec a stream's text is read with: UTF-8 whose undecodable bytes come through as
lone surrogates (``surrogateescape``), which the adapters refuse as malformed, rather than
as U+FFFD (httpx's ``errors="replace"``), which a model may really send. Event streams and
NDJSON are UTF-8 whatever their headers say."""


class _LosslessDecoder(codecs.BufferedIncrementalDecoder):
    def _buffer_decode(self, data: Any, errors: str, final: bool) -> tuple[str, int]:
        return codecs.utf_8_decode(data, "surrogateescape", final)


def _find_lossless(name: str) -> codecs.CodecInfo | None:
    if name.replace("_", "-") != LOSSLESS_UTF8:
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        utf8.encode, utf8.decode, incrementaldecoder=_LosslessDecoder, name=LOSSLESS_UTF8
    )


codecs.register(_find_lossless)


async def _body_text(response: httpx.Response, errors: _Errors) -> AsyncIterator[str]:
    """What ``aiter_text`` gives of an unread httpx reply (as :data:`LOSSLESS_UTF8`), read from
    its stream in one generator, httpx's errors translated into ProviderErrors.

    httpx reads it through three generators (``aiter_text`` over ``aiter_bytes`` over
    ``aiter_raw``), each entering a context and making a decoder or a chunker that, without
    a chunk size, hands each piece on whole: their work per stream and per piece, less the
    content's decoding (Content-Encoding) and the text's. As ``aiter_raw`` does, the reply
    is marked consumed, counts the bytes it downloads, names its request on httpx's errors,
    and is closed at the body's end (its connection goes back).
    """
    content = response._get_content_decoder()
    text = _Utf8Decoder("surrogateescape")
    stream: Any = response.stream  # an AsyncByteStream: the client is an AsyncClient
    response.is_stream_consumed = True
    try:
        async for raw in stream:
            response._num_bytes_downloaded += len(raw)
            if piece := text.decode(content.decode(raw)):
                yield piece
        tail = text.decode(content.flush(), True)
        await response.aclose()
    except httpx.RequestError as exc:
        exc.request = response.request  # as httpx's own reading names it
        if (failure := _stream_failure(exc, errors)) is None:
            raise
        raise failure from exc
    if tail:
        yield tail


async def _translated(pieces: AsyncIterator[T], errors: _Errors) -> AsyncIterator[T]:
    """Pass a stream's pieces on, translating httpx's errors into ProviderErrors."""
    try:
        async for piece in pieces:
            yield piece
    except Exception as exc:
        if (failure := _stream_failure(exc, errors)) is None:
            raise
        raise failure from exc


def _stream_failure(exc: Exception, errors: _Errors) -> ProviderError | None:
    """The ProviderError of httpx's error ``exc`` while a stream is read (a timeout, or the
    connection lost); ``None`` for any other error (it goes on as it is)."""
    if isinstance(exc, errors.timeout):
        return ProviderTimeoutError("the stream stalled")
    if isinstance(exc, errors.transport):
        return ProviderConnectionError(f"stream lost: {type(exc).__name__}")
    return None
