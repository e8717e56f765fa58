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
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp

from failover.errors import ProviderConnectionError, ProviderTimeoutError
from failover.http import Reply
from providers.base import HttpRequest

__all__ = ["AiohttpSender"]

T = TypeVar("T")


class AiohttpSender:
    """Sends through an ``aiohttp.ClientSession`` (its own, or yours).

    Args:
        session: Your session (not closed by :meth:`aclose`); one is made on first use
            otherwise.
        limit: Connections in the pool the sender makes.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit: int = 512) -> None:
        self._session = session
        self._owned = session is None
        self._limit = limit

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    @asynccontextmanager
    async def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> AsyncIterator[Reply]:
        """Send ``request`` and yield the reply, its body unread."""
        limits = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_read=read_timeout or timeout
        )
        try:
            response = await self._get_session().request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=limits,
                allow_redirects=False,
            )
        except asyncio.TimeoutError as exc:
            raise ProviderTimeoutError(f"no reply within {timeout:.1f}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(f"{type(exc).__name__}: {exc}") from exc
        try:
            yield _AiohttpReply(response)
        finally:
            response.release()

    async def aclose(self) -> None:
        """Close the session this sender made."""
        if self._owned and self._session is not None:
            await self._session.close()


class _AiohttpReply:
    """An aiohttp response with the reply shape the adapters read."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def aread(self) -> bytes:
        return await _guard(self._response.read())

    async def aiter_text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder(self._response.charset or "utf-8")("replace")
        iterator = self._response.content.iter_any().__aiter__()
        while True:
            try:
                chunk = await _guard(iterator.__anext__())
            except StopAsyncIteration:
                break
            yield decoder.decode(chunk)
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def aiter_lines(self) -> AsyncIterator[str]:
        content = self._response.content
        while line := await _guard(content.readline()):
            yield line.decode("utf-8", "replace").rstrip("\r\n")


async def _guard(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, translating aiohttp's errors into ProviderErrors."""
    try:
        return await awaitable
    except asyncio.TimeoutError as exc:
        raise ProviderTimeoutError("the stream stalled") from exc
    except aiohttp.ClientPayloadError as exc:
        raise ProviderConnectionError(f"reply cut short: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise ProviderConnectionError(f"connection lost: {type(exc).__name__}") from exc
