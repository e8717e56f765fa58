"""A streamed httpx reply's text, read in one generator, is what httpx's ``aiter_text`` gives.

``HttpxSender``'s reply reads an unread httpx body straight from its stream (one generator,
not httpx's three): the content decoded (Content-Encoding), the text as the lossless UTF-8
(undecodable bytes as lone surrogates, a character split across pieces whole), the reply
closed at the body's end, httpx's errors translated into ProviderErrors (under httpx's own
transport, httpcore's errors mapped by httpx's own mapping first). A reply read already
(made with its content, as a mock's often is) goes through httpx's own reading.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest

from failover.errors import ProviderConnectionError, ProviderTimeoutError
from failover.http import LOSSLESS_UTF8, HttpxSender
from failover.providers.base import HttpRequest

_REQUEST = HttpRequest("POST", "http://upstream.test/v1/chat", {}, b"{}")

# "data: héllo\n\n" then an undecodable byte, a euro sign split across pieces, and a
# character cut short at the very end
_PIECES = (b"data: h\xc3", b"\xa9llo\n\n", b"\xff data: \xe2\x82", b"\xac\n\n", b"\xe2\x82")


class _Body(httpx.AsyncByteStream):
    """A body that arrives in ``pieces`` (then, if given, ``error``), unread until read."""

    def __init__(self, pieces: tuple[bytes, ...], error: Exception | None = None) -> None:
        self.pieces = pieces
        self.error = error
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


def _sender(body: _Body, headers: dict[str, str] | None = None) -> HttpxSender:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, stream=body)

    return HttpxSender(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def _texts(sender: HttpxSender) -> list[str]:
    async with sender.open(_REQUEST, 10.0, read_timeout=5.0) as reply:
        return [text async for text in reply.aiter_text()]


def _httpx_reading(pieces: tuple[bytes, ...]) -> str:
    """What httpx's own decoder makes of ``pieces`` with the lossless codec."""
    decoder = httpx._decoders.TextDecoder(LOSSLESS_UTF8)
    return "".join(decoder.decode(piece) for piece in pieces) + decoder.flush()


async def test_the_text_is_httpx_s_with_the_lossless_codec_and_the_reply_is_closed() -> None:
    body = _Body(_PIECES)
    texts = await _texts(_sender(body))
    assert "".join(texts) == _httpx_reading(_PIECES)
    assert "".join(texts) == "data: héllo\n\n\udcff data: €\n\n\udce2\udc82"
    assert all(texts), "no empty piece is handed on"
    assert body.closed, "the body's end closes the reply: its connection goes back"


async def test_a_compressed_body_is_decoded() -> None:
    whole = b"".join(_PIECES[:4])
    packed = gzip.compress(whole)
    body = _Body((packed[:7], packed[7:20], packed[20:]))
    texts = await _texts(_sender(body, {"content-encoding": "gzip"}))
    assert "".join(texts) == whole.decode("utf-8", "surrogateescape")
    assert body.closed


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ReadTimeout("stalled"), ProviderTimeoutError),
        (httpx.RemoteProtocolError("peer closed"), ProviderConnectionError),
    ],
)
async def test_a_failing_body_raises_a_provider_error(
    error: Exception, expected: type[Exception]
) -> None:
    body = _Body((b"data: {}\n\n",), error)
    got: list[str] = []

    async def read() -> None:
        async with _sender(body).open(_REQUEST, 10.0, read_timeout=5.0) as reply:
            async for text in reply.aiter_text():
                got.append(text)

    with pytest.raises(expected) as raised:
        await read()
    assert got == ["data: {}\n\n"]
    assert raised.value.__cause__ is error
    assert body.closed, "leaving the exchange releases what the body left"


async def test_a_reply_read_already_goes_through_httpx_s_own_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"".join(_PIECES))  # read as it is made

    sender = HttpxSender(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    assert "".join(await _texts(sender)) == _httpx_reading(_PIECES)


_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 100\r\n\r\n"


async def _serve_then(stall: bool) -> tuple[asyncio.Server, str]:
    """A loopback server that answers with the start of a 100-byte body, then closes the
    connection (or, with ``stall``, sends nothing more)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_HEAD + b"data: {}\n\n")
        await writer.drain()
        if stall:
            await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat"


@pytest.mark.parametrize(
    ("stall", "expected", "httpx_error", "httpcore_error"),
    [
        (False, ProviderConnectionError, httpx.RemoteProtocolError, httpcore.RemoteProtocolError),
        (True, ProviderTimeoutError, httpx.ReadTimeout, httpcore.ReadTimeout),
    ],
)
async def test_httpcore_s_errors_come_mapped_by_httpx_then_translated(
    stall: bool,
    expected: type[Exception],
    httpx_error: type[Exception],
    httpcore_error: type[Exception],
) -> None:
    server, url = await _serve_then(stall)
    got: list[str] = []

    async def read() -> None:
        async with httpx.AsyncClient() as client:
            request = HttpRequest("POST", url, {}, b"{}")
            async with HttpxSender(client).open(request, 10.0, read_timeout=0.2) as reply:
                async for text in reply.aiter_text():
                    got.append(text)

    async with server:
        with pytest.raises(expected) as raised:
            await read()
    assert got == ["data: {}\n\n"]
    assert type(raised.value.__cause__) is httpx_error
    assert type(raised.value.__cause__.__cause__) is httpcore_error


async def test_a_failing_body_s_error_names_its_request_and_the_bytes_are_counted() -> None:
    body = _Body((b"data: {}\n\n", b"data: {}\n"), httpx.ReadError("reset"))
    seen: dict[str, object] = {}

    async def read() -> None:
        async with _sender(body).open(_REQUEST, 10.0, read_timeout=5.0) as reply:
            try:
                async for _ in reply.aiter_text():
                    pass
            finally:
                seen["downloaded"] = reply._response.num_bytes_downloaded

    with pytest.raises(ProviderConnectionError) as raised:
        await read()
    cause = raised.value.__cause__
    assert isinstance(cause, httpx.ReadError)
    assert cause.request.url == _REQUEST.url, "as httpx's own reading, the error names it"
    assert seen["downloaded"] == 19
