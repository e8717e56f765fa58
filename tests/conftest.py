from __future__ import annotations

import pytest

import failover


@pytest.fixture(autouse=True)
def _no_backoff_sleep() -> None:
    failover.set_testing(True)


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
