"""Bounded memory whatever callers send: caller-chosen model ids cannot grow any map for ever.

ResilientTransport takes the model from the SDK's request body, so a caller (or a bug in
one) can send any number of distinct model ids. Every map keyed by model or key must stay
bounded: the engine's ``model_health``, the catalog's look-up cache, the manager's circuit
breakers and each profile's ``model_cooldowns``.

The proof: drive N distinct ids (half answered, half failing with a 503 so each opens its
breaker) and measure each map at N/2 and at N. A bounded map has stopped growing by N/2
(any cap below N/2 passes), an unbounded one has doubled.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from failover import AuthProfile, FailoverConfig, FailoverManager, ModelCatalog, ResilientTransport
from tests.conftest import FakeClock

KEY_A = "sk-bounded-state-key-a-00000001"
KEY_B = "sk-bounded-state-key-b-00000002"
BASE = "http://127.0.0.1:9/openai/v1"
N = 4000
"""Distinct model ids sent; the review used 50,000, a cap below N/2 is all this needs."""


def _reply(request: httpx.Request) -> httpx.Response:
    model = json.loads(request.content)["model"]
    if int(model.rsplit("-", 1)[1]) % 2:
        return httpx.Response(
            503, json={"error": {"message": "overloaded", "type": "server_error"}}
        )
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


def _sizes(transport: ResilientTransport, catalog: ModelCatalog) -> dict[str, int]:
    manager = transport.manager
    engine: Any = transport._engine
    sizes = {
        "engine.model_health": len(engine.model_health),
        "catalog cache": len(catalog._cache),
        "manager breakers": len(manager._breakers),
        "manager tripped breakers": len(manager._tripped),
    }
    for profile in manager.list_profiles():
        sizes[f"{profile.name}.model_cooldowns"] = len(profile.model_cooldowns)
    return sizes


async def _no_sleep(delay: float) -> None:
    return None


async def test_distinct_model_ids_through_the_transport_keep_every_map_bounded(
    clock: FakeClock,
) -> None:
    config = FailoverConfig(max_retries=0, breaker_min_requests=1, breaker_failure_rate=0.5)
    manager = FailoverManager(
        config,
        clock=clock,
        profiles=[
            AuthProfile("a", "openai", KEY_A, base_url=BASE),
            AuthProfile("b", "openai", KEY_B, base_url=BASE),
        ],
    )
    catalog = ModelCatalog()
    transport = ResilientTransport(
        manager,
        provider="openai",
        inner=httpx.MockTransport(_reply),
        catalog=catalog,
        sleep=_no_sleep,
    )
    halfway: dict[str, int] = {}
    statuses: set[int] = set()
    for i in range(N):
        body = {"model": f"caller-model-{i}", "messages": [{"role": "user", "content": "hi"}]}
        request = httpx.Request("POST", f"{BASE}/chat/completions", json=body)
        response = await transport.handle_async_request(request)
        await response.aread()
        statuses.add(response.status_code)
        clock.advance(1.0)  # a second per request: expiry-based bounds get their chance too
        if i + 1 == N // 2:
            halfway = _sizes(transport, catalog)
    assert statuses == {200, 503}  # both paths were driven
    final = _sizes(transport, catalog)
    grown = {
        name: (halfway[name], size)
        for name, size in final.items()
        if size >= N // 2 or size > halfway[name] + N // 20
    }
    assert not grown, f"maps still growing with distinct model ids (at N/2, at N={N}): {grown}"
    await transport.aclose()


async def test_open_breakers_of_distinct_models_are_still_honoured_after_bounding(
    clock: FakeClock,
) -> None:
    """Bounding must not forget the model that just failed: its rest still holds."""
    config = FailoverConfig(max_retries=0, breaker_min_requests=1, breaker_failure_rate=0.5)
    manager = FailoverManager(
        config, clock=clock, profiles=[AuthProfile("a", "openai", KEY_A, base_url=BASE)]
    )
    calls: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["model"])
        return httpx.Response(503, json={"error": {"message": "overloaded"}})

    transport = ResilientTransport(
        manager,
        provider="openai",
        inner=httpx.MockTransport(reply),
        catalog=ModelCatalog(),
        sleep=_no_sleep,
    )
    for i in range(N // 2):
        body = {"model": f"noise-{i}", "messages": [{"role": "user", "content": "hi"}]}
        await transport.handle_async_request(
            httpx.Request("POST", f"{BASE}/chat/completions", json=body)
        )
    body = {"model": "the-one-that-failed", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        await transport.handle_async_request(
            httpx.Request("POST", f"{BASE}/chat/completions", json=body)
        )
    # the second call comes within the breaker's rest: the least-bad rule may probe once,
    # but the model is known to be resting
    assert manager.model_rest_until("a", "the-one-that-failed") > clock()
    await transport.aclose()
