"""Records built at once (failover._records): the same dataclass, only built faster."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from failover._records import built_at_once
from failover.attempts import Attempt
from failover.errors import RateLimitError


@built_at_once
@dataclasses.dataclass(frozen=True)
class _Point:
    x: int
    label: str = "origin"


def test_a_record_built_at_once_is_the_dataclass_it_was() -> None:
    point = _Point(1)
    assert point == _Point(x=1, label="origin")
    assert repr(point) == "_Point(x=1, label='origin')"
    assert hash(point) == hash(_Point(1, "origin"))
    assert dataclasses.replace(point, label="p").label == "p"
    assert dataclasses.asdict(point) == {"x": 1, "label": "origin"}
    assert pickle.loads(pickle.dumps(point)) == point
    assert copy.deepcopy(point) == point
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Point(1, "a", 3)  # type: ignore[call-arg]


def test_the_history_record_keeps_its_fields_and_stays_frozen() -> None:
    error = RateLimitError("slow down", status=429, retry_after=2.0)
    attempt = Attempt("openai/gpt-4o", "k1", "rate_limit", 429, 2.0, 0.5, error)
    assert (attempt.model, attempt.profile) == ("openai/gpt-4o", "k1")
    assert attempt.error_kind == "rate_limit"
    assert Attempt("m", None, "ok", None, None, 0.1).error is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        attempt.outcome = "ok"  # type: ignore[misc]


def test_what_cannot_be_built_at_once_is_refused_by_name() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithFactory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass
    class Mutable:
        x: int

    with pytest.raises(TypeError, match=r"WithFactory\.items"):
        built_at_once(WithFactory)
    with pytest.raises(TypeError, match="Mutable must be a frozen dataclass"):
        built_at_once(Mutable)
