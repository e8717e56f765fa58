"""Connections are always released, and local failures never count against a key or model.

The tests run over the simulator (real HTTP on 127.0.0.1), or over a scripted connection
where every turn of the event loop matters, and check the pool itself once the releases
under way have finished: for httpx, httpcore's pool must hold no active connection and no
request; for aiohttp, the connector must have no connection acquired and no waiter. Both
senders are driven: ``HttpxSender`` (on asyncio and trio) and ``AiohttpSender`` (asyncio
only).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
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
from failover._tasks import _finishing
from failover.http import HttpxSender
from failover.providers.base import HttpRequest
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
    """(connections checked out, requests the pool still holds or that wait for one)."""
    close: Callable[[], Any]


def _httpcore_pool_state(pool: Any) -> tuple[int, int]:
    """(connections neither idle nor closed, requests still in the pool, active or queued)."""
    active = sum(1 for c in pool.connections if not c.is_idle() and not c.is_closed())
    return active, len(pool._requests)


def _httpx_pool_state(http: httpx.AsyncClient) -> Callable[[], tuple[int, int]]:
    return lambda: _httpcore_pool_state(http._transport._pool)  # type: ignore[attr-defined]


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


async def _releases_finished() -> None:
    """Wait for the connection releases under way to finish.

    On asyncio a release the caller stopped waiting for (it was cancelled) goes on in a task
    of its own, which ``failover._tasks`` holds until it ends; on trio releases run inline.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return
    while pending := {task for task in _finishing if task.get_loop() is loop}:
        await asyncio.wait(pending)


async def _settled(rig: Rig) -> tuple[int, int]:
    """The pool's state once every release under way has finished."""
    await _releases_finished()
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
    active, held = await _settled(rig)
    assert held == 0, "requests left in the pool"
    assert active == 0, "connections left checked out"
    _assert_keys_untouched(client)  # cancellation is no fault of the key's
    assert (await client.complete(HI)).text.startswith("Simulated answer")


# -- a cancellation at every turn of one request -------------------------------------------

_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n",
    b'{"a": 1}\n',
    b"{}\n\n",
)


async def _io() -> None:
    """One turn of the event loop, taken as I/O takes it: a future completes, then its task
    resumes (a cancel scope cancelled in between is not delivered there, but further on)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: done.done() or done.set_result(None))
    await done


class _Wire(httpcore.AsyncMockStream):
    """A connection to a server that answers each request at once; every read and write is I/O."""

    def __init__(self) -> None:
        super().__init__([])

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's signature)
        if buffer.startswith(b"POST "):
            self._buffer = list(_REPLY)
        await _io()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        await _io()
        return await super().read(max_bytes, timeout)


class _Upstream(httpcore.AsyncMockBackend):
    """Connects (one turn) to a _Wire."""

    def __init__(self) -> None:
        super().__init__([])

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        await _io()
        return _Wire()


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("how", ["task.cancel", "cancel scope"])
async def test_a_cancellation_at_any_turn_of_a_request_leaves_the_pool_clean(
    anyio_backend: str, how: str, streamed: bool
) -> None:
    """One request, cancelled after 0, 1, 2... turns of the event loop, until one completes.

    asyncio's own ``task.cancel()`` (``asyncio.wait_for``, ``asyncio.timeout``) passes
    through the anyio shields httpcore releases with; an anyio scope's cancellation, in the
    turn where a connect completes, reaches httpcore where it leaves the new connection
    neither idle nor closed (httpcore 1.0.9). After each one the pool must be as before.
    """
    if anyio_backend != "asyncio":
        pytest.skip("turns of asyncio's event loop")
    transport = httpx.AsyncHTTPTransport()
    pool = httpcore.AsyncConnectionPool(network_backend=_Upstream(), max_connections=1)
    transport._pool = pool
    http = httpx.AsyncClient(transport=transport)
    sender = HttpxSender(http)
    request = HttpRequest("POST", "http://upstream.test/v1/chat", {}, b"{}")

    async def exchange(scope: anyio.CancelScope) -> None:
        with scope:
            async with sender.open(request, 10.0, read_timeout=5.0 if streamed else None) as reply:
                if streamed:
                    assert [line async for line in reply.aiter_lines()] == ['{"a": 1}', "{}", ""]
                else:
                    assert await reply.aread() == b'{"a": 1}\n{}\n\n'

    turns = 0
    while True:
        scope = anyio.CancelScope()
        task = asyncio.ensure_future(exchange(scope))
        for _ in range(turns):
            await asyncio.sleep(0)
        finished = task.done()
        if how == "task.cancel":
            task.cancel()
        else:
            scope.cancel()
        await asyncio.wait({task})
        await _releases_finished()
        assert _httpcore_pool_state(pool) == (0, 0), f"cancelled after {turns} turns: left over"
        if finished:
            assert task.result() is None  # the request went through
            break
        turns += 1
    assert turns > 10  # cancellations landed all along the request
    await http.aclose()


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


# -- a deadline and the attempt's timeout due together -------------------------------------


async def _stall_after_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An event stream whose headers come at once and whose first event never does."""
    with contextlib.suppress(Exception):
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(3600)


async def test_streams_cut_by_a_deadline_leave_no_connection_checked_out(
    anyio_backend: str,
) -> None:
    """The review's case: with a deadline, an attempt's timeout is the time left, so the
    request's scope and the attempt's bound fall due together. A stream's first chunk is
    read in the caller's task: were the attempt bounded by asyncio's own cancellation, it
    could land one turn after the scope's, inside httpcore's shielded cleanup, and leave
    the connection checked out for good (36 of 100 did)."""
    if anyio_backend != "asyncio":
        pytest.skip("asyncio's own cancellation is what is at stake")
    server = await asyncio.start_server(_stall_after_headers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000), timeout=None)
    profile = AuthProfile("k", "openai", KEY_A, base_url=f"http://127.0.0.1:{port}/v1")
    client = ResilientClient(CHAIN, [profile], sender=HttpxSender(http), deadline=0.05, timeout=30)
    stop = asyncio.Event()

    async def busy() -> None:  # other tasks: the two bounds' callbacks land turns apart
        while not stop.is_set():  # noqa: ASYNC110 - it spins (turns of the loop), not waits
            await asyncio.sleep(0)

    spinners = [asyncio.ensure_future(busy()) for _ in range(4)]
    try:
        for _ in range(60):
            with pytest.raises(FailoverError):
                await _stream_all(client)
    finally:
        stop.set()
        await asyncio.gather(*spinners)
        await _releases_finished()
        state = _httpcore_pool_state(http._transport._pool)  # type: ignore[attr-defined]
        await client.aclose()
        await http.aclose()
        server.close()
    assert state == (0, 0), "connections left checked out"
