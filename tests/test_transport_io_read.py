"""AsyncIO.read_and_close and body_pieces: a body with nothing to decode is read from the
reply's stream itself and left as ``aread`` and ``aclose`` (or ``aiter_bytes``) leave it;
an encoded one is decoded by the library."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest

from failover.transport_io import AsyncIO, body_pieces

BODY = b'{"id": "x", "choices": []}'


def _reply(library: Any, encoding: str | None) -> Any:
    class Pieces(library.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, data: bytes) -> None:
            self.data, self.closed = data, False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield self.data[:5]
            yield b""
            yield self.data[5:]

        async def aclose(self) -> None:
            self.closed = True

    data = gzip.compress(BODY) if encoding else BODY
    headers = [("content-type", "application/json")]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return library.Response(200, headers=headers, stream=Pieces(data))


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_a_reply_read_whole_is_left_as_aread_leaves_it(
    library: Any, encoding: str | None
) -> None:
    ours, theirs = _reply(library, encoding), _reply(library, encoding)
    content = await AsyncIO(None).read_and_close(ours)  # type: ignore[arg-type]
    await theirs.aread()
    await theirs.aclose()
    assert content == BODY == ours.content == theirs.content
    assert ours.json() == theirs.json()
    assert (ours.is_closed, ours.is_stream_consumed) == (True, True)
    assert ours.num_bytes_downloaded == theirs.num_bytes_downloaded
    assert ours.stream.closed and theirs.stream.closed
    assert await ours.aread() == BODY  # the SDK's own read: the content, not the stream


async def test_a_reply_already_read_is_read_by_the_library() -> None:
    reply = httpx2.Response(200, content=BODY)
    assert await AsyncIO(None).read_and_close(reply) == BODY  # type: ignore[arg-type]
    assert reply.is_closed


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_a_body_read_as_it_arrives_is_what_aiter_bytes_gives(
    library: Any, encoding: str | None
) -> None:
    ours, theirs = _reply(library, encoding), _reply(library, encoding)
    pieces = [piece async for piece in body_pieces(ours)]
    assert pieces == [piece async for piece in theirs.aiter_bytes()]
    assert b"".join(pieces) == BODY
    assert (ours.is_closed, ours.is_stream_consumed) == (True, True)
    assert ours.stream.closed and theirs.stream.closed


async def test_a_body_left_early_is_closed_with_its_reply() -> None:
    reply = _reply(httpx2, None)
    pieces = body_pieces(reply)
    assert await pieces.__anext__() == BODY[:5]
    await pieces.aclose()  # type: ignore[attr-defined]
    assert reply.is_closed and reply.stream.closed
