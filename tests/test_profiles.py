from __future__ import annotations

import asyncio
import math

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
    assert manager.get_profile("a").api_key == KEY_A and len(manager) == 1
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


def test_transient_errors_cool_only_after_the_threshold(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A), failure_threshold=3)
    assert manager.mark_failure("a", "503") is ProfileStatus.AVAILABLE
    assert manager.mark_failure("a", "503") is ProfileStatus.AVAILABLE
    assert manager.mark_failure("a", "503") is ProfileStatus.COOLING_DOWN
    assert manager.get_profile("a").cooldown_until == pytest.approx(clock.now + 30)


def test_repeated_failures_of_one_model_rest_that_model_at_that_endpoint_only(
    clock: FakeClock,
) -> None:
    other = "https://eu.example.test/v1"
    manager = manager_with(
        clock,
        AuthProfile("a", "openai", KEY_A),
        AuthProfile("same-endpoint", "openai", KEY_B, priority=5),
        AuthProfile("other-endpoint", "openai", KEY_B, base_url=other, priority=9),
        failure_threshold=2,
    )
    manager.mark_failure("a", "503", model="gpt-4o-mini")
    assert manager.mark_failure("a", "503", model="gpt-4o-mini") is ProfileStatus.AVAILABLE
    assert manager.get_next_profile("openai", model="gpt-4o-mini").name == "other-endpoint"
    assert manager.get_next_profile("openai", model="gpt-4o").name == "a"
    manager.disable("other-endpoint")
    assert manager.get_next_profile("openai", model="gpt-4o-mini") is None
    assert manager.next_available_at("openai", model="gpt-4o-mini") == clock.now + 30
    assert manager.status().profiles[0].resting_models == {"gpt-4o-mini": 30}
    clock.advance(30)
    assert manager.get_next_profile("openai", model="gpt-4o-mini").name == "a"


def test_success_resets_the_consecutive_failure_count(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.mark_failure("a", "503")
    assert manager.mark_success("a") is True
    assert manager.get_profile("a").consecutive_failures == 0
    assert manager.mark_success("a") is False
    assert manager.get_profile("a").success_count == 2


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


def test_on_failover_callbacks_sync_and_async(clock: FakeClock) -> None:
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

    asyncio.run(scenario())
    assert seen == [("a", "b"), ("async:a", "b")]


def test_a_raising_callback_does_not_break_mark_failure(clock: FakeClock) -> None:
    manager = manager_with(clock, AuthProfile("a", "openai", KEY_A))
    manager.on_failover(lambda failed, following: 1 / 0)
    assert manager.mark_failure("a", "429", is_rate_limit=True) is ProfileStatus.RATE_LIMITED


class ManagerMachine(RuleBasedStateMachine):
    """Random sequences of operations keep the manager's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.manager = FailoverManager(clock=self.clock)
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
