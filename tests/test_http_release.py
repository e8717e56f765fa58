"""A streamed reply's release runs whole in the reader's task, its cancellation held back.

httpcore's release must not be cut short by asyncio's own cancellation (see
``failover.http``'s docstring); it runs in the task that read the reply (what it enters
stays there), and a cancellation that comes meanwhile is raised once it is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from failover.http import _uncancelled

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Release:
    """A release that takes ``turns`` bare turns of the loop, then waits for ``waits``."""

    def __init__(
        self, turns: int = 2, waits: asyncio.Future[Any] | None = None, *, shield: bool = True
    ) -> None:
        self.turns = turns
        self.waits = waits
        self.shield = shield
        self.steps: list[str] = []
        self.done = False

    async def run(self) -> str:
        with anyio.CancelScope(shield=self.shield):  # as httpcore's: entered in this task
            for _ in range(self.turns):
                await asyncio.sleep(0)
                self.steps.append("turn")
            if self.waits is not None:
                self.steps.append(await self.waits)
        self.done = True
        return "released"


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_release_that_takes_turns_ends_whole_then_the_cancellation_is_raised() -> None:
    release = _Release(turns=3)
    task = asyncio.ensure_future(_uncancelled(release.run()))
    await _turns(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert release.done and release.steps == ["turn"] * 3


async def test_a_release_waiting_for_a_future_gets_it_though_cancelled_twice() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    release = _Release(turns=1, waits=reply)
    task = asyncio.ensure_future(_uncancelled(release.run()))
    await _turns(3)
    task.cancel()
    await _turns(2)
    task.cancel()
    await _turns(2)
    assert not task.done() and not reply.cancelled()  # the release still waits for it
    reply.set_result("closed")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert release.done and release.steps == ["turn", "closed"]


async def test_a_release_nobody_cancels_ends_as_awaited() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, reply.set_result, "closed")
    release = _Release(turns=2, waits=reply)
    assert await _uncancelled(release.run()) is None
    assert release.done and release.steps == ["turn", "turn", "closed"]


async def test_asyncio_timeout_around_a_release_becomes_its_timeout_after_the_release() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.05, reply.set_result, "closed")
    release = _Release(turns=1, waits=reply)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await _uncancelled(release.run())
    assert release.done


async def test_an_anyio_scope_around_a_release_catches_its_cancellation_after_it() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.05, reply.set_result, "closed")
    release = _Release(turns=1, waits=reply, shield=False)  # the scope's cancellation reaches it
    with anyio.move_on_after(0.01) as scope:
        await _uncancelled(release.run())
    assert release.done
    assert scope.cancelled_caught


async def test_a_failed_release_raises_its_error_or_the_cancellation_that_came() -> None:
    async def failing(turns: int) -> None:
        await _turns(turns)
        raise OSError("reset while closing")

    with pytest.raises(OSError, match="reset while closing"):
        await _uncancelled(failing(2))
    task = asyncio.ensure_future(_uncancelled(failing(3)))
    await _turns(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_release_closed_half_way_is_closed_too() -> None:
    release = _Release(turns=5)
    inner = release.run()
    waiting = _uncancelled(inner)
    assert waiting.send(None) is None  # its first turn
    waiting.close()
    assert inner.cr_frame is None  # closed, not left suspended
    assert not release.done
