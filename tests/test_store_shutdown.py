"""Whoever starts a store stops it, and a process using one exits by itself on any Python."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from pathlib import Path

import anyio
import pytest

from failover import AuthProfile, FailoverManager, ProfileStatus, ResilientClient
from failover.store import RedisStore
from failover.testing import Behavior, Simulator
from tests.redis_server import RedisServer

KEY_A = "sk-shutdown-aaaaaaaaaaaa1111"
KEY_B = "sk-shutdown-bbbbbbbbbbbb2222"
MESSAGES = [{"role": "user", "content": "hello"}]
ROOT = Path(__file__).resolve().parent.parent


def profiles(base_url: str) -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", KEY_A, base_url=base_url),
        AuthProfile("b", "openai", KEY_B, base_url=base_url, priority=1),
    ]


async def test_a_client_stops_the_store_of_a_manager_it_started(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    async with Simulator() as sim:
        manager = FailoverManager(profiles=profiles(sim.base_url("openai")), store=store)
        async with ResilientClient(["openai/gpt-4o-mini"], manager) as client:
            await client.complete(MESSAGES)
            assert store.running
        assert not store.running


async def test_a_client_leaves_running_a_store_the_user_started(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore(redis_server.url, prefix=prefix)
    async with Simulator() as sim:
        manager = FailoverManager(profiles=profiles(sim.base_url("openai")), store=store)
        other = FailoverManager(
            profiles=profiles(sim.base_url("openai")),
            store=RedisStore(redis_server.url, prefix=prefix),
        )
        async with manager, other:
            async with ResilientClient(["openai/gpt-4o-mini"], manager) as client:
                await client.complete(MESSAGES)
            assert store.running  # the user's: still sharing after the client closed
            manager.mark_failure("a", "429", kind="rate_limit", retry_after=30)
            assert await store.settle(5.0)
            assert await other.store.settle(5.0)  # type: ignore[attr-defined]
            assert other.get_profile("a").status is ProfileStatus.RATE_LIMITED
        assert not store.running


# Opens a client over a manager with a RedisStore, makes requests (one hits a 429, so a
# change is on its way to Redis), leaves `async with`, and lets asyncio.run end the loop.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from failover import AuthProfile, FailoverManager, ResilientClient
    from failover.store import RedisStore

    async def main(redis_url, prefix, base_url, key_a, key_b):
        manager = FailoverManager(
            profiles=[
                AuthProfile("a", "openai", key_a, base_url=base_url),
                AuthProfile("b", "openai", key_b, base_url=base_url, priority=1),
            ],
            store=RedisStore(redis_url, prefix=prefix),
        )
        async with ResilientClient(["openai/gpt-4o-mini"], manager) as client:
            for _ in range(3):
                await client.complete([{"role": "user", "content": "hi"}])
        left = asyncio.all_tasks() - {asyncio.current_task()}
        print("tasks left:", len(left), flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)

INTERPRETERS = {
    "this": sys.executable,
    # the lowest (3.10) and highest supported Pythons, each with failover's dependencies
    # and the redis extra installed; unset: those cases are skipped
    "lowest": os.environ.get("FAILOVER_PYTHON_LOWEST"),
    "highest": os.environ.get("FAILOVER_PYTHON_HIGHEST"),
}


@pytest.mark.parametrize("which", sorted(INTERPRETERS))
async def test_a_process_that_used_a_client_over_a_redis_store_exits_by_itself(
    which: str, redis_server: RedisServer
) -> None:
    python = INTERPRETERS[which]
    if not python:
        variable = f"FAILOVER_PYTHON_{which.upper()}"
        pytest.skip(f"{variable} is not set (a Python with failover's dependencies)")
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
        argv = [redis_server.url, f"t{uuid.uuid4().hex[:8]}", sim.base_url("openai"), KEY_A, KEY_B]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this work tree's failover
        with anyio.fail_after(90):  # a store task that outlives its loop hangs the process
            done = await anyio.run_process(
                [python, "-c", SCRIPT, *argv], cwd=ROOT, env=env, check=False
            )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert done.stdout.decode().split() == ["tasks", "left:", "0"]
    assert sim.calls(key=KEY_A) == 1 and sim.calls(key=KEY_B) == 3
