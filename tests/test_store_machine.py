"""Two managers on one real Redis, driven by random events, agree once changes propagate."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from failover import AuthProfile, FailoverConfig, FailoverManager
from failover.store import RedisStore
from tests.redis_server import RedisServer

NAMES = ["a", "b", "c"]
MODELS = ["m1", "m2"]
KINDS = ["error", "rate_limit", "quota", "auth"]


def fresh_profiles() -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", "sk-machine-aaaaaaaaaaaa01"),
        AuthProfile("b", "openai", "sk-machine-bbbbbbbbbbbb02"),
        AuthProfile("c", "openai", "sk-machine-cccccccccccc03", base_url="https://eu.example.test"),
    ]


class TwoManagers(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        prefix = f"m{uuid.uuid4().hex[:8]}"
        config = FailoverConfig(breaker_min_requests=2)
        self.managers = [
            FailoverManager(
                config, profiles=fresh_profiles(), store=RedisStore(self.url, prefix=prefix)
            )
            for _ in range(2)
        ]
        for manager in self.managers:
            self.loop.run_until_complete(manager.start())
        self.settle()

    def settle(self) -> None:
        async def wait() -> None:
            for _ in range(2):
                for manager in self.managers:
                    assert await manager.store.settle(3.0)  # type: ignore[attr-defined]
                # settle() covers what a manager sent; give the other's reader a moment to
                # take in what it heard (the propagation the README measures in ms)
                await asyncio.sleep(0.02)

        self.loop.run_until_complete(wait())

    def teardown(self) -> None:
        for manager in self.managers:
            self.loop.run_until_complete(manager.aclose())
        self.loop.close()

    @rule(
        which=st.sampled_from([0, 1]),
        name=st.sampled_from(NAMES),
        kind=st.sampled_from(KINDS),
        wait=st.none() | st.floats(1, 500),
    )
    def fail(self, which: int, name: str, kind: str, wait: float | None) -> None:
        self.managers[which].mark_failure(name, "boom", kind=kind, retry_after=wait)  # type: ignore[arg-type]
        self.settle()

    @rule(
        name=st.sampled_from(NAMES), kinds=st.tuples(st.sampled_from(KINDS), st.sampled_from(KINDS))
    )
    def both_fail_at_once(self, name: str, kinds: tuple[str, str]) -> None:
        for manager, kind in zip(self.managers, kinds, strict=True):
            manager.mark_failure(name, "boom", kind=kind)  # type: ignore[arg-type]
        self.settle()

    @rule(which=st.sampled_from([0, 1]), name=st.sampled_from(NAMES), model=st.sampled_from(MODELS))
    def fail_model(self, which: int, name: str, model: str) -> None:
        self.managers[which].mark_failure(name, "503", kind="error", model=model)
        self.settle()

    @rule(
        which=st.sampled_from([0, 1]),
        name=st.sampled_from(NAMES),
        model=st.none() | st.sampled_from(MODELS),
    )
    def succeed(self, which: int, name: str, model: str | None) -> None:
        self.managers[which].mark_success(name, model=model)
        self.settle()

    @rule(which=st.sampled_from([0, 1]), name=st.sampled_from(NAMES))
    def enable(self, which: int, name: str) -> None:
        self.managers[which].enable(name)
        self.settle()

    @rule(which=st.sampled_from([0, 1]))
    def reset_all(self, which: int) -> None:
        self.managers[which].reset_all()
        self.settle()

    @invariant()
    def they_agree(self) -> None:
        first, second = self.managers
        now = first.clock()
        for name in NAMES:
            one, other = first.get_profile(name), second.get_profile(name)
            assert first.effective_status(one) is second.effective_status(other), name
            if math.isinf(one.cooldown_until) or math.isinf(other.cooldown_until):
                assert one.cooldown_until == other.cooldown_until, name
            elif one.status.value != "available":
                assert one.cooldown_until == pytest.approx(other.cooldown_until, abs=0.05), name
            assert one.cooldown_strikes == other.cooldown_strikes, name
            for model in MODELS:
                rest_one = first.model_rest_until(name, model)
                rest_other = second.model_rest_until(name, model)
                assert (rest_one > now) == (rest_other > now), (name, model)
                if rest_one > now:
                    assert rest_one == pytest.approx(rest_other, abs=0.05), (name, model)


def test_two_managers_on_one_store_agree_after_propagation(redis_server: RedisServer) -> None:
    TwoManagers.url = redis_server.url
    run_state_machine_as_test(
        TwoManagers, settings=settings(max_examples=20, stateful_step_count=15, deadline=None)
    )
