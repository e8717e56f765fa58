"""Hostile replies end in typed errors: whatever JSON a server sends, every adapter's reply
parser, stream parser and error reader gives a result or a FailoverError, never a raw
Python exception; odd usage never fails a good reply (usage unknown, logged)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import FailoverError, ProviderError
from providers import get_adapter
from providers.base import FINISH_REASONS, ChatResult, StreamChunk, ToolCall

WIRES = ["openai", "azure", "anthropic", "gemini", "ollama-native"]

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["abc", "1e400", "tool_use", "STOP", "SAFETY", "text", "function"])
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(
                [
                    "choices",
                    "message",
                    "content",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                    "usage",
                    "prompt_tokens",
                    "type",
                    "text",
                    "input",
                    "id",
                    "candidates",
                    "parts",
                    "functionCall",
                    "args",
                    "finishReason",
                    "usageMetadata",
                    "done",
                    "delta",
                    "index",
                    "stop_reason",
                    "error",
                    "code",
                    "details",
                    "refusal",
                    "partial_json",
                    "content_block",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)

GOOD = {
    "openai": {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    },
    "anthropic": {
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 1},
    },
    "gemini": {
        "candidates": [
            {
                "content": {"parts": [{"text": "hi"}, {"functionCall": {"name": "f", "args": {}}}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2},
    },
    "ollama-native": {
        "message": {
            "role": "assistant",
            "content": "hi",
            "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
        },
        "done": True,
        "prompt_eval_count": 5,
        "eval_count": 2,
    },
}
GOOD["azure"] = GOOD["openai"]
USAGE_PATHS = {
    "openai": ("usage", "prompt_tokens"),
    "azure": ("usage", "completion_tokens"),
    "anthropic": ("usage", "input_tokens"),
    "gemini": ("usageMetadata", "promptTokenCount"),
    "ollama-native": (None, "eval_count"),
}


def check_result(result: ChatResult) -> None:
    assert isinstance(result.text, str)
    assert result.finish_reason is None or result.finish_reason in FINISH_REASONS
    for call in result.tool_calls:
        assert isinstance(call, ToolCall)
        assert isinstance(call.id, str) and isinstance(call.name, str)
        assert isinstance(call.arguments, str)
    json.dumps(result.message)


def parse_any(wire: str, body: bytes) -> None:
    try:
        result = get_adapter(wire).parse_response(body)
    except FailoverError:
        return
    check_result(result)


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with one subtree replaced by arbitrary JSON."""
    if isinstance(template, dict) and template and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(template)))
        return {**template, key: draw(mutated(template[key]))}
    if isinstance(template, list) and template and draw(st.booleans()):
        index = draw(st.integers(0, len(template) - 1))
        copy = list(template)
        copy[index] = draw(mutated(template[index]))
        return copy
    return draw(json_values)


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(data=st.data())
def test_any_json_reply_gives_a_result_or_a_failover_error(wire: str, data: st.DataObject) -> None:
    body = data.draw(json_values | mutated(GOOD[wire]))
    parse_any(wire, json.dumps(body).encode())


@pytest.mark.parametrize("wire", WIRES)
@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_reply_gives_a_result_or_a_failover_error(wire: str, raw: bytes) -> None:
    parse_any(wire, raw)


STREAM_EVENTS = st.sampled_from(
    [
        "",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "error",
        "ping",
    ]
)


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(events=st.lists(st.tuples(STREAM_EVENTS, json_values), max_size=6))
def test_any_stream_events_give_chunks_or_a_failover_error(
    wire: str, events: list[tuple[str, Any]]
) -> None:
    parser = get_adapter(wire).stream_parser()
    for name, data in events:
        try:
            chunk = parser.feed(name, json.dumps(data))
        except FailoverError:
            return
        assert chunk is None or isinstance(chunk, StreamChunk)


HEADER_VALUES = st.text(max_size=30) | st.sampled_from(
    ["9" * 400 + "s", "1e400", "Fri, 31 Dec 99999999999 23:59:59 GMT", "-5", "nan", "1000000000000"]
)


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(
    status=st.sampled_from([400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529]),
    body=json_values
    | mutated(
        {
            "error": {
                "code": 429,
                "message": "m",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}
                ],
            }
        }
    ),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "retry-after",
                "retry-after-ms",
                "x-ratelimit-reset-requests",
                "x-ratelimit-reset-tokens",
                "anthropic-ratelimit-requests-reset",
            ]
        ),
        HEADER_VALUES,
        max_size=3,
    ),
)
def test_any_error_reply_becomes_a_provider_error(
    wire: str, status: int, body: Any, headers: dict[str, str]
) -> None:
    error = get_adapter(wire).parse_error(status, headers, json.dumps(body).encode())
    assert isinstance(error, ProviderError)


ODD_COUNTS = st.sampled_from(["abc", {"n": 1}, [1], 1e400, -3, 2.5, True, float("nan"), 10**30])


@pytest.mark.parametrize("wire", WIRES)
@settings(max_examples=30, deadline=None)
@given(odd=ODD_COUNTS)
def test_odd_usage_never_fails_a_good_reply(wire: str, odd: Any) -> None:
    body = json.loads(json.dumps(GOOD[wire]))
    parent, name = USAGE_PATHS[wire]
    (body[parent] if parent else body)[name] = odd
    result = get_adapter(wire).parse_response(json.dumps(body).encode())
    assert result.text == "hi" and [c.name for c in result.tool_calls] == ["f"]
    assert result.usage_known is False and result.usage.input_tokens == 0


def test_odd_usage_is_logged_and_prices_nothing(caplog: pytest.LogCaptureFixture) -> None:
    body = {**GOOD["anthropic"], "usage": {"input_tokens": "abc", "output_tokens": 2}}
    with caplog.at_level(logging.WARNING, logger="failover.providers"):
        result = get_adapter("anthropic").parse_response(json.dumps(body).encode())
    assert not result.usage_known
    assert "usage field 'input_tokens' not understood" in caplog.text


@pytest.mark.parametrize(
    ("wire", "body", "field"),
    [
        ("openai", {"choices": [{"message": "hi"}]}, "choices[0].message"),
        ("openai", {"choices": [{"message": {"content": 5}}]}, "content is not text"),
        ("anthropic", {"content": [{"type": "text", "text": 5}]}, "content[0].text"),
        ("gemini", {"candidates": [{"content": {"parts": "x"}}]}, "parts is not a list"),
        ("ollama-native", {"message": {"content": ["x"]}}, "message.content"),
    ],
)
def test_a_reply_the_adapter_does_not_understand_names_the_field(
    wire: str, body: Any, field: str
) -> None:
    from failover import MalformedResponseError

    with pytest.raises(MalformedResponseError, match=field.replace("[", r"\[").replace("]", r"\]")):
        get_adapter(wire).parse_response(json.dumps(body).encode())


@SETTINGS
@given(
    status=st.sampled_from([400, 403, 404, 429, 500, 503, 529]),
    body=json_values
    | mutated({"error": {"code": 429, "details": [{"violations": [{"quotaId": "PerDay"}]}]}})
    | mutated(
        {"type": "error", "error": {"type": "rate_limit_error", "details": {"error_code": "x"}}}
    ),
)
def test_the_classifier_reads_any_error_body_without_help(status: int, body: Any) -> None:
    from failover.classify import classify_http_error

    assert isinstance(classify_http_error(status, {}, json.dumps(body).encode()), ProviderError)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
def test_a_reply_body_in_any_json_encoding_is_read(encoding: str) -> None:
    from providers.base import load_json

    assert load_json('{"text": "héllo"}'.encode(encoding)) == {"text": "héllo"}


def test_a_body_that_is_not_text_is_malformed() -> None:
    from failover import MalformedResponseError
    from providers.base import load_json

    with pytest.raises(MalformedResponseError):
        load_json(b'"\xff\xfe\xfa"')
