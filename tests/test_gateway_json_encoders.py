"""The gateway's JSON encoders are ``json.JSONEncoder(...).encode``, called more directly:
same text for every value, same errors for what JSON cannot hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from failover.gateway.framing import encode_compact, encode_gemini, encode_string

ENCODERS: list[tuple[Callable[[Any], str], str]] = [(encode_compact, ":"), (encode_gemini, ": ")]
VALUES: list[Any] = [
    'caf\u00e9 "quoted" \\ \n \u2028 \U0001f600',
    0,
    10**30,
    1.5,
    -0.0,
    1e300,
    float("nan"),
    float("inf"),
    None,
    True,
    [],
    {},
    [1, {"a": [None, "x", 2.5]}],
    {"z": 1, "a": {"nested": [True, False]}},
    {2: "int key", None: "none key", 1.5: "float key", True: "bool key"},
]


@pytest.mark.parametrize(("encode", "key_separator"), ENCODERS)
def test_the_text_is_json_encoders_own(encode: Callable[[Any], str], key_separator: str) -> None:
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", key_separator)).encode
    for value in VALUES:
        assert encode(value) == reference(value)


@pytest.mark.parametrize(("encode", "key_separator"), ENCODERS)
def test_what_json_cannot_hold_is_refused_alike(
    encode: Callable[[Any], str], key_separator: str
) -> None:
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", key_separator)).encode
    circular: list[Any] = []
    circular.append(circular)
    for value, error in [
        (circular, ValueError),
        ({"a": object()}, TypeError),
        ({(1, 2): "tuple key"}, TypeError),
    ]:
        with pytest.raises(error) as ours:
            encode(value)
        with pytest.raises(error) as theirs:
            reference(value)
        assert str(ours.value) == str(theirs.value)
    assert encode([1, 2]) == "[1,2]"  # a refusal leaves nothing behind


def test_a_string_is_encoded_as_the_encoders_encode_it() -> None:
    """``encode_string`` (a stream's text deltas) gives the text the JSON encoders give."""
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for text in ["", "tok ", VALUES[0], "\x00\x1f\x7f", "\ud800 lone surrogate", "</script>"]:
        assert encode_string(text) == reference(text) == encode_compact(text)
        assert json.loads(encode_string(text)) == text
