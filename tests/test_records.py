"""Records built with less work (failover._records) behave as the dataclass's own made them."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from failover._records import built_at_once, lean_init
from failover.attempts import Attempt
from failover.catalog import TokenUsage
from failover.completion import Completion
from failover.providers.base import ChatRequest, HttpRequest
from failover.providers.results import ChatResult, StreamChunk, ToolCallDelta

RECORDS: dict[type, tuple[tuple[Any, ...], dict[str, Any]]] = {
    ChatRequest: (([{"role": "user", "content": "hi"}],), {"max_tokens": 5, "stream": True}),
    HttpRequest: (("POST", "http://h/v1", {"authorization": "Bearer k"}, b"{}"), {}),
    ChatResult: (("hi", "stop", TokenUsage(1, 2), {"raw": 1}), {"usage_known": False}),
    StreamChunk: (("hi",), {"tool_calls": (ToolCallDelta(0, "c", "f"),)}),
    TokenUsage: ((1, 2), {"reasoning_tokens": 3}),
    Attempt: (("openai/gpt-4o", "k1", "ok", None, None, 0.5), {}),
    Completion: (
        ("hi", "openai/gpt-4o", "openai", "k1", TokenUsage(1, 2), None, "stop", (), 0.1, {}),
        {"raw_finish_reason": "stop"},
    ),
}


def twin(cls: type) -> Any:
    """The same fields in a dataclass whose ``__init__`` is dataclasses' own."""
    fields = [
        (
            field.name,
            field.type,
            dataclasses.field(
                default=field.default,
                default_factory=field.default_factory,
                repr=field.repr,
                compare=field.compare,
            ),
        )
        for field in dataclasses.fields(cls)
    ]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True)


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda cls: cls.__name__)
def test_a_record_is_made_as_the_dataclass_makes_it(cls: type) -> None:
    other = twin(cls)
    args, kwargs = RECORDS[cls]
    record, expected = cls(*args, **kwargs), other(*args, **kwargs)
    assert str(inspect.signature(cls)) == str(inspect.signature(other))
    assert dataclasses.astuple(record) == dataclasses.astuple(expected)
    assert repr(record) == repr(expected)
    assert record == cls(*args, **kwargs)
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.deepcopy(record) == record
    assert dataclasses.replace(record) == record
    field = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)
    by_name = {name: getattr(record, name) for name in (f.name for f in dataclasses.fields(cls))}
    assert cls(**by_name) == record
    for wrong_args, wrong_kwargs in (((*args, *[None] * 9), {}), (args, {"bogus": 1})):
        with pytest.raises(TypeError) as lean_error:
            cls(*wrong_args, **wrong_kwargs)
        with pytest.raises(TypeError) as own_error:
            other(*wrong_args, **wrong_kwargs)
        assert str(lean_error.value) == str(own_error.value)
    if not all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls)[:1]):
        return
    with pytest.raises(TypeError) as lean_error:
        cls()
    with pytest.raises(TypeError) as own_error:
        other()
    assert str(lean_error.value) == str(own_error.value)


def test_a_default_factory_makes_a_new_value_for_each_record() -> None:
    first, second = ChatRequest([]), ChatRequest([])
    assert first.params == {} and second.params == {}
    assert first.params is not second.params
    assert ChatRequest([], params={"seed": 1}).params == {"seed": 1}


def test_only_frozen_dataclasses_with_plain_fields_are_taken() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = dataclasses.field(kw_only=True)

    @dataclasses.dataclass(frozen=True, slots=True)
    class LeftOut:
        a: int = dataclasses.field(init=False, default=1)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, KeywordOnly, LeftOut, Checked):
        with pytest.raises(TypeError):
            lean_init(cls)

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    with pytest.raises(TypeError, match="without slots"):
        built_at_once(Slotted)

    @dataclasses.dataclass(frozen=True)
    class KeywordOnlyDict:
        a: int = dataclasses.field(kw_only=True)

    with pytest.raises(TypeError, match="a plain __init__ parameter"):
        built_at_once(KeywordOnlyDict)
    built_at_once(Plain)  # frozen, no slots: taken
    assert Plain(1) == Plain(a=1)


def test_a_record_built_at_once_stays_frozen_and_makes_a_new_default_each_time() -> None:
    @built_at_once
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        tags: list[str] = dataclasses.field(default_factory=list)

    first, second = Point(1), Point(2)
    assert first.tags == [] and first.tags is not second.tags
    assert repr(first).endswith("Point(x=1, tags=[])")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.x = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del first.x


def test_a_request_that_has_read_itself_still_copies_pickles_and_compares_by_its_fields() -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], max_tokens=5)
    assert request.plain and request.turns()
    assert {"plain", "_turns"} <= vars(request).keys()  # read once, then kept on it
    for again in (pickle.loads(pickle.dumps(request)), copy.deepcopy(request), copy.copy(request)):
        assert again == request
        assert again.plain and again.turns() == request.turns()
    assert request == ChatRequest([{"role": "user", "content": "hi"}], max_tokens=5)
    assert "plain" not in repr(request)
    changed = dataclasses.replace(request, params={"seed": 1})
    assert not changed.plain  # read again from its own fields
