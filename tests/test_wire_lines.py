"""A stream's line that nests too deep is malformed, and a plain request's body, on its
short path, is the bytes ``json.dumps`` writes of its payload."""

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


def test_a_line_nested_too_deep_is_malformed() -> None:
    from failover.providers.reading import load_json

    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        load_json("[" * 100_000 + "]" * 100_000)


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
