"""AsyncioTimeout: the deadlines of one event loop share a single timer, each still kept."""

from __future__ import annotations

import asyncio

import pytest

from failover._tasks import AsyncioTimeout

pytestmark = pytest.mark.skipif(
    not hasattr(asyncio.Task, "uncancel"), reason="AsyncioTimeout needs Python 3.11+"
)


async def _sleep_within(seconds: float, sleep: float) -> str:
    try:
        with AsyncioTimeout(seconds):
            await asyncio.sleep(sleep)
    except TimeoutError:
        return "timed out"
    return "finished"


def test_a_shorter_deadline_set_after_a_longer_one_still_expires_first() -> None:
    async def main() -> tuple[str, str]:
        long = asyncio.create_task(_sleep_within(30, 0.3))
        await asyncio.sleep(0)  # the long deadline holds the timer first
        short = await _sleep_within(0.01, 30)
        return short, await long

    assert asyncio.run(main()) == ("timed out", "finished")


def test_every_deadline_expires_not_only_the_earliest() -> None:
    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                _sleep_within(0.01, 30), _sleep_within(0.03, 30), _sleep_within(0.02, 30)
            )
        )

    assert asyncio.run(main()) == ["timed out"] * 3


def test_a_timeout_left_in_time_never_cancels_later() -> None:
    async def main() -> str:
        with AsyncioTimeout(0.01):
            pass
        await asyncio.sleep(0.05)  # past the deadline that was discarded
        return "not cancelled"

    assert asyncio.run(main()) == "not cancelled"


def test_deadlines_work_on_each_new_event_loop() -> None:
    for _ in range(3):
        assert asyncio.run(_sleep_within(0.01, 30)) == "timed out"
        assert asyncio.run(_sleep_within(30, 0)) == "finished"


def test_a_caller_cancellation_stays_a_cancellation() -> None:
    async def main() -> str:
        task = asyncio.create_task(_sleep_within(30, 30))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    assert asyncio.run(main()) == "cancelled"


def test_a_closed_loop_is_let_go_even_with_a_deadline_still_ahead() -> None:
    # A sync client closes its loop well before its last attempt's timeout would have
    # passed: the shared timer must not keep that loop (and all it holds) alive.
    import gc
    import weakref

    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def one_attempt() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        with AsyncioTimeout(600):
            await asyncio.sleep(0)

    for _ in range(5):
        asyncio.run(one_attempt())
    gc.collect()
    assert [ref for ref in loops if ref() is not None] == []
