"""The circuit breaker under load: a partial outage stays partial, a real one is skipped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import anyio
import pytest

from failover import AllAttemptsFailed, AuthProfile, FailoverManager, ResilientClient
from failover.testing import Simulator
from tests.conftest import simulator_in_thread

PROVIDERS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
}
KEYS = {p: [f"sk-{p}-breaker-key-{i}-000000000" for i in range(3)] for p in PROVIDERS}
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys=KEYS) as simulator:
        yield simulator


def default_manager(sim: Simulator) -> FailoverManager:
    """Three providers with three keys each, and the default configuration."""
    return FailoverManager(
        profiles=[
            AuthProfile(f"{provider}-{i}", provider, key, base_url=sim.base_url(provider))
            for provider, keys in KEYS.items()
            for i, key in enumerate(keys)
        ]
    )


async def test_a_quarter_of_replies_failing_under_concurrency_does_not_rest_every_model(
    sim: Simulator,
) -> None:
    sim.chaos({"overloaded": 0.08, "server_error": 0.08, "reset": 0.04, "malformed": 0.05}, seed=7)
    outcomes: Counter[str] = Counter()
    limit = anyio.Semaphore(64)

    async def one(client: ResilientClient) -> None:
        async with limit:
            try:
                await client.complete(ASK)
                outcomes["ok"] += 1
            except AllAttemptsFailed as exc:
                outcomes[type(exc).__name__] += 1

    async with (
        ResilientClient(list(PROVIDERS.values()), default_manager(sim)) as client,
        anyio.create_task_group() as group,
    ):
        for _ in range(800):
            group.start_soon(one, client)
    assert sum(outcomes.values()) == 800
    assert outcomes["ok"] > 0.9 * 800, outcomes
    assert outcomes["NoProfileAvailable"] == 0, outcomes


async def test_a_real_outage_at_one_endpoint_is_skipped_after_a_handful_of_requests(
    sim: Simulator,
) -> None:
    sim.script("server_error", provider="openai")
    manager = default_manager(sim)
    async with ResilientClient(list(PROVIDERS.values()), manager) as client:
        for _ in range(60):
            result = await client.complete(ASK)
            assert result.provider == "anthropic"
    breaker = manager.config.breaker_min_requests
    assert sim.calls(provider="openai") <= breaker + 2  # the window's volume, then a probe
