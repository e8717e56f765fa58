"""PyreqwestSender keeps every guarantee of the other senders: the integration suite passes on
it, an attempt's timeout is a total, a stream's idle time is bounded, a cancellation (asyncio's
or an anyio scope's) stays the caller's and leaves the pool whole, connections are reused, no
redirect is followed and no cookie links keys."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    FailoverConfig,
    FailoverError,
    FailoverManager,
    ProfileStatus,
    ProviderConnectionError,
    ProviderTimeoutError,
    ResilientClient,
    StreamInterrupted,
)

pytest.importorskip("pyreqwest")

from failover.providers.base import HttpRequest
from failover.pyreqwest_sender import PyreqwestSender
from tests import test_integration as integration

ASK = [{"role": "user", "content": "hi"}]
REPLY = (
    b'{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1}}'
)
CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "tok "}}]}\n\n'
END = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'


# -- the integration suite (tests/test_integration.py), every test on this sender -------------


@pytest.fixture
async def sender() -> AsyncIterator[dict[str, Any]]:
    """The integration suite's ``sender`` fixture, as this sender alone."""
    made = PyreqwestSender()
    yield {"sender": made}
    await made.aclose()


sim = integration.sim
test_complete_and_stream_work_for_every_wire_format = (
    integration.test_complete_and_stream_work_for_every_wire_format
)
test_rate_limited_key_is_not_called_while_cooling = (
    integration.test_rate_limited_key_is_not_called_while_cooling
)
test_key_with_no_requests_left_is_skipped_before_it_gets_a_429 = (
    integration.test_key_with_no_requests_left_is_skipped_before_it_gets_a_429
)
test_dead_key_is_disabled_and_scheduled_outage_falls_over = (
    integration.test_dead_key_is_disabled_and_scheduled_outage_falls_over
)
test_hang_times_out_and_falls_over = integration.test_hang_times_out_and_falls_over
test_truncated_stream_after_text_raises_stream_interrupted = (
    integration.test_truncated_stream_after_text_raises_stream_interrupted
)
test_midstream_error_event_raises_stream_interrupted = (
    integration.test_midstream_error_event_raises_stream_interrupted
)
test_every_failure_is_recognised_for_every_provider = (
    integration.test_every_failure_is_recognised_for_every_provider
)
test_timeout_error_for_a_stalled_stream = integration.test_timeout_error_for_a_stalled_stream
test_stream_without_a_charset_in_its_content_type = (
    integration.test_stream_without_a_charset_in_its_content_type
)
test_cancelling_a_stream_mid_way_changes_no_profile = (
    integration.test_cancelling_a_stream_mid_way_changes_no_profile
)


# -- a raw HTTP/1.1 upstream whose every byte is under the test's control --------------------


@dataclass
class Upstream:
    """Replies at once (or after ``delay``), trickles, stalls a stream, redirects, or sends
    bytes that are not text; counts connections and keeps each request's head."""

    mode: str = "reply"
    delay: float = 0.0
    redirect_to: str = ""
    body_bytes_sent: int = 0
    connections: int = 0
    request_heads: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_heads.append(head)
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                await asyncio.sleep(self.delay)
                await self.answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "redirect":
            writer.write(
                b"HTTP/1.1 307 Temporary Redirect\r\nlocation: "
                + self.redirect_to.encode()
                + b"\r\ncontent-length: 0\r\n\r\n"
            )
        elif self.mode == "trickle":  # every read on time, the whole body takes 1,000 s
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: 100000\r\n\r\n"
            )
            for _ in range(100000):
                writer.write(b" ")
                await writer.drain()
                self.body_bytes_sent += 1
                await asyncio.sleep(0.01)
        elif self.mode in ("stream", "stall", "not text"):
            body = CHUNK * 3 + END
            if self.mode == "not text":
                body = b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n'
                body += END
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for piece in (body,) if self.mode != "stall" else (CHUNK, CHUNK):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            if self.mode == "stall":  # the rest never comes: wait for the client to hang up
                await reader.read()
                return
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"set-cookie: session=tracking-cookie; Path=/\r\n"
                + f"content-length: {len(REPLY)}\r\n\r\n".encode()
                + REPLY
            )
        await writer.drain()

    def profile(self, name: str = "k", priority: int = 0) -> AuthProfile:
        return AuthProfile(
            name,
            "openai",
            f"sk-pyreqwest-test-key-{name}-0001",
            base_url=f"http://127.0.0.1:{self.port}/v1",
            priority=priority,
        )


@asynccontextmanager
async def serving(mode: str = "reply") -> AsyncIterator[Upstream]:
    state = Upstream(mode=mode)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()


@asynccontextmanager
async def client_on(
    *profiles: AuthProfile, limit: int = 512, **options: Any
) -> AsyncIterator[ResilientClient]:
    sender = PyreqwestSender(limit=limit)
    manager = FailoverManager(FailoverConfig(max_retries=0), profiles=list(profiles))
    try:
        async with ResilientClient(["openai/gpt-4o-mini"], manager, sender=sender, **options) as c:
            yield c
    finally:
        await sender.aclose()


def assert_untouched(client: ResilientClient) -> None:
    for profile in client.manager.list_profiles():
        assert profile.status is ProfileStatus.AVAILABLE and profile.failure_count == 0, profile


# -- the sender's own guarantees ---------------------------------------------------------------


async def test_replies_and_finished_streams_reuse_one_connection() -> None:
    async with serving() as upstream, client_on(upstream.profile()) as client:
        for _ in range(3):
            assert (await client.complete(ASK)).text == "pong"
        upstream.mode = "stream"
        for _ in range(3):
            assert "".join([chunk.text async for chunk in client.stream(ASK)]) == "tok " * 3
    assert upstream.connections == 1


async def test_a_stream_left_early_gives_its_connection_back_and_the_next_call_works() -> None:
    async with serving("stall") as upstream, client_on(upstream.profile(), limit=1) as client:
        async with client.stream(ASK) as stream:
            async for chunk in stream:
                assert chunk.text == "tok "
                break
        upstream.mode = "reply"
        with anyio.fail_after(5):  # the pool's one slot is free again
            assert (await client.complete(ASK)).text == "pong"


async def test_the_attempt_timeout_is_a_total_for_a_reply_that_trickles() -> None:
    async with serving("trickle") as upstream, client_on(upstream.profile(), timeout=0.3) as client:
        with pytest.raises(AllAttemptsFailed) as caught:
            await client.complete(ASK)
    assert [a.outcome for a in caught.value.attempts] == ["timeout"]
    assert 0 < upstream.body_bytes_sent < 100000


async def test_a_stream_that_stalls_after_its_first_chunk_times_out_as_a_stall() -> None:
    async with (
        serving("stall") as upstream,
        client_on(upstream.profile(), stream_idle_timeout=0.2) as client,
    ):
        got: list[str] = []

        async def read() -> None:
            async for chunk in client.stream(ASK):
                got.append(chunk.text)

        with pytest.raises(StreamInterrupted) as caught, anyio.fail_after(5):
            await read()
    assert got == ["tok ", "tok "]
    assert isinstance(caught.value.error, ProviderTimeoutError), caught.value


async def test_a_stream_that_is_not_valid_text_fails_over_to_the_next_key() -> None:
    async with (
        serving("not text") as bad,
        serving("stream") as good,
        client_on(bad.profile("bad"), good.profile("good", 1)) as client,
        client.stream(ASK) as stream,
    ):
        text = "".join([chunk.text async for chunk in stream])
    assert [(a.profile, a.outcome) for a in stream.attempts] == [
        ("bad", "malformed"),
        ("good", "ok"),
    ]
    assert text == "tok " * 3


async def test_a_refused_connection_is_a_connection_error_that_rotates_without_the_key() -> None:
    async with serving() as upstream:
        closed = Upstream(port=upstream.port)  # the same address, once the server is gone
    async with serving() as good:
        dead = closed.profile("dead")
        async with client_on(dead, good.profile("good", 1)) as client:
            result = await client.complete(ASK)
    first = result.attempts[0]
    assert (first.profile, first.outcome) == ("dead", "connection")
    assert isinstance(first.error, ProviderConnectionError)
    assert dead.api_key.get_secret_value() not in str(first.error)
    assert result.profile == "good"


async def test_a_redirect_is_never_followed_so_the_key_stays_home() -> None:
    async with serving() as elsewhere, serving("redirect") as upstream:
        upstream.redirect_to = f"http://127.0.0.1:{elsewhere.port}/v1/chat/completions"
        async with client_on(upstream.profile()) as client:
            with pytest.raises(FailoverError):
                await client.complete(ASK)
    assert len(upstream.request_heads) == 1
    assert elsewhere.request_heads == []


async def test_the_sender_keeps_no_cookies() -> None:
    async with serving() as upstream, client_on(upstream.profile()) as client:
        for _ in range(2):
            assert (await client.complete(ASK)).text == "pong"
    assert len(upstream.request_heads) == 2
    assert all(b"cookie" not in head.lower() for head in upstream.request_heads)


async def test_an_anyio_scope_that_cancels_a_call_catches_its_own_cancellation() -> None:
    """pyreqwest raises a CancelledError of its own; the scope must still see its own."""
    async with serving() as upstream, client_on(upstream.profile()) as client:
        upstream.delay = 5.0
        with anyio.move_on_after(0.1) as scope:
            await client.complete(ASK)
        assert scope.cancelled_caught
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        upstream.delay = 0.0
        assert (await client.complete(ASK)).text == "pong"
        assert_untouched(client)


async def test_a_hedge_wins_and_the_slow_attempt_is_cancelled_cleanly() -> None:
    async with serving() as slow, serving() as fast:
        slow.delay = 5.0
        async with client_on(slow.profile("east"), fast.profile("west", 1), hedge_after=0.05) as c:
            result = await c.complete(ASK)
            assert result.profile == "west"
            assert sorted(a.outcome for a in result.attempts) == ["cancelled", "ok"]
            assert_untouched(c)
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
            await asyncio.sleep(0.1)  # past the loser's timers: none fires into this task
            slow.delay = 0.0
            assert (await c.complete(ASK)).text == "pong"


async def test_calls_cancelled_at_random_moments_leave_the_pool_whole() -> None:
    """Cancelled anywhere (asyncio's wait_for, anyio's scopes), no slot of 4 is lost."""
    chance = random.Random(25)
    async with serving() as upstream, client_on(upstream.profile(), limit=4) as client:
        upstream.delay = 0.002

        async def by_asyncio() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.complete(ASK), chance.uniform(0, 0.004))

        async def by_anyio() -> None:
            with anyio.move_on_after(chance.uniform(0, 0.004)):
                await client.complete(ASK)

        for each in (by_asyncio, by_anyio):
            for _ in range(5):
                await asyncio.gather(*(each() for _ in range(16)))
        upstream.delay = 0.0
        with anyio.fail_after(10):  # 4 slots, 64 calls: a lost slot would leave some waiting
            results = await asyncio.gather(*(client.complete(ASK) for _ in range(64)))
        assert {result.text for result in results} == {"pong"}
        assert_untouched(client)


async def test_an_owned_client_is_closed_and_a_given_one_is_left_open() -> None:
    from pyreqwest.client import ClientBuilder

    given = ClientBuilder().follow_redirects(False).build()
    async with serving() as upstream:
        mine = PyreqwestSender(given)
        async with ResilientClient(["openai/gpt-4o-mini"], [upstream.profile()], sender=mine) as c:
            assert (await c.complete(ASK)).text == "pong"
        await mine.aclose()
        reply = await given.get(f"http://127.0.0.1:{upstream.port}/v1/x").build().send()
        assert reply.status == 200  # still usable: not ours to close
        await given.close()
        owned = PyreqwestSender()
        async with ResilientClient(["openai/gpt-4o-mini"], [upstream.profile()], sender=owned) as c:
            assert (await c.complete(ASK)).text == "pong"
        await owned.aclose()
        assert owned._client is None


class _Answering(BaseHTTPRequestHandler):
    """An upstream in a thread of its own: it answers while the test's event loop is blocked."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *_: Any) -> None:
        pass


def _hold_the_event_loop(seconds: float) -> None:
    """Keep the event loop from running (a long synchronous step of another task)."""
    time.sleep(seconds)


async def test_a_cancellation_that_lands_after_the_reply_came_still_cancels() -> None:
    """The reply arrives in Rust while the loop is busy, then the caller is cancelled:
    pyreqwest would hand over the reply and drop the cancellation."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    request = HttpRequest("POST", url, {"content-type": "application/json"}, b"{}")
    sender = PyreqwestSender(limit=1)

    async def call() -> bytes:
        async with sender.open(request, 10.0) as reply:
            return await reply.aread()

    try:
        assert await call() == REPLY
        for _ in range(5):
            task = asyncio.ensure_future(call())
            await asyncio.sleep(0)  # sent: the task waits for pyreqwest
            _hold_the_event_loop(0.05)  # the reply comes meanwhile
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        with anyio.fail_after(5):  # the one connection is free again
            assert await call() == REPLY
    finally:
        await sender.aclose()
        server.shutdown()
        server.server_close()
