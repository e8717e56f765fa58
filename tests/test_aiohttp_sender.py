"""The aiohttp sender's cheaper paths keep the guarantees: asyncio's timer bounds an attempt as a
total, cancellation from outside stays cancellation, no cookie jar links keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    FailoverConfig,
    FailoverManager,
    ResilientClient,
)
from failover._tasks import AsyncioTimeout

pytest.importorskip("aiohttp")

from failover.aiohttp_sender import AiohttpSender

ASK = [{"role": "user", "content": "hi"}]
REPLY = (
    b'{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1}}'
)


@dataclass
class Upstream:
    """A raw HTTP/1.1 server: replies at once, or trickles its body a byte at a time."""

    trickle_every: float | None = None
    delay: float = 0.0
    body_bytes_sent: int = 0
    request_heads: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_heads.append(head)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                await asyncio.sleep(self.delay)
                if self.trickle_every is None:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"set-cookie: session=tracking-cookie; Path=/\r\n"
                        + f"content-length: {len(REPLY)}\r\n\r\n".encode()
                        + REPLY
                    )
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 100000\r\n\r\n"
                )
                for _ in range(100000):
                    writer.write(b" ")
                    await writer.drain()
                    self.body_bytes_sent += 1
                    await asyncio.sleep(self.trickle_every)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def profile(self, name: str = "k", priority: int = 0) -> AuthProfile:
        return AuthProfile(
            name,
            "openai",
            f"sk-aiohttp-test-key-{name}-0001",
            base_url=f"http://localhost:{self.port}/v1",
            priority=priority,
        )


@asynccontextmanager
async def serving() -> AsyncIterator[Upstream]:
    state = Upstream()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as state:
        yield state


async def test_a_hedge_on_aiohttp_wins_and_the_slow_attempt_is_cancelled_cleanly() -> None:
    sender = AiohttpSender()
    async with serving() as slow, serving() as fast:
        slow.delay = 5.0
        manager = FailoverManager(profiles=[slow.profile("east"), fast.profile("west", 1)])
        async with ResilientClient(
            ["openai/gpt-4o-mini"], manager, sender=sender, hedge_after=0.05
        ) as client:
            result = await client.complete(ASK)
            assert result.profile == "west"
            assert sorted(a.outcome for a in result.attempts) == ["cancelled", "ok"]
            east = client.manager.get_profile("east")
            assert east.failure_count == 0 and east.status.value == "available"
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0  # no cancel leaked to the caller
            await asyncio.sleep(0.1)  # past the loser's timers: none fires into this task
            fast.delay = slow.delay = 0.0
            assert (await client.complete(ASK)).text == "pong"
    await sender.aclose()


async def test_the_attempt_timeout_is_a_total_for_a_reply_that_trickles(
    upstream: Upstream,
) -> None:
    upstream.trickle_every = 0.01  # every read is on time; the whole body takes 1,000 s
    sender = AiohttpSender()
    manager = FailoverManager(FailoverConfig(max_retries=0), profiles=[upstream.profile()])
    client = ResilientClient(["openai/gpt-4o-mini"], manager, sender=sender, timeout=0.3)
    with pytest.raises(AllAttemptsFailed) as caught:
        await client.complete(ASK)
    assert [a.outcome for a in caught.value.attempts] == ["timeout"]
    assert 0 < upstream.body_bytes_sent < 100000
    await client.aclose()
    await sender.aclose()


async def test_the_sender_keeps_no_cookies(upstream: Upstream) -> None:
    sender = AiohttpSender()
    client = ResilientClient(["openai/gpt-4o-mini"], [upstream.profile()], sender=sender)
    for _ in range(2):
        assert (await client.complete(ASK)).text == "pong"
    await client.aclose()
    await sender.aclose()
    assert len(upstream.request_heads) == 2
    assert all(b"cookie" not in head.lower() for head in upstream.request_heads)


async def test_asyncio_timeout_expires_as_timeout_error_and_leaves_the_task_usable() -> None:
    with pytest.raises(TimeoutError), AsyncioTimeout(0.01):
        await asyncio.sleep(10)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation left pending


async def test_asyncio_timeout_that_does_not_expire_never_cancels_later() -> None:
    with AsyncioTimeout(0.01):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # past the timer: it was cancelled on exit


async def test_cancelling_from_outside_stays_a_cancellation() -> None:
    entered = asyncio.Event()

    async def timed() -> None:
        with AsyncioTimeout(10):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.ensure_future(timed())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outside_cancellation_racing_the_timer_stays_a_cancellation() -> None:
    async def timed() -> None:
        with AsyncioTimeout(0.01):
            try:
                await asyncio.sleep(10)
            finally:
                await asyncio.sleep(0.05)  # the timer fires meanwhile; the outside cancel won

    task = asyncio.ensure_future(timed())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
