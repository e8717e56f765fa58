"""The demo refuses numbers that would hang it or make its accounting meaningless."""

from __future__ import annotations

import pytest

from failover import ConfigError
from failover.demo import run_demo


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"total": -3}, "requests"),
        ({"total": 2.5}, "requests"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": float("nan")}, "seconds"),
    ],
)
async def test_bad_demo_numbers_are_refused_before_anything_starts(
    arguments: dict[str, float], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        await run_demo(**arguments)  # type: ignore[arg-type]
