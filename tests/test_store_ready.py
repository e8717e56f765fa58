"""A new process's first requests see what the others stored: the store's first load."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from failover import AuthProfile, FailoverManager, ProfileStatus, ResilientClient
from failover.store import RedisStore
from failover.testing import Behavior, Simulator
from tests.redis_server import RedisServer, free_port

KEY_A = "sk-ready-aaaaaaaaaaaaaaaa1111"
KEY_B = "sk-ready-bbbbbbbbbbbbbbbb2222"
MESSAGES = [{"role": "user", "content": "hello"}]
ROOT = Path(__file__).resolve().parent.parent


def profiles(base_url: str | None = None) -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", KEY_A, base_url=base_url),  # tried first
        AuthProfile("b", "openai", KEY_B, base_url=base_url, priority=1),
    ]


async def rate_limited_elsewhere(url: str, prefix: str) -> None:
    """Another process rate-limits key "a" for 30 s and stores it in Redis."""
    other = FailoverManager(profiles=profiles(), store=RedisStore(url, prefix=prefix))
    async with other:
        other.mark_failure("a", "429", kind="rate_limit", retry_after=30)
        assert await other.store.settle(5.0)  # type: ignore[attr-defined]


async def test_a_new_manager_is_ready_once_it_loaded_what_others_stored(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    await rate_limited_elsewhere(redis_server.url, prefix)
    manager = FailoverManager(
        profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix)
    )
    async with manager:
        assert not manager.ready  # the first load is under way
        with anyio.fail_after(10):
            await manager.wait_ready()
        assert manager.ready
        assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED
        assert manager.get_next_profile("openai").name == "b"


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_memory_store_is_always_ready() -> None:
    manager = FailoverManager(profiles=profiles())
    async with manager:
        assert manager.ready
        await manager.wait_ready()  # returns at once


async def test_a_redis_store_not_started_has_nothing_to_wait_for(
    redis_server: RedisServer,
) -> None:
    manager = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url))
    assert manager.ready
    with anyio.fail_after(10):
        await manager.wait_ready()


async def test_a_slow_first_load_fails_open_after_ready_timeout_with_one_warning(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    await rate_limited_elsewhere(redis_server.url, prefix)
    warnings: list[str] = []
    store = RedisStore(
        redis_server.url, prefix=prefix, timeout=30, ready_timeout=0.2, on_warning=warnings.append
    )
    manager = FailoverManager(profiles=profiles(), store=store)
    admin = aioredis.from_url(redis_server.url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")  # Redis answers nobody
        async with manager:
            with anyio.fail_after(10):
                await manager.wait_ready()
            assert manager.ready
            # the requests go ahead on this process's own view...
            assert manager.get_profile("a").status is ProfileStatus.AVAILABLE
            assert len(warnings) == 1 and "0.2" in warnings[0]
            records = [r for r in caplog.records if r.name == "failover.store"]
            assert [r.levelno for r in records] == [logging.WARNING]
            assert KEY_A not in warnings[0] + records[0].getMessage()
            # ...and take in the shared state once Redis answers
            assert await store.settle(15.0)
            assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED
        assert len(warnings) == 1
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()


async def test_unreachable_redis_makes_the_store_ready_with_only_the_outage_warning() -> None:
    warnings: list[str] = []
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", on_warning=warnings.append)
    manager = FailoverManager(profiles=profiles(), store=store)
    async with manager:
        with anyio.fail_after(10):
            await manager.wait_ready()
        assert manager.ready and manager.get_next_profile("openai").name == "a"
    assert len(warnings) == 1 and "unreachable" in warnings[0]


def test_ready_timeout_is_checked() -> None:
    from failover import ConfigError

    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="ready_timeout"):
            RedisStore("redis://localhost:6379", ready_timeout=bad)


# A worker process: a client of its own over a RedisStore; it sends its requests as soon as
# `async with` is entered, as a freshly started web worker does.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from failover import AuthProfile, ResilientClient
    from failover.store import RedisStore

    async def main(redis_url, prefix, base_url):
        profiles = [
            AuthProfile("a", "openai", sys.argv[4], base_url=base_url),
            AuthProfile("b", "openai", sys.argv[5], base_url=base_url, priority=1),
        ]
        store = RedisStore(redis_url, prefix=prefix)
        async with ResilientClient(["openai/gpt-4o-mini"], profiles, store=store) as client:
            for _ in range(2):
                await client.complete([{"role": "user", "content": "hi"}])

    asyncio.run(main(*sys.argv[1:4]))
    """
)


async def test_workers_started_after_a_key_was_closed_never_call_it(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
        store = RedisStore(redis_server.url, prefix=prefix)
        first = ResilientClient(
            ["openai/gpt-4o-mini"], profiles(sim.base_url("openai")), store=store
        )
        async with first:
            await first.complete(MESSAGES)  # a 429 on "a", served by "b"
            assert await store.settle(5.0)
        assert sim.calls(key=KEY_A) == 1
        argv = [redis_server.url, prefix, sim.base_url("openai"), KEY_A, KEY_B]
        results: list[subprocess.CompletedProcess[bytes]] = []

        async def worker() -> None:
            results.append(
                await anyio.run_process(
                    [sys.executable, "-c", WORKER, *argv], cwd=ROOT, check=False
                )
            )

        with anyio.fail_after(120):
            async with anyio.create_task_group() as workers:
                for _ in range(3):
                    workers.start_soon(worker)
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    assert sim.calls(key=KEY_B) == 1 + 3 * 2
    assert sim.calls(key=KEY_A) == 1  # README: one call in total per closed key
