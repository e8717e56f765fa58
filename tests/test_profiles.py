from __future__ import annotations

import copy
import dataclasses
import math
import pickle

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from failover import AuthProfile, ConfigError, FailoverConfig, FailoverManager, ProfileStatus
from tests.conftest import FakeClock

KEY_A = "sk-aaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-bbbbbbbbbbbbbbbbbbbb2222"


def manager_with(clock: FakeClock, *profiles: AuthProfile, **config: float) -> FailoverManager:
    return FailoverManager(FailoverConfig(**config), profiles=profiles, clock=clock)


def test_add_get_remove_and_duplicate_names(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    assert manager.get_profile("a").api_key.get_secret_value() == KEY_A and len(manager) == 1
    with pytest.raises(ConfigError, match="'a' exists"):
        manager.add_profile(AuthProfile("a", "openai", KEY_B))
    assert manager.remove_profile("a") and not manager.remove_profile("a")
    assert manager.is_empty() and manager.get_next_profile() is None


def test_profile_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        AuthProfile("a", "openai", KEY_A, base_url="ftp://x")
    with pytest.raises(ConfigError, match="rate_limit_rpm"):
        AuthProfile("a", "openai", KEY_A, rate_limit_rpm=0)
    with pytest.raises(ConfigError, match="name"):
        AuthProfile("", "openai", KEY_A)


def test_list_profiles_is_priority_order_and_stable(clock: FakeClock) -> None:
    manager = manager_with(
        clock,
        AuthProfile("late", "openai", KEY_A, priority=5),
        AuthProfile("x", "openai", KEY_A, priority=1),
        AuthProfile("y", "openai", KEY_A, priority=1),
    )
    assert [p.name for p in manager.list_profiles()] == ["x", "y", "late"]


def test_lower_priority_first_and_equal_priorities_share_the_load(clock: FakeClock) -> None:
    manager = manager_with(
        clock,
        AuthProfile("backup", "openai", KEY_A, priority=9),
        AuthProfile("a", "openai", KEY_A),
        AuthProfile("b", "openai", KEY_B),
    )
    picks = [manager.get_next_profile("openai").name for _ in range(4)]
    assert picks == ["a", "b", "a", "b"]


def test_rate_limited_key_is_skipped_until_retry_after_elapses(clock: FakeClock) -> None:
    manager = manager_with(
        clock, AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)
    )
    manager.mark_failure(
        "a", "429: Rate limit reached for gpt-4o", is_rate_limit=True, retry_after=20
    )
    assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED
    assert {manager.get_next_profile("openai").name for _ in range(5)} == {"b"}
    clock.advance(19.9)
    assert manager.get_next_profile("openai", exclude={"b"}) is None
    clock.advance(0.2)
    assert manager.get_next_profile("openai", exclude={"b"}).name == "a"


def test_rate_limit_keeps_the_real_error_text(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "Rate limit reached for requests", is_rate_limit=True)
    assert manager.get_profile("a").last_error == "Rate limit reached for requests"


def test_get_next_profile_never_falls_back_to_a_cooling_profile(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "429", is_rate_limit=True)
    assert manager.get_next_profile("openai") is None
    assert manager.next_available_at("openai") == pytest.approx(clock.now + 60.0)


def test_a_shorter_later_cooldown_never_shortens_a_longer_one(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "429", is_rate_limit=True, retry_after=100)
    manager.mark_failure("a", "429", is_rate_limit=True, retry_after=5)
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 100)
    clock.advance(6)
    assert manager.get_next_profile("openai") is None


def test_rate_limit_cooldowns_escalate_for_repeat_offenders(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A), cooldown_on_rate_limit=10)
    durations = []
    for _ in range(3):
        manager.mark_failure("a", "429", is_rate_limit=True)
        profile = manager.get_profile("a")
        durations.append(profile.cooldown_until - clock.now)
        clock.advance(durations[-1])
        manager.get_next_profile("openai")
    assert durations == [10, 20, 40]
    manager.mark_success("a")
    manager.mark_failure("a", "429", is_rate_limit=True)
    assert manager.get_profile("a").cooldown_until - clock.now == 10


def test_seed_loop_a_reported_failure_rotates_at_once_and_runs_callbacks(
    clock: FakeClock,
) -> None:
    manager = manager_with(
        clock, AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)
    )
    seen: list[tuple[str, str | None]] = []
    manager.on_failover(
        lambda failed, following: seen.append((failed.name, following and following.name))
    )
    first = manager.get_next_profile()
    assert manager.mark_failure(first.name, "boom") is ProfileStatus.COOLING_DOWN
    assert manager.get_next_profile().name == "b"
    assert seen == [("a", "b")]
    assert manager.mark_failure("b", "429", True) is ProfileStatus.RATE_LIMITED  # seed: positional
    assert seen == [("a", "b"), ("b", None)]
    assert manager.get_next_profile() is None
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 30)


def test_seed_error_cooldowns_escalate_once_per_event_and_the_callback_runs_once(
    clock: FakeClock,
) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A), cooldown_on_error=10)
    calls: list[str] = []
    manager.on_failover(lambda failed, following: calls.append(failed.name))
    manager.mark_failure("a", "boom")
    clock.advance(5)
    manager.mark_failure("a", "boom again")  # a request in flight: no callback, no strike
    assert calls == ["a"] and manager.get_profile("a").cooldown_strikes == 1
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 20)
    clock.advance(20)
    manager.mark_failure("a", "boom")
    assert manager.get_profile("a").cooldown_strikes == 2
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 20)
    clock.advance(20)
    manager.mark_failure("a", "boom")
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 40)


def test_error_then_success_gives_available_as_in_the_seed(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "503")
    assert manager.mark_success("a") is True
    profile = manager.get_profile("a")
    assert profile.status is ProfileStatus.AVAILABLE and profile.consecutive_failures == 0
    assert manager.get_next_profile().name == "a"
    assert manager.mark_success("a") is False
    assert manager.get_profile("a").success_count == 2


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("rate_limit", ProfileStatus.RATE_LIMITED),
        ("quota", ProfileStatus.DISABLED),
        ("auth", ProfileStatus.DISABLED),
    ],
)
def test_success_never_shortens_a_provider_directed_wait_or_revives_a_dead_key(
    clock: FakeClock, kind: str, status: ProfileStatus
) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "no", kind=kind, retry_after=30 if kind != "auth" else None)  # type: ignore[arg-type]
    until = manager.get_profile("a").cooldown_until
    manager.mark_success("a", model="gpt-4o")  # a request sent before the failure ends well
    assert manager.get_profile("a").status is status
    assert manager.get_profile("a").cooldown_until == until
    assert manager.get_next_profile() is None


def breaker_manager(clock: FakeClock, **config: float) -> FailoverManager:
    eu = "https://eu.example.test/v1"
    return manager_with(
        clock,
        AuthProfile("a", "openai", KEY_A),
        AuthProfile("same-endpoint", "openai", KEY_B, priority=5),
        AuthProfile("other-endpoint", "openai", KEY_B, base_url=eu, priority=9),
        **config,
    )


def test_transient_errors_feed_the_breaker_and_never_cool_the_key(clock: FakeClock) -> None:
    manager = breaker_manager(clock)
    for _ in range(7):  # below the default minimum volume of 8
        assert manager.mark_failure("a", "503", kind="error", model="m") is ProfileStatus.AVAILABLE
    assert manager.get_next_profile("openai", model="m").name == "a"
    assert manager.model_rest_until("a", "m") == 0.0


def test_a_total_outage_at_an_endpoint_is_skipped_after_a_handful_of_requests(
    clock: FakeClock,
) -> None:
    manager = breaker_manager(clock)
    requests = 0
    while (profile := manager.get_next_profile("openai", model="m")).base_url is None:
        requests += 1
        manager.mark_failure(profile.name, "503", kind="error", model="m")
        assert requests <= 8
    assert profile.name == "other-endpoint"
    assert manager.model_rest_until("a", "m") == clock.now + 30
    assert manager.model_rest_until("same-endpoint", "m") == clock.now + 30
    assert manager.model_rest_until("other-endpoint", "m") == 0.0
    assert manager.get_next_profile("openai", model="other-model").name in {"a", "same-endpoint"}
    assert manager.get_profile("a").status is ProfileStatus.AVAILABLE
    assert manager.status().profiles[0].resting_models == {"m": 30}


def test_the_breaker_opens_on_a_failure_rate_not_a_streak(clock: FakeClock) -> None:
    manager = breaker_manager(clock, breaker_min_requests=10, breaker_failure_rate=0.5)
    outcomes = [True, True, True, False, False, False, False, False, False, False] * 3
    for failed in outcomes:  # 30 % failing, with three in a row each time
        if failed:
            manager.mark_failure("a", "503", kind="error", model="m")
        else:
            manager.mark_success("a", model="m")
        clock.advance(0.5)
    assert manager.model_rest_until("a", "m") == 0.0
    for _ in range(12):  # now the share of failures in the window reaches one half
        manager.mark_failure("a", "503", kind="error", model="m")
    assert manager.model_rest_until("a", "m") > clock.now


def test_old_outcomes_leave_the_window(clock: FakeClock) -> None:
    manager = breaker_manager(clock, breaker_min_requests=4, breaker_window=10)
    for _ in range(3):
        manager.mark_failure("a", "503", kind="error", model="m")
    clock.advance(11)
    manager.mark_failure("a", "503", kind="error", model="m")
    assert manager.model_rest_until("a", "m") == 0.0


def open_breaker(manager: FailoverManager, model: str = "m") -> None:
    for _ in range(manager.config.breaker_min_requests):
        manager.mark_failure("a", "503", kind="error", model=model)


def test_half_open_admits_exactly_one_probe_and_its_success_closes(clock: FakeClock) -> None:
    manager = breaker_manager(clock)
    manager.disable("other-endpoint")
    open_breaker(manager)
    assert manager.get_next_profile("openai", model="m") is None
    assert manager.next_available_at("openai", model="m") == clock.now + 30
    clock.advance(30)
    probe = manager.get_next_profile("openai", model="m")
    assert probe is not None
    assert manager.get_next_profile("openai", model="m") is None  # one probe only
    assert manager.peek_next_profile("openai", model="m") is None
    assert manager.mark_success(probe.name, model="m") is True
    assert manager.model_rest_until("a", "m") == 0.0
    assert manager.get_next_profile("openai", model="m").name == "a"
    assert manager.get_next_profile("openai", model="m", exclude=["a"]).name == "same-endpoint"


def test_a_failed_probe_reopens_the_breaker_for_longer(clock: FakeClock) -> None:
    manager = breaker_manager(clock, cooldown_on_error=10)
    open_breaker(manager)
    assert manager.model_rest_until("a", "m") == clock.now + 10
    clock.advance(10)
    probe = manager.get_next_profile("openai", model="m")
    assert probe.base_url is None
    manager.mark_failure(probe.name, "503", kind="error", model="m")
    assert manager.model_rest_until("a", "m") == clock.now + 20
    clock.advance(20)
    probe = manager.get_next_profile("openai", model="m")
    manager.mark_failure(probe.name, "503", kind="error", model="m")
    assert manager.model_rest_until("a", "m") == clock.now + 40


def test_a_lost_probe_is_replaced_after_a_window(clock: FakeClock) -> None:
    manager = breaker_manager(clock, breaker_window=5)
    manager.disable("other-endpoint")
    open_breaker(manager)
    clock.advance(30)
    assert manager.get_next_profile("openai", model="m") is not None  # never reports back
    assert manager.get_next_profile("openai", model="m") is None
    clock.advance(5)
    assert manager.get_next_profile("openai", model="m") is not None


def test_least_recently_failed_offers_only_transiently_held_keys(clock: FakeClock) -> None:
    manager = manager_with(
        clock,
        *(AuthProfile(name, "openai", KEY_A) for name in ("limited", "quota", "auth")),
        AuthProfile("errored-early", "openai", KEY_B, base_url="https://b.example.test"),
        AuthProfile("errored-late", "openai", KEY_B, base_url="https://c.example.test"),
        AuthProfile("claude", "anthropic", KEY_B),
    )
    manager.mark_failure("limited", "429", kind="rate_limit", retry_after=30)
    manager.mark_failure("quota", "no credit", kind="quota")
    manager.mark_failure("auth", "revoked", kind="auth")
    manager.mark_failure("errored-early", "503")
    clock.advance(1)
    for _ in range(8):  # the breaker of m at errored-late's endpoint opens
        manager.mark_failure("errored-late", "503", kind="error", model="m")
    clock.advance(1)
    for name in ("limited", "quota", "auth"):  # newer failures never bring them back
        manager.get_profile(name).last_error_at = 0.0
    assert manager.get_next_profile("openai", model="m") is None
    picked = manager.least_recently_failed("openai", model="m")
    assert picked.name == "errored-early"
    assert picked.last_used_at == clock.now
    assert manager.least_recently_failed("openai", model="m", exclude={"errored-early"}).name == (
        "errored-late"
    )
    assert (
        manager.least_recently_failed(
            "openai", model="m", exclude={"errored-early", "errored-late"}
        )
        is None
    )
    assert manager.least_recently_failed("anthropic").name == "claude"


def test_least_recently_failed_respects_the_model_allowlist_and_rpm(clock: FakeClock) -> None:
    manager = manager_with(
        clock,
        AuthProfile("mini", "openai", KEY_A, models=["gpt-4o-mini"]),
        AuthProfile("tight", "openai", KEY_B, rate_limit_rpm=1),
    )
    manager.mark_failure("mini", "503")
    manager.mark_failure("tight", "503")
    assert manager.least_recently_failed("openai", model="gpt-4o").name == "tight"
    assert manager.least_recently_failed("openai", model="gpt-4o") is None  # rpm spent


def test_auth_failure_disables_until_enable_or_reset_all(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "invalid key", kind="auth")
    clock.advance(10**7)
    assert manager.get_next_profile() is None
    assert manager.get_profile("a").status is ProfileStatus.DISABLED
    manager.enable("a")
    assert manager.get_next_profile().name == "a"
    manager.disable("a", "rotated out")
    assert manager.get_next_profile() is None
    manager.reset_all()
    assert manager.get_next_profile().name == "a"


def test_quota_disables_for_hours_and_escalates(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "insufficient_quota", kind="quota")
    assert manager.get_profile("a").cooldown_until - clock.now == 5 * 3600
    clock.advance(5 * 3600)
    assert manager.get_next_profile().name == "a"
    manager.mark_failure("a", "insufficient_quota", kind="quota")
    assert manager.get_profile("a").cooldown_until - clock.now == 10 * 3600


def test_model_allowlist_and_provider_filter(clock: FakeClock) -> None:
    manager = manager_with(
        clock,
        AuthProfile("mini-only", "openai", KEY_A, models=["gpt-4o-mini"]),
        AuthProfile("claude", "anthropic", KEY_B),
    )
    assert manager.get_next_profile("openai", model="gpt-4o") is None
    assert manager.get_next_profile("openai", model="gpt-4o-mini").name == "mini-only"
    assert manager.get_next_profile("anthropic").name == "claude"
    assert manager.get_next_profile("google") is None


def test_rpm_limit_holds_a_key_back_without_counting_a_failure(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A, rate_limit_rpm=2))
    assert manager.get_next_profile() is not None and manager.get_next_profile() is not None
    assert manager.get_next_profile() is None
    assert manager.get_profile("a").failure_count == 0
    clock.advance(60.01)
    assert manager.get_next_profile().name == "a"


def test_hold_until_reset_skips_a_spent_key(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.hold_until_reset("a", 2.0)
    assert manager.get_next_profile() is None
    clock.advance(2.0)
    assert manager.get_next_profile().name == "a"


def test_status_masks_keys_and_counts(clock: FakeClock) -> None:
    manager = manager_with(
        clock, AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)
    )
    manager.mark_failure("a", f"bad key {KEY_A}", kind="auth")
    status = manager.status()
    assert (status.total_profiles, status.available_profiles) == (2, 1)
    text = repr(status) + str(status.to_dict()) + repr(manager.list_profiles())
    assert KEY_A not in text and KEY_B not in text and "***1111" in text
    assert status.to_dict()["profiles"][0]["cooldown_remaining"] is None  # disabled for good


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_on_failover_callbacks_sync_and_async(clock: FakeClock, backend: str) -> None:
    manager = manager_with(
        clock, AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)
    )
    seen: list[tuple[str, str | None]] = []

    @manager.on_failover
    def sync_hook(failed: AuthProfile, following: AuthProfile | None) -> None:
        seen.append((failed.name, following.name if following else None))

    async def async_hook(failed: AuthProfile, following: AuthProfile | None) -> None:
        seen.append(("async:" + failed.name, following.name if following else None))

    manager.on_failover(async_hook)

    async def scenario() -> None:
        manager.mark_failure("a", "429", is_rate_limit=True)
        await manager.drain_callbacks()

    anyio.run(scenario, backend=backend)
    assert seen == [("a", "b"), ("async:a", "b")]


def test_an_async_callback_from_sync_code_runs_to_its_end(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    seen: list[str] = []

    async def hook(failed: AuthProfile, following: AuthProfile | None) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(failed.name)

    manager.on_failover(hook)
    manager.mark_failure("a", "boom")
    assert seen == ["a"]


def test_a_raising_callback_does_not_break_mark_failure(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.on_failover(lambda failed, following: 1 / 0)
    assert manager.mark_failure("a", "429", is_rate_limit=True) is ProfileStatus.RATE_LIMITED


MODELS = ["m1", "m2"]


class ManagerMachine(RuleBasedStateMachine):
    """Random sequences of operations keep the manager's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.manager = FailoverManager(FailoverConfig(breaker_min_requests=3), clock=self.clock)
        self.names: list[str] = []
        self.last_until: dict[str, float] = {}

    @rule(provider=st.sampled_from(["openai", "anthropic"]), priority=st.integers(0, 2))
    def add(self, provider: str, priority: int) -> None:
        name = f"p{len(self.names)}"
        self.manager.add_profile(
            AuthProfile(name, provider, f"sk-{name}-secretsecret", priority=priority)
        )
        self.names.append(name)

    @precondition(lambda self: self.names)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["error", "rate_limit", "quota", "auth"]),
        wait=st.none() | st.floats(0, 500),
    )
    def fail(self, data: st.DataObject, kind: str, wait: float | None) -> None:
        name = data.draw(st.sampled_from(self.names))
        profile = self.manager.get_profile(name)
        before = profile.cooldown_until if profile.status is not ProfileStatus.AVAILABLE else None
        self.manager.mark_failure(name, "boom", kind=kind, retry_after=wait)  # type: ignore[arg-type]
        if before is not None:
            assert profile.cooldown_until >= before, "a cooldown shrank"

    @precondition(lambda self: self.names)
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        self.manager.mark_success(data.draw(st.sampled_from(self.names)))

    @rule(seconds=st.floats(0, 4000))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(provider=st.none() | st.sampled_from(["openai", "anthropic"]))
    def pick(self, provider: str | None) -> None:
        profile = self.manager.get_next_profile(provider)
        if profile is not None:
            assert profile.status is ProfileStatus.AVAILABLE
            assert profile.cooldown_until <= self.clock.now
            assert provider is None or profile.provider == provider
        else:
            for candidate in self.manager.list_profiles():
                if provider is None or candidate.provider == provider:
                    assert self.manager.effective_status(candidate) is not ProfileStatus.AVAILABLE

    @precondition(lambda self: self.names)
    @rule(data=st.data(), model=st.sampled_from(MODELS), failed=st.booleans())
    def outcome_for_model(self, data: st.DataObject, model: str, failed: bool) -> None:
        name = data.draw(st.sampled_from(self.names))
        status = self.manager.get_profile(name).status
        if failed:
            after = self.manager.mark_failure(name, "503", kind="error", model=model)
            assert after is status, "a breaker failure changed the key's own status"
        else:
            self.manager.mark_success(name, model=model)

    @rule(provider=st.sampled_from(["openai", "anthropic"]), model=st.sampled_from(MODELS))
    def pick_for_model(self, provider: str, model: str) -> None:
        profile = self.manager.get_next_profile(provider, model=model)
        if profile is not None:
            assert profile.status is ProfileStatus.AVAILABLE
            assert self.manager.model_rest_until(profile.name, model) <= self.clock.now
        fallback = self.manager.least_recently_failed(provider, model=model)
        if fallback is not None:
            assert fallback.status in (ProfileStatus.AVAILABLE, ProfileStatus.COOLING_DOWN)

    @precondition(lambda self: self.names)
    @rule(data=st.data(), priority=st.integers(-2, 2))
    def reprioritise(self, data: st.DataObject, priority: int) -> None:
        name = data.draw(st.sampled_from(self.names))
        self.manager.update_profile(name, priority=priority)
        self.manager.get_next_profile(exclude=[name])

    @precondition(lambda self: self.names)
    @rule(data=st.data())
    def enable(self, data: st.DataObject) -> None:
        self.manager.enable(data.draw(st.sampled_from(self.names)))

    @invariant()
    def status_agrees_with_profiles(self) -> None:
        status = self.manager.status()
        assert status.total_profiles == len(self.names)
        available = [p for p in self.manager.list_profiles() if p.status is ProfileStatus.AVAILABLE]
        assert status.available_profiles == len(available)
        for profile in self.manager.list_profiles():
            if profile.status is ProfileStatus.DISABLED and math.isinf(profile.cooldown_until):
                assert profile.status is ProfileStatus.DISABLED


TestManagerMachine = ManagerMachine.TestCase
TestManagerMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_headroom_is_recorded_and_a_spent_budget_holds_the_key(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.record_headroom("a", requests_remaining=7, tokens_remaining=900)
    snapshot = manager.status().profiles[0]
    assert (snapshot.requests_remaining, snapshot.tokens_remaining) == (7, 900)
    manager.record_headroom("a", requests_remaining=5, tokens_remaining=0, spent_for=3.0)
    assert manager.get_next_profile() is None and manager.get_profile("a").failure_count == 0
    clock.advance(3.0)
    assert manager.get_next_profile().name == "a"


def test_routing_fields_are_frozen_and_update_profile_keeps_the_pools_consistent(
    clock: FakeClock,
) -> None:
    manager = manager_with(
        clock, AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)
    )
    with pytest.raises(AttributeError, match=r"update_profile\('a', priority=...\)"):
        manager.get_profile("a").priority = 5
    manager.update_profile("a", priority=5)
    assert manager.get_next_profile(exclude=["a"]).name == "b"
    assert [manager.get_next_profile().name for _ in range(3)] == ["b", "b", "b"]
    manager.update_profile("a", priority=-1, models=["gpt-4o"])
    assert manager.get_next_profile(model="gpt-4o").name == "a"
    assert manager.get_next_profile(model="o3").name == "b"
    manager.update_profile("b", provider="anthropic", api_key=KEY_A)
    assert manager.get_next_profile("anthropic").name == "b"
    assert manager.get_profile("b").api_key.get_secret_value() == KEY_A
    assert manager.get_next_profile("openai", exclude=["a"]) is None


def test_update_profile_validates_and_refuses_unknown_fields(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A, priority=1))
    with pytest.raises(ConfigError, match="rate_limit_rpm"):
        manager.update_profile("a", rate_limit_rpm=-1)
    with pytest.raises(ConfigError, match="remove_profile and add_profile"):
        manager.update_profile("a", name="renamed")
    with pytest.raises(ConfigError, match="status"):
        manager.update_profile("a", status=ProfileStatus.AVAILABLE)
    with pytest.raises(KeyError, match="nobody"):
        manager.update_profile("nobody", priority=1)
    assert manager.get_profile("a").priority == 1  # a refused change changes nothing


def test_update_profile_moves_a_key_to_its_new_endpoints_breakers(clock: FakeClock) -> None:
    manager = breaker_manager(clock)
    open_breaker(manager)
    manager.update_profile("a", base_url="https://eu.example.test/v1")
    assert manager.model_rest_until("a", "m") == 0.0
    assert manager.get_next_profile("openai", model="m").name == "a"
    manager.update_profile("a", base_url=None)
    assert manager.get_profile("a").resting_from("m", clock.now)
    assert manager.get_next_profile("openai", model="m").name == "other-endpoint"


def test_the_key_is_a_secret_type_that_never_shows_itself() -> None:
    profile = AuthProfile("a", "openai", KEY_A, metadata={"team": "x"})
    key = profile.api_key
    assert key.get_secret_value() == KEY_A
    shown = [repr(key), str(key), f"{key}", f"{key:>20}", repr(profile), str(profile)]
    shown += [repr(dataclasses.asdict(profile)), str(dataclasses.asdict(profile))]
    shown += [repr(copy.deepcopy(profile).api_key)]
    assert all(KEY_A not in text for text in shown)
    assert "***1111" in str(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(profile)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    assert AuthProfile("b", "openai", key).api_key.get_secret_value() == KEY_A


@pytest.mark.parametrize(
    "bad", [KEY_A + "\n", " " + KEY_A, KEY_A[:5] + "\t" + KEY_A[5:], KEY_A + "\x00"]
)
def test_a_key_with_whitespace_or_control_characters_is_refused_without_showing_it(
    bad: str,
) -> None:
    with pytest.raises(ConfigError, match="api_key contains") as caught:
        AuthProfile("a", "openai", bad)
    assert KEY_A[3:] not in str(caught.value) and "'a'" in str(caught.value)


@pytest.mark.parametrize("kind", ["rate_limit", "quota"])
def test_failures_of_requests_already_in_flight_escalate_once(clock: FakeClock, kind: str) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    for _ in range(3):  # three requests sent together, three failures
        manager.mark_failure("a", "no", kind=kind)  # type: ignore[arg-type]
    assert manager.get_profile("a").cooldown_strikes == 1


def test_the_last_profile_change_moves_with_every_profile_added_removed_or_updated() -> None:
    from failover.profiles import last_profile_change

    manager = FailoverManager(profiles=[AuthProfile("a", "openai", KEY_A)])
    other = FailoverManager(profiles=[AuthProfile("a", "openai", KEY_A)])
    seen = {last_profile_change()}
    manager.get_next_profile()
    manager.mark_failure("a", "boom")
    manager.reset_all()
    assert last_profile_change() in seen  # health changes no profile
    for change in (
        lambda: manager.add_profile(AuthProfile("b", "openai", KEY_B)),
        lambda: manager.update_profile("b", priority=3),
        lambda: manager.remove_profile("b"),
        lambda: other.update_profile("a", priority=2),  # any manager's change
    ):
        change()
        assert last_profile_change() not in seen
        seen.add(last_profile_change())
    manager.remove_profile("b")  # nothing removed: nothing changed
    assert last_profile_change() in seen


def test_the_engines_key_scrubber_knows_the_keys_added_or_changed_after_it_was_made() -> None:
    from failover import ResilientClient

    client = ResilientClient(["openai/gpt-4o-mini"], [AuthProfile("a", "openai", KEY_A)])
    engine = client._engine
    assert KEY_A not in engine.scrubber()(f"echo {KEY_A}")
    new_key = "plain-words-as-a-key-for-a-proxy-0000"  # no provider's key shape
    assert new_key in engine.scrubber()(f"echo {new_key}")
    client.manager.update_profile("a", api_key=new_key)
    assert new_key not in engine.scrubber()(f"echo {new_key}")
    other_key = "more-plain-words-for-another-key-1111"
    client.manager.add_profile(AuthProfile("b", "openai", other_key))
    assert other_key not in engine.scrubber()(f"echo {other_key}")
    assert engine.scrubber() is engine.scrubber()  # made once per change


def test_a_key_changed_through_another_manager_holding_the_same_profiles_is_scrubbed() -> None:
    from failover import ResilientClient

    old_key, new_key = "oldvalue" + "Q" * 30, "freshtoken" + "Z" * 30  # no shape, no piece alike
    profiles = [AuthProfile("p", "mistral", old_key)]
    first = ResilientClient(["mistral/mistral-small-latest"], profiles)
    second = ResilientClient(["mistral/mistral-small-latest"], profiles)  # the same objects
    assert second._engine.scrubber()(f"bad key {old_key}") == "bad key ***"
    first.manager.update_profile("p", api_key=new_key)
    assert second.manager.get_profile("p").api_key.get_secret_value() == new_key
    assert second._engine.scrubber()(f"bad key {new_key}") == "bad key ***"


def test_a_key_rotated_or_removed_while_a_request_is_out_is_still_scrubbed() -> None:
    from failover import ResilientClient

    rotated, removed = "rotatedvalue" + "R" * 30, "removedsecret" + "S" * 30
    profiles = [AuthProfile("a", "mistral", rotated), AuthProfile("b", "mistral", removed)]
    client = ResilientClient(["mistral/mistral-small-latest"], profiles)
    client.manager.update_profile("a", api_key="thenextvalue" + "T" * 30)
    client.manager.remove_profile("b")
    scrub = client._engine.scrubber()  # of the keys the manager holds now, and the old ones
    assert scrub(f"bad key {rotated}") == "bad key ***"
    assert scrub(f"bad key {removed}") == "bad key ***"


def test_a_scrubber_made_before_a_key_changes_masks_the_new_key_too() -> None:
    """A request on another thread may read the new key before the change is numbered, and
    fail with it while the engine's scrubber is still the one made before."""
    from failover import ResilientClient

    new_key = "concurrentvalue" + "C" * 30
    client = ResilientClient(
        ["mistral/mistral-small-latest"], [AuthProfile("a", "mistral", "firstvalue" + "F" * 30)]
    )
    before = client._engine.scrubber()
    client.manager.update_profile("a", api_key=new_key)
    assert before(f"bad key {new_key}") == "bad key ***"
