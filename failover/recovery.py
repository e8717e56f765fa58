"""RecoveryLine: requests waiting for room, let through by priority, then in the order they came.

When every key is resting (or has no room in its token window), requests that may wait
sleep until the earliest recovery. Woken all at once they would stampede the key that
recovered; in the line, each goes on only after every request ahead of it has gone on: a
higher ``priority`` is ahead of a lower one, and among equal priorities the one that came
first is ahead. A request ahead that is still sleeping holds back the ones behind it (the
line is fair, not greedy), save that a request waiting for room passes those asleep until a
rest ends: room given back does not end a rest.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RecoveryLine"]


class _Place:
    __slots__ = ("for_room", "order", "resting", "since", "sleeping", "turn")

    def __init__(self, priority: int, seq: int, since: float, for_room: bool) -> None:
        self.order = (-priority, seq)
        self.since = since
        self.for_room = for_room
        self.turn = anyio.Event()
        self.sleeping: anyio.CancelScope | None = None
        self.resting = False  # asleep until a rest ends, which room does not cut short

    def __lt__(self, other: _Place) -> bool:
        return self.order < other.order


class RecoveryLine:
    """A line of requests waiting for a key: highest priority first, then first come, first
    served. Used from one event loop.

    Args:
        clock: Monotonic seconds, for :meth:`waiting_longest` (injectable for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._line: list[_Place] = []  # sorted: the one whose turn is next first
        self._seq = itertools.count()
        self._clock = clock

    def __len__(self) -> int:
        """Requests waiting now."""
        return len(self._line)

    def __repr__(self) -> str:
        return f"RecoveryLine(waiting={len(self._line)})"

    def wake(self) -> None:
        """Room came back sooner than the waits assumed (a reply used less than it
        reserved, a place in flight was left): every request still sleeping for room
        stops, and they go on in the line's order. Those waiting for a rest to end sleep
        on: room does not end a rest."""
        for place in self._line:
            if place.sleeping is not None:
                place.sleeping.cancel()

    def waiting_longest(self) -> float:
        """Seconds the longest-waiting request in the line has waited (0 when empty)."""
        if not self._line:
            return 0.0
        return max(0.0, self._clock() - min(place.since for place in self._line))

    async def wait(
        self,
        delay: float,
        sleep: Callable[[float], Awaitable[None]],
        *,
        priority: int = 0,
        place: int | None = None,
        wakeable: bool = True,
    ) -> int:
        """Sleep ``delay`` seconds, then wait for the requests ahead to go on.

        Args:
            delay: Seconds to sleep before taking a turn.
            sleep: The sleep to use (the engine's, zeroed in tests).
            priority: Higher goes first; equal priorities go in the order they came.
            place: The place this waiter was given when it first came (what an earlier
                call returned): a request that must wait again keeps it, ahead of those
                that came after it.
            wakeable: Whether :meth:`wake` cuts the sleep short (a wait for room); a
                wait for a rest to end sleeps its ``delay`` through.

        Returns the waiter's place, just before the caller picks a key; a cancelled
        waiter leaves the line at once and lets the next one through if it was first.
        """
        seq = next(self._seq) if place is None else place
        waiter = _Place(priority, seq, self._clock(), wakeable)
        line = self._line
        bisect.insort(line, waiter)
        try:
            if wakeable:
                with anyio.CancelScope() as waiter.sleeping:
                    await sleep(delay)
                waiter.sleeping = None
            else:
                waiter.resting = True
                try:
                    await sleep(delay)
                finally:
                    waiter.resting = False
            while not self._turn_of(waiter):
                # Woken with its turn, then passed by a higher priority: wait for a new one.
                if waiter.turn.is_set():
                    waiter.turn = anyio.Event()
                await waiter.turn.wait()
        finally:
            del line[line.index(waiter)]
            for index, queued in enumerate(line):  # those whose turn it is now
                if index == 0 or queued.for_room:
                    queued.turn.set()
                if not queued.resting:
                    break
        return seq

    def _turn_of(self, waiter: _Place) -> bool:
        """Whether every request ahead of ``waiter`` has gone on, save (for a wait for room)
        those still asleep until a rest ends."""
        line = self._line
        if line[0] is waiter:
            return True
        if waiter.for_room:
            for place in line:
                if place is waiter:
                    return True
                if not place.resting:
                    return False
        return False
