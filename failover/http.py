"""The one seam through which the client sends HTTP: ``Sender.open(request, timeout)``.

The default sender is httpx (``HttpxSender`` also takes an ``httpx2.AsyncClient``); any
object with the same ``open`` method (an aiohttp-based one, a test double) can be plugged in
without touching the policy or the adapters.
Lower-level exceptions are translated here, at the boundary, into ProviderErrors.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Union, cast

import httpx

from failover._tasks import finish_even_if_cancelled
from failover.errors import PoolExhaustedError, ProviderConnectionError, ProviderTimeoutError
from providers.base import HttpRequest

if TYPE_CHECKING:
    import httpx2

__all__ = ["HttpxSender", "Reply", "Sender"]

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
    """

    def __init__(self, client: AnyHttpxClient) -> None:
        self.client = client
        library = library_of(client)
        self._library = library  # httpx or httpx2: their exceptions, their Timeout
        self._errors = _Errors(
            library.TimeoutException, library.TransportError, library.PoolTimeout
        )

    def _timeout(self, timeout: float, read_timeout: float | None) -> httpx.Timeout:
        """The httpx timeout for these bounds."""
        return cast("httpx.Timeout", _httpx_timeout(self._library, timeout, read_timeout))

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        """Send ``request`` on entering; yield the streamed reply; close it on exit."""
        return _Exchange(self, request, timeout, read_timeout)


_POOL_SHARE = 0.9
"""The share of an attempt's time that may go to waiting for a free pooled connection."""


@functools.lru_cache(maxsize=64)  # deadlines make many distinct values: stay small
def _httpx_timeout(library: ModuleType, timeout: float, read_timeout: float | None) -> Any:
    """The ``library.Timeout`` for these bounds, made once per distinct pair."""
    # waiting for our own pool ends a little before the attempt's scope would, so that it
    # surfaces as PoolExhaustedError, never as the provider's timeout
    pool = timeout * _POOL_SHARE
    if read_timeout is None:  # a plain reply: the attempt's scope is its bound
        return library.Timeout(None, connect=timeout, pool=pool)
    return library.Timeout(timeout, read=read_timeout, pool=pool)


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
        request = self._request
        client: Any = self._sender.client  # httpx or httpx2: the same calls
        built = client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=self._sender._timeout(self._timeout, self._read_timeout),
        )
        errors = self._sender._errors
        try:  # never follow a redirect, whatever the client says: a key must not travel
            response = await client.send(built, stream=True, follow_redirects=False)
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        response = self._response
        # a reply read to its end is closed already (httpx closes it as the body ends):
        # nothing to give back, no task to start; otherwise give it back even if cancelled
        if response is not None and not response.is_closed:
            await finish_even_if_cancelled(response.aclose)


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
        return _translated(self._response.aiter_text(), self._errors)

    def aiter_lines(self) -> AsyncIterator[str]:
        return _translated(self._response.aiter_lines(), self._errors)


async def _translated(pieces: AsyncIterator[str], errors: _Errors) -> AsyncIterator[str]:
    """Pass a stream's pieces on, translating httpx's errors into ProviderErrors."""
    try:
        async for piece in pieces:
            yield piece
    except errors.timeout as exc:
        raise ProviderTimeoutError("the stream stalled") from exc
    except errors.transport as exc:
        raise ProviderConnectionError(f"stream lost: {type(exc).__name__}") from exc
