"""The wire's lighter paths (issue 25) give exactly what the general ones give.

A reply read by json's scanner alone, a body written by json's encoder made once, a plain
request's payload built without the general pass, OpenAI's usage read without the general
reader: each is checked against what ``json`` itself, or the general path, answers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import MalformedResponseError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
json_documents = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
whitespace = st.text(alphabet=" \t\r\n", max_size=3)


def json_answer(text: str) -> tuple[str, Any]:
    """What ``json.loads`` answers for ``text``: ``("value", v)`` or ``("error", message)``."""
    try:
        return "value", json.loads(text)
    except ValueError as error:
        return "error", f"{type(error).__name__}: {error}"


def load_answer(text: str | bytes) -> tuple[str, Any]:
    """What ``load_json`` answers, in :func:`json_answer`'s terms."""
    from failover.providers.base import load_json

    try:
        return "value", load_json(text)
    except MalformedResponseError as error:
        cause = error.__cause__
        return "error", f"{type(cause).__name__}: {cause}"


def same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (json reads ``NaN``)."""
    return json.dumps(a) == json.dumps(b) if a != a or b != b else a == b and type(a) is type(b)


@SETTINGS
@given(document=json_documents, before=whitespace, after=whitespace)
def test_a_body_reads_as_json_loads_reads_it(document: Any, before: str, after: str) -> None:
    text = before + json.dumps(document, ensure_ascii=False) + after
    expected = json_answer(text)
    assert load_answer(text) == expected
    assert load_answer(text.encode()) == expected


@SETTINGS
@given(
    text=st.text(alphabet='{}[]":,0123456789.eE+-truefalsnNaIiy \n\\u', max_size=24)
    | st.builds(lambda doc, junk: json.dumps(doc) + junk, json_documents, st.text(max_size=4))
)
def test_text_that_is_not_one_json_value_fails_as_json_loads_fails(text: str) -> None:
    kind, expected = json_answer(text)
    found_kind, found = load_answer(text.encode())
    assert found_kind == kind
    if kind == "error":
        assert found == expected  # the same message, at the same position
    else:
        assert same(found, expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting value: line 1 column 1 (char 0)"),
        (' {"a": 1}} ', "Extra data: line 1 column 10 (char 9)"),
        ('{"a": 1}\nx', "Extra data: line 2 column 1 (char 9)"),
        ('{"a": "b', "Unterminated string starting at: line 1 column 7 (char 6)"),
        ("[1, 2", "Expecting ',' delimiter: line 1 column 6 (char 5)"),
    ],
)
def test_a_malformed_body_names_what_json_names(text: str, message: str) -> None:
    from failover.providers.base import load_json

    with pytest.raises(MalformedResponseError, match=re.escape(f"not valid JSON: {message}")):
        load_json(text.encode())


def test_a_body_nested_too_deep_is_malformed() -> None:
    from failover.providers.base import load_json

    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        load_json(b"[" * 100_000 + b"]" * 100_000)


def test_json_constants_read_as_json_reads_them() -> None:
    from failover.providers.base import load_json

    value = load_json(b"[NaN, Infinity, -Infinity, 1e400, 12345678901234567890]")
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf, math.inf, 12345678901234567890]


# -- request bodies ---------------------------------------------------------------------

body_values = st.recursive(
    json_leaves | st.floats() | st.text(alphabet=st.characters(), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(
            st.text(max_size=6) | st.integers() | st.floats() | st.booleans() | st.none(),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def dumps_answer(value: Any) -> tuple[str, Any]:
    """``json.dumps(value).encode()``, or the error it raises (type and message)."""
    try:
        return "bytes", json.dumps(value).encode()
    except (TypeError, ValueError, RecursionError) as error:
        return "error", f"{type(error).__name__}: {error}"


def body_answer(value: Any) -> tuple[str, Any]:
    """What ``json_body`` answers, in :func:`dumps_answer`'s terms."""
    from failover.providers.base import json_body

    try:
        return "bytes", json_body(value)
    except (TypeError, ValueError, RecursionError) as error:
        return "error", f"{type(error).__name__}: {error}"


@SETTINGS
@given(value=body_values)
def test_a_body_is_the_bytes_json_dumps_writes(value: Any) -> None:
    assert body_answer(value) == dumps_answer(value)


def test_a_body_json_cannot_write_fails_as_json_dumps_fails() -> None:
    circular: list[Any] = [1]
    circular.append({"again": circular})
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    cases = [circular, {"a": object()}, {(1, 2): "tuple key"}, [{1, 2}], b"bytes", deep]
    for value in cases:
        kind, message = body_answer(value)
        assert (kind, message) == dumps_answer(value)
        assert kind == "error"
    assert "Circular reference detected" in body_answer(circular)[1]
    # a failure leaves nothing behind: the same list, no longer circular, is written
    circular.pop()
    assert body_answer([circular, circular]) == ("bytes", b"[[1], [1]]")


def test_a_body_without_json_s_accelerator_is_written_by_json_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from failover.providers import base

    monkeypatch.setattr(base, "_MAKE_ENCODER", None)
    value = {"messages": [{"role": "user", "content": "héllo \u2028"}], "temperature": 0.5}
    assert base.json_body(value) == json.dumps(value).encode()


def test_json_s_encoder_taking_other_arguments_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from failover.providers import base

    def other_signature(*arguments: Any) -> None:
        raise TypeError(f"make_encoder() takes 10 arguments ({len(arguments)} given)")

    monkeypatch.setattr(json.encoder, "c_make_encoder", other_signature)
    assert base._c_encoder_maker() is None
    monkeypatch.delattr(json.encoder, "c_make_encoder")
    assert base._c_encoder_maker() is None


# -- plain requests ---------------------------------------------------------------------

roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
contents = st.text(max_size=6) | st.none() | st.just([{"type": "text", "text": "hi"}])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": contents})
    | st.fixed_dictionaries(
        {"role": roles, "content": contents},
        optional={"name": st.just("n"), "cache_control": st.just({"type": "ephemeral"})},
    ),
    min_size=1,
    max_size=4,
)
parameters = st.dictionaries(
    st.sampled_from(["temperature", "top_p", "seed", "stream_options", "user", "max_tokens"]),
    st.integers(0, 3),
    max_size=2,
)


def read_afresh(request: Any) -> bool:
    """``request.plain`` read by a new request of the same fields (nothing kept)."""
    from failover.providers.base import ChatRequest

    return ChatRequest(
        request.messages, request.max_tokens, request.temperature, request.params, request.stream
    ).plain


@SETTINGS
@given(messages=messages, params=parameters, stream=st.booleans())
def test_the_client_s_request_knows_whether_it_is_plain_as_it_would_read_it(
    messages: list[dict[str, Any]], params: dict[str, Any], stream: bool
) -> None:
    from failover.chat_input import chat_request

    request = chat_request(messages, None, None, params, stream=stream)
    expected = not params and all(
        type(m["content"]) is str
        and m["role"] in ("system", "developer", "user", "assistant")
        and len(m) == 2
        for m in messages
    )
    assert request.plain is expected
    assert read_afresh(request) is expected


def test_a_request_keeps_its_public_shape() -> None:
    import dataclasses
    import pickle

    from failover.providers.base import ChatRequest

    request = ChatRequest([{"role": "user", "content": "hi"}], 5, 0.5, {"seed": 1}, True)
    assert request.plain is False
    assert request.turns()[0].role == "user"
    assert [f.name for f in dataclasses.fields(request)] == [
        "messages",
        "max_tokens",
        "temperature",
        "params",
        "stream",
    ]
    assert repr(request) == (
        "ChatRequest(messages=[{'role': 'user', 'content': 'hi'}], max_tokens=5, "
        "temperature=0.5, params={'seed': 1}, stream=True)"
    )
    copied = pickle.loads(pickle.dumps(request))
    assert copied == request
    assert copied.turns() == request.turns()
    assert dataclasses.replace(request, params={}).plain is True
    assert ChatRequest([{"role": "user", "content": "hi"}]) == ChatRequest(
        [{"role": "user", "content": "hi"}]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.stream = False  # type: ignore[misc]


OPENAI_WIRES = ["openai", "azure", "groq", "mistral", "deepseek", "openrouter", "vllm"]


@pytest.mark.parametrize("provider", OPENAI_WIRES)
@SETTINGS
@given(
    messages=messages,
    max_tokens=st.none() | st.integers(1, 9),
    temperature=st.none() | st.floats(0, 2),
    stream=st.booleans(),
)
def test_a_plain_request_is_sent_as_the_general_path_sends_it(
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
    general = chat_request(messages, max_tokens, temperature, {}, stream=stream)
    object.__setattr__(general, "_plain", False)  # as if not plain: the general path
    for model in ("gpt-4o-mini", None):
        assert adapter.payload(request, model) == adapter.payload(general, model)
    built = adapter.build_request(request, model="m", api_key="k", base_url="http://h/v1")
    general_built = adapter.build_request(general, model="m", api_key="k", base_url="http://h/v1")
    assert built.body == general_built.body
    assert built.headers == general_built.headers
    assert built.url == general_built.url


@pytest.mark.parametrize(
    "omit", [frozenset({"temperature"}), frozenset({"max_tokens"}), frozenset({"stream_options"})]
)
def test_a_field_a_server_leaves_out_is_left_out_of_a_plain_request(omit: frozenset[str]) -> None:
    from failover.chat_input import chat_request
    from failover.providers.openai import OpenAIAdapter

    adapter = OpenAIAdapter("http://h/v1", max_tokens_field="max_tokens", omit=omit)
    request = chat_request([{"role": "user", "content": "hi"}], 5, 0.5, {}, stream=True)
    assert request.plain
    payload = adapter.payload(request, "m")
    assert not omit & set(payload)
    assert payload["messages"] == [{"role": "user", "content": "hi"}]
    assert payload["messages"] is not request.messages


# -- OpenAI's usage -------------------------------------------------------------------------

counts = st.integers(0, 9) | st.sampled_from(
    [2**53 - 1, 2**53, 2**60, -1, 3.0, 2.5, math.inf, math.nan, True, False, "5", None]
)
detail_dicts = (
    st.none()
    | st.just([1])
    | st.dictionaries(
        st.sampled_from(
            ["cached_tokens", "cache_write_tokens", "audio_tokens", "reasoning_tokens"]
        ),
        counts,
        max_size=3,
    )
)
usages = st.fixed_dictionaries(
    {"prompt_tokens": counts},
    optional={
        "completion_tokens": counts,
        "total_tokens": counts,
        "prompt_cache_hit_tokens": counts,
        "input_tokens": counts,
        "output_tokens": counts,
        "prompt_tokens_details": detail_dicts,
        "completion_tokens_details": detail_dicts,
    },
)


def usage_and_log(usage: Any) -> tuple[Any, list[str]]:
    """``openai_usage(usage)`` and the warnings it logs."""
    import logging

    from failover.providers.openai import openai_usage

    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("failover.providers")
    logger.addHandler(handler)
    try:
        return openai_usage(usage), logged
    finally:
        logger.removeHandler(handler)


@settings(SETTINGS, max_examples=1000)
@given(usage=usages)
def test_openai_usage_reads_as_the_general_reader_reads_it(usage: dict[str, Any]) -> None:
    from types import MappingProxyType

    fast = usage_and_log(usage)
    general = usage_and_log(MappingProxyType(usage))  # not a dict: the general reader
    assert fast == general


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 5, "completion_tokens": 1}, (5, 1, 0, 0, 0)),
        ({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}, (5, 1, 0, 0, 0)),
        ({"prompt_tokens": 5, "completion_tokens": 1, "queue_time": 0.2}, (5, 1, 0, 0, 0)),
        ({"prompt_tokens": 5, "total_tokens": 5, "prompt_cache_hit_tokens": 4}, (1, 0, 4, 0, 0)),
        ({"prompt_tokens": 5.0, "completion_tokens": 1, "total_tokens": 6}, (5, 1, 0, 0, 0)),
        ({"prompt_tokens": -1, "completion_tokens": 1, "total_tokens": 0}, None),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
            (30, 20, 60, 10, 5),
        ),
        ({"prompt_tokens": 5, "prompt_cache_hit_tokens": 4}, (1, 0, 4, 0, 0)),
        ({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}, (0, 0, 9, 0, 0)),
        ({"prompt_tokens": True, "completion_tokens": 1}, None),
        ({"prompt_tokens": 2**53, "completion_tokens": 1}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 2**53}}, None),
        (
            {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 2**53 - 1}},
            (0, 0, 2**53 - 1, 0, 0),
        ),
        ({"prompt_tokens": 5, "completion_tokens": -1}, None),
        ({"prompt_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 1.5}}, None),
    ],
)
def test_openai_usage_counts(usage: dict[str, Any], expected: tuple[int, ...] | None) -> None:
    from failover.providers.openai import openai_usage

    found = openai_usage(usage)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (
            found.input_tokens,
            found.output_tokens,
            found.cache_read_tokens,
            found.cache_write_tokens,
            found.reasoning_tokens,
        ) == expected


def test_a_model_entry_s_key_follows_its_fields_through_copies() -> None:
    import copy
    import dataclasses
    import pickle

    from failover.catalog import ModelEntry

    entry = ModelEntry(id="gpt-x", name="GPT X", provider="openai", api="openai")
    assert entry.key == "openai/gpt-x"
    assert dataclasses.replace(entry, provider="azure").key == "azure/gpt-x"
    assert pickle.loads(pickle.dumps(entry)).key == "openai/gpt-x"
    assert copy.deepcopy(entry) == entry
    assert "_key" not in repr(entry)
    assert "_key" not in dataclasses.asdict(entry)
    assert hash(entry) == hash(dataclasses.replace(entry))
