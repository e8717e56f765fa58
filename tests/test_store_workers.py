"""Several worker processes, and a client mid-run, sharing state through a real Redis."""

from __future__ import annotations

import asyncio
import uuid

from failover import AuthProfile, FailoverManager, ProfileStatus, ResilientClient
from failover.demo_workers import run_workers, script
from failover.store import RedisStore
from failover.testing import Behavior, Simulator
from tests.redis_server import RedisServer, free_port

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_workers_sharing_a_store_call_a_closed_key_once_in_total(
    redis_server: RedisServer,
) -> None:
    async with Simulator() as sim:
        script(sim)
        shared = await run_workers(
            sim, workers=3, requests=8, redis_url=redis_server.url, concurrency=1, stagger=0.2
        )
    assert shared.failed == 0 and shared.ok == 24
    assert shared.rejected["openai-revoked"] == 1  # a revoked key: called once in total
    assert shared.rejected["openai-limited"] == 1  # a 429 with retry-after 30: once
    async with Simulator() as sim:
        script(sim)
        alone = await run_workers(
            sim, workers=3, requests=8, redis_url=None, concurrency=1, stagger=0.2
        )
    assert alone.failed == 0
    assert alone.rejected["openai-revoked"] == 3 and alone.rejected["openai-limited"] == 3


def sim_profiles(sim: Simulator) -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", "sk-store-client-a-000000001", base_url=sim.base_url("openai")),
        AuthProfile("b", "openai", "sk-store-client-b-000000002", base_url=sim.base_url("openai")),
    ]


def client_for(sim: Simulator, store: RedisStore) -> tuple[FailoverManager, ResilientClient]:
    manager = FailoverManager(profiles=sim_profiles(sim), store=store)
    return manager, ResilientClient(["openai/gpt-4o-mini"], manager, timeout=5, deadline=10)


async def test_redis_killed_mid_run_and_restarted_costs_no_request() -> None:
    server = RedisServer()
    server.start()
    warnings: list[str] = []
    store = RedisStore(server.url, prefix=f"t{uuid.uuid4().hex[:8]}", on_warning=warnings.append)
    try:
        async with Simulator() as sim:
            sim.script(Behavior("rate_limit", retry_after=30), key="sk-store-client-a-000000001")
            manager, client = client_for(sim, store)
            done = 0

            async def one() -> None:
                nonlocal done
                await client.complete(MESSAGES)  # raises on a failed request
                done += 1

            async with manager, client:
                await store.settle()
                for round_ in range(6):
                    if round_ == 2:
                        server.kill()
                    if round_ == 4:
                        server.start()  # empty
                    await asyncio.gather(*(one() for _ in range(20)))
                    await asyncio.sleep(0.1)
                assert await store.settle(5.0)
                assert done == 120
                assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED
                other = FailoverManager(
                    profiles=sim_profiles(sim),
                    store=RedisStore(server.url, prefix=store.prefix),
                )
                async with other:  # the state was re-published into the empty Redis
                    assert await other.store.settle()  # type: ignore[attr-defined]
                    assert other.get_profile("a").status is ProfileStatus.RATE_LIMITED
        assert sum("unreachable" in w for w in warnings) == 1
        assert sum("reachable again" in w for w in warnings) == 1
    finally:
        server.kill()


async def test_requests_flow_when_redis_is_unreachable_from_the_start() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="unreachable")
    async with Simulator() as sim:
        manager, client = client_for(sim, store)
        async with manager, client:
            results = await asyncio.gather(*(client.complete(MESSAGES) for _ in range(40)))
    assert len(results) == 40 and not store.connected


async def test_two_clients_built_with_a_store_call_a_rate_limited_key_once(
    redis_server: RedisServer,
) -> None:
    prefix = f"client-{uuid.uuid4().hex[:8]}"
    async with Simulator() as sim:
        key_a = sim_profiles(sim)[0].api_key.get_secret_value()
        sim.script(Behavior("rate_limit", retry_after=30), key=key_a)

        def make() -> ResilientClient:
            store = RedisStore(redis_server.url, prefix=prefix)
            return ResilientClient(["openai/gpt-4o-mini"], sim_profiles(sim), store=store)

        async with make() as one, make() as two:
            await one.manager.store.settle()
            await two.manager.store.settle()
            await one.complete(MESSAGES)
            await one.manager.store.settle()
            await two.manager.store.settle()
            for _ in range(5):
                await two.complete(MESSAGES)
        assert sim.calls(key=key_a) == 1
