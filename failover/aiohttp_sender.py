"""AiohttpSender: the client's HTTP seam on aiohttp, for the highest throughput.

httpx's own request and response objects and its connection pool cost more than the
network on loopback; this sender goes to aiohttp directly. Needs the ``fast`` extra.

    sender = AiohttpSender()
    client = ResilientClient(chain, profiles, sender=sender)
    ...
    await client.aclose(); await sender.aclose()
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import math
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp
import yarl

from failover.errors import ProviderConnectionError, ProviderError, ProviderTimeoutError
from failover.providers.base import HttpRequest

__all__ = ["AiohttpSender"]


class AiohttpSender:
    """Sends through an ``aiohttp.ClientSession`` (its own, or yours).

    As every sender (see ``failover.http.Sender``) it bounds connecting by ``timeout`` and a
    stream's reads by ``read_timeout``; the whole attempt is bounded by the caller's cancel
    scope, so a plain reply on a pooled connection starts no aiohttp timer at all.

    Args:
        session: Your session (not closed by :meth:`aclose`); one is made on first use
            otherwise.
        limit: Connections in the pool the sender makes.
    """

    asyncio_cancel_safe = True
    """aiohttp is written for asyncio's own cancellation: the engine may bound attempts
    with asyncio's timer (cheaper than anyio's cancel scope)."""

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit: int = 512) -> None:
        self._session = session
        self._owned = session is None
        self._limit = limit

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            # no cookie jar: an API call needs none, a jar shared by every key would link
            # them, and filtering it costs every request
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        """Send ``request`` on entering; yield the reply, its body unread; release on exit."""
        return _Exchange(self, request, timeout, read_timeout)

    async def aclose(self) -> None:
        """Close the session this sender made."""
        if self._owned and self._session is not None:
            await self._session.close()


@functools.lru_cache(maxsize=64)  # deadlines make many distinct values: stay small
def _client_timeout(timeout: float, read_timeout: float | None) -> aiohttp.ClientTimeout:
    """The aiohttp timeout for these bounds, made once per distinct pair."""
    bound = None if math.isinf(timeout) else timeout
    return aiohttp.ClientTimeout(total=None, sock_connect=bound, sock_read=read_timeout)


@functools.lru_cache(maxsize=256)
def _parsed_url(url: str) -> yarl.URL:
    """``url`` parsed once (a handful of base URLs serve every request)."""
    return yarl.URL(url)


class _Exchange:
    """One request's context manager, and on entering its reply, with the reply shape the
    adapters read (a plain class, one object per request: cheaper than a generator-based
    context manager and a reply of its own)."""

    __slots__ = (
        "_read_timeout",
        "_request",
        "_response",
        "_sender",
        "_timeout",
        "headers",
        "status_code",
    )

    status_code: int
    headers: Mapping[str, str]  # aiohttp's CIMultiDictProxy: its lookups ignore case, in C
    _response: aiohttp.ClientResponse

    def __init__(
        self,
        sender: AiohttpSender,
        request: HttpRequest,
        timeout: float,
        read_timeout: float | None,
    ) -> None:
        self._sender = sender
        self._request = request
        self._timeout = timeout
        self._read_timeout = read_timeout

    async def __aenter__(self) -> _Exchange:
        request = self._request
        sender = self._sender
        try:
            response = await (sender._session or sender._get_session()).request(
                request.method,
                _parsed_url(request.url),
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(self._timeout, self._read_timeout),
                allow_redirects=False,
            )
        except asyncio.TimeoutError as exc:
            raise ProviderTimeoutError(f"no reply within {self._timeout:.1f}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(f"{type(exc).__name__}: {exc}") from exc
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
        self._response.release()  # entered: the response is there

    exits_at_once = True
    """Leaving waits for nothing (see ``failover.http.Sender``): aiohttp's release never
    does."""

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _translated(exc) from exc

    async def aiter_text(self) -> AsyncIterator[str]:
        # bytes that are not text reach the reader as lone surrogates, which it refuses as
        # malformed ("replace" would pass them off as a U+FFFD a model could have sent)
        charset = self._response.charset or "utf-8"
        decoder = codecs.getincrementaldecoder(charset)("surrogateescape")
        iterator = self._response.content.iter_any().__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                raise _translated(exc) from exc
            yield decoder.decode(chunk)
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        iterator = self._response.content.iter_any().__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                raise _translated(exc) from exc
            yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        content = self._response.content
        while True:
            try:
                line = await content.readline()
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                raise _translated(exc) from exc
            if not line:
                return
            yield line.decode("utf-8", "surrogateescape").rstrip("\r\n")


def _translated(exc: BaseException) -> ProviderError:
    """aiohttp's error while reading a reply, as a ProviderError."""
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderTimeoutError("the reply stalled")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProviderConnectionError(f"reply cut short: {exc}")
    return ProviderConnectionError(f"connection lost: {type(exc).__name__}")
