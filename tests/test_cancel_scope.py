"""cancel_scope: anyio's cancel scope, made on asyncio without asking which library runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from failover._tasks import cancel_scope
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS


async def test_its_deadline_cancels_what_runs_inside_and_only_that() -> None:
    with cancel_scope(anyio.current_time() + 0.01) as scope:
        await anyio.sleep(5)
    assert scope.cancelled_caught
    await anyio.lowlevel.checkpoint()  # the caller goes on: the scope took its own cancel


async def test_it_is_the_running_library_s_own_scope() -> None:
    scope = cancel_scope()
    assert type(scope) is type(anyio.CancelScope())
    assert scope.deadline == float("inf")
    with scope:
        with anyio.CancelScope(shield=True):  # anyio's shield still holds inside it
            scope.cancel()
            await anyio.sleep(0.01)
            shielded = True
        await anyio.sleep(5)
    assert shielded and scope.cancelled_caught


async def test_an_outer_scope_s_cancellation_passes_through_it() -> None:
    with anyio.CancelScope() as outer:
        with cancel_scope(anyio.current_time() + 30) as inner:
            outer.cancel()
            await anyio.sleep(5)
    assert outer.cancelled_caught and not inner.cancelled_caught


async def _as_guest(
    guest: Callable[[], Awaitable[None]], beside: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Run ``guest`` in trio's guest mode on the running asyncio loop (and ``beside``, the
    host's own code, meanwhile); return when the guest is done."""
    import asyncio

    import trio

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    trio.lowlevel.start_guest_run(
        guest, run_sync_soon_threadsafe=loop.call_soon_threadsafe, done_callback=done.set_result
    )
    if beside is not None:
        await beside()
    (await done).unwrap()  # the guest's own error, if it raised one


def test_trio_s_guest_mode_on_an_asyncio_loop_gets_trio_s_scopes_and_asyncio_its_own() -> None:
    import asyncio

    import trio

    from failover._tasks import on_asyncio

    seen: list[tuple[str, bool]] = []

    async def guest() -> None:  # trio's code, run on asyncio's loop
        with cancel_scope(trio.current_time() + 0.01) as scope:
            await trio.sleep(5)
        seen.append((type(scope).__module__, scope.cancelled_caught and not on_asyncio()))

    async def plain() -> None:
        with cancel_scope(asyncio.get_running_loop().time() + 0.01) as scope:
            await asyncio.sleep(5)
        seen.append((type(scope).__module__, scope.cancelled_caught and on_asyncio()))

    asyncio.run(plain())  # asyncio first, then the guest, then asyncio again
    asyncio.run(_as_guest(guest))
    asyncio.run(plain())
    assert seen == [
        ("anyio._backends._asyncio", True),
        ("anyio._backends._trio", True),
        ("anyio._backends._asyncio", True),
    ]


def test_asyncio_code_beside_a_running_trio_guest_is_asyncio_s() -> None:
    import asyncio

    import trio

    from failover._tasks import on_asyncio, running_on_trio

    seen: dict[str, bool] = {}

    async def guest() -> None:
        seen["guest"] = running_on_trio()
        await trio.sleep(0.05)  # the host's code runs between the guest's ticks meanwhile
        seen["guest's worker thread"] = await trio.to_thread.run_sync(running_on_trio)

    async def beside() -> None:
        await asyncio.sleep(0.01)
        seen["host, the guest running"] = on_asyncio() and not running_on_trio()

    asyncio.run(_as_guest(guest, beside))
    assert seen == {
        "guest": True,
        "host, the guest running": True,
        "guest's worker thread": False,
    }


def test_without_trio_an_older_sniffio_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from failover._tasks import running_on_trio

    # sniffio before 1.3 has no thread_local; anyio allows it, trio (which needs 1.3) is absent
    monkeypatch.setitem(sys.modules, "sniffio", types.ModuleType("sniffio"))
    monkeypatch.delitem(sys.modules, "trio", raising=False)
    assert running_on_trio() is False
