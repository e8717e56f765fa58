"""ResilientClient against the simulator over real HTTP: every provider, every failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

from failover import (
    AllAttemptsFailed,
    AuthenticationError,
    AuthProfile,
    ContentFilteredError,
    ContextWindowExceededError,
    FailoverConfig,
    FailoverManager,
    MalformedResponseError,
    OverloadedError,
    ProfileStatus,
    ProviderConnectionError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ResilientClient,
    ServerError,
    StreamInterrupted,
)
from failover.testing import Behavior, Simulator
from tests.conftest import BOTH_BACKENDS, simulator_in_thread

anyio_backend = BOTH_BACKENDS

KEYS = {
    "openai": ["sk-openai-key-a-000000000001", "sk-openai-key-b-000000000002"],
    "anthropic": ["sk-ant-key-c-00000000000003"],
    "gemini": ["AIzaSy-gemini-key-d-000000000004"],
    "ollama-native": [],
}
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
    "ollama-native": "ollama-native/llama3.2",
}
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys={p: k for p, k in KEYS.items() if k}) as simulator:
        yield simulator


@pytest.fixture(params=["httpx", "httpx-aiohttp", "aiohttp", "httpx2"])
async def sender(
    request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[dict[str, Any]]:
    """Every test here runs with each HTTP stack behind the client's sender seam."""
    if anyio_backend == "trio" and request.param not in ("httpx", "httpx2"):
        pytest.skip("aiohttp runs on asyncio only")
    if request.param == "httpx":
        yield {}
    elif request.param == "httpx2":
        httpx2 = pytest.importorskip("httpx2")

        from failover.http import HttpxSender

        async with httpx2.AsyncClient(timeout=None) as http2:
            yield {"sender": HttpxSender(http2)}
    elif request.param == "httpx-aiohttp":
        AiohttpTransport = pytest.importorskip("httpx_aiohttp").AiohttpTransport

        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=None) as http:
            yield {"http_client": http}
    else:
        pytest.importorskip("aiohttp")
        from failover.aiohttp_sender import AiohttpSender

        aiohttp_sender = AiohttpSender()
        yield {"sender": aiohttp_sender}
        await aiohttp_sender.aclose()


def manager_for(sim: Simulator, **config: float) -> FailoverManager:
    profiles = [
        AuthProfile(f"{provider}-{index}", provider, key, base_url=sim.base_url(provider))
        for provider, keys in KEYS.items()
        for index, key in enumerate(keys or [""])
    ]
    return FailoverManager(FailoverConfig(**config), profiles=profiles)


@pytest.mark.parametrize("provider", list(MODELS))
async def test_complete_and_stream_work_for_every_wire_format(
    sim: Simulator, sender: dict[str, Any], provider: str
) -> None:
    async with ResilientClient([MODELS[provider]], manager_for(sim), **sender) as client:
        result = await client.complete(ASK, max_tokens=50)
        assert result.text.startswith("Simulated answer") and result.usage.output_tokens > 0
        stream = client.stream(ASK)
        text = "".join([chunk.text async for chunk in stream])
        assert text == result.text and stream.usage is not None and stream.finish_reason


async def test_rate_limited_key_is_not_called_while_cooling(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    key_a, key_b = KEYS["openai"]
    sim.script(Behavior("rate_limit", retry_after=30), key=key_a)
    async with ResilientClient([MODELS["openai"]], manager_for(sim), **sender) as client:
        for _ in range(5):
            assert (await client.complete(ASK)).profile == "openai-1"
    assert sim.calls(key=key_a) == 1 and sim.calls(key=key_b) == 5


async def test_key_with_no_requests_left_is_skipped_before_it_gets_a_429(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    key_a = KEYS["openai"][0]
    sim.script(Behavior("rate_limit", after=2, window=30), key=key_a)
    async with ResilientClient([MODELS["openai"]], manager_for(sim), **sender) as client:
        held: list[Any] = []
        client.on_cooldown(held.append)
        for _ in range(8):
            await client.complete(ASK)
        profiles = {p["name"]: p for p in client.status()["profiles"]}
    assert sim.calls(key=key_a) == 2  # the reply saying "0 remaining" kept it out
    assert profiles["openai-0"]["requests_remaining"] == 0
    assert profiles["openai-0"]["status"] == "rate_limited"
    assert [(e.profile, e.reason) for e in held] == [("openai-0", "budget_spent")]
    assert all(r.outcome == "healthy" for r in sim.requests)


async def test_dead_key_is_disabled_and_scheduled_outage_falls_over(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    sim.script("invalid_key", key=KEYS["openai"][0])
    sim.outage("openai", start=0.0, end=30.0, kind="overloaded")
    manager = manager_for(sim, max_retries=1)
    async with ResilientClient(
        [MODELS["openai"], MODELS["anthropic"]], manager, **sender
    ) as client:
        result = await client.complete(ASK)
    assert result.model == MODELS["anthropic"]
    assert [a.outcome for a in result.attempts][-1] == "ok"


async def test_hang_times_out_and_falls_over(sim: Simulator, sender: dict[str, Any]) -> None:
    sim.script("hang", provider="openai")
    async with ResilientClient(
        [MODELS["openai"], MODELS["gemini"]], manager_for(sim, max_retries=0), timeout=0.3, **sender
    ) as client:
        result = await client.complete(ASK)
    assert result.model == MODELS["gemini"] and result.attempts[0].outcome == "timeout"


async def test_truncated_stream_after_text_raises_stream_interrupted(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    sim.script("truncate", provider="anthropic")
    async with ResilientClient(
        [MODELS["anthropic"], MODELS["openai"]], manager_for(sim), **sender
    ) as client:
        with pytest.raises(StreamInterrupted) as info:
            async for _ in client.stream(ASK):
                pass
    assert info.value.partial_text and "terminator" in str(info.value)


async def test_midstream_error_event_raises_stream_interrupted(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    sim.script("midstream_error", provider="anthropic")
    async with ResilientClient([MODELS["anthropic"]], manager_for(sim), **sender) as client:
        with pytest.raises(StreamInterrupted) as info:
            async for _ in client.stream(ASK):
                pass
    assert isinstance(info.value.error, OverloadedError)


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("rate_limit", RateLimitError),
        ("quota", QuotaExceededError),
        ("invalid_key", AuthenticationError),
        ("overloaded", OverloadedError),
        ("server_error", ServerError),
        ("context_limit", ContextWindowExceededError),
        ("content_block", ContentFilteredError),
        ("malformed", MalformedResponseError),
        ("reset", ProviderConnectionError),
        ("truncate", MalformedResponseError),
    ],
)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_every_failure_is_recognised_for_every_provider(
    sim: Simulator, sender: dict[str, Any], provider: str, kind: str, error_type: type
) -> None:
    sim.script(kind, provider=provider)
    manager = manager_for(sim, max_retries=0)
    # fail at once: waiting for a key that answers 429 every time would only delay the error
    async with ResilientClient(
        [MODELS[provider]], manager, wait_for_recovery=False, **sender
    ) as client:
        with pytest.raises((AllAttemptsFailed, ContentFilteredError)) as info:
            await client.complete(ASK)
    error = info.value
    first = error if isinstance(error, ContentFilteredError) else error.attempts[0].error
    assert isinstance(first, error_type), repr(first)
    if kind == "rate_limit":
        assert first.retry_after == pytest.approx(1.0)
    if kind in ("quota", "invalid_key"):
        assert manager.get_profile(f"{provider}-0").status is ProfileStatus.DISABLED


async def test_timeout_error_for_a_stalled_stream(sim: Simulator, sender: dict[str, Any]) -> None:
    sim.script(Behavior("healthy", tokens_per_second=2), provider="openai")
    async with ResilientClient(
        [MODELS["openai"]], manager_for(sim, max_retries=0), stream_idle_timeout=0.2, **sender
    ) as client:
        with pytest.raises(AllAttemptsFailed) as info:
            async for _ in client.stream(ASK):
                pass
    assert isinstance(info.value.attempts[0].error, ProviderTimeoutError)


async def test_stream_without_a_charset_in_its_content_type(sender: dict[str, Any]) -> None:
    """A bare ``text/event-stream`` (no charset) is read as UTF-8 by every sender."""
    events = (
        b'data: {"choices": [{"delta": {"content": "h\\u00e9"}}]}\n\n'
        b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    )

    async def serve(stream: anyio.abc.SocketStream) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            received += await stream.receive()
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(events), events)
        )
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    profile = AuthProfile("local", "vllm", "", base_url=f"http://127.0.0.1:{port}/v1")
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        async with ResilientClient(["vllm/any-model"], [profile], **sender) as client:
            chunks = [chunk.text async for chunk in client.stream(ASK)]
        group.cancel_scope.cancel()
    assert chunks == ["hé", ""]


async def test_cancelling_a_stream_mid_way_changes_no_profile(
    sim: Simulator, sender: dict[str, Any]
) -> None:
    sim.script(Behavior("healthy", tokens_per_second=4), provider="openai")
    manager = manager_for(sim)
    first_chunk = anyio.Event()

    async def consume(client: ResilientClient) -> None:
        async with client.stream(ASK) as stream:
            async for _ in stream:
                first_chunk.set()

    async with (
        ResilientClient([MODELS["openai"]], manager, **sender) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(consume, client)
        await first_chunk.wait()
        group.cancel_scope.cancel()
    assert all(
        p.failure_count == 0 and p.status.value == "available" for p in manager.list_profiles()
    )
