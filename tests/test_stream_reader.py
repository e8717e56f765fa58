"""One stream reader per wire format, shared by ResilientClient and the SDK transport's guard,
and one way for the adapters to build their results."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from failover.catalog import TokenUsage
from failover.errors import MalformedResponseError, RateLimitError
from failover.providers import get_adapter
from failover.providers.base import (
    StreamChunk,
    StreamReader,
    ToolCall,
    call_deltas,
    chat_result,
    embedding_result,
)
from failover.transport_guard import Endpoint, endpoint_of

pytestmark = pytest.mark.anyio


class Recorder:
    """A wire parser that records what it is fed and ends at ``{"end": true}``."""

    def __init__(self) -> None:
        self.complete = False
        self.fed: list[tuple[str, str]] = []

    def feed(self, event: str, data: str) -> StreamChunk | None:
        self.fed.append((event, data))
        self.complete = self.complete or data == '{"end": true}'
        return StreamChunk(data)


def test_sse_events_are_cut_at_blank_lines_with_their_names_and_joined_data_lines() -> None:
    recorder = Recorder()
    reader = StreamReader(recorder, sse=True)
    lines = [": a comment", "event: delta", "data: one", "data:two", "", "data: {}", "", ""]
    chunks = [reader.line(line) for line in lines]
    assert recorder.fed == [("delta", "one\ntwo"), ("message", "{}")]
    assert [chunk.text for chunk in chunks if chunk is not None] == ["one\ntwo", "{}"]


def test_ndjson_lines_are_fed_one_by_one_and_blank_lines_skipped() -> None:
    recorder = Recorder()
    reader = StreamReader(recorder, sse=False)
    for line in ['{"a": 1}', "   ", '{"end": true}']:
        reader.line(line)
    assert recorder.fed == [("", '{"a": 1}'), ("", '{"end": true}')]
    assert reader.complete


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_chunks_stop_at_the_terminator_without_reading_what_follows() -> None:
    recorder = Recorder()
    reader = StreamReader(recorder, sse=False)
    chunks = [c.text async for c in reader.chunks(_lines('{"a": 1}', '{"end": true}', "junk"))]
    assert chunks == ['{"a": 1}', '{"end": true}']
    assert ("", "junk") not in recorder.fed


async def test_a_stream_that_ends_before_its_terminator_is_malformed() -> None:
    reader = StreamReader(Recorder(), sse=True)
    with pytest.raises(MalformedResponseError, match="before its terminator"):
        async for _ in reader.chunks(_lines("data: {}", "")):
            pass


async def test_the_client_and_the_transport_read_a_wire_alike() -> None:
    # the transport's guard of /chat/completions reads with the openai adapter's parser
    guard = endpoint_of("POST", "/v1/chat/completions")
    assert guard is not None
    guarded = guard.stream_reader()
    assert guarded is not None
    client = StreamReader(get_adapter("openai").stream_parser(), sse=True)
    stream = [
        'data: {"choices": [{"delta": {"content": "Hi"}}]}',
        "",
        'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}',
        "",
        "data: [DONE]",
        "",
    ]
    seen = [
        [(c.text, c.finish_reason) for line in stream if (c := reader.line(line)) is not None]
        for reader in (client, guarded)
    ]
    assert seen[0] == seen[1] == [("Hi", None), ("", "stop")]
    assert client.complete and guarded.complete


def test_an_error_event_raises_the_providers_error_through_the_reader() -> None:
    reader = StreamReader(get_adapter("anthropic").stream_parser(), sse=True)
    reader.line("event: error")
    reader.line('data: {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}')
    with pytest.raises(RateLimitError):
        reader.line("")


def test_an_unnamed_responses_event_ends_the_stream_by_its_type() -> None:
    guard = endpoint_of("POST", "/v1/responses")
    assert guard is not None
    ids: list[str] = []
    reader = guard.stream_reader(ids.append)
    assert reader is not None
    reader.line('data: {"type": "response.completed", "response": {"id": "resp_1"}}')
    assert not reader.complete
    reader.line("")
    assert reader.complete


def test_a_result_without_readable_usage_says_so() -> None:
    call = ToolCall("c1", "f", "{}")
    known = chat_result("", "tool_calls", TokenUsage(input_tokens=3), {}, [call], "tool_use")
    assert known.usage_known and known.usage.input_tokens == 3
    assert known.tool_calls == (call,) and known.raw_finish_reason == "tool_use"
    unknown = chat_result("hi", "stop", None, {})
    assert not unknown.usage_known and unknown.usage == TokenUsage()
    assert not embedding_result([[1.0]], 1, TokenUsage(), known=False).usage_known
    with pytest.raises(MalformedResponseError, match="2 vectors for 1 inputs"):
        embedding_result([[1.0], [2.0]], 1, None)


def test_whole_tool_calls_of_a_stream_are_numbered_on_from_the_earlier_ones() -> None:
    calls = [ToolCall("a", "f", "{}", "sig"), ToolCall("b", "g", "[]")]
    deltas = call_deltas(calls, 2)
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (2, "a", "f", "{}"),
        (3, "b", "g", "[]"),
    ]
    assert deltas[0].thought_signature == "sig"


class FakeReply:
    """A streamed reply's body, in the pieces it arrives in."""

    def __init__(self, content_type: str, *pieces: str) -> None:
        self.headers = {"content-type": content_type}
        self._pieces = pieces

    async def aiter_text(self) -> AsyncIterator[str]:
        for piece in self._pieces:
            yield piece

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in "".join(self._pieces).splitlines():
            yield line


async def test_an_event_streams_lines_break_at_cr_lf_and_crlf_even_across_pieces() -> None:
    recorder = Recorder()
    reader = StreamReader(recorder, sse=True)
    reply = FakeReply(
        "text/event-stream; charset=utf-8", "data: a\r", "\ndata: b\r\rdata: ", '{"end": true}\n\n'
    )
    texts = [chunk.text async for chunk in reader.chunks(reader.lines_of(reply))]
    assert texts == ["a\nb", '{"end": true}']


async def test_a_reply_that_is_not_an_event_stream_is_malformed() -> None:
    reader = StreamReader(Recorder(), sse=True)
    with pytest.raises(MalformedResponseError, match="not an event stream"):
        async for _ in reader.chunks(reader.lines_of(FakeReply("application/json", "{}"))):
            pass


async def test_ndjson_replies_are_read_line_by_line() -> None:
    reader = StreamReader(Recorder(), sse=False)
    reply = FakeReply("application/x-ndjson", '{"a": 1}\n{"end": true}\n')
    texts = [chunk.text async for chunk in reader.chunks(reader.lines_of(reply))]
    assert texts == ['{"a": 1}', '{"end": true}']


def test_the_transport_reads_text_streams_only() -> None:
    # each text wire's streams are read line by line; Bedrock's binary frames are not lines
    assert Endpoint((), "ollama-native").stream_reader() is not None
    assert Endpoint((), "bedrock").stream_reader() is None
