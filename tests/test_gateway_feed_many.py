"""Chunks read together are encoded together (``feed_many``), into the very bytes that
feeding them one at a time writes, for every wire: a run of text deltas at once, anything
else (the opening, tool calls, the finish, usage, empty texts) as ``feed`` writes it."""

from __future__ import annotations

import copy
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.catalog import TokenUsage
from failover.gateway import Wire, decode_request, framing, stream_encoder
from failover.gateway.stream import texts_alone
from failover.providers.base import StreamChunk, ToolCallDelta

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
REQUESTS: dict[Wire, tuple[str, dict[str, object]]] = {
    "openai": (
        "/v1/chat/completions",
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "responses": ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
    "anthropic": (
        "/v1/messages",
        {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "gemini": (
        "/v1beta/models/m:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
}


@st.composite
def streams(draw: st.DrawFn) -> list[StreamChunk]:
    """Text deltas (some empty), a tool call's fragments, more text, the finish, usage."""
    chunks = [StreamChunk(text) for text in draw(st.lists(TEXT | st.just(""), max_size=8))]
    if draw(st.booleans()):
        fragments = draw(st.lists(TEXT, min_size=1, max_size=3))
        chunks.append(StreamChunk(tool_calls=(ToolCallDelta(0, "call_1", "look", fragments[0]),)))
        chunks += [StreamChunk(tool_calls=(ToolCallDelta(0, arguments=f),)) for f in fragments[1:]]
    chunks += [StreamChunk(text) for text in draw(st.lists(TEXT, max_size=4))]
    chunks.append(StreamChunk(finish_reason=draw(st.sampled_from(["stop", "length", None]))))
    chunks.append(StreamChunk(usage=TokenUsage(input_tokens=3, output_tokens=len(chunks))))
    return chunks


def _groups(chunks: list[StreamChunk], cuts: list[int]) -> list[list[StreamChunk]]:
    points = sorted({cut % (len(chunks) + 1) for cut in cuts} | {0, len(chunks)})
    return [chunks[a:b] for a, b in itertools.pairwise(points) if b > a]


@pytest.mark.parametrize("wire", list(REQUESTS))
@settings(max_examples=60, deadline=None)
@given(chunks=streams(), cuts=st.lists(st.integers(0, 100), max_size=6))
def test_chunks_encoded_together_are_the_bytes_of_each_encoded_alone(
    wire: Wire, chunks: list[StreamChunk], cuts: list[int]
) -> None:
    url, body = REQUESTS[wire]
    with pytest.MonkeyPatch.context() as patch:
        # ids the encoders make while streaming (a Responses call's item) drawn alike
        patch.setattr(framing.secrets, "token_bytes", bytes)
        one_by_one = stream_encoder(decode_request(url, body), model="claude-haiku-4-5")
        together = copy.deepcopy(one_by_one)  # the same ids and creation time
        alone = b"".join(one_by_one.feed(chunk) for chunk in chunks) + one_by_one.close()
        grouped = b"".join(together.feed_many(group) for group in _groups(chunks, cuts))
        assert grouped + together.close() == alone


def test_a_run_of_text_deltas_is_one_chunk_per_text_in_openai_chat() -> None:
    encoder = stream_encoder(decode_request(*REQUESTS["openai"]), model="gpt-4o-mini")
    encoder.feed(StreamChunk("a"))  # the opening
    data = encoder.feed_many([StreamChunk('"b\n'), StreamChunk(""), StreamChunk("é\u2028")])
    events = data.decode().split("\n\n")
    assert events[-1] == ""
    deltas = [json.loads(event.removeprefix("data: "))["choices"][0] for event in events[:-1]]
    assert [delta["delta"] for delta in deltas] == [{"content": '"b\n'}, {"content": "é\u2028"}]
    assert {delta["finish_reason"] for delta in deltas} == {None}


def test_texts_alone_are_only_chunks_that_carry_nothing_else() -> None:
    assert texts_alone([StreamChunk("a"), StreamChunk(""), StreamChunk("b")]) == ["a", "b"]
    assert texts_alone([StreamChunk("a"), StreamChunk("b", finish_reason="stop")]) is None
    assert texts_alone([StreamChunk("a", usage=TokenUsage(output_tokens=1))]) is None
    call = ToolCallDelta(0, "call_1", "look", "{}")
    assert texts_alone([StreamChunk("a"), StreamChunk(tool_calls=(call,))]) is None
