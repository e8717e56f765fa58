"""Anthropic's stream parser reads a text delta at once (issue 25), answering exactly as its
general path does: the same chunks, the same errors, the same state after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.providers import get_adapter
from tests.fast_paths import answer, json_values

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DELTA = "content_block_delta"


def _state(parser: Any) -> tuple[Any, ...]:
    return parser.complete, parser._input, parser._blocks.tools, parser._blocks.json_blocks


def _both(events: list[tuple[str, str]]) -> tuple[list[Any], list[Any]]:
    """What the parser's ``feed`` and its general path answer for each event, and their
    state (terminator, input usage, tool blocks) after each."""
    fast = get_adapter("anthropic").stream_parser()
    general = get_adapter("anthropic").stream_parser()
    fast_answers, general_answers = [], []
    for event, data in events:
        fast_answers.append((answer(fast.feed, event, data), _state(fast)))
        general_answers.append((answer(general._feed, event, data), _state(general)))  # type: ignore[attr-defined]
    return fast_answers, general_answers


def _delta(delta: Any, index: Any = 0) -> str:
    return json.dumps({"type": DELTA, "index": index, "delta": delta})


ODD_DELTAS = [
    _delta({"type": "text_delta", "text": "Hi"}),
    _delta({"type": "text_delta", "text": ""}),
    _delta({"type": "text_delta", "text": None}),
    _delta({"type": "text_delta", "text": 5}),
    _delta({"type": "text_delta", "text": ["x"]}),
    _delta({"type": "text_delta"}),
    _delta({"text": "no type"}),
    _delta({"type": "thinking_delta", "thinking": "hmm"}),
    _delta({"type": "input_json_delta", "partial_json": '{"a"'}),
    _delta({"type": "input_json_delta", "partial_json": '{"a"'}, index=1),
    _delta({"type": "input_json_delta", "text": "x"}),
    _delta(None),
    _delta("text"),
    _delta(["text"]),
    _delta({}),
    json.dumps({"type": DELTA, "index": 0}),
    json.dumps({"delta": {"type": "text_delta", "text": "x"}}),
    json.dumps([{"delta": {"type": "text_delta", "text": "x"}}]),
    json.dumps("delta"),
    json.dumps(None),
    '{"delta": {"type": "text_delta", "text": "caf\\u00e9"}}',
    '{"delta": {"type": "text_delta", "text": "lone \udcff"}}',
    '{"delta": {"type": "text_delta", "text": "x"}} {}',
    '{"delta": {"type": "text_delta", "text": "x"}',
    "{" * 100_000,
    "",
    "not json",
]


@pytest.mark.parametrize("data", ODD_DELTAS, ids=range(len(ODD_DELTAS)))
def test_anthropic_stream_feed_answers_each_odd_delta_as_the_general_path(data: str) -> None:
    fast, general = _both([(DELTA, data)])
    assert fast == general


def test_anthropic_stream_feed_answers_a_whole_stream_with_a_tool_call_as_the_general_path() -> (
    None
):
    message = {"id": "m", "role": "assistant", "usage": {"input_tokens": 5, "output_tokens": 1}}
    stream = [
        ("message_start", json.dumps({"type": "message_start", "message": message})),
        ("ping", "{}"),
        ("content_block_start", json.dumps({"index": 0, "content_block": {"type": "text"}})),
        (DELTA, _delta({"type": "text_delta", "text": "Let me look."})),
        ("content_block_stop", json.dumps({"index": 0})),
        (
            "content_block_start",
            json.dumps(
                {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f"}}
            ),
        ),
        (DELTA, _delta({"type": "input_json_delta", "partial_json": '{"a": '}, 1)),
        (DELTA, _delta({"type": "input_json_delta", "partial_json": "1}"}, 1)),
        (
            "message_delta",
            json.dumps({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ),
        ("message_stop", "{}"),
    ]
    fast, general = _both(stream)
    assert fast == general
    assert fast[3][0][1].text == "Let me look."
    assert fast[7][0][1].tool_calls[0].arguments == "1}"
    assert fast[8][0][1].finish_reason == "tool_calls"
    assert fast[-1][1][0] is True


def test_an_error_event_mid_stream_is_the_providers_error_on_either_path() -> None:
    error = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    fast, general = _both([(DELTA, _delta({"type": "text_delta", "text": "Hi"})), ("error", error)])
    assert fast == general
    assert fast[1][0][0] == "error"


deltas = st.fixed_dictionaries(
    {"type": st.sampled_from(["text_delta", "input_json_delta", "thinking_delta"]) | json_values},
    optional={"text": st.text(max_size=8) | json_values, "partial_json": json_values},
)
payloads = st.fixed_dictionaries(
    {"delta": deltas | json_values},
    optional={"index": st.integers(0, 2) | json_values, "type": st.just(DELTA)},
)
events = st.sampled_from([DELTA, "message_start", "content_block_start", "ping", "error", ""])


@SETTINGS
@given(event=events, payload=payloads | json_values)
def test_anthropic_stream_feed_answers_any_event_near_a_text_delta_as_the_general_path(
    event: str, payload: Any
) -> None:
    tool = json.dumps({"index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}})
    fast, general = _both([("content_block_start", tool), (event, json.dumps(payload))])
    assert fast == general
