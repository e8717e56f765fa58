"""Groups of equivalent deployments in one chain step, and the strategies that order them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
import respx

from failover import (
    AuthProfile,
    ConfigError,
    FailoverConfig,
    FailoverManager,
    FallbackChain,
    ModelCatalog,
    ModelEntry,
    ResilientClient,
)
from failover.routing import LatencyStrategy
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

A = "https://a.example/v1/chat/completions"
B = "https://b.example/v1/chat/completions"
GROUP = [["vllm/llama", "llamacpp/llama"]]
ASK = [{"role": "user", "content": "hi"}]


def answer(request: httpx.Request) -> httpx.Response:
    host = request.url.host.split(".")[0]
    return httpx.Response(
        200, json={"choices": [{"message": {"content": host}, "finish_reason": "stop"}]}
    )


def delayed(seconds: float) -> Any:
    async def reply(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(seconds)
        return answer(request)

    return reply


def profiles(a_keys: int = 1) -> list[AuthProfile]:
    return [
        *(
            AuthProfile(f"a{i}", "vllm", f"key-a-{i}-0000000000", base_url="https://a.example/v1")
            for i in range(a_keys)
        ),
        AuthProfile("b", "llamacpp", "key-b-00000000000", base_url="https://b.example/v1"),
    ]


async def served_by(client: ResilientClient, requests: int) -> Counter[str]:
    return Counter([(await client.complete(ASK)).text for _ in range(requests)])


def test_a_chain_step_can_be_a_group_or_a_named_group() -> None:
    chain = FallbackChain.from_ids(
        [{"name": "llama", "deployments": ["vllm/llama", "llamacpp/llama"]}, "ollama/llama"]
    )
    assert [len(step) for step in chain.steps] == [2, 1]
    assert chain.names == ("vllm/llama", "llamacpp/llama", "ollama/llama")
    assert chain.next("vllm/llama").key == "llamacpp/llama"


@respx.mock
async def test_the_next_step_is_reached_only_when_no_deployment_of_the_group_can_serve() -> None:
    respx.post(A).mock(return_value=httpx.Response(503, json={"error": {"message": "busy"}}))
    respx.post(B).mock(side_effect=answer)
    events: list[Any] = []
    config = FailoverConfig(max_model_fallbacks=0)  # moving within a group is no fallback
    manager = FailoverManager(config, profiles=profiles())
    async with ResilientClient(GROUP, manager) as client:
        client.on_failover(events.append)
        result = await client.complete(ASK)
    assert result.text == "b" and [e.kind for e in events] == ["deployment"]


@respx.mock
async def test_round_robin_takes_turns() -> None:
    respx.post(A).mock(side_effect=answer)
    respx.post(B).mock(side_effect=answer)
    async with ResilientClient(GROUP, profiles(), strategy="round_robin") as client:
        assert await served_by(client, 10) == {"a": 5, "b": 5}


@respx.mock
async def test_weighted_follows_the_weight_of_each_deployments_profiles() -> None:
    respx.post(A).mock(side_effect=answer)
    respx.post(B).mock(side_effect=answer)
    async with ResilientClient(GROUP, profiles(a_keys=2), strategy="weighted") as client:
        counts = await served_by(client, 300)
    assert 0.55 < counts["a"] / 300 < 0.78  # two keys of weight 1 against one


@respx.mock
async def test_least_busy_sends_requests_where_fewest_are_in_flight() -> None:
    respx.post(A).mock(side_effect=delayed(0.3))
    respx.post(B).mock(side_effect=delayed(0.01))
    counts: Counter[str] = Counter()
    async with ResilientClient(GROUP, profiles(), strategy="least_busy") as client:

        async def one() -> None:
            counts[(await client.complete(ASK)).text] += 1

        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(one)
                await anyio.sleep(0.02)
    assert counts == {"a": 1, "b": 3}  # a stays busy, so b takes the rest


@respx.mock
async def test_latency_learns_the_fastest_and_explores_back_to_a_recovered_one() -> None:
    slow_a = respx.post(A).mock(side_effect=delayed(0.03))
    respx.post(B).mock(side_effect=answer)
    strategy = LatencyStrategy(explore=0.2)
    async with ResilientClient(GROUP, profiles(), strategy=strategy) as client:
        first = await served_by(client, 40)
        assert first["b"] > first["a"]
        slow_a.side_effect = answer
        respx.post(B).mock(side_effect=delayed(0.03))
        later = await served_by(client, 60)
    assert later["a"] > later["b"]


@respx.mock
async def test_cost_prefers_the_cheapest_deployment_for_the_request() -> None:
    catalog = ModelCatalog()
    for provider, price in (("vllm", 5.0), ("llamacpp", 0.1)):
        catalog.register(
            ModelEntry("llama", "llama", provider, "openai", cost_input=price, cost_output=price)
        )
    respx.post(A).mock(side_effect=answer)
    respx.post(B).mock(side_effect=answer)
    chain = FallbackChain.from_ids(GROUP, catalog=catalog)
    async with ResilientClient(chain, profiles(), strategy="cost") as client:
        assert await served_by(client, 5) == {"b": 5}


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown strategy"):
        ResilientClient(GROUP, profiles(), strategy="fastest")


def two_keys(weight_a: float = 1.0) -> list[AuthProfile]:
    url = "https://a.example/v1"
    return [
        AuthProfile("ka", "vllm", "key-ka-0000000000", base_url=url, weight=weight_a),
        AuthProfile("kb", "vllm", "key-kb-0000000000", base_url=url),
    ]


def by_key(delays: dict[str, float]) -> Any:
    async def reply(request: httpx.Request) -> httpx.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        await anyio.sleep(delays[key])
        return httpx.Response(
            200, json={"choices": [{"message": {"content": key}, "finish_reason": "stop"}]}
        )

    return reply


@respx.mock
async def test_weighted_spreads_one_deployments_keys_by_their_weight() -> None:
    respx.post(A).mock(side_effect=by_key({"key-ka-0000000000": 0, "key-kb-0000000000": 0}))
    async with ResilientClient(["vllm/llama"], two_keys(weight_a=3.0), strategy="weighted") as c:
        counts = await served_by(c, 400)
    assert 0.65 < counts["key-ka-0000000000"] / 400 < 0.85  # 3 to 1


@respx.mock
async def test_least_busy_sends_requests_to_the_key_with_fewest_in_flight() -> None:
    respx.post(A).mock(side_effect=by_key({"key-ka-0000000000": 0.4, "key-kb-0000000000": 0}))
    counts: Counter[str] = Counter()
    async with ResilientClient(["vllm/llama"], two_keys(), strategy="least_busy") as client:

        async def one() -> None:
            counts[(await client.complete(ASK)).text] += 1

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one)
                await anyio.sleep(0.05)
    assert counts["key-ka-0000000000"] == 1  # plain rotation would have sent it three


def test_a_weight_must_be_a_number() -> None:
    with pytest.raises(ConfigError, match="weight"):
        AuthProfile("a", "openai", "sk-weighted-key-0001", weight="heavy")  # type: ignore[arg-type]
