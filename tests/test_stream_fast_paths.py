"""A stream's lighter paths (issue 25) answer exactly as the general ones do.

OpenAI's stream parser reads a text-only delta at once and everything else through every
check; ChunkReader hands a delta-only chunk on as the parser made it and pulls an event
stream's lines itself. Each is checked against the general path: the same chunks, the same
errors, the same state after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import AuthProfile, ResilientClient
from failover.chat_calls import ChunkReader
from failover.errors import (
    ContentFilteredError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterrupted,
)
from failover.providers import get_adapter
from failover.providers.base import StreamAssembler, StreamChunk, ToolCallDelta
from tests.fast_paths import answer, json_values

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(data: list[str]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """What the parser's ``feed`` and its general path answer for each of ``data``, and
    their state (terminator seen, tool calls seen) after each."""
    fast, general = get_adapter("openai").stream_parser(), get_adapter("openai").stream_parser()
    fast_answers, general_answers = [], []
    for item in data:
        fast_answers.append((answer(lambda d: fast.feed("message", d), item), fast.complete))
        general_answers.append((answer(general._feed, item), general.complete))  # type: ignore[attr-defined]
        assert fast._tools == general._tools  # type: ignore[attr-defined]
    return fast_answers, general_answers


def _chunk(delta: Any, finish: Any = None, **extra: Any) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


ODD_CHUNKS = [
    _chunk({"content": "Hi"}),
    _chunk({"role": "assistant", "content": ""}),
    _chunk({}),
    _chunk({"content": None}),
    _chunk({"content": None, "refusal": "I can't"}),
    _chunk({"content": "x", "refusal": "no"}),
    _chunk({"content": "x", "refusal": None}),
    _chunk({"content": [{"type": "text", "text": "parts"}]}),
    _chunk({"content": 5}),
    _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]}),
    _chunk({"content": "x", "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    _chunk({"content": "x", "tool_calls": "no"}),
    _chunk({"content": "x"}, "stop"),
    _chunk({"content": "x"}, "content_filter"),
    _chunk({"content": "x"}, 3),
    _chunk({}, "tool_calls"),
    _chunk({"content": "x"}, usage={"prompt_tokens": 3, "completion_tokens": 1}),
    _chunk({"content": "x"}, usage=None),
    json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 20}}),
    json.dumps({"choices": [], "usage": {"prompt_tokens": -1}}),
    json.dumps({"choices": []}),
    json.dumps({"choices": None}),
    json.dumps({"choices": {"0": {"delta": {"content": "x"}}}}),
    json.dumps({"choices": ["x"]}),
    json.dumps({"choices": [{"delta": "x"}]}),
    json.dumps({"choices": [{"delta": {"content": "x"}}, {"delta": {"content": "y"}}]}),
    json.dumps({"error": {"message": "overloaded", "type": "server_error"}}),
    json.dumps({"error": {"message": "slow down", "code": 429}, "choices": []}),
    json.dumps([1, 2]),
    '{"choices": [{"delta": {"content": "x"}}]} ',
    '{"choices": [{"delta": {"content": "x"}}]} {}',
    '{"choices": [{"delta": {"content": "x"}}]',
    '{"choices": [{"delta": {"content": "caf\\u00e9"}}]}',
    '{"choices": [{"delta": {"content": "café"}}]}',
    '{"choices": [{"delta": {"content": "lone \udcff"}}]}',
    '{"choices": [{"delta": {"content": "x", "content": "y"}}]}',
    "{" * 100_000,
    "",
    "  [DONE]",
    "[DONE]",
    "not json",
]


@pytest.mark.parametrize("data", ODD_CHUNKS, ids=range(len(ODD_CHUNKS)))
def test_openai_stream_feed_answers_each_odd_chunk_as_the_general_path(data: str) -> None:
    fast, general = _both([data])
    assert fast == general


def test_openai_stream_feed_answers_a_whole_stream_with_tool_calls_as_the_general_path() -> None:
    stream = [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}),
        _chunk({"content": "and text"}),
        _chunk({}, "stop"),  # "stop" after a tool call is tool_calls
        json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
        "[DONE]",
    ]
    fast, general = _both(stream)
    assert fast == general
    assert fast[4][0][1].finish_reason == "tool_calls"
    assert fast[-1][1] is True


near_text = st.one_of(st.text(max_size=8), st.none(), json_values)
deltas = st.fixed_dictionaries(
    {"content": near_text},
    optional={"role": st.just("assistant"), "refusal": near_text, "tool_calls": json_values},
)
choices = st.fixed_dictionaries(
    {"delta": deltas | json_values},
    optional={"finish_reason": st.sampled_from([None, "stop", "length"]) | json_values},
)
chunks = st.fixed_dictionaries(
    {"choices": st.lists(choices, max_size=2) | json_values},
    optional={"usage": st.none() | json_values, "error": json_values, "id": st.text(max_size=4)},
)


@SETTINGS
@given(chunk=chunks | json_values)
def test_openai_stream_feed_answers_any_chunk_near_a_text_delta_as_the_general_path(
    chunk: Any,
) -> None:
    fast, general = _both([json.dumps(chunk)])
    assert fast == general


class _Reply:
    """A streamed reply whose body arrives in the given pieces of text."""

    def __init__(self, pieces: list[str], content_type: str = "text/event-stream") -> None:
        self.headers: Mapping[str, str] = {"content-type": content_type}
        self.status_code = 200
        self._pieces = pieces
        self.closed = False

    async def aread(self) -> bytes:
        return "".join(self._pieces).encode()

    async def aiter_text(self) -> AsyncIterator[str]:
        try:
            for piece in self._pieces:
                yield piece
        finally:
            self.closed = True

    async def aiter_lines(self) -> AsyncIterator[str]:
        raise AssertionError("an event stream is read as text")
        yield ""


def _sse(*data: str) -> str:
    return "".join(f"data: {item}\n\n" for item in data)


STREAM = _sse(
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hel"}),
    _chunk({"content": "lo"}),
    _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    _chunk({"content": "!"}, "stop"),
    json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}),
    "[DONE]",
)


async def _read(reply: _Reply) -> list[StreamChunk]:
    reader = ChunkReader(get_adapter("openai"), reply)  # type: ignore[arg-type]
    read = []
    while (chunk := await reader.next()) is not None:
        read.append(chunk)
    assert reader.done
    return read


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points) if text[a:b]]


@pytest.mark.anyio
async def test_chunk_reader_hands_on_deltas_alone_then_one_summary() -> None:
    chunks = await _read(_Reply([STREAM]))
    assert [(c.text, c.tool_calls) for c in chunks[:-1]] == [
        ("Hel", ()),
        ("lo", ()),
        ("", (ToolCallDelta(0, "c1", "f", ""),)),
        ("", (ToolCallDelta(0, None, None, "{}"),)),
        ("!", ()),
    ]
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    summary = chunks[-1]
    assert (summary.text, summary.finish_reason, summary.raw_finish_reason) == (
        "",
        "tool_calls",
        "stop",
    )
    assert summary.usage is not None and summary.usage.output_tokens == 3


@SETTINGS
@given(cuts=st.lists(st.integers(min_value=0), max_size=12), crlf=st.booleans())
@pytest.mark.anyio
async def test_chunk_reader_reads_the_same_chunks_however_the_body_is_cut(
    cuts: list[int], crlf: bool
) -> None:
    body = STREAM.replace("\n", "\r\n") if crlf else STREAM
    assert await _read(_Reply(_split(body, cuts))) == await _read(_Reply([STREAM]))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        _sse(_chunk({"content": "Hi"})),
        _sse(_chunk({"content": "Hi"}), _chunk({}, "stop")),
        _sse(_chunk({"content": "Hi"})) + "data: [DONE]",  # no blank line: no event
        "",
    ],
)
async def test_chunk_reader_raises_for_a_stream_cut_before_its_terminator(body: str) -> None:
    with pytest.raises(MalformedResponseError, match="before its terminator"):
        await _read(_Reply([body] if body else []))


@pytest.mark.anyio
async def test_chunk_reader_raises_an_error_event_after_the_chunks_before_it() -> None:
    body = _sse(_chunk({"content": "Hi"}), json.dumps({"error": {"message": "boom"}}), "[DONE]")
    reader = ChunkReader(get_adapter("openai"), _Reply([body]))  # type: ignore[arg-type]
    first = await reader.next()
    assert first is not None and first.text == "Hi"
    with pytest.raises(ProviderError, match="boom"):
        await reader.next()


@pytest.mark.anyio
async def test_chunk_reader_raises_a_refusal_mid_stream() -> None:
    body = _sse(_chunk({"content": "Hi"}), _chunk({"refusal": "no"}), "[DONE]")
    with pytest.raises(ContentFilteredError):
        await _read(_Reply([body]))


@pytest.mark.anyio
async def test_chunk_reader_refuses_a_reply_that_is_not_an_event_stream() -> None:
    with pytest.raises(MalformedResponseError, match="not an event stream"):
        await _read(_Reply([STREAM], content_type="application/json"))


@pytest.mark.anyio
async def test_chunk_reader_closing_early_closes_the_body() -> None:
    reply = _Reply([_sse(_chunk({"content": "a"})), _sse(_chunk({"content": "b"}), "[DONE]")])
    reader = ChunkReader(get_adapter("openai"), reply)  # type: ignore[arg-type]
    assert (await reader.next()) is not None
    await reader.aclose()
    assert reply.closed


def test_assembler_add_delta_assembles_deltas_as_add_does() -> None:
    deltas = [
        StreamChunk("Hel"),
        StreamChunk(tool_calls=(ToolCallDelta(0, "c1", "f", '{"a"'),)),
        StreamChunk("lo", tool_calls=(ToolCallDelta(0, arguments=": 1}"),)),
        StreamChunk(tool_calls=(ToolCallDelta(1, "c2", "g"),)),
        StreamChunk("!"),
    ]
    general, lighter = StreamAssembler(), StreamAssembler()
    for chunk in deltas:
        general.add(chunk)
        lighter.add_delta(chunk)
    assert (lighter.text, lighter.tool_calls, lighter.message) == (
        general.text,
        general.tool_calls,
        general.message,
    )
    assert lighter.text == "Hello!"
    assert [call.args for call in lighter.tool_calls] == [{"a": 1}, {}]


def _stalling_client(deadline: float) -> tuple[ResilientClient, httpx.AsyncClient]:
    """A client whose stream sends two deltas in one piece, then nothing (for an hour)."""

    async def body() -> AsyncIterator[bytes]:
        yield _sse(_chunk({"content": "Hel"}), _chunk({"content": "lo"})).encode()
        await asyncio.sleep(3600)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", "sk-test-key-0001", base_url="http://127.0.0.1:9/v1")
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http, deadline=deadline)
    return client, http


@pytest.mark.anyio
async def test_a_deadline_still_bounds_a_read_after_chunks_read_at_once() -> None:
    client, http = _stalling_client(deadline=0.5)
    texts: list[str] = []

    async def read_all() -> None:
        async with client.stream([{"role": "user", "content": "hi"}]) as stream:
            async for chunk in stream:
                texts.append(chunk.text)

    with pytest.raises(StreamInterrupted) as raised:
        await read_all()
    await client.aclose()
    await http.aclose()
    assert texts == ["Hel", "lo"]
    assert raised.value.partial_text == "Hello"
    assert isinstance(raised.value.error, ProviderTimeoutError)
    assert "deadline" in str(raised.value.error)
