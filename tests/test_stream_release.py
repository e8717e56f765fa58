"""A stream read to its end is released at once, and still in full when its release waits.

``close_opened`` runs the release of a stream whose body was read to its end without a task
of its own when its sender says nothing in it waits (``exits_at_once``: httpx has closed the
reply already); any other release runs whole as every release does, in a task the caller's
cancellation cannot cut short.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import anyio
import httpx
import pytest

from failover import AuthProfile, ResilientClient
from failover.chat_calls import ChunkReader, close_opened
from failover.errors import ProviderTimeoutError, StreamInterrupted
from failover.providers import get_adapter
from failover.providers.base import HttpRequest

URL = "http://127.0.0.1:9/v1"
MESSAGES = [{"role": "user", "content": "hi"}]


def _sse(*data: str) -> str:
    return "".join(f"data: {item}\n\n" for item in data)


BODY = _sse(
    json.dumps({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
    json.dumps({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
    json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
    "[DONE]",
)


class _Reply:
    def __init__(self, body: str) -> None:
        self.status_code = 200
        self.headers: Mapping[str, str] = {"content-type": "text/event-stream"}
        self._body = body

    async def aread(self) -> bytes:
        return self._body.encode()

    async def aiter_text(self) -> AsyncIterator[str]:
        yield self._body

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self._body.splitlines():
            yield line


class _Exchange:
    """A reply whose release, once entered, waits ``wait`` seconds before it is done:
    plainly, inside a timeout of its own (``within="its own timeout"``, a graceful close
    bounded by a timer) or shielded from cancellation (``within="a shield"``, as httpcore's
    release is). What it enters belongs to the task that entered it."""

    def __init__(self, sender: _SlowReleaseSender) -> None:
        self._sender = sender

    async def __aenter__(self) -> _Reply:
        return _Reply(BODY)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        sender = self._sender
        sender.releasing.set()
        if sender.within == "its own timeout":
            try:
                async with asyncio.timeout(sender.wait / 2):
                    await asyncio.sleep(sender.wait)
            except TimeoutError:
                sender.timed_out += 1
        elif sender.within == "a shield":
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(sender.wait)
        elif sender.wait:
            await asyncio.sleep(sender.wait)
        sender.released += 1


class _SlowReleaseSender:
    def __init__(self, wait: float, within: str = "") -> None:
        self.wait = wait
        self.within = within
        self.releasing = asyncio.Event()
        self.released = 0
        self.timed_out = 0

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        return _Exchange(self)

    async def aclose(self) -> None:
        return None


def _client(sender: Any) -> ResilientClient:
    profile = AuthProfile("k0", "openai", "sk-test-key-0001", base_url=URL)
    return ResilientClient(["openai/gpt-4o-mini"], [profile], sender=sender)


@pytest.mark.parametrize("wait", [0.0, 0.02])
async def test_a_stream_read_to_its_end_is_released_whether_or_not_its_release_waits(
    wait: float,
) -> None:
    sender = _SlowReleaseSender(wait)
    client = _client(sender)
    async with client.stream(MESSAGES) as stream:
        texts = [chunk.text async for chunk in stream]
    await client.aclose()
    assert "".join(texts) == "Hello" and stream.finish_reason == "stop"
    assert stream.usage is not None and stream.usage.output_tokens == 2
    assert sender.released == 1


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="asyncio.timeout: Python 3.11+")
@pytest.mark.parametrize("within", ["its own timeout", "a shield"])
async def test_a_release_that_waits_inside_what_it_entered_finishes_and_the_stream_ends_well(
    within: str,
) -> None:
    sender = _SlowReleaseSender(0.02, within)
    client = _client(sender)
    async with client.stream(MESSAGES) as stream:
        texts = [chunk.text async for chunk in stream]
    await client.aclose()
    assert "".join(texts) == "Hello"
    assert sender.released == 1
    assert sender.timed_out == (1 if within == "its own timeout" else 0)


async def test_a_release_that_waits_ends_even_when_the_reader_is_cancelled_meanwhile() -> None:
    sender = _SlowReleaseSender(0.05)
    client = _client(sender)

    async def read() -> None:
        async for _ in client.stream(MESSAGES):
            pass

    reading = asyncio.ensure_future(read())
    await sender.releasing.wait()  # the stream has ended; its release waits
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert sender.released == 0
    await asyncio.sleep(0.2)
    assert sender.released == 1  # the rest of the release ran all the same
    await client.aclose()


@pytest.mark.parametrize("exits_at_once", [True, False])
async def test_close_opened_releases_a_stream_read_to_its_end_in_place_when_nothing_waits(
    exits_at_once: bool,
) -> None:
    exits: list[asyncio.Task[Any] | None] = []

    class Opener:
        async def __aexit__(self, *exc: object) -> None:
            exits.append(asyncio.current_task())

    opener = Opener()
    if exits_at_once:  # the sender says leaving waits for nothing
        opener.exits_at_once = True  # type: ignore[attr-defined]
    reader = ChunkReader(get_adapter("openai"), _Reply(BODY))  # type: ignore[arg-type]
    while await reader.next() is not None:
        pass
    await close_opened((opener, reader))
    assert len(exits) == 1
    # run here only when the sender says so (the body had ended); else in a task of its own
    assert (exits[0] is asyncio.current_task()) is exits_at_once


async def test_close_opened_releases_a_stream_left_early_in_a_task_of_its_own() -> None:
    exits: list[asyncio.Task[Any] | None] = []

    class Opener:
        async def __aexit__(self, *exc: object) -> None:
            exits.append(asyncio.current_task())

    reader = ChunkReader(get_adapter("openai"), _Reply(BODY))  # type: ignore[arg-type]
    assert (await reader.next()) is not None  # left after its first chunk
    await close_opened((Opener(), reader))
    assert len(exits) == 1 and exits[0] is not asyncio.current_task()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("deadline", [None, 30.0])
async def test_a_body_left_open_after_its_terminator_ends_the_stream_all_the_same(
    deadline: float | None, anyio_backend: str
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield BODY.encode()
        await anyio.sleep(3600)  # the server keeps the body open after [DONE]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", "sk-test-key-0001", base_url=URL)
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http, deadline=deadline)
    with anyio.fail_after(10):  # a hang fails the test, the drain's moment is far shorter
        async with client.stream(MESSAGES) as stream:
            texts = [chunk.text async for chunk in stream]
    await client.aclose()
    await http.aclose()
    assert "".join(texts) == "Hello" and stream.finish_reason == "stop"


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_deadline_bounds_a_read_that_waits_mid_stream(anyio_backend: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield _sse(json.dumps({"choices": [{"index": 0, "delta": {"content": "Hel"}}]})).encode()
        await anyio.sleep(3600)  # then nothing

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", "sk-test-key-0001", base_url=URL)
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http, deadline=0.3)
    texts: list[str] = []

    async def read() -> None:
        async with client.stream(MESSAGES) as stream:
            async for chunk in stream:
                texts.append(chunk.text)

    with anyio.fail_after(10), pytest.raises(StreamInterrupted) as raised:
        await read()
    await client.aclose()
    await http.aclose()
    assert texts == ["Hel"]
    assert isinstance(raised.value.error, ProviderTimeoutError)
    assert "deadline" in str(raised.value.error)


class _LateEnd(_Reply):
    """A reply whose body's end comes ``after`` seconds after its text (never: ``None``),
    with ``more`` pieces of text past the terminator first."""

    def __init__(self, after: float | None, more: int = 0) -> None:
        super().__init__(BODY)
        self._after = after
        self._more = more

    async def aiter_text(self) -> AsyncIterator[str]:
        yield self._body
        for _ in range(self._more):
            yield ": a comment past the terminator\n\n"
        if self._after != 0.0:
            with anyio.CancelScope():  # a scope of the body's own around its wait (httpcore's)
                await anyio.sleep(3600 if self._after is None else self._after)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("after", "more", "ended"),
    [(0.0, 0, True), (0.0, 2, True), (0.01, 1, True), (None, 1, False)],
)
async def test_a_reader_reads_on_to_the_bodys_end_for_a_moment_only(
    after: float | None, more: int, ended: bool, anyio_backend: str
) -> None:
    reader = ChunkReader(get_adapter("openai"), _LateEnd(after, more))  # type: ignore[arg-type]
    read = []
    with anyio.fail_after(10):
        while (chunk := await reader.next()) is not None:
            read.append(chunk)
    assert "".join(c.text for c in read) == "Hello" and read[-1].finish_reason == "stop"
    assert reader._ended is ended  # the body's end read (the reply may go back to its pool)


async def test_a_parser_that_fails_mid_stream_releases_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = type(get_adapter("openai").stream_parser())
    feed = parser.feed
    fed: list[str] = []

    def failing(self: Any, event: str, data: str) -> Any:
        fed.append(data)
        if len(fed) == 2:  # the second chunk, read among what was read already
            raise RuntimeError("a parser's own bug")
        return feed(self, event, data)

    monkeypatch.setattr(parser, "feed", failing)
    sender = _SlowReleaseSender(0.0)
    client = _client(sender)
    texts: list[str] = []

    async def read() -> None:
        async for chunk in client.stream(MESSAGES):  # no async with: the stream ends itself
            texts.append(chunk.text)

    with pytest.raises(RuntimeError, match="own bug"):
        await read()
    assert texts == ["Hel"]
    assert sender.released == 1
    await client.aclose()
