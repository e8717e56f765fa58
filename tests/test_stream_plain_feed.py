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


async def _read_all(reader: ChunkReader) -> list[StreamChunk]:
    read = []
    while (chunk := await reader.next()) is not None:
        read.append(chunk)
    return read


async def test_the_plain_delta_reader_reads_as_the_chunk_reader_does() -> None:
    tool = '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f"}}]}}]}'
    finish = '{"choices":[{"delta":{"content":"!"},"finish_reason":"tool_calls"}]}'
    usage = '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    body = "".join(
        f"data: {data}\n\n" for data in (PLAIN, tool, PLAIN, finish, usage, "[DONE]", PLAIN)
    )
    adapter = get_adapter("openai")
    plain = ChunkReader.of(adapter, _Reply(body))  # type: ignore[arg-type]
    assert type(plain) is not ChunkReader and isinstance(plain, ChunkReader)
    general = ChunkReader(adapter, _Reply(body))  # type: ignore[arg-type]
    assert type(general) is ChunkReader
    read = await _read_all(plain)
    assert read == await _read_all(general)
    assert all(type(chunk) is StreamChunk for chunk in read)
    assert [chunk.text for chunk in read] == ["Hi", "", "Hi", "!", ""]
    assert read[1].tool_calls[0].name == "f"
    assert read[-1].finish_reason == "tool_calls" and read[-1].usage is not None
    assert read[-1].usage.output_tokens == 4


def test_a_parser_without_text_or_chunk_gets_the_chunk_reader() -> None:
    reader = ChunkReader.of(get_adapter("anthropic"), _Reply(""))  # type: ignore[arg-type]
    assert type(reader) is ChunkReader
