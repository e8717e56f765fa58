"""Fire-and-forget work (async hooks and callbacks) on asyncio or trio, drained on close.

A hook must never block or fail the request that announced it, so it runs as a task of its
own. anyio has no detached tasks, so each is started the way its event loop does it
(``loop.create_task`` on asyncio, a system task on trio) inside an anyio cancel scope that
:meth:`BackgroundTasks.drain` can cancel once its grace period is over.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = [
    "ASYNCIO_TIMEOUT_WORKS",
    "AsyncioTimeout",
    "BackgroundTasks",
    "cancel_scope",
    "finish_even_if_cancelled",
    "loop_time",
    "on_asyncio",
    "running_on_trio",
    "scope_within",
]

logger = logging.getLogger("failover")


def running_on_trio() -> bool:
    """Return whether the caller runs inside a trio event loop.

    Trio names itself in sniffio's thread-local while its code runs (in guest mode, during
    each of its ticks), which is what sniffio reads first too: one attribute, where asking
    trio for its current task raises (and catches) an exception everywhere else.
    """
    if "trio" not in sys.modules:
        return False
    return bool(sys.modules["sniffio"].thread_local.name == "trio")  # trio needs sniffio 1.3+


def _asyncio_loop() -> Any:
    """The running asyncio loop when the caller's code is asyncio's, else ``None`` (no
    loop, or trio's: its guest mode runs on an asyncio loop, its code trio's all the same)."""
    if _running_loop is _bind_asyncio and "asyncio" not in sys.modules:
        return None  # asyncio not imported (nor bound): no loop of its runs
    loop = _running_loop()
    if loop is None or running_on_trio():
        return None
    return loop


def on_asyncio() -> bool:
    """Return whether the caller runs in an asyncio event loop, not in trio."""
    return _asyncio_loop() is not None


def loop_time() -> float:
    """``anyio.current_time()`` without asking sniffio which library runs: the asyncio
    loop's own clock on asyncio (what anyio's asyncio backend reads), else anyio's."""
    loop = _asyncio_loop()
    return anyio.current_time() if loop is None else float(loop.time())


_AsyncioScope: type[anyio.CancelScope] | None = None  # anyio's asyncio class, once imported


def _asyncio_scope_class() -> type[anyio.CancelScope]:
    global _AsyncioScope
    if _AsyncioScope is None:
        from anyio._backends._asyncio import CancelScope

        _AsyncioScope = CancelScope
    return _AsyncioScope


def cancel_scope(deadline: float = math.inf) -> anyio.CancelScope:
    """``anyio.CancelScope(deadline=deadline)``, made on asyncio by anyio's asyncio class
    itself: the public constructor asks sniffio which library runs and initialises the
    scope twice (``__new__`` builds it, then ``__init__`` runs again), each time."""
    if not on_asyncio():  # trio (or no loop: anyio's own error)
        return anyio.CancelScope(deadline=deadline)
    return (_AsyncioScope or _asyncio_scope_class())(deadline=deadline)


def scope_within(seconds: float) -> anyio.CancelScope:
    """:func:`cancel_scope` ending ``seconds`` from now (:func:`loop_time`'s clock), the
    running loop looked up once: ``anyio.fail_after``'s own scope, without its generator
    wrappers nor sniffio's question (its caller raises TimeoutError when the scope's
    ``cancelled_caught``)."""
    loop = _asyncio_loop()
    if loop is None:  # trio (or no loop: anyio's own error)
        return anyio.CancelScope(deadline=anyio.current_time() + seconds)
    return (_AsyncioScope or _asyncio_scope_class())(deadline=loop.time() + seconds)


ASYNCIO_TIMEOUT_WORKS = sys.version_info >= (3, 11)
"""Whether :class:`AsyncioTimeout` can run here (it needs ``Task.uncancel``)."""


def _no_loop() -> None:
    return None


class _Deadlines:
    """One event loop's :class:`AsyncioTimeout` deadlines behind a single timer.

    A timer per attempt (``loop.call_at``, then its cancel) costs more Python than the rest
    of the timeout; here a deadline is a dict entry, and the loop's one timer is moved only
    when a deadline comes earlier than the one it is set for. When it fires, every deadline
    due by then expires and it is set again for the earliest left.

    No timer handle is kept (a handle holds its loop, and this record is the value of a
    dictionary weakly keyed by that loop: keeping one would keep every closed loop alive).
    A timer overtaken by an earlier one is left to fire and finds it is not the one armed.
    """

    __slots__ = ("armed_for", "clock", "entries", "loop")

    def __init__(self, loop: Any) -> None:
        # weakly: a loop that is gone is let go, with its deadlines (None: of no loop)
        self.loop: Callable[[], Any] = weakref.ref(loop) if loop is not None else _no_loop
        self.entries: dict[AsyncioTimeout, float] = {}
        self.armed_for = math.inf
        # the loop's clock: time.monotonic itself when its time() is asyncio's own (which
        # returns it), else None: loop.time() (not kept bound: it would hold the loop). A
        # loop means asyncio is imported; none (the record made at import) asks nothing of
        # it: ``import failover`` does not import asyncio
        self.clock: Callable[[], float] | None = (
            time.monotonic
            if loop is not None
            and getattr(type(loop), "time", None) is sys.modules["asyncio"].BaseEventLoop.time
            else None
        )

    def arm(self, when: float) -> None:
        """Set the timer for ``when``, earlier than it is set for (a deadline just added)."""
        self.armed_for = when
        self.loop().call_at(when, self._fire, when)

    def _fire(self, armed_for: float) -> None:
        loop = self.loop()
        if loop is None or armed_for != self.armed_for:
            return  # overtaken by an earlier timer, which re-armed for what was left
        # the loop runs a timer up to its clock's resolution early: what the timer was set
        # for is due, as with a timer of its own
        due_by = max(armed_for, loop.time())
        self.armed_for = math.inf
        entries = self.entries
        for timeout in [t for t, when in entries.items() if when <= due_by]:
            del entries[timeout]
            timeout._expire()
        if entries:
            when = self.armed_for = min(entries.values())
            loop.call_at(when, self._fire, when)


_deadlines: weakref.WeakKeyDictionary[Any, _Deadlines] = weakref.WeakKeyDictionary()

# the loop last seen's: most attempts run on it (before any, one of no loop)
_latest: _Deadlines = _Deadlines(None)


def _deadlines_of(loop: Any) -> _Deadlines:
    global _latest
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = _Deadlines(loop)
    _latest = deadlines
    return deadlines


def _bind_asyncio() -> Any:
    """Bind :func:`_running_loop` and :func:`_task_of` to asyncio's own (C) functions, on
    first use (``import failover`` does not import asyncio); return the running loop."""
    global _running_loop, _task_of
    import asyncio

    if sys.version_info >= (3, 12):
        _task_of = asyncio.current_task  # in C, taking the loop
    else:  # asyncio.current_task is Python code here: read its map of loops to tasks
        _task_of = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
    _running_loop = asyncio._get_running_loop
    return _running_loop()


_running_loop: Callable[[], Any] = _bind_asyncio
"""The running asyncio loop, or ``None`` (asyncio's ``_get_running_loop`` once bound)."""
_task_of: Callable[[Any], Any]
"""The task running on a loop, or ``None`` (bound with :data:`_running_loop`)."""


class AsyncioTimeout:
    """``asyncio.timeout`` as a plain context manager: raises TimeoutError after ``seconds``.

    The deadline cancels the task, and on exit that cancellation (and only that one) turns
    into TimeoutError, as ``asyncio.timeout`` does (Python 3.11+: ``Task.uncancel``). About
    a third of anyio's cancel scope on asyncio, which matters once per attempt under load
    (and the deadlines of a loop share one timer); but a plain ``task.cancel()`` passes
    through anyio's shielded scopes (httpcore shields its releases with them), so it is only
    for code written for asyncio's own cancellation (aiohttp), or kept from it (a whole reply
    through HttpxSender is sent and read in a task of its own, see :mod:`failover.http`).
    """

    __slots__ = ("_cancelling", "_deadlines", "_seconds", "_task")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        loop = _running_loop()
        # (no loop: no task of it either, or asyncio's own RuntimeError)
        if (task := _task_of(loop)) is None:
            raise RuntimeError("AsyncioTimeout needs a running asyncio task")
        self._task = task
        self._cancelling = task.cancelling()
        deadlines = _latest  # read once (threads): it refers to its loop weakly
        if deadlines.loop() is not loop:
            deadlines = _deadlines_of(loop)
        self._deadlines = deadlines
        when = (deadlines.clock or loop.time)() + self._seconds
        deadlines.entries[self] = when
        if when < deadlines.armed_for:
            deadlines.arm(when)

    def _expire(self) -> None:
        """The deadline passed (its entry is gone: how :meth:`__exit__` knows)."""
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _: Any
    ) -> None:
        # its entry is there until it exits, unless the deadline passed (see _fire)
        if self._deadlines.entries.pop(self, None) is None:
            import asyncio

            left = self._task.uncancel()  # 3.11+
            if left <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc


_finishing: set[Any] = set()  # asyncio keeps only weak references to tasks


async def finish_even_if_cancelled(work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work()`` to its end even when the caller is cancelled meanwhile.

    For releasing a connection: on trio a shielded scope; on asyncio its own task behind
    ``asyncio.shield``, since a plain ``task.cancel()`` (``asyncio.wait_for``) is not
    stopped by anyio's shield. The caller's cancellation still propagates at once.
    """
    if running_on_trio():
        with anyio.CancelScope(shield=True):
            await work()
        return
    import asyncio

    task = asyncio.ensure_future(work())
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)
    await asyncio.shield(task)


class BackgroundTasks:
    """Runs awaitables in the background; :meth:`drain` waits for them, then cancels."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._running = 0
        self._refs: set[Any] = set()  # asyncio keeps only weak references to tasks
        self._idle: anyio.Event | None = None  # set when the last running task ends

    def __len__(self) -> int:
        return self._running

    def spawn(self, awaitable: Awaitable[Any], what: object) -> None:
        """Run ``awaitable`` in the background; an exception it raises is logged as ``what``'s."""
        self._running += 1

        async def guarded() -> None:
            try:
                with anyio.CancelScope() as scope:
                    self._scopes.add(scope)
                    try:
                        await awaitable
                    except Exception:
                        logger.exception("async hook %r raised", what)
                    finally:
                        self._scopes.discard(scope)
            finally:
                self._running -= 1
                if not self._running and self._idle is not None:
                    self._idle.set()

        if running_on_trio():
            import trio

            trio.lowlevel.spawn_system_task(guarded)
        else:
            import asyncio

            task = asyncio.get_running_loop().create_task(guarded())
            self._refs.add(task)
            task.add_done_callback(self._refs.discard)

    async def drain(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds for running work, then cancel what is left."""
        if not self._running:
            return
        self._idle = anyio.Event()
        with anyio.move_on_after(grace):
            await self._idle.wait()
        for scope in tuple(self._scopes):
            scope.cancel()
        with anyio.move_on_after(1.0):  # a cancelled task ends at its next checkpoint
            await self._idle.wait()
