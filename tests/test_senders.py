"""The senders keep connections alive: a finished reply, streamed or not, goes back to the pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from failover import AuthProfile, ResilientClient
from failover.testing import Simulator
from tests.conftest import simulator_in_thread

KEYS = {"openai": ["sk-openai-key-a-000000000001"]}
ASK = [{"role": "user", "content": "Say hi"}]


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting the TCP connections it opens (httpcore's trace hook)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.connections = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                self.connections += 1

        request.extensions["trace"] = trace
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys=KEYS) as simulator:
        yield simulator


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "ollama-native/llama3.2"])
async def test_finished_streams_leave_their_connection_in_the_pool(
    sim: Simulator, model: str
) -> None:
    provider = model.partition("/")[0]
    key = KEYS.get(provider, [""])[0]
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport, timeout=None) as http:
        profile = AuthProfile("p", provider, key, base_url=sim.base_url(provider))
        client = ResilientClient([model], [profile], http_client=http)
        for _ in range(3):
            text = "".join([chunk.text async for chunk in client.stream(ASK)])
            assert text
        await client.aclose()
    assert transport.connections == 1


async def test_plain_replies_leave_their_connection_in_the_pool(sim: Simulator) -> None:
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport, timeout=None) as http:
        profile = AuthProfile("p", "openai", KEYS["openai"][0], base_url=sim.base_url("openai"))
        client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http)
        for _ in range(3):
            assert (await client.complete(ASK)).text
        await client.aclose()
    assert transport.connections == 1


async def test_attempts_bounded_by_a_deadline_reuse_a_few_httpx_timeouts_within_their_bound() -> (
    None
):
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    profile = AuthProfile("k0", "openai", KEYS["openai"][0], base_url="http://127.0.0.1:9/v1")
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], http_client=http, deadline=30.0)
    for _ in range(40):
        await client.complete(ASK)
    await client.aclose()
    await http.aclose()
    # what is left of the deadline, rounded up a little (the attempt's scope ends first),
    # and the pool's wait no longer than 0.9 of it (it ends a tenth before the deadline)
    assert all(29.0 < made["connect"] <= 30.0 + 1 / 16 for made in seen)
    assert all(26.0 < made["pool"] <= 0.9 * 30.0 for made in seen)
    assert len({id(made) for made in seen}) <= 3  # one extension for many requests
