"""RecoveryLine: requests waiting for a resting key, let through in the order they came.

When every key is resting, requests that may wait (``wait_for_recovery``) sleep until the
earliest recovery. Woken all at once they would stampede the key that recovered; in the
line, each goes on only after every request that started waiting before it has gone on,
so they pick keys in arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RecoveryLine"]


class RecoveryLine:
    """A first-come, first-served line of requests waiting for a key to recover."""

    def __init__(self) -> None:
        self._line: deque[anyio.Event] = deque()

    def __len__(self) -> int:
        """Requests waiting now."""
        return len(self._line)

    async def wait(self, delay: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Sleep ``delay`` seconds, then wait for the requests that came earlier to go on.

        Returns just before the caller picks a key; a cancelled waiter leaves the line at
        once and lets the next one through if it was first.
        """
        turn = anyio.Event()
        line = self._line
        line.append(turn)
        try:
            await sleep(delay)
            if line[0] is not turn:
                await turn.wait()
        finally:
            first = line[0] is turn
            line.remove(turn)
            if first and line:
                line[0].set()
