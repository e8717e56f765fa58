"""The client's own work per streamed chunk, counted rather than timed: Python opcodes.

One OpenAI SSE stream (20 text chunks, a finish chunk, a usage chunk, ``[DONE]``) read with
``client.stream()`` over httpx's MockTransport, beside the bare httpx client reading the
same stream with ``aiter_lines`` and ``json.loads`` per ``data:`` line. Also counted: the
same with 40 text chunks, whose difference is the work per extra chunk (what a long stream
pays per chunk, the request's own work set apart), without and with a ``deadline`` (which
bounds every read that waits); and the work until the first chunk is in the caller's hands
(the bare client's read as an async generator of the decoded ``data:`` payloads). C code
counts as the call that enters it. The mock's reply comes unread, its body in one piece, as
from the network (a reply made with its ``content`` is read as it is made: neither client
would read it as it reads a network's).

    python benchmarks/stream_work_count.py [--top N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from upstream import CHUNK, STREAM  # benchmarks/, the script's own directory
from work_count import MESSAGES, WorkCounter

from failover import AuthProfile, ResilientClient

STREAMS = 20
TEXT_CHUNKS = 20
_TAIL = STREAM[len(CHUNK) * TEXT_CHUNKS :]  # the finish chunk, the usage chunk, [DONE]
URL = "http://127.0.0.1:9/v1"


def _stream_of(chunks: int) -> bytes:
    return CHUNK * chunks + _TAIL


class _Unread(httpx.AsyncByteStream):
    """A reply's body, unread until read, in one piece (what loopback usually delivers)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body


def _reply(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Unread(body))


async def _counted(read: Callable[[], Awaitable[object]], top: int, what: str) -> float:
    for _ in range(100):  # caches and first-use paths settle
        await read()
    counter = WorkCounter()
    sys.settrace(counter)
    try:
        for _ in range(STREAMS):
            await read()
    finally:
        sys.settrace(None)
    total = sum(counter.opcodes.values()) / STREAMS
    print(f"  {what}: {total:.0f} Python opcodes, {counter.calls / STREAMS:.0f} function calls")
    for name, opcodes in counter.opcodes.most_common(top):
        print(f"    {opcodes / STREAMS:6.0f}  {name}")
    return total


async def _counted_first(
    chunks_of: Callable[[], AsyncIterator[object]], top: int, what: str
) -> float:
    """Opcodes until the first chunk of ``chunks_of()`` is read (the rest read untraced)."""
    for _ in range(100):
        async for _ in chunks_of():
            pass
    counter = WorkCounter()
    for _ in range(STREAMS):
        chunks = chunks_of()
        sys.settrace(counter)
        try:
            await chunks.__anext__()
        finally:
            sys.settrace(None)
        async for _ in chunks:
            pass
    total = sum(counter.opcodes.values()) / STREAMS
    print(f"  {what}: {total:.0f} Python opcodes, {counter.calls / STREAMS:.0f} function calls")
    for name, opcodes in counter.opcodes.most_common(top):
        print(f"    {opcodes / STREAMS:6.0f}  {name}")
    return total


async def first_chunk(top: int) -> tuple[float, float]:
    """Print (and return) the opcodes until the first chunk: the client's and the bare
    httpx client's."""
    body = _stream_of(TEXT_CHUNKS)

    def handler(request: httpx.Request) -> httpx.Response:
        return _reply(body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", "sk-bench-key-0001", base_url=URL)
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http)

    async def bare() -> AsyncIterator[object]:
        async with http.stream("POST", f"{URL}/chat/completions", content=b"{}") as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[6:])

    print(f"To the first chunk of a stream of {TEXT_CHUNKS} text chunks, MockTransport:")
    ours = await _counted_first(lambda: client.stream(MESSAGES), top, "client.stream()")
    theirs = await _counted_first(bare, top, "bare httpx (aiter_lines + json.loads)")
    print(f"  to the first chunk: client {ours:.0f}, bare {theirs:.0f} ({ours - theirs:+.0f})")
    await client.aclose()
    await http.aclose()
    return ours, theirs


async def count(chunks: int, top: int, deadline: float | None = None) -> tuple[float, float]:
    """Print (and return) the opcodes per stream of ``chunks`` text chunks: the client's
    (with ``deadline``) and the bare httpx client's."""
    body = _stream_of(chunks)

    def handler(request: httpx.Request) -> httpx.Response:
        return _reply(body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", "sk-bench-key-0001", base_url=URL)
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http, deadline=deadline)

    async def through_client() -> int:
        read = 0
        async with client.stream(MESSAGES) as stream:
            async for _ in stream:
                read += 1
        return read

    async def bare() -> int:
        read = 0
        async with http.stream("POST", f"{URL}/chat/completions", content=b"{}") as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    json.loads(line[6:])
                    read += 1
        return read

    assert await through_client() == chunks + 1, "the text chunks and the summary"
    assert await bare() == chunks + 2
    events = chunks + 3
    with_deadline = f", deadline={deadline}" if deadline is not None else ""
    print(f"A stream of {chunks} text chunks ({events} SSE events), MockTransport{with_deadline}:")
    ours = await _counted(through_client, top, "client.stream()")
    theirs = await _counted(bare, top, "bare httpx (aiter_lines + json.loads)")
    print(
        f"  per SSE event: client {ours / events:.0f}, bare {theirs / events:.0f} "
        f"({ours / theirs:.2f}x)"
    )
    await client.aclose()
    await http.aclose()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest functions")
    top = parser.parse_args().top
    for deadline in (None, 60.0):
        ours, theirs = asyncio.run(count(TEXT_CHUNKS, 0 if deadline else top, deadline))
        ours_long, theirs_long = asyncio.run(count(2 * TEXT_CHUNKS, 0, deadline))
        per_ours = (ours_long - ours) / TEXT_CHUNKS
        per_theirs = (theirs_long - theirs) / TEXT_CHUNKS
        print(
            f"Per extra text chunk{' with a deadline' if deadline else ''}: client "
            f"{per_ours:.0f} opcodes, bare {per_theirs:.0f} ({per_ours / per_theirs:.2f}x)"
        )
    asyncio.run(first_chunk(top))


if __name__ == "__main__":
    main()
