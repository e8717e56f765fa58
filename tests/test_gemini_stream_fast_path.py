"""Gemini's stream parser reads a response object of one text part at once (issue 25),
answering exactly as its general path does: the same chunks, the same errors, the same
state after."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.providers import get_adapter
from failover.providers.reading import load_json
from tests.fast_paths import answer, json_values

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(data: list[str]) -> tuple[list[Any], list[Any]]:
    """What the parser's ``feed`` and its general path answer for each of ``data``, and
    their state (terminator seen, tool calls made) after each."""
    fast, general = get_adapter("gemini").stream_parser(), get_adapter("gemini").stream_parser()
    with mock.patch("failover.providers.gemini._new_id", return_value="call_new"):  # a call's
        return _each(fast, general, data)


def _each(fast: Any, general: Any, data: list[str]) -> tuple[list[Any], list[Any]]:
    fast_answers, general_answers = [], []
    for item in data:
        fast_answers.append((answer(lambda d: fast.feed("message", d), item), fast.complete))
        general_answers.append(
            (answer(lambda d: general._read_event(load_json(d), d), item), general.complete)  # type: ignore[attr-defined]
        )
        assert fast._calls == general._calls  # type: ignore[attr-defined]
    return fast_answers, general_answers


def _response(parts: Any, finish: Any = None, **extra: Any) -> str:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return json.dumps({"candidates": [candidate], **extra})


USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}

ODD_RESPONSES = [
    _response([{"text": "Hi"}]),
    _response([{"text": ""}]),
    _response([{"text": "Hi"}], usageMetadata=USAGE, modelVersion="gemini-2.0-flash"),
    _response([{"text": "Hi"}], "STOP", usageMetadata=USAGE),
    _response([{"text": "Hi"}], "MAX_TOKENS"),
    _response([{"text": "Hi"}], "SAFETY"),
    _response([{"text": "Hi"}], "MALFORMED_FUNCTION_CALL"),
    _response([{"text": "Hi"}], 3),
    _response([{"text": "Hi", "thought": True}]),
    _response([{"text": "Hi", "thought": False}]),
    _response([{"text": "Hi", "thoughtSignature": "sig"}]),
    _response([{"text": "Hi"}, {"text": " there"}]),
    _response([{"functionCall": {"name": "f", "args": {"a": 1}}}]),
    _response([{"text": "Hi", "functionCall": {"name": "f"}}]),
    _response([{"text": 5}]),
    _response([{"text": None}]),
    _response(["Hi"]),
    _response("Hi"),
    _response({"0": {"text": "Hi"}}),
    _response([]),
    _response(None),
    _response([{"text": "Hi"}], promptFeedback={"blockReason": "SAFETY"}),
    _response([{"text": "Hi"}], promptFeedback={}),
    _response([{"text": "Hi"}], promptFeedback="odd"),
    _response([{"text": "Hi"}], error={"code": 429, "message": "slow down"}),
    json.dumps({"error": {"code": 503, "message": "overloaded"}}),
    json.dumps({"candidates": []}),
    json.dumps({"candidates": "x"}),
    json.dumps({"candidates": ["x"]}),
    json.dumps({"candidates": [{"content": "x"}]}),
    json.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}}, {"content": {}}]}),
    json.dumps({"candidates": {"0": {"content": {"parts": [{"text": "a"}]}}}}),
    json.dumps([{"candidates": []}]),
    json.dumps("candidates"),
    json.dumps(None),
]


@pytest.mark.parametrize("data", ODD_RESPONSES, ids=range(len(ODD_RESPONSES)))
def test_gemini_stream_feed_answers_each_odd_response_as_the_general_path(data: str) -> None:
    fast, general = _both([data])
    assert fast == general


def test_gemini_stream_feed_answers_a_whole_stream_with_a_call_as_the_general_path() -> None:
    stream = [
        _response([{"text": "Let me "}]),
        _response([{"text": "look."}]),
        _response([{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"}]),
        _response([{"text": "Done"}], "STOP", usageMetadata=USAGE),
    ]
    fast, general = _both(stream)
    assert fast == general
    assert fast[1][0][1].text == "look."
    assert fast[2][0][1].tool_calls[0].name == "f"
    assert fast[-1][0][1].finish_reason == "tool_calls"
    assert fast[-1][1] is True


parts = st.fixed_dictionaries(
    {"text": st.text(max_size=8) | json_values},
    optional={"thought": json_values, "functionCall": json_values, "thoughtSignature": json_values},
)
candidates = st.fixed_dictionaries(
    {"content": st.fixed_dictionaries({"parts": st.lists(parts, max_size=2) | json_values})},
    optional={"finishReason": st.sampled_from(["STOP", "SAFETY"]) | json_values},
)
responses = st.fixed_dictionaries(
    {"candidates": st.lists(candidates | json_values, max_size=2) | json_values},
    optional={
        "promptFeedback": json_values,
        "error": json_values,
        "usageMetadata": json_values,
        "modelVersion": st.text(max_size=4),
    },
)


@SETTINGS
@given(response=responses | json_values)
def test_gemini_stream_feed_answers_any_response_near_a_text_part_as_the_general_path(
    response: Any,
) -> None:
    fast, general = _both([json.dumps(response)])
    assert fast == general
