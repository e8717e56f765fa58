"""After a stream's terminator, the body's end is read on for a moment: a timer is armed
only when the read waits for more than turns of the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from failover.chat_calls import DRAIN_SECONDS, _drain

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _end_after(turns: int, wait: float = 0.0) -> AsyncIterator[str]:
    """A body's rest: one piece, then its end after ``turns`` bare turns (a release's
    checkpoints) and a wait of ``wait`` seconds on a timer."""
    yield "data: [DONE]\n\n"
    for _ in range(turns):
        await asyncio.sleep(0)
    if wait:
        await asyncio.sleep(wait)


def _timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counted(when: float, *args: object, **kwargs: object) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counted)
    return armed


async def test_an_end_that_comes_after_turns_of_the_loop_is_read_without_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = _timers(monkeypatch)
    assert await _drain(_end_after(turns=3)) is True
    assert armed == []


async def test_an_end_that_waits_is_read_within_the_moment_on_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = _timers(monkeypatch)
    assert await _drain(_end_after(turns=2, wait=DRAIN_SECONDS / 10)) is True
    assert len(armed) >= 2  # the moment's, and the wait's own


async def test_an_end_that_does_not_come_within_the_moment_is_given_up() -> None:
    assert await _drain(_end_after(turns=1, wait=DRAIN_SECONDS * 20)) is False
