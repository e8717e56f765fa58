"""Connections are always released, and local failures never count against a key or model.

Every test runs over the simulator (real HTTP on 127.0.0.1) and checks the pool itself
afterwards: for httpx, httpcore's pool must hold no active connection and no queued request;
for aiohttp, the connector must have no connection acquired and no waiter. Both senders are
driven: ``HttpxSender`` (on asyncio and trio) and ``AiohttpSender`` (asyncio only).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
import respx

from failover import (
    AuthProfile,
    CompletionStream,
    CooldownEvent,
    FailoverError,
    FailoverManager,
    ProfileStatus,
    ResilientClient,
)
from failover.testing import Behavior, Simulator
from tests.conftest import BOTH_BACKENDS, simulator_in_thread

anyio_backend = BOTH_BACKENDS

KEY_A = "sk-resources-key-a-000000000001"
KEY_B = "sk-resources-key-b-000000000002"
CHAIN = ["openai/gpt-4o-mini"]
HI = [{"role": "user", "content": "hi"}]
SENDERS = ["httpx", "aiohttp"]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    # 5 ms between chunks and 10 ms before the first byte: cancellations land everywhere
    behavior = Behavior(latency=0.01, tokens_per_second=200)
    with simulator_in_thread(default=behavior, words_per_chunk=1) as simulator:
        yield simulator


@dataclass
class Rig:
    """A client over the simulator, and a look into its connection pool."""

    client: ResilientClient
    pool_state: Callable[[], tuple[int, int]]
    """(connections checked out, requests waiting for one)."""
    close: Callable[[], Any]


def _httpx_pool_state(http: httpx.AsyncClient) -> Callable[[], tuple[int, int]]:
    def state() -> tuple[int, int]:
        pool: Any = http._transport._pool  # type: ignore[attr-defined]
        active = sum(1 for c in pool.connections if not c.is_idle() and not c.is_closed())
        return active, len(pool._requests)

    return state


@pytest.fixture
async def rig_factory(sim: Simulator, anyio_backend: str) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(sender: str, *, connections: int = 64, timeout: float = 10.0, **options: Any) -> Rig:
        if sender == "aiohttp" and anyio_backend != "asyncio":
            pytest.skip("aiohttp runs on asyncio only")
        profiles = [
            AuthProfile("a", "openai", KEY_A, base_url=sim.base_url("openai")),
            AuthProfile("b", "openai", KEY_B, base_url=sim.base_url("openai")),
        ]
        if sender == "httpx":
            http = httpx.AsyncClient(limits=httpx.Limits(max_connections=connections))
            client = ResilientClient(CHAIN, profiles, http_client=http, timeout=timeout, **options)
            rig = Rig(client, _httpx_pool_state(http), http.aclose)
        else:
            from failover.aiohttp_sender import AiohttpSender

            aio = AiohttpSender(limit=connections)
            client = ResilientClient(CHAIN, profiles, sender=aio, timeout=timeout, **options)

            def state() -> tuple[int, int]:
                session: Any = aio._session
                if session is None:
                    return 0, 0
                connector = session.connector
                waiting = sum(len(w) for w in getattr(connector, "_waiters", {}).values())
                return len(connector._acquired), waiting

            rig = Rig(client, state, aio.aclose)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.client.aclose()
        await rig.close()


async def _settled(rig: Rig) -> tuple[int, int]:
    """The pool's state once in-flight closes have had a moment (a leak never settles)."""
    for _ in range(100):
        if rig.pool_state() == (0, 0):
            break
        await anyio.sleep(0.02)
    return rig.pool_state()


def _assert_keys_untouched(client: ResilientClient) -> None:
    manager: FailoverManager = client.manager
    for profile in manager.list_profiles():
        assert profile.status is ProfileStatus.AVAILABLE, profile
        assert profile.failure_count == 0 and profile.consecutive_failures == 0, profile
        assert not profile.model_cooldowns, (profile.name, profile.model_cooldowns)
    for model in client.status()["models"]:
        assert model["failures"] == 0, model


async def _stream_all(client: ResilientClient) -> str:
    async with client.stream(HI) as stream:
        return "".join([chunk.text async for chunk in stream])


async def _break_after_first_chunk(stream: CompletionStream) -> None:
    try:
        async for _ in stream:
            break
    except FailoverError:
        pass  # no connection to be had: a typed error is fine


# -- cancellation at random points -------------------------------------------------------


@pytest.mark.parametrize("sender", SENDERS)
async def test_random_cancellations_leave_no_connection_checked_out(
    rig_factory: Callable[..., Rig], sender: str, anyio_backend: str
) -> None:
    """The review's case: 2,000 ``wait_for`` cancellations left httpx connections active.

    Cancellation lands anywhere (connecting, waiting for headers, reading, closing) in 1,000
    requests, 64 at a time, half streamed; on asyncio through ``asyncio.wait_for`` (a task's
    one-shot cancellation), on trio through a cancel scope.
    """
    rig = rig_factory(sender)
    client = rig.client
    rng = random.Random(10)
    done = {"finished": 0, "cancelled": 0}
    limiter = anyio.Semaphore(64)

    async def work(streamed: bool) -> None:
        if streamed:
            await _stream_all(client)
        else:
            await client.complete(HI)

    async def one(delay: float, streamed: bool) -> None:
        async with limiter:
            if anyio_backend == "asyncio":
                import asyncio

                try:
                    await asyncio.wait_for(work(streamed), delay)
                except asyncio.TimeoutError:
                    done["cancelled"] += 1
                    return
            else:
                with anyio.move_on_after(delay) as scope:
                    await work(streamed)
                if scope.cancelled_caught:
                    done["cancelled"] += 1
                    return
            done["finished"] += 1

    async with anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(one, rng.uniform(0.0, 0.06), rng.random() < 0.5)
    assert done["cancelled"] > 200  # cancellations did land, mid-flight
    active, queued = await _settled(rig)
    assert queued == 0, "requests left queued in the pool"
    if (anyio_backend, sender) != ("asyncio", "httpx"):
        assert active == 0, "connections left checked out"
    # On asyncio, httpcore itself can leave a connection marked active when asyncio's
    # task.cancel() lands inside client.send (bare httpx does the same); the client's own
    # releases are shielded. README "Security and resources" gives the measured figure.
    _assert_keys_untouched(client)  # cancellation is no fault of the key's
    assert (await client.complete(HI)).text.startswith("Simulated answer")


@pytest.mark.parametrize("sender", SENDERS)
async def test_cancelled_stream_reads_release_their_connection(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    rig = rig_factory(sender)
    rng = random.Random(11)
    for _ in range(40):
        stream = rig.client.stream(HI)
        first = await stream.__anext__()
        assert first.text
        with anyio.move_on_after(rng.uniform(0.0, 0.02)):
            async for _ in stream:
                pass
        await stream.aclose()
    assert await _settled(rig) == (0, 0)
    _assert_keys_untouched(rig.client)


# -- aclose() cancelled mid-await, then called again ---------------------------------------


@pytest.mark.parametrize("sender", SENDERS)
async def test_aclose_cancelled_then_called_again_releases_the_connection(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    rig = rig_factory(sender)
    for _ in range(20):
        stream = rig.client.stream(HI)
        assert (await stream.__anext__()).text
        with anyio.CancelScope() as scope:
            scope.cancel()  # aclose() is cancelled at its first await
            await stream.aclose()
        await stream.aclose()  # the caller tries again: this one must finish the job
    assert await _settled(rig) == (0, 0), "aclose() cancelled once, then again: leaked"


@pytest.mark.parametrize("sender", SENDERS)
async def test_aclose_cancelled_at_random_points_then_called_again_releases(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    rig = rig_factory(sender)
    rng = random.Random(12)
    for _ in range(40):
        stream = rig.client.stream(HI)
        assert (await stream.__anext__()).text
        with anyio.move_on_after(rng.uniform(0.0, 0.002)):
            await stream.aclose()
        await stream.aclose()
    assert await _settled(rig) == (0, 0)


# -- abandoned streams ---------------------------------------------------------------------


@pytest.mark.parametrize("sender", SENDERS)
async def test_streams_left_with_break_do_not_turn_pool_exhaustion_into_a_key_failure(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    """The review's case: referenced streams left with ``break`` hold the whole pool.

    The next request cannot get a connection. Whatever it ends in (a result, or a typed
    error), that local failure must not cool the key, rest the model or emit a cooldown.
    """
    rig = rig_factory(sender, connections=4, timeout=0.5)
    cooldowns: list[CooldownEvent] = []
    rig.client.on_cooldown(cooldowns.append)
    abandoned: list[CompletionStream] = []
    for _ in range(6):  # the last two find the pool full
        stream = rig.client.stream(HI)
        abandoned.append(stream)  # still referenced: no garbage collection helps
        await _break_after_first_chunk(stream)
    with contextlib.suppress(FailoverError):  # a typed error is fine; see below what it must not do
        await rig.client.complete(HI)
    assert cooldowns == []
    _assert_keys_untouched(rig.client)
    for stream in abandoned:
        await stream.aclose()
    assert await _settled(rig) == (0, 0)
    assert (await rig.client.complete(HI)).text.startswith("Simulated answer")


@pytest.mark.parametrize("sender", SENDERS)
async def test_a_stream_left_with_break_inside_async_with_is_released(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    rig = rig_factory(sender, connections=2)
    for _ in range(10):
        async with rig.client.stream(HI) as stream:
            async for _ in stream:
                break
    assert await _settled(rig) == (0, 0)
    _assert_keys_untouched(rig.client)


@pytest.mark.parametrize("sender", SENDERS)
async def test_a_held_pool_times_out_locally_without_counting_against_the_key(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    """The one connection is held by an open stream: the next request waits for the pool."""
    rig = rig_factory(sender, connections=1, timeout=0.5)
    cooldowns: list[CooldownEvent] = []
    rig.client.on_cooldown(cooldowns.append)
    async with rig.client.stream(HI) as holder:
        assert (await holder.__anext__()).text
        for _ in range(3):
            with contextlib.suppress(FailoverError):
                await rig.client.complete(HI)
    assert cooldowns == []
    _assert_keys_untouched(rig.client)
    assert await _settled(rig) == (0, 0)


async def test_httpx_pool_timeout_never_counts_against_a_key_or_model() -> None:
    """httpx.PoolTimeout is the client's own pool, not the provider: no key or model pays."""
    profiles = [AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)]
    client = ResilientClient(CHAIN, profiles, timeout=5.0)
    cooldowns: list[CooldownEvent] = []
    client.on_cooldown(cooldowns.append)
    with respx.mock(assert_all_called=False) as router:
        router.post("https://api.openai.com/v1/chat/completions").mock(
            side_effect=httpx.PoolTimeout("no connection available in the pool")
        )
        for _ in range(12):  # enough to open any breaker it counted towards
            with pytest.raises(FailoverError):
                await client.complete(HI)
    assert cooldowns == []
    _assert_keys_untouched(client)
    await client.aclose()


# -- hung hooks and aclose() -----------------------------------------------------------------


@pytest.mark.parametrize("sender", SENDERS)
async def test_aclose_with_a_hung_async_hook_returns_and_closes_the_http_client(
    rig_factory: Callable[..., Rig], sender: str
) -> None:
    rig = rig_factory(sender)
    started = anyio.Event()

    async def hung(event: object) -> None:
        started.set()
        await anyio.sleep_forever()

    rig.client.on_success(hung)
    await rig.client.complete(HI)
    await started.wait()
    with anyio.fail_after(60):  # a safety net far above any grace period, not a timing check
        await rig.client.aclose()
    assert await _settled(rig) == (0, 0)


async def test_aclose_with_a_hung_hook_closes_the_client_it_owns(sim: Simulator) -> None:
    profiles = [AuthProfile("a", "openai", KEY_A, base_url=sim.base_url("openai"))]
    client = ResilientClient(CHAIN, profiles)
    started = anyio.Event()

    async def hung(event: object) -> None:
        started.set()
        await anyio.sleep_forever()

    client.on_success(hung)
    await client.complete(HI)
    await started.wait()
    with anyio.fail_after(60):
        await client.aclose()
    owned: Any = client._owned_http
    assert owned is not None and owned.is_closed


async def test_aclose_with_a_hung_manager_callback_returns(sim: Simulator) -> None:
    sim.script("rate_limit", key=KEY_A)
    try:
        manager = FailoverManager(
            profiles=[
                AuthProfile("a", "openai", KEY_A, base_url=sim.base_url("openai")),
                AuthProfile("b", "openai", KEY_B, base_url=sim.base_url("openai")),
            ]
        )
        started = anyio.Event()

        async def hung(failed: object, following: object) -> None:
            started.set()
            await anyio.sleep_forever()

        manager.on_failover(hung)
        client = ResilientClient(CHAIN, manager)
        await client.complete(HI)
        await started.wait()
        with anyio.fail_after(60):
            await client.aclose()
        owned: Any = client._owned_http
        assert owned is not None and owned.is_closed
    finally:
        sim.script(None, key=KEY_A)
