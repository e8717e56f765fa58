"""Groups of equivalent deployments in one chain step, and the strategies that order them."""

from __future__ import annotations

import random
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
from failover.catalog import TokenUsage
from failover.routing import LatencyStrategy, LatencyTracker, RoutingView, WeightedStrategy
from tests.conftest import BOTH_BACKENDS, FakeClock

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


def first_held(release: anyio.Event, arrived: anyio.Event) -> Any:
    """Answers at once, but the first request stays in flight until ``release`` is set."""

    async def reply(request: httpx.Request) -> httpx.Response:
        if not arrived.is_set():
            arrived.set()
            await release.wait()
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
    weighted = WeightedStrategy(random.Random(1))
    async with ResilientClient(GROUP, profiles(a_keys=2), strategy=weighted) as client:
        counts = await served_by(client, 300)
    assert 0.55 < counts["a"] / 300 < 0.78  # two keys of weight 1 against one


@respx.mock
async def test_least_busy_sends_requests_where_fewest_are_in_flight() -> None:
    release, a_busy = anyio.Event(), anyio.Event()
    respx.post(A).mock(side_effect=first_held(release, a_busy))
    respx.post(B).mock(side_effect=answer)
    counts: Counter[str] = Counter()
    async with ResilientClient(GROUP, profiles(), strategy="least_busy") as client:

        async def one() -> None:
            counts[(await client.complete(ASK)).text] += 1

        async with anyio.create_task_group() as group:
            group.start_soon(one)  # none in flight anywhere: as listed, a
            with anyio.fail_after(30):  # a safety net, not a timing check
                await a_busy.wait()
            for _ in range(3):
                await one()
            release.set()
    assert counts == {"a": 1, "b": 3}  # a stays busy, so b takes the rest


DEPLOYMENTS = FallbackChain.from_ids(GROUP).steps[0]  # vllm/llama (a), llamacpp/llama (b)


class Traffic:
    """Requests routed by a strategy, one a second on a fake clock, as the engine routes them.

    The strategy's first deployment serves each request, and its latency (scripted here, not
    measured) goes to the tracker the strategy reads.
    """

    def __init__(self, strategy: LatencyStrategy) -> None:
        self.clock = FakeClock()
        self.view = RoutingView(LatencyTracker(clock=self.clock), lambda model: 1.0)
        self.strategy = strategy

    def send(self, requests: int, *, a: float, b: float) -> Counter[str]:
        """Route ``requests`` while a and b answer in ``a`` and ``b`` seconds; who served."""
        latency = {"vllm": a, "llamacpp": b}
        served: Counter[str] = Counter()
        for _ in range(requests):
            self.clock.advance(1.0)
            model = self.strategy.order(DEPLOYMENTS, self.view, TokenUsage())[0]
            self.view.latency.record(model.key, None, latency[model.provider])
            served["a" if model.provider == "vllm" else "b"] += 1
        return served


def test_latency_learns_the_fastest_and_explores_back_to_a_recovered_one() -> None:
    traffic = Traffic(LatencyStrategy(explore=0.2, rng=random.Random(0)))
    first = traffic.send(40, a=0.030, b=0.001)
    assert first["b"] > 3 * first["a"]  # b is faster: it serves most
    later = traffic.send(60, a=0.001, b=0.030)
    assert later["a"] > later["b"]  # exploring found a faster again


def test_latency_tries_again_a_deployment_it_has_not_timed_for_max_age() -> None:
    traffic = Traffic(LatencyStrategy(explore=0.0, max_age=60.0))
    served = traffic.send(130, a=0.030, b=0.001)
    # a first (nothing known), then b, faster; a again each time its latency is over 60 s old
    assert served == {"a": 3, "b": 127}


@respx.mock
async def test_the_latency_strategy_routes_on_the_latencies_the_engine_records() -> None:
    respx.post(A).mock(side_effect=answer)
    respx.post(B).mock(side_effect=answer)
    strategy = LatencyStrategy(explore=0.0)
    async with ResilientClient(GROUP, profiles(), strategy=strategy) as client:
        latency = client._engine.latency
        latency.record("vllm/llama", "https://a.example/v1", 30.0)  # a is known to be slow
        assert await served_by(client, 5) == {"b": 5}  # b, not timed yet, then timed faster
        assert latency.quantile("llamacpp/llama", "https://b.example/v1", 0.5, minimum=5)


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


KA, KB = "key-ka-0000000000", "key-kb-0000000000"


def by_key(hold: anyio.Event | None = None, arrived: anyio.Event | None = None) -> Any:
    """Answers with the request's key; ka's first request stays in flight until ``hold``."""

    async def reply(request: httpx.Request) -> httpx.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        if key == KA and hold is not None and arrived is not None and not arrived.is_set():
            arrived.set()
            await hold.wait()
        return httpx.Response(
            200, json={"choices": [{"message": {"content": key}, "finish_reason": "stop"}]}
        )

    return reply


@respx.mock
async def test_weighted_spreads_one_deployments_keys_by_their_weight() -> None:
    respx.post(A).mock(side_effect=by_key())
    weighted = WeightedStrategy(random.Random(1))
    async with ResilientClient(["vllm/llama"], two_keys(weight_a=3.0), strategy=weighted) as c:
        counts = await served_by(c, 400)
    assert 0.65 < counts[KA] / 400 < 0.85  # 3 to 1


@respx.mock
async def test_least_busy_sends_requests_to_the_key_with_fewest_in_flight() -> None:
    release, ka_busy = anyio.Event(), anyio.Event()
    respx.post(A).mock(side_effect=by_key(release, ka_busy))
    counts: Counter[str] = Counter()
    async with ResilientClient(["vllm/llama"], two_keys(), strategy="least_busy") as client:

        async def one() -> None:
            counts[(await client.complete(ASK)).text] += 1

        async with anyio.create_task_group() as group:
            group.start_soon(one)  # none in flight: the manager's first key, ka
            with anyio.fail_after(30):  # a safety net, not a timing check
                await ka_busy.wait()
            for _ in range(5):
                await one()
            release.set()
    assert counts == {KA: 1, KB: 5}  # plain rotation would have sent ka three


def test_a_weight_must_be_a_number() -> None:
    with pytest.raises(ConfigError, match="weight"):
        AuthProfile("a", "openai", "sk-weighted-key-0001", weight="heavy")  # type: ignore[arg-type]
