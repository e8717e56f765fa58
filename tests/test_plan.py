"""The planner alone: candidates, exclusions, budgets, the deadline, waits, hedge targets.

A fake manager stands in for FailoverManager: keys in priority order, least recently used
first among equals; a key may rest (rate limit, quota: never offered) or a model may rest
at a key (after transient errors: offered only as the least-bad fallback).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.config import FailoverConfig
from failover.errors import (
    AllAttemptsFailed,
    NoProfileAvailable,
    OverloadedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnsupportedParameterError,
)
from failover.plan import (
    MAX_RECOVERY_WAITS,
    Candidate,
    Pause,
    PinnedPlan,
    Plan,
    Planner,
    Previous,
)
from failover.policy import Action
from failover.profiles import AuthProfile
from failover.request import RequestState
from failover.routing import LatencyTracker, RoutingView, strategy_named

from .conftest import FakeClock

GPT = ModelEntry(
    "gpt", "gpt", "openai", "openai", context_window=8_000, cost_input=5.0, cost_output=5.0
)
MINI = ModelEntry(
    "mini", "mini", "openai", "openai", context_window=8_000, cost_input=0.1, cost_output=0.1
)
BIG = ModelEntry("big", "big", "openai", "openai", context_window=200_000)
AZ = ModelEntry(
    "gpt", "gpt", "azure", "openai", context_window=8_000, cost_input=1.0, cost_output=1.0
)
CLAUDE = ModelEntry("claude", "claude", "anthropic", "anthropic", context_window=200_000)


@dataclass
class FakeManager:
    """The manager's reads the planner makes, over a list of keys and their rests."""

    profiles: list[AuthProfile]
    clock: FakeClock
    config: FailoverConfig = field(default_factory=FailoverConfig)
    key_rest: dict[str, float] = field(default_factory=dict)
    model_rest: dict[tuple[str, str], float] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    uses: int = 0

    def list_profiles(self) -> list[AuthProfile]:
        return list(self.profiles)

    def key_resting(self, name: str) -> bool:
        return self.key_rest.get(name, 0.0) > self.clock()

    def model_resting(self, name: str, model: str) -> bool:
        return self.model_rest.get((name, model), 0.0) > self.clock()

    def _usable(
        self, provider: str, model: str | None, exclude: Collection[str]
    ) -> list[AuthProfile]:
        usable = [
            p
            for p in self.profiles
            if p.provider == provider
            and p.name not in exclude
            and not self.key_resting(p.name)
            and not (model is not None and self.model_resting(p.name, model))
        ]
        return sorted(usable, key=lambda p: (p.priority, self.used.get(p.name, -1)))

    def peek_next_profile(
        self, provider: str, *, model: str | None = None, exclude: Collection[str] = ()
    ) -> AuthProfile | None:
        usable = self._usable(provider, model, exclude)
        return usable[0] if usable else None

    def get_next_profile(
        self, provider: str, *, model: str | None = None, exclude: Collection[str] = ()
    ) -> AuthProfile | None:
        found = self.peek_next_profile(provider, model=model, exclude=exclude)
        if found is not None:
            self.uses += 1
            self.used[found.name] = self.uses
        return found

    def least_recently_failed(
        self, provider: str, *, model: str | None = None
    ) -> AuthProfile | None:
        keys = [p for p in self.profiles if p.provider == provider and not self.key_resting(p.name)]
        if not keys:
            return None
        return min(keys, key=lambda p: self.failed_at.get(p.name, -math.inf))

    def next_available_at(self, provider: str, *, model: str | None = None) -> float | None:
        times = [
            max(
                self.key_rest.get(p.name, 0.0),
                self.model_rest.get((p.name, model or ""), 0.0),
                self.clock(),
            )
            for p in self.profiles
            if p.provider == provider
        ]
        return min(times) if times else None

    def rest_key(self, name: str, seconds: float) -> None:
        self.key_rest[name] = self.clock() + seconds
        self.failed_at[name] = self.clock()

    def rest_model(self, name: str, model: str, seconds: float) -> None:
        self.model_rest[(name, model)] = self.clock() + seconds
        self.failed_at[name] = self.clock()


class FixedBackoff:
    """A backoff of ``seconds`` (or the provider's own wait)."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def delay(self, retry: int, provider_wait: float | None = None) -> float:
        return provider_wait if provider_wait is not None else self.seconds


class Heard:
    """Records the plan's moves and skips."""

    def __init__(self) -> None:
        self.moves: list[tuple[str, str, str | None, str, str | None]] = []
        self.skips: list[tuple[str, str]] = []

    def moved(
        self,
        kind: str,
        request_id: str,
        previous: Previous,
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        from_model, from_profile, _ = previous
        to = profile.name if profile else None
        frm = from_profile.name if from_profile else None
        self.moves.append((kind, from_model.key, frm, model.key, to))

    def skipped(self, request_id: str, model: str, field_name: str) -> None:
        self.skips.append((model, field_name))


def key(name: str, provider: str = "openai", **kwargs: Any) -> AuthProfile:
    return AuthProfile(name, provider, f"sk-{name}-0123456789", **kwargs)


def setup(
    profiles: list[AuthProfile],
    *,
    strategy: str = "priority",
    deadline: float | None = None,
    wait_for_recovery: bool = False,
    **config: Any,
) -> tuple[FakeManager, Planner, Heard]:
    clock = FakeClock()
    manager = FakeManager(profiles, clock, FailoverConfig(**config))
    heard = Heard()
    view = RoutingView(LatencyTracker(clock=clock), lambda model: 1.0)
    planner = Planner(
        manager,  # type: ignore[arg-type]
        strategy_named(strategy),
        view,
        FixedBackoff(),  # type: ignore[arg-type]
        heard,
        wait_for_recovery=wait_for_recovery,
        deadline=deadline,
        clock=clock,
    )
    return manager, planner, heard


def new_plan(
    planner: Planner, steps: Sequence[Sequence[ModelEntry]], deadline: float | None = None
) -> Plan:
    now = planner.clock()
    state = RequestState("req-1", now, now + deadline if deadline is not None else math.inf)
    return Plan(planner, state, [tuple(step) for step in steps])


def fail(
    plan: Plan | PinnedPlan, candidate: Candidate, error: ProviderError, action: Action
) -> Pause | None:
    """What the engine does with a failure: record the attempt, let the plan learn."""
    plan.state.attempts.append(
        Attempt(candidate.model.key, candidate.profile.name, error.kind, None, None, 0.0, error)
    )
    return plan.failed(candidate, error, action)


def names(candidate: Candidate | None) -> tuple[str, str, str] | None:
    if candidate is None:
        return None
    return (candidate.model.key, candidate.profile.name, candidate.reason)


# -- order ----------------------------------------------------------------------------------


def test_the_first_candidate_is_the_first_models_preferred_key() -> None:
    _, planner, heard = setup([key("b", priority=1), key("a")])
    plan = new_plan(planner, [[GPT], [CLAUDE]])
    assert names(plan.next()) == ("openai/gpt", "a", "first")
    assert heard.moves == []


def test_model_not_found_falls_back_to_the_next_step_and_announces_it() -> None:
    _, planner, heard = setup([key("a"), key("c", "anthropic")])
    plan = new_plan(planner, [[GPT], [CLAUDE]])
    first = plan.next()
    assert first is not None
    assert fail(plan, first, ProviderError("no such model"), Action.NEXT_MODEL) is None
    assert names(plan.next()) == ("anthropic/claude", "c", "model")
    assert heard.moves == [("model", "openai/gpt", "a", "anthropic/claude", None)]


def test_round_robin_alternates_the_deployments_of_a_group_between_requests() -> None:
    _, planner, _ = setup([key("a"), key("z", "azure")], strategy="round_robin")
    firsts = []
    for _ in range(4):
        candidate = new_plan(planner, [[GPT, AZ]]).next()
        assert candidate is not None
        firsts.append(candidate.model.key)
    assert firsts == ["openai/gpt", "azure/gpt", "openai/gpt", "azure/gpt"]


def test_cost_orders_a_group_cheapest_first_and_moves_sideways_within_it() -> None:
    _, planner, heard = setup([key("a"), key("z", "azure")], strategy="cost")
    plan = new_plan(planner, [[GPT, AZ]])
    first = plan.next()
    assert names(first) == ("azure/gpt", "z", "first")
    assert first is not None
    fail(plan, first, ProviderError("gone"), Action.NEXT_MODEL)
    assert names(plan.next()) == ("openai/gpt", "a", "deployment")
    assert heard.moves[0][0] == "deployment"


# -- exclusions after each kind of failure ---------------------------------------------------


def test_a_rate_limit_rotates_to_another_key_of_the_same_model() -> None:
    manager, planner, heard = setup([key("a"), key("b")])
    plan = new_plan(planner, [[GPT], [MINI]])
    first = plan.next()
    assert first is not None
    manager.rest_key("a", 30)
    fail(plan, first, RateLimitError("slow down"), Action.ROTATE)
    assert names(plan.next()) == ("openai/gpt", "b", "rotation")
    assert heard.moves == [("key", "openai/gpt", "a", "openai/gpt", "b")]


def test_a_key_tried_in_the_walk_is_not_offered_again_for_that_model() -> None:
    _, planner, _ = setup([key("a"), key("b")])  # the fake manager does not rest them
    plan = new_plan(planner, [[GPT], [MINI]])
    seen = []
    while (candidate := plan.next()) is not None and len(seen) < 10:
        seen.append((candidate.model.id, candidate.profile.name))
        fail(plan, candidate, RateLimitError("slow down"), Action.ROTATE)
    assert sorted(seen) == [("gpt", "a"), ("gpt", "b"), ("mini", "a"), ("mini", "b")]


def test_a_transient_failure_goes_sideways_past_every_key_at_the_failed_endpoint() -> None:
    keys = [
        key("a1", base_url="https://one.example/v1"),
        key("a2", base_url="https://one.example/v1"),
        key("b1", base_url="https://two.example/v1", priority=1),
    ]
    _, planner, _ = setup(keys)
    plan = new_plan(planner, [[GPT], [MINI]])
    first = plan.next()
    assert first is not None and first.endpoint == "https://one.example/v1"
    assert fail(plan, first, ServerError("500"), Action.RETRY) is None
    assert names(plan.next()) == ("openai/gpt", "b1", "rotation")


def test_a_context_window_failure_skips_models_no_larger() -> None:
    _, planner, heard = setup([key("a")])
    plan = new_plan(planner, [[GPT], [MINI], [BIG]])
    first = plan.next()
    assert first is not None
    fail(plan, first, ProviderError("too long"), Action.LARGER_MODEL)
    assert names(plan.next()) == ("openai/big", "a", "model")
    assert [move[3] for move in heard.moves] == ["openai/big"]


def test_unsupported_models_are_skipped_and_recorded_before_any_call() -> None:
    _, planner, heard = setup([key("a"), key("c", "anthropic")])
    state = RequestState("req-1", 0.0, math.inf)
    steps = planner.supported(
        "req-1", [(GPT,), (CLAUDE,)], lambda m: "tools" if m is GPT else None, state.attempts
    )
    assert steps == [(CLAUDE,)]
    assert [(a.model, a.outcome, a.profile) for a in state.attempts] == [
        ("openai/gpt", "unsupported", None)
    ]
    assert heard.skips == [("openai/gpt", "tools")]
    with pytest.raises(UnsupportedParameterError, match="tools"):
        planner.supported("req-1", [(GPT,)], lambda m: "tools", state.attempts)


# -- budgets and the deadline ----------------------------------------------------------------


def test_max_key_rotations_bounds_the_keys_tried_per_model() -> None:
    _, planner, _ = setup([key(f"k{i}") for i in range(5)], max_key_rotations=2)
    plan = new_plan(planner, [[GPT]])
    tried = []
    while (candidate := plan.next()) is not None:
        tried.append(candidate.profile.name)
        fail(plan, candidate, RateLimitError("slow"), Action.ROTATE)
    assert len(tried) == 3  # the first key and two rotations


def test_max_model_fallbacks_ends_the_walk() -> None:
    _, planner, _ = setup([key("a")], max_model_fallbacks=1)
    plan = new_plan(planner, [[GPT], [MINI], [BIG]])
    models = []
    while (candidate := plan.next()) is not None:
        models.append(candidate.model.id)
        fail(plan, candidate, ProviderError("gone"), Action.NEXT_MODEL)
    assert models == ["gpt", "mini"]


def test_a_transient_failure_is_retried_after_a_backoff_up_to_max_retries() -> None:
    manager, planner, _ = setup([key("a")], max_retries=2)
    plan = new_plan(planner, [[GPT]])
    pauses = []
    while True:
        while (candidate := plan.next()) is not None:
            fail(plan, candidate, OverloadedError("busy", retry_after=2.0), Action.RETRY)
        pause = plan.wait()
        if pause is None:
            break
        pauses.append((pause.delay, pause.number, pause.recovery))
        manager.clock.advance(pause.delay)
    assert pauses == [(2.0, 1, False), (2.0, 2, False)]
    assert isinstance(plan.exhausted(plan.retry_after), AllAttemptsFailed)


def test_retry_before_fallback_backs_off_on_the_same_model_first() -> None:
    _, planner, _ = setup([key("a")], retry_before_fallback=True, max_retries=1)
    plan = new_plan(planner, [[GPT], [MINI]])
    first = plan.next()
    assert first is not None
    pause = fail(plan, first, ServerError("500"), Action.RETRY)
    assert pause is not None and (pause.number, pause.model) == (1, GPT)
    assert names(plan.next()) == ("openai/gpt", "a", "retry")


def test_a_retry_walk_prefers_the_key_that_has_not_failed() -> None:
    manager, planner, _ = setup([key("a"), key("b", base_url="https://b.example/v1")])
    plan = new_plan(planner, [[GPT]])
    first = plan.next()
    assert first is not None and first.profile.name == "a"
    fail(plan, first, ServerError("500"), Action.RETRY)
    second = plan.next()
    assert second is not None and second.profile.name == "b"
    fail(plan, second, ServerError("500"), Action.RETRY)
    assert plan.next() is None
    assert plan.wait() is not None
    manager.used.clear()  # the manager alone would now offer "a" again
    assert names(plan.next()) == ("openai/gpt", "a", "retry")  # "a" failed longest ago


def test_past_the_deadline_nothing_is_offered_and_the_error_says_so() -> None:
    manager, planner, _ = setup([key("a"), key("b")], deadline=5.0)
    plan = new_plan(planner, [[GPT]], deadline=5.0)
    first = plan.next()
    assert first is not None
    fail(plan, first, RateLimitError("slow"), Action.ROTATE)
    manager.clock.advance(6.0)
    assert plan.next() is None
    error = plan.exhausted(None)
    assert "deadline of 5.0s exceeded" in str(error)


# -- the least-bad fallback and waits -------------------------------------------------------


def test_when_every_model_rests_after_errors_the_least_recently_failed_key_is_offered_once() -> (
    None
):
    manager, planner, _ = setup([key("a"), key("b")])
    manager.rest_model("b", "gpt", 30)
    manager.clock.advance(1)
    manager.rest_model("a", "gpt", 30)
    plan = new_plan(planner, [[GPT]])
    least_bad = plan.next()
    assert names(least_bad) == ("openai/gpt", "b", "least_bad")
    assert least_bad is not None
    fail(plan, least_bad, ServerError("500"), Action.RETRY)
    assert plan.next() is None


def test_rate_limited_keys_are_never_the_least_bad_and_the_request_has_no_profile() -> None:
    manager, planner, _ = setup([key("a")])
    manager.rest_key("a", 30)
    plan = new_plan(planner, [[GPT]])
    assert plan.next() is None
    assert plan.wait() is None
    assert plan.retry_after == 30
    error = plan.exhausted(plan.retry_after)
    assert isinstance(error, NoProfileAvailable) and error.retry_after == 30


def test_a_resting_key_is_waited_for_within_max_recovery_wait() -> None:
    manager, planner, _ = setup([key("a")], wait_for_recovery=True, max_recovery_wait=10.0)
    manager.rest_key("a", 4)
    plan = new_plan(planner, [[GPT]])
    assert plan.next() is None
    pause = plan.wait()
    assert pause is not None and pause.recovery and pause.delay == 4
    manager.clock.advance(pause.delay)
    assert names(plan.next()) == ("openai/gpt", "a", "retry")

    manager.rest_key("a", 11)  # longer than max_recovery_wait: not waited for
    plan = new_plan(planner, [[GPT]])
    assert plan.next() is None and plan.wait() is None


def test_with_a_deadline_a_recovery_is_waited_for_only_when_it_comes_before_it() -> None:
    manager, planner, _ = setup([key("a")], wait_for_recovery=True, deadline=20.0)
    manager.rest_key("a", 15)  # beyond max_recovery_wait, within the deadline
    plan = new_plan(planner, [[GPT]], deadline=20.0)
    assert plan.next() is None
    pause = plan.wait()
    assert pause is not None and pause.delay == 15
    manager.rest_key("a", 25)
    plan = new_plan(planner, [[GPT]], deadline=20.0)
    assert plan.next() is None and plan.wait() is None


def test_a_model_whose_rest_ended_during_the_walk_is_looked_at_again_not_given_up() -> None:
    # the walk passed GPT by (resting) and CLAUDE was rate-limited; by the walk's end GPT's
    # rest is over: the request walks again shortly, with its deadline far off
    manager, planner, _ = setup(
        [key("a"), key("c", "anthropic")], wait_for_recovery=True, deadline=20.0
    )
    manager.rest_model("a", "gpt", 1)
    plan = new_plan(planner, [[GPT], [CLAUDE]], deadline=20.0)
    claude = plan.next()
    assert names(claude) == ("anthropic/claude", "c", "model")
    assert claude is not None
    manager.clock.advance(1)  # the attempt took a second
    manager.rest_key("c", 30)
    fail(plan, claude, RateLimitError("slow down"), Action.ROTATE)
    assert plan.next() is None
    pause = plan.wait()
    assert pause is not None and pause.recovery and 0 < pause.delay <= 1
    manager.clock.advance(pause.delay)
    assert names(plan.next()) == ("openai/gpt", "a", "retry")


def test_a_model_usable_now_that_failed_in_the_walk_is_not_waited_for() -> None:
    _, planner, _ = setup([key("a")], wait_for_recovery=True, deadline=20.0)
    plan = new_plan(planner, [[GPT]], deadline=20.0)
    first = plan.next()
    assert first is not None
    fail(plan, first, ServerError("500"), Action.NEXT_MODEL)
    assert plan.next() is None
    assert plan.wait() is None  # usable now, but it just failed: backoff's domain
    assert plan.retry_after == 0


# -- hedge targets and pinned keys ------------------------------------------------------------


def test_a_hedge_goes_to_another_endpoint_of_the_model_else_the_next_model() -> None:
    keys = [key("a1"), key("a2"), key("b", base_url="https://b.example/v1", priority=1)]
    _, planner, _ = setup(keys)
    plan = new_plan(planner, [[GPT], [CLAUDE]])
    first = plan.next()
    assert first is not None and plan.may_hedge(first)
    assert names(plan.hedge_target(first)) == ("openai/gpt", "b", "hedge")

    _, planner, _ = setup([key("a1"), key("a2"), key("c", "anthropic")])
    plan = new_plan(planner, [[GPT], [CLAUDE]])
    first = plan.next()
    assert first is not None
    assert names(plan.hedge_target(first)) == ("anthropic/claude", "c", "hedge")  # a2: same URL


def test_a_pinned_plan_offers_the_owner_alone_and_skips_other_providers() -> None:
    owner = key("a")
    _, planner, _ = setup([owner, key("b"), key("c", "anthropic")], max_retries=1)
    state = RequestState("req-1", 0.0, math.inf)
    plan = PinnedPlan(planner, state, [CLAUDE, GPT, MINI], owner, "only a can")
    assert [(a.model, a.outcome) for a in state.attempts] == [("anthropic/claude", "unsupported")]
    offered = []
    while True:
        while (candidate := plan.next()) is not None:
            offered.append((candidate.model.id, candidate.profile.name))
            fail(plan, candidate, ServerError("500"), Action.RETRY)
        if plan.wait() is None:
            break
    assert offered == [("gpt", "a"), ("mini", "a")] * 2  # one walk, one retry
    error = plan.exhausted(plan.retry_after)
    assert type(error) is AllAttemptsFailed and "only a can" in str(error)
    assert not plan.may_hedge(Candidate(GPT, owner, "pinned"))


# -- properties -------------------------------------------------------------------------------

OUTCOMES = st.sampled_from(["rate_limit", "transient", "not_found", "context", "ok"])


@settings(max_examples=150, deadline=None)
@given(
    keys=st.integers(min_value=1, max_value=4),
    rotations=st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
    fallbacks=st.one_of(st.none(), st.integers(min_value=0, max_value=2)),
    retries=st.integers(min_value=0, max_value=3),
    wait=st.booleans(),
    before_fallback=st.booleans(),
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=60),
)
def test_the_plan_never_offers_a_resting_key_keeps_its_budgets_and_ends(
    keys: int,
    rotations: int | None,
    fallbacks: int | None,
    retries: int,
    wait: bool,
    before_fallback: bool,
    outcomes: list[str],
) -> None:
    profiles = [key(f"k{i}", base_url=f"https://{i % 2}.example/v1") for i in range(keys)]
    profiles.append(key("c", "anthropic"))
    manager, planner, heard = setup(
        profiles,
        wait_for_recovery=wait,
        max_key_rotations=rotations,
        max_model_fallbacks=fallbacks,
        max_retries=retries,
        retry_before_fallback=before_fallback,
    )
    plan = new_plan(planner, [[GPT], [MINI, AZ], [CLAUDE]])
    script = iter(outcomes)
    offered = walks = backoffs = 0
    rotated: dict[str, int] = {}  # per model, in this walk
    moves_before = 0
    while True:
        while (candidate := plan.next()) is not None:
            offered += 1
            assert offered < 500, "the plan does not end"
            name, model = candidate.profile.name, candidate.model
            assert not manager.key_resting(name), "offered a key that is cooling"
            if candidate.reason != "least_bad":
                assert not manager.model_resting(name, model.id), "offered a resting model"
            if candidate.reason == "rotation":
                rotated[model.key] = rotated.get(model.key, 0) + 1
                assert rotations is None or rotated[model.key] <= rotations
            outcome = next(script, "ok")
            if outcome == "ok":
                return
            if outcome == "rate_limit":
                manager.rest_key(name, 7.0)
                pause = fail(plan, candidate, RateLimitError("slow"), Action.ROTATE)
            elif outcome == "transient":
                manager.rest_model(name, model.id, 3.0)
                pause = fail(plan, candidate, ServerError("500"), Action.RETRY)
            elif outcome == "not_found":
                pause = fail(plan, candidate, ProviderError("gone"), Action.NEXT_MODEL)
            else:
                pause = fail(plan, candidate, ProviderError("long"), Action.LARGER_MODEL)
            if pause is not None:
                assert before_fallback and 1 <= pause.number <= retries
                manager.clock.advance(pause.delay)
        fell_back = sum(1 for move in heard.moves[moves_before:] if move[0] == "model")
        assert fallbacks is None or fell_back <= fallbacks, "more fallbacks than the budget"
        pause = plan.wait()
        if pause is None:
            break
        walks += 1
        assert walks <= retries + MAX_RECOVERY_WAITS, "the plan does not end"
        if not pause.recovery:
            backoffs += 1
            assert backoffs <= retries, "more backoffs than max_retries"
        manager.clock.advance(pause.delay)
        rotated.clear()
        moves_before = len(heard.moves)
    error = plan.exhausted(plan.retry_after)
    assert isinstance(error, AllAttemptsFailed)


def test_default_usage_reaches_the_cost_strategy() -> None:
    _, planner, _ = setup([key("a"), key("z", "azure")], strategy="cost")
    ordered = planner.order([(GPT, AZ), (MINI,)], TokenUsage(input_tokens=10, output_tokens=0))
    assert [model.key for _, model in ordered] == ["azure/gpt", "openai/gpt", "openai/mini"]


def test_a_retry_on_the_same_model_still_skips_an_endpoint_that_refused_retries() -> None:
    keys = [
        key("a", base_url="https://one.example/v1"),
        key("b", base_url="https://two.example/v1"),
    ]
    _, planner, _ = setup(keys, retry_before_fallback=True, max_retries=2)
    plan = new_plan(planner, [[GPT]])
    first = plan.next()
    assert first is not None and first.profile.name == "a"
    refused = ServerError("500")
    refused.should_retry = False  # x-should-retry: false
    assert fail(plan, first, refused, Action.RETRY) is None  # sideways, at once
    second = plan.next()
    assert names(second) == ("openai/gpt", "b", "rotation")
    assert second is not None
    assert fail(plan, second, ServerError("500"), Action.RETRY) is not None  # a backoff
    assert names(plan.next()) == ("openai/gpt", "b", "retry")  # not "a", which refused


def test_a_deadline_changed_on_the_engine_is_the_one_its_plans_keep() -> None:
    from failover import AuthProfile, ResilientClient

    client = ResilientClient(
        ["openai/gpt-4o-mini"], [AuthProfile("k", "openai", "sk-test-deadline-0001")], deadline=30
    )
    client.engine.deadline = 5
    client.engine.wait_for_recovery = False
    plan_settings = (client.engine.planner.deadline, client.engine.planner.wait_for_recovery)
    assert plan_settings == (5, False)
    assert client.engine.new_request().deadline_at - client.manager.clock() <= 5
