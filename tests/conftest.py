from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import failover
from tests.redis_server import RedisServer


@pytest.fixture
def anyio_backend() -> str:
    """The default event loop; modules that must also run on trio override this fixture."""
    return "asyncio"


def _both_backends(request: pytest.FixtureRequest) -> str:
    return str(request.param)


BOTH_BACKENDS = pytest.fixture(params=["asyncio", "trio"], name="anyio_backend")(_both_backends)
"""Assign to ``anyio_backend`` in a module to run its tests on asyncio and on trio."""


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


@contextmanager
def simulator_in_thread(**options: Any) -> Iterator[Any]:
    """Run a Simulator on an asyncio loop of its own thread, so any backend can call it.

    The simulator's scripting methods are synchronous and safe to call from the test.
    """
    from failover.testing import Simulator

    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        try:
            async with Simulator(**options) as simulator:
                box["simulator"], box["loop"] = simulator, asyncio.get_running_loop()
                box["stop"] = asyncio.Event()
                ready.set()
                await box["stop"].wait()
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(30)
    if "simulator" not in box:
        raise RuntimeError("the simulator did not start")
    try:
        yield box["simulator"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for a module's tests, killed after."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()
