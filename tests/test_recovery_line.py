"""The recovery line: waiting requests go on by priority, then in the order they came.

Sleeps are gates the test opens, so the order is the line's and never the scheduler's
(trio shuffles runnable tasks on purpose). Every test runs on asyncio and on trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from failover.recovery import RecoveryLine
from tests.conftest import BOTH_BACKENDS, FakeClock

anyio_backend = BOTH_BACKENDS


class Gates:
    """One sleep per waiter, each ending when the test opens its gate."""

    def __init__(self) -> None:
        self.gates: dict[str, anyio.Event] = {}

    def sleep(self, name: str) -> Callable[[float], Awaitable[None]]:
        gate = self.gates.setdefault(name, anyio.Event())

        async def sleep(delay: float) -> None:
            await gate.wait()

        return sleep

    def open(self, *names: str) -> None:
        for name in names or tuple(self.gates):
            self.gates[name].set()


async def queue(
    tg: anyio.abc.TaskGroup,
    line: RecoveryLine,
    gates: Gates,
    went: list[str],
    waiters: list[tuple[str, int]],
    resting: Collection[str] = (),
) -> None:
    """Start each waiter once the one before it is in the line: those named in ``resting``
    wait for a rest to end (which :meth:`RecoveryLine.wake` does not cut short), the others
    for room."""

    async def waiter(name: str, priority: int) -> None:
        await line.wait(1.0, gates.sleep(name), priority=priority, wakeable=name not in resting)
        went.append(name)

    for name, priority in waiters:
        tg.start_soon(waiter, name, priority)
        await wait_all_tasks_blocked()


async def test_equal_priorities_go_in_the_order_they_came() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [(name, 0) for name in "abcde"])
        assert len(line) == 5
        gates.open("e", "c", "a", "d", "b")  # woken in any order
    assert went == list("abcde")
    assert len(line) == 0


async def test_a_higher_priority_goes_first_and_equal_ones_keep_their_order() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        await queue(
            tg, line, gates, went, [("a", 0), ("b", 0), ("c", 5), ("d", 1), ("e", 5), ("f", -2)]
        )
        gates.open()
    assert went == ["c", "e", "d", "a", "b", "f"]


async def test_a_request_ahead_that_is_still_sleeping_holds_back_those_behind() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [("a", 0), ("b", 0), ("urgent", 9)])
        gates.open("a", "b")
        await wait_all_tasks_blocked()
        assert went == []  # "urgent" is first in line and has not woken yet
        gates.open("urgent")
    assert went == ["urgent", "a", "b"]


async def test_a_later_higher_priority_passes_one_already_told_it_was_next() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [("a", 0), ("b", 0)])
        gates.open("a")  # a goes and tells b it is next, but b still sleeps
        await wait_all_tasks_blocked()
        assert went == ["a"]
        await queue(tg, line, gates, went, [("urgent", 3)])
        gates.open("b")
        await wait_all_tasks_blocked()
        assert went == ["a"]  # b woke up behind "urgent"
        gates.open("urgent")
    assert went == ["a", "urgent", "b"]


async def test_a_cancelled_first_waiter_leaves_at_once_and_lets_the_next_through() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    scope = anyio.CancelScope()

    async def first() -> None:
        with scope:
            await line.wait(1.0, gates.sleep("a"))
        went.append("a cancelled")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await wait_all_tasks_blocked()
        await queue(tg, line, gates, went, [("b", 0), ("c", 0)])
        gates.open("b", "c")
        await wait_all_tasks_blocked()
        assert went == []
        scope.cancel()
    assert went == ["a cancelled", "b", "c"]
    assert len(line) == 0


async def test_a_cancelled_waiter_in_the_middle_leaves_the_order_of_the_others() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    scope = anyio.CancelScope()

    async def middle() -> None:
        with scope:
            await line.wait(1.0, gates.sleep("m"), priority=1)
        went.append("m cancelled")

    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [("a", 2)])
        tg.start_soon(middle)
        await wait_all_tasks_blocked()
        await queue(tg, line, gates, went, [("z", 0)])
        assert len(line) == 3
        scope.cancel()
        await wait_all_tasks_blocked()
        assert went == ["m cancelled"] and len(line) == 2
        gates.open("z", "a")
    assert went == ["m cancelled", "a", "z"]


async def test_an_error_in_the_sleep_leaves_the_line_too() -> None:
    line = RecoveryLine()

    async def broken(delay: float) -> None:
        raise RuntimeError("no sleep")

    with pytest.raises(RuntimeError):
        await line.wait(1.0, broken)
    assert len(line) == 0
    await line.wait(0.0, anyio.sleep)  # the line still works: nobody is ahead


async def test_the_engines_call_waits_the_delay_then_goes() -> None:
    line, slept = RecoveryLine(), []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    await line.wait(2.5, sleep)  # positional, no priority: as the engine calls it
    assert slept == [2.5] and len(line) == 0


async def test_waiting_longest_is_how_long_the_first_comer_has_waited() -> None:
    clock = FakeClock()
    line, gates, went = RecoveryLine(clock=clock), Gates(), []
    assert line.waiting_longest() == 0.0
    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [("a", 0)])
        clock.advance(1.0)
        await queue(tg, line, gates, went, [("urgent", 9)])
        clock.advance(2.0)
        assert line.waiting_longest() == 3.0  # "a", though "urgent" is ahead of it
        gates.open("urgent")
        await wait_all_tasks_blocked()
        assert line.waiting_longest() == 3.0
        gates.open("a")
        await wait_all_tasks_blocked()
        assert line.waiting_longest() == 0.0
    assert went == ["urgent", "a"]


async def test_room_given_back_wakes_the_waits_for_room_past_one_asleep_until_a_rest_ends() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        await queue(tg, line, gates, went, [("rest", 0), ("room", 0)], resting={"rest"})
        line.wake()  # a reply gave room back: the rest goes on
        await wait_all_tasks_blocked()
        assert went == ["room"]  # past the one ahead, asleep until its rest ends
        assert len(line) == 1
        gates.open("rest")
    assert went == ["room", "rest"]


async def test_a_wait_for_a_rest_whose_sleep_ended_holds_back_the_waits_for_room_behind() -> None:
    line, gates, went = RecoveryLine(), Gates(), []
    async with anyio.create_task_group() as tg:
        waiters = [("first", 0), ("rest", 0), ("room", 0)]
        await queue(tg, line, gates, went, waiters, resting={"first", "rest"})
        gates.open("rest")  # its rest is over: it waits its turn, behind "first"
        await wait_all_tasks_blocked()
        line.wake()
        await wait_all_tasks_blocked()
        assert went == []  # "room" passes "first" (asleep), not "rest" (awake, waiting)
        gates.open("first")
    assert went == ["first", "rest", "room"]
