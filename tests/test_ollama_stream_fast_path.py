"""Ollama's native stream parser reads a line of text alone at once (issue 25), answering
exactly as its general path does: the same chunks, the same errors, the same state after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.providers import get_adapter
from failover.providers.reading import load_json
from tests.fast_paths import answer, json_values

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(data: list[str]) -> tuple[list[Any], list[Any]]:
    """What the parser's ``feed`` and its general path answer for each line, and their
    state (terminator seen, tool calls made) after each."""
    fast = get_adapter("ollama-native").stream_parser()
    general = get_adapter("ollama-native").stream_parser()
    fast_answers, general_answers = [], []
    for item in data:
        fast_answers.append((answer(lambda d: fast.feed("", d), item), fast.complete))
        general_answers.append(
            (answer(lambda d: general._read_line(load_json(d), d), item), general.complete)  # type: ignore[attr-defined]
        )
        assert fast._calls == general._calls  # type: ignore[attr-defined]
    return fast_answers, general_answers


def _line(message: Any, done: Any = False, **extra: Any) -> str:
    return json.dumps({"model": "llama3", "message": message, "done": done, **extra})


CALL = {"function": {"name": "f", "arguments": {"a": 1}}}

ODD_LINES = [
    _line({"role": "assistant", "content": "Hi"}),
    _line({"role": "assistant", "content": ""}),
    _line({"role": "assistant", "content": None}),
    _line({"role": "assistant", "content": 5}),
    _line({"role": "assistant", "content": ["Hi"]}),
    _line({"role": "assistant"}),
    _line({"role": "assistant", "content": "Hi"}, True, done_reason="stop", eval_count=3),
    _line({"role": "assistant", "content": "Hi"}, True, done_reason="length"),
    _line({"role": "assistant", "content": "Hi"}, 1),
    _line({"role": "assistant", "content": "Hi"}, None),
    _line({"role": "assistant", "content": "Hi", "tool_calls": [CALL]}),
    _line({"role": "assistant", "content": "Hi", "tool_calls": []}),
    _line({"role": "assistant", "content": "Hi", "tool_calls": "no"}),
    _line({"role": "assistant", "content": "", "tool_calls": [CALL]}),
    _line({"role": "assistant", "content": "Hi"}, error="model not found"),
    _line("Hi"),
    _line(["Hi"]),
    _line(None),
    _line(None, True),
    json.dumps({"error": "model not found"}),
    json.dumps({"done": False}),
    json.dumps([{"message": {"content": "Hi"}}]),
    json.dumps("message"),
    json.dumps(None),
]


@pytest.mark.parametrize("data", ODD_LINES, ids=range(len(ODD_LINES)))
def test_ollama_stream_feed_answers_each_odd_line_as_the_general_path(data: str) -> None:
    fast, general = _both([data])
    assert fast == general


def test_ollama_stream_feed_answers_a_whole_stream_with_a_call_as_the_general_path() -> None:
    stream = [
        _line({"role": "assistant", "content": "Let me "}),
        _line({"role": "assistant", "content": "look."}),
        _line({"role": "assistant", "content": "", "tool_calls": [CALL]}),
        _line({"role": "assistant", "content": ""}, True, done_reason="stop", eval_count=4),
    ]
    fast, general = _both(stream)
    assert fast == general
    assert fast[1][0][1].text == "look."
    assert fast[2][0][1].tool_calls[0].name == "f"
    assert fast[-1][0][1].finish_reason == "tool_calls"
    assert fast[-1][1] is True


messages = st.fixed_dictionaries(
    {"content": st.text(max_size=8) | json_values},
    optional={"role": st.just("assistant"), "tool_calls": st.just([CALL]) | json_values},
)
lines = st.fixed_dictionaries(
    {"message": messages | json_values},
    optional={"done": json_values, "error": json_values, "done_reason": json_values},
)


@SETTINGS
@given(line=lines | json_values)
def test_ollama_stream_feed_answers_any_line_near_a_text_piece_as_the_general_path(
    line: Any,
) -> None:
    fast, general = _both([json.dumps(line)])
    assert fast == general
