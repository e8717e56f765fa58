"""A caller cancelled while the SDK transport awaits its inner transport: the cancellation
reaches the inner transport and propagates at once, nothing stays in flight, and the SDK's
own request carries none of the profiles' keys afterwards (its own header is back)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from failover import AuthProfile, ResilientTransport
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

KEY_A, KEY_B = "sk-proj-cancel-key-a-0000000001", "sk-proj-cancel-key-b-0000000002"
ROOT = "http://127.0.0.1:9/r"
SDK_KEY = "Bearer sk-sdk-placeholder"


class Hanging(httpx.AsyncBaseTransport):
    """Waits forever on each request, noting what it was sent and how its wait ended."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.sent: list[str | None] = []
        self.ended: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers.get("authorization"))
        self.started.set()
        try:
            await anyio.sleep_forever()
        except BaseException as error:
            self.ended.append(type(error).__name__)
            raise
        raise AssertionError("unreachable")


@pytest.mark.anyio
@pytest.mark.parametrize("client", [False, True], ids=["transport", "through a client"])
async def test_a_caller_cancelled_during_the_inner_send_leaves_nothing_behind(
    client: bool,
) -> None:
    inner = Hanging()
    transport = ResilientTransport(
        [
            AuthProfile("a", "openai", KEY_A, base_url=f"{ROOT}/v1"),
            AuthProfile("b", "openai", KEY_B, base_url=f"{ROOT}/v1"),
        ],
        provider="openai",
        inner=inner,
    )
    request = httpx.Request(
        "POST",
        f"{ROOT}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": SDK_KEY},
    )
    reached: list[str] = []

    async def call() -> None:
        try:
            if client:
                async with httpx.AsyncClient(transport=transport) as http:
                    await http.send(request)
            else:
                await transport.handle_async_request(request)
        except BaseException:
            reached.append("cancelled")
            raise
        reached.append("returned")  # must not happen

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await inner.started.wait()
        group.cancel_scope.cancel()

    assert reached == ["cancelled"]
    assert inner.sent == [f"Bearer {KEY_A}"]  # the key went to the inner transport only
    assert inner.ended == [anyio.get_cancelled_exc_class().__name__]
    assert not transport._in_flight
    seen = f"{request.url} {list(request.headers.raw)!r}"
    assert KEY_A not in seen
    assert KEY_B not in seen
    assert request.headers["authorization"] == SDK_KEY
    await transport.aclose()


class Counting(httpx.AsyncBaseTransport):
    """Answers every request at once, counting them."""

    def __init__(self) -> None:
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "choices": []})


@pytest.mark.anyio
async def test_a_transport_closed_while_the_sdk_uploads_its_body_sends_nothing() -> None:
    inner = Counting()
    profile = AuthProfile("a", "openai", KEY_A, base_url=f"{ROOT}/v1")
    transport = ResilientTransport([profile], provider="openai", inner=inner)
    uploading, release = anyio.Event(), anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        uploading.set()
        await release.wait()
        yield b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

    request = httpx.Request(
        "POST", f"{ROOT}/v1/chat/completions", content=body(), headers={"authorization": SDK_KEY}
    )
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await transport.handle_async_request(request)
        except Exception as error:
            outcome.append(error)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await uploading.wait()
        await transport.aclose()
        release.set()
    assert [type(error).__name__ for error in outcome] == ["ConfigError"]
    assert inner.sent == 0, "a closed transport sends no request, however long its body took"
    assert request.headers["authorization"] == SDK_KEY
