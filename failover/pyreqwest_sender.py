"""PyreqwestSender: the client's HTTP seam on pyreqwest (Rust's reqwest and hyper).

The connection pool, HTTP/1.1 parsing and reading run in Rust, off the Python thread: on
loopback about half of aiohttp's CPU per request (benchmarks/http_engines.py). Needs the
``pyreqwest`` extra, Python 3.11 or later, and asyncio.

    sender = PyreqwestSender()
    client = ResilientClient(chain, profiles, sender=sender)
    ...
    await client.aclose(); await sender.aclose()

pyreqwest answers a cancellation thrown into one of its calls with a ``CancelledError`` of
its own, which anyio's cancel scopes would not recognise as theirs (the cancellation would
leave the scope that asked for it), or, when the reply has come meanwhile, with the reply
(the cancellation lost); every call here is awaited through ``_kept``, which stops the call
and raises the caller's own cancellation instead.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import types
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from pyreqwest.bytes import Bytes
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import DecodeError, RequestTimeoutError, TransportError
from pyreqwest.http import Url
from pyreqwest.request import StreamRequest
from pyreqwest.response import Response

from failover._tasks import AsyncioTimeout
from failover.errors import ProviderConnectionError, ProviderError, ProviderTimeoutError
from failover.providers.base import HttpRequest

__all__ = ["PyreqwestSender"]

T = TypeVar("T")


class PyreqwestSender:
    """Sends through a ``pyreqwest`` client (its own, or yours).

    As every sender (see ``failover.http.Sender``) it bounds a stream's reads by
    ``read_timeout``; the whole attempt, connecting included, is bounded by the caller's
    timeout, so a plain reply starts no timer of its own. Redirects are never followed and
    no cookie is kept (a jar shared by every key would link them).

    Args:
        client: Your client (not closed by :meth:`aclose`; build it with
            ``follow_redirects(False)``); one is made on first use otherwise.
        limit: Requests in flight at once on the client the sender makes (its connection
            pool's bound); more wait for a free one.
    """

    asyncio_cancel_safe = True
    """pyreqwest's I/O runs in Rust; a cancelled call drops its request there and leaves the
    pool consistent: the engine may bound attempts with asyncio's cheaper timer."""

    def __init__(self, client: Client | None = None, *, limit: int = 512) -> None:
        self._client = client
        self._owned = client is None
        self._limit = limit

    def _get_client(self) -> Client:
        if self._client is None:
            builder = ClientBuilder().max_connections(self._limit)
            self._client = builder.follow_redirects(False).default_cookie_store(False).build()
        return self._client

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        """Send ``request`` on entering; yield the reply, its body unread; release on exit."""
        return _Exchange(self, request, timeout, read_timeout)

    async def aclose(self) -> None:
        """Close the client this sender made."""
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await _kept(client.close())


_UNSENT: Any = object()


@types.coroutine
def _kept(coroutine: Coroutine[Any, Any, T], yielded: Any = _UNSENT) -> Generator[Any, Any, T]:
    """Awaits a pyreqwest coroutine; a cancellation stops it and comes out as itself.

    A hand-written ``yield from`` (a generator made awaitable: no object of its own to make):
    what the coroutine yields goes to the event loop, what is sent back goes to the
    coroutine. A cancellation is not thrown into it: it is closed (its request dropped, in
    Rust) and the caller's own ``CancelledError`` propagates, whose message tells anyio whose
    cancel scope it belongs to. Thrown in, pyreqwest would raise a ``CancelledError`` of its
    own instead, or, when the reply came meanwhile, return it and lose the cancellation: a
    scope's deadline would pass unnoticed. ``yielded``: what the coroutine yielded when the
    caller sent it its first ``None`` itself (to finish at once without this generator).
    """
    try:
        if yielded is _UNSENT:
            yielded = coroutine.send(None)
        while True:
            try:
                sent = yield yielded
            except (GeneratorExit, asyncio.CancelledError):
                # stop the call (pyreqwest drops its request) and propagate the caller's
                # own exception: thrown in, pyreqwest would raise a CancelledError of its
                # own, or return its result if it came meanwhile (the cancellation lost)
                coroutine.close()
                raise
            except BaseException as thrown:
                yielded = coroutine.throw(thrown)
            else:
                yielded = coroutine.send(sent)
    except StopIteration as stop:
        result: T = stop.value
        return result


@functools.lru_cache(maxsize=256)
def _parsed_url(url: str) -> Url:
    """``url`` parsed once (a handful of base URLs serve every request)."""
    return Url(url)


class _Exchange:
    """One request's context manager, and on entering its reply, with the reply shape the
    adapters read (a plain class, one object per request: cheaper than a generator-based
    context manager and a reply of its own)."""

    __slots__ = (
        "_read_timeout",
        "_request",
        "_response",
        "_sender",
        "_streamed",
        "_timeout",
        "headers",
        "status_code",
    )

    status_code: int
    headers: Mapping[str, str]  # pyreqwest's HeaderMap: its lookups ignore case, in Rust
    _response: Response

    def __init__(
        self,
        sender: PyreqwestSender,
        request: HttpRequest,
        timeout: float,
        read_timeout: float | None,
    ) -> None:
        self._sender = sender
        self._request = request
        self._timeout = timeout
        self._read_timeout = read_timeout
        self._streamed: StreamRequest | None = None

    async def __aenter__(self) -> _Exchange:
        request = self._request
        sender = self._sender
        builder = (
            (sender._client or sender._get_client())
            .request(request.method, _parsed_url(request.url))
            .headers(request.headers)
            .body_bytes(request.body)
        )
        try:
            if self._read_timeout is None:  # a plain reply: read whole in Rust
                response = await _kept(builder.build().send())
            else:
                streamed = builder.streamed_read_buffer_limit(0).build_streamed()
                response = await _kept(streamed.__aenter__())
                self._streamed = streamed
        except RequestTimeoutError as exc:
            raise ProviderTimeoutError(f"no reply within {self._timeout:.1f}s") from exc
        except TransportError as exc:
            raise ProviderConnectionError(f"{type(exc).__name__}: {_cause(exc)}") from exc
        except DecodeError as exc:  # a plain reply's body, read with its head, was cut short
            raise _translated(exc) from exc
        self._response = response
        self.status_code = response.status
        self.headers = response.headers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        streamed, self._streamed = self._streamed, None
        if streamed is not None:  # a body left unread drops its connection, in Rust
            await _kept(streamed.__aexit__(exc_type, exc, traceback))

    @property
    def exits_at_once(self) -> bool:
        """Whether leaving waits for nothing (see ``failover.http.Sender``): a whole reply's
        (read in Rust already); a stream's release is pyreqwest's own, awaited."""
        return self._streamed is None

    async def aread(self) -> bytes:
        try:
            if self._read_timeout is None:  # read already, in Rust: done at its first step
                reading = self._response.bytes()
                try:
                    yielded = reading.send(None)
                except StopIteration as done:
                    body: Bytes = done.value
                    return body.to_bytes()
                return (await _kept(reading, yielded)).to_bytes()
            with AsyncioTimeout(self._read_timeout):  # the whole (error) body
                return (await _kept(self._response.bytes())).to_bytes()
        except (TimeoutError, DecodeError, TransportError) as exc:
            raise _translated(exc) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        reader = self._response.body_reader
        read_timeout = self._read_timeout
        chunk: Bytes | None
        while True:
            reading = reader.read_chunk()
            try:
                try:  # a chunk that has come already (or the end) is taken with no timer
                    yielded = reading.send(None)
                except StopIteration as done:
                    chunk = done.value
                else:  # waiting for the next: bounded by the read timeout
                    if read_timeout is None:
                        chunk = await _kept(reading, yielded)
                    else:
                        with AsyncioTimeout(read_timeout):
                            chunk = await _kept(reading, yielded)
            except (TimeoutError, DecodeError, TransportError) as exc:
                raise _translated(exc) from exc
            if chunk is None:
                return
            yield chunk.to_bytes()

    async def aiter_text(self) -> AsyncIterator[str]:
        # event streams and NDJSON are UTF-8 whatever their headers say; bytes that are not
        # text reach the reader as lone surrogates, which it refuses as malformed ("replace"
        # would pass them off as a U+FFFD a model could have sent)
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        async for chunk in self.aiter_bytes():
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def aiter_lines(self) -> AsyncIterator[str]:
        pending = b""
        async for chunk in self.aiter_bytes():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "surrogateescape").removesuffix("\r")
        if pending:
            yield pending.decode("utf-8", "surrogateescape").removesuffix("\r")


def _cause(exc: BaseException) -> str:
    """The innermost cause pyreqwest gives (``Connection refused (os error 111)``)."""
    details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    causes = details.get("causes") or [{"message": str(exc.args[0]) if exc.args else ""}]
    return str(causes[-1].get("message", ""))


def _translated(exc: BaseException) -> ProviderError:
    """pyreqwest's error (or a read's timeout) while reading a reply, as a ProviderError."""
    if isinstance(exc, TimeoutError):  # pyreqwest's timeouts are TimeoutErrors too
        return ProviderTimeoutError("the reply stalled")
    if isinstance(exc, DecodeError):
        return ProviderConnectionError(f"reply cut short: {_cause(exc)}")
    return ProviderConnectionError(f"connection lost: {type(exc).__name__}")
