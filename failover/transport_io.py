"""The SDK transport's I/O: how one SDK request's HTTP calls are made and their replies read.

An async client's calls go through the inner async transport on the caller's event loop
(:class:`AsyncIO`); a sync client's through the inner sync transport, in worker threads of
the event loop thread the transport owns (:class:`ThreadIO`). :class:`IOSender` is a
``Sender`` (see ``failover.http``) over either, through which a translated step's request,
built by the serving provider's adapter, goes (see ``failover.chat_calls``).
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import math
import operator
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from types import ModuleType, TracebackType
from typing import Any, Protocol, TypeVar, cast

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal

from failover._tasks import finish_even_if_cancelled
from failover.classify import classify_exception, header_items
from failover.errors import ConfigError, MalformedResponseError, ProviderError
from failover.providers.base import HttpRequest
from failover.transport_rewrite import made_headers

__all__ = [
    "IO",
    "AsyncIO",
    "AsyncInner",
    "IOSender",
    "SyncInner",
    "ThreadIO",
    "closed_error",
    "provider_error",
    "widen_worker_threads",
]

_LOWERED = operator.itemgetter(1)
_WORKER_THREADS = 100  # sync HTTP calls in flight at once (httpx's default pool size)
T = TypeVar("T")


class AsyncInner(Protocol):
    """An async httpx or httpx2 transport."""

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request``; return the reply, its body unread."""
        ...

    async def aclose(self) -> None:
        """Close its connections."""
        ...


class SyncInner(Protocol):
    """A sync httpx or httpx2 transport."""

    def handle_request(self, request: Any) -> Any:
        """Send ``request``; return the reply, its body unread."""
        ...

    def close(self) -> None:
        """Close its connections."""
        ...


class IO(Protocol):
    """How the failover loop sends a request and reads a reply, for one kind of client."""

    async def send(self, request: Any) -> Any:
        """Send ``request``; return the reply, its body unread."""
        ...

    async def read_and_close(self, response: Any, provider: str = "", model: str = "") -> bytes:
        """Read a reply's whole body (decoded), then close it.

        Raises:
            ProviderError: The body cannot be read: the library's error as the attempt's
                (naming ``provider`` and ``model``), or MalformedResponseError.
        """
        ...

    def iterate(self, response: Any, kind: str) -> AsyncIterator[str]:
        """A reply's body as it arrives: ``"text"`` pieces or ``"lines"``."""
        ...

    async def close(self, response: Any) -> None:
        """Close a reply (release its connection)."""
        ...

    def on_loop(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the engine's event loop (from whichever thread reads)."""
        ...

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function`` on the engine's event loop from a sync client's thread."""
        ...


class AsyncIO:
    """I/O of an async client: the inner async transport, on the caller's event loop.

    It keeps nothing of a request's, so one serves every request over ``inner``.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: AsyncInner) -> None:
        self.inner = inner

    def send(self, request: Any) -> Coroutine[Any, Any, Any]:
        """Send ``request`` through the inner transport: its own coroutine, which the caller
        awaits (no frame of ours for each of its suspensions to pass through)."""
        return self.inner.handle_async_request(request)

    async def read_and_close(self, response: Any, provider: str = "", model: str = "") -> bytes:
        """Read the whole body, then close the reply (see :meth:`IO.read_and_close`)."""
        try:
            content: bytes = await response.aread()
            await response.aclose()
        except Exception as exc:
            raise _read_failure(exc, provider, model) from None
        return content

    def iterate(self, response: Any, kind: str) -> AsyncIterator[str]:
        """The body's ``aiter_text`` or ``aiter_lines``: text decoded as ``aiter_text``
        decodes it, from ``aiter_bytes``, when its encoding is plain to see."""
        if kind == "text" and (encoding := _plain_encoding(response)) is not None:
            return _decoded(response.aiter_bytes(), encoding)
        pieces: AsyncIterator[str] = getattr(response, f"aiter_{kind}")()
        return pieces

    async def close(self, response: Any) -> None:
        """Close the reply."""
        await response.aclose()

    def on_loop(self, function: Callable[[], None]) -> None:
        """Run ``function`` here: this is the engine's loop."""
        function()  # the stream is read on the engine's loop already

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Not for an async client (it reads on its own loop)."""
        raise RuntimeError("an async client's reply is read asynchronously")


def _plain_encoding(response: Any) -> str | None:
    """The text encoding of a reply of httpx or httpx2 without a ``charset`` in its
    ``Content-Type`` (nor an encoding set): its ``default_encoding`` when that is a name,
    else UTF-8, as ``response.encoding`` gives it for a body not yet read. ``None``: let
    the library work it out (it parses the ``Content-Type`` for a charset)."""
    items = header_items(response.headers)
    if items is None or "_encoding" in getattr(response, "__dict__", ("_encoding",)):
        return None
    names = list(map(_LOWERED, items))
    found = names.count(b"content-type")
    if found > 1 or (found and b"charset" in items[names.index(b"content-type")][2].lower()):
        return None
    default = getattr(response, "default_encoding", None)
    return default if isinstance(default, str) else "utf-8"


async def _decoded(pieces: AsyncIterator[bytes], encoding: str) -> AsyncIterator[str]:
    """``pieces`` decoded as ``aiter_text`` decodes them (errors replaced; no empty text)."""
    # UTF-8 pieces that end on a character's end decode alike whole (in C); the
    # incremental decoder takes over from the first that does not, or is not UTF-8
    incremental = codecs.getincrementaldecoder(encoding)
    utf8 = codecs.lookup(encoding).name == "utf-8"
    decoder: codecs.IncrementalDecoder | None = None if utf8 else incremental(errors="replace")
    try:
        async for piece in pieces:
            if decoder is None:
                try:
                    text = piece.decode()
                except UnicodeDecodeError:
                    decoder = incremental(errors="replace")
                    text = decoder.decode(piece)
            else:
                text = decoder.decode(piece)
            if text:
                yield text
        if decoder is not None and (text := decoder.decode(b"", True)):
            yield text
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]


class ThreadIO:
    """I/O of a sync client: the inner sync transport, in worker threads of the portal.

    A cancelled call (deadline, hedge lost, caller interrupted) abandons its thread at
    once; the reply that thread gets later is closed, not leaked.
    """

    def __init__(self, inner: SyncInner, portal: BlockingPortal) -> None:
        self._inner = inner
        self._portal = portal

    async def send(self, request: Any) -> Any:
        """Send ``request`` in a worker thread (abandoned if cancelled)."""
        handoff = _Handoff(self._inner.handle_request)
        try:
            return await anyio.to_thread.run_sync(handoff.send, request, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            handoff.abandon()
            raise

    async def read_and_close(self, response: Any, provider: str = "", model: str = "") -> bytes:
        """Read the whole body in a worker thread, then close the reply (see
        :meth:`IO.read_and_close`)."""
        try:
            return await anyio.to_thread.run_sync(_read_and_close, response, abandon_on_cancel=True)
        except Exception as exc:
            raise _read_failure(exc, provider, model) from None

    async def iterate(self, response: Any, kind: str) -> AsyncIterator[str]:
        """The body's ``iter_text`` or ``iter_lines``, each piece read in a worker thread."""
        pieces = getattr(response, f"iter_{kind}")()
        while True:
            piece = await anyio.to_thread.run_sync(next, pieces, None, abandon_on_cancel=True)
            if piece is None:
                return
            yield piece

    async def close(self, response: Any) -> None:
        """Close the reply in a worker thread."""
        await anyio.to_thread.run_sync(response.close)

    def on_loop(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the portal's loop (nothing once the transport is closed)."""
        with contextlib.suppress(RuntimeError):  # the transport was closed meanwhile
            self._portal.call(function)

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function`` on the portal's loop and wait for it."""
        try:
            return self._portal.call(function)
        except RuntimeError:  # the portal stopped: the transport was closed
            raise closed_error(in_flight=True) from None


class _Handoff:
    """Passes a reply from a worker thread to the loop, or closes it if nobody waits."""

    def __init__(self, send: Callable[[Any], Any]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: Any = None

    def send(self, request: Any) -> Any:
        response = self._send(request)
        with self._lock:
            if not self._abandoned:
                self._response = response
                return response
        response.close()
        return response

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response, self._response = self._response, None
        if response is not None:  # it arrived as the wait was cancelled
            response.close()


def _read_and_close(response: Any) -> bytes:
    try:
        content: bytes = response.read()
    finally:
        response.close()
    return content


async def widen_worker_threads() -> None:
    """Let as many sync HTTP calls be in flight at once as httpx's pool allows."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = _WORKER_THREADS


def closed_error(*, in_flight: bool) -> ConfigError:
    """What a request gets once the transport is closed."""
    if in_flight:
        return ConfigError("the ResilientTransport was closed while this request was in flight")
    return ConfigError("the ResilientTransport is closed (aclose() was called); build a new one")


def provider_error(exc: Exception, provider: str, model: str) -> ProviderError | None:
    """``exc`` of the HTTP library as a ProviderError, or ``None`` when it is no failure of
    the provider's. The library's exception is not kept: it holds the request, key and all."""
    error = classify_exception(exc, provider=provider, model=model)
    if error is not None and error is not exc:
        error.__cause__, error.cause_type = None, type(exc).__qualname__
    return error


def _read_failure(exc: Exception, provider: str, model: str) -> ProviderError:
    """What a failed read of a reply's body is: the provider's failure, or a malformed reply."""
    return provider_error(exc, provider, model) or MalformedResponseError(
        f"the reply's body could not be read ({type(exc).__name__})"
    )


class IOSender:
    """A ``Sender`` over one SDK request's I/O, in the SDK's HTTP library.

    Each request goes through the same inner transport as the SDK's own (never following a
    redirect: transports do not), with the SDK request's timeouts, bounded further by the
    attempt's (``timeout`` for connecting, writing and the pool; ``read_timeout`` for
    each read of a stream). The library's errors come out as ProviderErrors.

    Args:
        io: The request's I/O.
        library: ``httpx`` or ``httpx2``, whichever the SDK uses.
        extensions: The SDK request's extensions (its ``timeout``).
    """

    def __init__(self, io: IO, library: ModuleType, extensions: Mapping[str, Any]) -> None:
        self._io = io
        self._library = library
        self._timeout: dict[str, Any] = dict(extensions.get("timeout") or {})

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        """Send ``request`` on entering; yield its reply, body unread; close it on exit."""
        timeouts = self._timeout  # (read alone by the library: one dict serves them all)
        if read_timeout is not None or not math.isinf(timeout):  # else: nothing to bound
            timeouts = dict(timeouts)
            bounds = {"connect": timeout, "write": timeout, "pool": timeout, "read": read_timeout}
            for name, bound in bounds.items():
                if bound is not None and not math.isinf(bound):
                    current = timeouts.get(name)
                    timeouts[name] = bound if current is None else min(current, bound)
        built = _built(self._library, request, {"timeout": timeouts})
        return _Exchange(self._io, built)


_SET_BY_LIBRARY = frozenset(("host", "content-length", "transfer-encoding"))


def _url(library: ModuleType, text: str) -> tuple[Any, tuple[str, Any] | None]:
    """``text`` parsed as ``library``'s URL, and its ``Host`` header (``None``: no host)."""
    url = library.URL(text)
    if not url.host:
        return url, None
    netloc = url.netloc
    return url, ("Host", netloc.decode("ascii") if netloc.isascii() else netloc)


def _may_hold_key(url: str) -> bool:
    """Whether ``url`` has a query or credentials (``user:password@host``), where a key may
    be: such a URL is never kept. An ``@`` in the path (a Vertex model version) is not one."""
    return "?" in url or ("@" in url and "@" in url.partition("://")[2].partition("/")[0])


_target = functools.lru_cache(maxsize=64)(_url)
""":func:`_url`, kept for URLs without a query nor credentials (an adapter's endpoints: a
few; a query or a ``user:password@`` may hold a key, so those are parsed each time, never
kept). URLs are immutable: one serves every request."""


def _built(library: ModuleType, request: HttpRequest, extensions: dict[str, Any]) -> Any:
    """``library.Request(method, url, headers=..., content=body, extensions=...)``, its
    headers as that makes them (``Host`` first, ``Content-Length`` last), made at once
    rather than set one by one and normalised twice (the better part of building it)."""
    headers, body = request.headers, request.body
    url, host = (
        _url(library, request.url) if _may_hold_key(request.url) else _target(library, request.url)
    )
    if not body or not host or not _SET_BY_LIBRARY.isdisjoint(map(str.lower, headers)):
        return library.Request(
            request.method, url, headers=headers, content=body, extensions=extensions
        )
    built = library.Request(
        request.method,
        url,
        headers=made_headers(library, [host, *headers.items(), ("Content-Length", str(len(body)))]),
        stream=library.ByteStream(body),
        extensions=extensions,
    )
    built._content = body  # what reading it would have set
    return built


class _Exchange:
    """One request sent through an IOSender, as an async context manager."""

    def __init__(self, io: IO, request: Any) -> None:
        self._io = io
        self._request = request
        self._response: Any = None

    async def __aenter__(self) -> _Reply:
        try:
            self._response = await self._io.send(self._request)
        except Exception as exc:
            error = provider_error(exc, "", "")
            if error is None:
                raise
            raise error from None
        return _Reply(self._io, self._response)

    @property
    def exits_at_once(self) -> bool:
        """Whether leaving waits for nothing (see ``failover.http.Sender``): no reply, or
        one closed already (read to its end), which :meth:`__aexit__` leaves as it is. A
        translated stream read to its end is then released in place, not in a task of
        its own (``close_opened``)."""
        response = self._response
        return response is None or bool(getattr(response, "is_closed", False))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # a reply read whole is closed already (read_and_close): nothing to finish
        exits_at_once = self.exits_at_once
        response, self._response = self._response, None
        if not exits_at_once:
            io = self._io
            await finish_even_if_cancelled(lambda: io.close(response))


class _Reply:
    """A reply sent through an IOSender: the ``Reply`` shape (see ``failover.http``), its
    reads' failures as ProviderErrors."""

    __slots__ = ("_io", "_response")

    def __init__(self, io: IO, response: Any) -> None:
        self._io = io
        self._response = response

    @property
    def status_code(self) -> int:
        status: int = self._response.status_code
        return status

    @property
    def headers(self) -> Mapping[str, str]:
        headers: Mapping[str, str] = self._response.headers
        return headers

    def aread(self) -> Coroutine[Any, Any, bytes]:
        # the read's own coroutine, which the caller awaits (no frame of ours between)
        return self._io.read_and_close(self._response)

    def aiter_text(self) -> AsyncIterator[str]:
        return self._pieces("text")

    def aiter_lines(self) -> AsyncIterator[str]:
        return self._pieces("lines")

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        # the body as it arrives, undecoded (Bedrock's event-stream frames)
        return cast("AsyncIterator[bytes]", self._pieces("bytes"))

    async def _pieces(self, kind: str) -> AsyncIterator[str]:
        pieces = self._io.iterate(self._response, kind)
        try:
            async for piece in pieces:
                yield piece
        except Exception as exc:
            raise _read_failure(exc, "", "") from None
        finally:
            with contextlib.suppress(Exception):
                await pieces.aclose()  # type: ignore[attr-defined]
