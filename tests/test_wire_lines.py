"""A stream's line and a plain request's body, on their short paths, are what the general
ones make: ``load_json_line`` answers as ``load_json``, and a plain request's body is the
bytes ``json.dumps`` writes of its payload."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import MalformedResponseError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
documents = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)
lines = (
    st.builds(
        lambda doc, ascii_only, before, after: (
            before + json.dumps(doc, ensure_ascii=ascii_only) + after
        ),
        documents,
        st.booleans(),
        st.text(alphabet=" \t\r\n", max_size=2),
        st.text(alphabet=" \t\r\nx]}\udc80", max_size=2),
    )
    | st.text(alphabet='{}[]":,0123456789.eE+-truefalsnNaIiy \\u\udcff\xe9', max_size=20)
    | st.sampled_from(["", "[DONE]", '{"a": "\udc80"}', "[" * 5000 + "]" * 5000])
)


def answer(read: Any, line: str) -> tuple[str, Any]:
    """``("value", json text of the value)`` or ``("error", the message and its cause)``."""
    try:
        return "value", json.dumps(read(line))
    except MalformedResponseError as error:
        return "error", (str(error), repr(error.__cause__))


@SETTINGS
@given(line=lines)
def test_a_stream_line_reads_as_load_json_reads_it(line: str) -> None:
    from failover.providers.reading import load_json, load_json_line

    assert answer(load_json_line, line) == answer(load_json, line)


def test_a_line_nested_too_deep_is_malformed() -> None:
    from failover.providers.reading import load_json_line

    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        load_json_line("[" * 100_000 + "]" * 100_000)


roles = st.sampled_from(["system", "developer", "user", "assistant"])
plain_messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=8)}), min_size=1, max_size=4
)


@pytest.mark.parametrize("provider", ["openai", "groq", "mistral", "deepseek", "vllm"])
@SETTINGS
@given(
    messages=plain_messages,
    max_tokens=st.none() | st.integers(1, 9),
    temperature=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    stream=st.booleans(),
)
def test_a_plain_request_s_body_is_what_json_dumps_writes_of_its_payload(
    provider: str,
    messages: list[dict[str, Any]],
    max_tokens: int | None,
    temperature: float | None,
    stream: bool,
) -> None:
    from failover.chat_input import chat_request
    from failover.providers import get_adapter

    adapter: Any = get_adapter(provider)
    request = chat_request(messages, max_tokens, temperature, {}, stream=stream)
    assert request.plain
    sent = adapter.build_request(request, model="m", api_key="sk-x", base_url="http://h/v1")
    assert sent.body == json.dumps(adapter.payload(request, "m")).encode()


def test_an_acyclic_body_without_json_s_accelerator_is_written_by_json_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from failover.providers import base

    monkeypatch.setattr(base, "_ACYCLIC_ENCODE", None)
    monkeypatch.setattr(base, "_MAKE_ENCODER", None)
    value = {"messages": [{"role": "user", "content": "héllo \u2028"}], "temperature": 0.5}
    assert base.json_body(value, acyclic=True) == json.dumps(value).encode()
