"""Hedged requests: a slow first attempt gets a second in parallel; the first success wins."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import respx

from failover import AuthProfile, FailoverManager, ResilientClient
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

EAST = "https://east.example/v1/chat/completions"
WEST = "https://west.example/v1/chat/completions"
ASK = [{"role": "user", "content": "hi"}]


def answer(text: str) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    )


def manager() -> FailoverManager:
    return FailoverManager(
        profiles=[
            AuthProfile(
                "east", "openai", "sk-east-key-000000000001", base_url="https://east.example/v1"
            ),
            AuthProfile(
                "west",
                "openai",
                "sk-west-key-000000000002",
                base_url="https://west.example/v1",
                priority=1,
            ),
        ]
    )


def slow(seconds: float, text: str) -> Any:
    async def reply(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(seconds)
        return answer(text)

    return reply


@respx.mock
async def test_a_slow_first_deployment_loses_to_a_fast_second_and_is_cancelled_cleanly() -> None:
    respx.post(EAST).mock(side_effect=slow(5, "east"))
    respx.post(WEST).mock(return_value=answer("west"))
    hedges: list[Any] = []
    async with ResilientClient(["openai/gpt-4o-mini"], manager(), hedge_after=0.05) as client:
        client.on_hedge(hedges.append)
        result = await client.complete(ASK)
    assert result.text == "west" and result.profile == "west"
    assert sorted(a.outcome for a in result.attempts) == ["cancelled", "ok"]
    assert hedges[0].profile == "east" and hedges[0].to_profile == "west"
    loser = client.manager.get_profile("east")
    assert loser.failure_count == 0 and loser.status.value == "available"


@respx.mock
async def test_a_fast_first_attempt_is_never_hedged() -> None:
    respx.post(EAST).mock(return_value=answer("east"))
    west = respx.post(WEST).mock(return_value=answer("west"))
    async with ResilientClient(["openai/gpt-4o-mini"], manager(), hedge_after=1.0) as client:
        for _ in range(5):
            assert (await client.complete(ASK)).text == "east"
    assert west.call_count == 0


@respx.mock
async def test_the_budget_caps_the_extra_load() -> None:
    respx.post(EAST).mock(side_effect=slow(0.05, "east"))
    respx.post(WEST).mock(side_effect=slow(0.05, "west"))
    requests = 30
    hedges: list[Any] = []
    async with ResilientClient(
        ["openai/gpt-4o-mini"], manager(), hedge_after=0.001, hedge_budget=0.1
    ) as client:
        client.on_hedge(hedges.append)
        for _ in range(requests):
            await client.complete(ASK)
    assert 2 <= len(hedges) <= 2 + 0.1 * requests  # the starting credit, then 1 in 10


@respx.mock
async def test_a_stream_hedges_on_its_first_chunk() -> None:
    def sse(text: str) -> bytes:
        delta = json.dumps({"choices": [{"delta": {"content": text}}]})
        done = json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        return f"data: {delta}\n\ndata: {done}\n\ndata: [DONE]\n\n".encode()

    class SlowStart(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            await anyio.sleep(5)
            yield sse("east")

    events = {"content-type": "text/event-stream"}
    respx.post(EAST).mock(return_value=httpx.Response(200, headers=events, stream=SlowStart()))
    respx.post(WEST).mock(return_value=httpx.Response(200, headers=events, content=sse("west")))
    client = ResilientClient(["openai/gpt-4o-mini"], manager(), hedge_after=0.05)
    async with client, client.stream(ASK) as stream:
        text = "".join([chunk.text async for chunk in stream])
    assert text == "west" and stream.profile == "west"


@respx.mock
async def test_p95_hedging_waits_until_the_deployments_latency_is_known() -> None:
    respx.post(EAST).mock(return_value=answer("east"))
    west = respx.post(WEST).mock(return_value=answer("west"))
    async with ResilientClient(["openai/gpt-4o-mini"], manager(), hedge_after="p95") as client:
        engine = client._engine
        east = ("openai/gpt-4o-mini", "https://east.example/v1", engine.latency)
        for _ in range(10):
            await client.complete(ASK)
        assert engine.hedging.delay(*east) is None
        for _ in range(10):
            await client.complete(ASK)
        assert engine.hedging.delay(*east) is not None
    assert west.call_count == 0


@respx.mock
async def test_banked_credit_hedges_a_burst_of_slow_replies() -> None:
    east = respx.post(EAST).mock(return_value=answer("east"))
    respx.post(WEST).mock(return_value=answer("west"))
    hedges: list[Any] = []
    async with ResilientClient(["openai/gpt-4o-mini"], manager(), hedge_after=0.3) as client:
        client.on_hedge(hedges.append)
        for _ in range(100):  # fast replies: credit banked (10% of them)
            await client.complete(ASK)
        before = len(hedges)
        east.side_effect = slow(5, "east")
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(client.complete, ASK)
    assert len(hedges) - before == 10
