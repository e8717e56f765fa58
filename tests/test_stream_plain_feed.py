"""A parser that hands a text-only delta on as its text (``text_or_chunk``, issue 25).

OpenAI's stream parser says "a delta of text alone" by handing on the text, a ``str``, so
that its readers (ChunkReader, StreamReader) make the chunk without reading its fields; its
``feed`` is made of that and answers as before. A ``feed`` replaced (a subclass's, a patched
one) is what the readers call then.
"""

from __future__ import annotations

from typing import Any

import pytest

from failover.chat_calls import ChunkReader
from failover.errors import MalformedResponseError
from failover.providers import get_adapter
from failover.providers.base import StreamChunk, StreamReader
from failover.providers.reading import feed_made_of_text_or_chunk, plain_feed

PLAIN = '{"choices":[{"delta":{"content":"Hi"}}]}'


def _parser() -> Any:
    return get_adapter("openai").stream_parser()


def test_a_text_only_delta_comes_as_its_text_and_feed_makes_its_chunk() -> None:
    parser = _parser()
    assert type(parser).feed is feed_made_of_text_or_chunk
    assert parser.text_or_chunk("message", PLAIN) == "Hi"
    chunk = parser.feed("message", PLAIN)
    assert type(chunk) is StreamChunk and chunk == StreamChunk("Hi")
    assert plain_feed(parser) == parser.text_or_chunk


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"choices":[{"delta":{"content":"h\\u00e9"}}]}', "hé"),  # escaped: ASCII
        ('{"choices":[{"delta":{"content":"hé"}}]}', "hé"),  # not ASCII: load_json's way
        (PLAIN + " \r\n", "Hi"),  # JSON's whitespace after it: load_json's way
    ],
)
def test_data_read_beside_the_scanner_answers_as_load_json_does(data: str, expected: str) -> None:
    assert _parser().feed("message", data) == StreamChunk(expected)


@pytest.mark.parametrize(
    "data",
    [
        '{"choices":[{"delta":{"content":"\udce9"}}]}',  # a byte that was not UTF-8
        PLAIN + PLAIN,  # two values
        '{"choices":',  # cut short
    ],
)
def test_data_that_is_not_one_chunk_is_refused(data: str) -> None:
    with pytest.raises(MalformedResponseError):
        _parser().text_or_chunk("message", data)


def test_other_chunks_come_as_chunks() -> None:
    parser = _parser()
    finish = '{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}'
    got = parser.text_or_chunk("message", finish)
    assert type(got) is StreamChunk and got.text == "a" and got.finish_reason == "stop"
    assert parser.text_or_chunk("message", "[DONE]") is None and parser.complete


def test_a_replaced_feed_is_what_the_readers_call() -> None:
    base = type(_parser())

    class Shouting(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def feed(self, event: str, data: str) -> StreamChunk | None:
            chunk = super().feed(event, data)
            return None if chunk is None else StreamChunk(chunk.text.upper())

    parser = Shouting()
    assert plain_feed(parser) == parser.feed
    reader = StreamReader(parser, sse=True)
    reader.line("data: " + PLAIN)
    assert reader.line("") == StreamChunk("HI")


def test_stream_reader_hands_on_chunks_not_texts() -> None:
    reader = StreamReader(_parser(), sse=True)
    assert reader.line("data: " + PLAIN) is None
    chunk = reader.line("")
    assert type(chunk) is StreamChunk and chunk == StreamChunk("Hi")


class _Reply:
    status_code = 200

    def __init__(self, body: str) -> None:
        self.headers = {"content-type": "text/event-stream"}
        self._body = body

    async def _texts(self) -> Any:
        yield self._body

    def aiter_text(self) -> Any:
        return self._texts()


async def test_chunk_reader_hands_on_chunks_equal_to_feeds() -> None:
    finish = '{"choices":[{"delta":{},"finish_reason":"stop"}]}'
    body = "".join(f"data: {data}\n\n" for data in (PLAIN, PLAIN, finish, "[DONE]"))
    reader = ChunkReader(get_adapter("openai"), _Reply(body))  # type: ignore[arg-type]
    read = []
    while (chunk := await reader.next()) is not None:
        read.append(chunk)
    assert all(type(chunk) is StreamChunk for chunk in read)
    assert read[:2] == [StreamChunk("Hi"), StreamChunk("Hi")]
    assert read[2].finish_reason == "stop" and len(read) == 3
