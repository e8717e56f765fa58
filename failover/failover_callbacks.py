"""The seed's failover callbacks: ``callback(failed, next_or_none)``, sync or async.

Called whenever a failure takes a profile out of rotation. A sync callback runs at once;
an async one runs in the background (on asyncio or trio) until :meth:`drain` waits for it,
or to its end at once when it was fired from sync code. A raising callback is logged and
never fails the call that fired it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from failover._tasks import BackgroundTasks, running_on_trio

if TYPE_CHECKING:
    from failover.auth_profile import AuthProfile

__all__ = ["FailoverCallback", "FailoverCallbacks"]

logger = logging.getLogger("failover")

FailoverCallback = Callable[["AuthProfile", "AuthProfile | None"], "Awaitable[None] | None"]
"""Called with the profile that failed and the one that will be used next (or ``None``)."""


class FailoverCallbacks:
    """The callbacks a manager runs, and the background tasks of the async ones."""

    __slots__ = ("_callbacks", "_tasks")

    def __init__(self) -> None:
        self._callbacks: tuple[FailoverCallback, ...] = ()
        self._tasks = BackgroundTasks()

    def add(self, callback: FailoverCallback) -> None:
        """Register ``callback`` (after those registered before it)."""
        self._callbacks = (*self._callbacks, callback)

    def registered(self) -> tuple[FailoverCallback, ...]:
        """The callbacks registered now (a later registration leaves this one alone)."""
        return self._callbacks

    def notify(
        self,
        callbacks: tuple[FailoverCallback, ...],
        failed: AuthProfile,
        following: AuthProfile | None,
    ) -> None:
        """Run ``callbacks`` (as :meth:`registered` gave them) with ``(failed, following)``."""
        for callback in callbacks:
            try:
                result = callback(failed, following)
                if inspect.isawaitable(result):
                    _schedule(result, callback, self._tasks)
            except Exception:
                logger.exception("failover callback %r raised", callback)

    async def drain(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds for async callbacks, then cancel them."""
        await self._tasks.drain(grace)


def _schedule(
    awaitable: Awaitable[None], callback: FailoverCallback, tasks: BackgroundTasks
) -> None:
    if not running_on_trio():
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # called from sync code: run it to the end here
            try:
                asyncio.run(_awaited(awaitable))
            except Exception:
                logger.exception("async failover callback %r raised", callback)
            return
    tasks.spawn(awaitable, callback)


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable
