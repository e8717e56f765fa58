"""A text delta made the short way (``text_delta``) is the record ``StreamChunk(text)`` is."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from failover.providers.results import StreamChunk, ToolCallDelta, text_delta


@pytest.mark.parametrize("text", ["tok ", "", "héllo \u2028", "x" * 10_000])
def test_a_text_delta_is_the_chunk_the_dataclass_makes(text: str) -> None:
    made, expected = text_delta(text), StreamChunk(text)
    assert type(made) is StreamChunk
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)  # every field set
    assert made == expected and hash(made) == hash(expected)
    assert repr(made) == repr(expected)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.deepcopy(made) == expected and copy.copy(made) == expected
    assert dataclasses.replace(made, text="other") == StreamChunk("other")
    assert dataclasses.asdict(made) == dataclasses.asdict(expected)
    assert made != StreamChunk(text, tool_calls=(ToolCallDelta(0),))


def test_a_text_delta_is_frozen() -> None:
    made = text_delta("tok ")
    for field in dataclasses.fields(StreamChunk):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, field.name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        del made.text
    assert made == StreamChunk("tok ")


def test_a_stream_s_text_chunks_are_text_deltas() -> None:
    from failover.providers.openai import OpenAIAdapter

    parser = OpenAIAdapter("https://api.openai.com/v1").stream_parser()
    chunk = parser.feed("message", '{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}')
    assert chunk == StreamChunk("Hi") and type(chunk) is StreamChunk
