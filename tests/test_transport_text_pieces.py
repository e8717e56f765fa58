"""A translated stream's body is read as text the way ``aiter_text`` reads it.

The transport decodes an async reply's body from ``aiter_bytes`` itself when its text
encoding is plain to see (no ``charset`` in its ``Content-Type``), sparing the library's
header parsing; the pieces must be the ones ``aiter_text`` yields, whatever the body.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from failover.transport_io import AsyncIO

LIBRARIES = pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
TEXT = 'data: {"t": "caf\u00e9 \u2603 \U0001f600"}\n\n'.encode()

BODIES: dict[str, tuple[list[tuple[str, str]], list[bytes], Any]] = {
    "utf-8 split inside characters": (
        [("content-type", "text/event-stream")],
        [TEXT[i : i + 3] for i in range(0, len(TEXT), 3)],
        "utf-8",
    ),
    "bytes that are not utf-8": (
        [("content-type", "text/event-stream")],
        [b"data: \xff\xfe", b"", b"ok\xe2\x82", b"\n\n"],
        "utf-8",
    ),
    "a charset": ([("content-type", "text/plain; charset=latin-1")], [b"caf\xe9\n"], "utf-8"),
    "a default encoding": ([("content-type", "text/event-stream")], [b"caf\xe9\n"], "latin-1"),
    "no content type": ([], [TEXT], "utf-8"),
    "gzip": (
        [("content-type", "text/event-stream"), ("content-encoding", "gzip")],
        [gzip.compress(TEXT * 3)[:20], gzip.compress(TEXT * 3)[20:]],
        "utf-8",
    ),
}


def _reply(library: ModuleType, name: str) -> Any:
    headers, pieces, default = BODIES[name]

    class Body(library.AsyncByteStream):  # type: ignore[misc,name-defined]
        closed = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        async def aclose(self) -> None:
            Body.closed = True

    return library.Response(200, headers=headers, stream=Body(), default_encoding=default), Body


@LIBRARIES
@pytest.mark.parametrize("name", list(BODIES))
async def test_text_pieces_are_aiter_texts(library: ModuleType, name: str) -> None:
    expected = [text async for text in _reply(library, name)[0].aiter_text()]
    reply, body = _reply(library, name)
    pieces = AsyncIO(None).iterate(reply, "text")  # type: ignore[arg-type]
    assert [text async for text in pieces] == expected
    assert body.closed  # the body read to its end is closed, as aiter_text closes it
