"""A translated step's stream read to its end is released in place, as the client's are.

The transport's exchanges say, as ``exits_at_once`` (see ``failover.http.Sender``), that
leaving them waits for nothing once their reply is closed (read to its end): the stream is
then released where it is read, not in a task of its own (``close_opened``); a reply
still open is released in one, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from failover import chat_calls
from failover.providers import get_adapter
from failover.providers.base import HttpRequest
from failover.transport_io import AsyncIO, IOSender
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

_EVENTS = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
    b'"role":"assistant","model":"c","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}'
    b"\n\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'
    b"\n\n"
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":1}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


class _Pieces(httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data

    async def aclose(self) -> None:
        self.closed = True


class _Inner:
    def __init__(self) -> None:
        self.streams: list[_Pieces] = []

    async def handle_async_request(self, request: Any) -> Any:
        stream = _Pieces(_EVENTS)
        self.streams.append(stream)
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, headers=headers, stream=stream, request=request)

    async def aclose(self) -> None:
        pass


def _sender(inner: _Inner) -> IOSender:
    return IOSender(AsyncIO(inner), httpx2, {})


_REQUEST = HttpRequest("POST", "http://127.0.0.1:9/v1/messages", {"x-api-key": "k"}, b"{}")


@pytest.fixture
def released_in_tasks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The releases ``close_opened`` runs in a task of their own (each run, and noted)."""
    released: list[Any] = []

    async def in_a_task(work: Any) -> None:
        released.append(work)
        await work()

    monkeypatch.setattr(chat_calls, "finish_even_if_cancelled", in_a_task)
    return released


async def test_an_exchange_exits_at_once_only_when_its_reply_is_closed() -> None:
    inner = _Inner()
    opener = _sender(inner).open(_REQUEST, 5.0)
    assert opener.exits_at_once  # nothing sent yet: nothing to release
    reply = await opener.__aenter__()
    assert not opener.exits_at_once  # its body unread: releasing it is work
    texts = [text async for text in reply.aiter_text()]
    assert "".join(texts) == _EVENTS.decode()
    assert opener.exits_at_once  # read to its end: closed already
    await opener.__aexit__(None, None, None)
    assert inner.streams[0].closed


async def _opened_stream() -> tuple[_Inner, Any, chat_calls.ChunkReader]:
    """A translated Anthropic stream opened through an IOSender, and its chunk reader."""
    inner = _Inner()
    opener = _sender(inner).open(_REQUEST, 5.0)
    reply = await opener.__aenter__()
    return inner, opener, chat_calls.ChunkReader(get_adapter("anthropic"), reply)


async def test_a_stream_read_to_its_end_is_released_without_a_task_of_its_own(
    released_in_tasks: list[Any],
) -> None:
    inner, opener, reader = await _opened_stream()
    chunks = []
    while not reader.done:
        chunk = await reader.next()
        if chunk is not None:
            chunks.append(chunk)
    assert "".join(c.text for c in chunks) == "hi"
    await chat_calls.close_opened((opener, reader, chunks[0]))
    assert released_in_tasks == [] and inner.streams[0].closed


async def test_a_stream_left_before_its_end_is_released_in_a_task_of_its_own(
    released_in_tasks: list[Any],
) -> None:
    inner, opener, reader = await _opened_stream()
    first = await reader.next()
    assert first is not None and not reader.done
    await chat_calls.close_opened((opener, reader, first))
    assert len(released_in_tasks) == 1 and inner.streams[0].closed
