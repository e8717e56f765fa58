"""The key pools on their own: pick order, the cooling order, rpm holds, shared state.

``KeyPools`` is the part of the manager that knows which keys are ready and which are
cooling until when; these tests drive it without a manager, with explicit clock times.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from failover import AuthProfile, FailoverConfig, ProfileStatus
from failover.pools import KeyPools, ReadyPool
from failover.replication import LOCAL, Replica

CONFIG = FailoverConfig()
NOW = 1000.0


def key(name: str, provider: str = "openai", **fields: object) -> AuthProfile:
    return AuthProfile(name, provider, f"sk-{name}-pool-test-key-0000", **fields)  # type: ignore[arg-type]


def pools_of(*profiles: AuthProfile, replica: Replica = LOCAL) -> KeyPools:
    pools = KeyPools(replica)
    for profile in profiles:
        pools.add(profile, NOW)
    return pools


def picks(pools: KeyPools, count: int, now: float = NOW, **kwargs: object) -> list[str | None]:
    names = []
    for _ in range(count):
        profile = pools.pick(kwargs.get("provider"), None, (), None, now)  # type: ignore[arg-type]
        names.append(None if profile is None else profile.name)
    return names


def test_lower_priority_first_then_least_recently_used_among_equals() -> None:
    pools = pools_of(key("b1", priority=1), key("a1"), key("a2"), key("b2", priority=1))
    assert picks(pools, 4) == ["a1", "a2", "a1", "a2"]
    pools.cool(pools.profiles["a1"], NOW + 10, ProfileStatus.COOLING_DOWN)
    pools.cool(pools.profiles["a2"], NOW + 10, ProfileStatus.COOLING_DOWN)
    assert picks(pools, 3) == ["b1", "b2", "b1"]


def test_cooling_keys_come_back_in_the_order_their_cooldowns_end() -> None:
    pools = pools_of(key("late"), key("early"), key("middle"))
    pools.cool(pools.profiles["late"], NOW + 30, ProfileStatus.COOLING_DOWN)
    pools.cool(pools.profiles["early"], NOW + 10, ProfileStatus.RATE_LIMITED)
    pools.cool(pools.profiles["middle"], NOW + 20, ProfileStatus.COOLING_DOWN)
    assert picks(pools, 1) == [None]
    assert picks(pools, 1, now=NOW + 10) == ["early"]
    pools.cool(pools.profiles["early"], NOW + 100, ProfileStatus.COOLING_DOWN)
    assert picks(pools, 1, now=NOW + 19.9) == [None]
    assert picks(pools, 1, now=NOW + 20) == ["middle"]
    pools.cool(pools.profiles["middle"], NOW + 100, ProfileStatus.COOLING_DOWN)
    assert picks(pools, 1, now=NOW + 30) == ["late"]


def test_a_cooldown_is_never_shortened_and_a_lengthened_one_wakes_only_at_its_new_end() -> None:
    pools = pools_of(key("a"))
    profile = pools.profiles["a"]
    pools.cool(profile, NOW + 60, ProfileStatus.RATE_LIMITED)
    pools.cool(profile, NOW + 5, ProfileStatus.COOLING_DOWN)  # shorter: ignored
    assert (profile.status, profile.cooldown_until) == (ProfileStatus.RATE_LIMITED, NOW + 60)
    pools.cool(profile, NOW + 90, ProfileStatus.COOLING_DOWN)  # longer: kept, still the provider's
    assert (profile.status, profile.cooldown_until) == (ProfileStatus.RATE_LIMITED, NOW + 90)
    assert profile.cooldown_strikes == 1  # one event while it was available
    assert picks(pools, 1, now=NOW + 60) == [None]  # the stale heap entry wakes nothing
    assert picks(pools, 1, now=NOW + 90) == ["a"]


def test_failures_cool_or_disable_by_kind_and_the_providers_wait_wins() -> None:
    pools = pools_of(key("err"), key("rl"), key("quota"), key("auth"), key("told"))
    for name, kind in (
        ("err", "error"),
        ("rl", "rate_limit"),
        ("quota", "quota"),
        ("auth", "auth"),
    ):
        pools.fail(pools.profiles[name], kind, None, NOW, CONFIG)  # type: ignore[arg-type]
    pools.fail(pools.profiles["told"], "rate_limit", 7.0, NOW, CONFIG)
    status = {name: (p.status, p.cooldown_until - NOW) for name, p in pools.profiles.items()}
    assert status == {
        "err": (ProfileStatus.COOLING_DOWN, CONFIG.cooldown_on_error),
        "rl": (ProfileStatus.RATE_LIMITED, CONFIG.cooldown_on_rate_limit),
        "quota": (ProfileStatus.DISABLED, CONFIG.cooldown_on_quota),
        "auth": (ProfileStatus.DISABLED, math.inf),
        "told": (ProfileStatus.RATE_LIMITED, 7.0),
    }
    assert pools.earliest_ready(None, None, lambda p: NOW, NOW) == NOW + 7.0
    # everything but auth comes back, behind the ready keys, in the order it woke
    assert picks(pools, 5, now=NOW + 10**9) == ["told", "err", "rl", "quota", "told"]
    assert pools.profiles["auth"].status is ProfileStatus.DISABLED


def test_a_disabled_key_stays_out_until_healed() -> None:
    pools = pools_of(key("a"))
    profile = pools.profiles["a"]
    pools.disable(profile, math.inf)
    assert picks(pools, 1, now=NOW + 10**9) == [None]
    assert pools.earliest_ready("openai", None, lambda p: NOW, NOW) is None
    pools.heal(profile)
    assert (profile.status, profile.cooldown_strikes) == (ProfileStatus.AVAILABLE, 0)
    assert picks(pools, 1) == ["a"]


def test_an_rpm_limit_holds_a_key_back_for_the_rest_of_its_minute_without_a_strike() -> None:
    pools = pools_of(key("tight", rate_limit_rpm=2), key("other", priority=1))
    assert picks(pools, 3) == ["tight", "tight", "other"]
    tight = pools.profiles["tight"]
    assert (tight.status, tight.cooldown_until) == (ProfileStatus.RATE_LIMITED, NOW + 60)
    assert tight.cooldown_strikes == 0 and tight.failure_count == 0
    assert picks(pools, 1, now=NOW + 60) == ["tight"]


def test_least_recently_failed_prefers_the_oldest_failure_and_skips_provider_held_keys() -> None:
    pools = pools_of(key("old"), key("new"), key("limited"), key("claude", "anthropic"))
    for name, at in (("old", NOW - 50), ("new", NOW - 5), ("limited", NOW - 500)):
        pools.profiles[name].last_error_at = at
    pools.fail(pools.profiles["old"], "error", None, NOW, CONFIG)
    pools.fail(pools.profiles["new"], "error", None, NOW, CONFIG)
    pools.fail(pools.profiles["limited"], "rate_limit", None, NOW, CONFIG)
    chosen = pools.least_recently_failed("openai", None, (), NOW)
    assert chosen is not None and chosen.name == "old" and chosen.last_used_at == NOW
    chosen = pools.least_recently_failed("openai", None, {"old"}, NOW)
    assert chosen is not None and chosen.name == "new"
    assert pools.least_recently_failed("openai", None, {"old", "new"}, NOW) is None


def test_a_removed_key_is_never_picked_nor_woken() -> None:
    pools = pools_of(key("a"), key("b"))
    pools.cool(pools.profiles["a"], NOW + 10, ProfileStatus.COOLING_DOWN)
    assert pools.remove("a") is not None and pools.remove("a") is None
    assert picks(pools, 2, now=NOW + 20) == ["b", "b"]


def test_shared_state_is_taken_in_and_a_non_authoritative_update_only_lengthens() -> None:
    pools = pools_of(key("a"))
    profile = pools.profiles["a"]
    changed = pools.take_in(
        profile, ProfileStatus.RATE_LIMITED, NOW + 30, 2, error="429", authoritative=True, now=NOW
    )
    assert changed and (profile.status, profile.cooldown_strikes) == (ProfileStatus.RATE_LIMITED, 2)
    assert profile.last_error == "429" and picks(pools, 1) == [None]
    shorter = pools.take_in(
        profile, ProfileStatus.AVAILABLE, 0.0, 0, error=None, authoritative=False, now=NOW
    )
    assert not shorter and profile.status is ProfileStatus.RATE_LIMITED
    healed = pools.take_in(
        profile, ProfileStatus.AVAILABLE, 0.0, 0, error=None, authoritative=True, now=NOW
    )
    assert healed and picks(pools, 1) == ["a"]


def test_uses_by_other_processes_count_against_the_rpm_in_time_order() -> None:
    pools = pools_of(key("tight", rate_limit_rpm=2))
    fingerprint = pools.profiles["tight"].fingerprint
    pools.take_in_use("tight", fingerprint, NOW - 10)
    pools.take_in_use("tight", fingerprint, NOW - 30)  # late news, older use
    pools.take_in_use("tight", "another-key", NOW)  # another key under the same name
    assert list(pools.profiles["tight"]._recent) == [NOW - 30, NOW - 10]
    assert picks(pools, 1) == [None]
    assert picks(pools, 1, now=NOW + 30) == ["tight"]


def test_a_ready_pool_orders_by_priority_and_skips_excluded_resting_and_disallowed() -> None:
    pool = ReadyPool()
    low, high, mini = key("low", priority=1), key("high"), key("mini", models=["m-mini"])
    for profile in (low, high, mini):
        pool.add(profile)
    assert len(pool) == 3 and high in pool
    assert pool.pick(None, (), None) is high
    assert pool.pick("m", {"high"}, None) is low  # mini does not allow "m"
    assert pool.pick(None, (), lambda p: p is high) is mini
    pool.discard(high)
    assert high not in pool and pool.pick(None, (), None) is mini


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["error", "rate_limit", "quota", "auth", "heal", "pick"]),
            st.floats(0, 200),
        ),
        max_size=40,
    )
)
def test_the_pools_hold_exactly_the_available_keys(events: list[tuple[str, str, float]]) -> None:
    pools = pools_of(key("a"), key("b"), key("c", priority=1))
    now = NOW
    for name, event, wait in events:
        now += wait / 10
        profile = pools.profiles[name]
        if event == "heal":
            pools.heal(profile)
        elif event == "pick":
            picked = pools.pick(None, None, (), None, now)
            assert picked is None or picked.status is ProfileStatus.AVAILABLE
        else:
            before = profile.cooldown_until if profile.status is not ProfileStatus.AVAILABLE else 0
            pools.fail(profile, event, wait or None, now, CONFIG)  # type: ignore[arg-type]
            assert profile.cooldown_until >= before, "a cooldown shrank"
        pools.wake(now)
        for each in pools.profiles.values():
            assert pools.is_ready(each) == (each.status is ProfileStatus.AVAILABLE)
            if each.status is not ProfileStatus.AVAILABLE:
                assert each.cooldown_until > now


class _Walking(KeyPools):
    """KeyPools that never hand out a lone head at once: every pick walks the pool."""

    __slots__ = ()

    def _lone_once_asked(self, provider: str | None) -> AuthProfile | None:
        return None


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(
                [
                    *("pick", "pick", "pick", "pick_other", "pick_excluding", "pick_model"),
                    *("pick_any", "error", "rate_limit", "heal", "remove", "add", "shared"),
                    *("priority", "rpm", "models"),
                ]
            ),
            st.floats(0, 30),
        ),
        max_size=50,
    )
)
def test_a_lone_key_handed_out_at_once_is_what_walking_the_pool_picks(
    events: list[tuple[str, str, float]],
) -> None:
    """The pick that hands out a provider's lone head without walking (kept from one change of
    the pools to the next) picks, uses and orders exactly as walking the pool does, through
    cooldowns, wakes, heals, other processes' state, new and removed keys and routing changes."""

    def made() -> dict[str, AuthProfile]:
        return {
            "a": key("a"),
            "b": key("b", priority=1),
            "c": key("c", "anthropic"),
            "d": key("d", priority=2),
        }

    twins = [(KeyPools(LOCAL), made()), (_Walking(LOCAL), made())]
    for pools, keys in twins:
        for name in "abc":
            pools.add(keys[name], NOW)
    now = NOW
    for name, event, wait in events:
        now += wait / 10
        outcomes = []
        for pools, keys in twins:
            profile = keys[name]
            known = name in pools.profiles
            picked: AuthProfile | None = None
            if event.startswith("pick"):
                provider = {"pick_other": "anthropic", "pick_any": None}.get(event, "openai")
                exclude = {"a"} if event == "pick_excluding" else ()
                model = "gpt-x" if event == "pick_model" else None
                picked = pools.pick(provider, model, exclude, None, now)
            elif event == "add" and not known:
                pools.add(profile, now)
            elif event == "remove":
                pools.remove(name)
            elif not known:
                pass
            elif event == "heal":
                pools.heal(profile)
            elif event == "shared":
                pools.take_in(
                    profile,
                    ProfileStatus.COOLING_DOWN,
                    now + wait,
                    1,
                    error=None,
                    authoritative=True,
                    now=now,
                )
            elif event in ("priority", "rpm", "models"):
                ready = pools.is_ready(profile)
                if ready:
                    pools.withdraw(profile)  # as the manager's update_profile does
                field = {"priority": "priority", "rpm": "rate_limit_rpm", "models": "models"}
                value = {"priority": int(wait) % 3, "rpm": 1000, "models": ("gpt-x",)}
                object.__setattr__(profile, field[event], value[event])
                if ready:
                    pools.make_ready(profile)
            else:
                pools.fail(profile, event, wait or None, now, CONFIG)  # type: ignore[arg-type]
            outcomes.append(
                (
                    None if picked is None else picked.name,
                    sorted((p.name, p.status, p.last_used_at) for p in pools.profiles.values()),
                )
            )
        assert outcomes[0] == outcomes[1], (name, event)


def test_the_lone_key_of_a_provider_is_picked_again_until_the_pools_change() -> None:
    only, spare = key("only"), key("spare", priority=1)
    pools = pools_of(only, spare)
    assert picks(pools, 3, provider="openai") == ["only", "only", "only"]
    assert picks(pools, 3, provider="OpenAI") == ["only", "only", "only"]  # a name not canonical
    assert picks(pools, 2, provider="nobody") == [None, None]
    assert only.last_used_at == NOW
    assert pools.pick("openai", None, {"only"}, None, NOW) is spare  # excluded: the walk
    assert pools.pick("openai", None, (), lambda p: p is only, NOW) is spare  # resting
    pools.cool(only, NOW + 10, ProfileStatus.COOLING_DOWN)
    assert picks(pools, 2, provider="openai") == ["spare", "spare"]
    assert picks(pools, 2, now=NOW + 10, provider="openai") == ["only", "only"]  # woken
    equal = key("equal")
    pools.add(equal, NOW + 10)  # an equal, ready after it: the two take turns
    assert picks(pools, 3, now=NOW + 11, provider="openai") == ["only", "equal", "only"]
    pools.remove("equal")
    pools.remove("only")
    assert picks(pools, 2, now=NOW + 12, provider="openai") == ["spare", "spare"]
    pools.remove("spare")
    assert picks(pools, 2, now=NOW + 12, provider="openai") == [None, None]


def test_a_lone_key_with_an_equal_of_another_provider_still_takes_turns_among_all() -> None:
    mine, theirs = key("mine"), key("theirs", "anthropic")
    pools = pools_of(mine, theirs)
    assert picks(pools, 2, provider="openai") == ["mine", "mine"]
    assert picks(pools, 1) == ["theirs"]  # any provider: the least recently used
    assert picks(pools, 1, provider="openai") == ["mine"]
    assert picks(pools, 2) == ["theirs", "mine"]


def test_a_managers_next_pick_sees_every_change_after_its_lone_key_was_picked() -> None:
    from failover import FailoverManager

    clock = [NOW]
    manager = FailoverManager(profiles=[key("first")], clock=lambda: clock[0])

    def next_name(**kwargs: object) -> str | None:
        profile = manager.get_next_profile("openai", **kwargs)  # type: ignore[arg-type]
        return None if profile is None else profile.name

    assert [next_name(), next_name(), next_name()] == ["first", "first", "first"]
    manager.add_profile(key("better", priority=-1))  # a new key ahead of it
    assert [next_name(), next_name()] == ["better", "better"]
    manager.update_profile("better", models=["gpt-x"])  # no longer for every model
    assert [next_name(model="gpt-y"), next_name(model="gpt-y")] == ["first", "first"]
    assert next_name(model="gpt-x") == "better"
    manager.update_profile("better", priority=5)
    assert [next_name(model="gpt-x"), next_name(model="gpt-x")] == ["first", "first"]
    manager.mark_failure("first", "boom", kind="rate_limit", retry_after=10)
    assert [next_name(model="gpt-x"), next_name(model="gpt-x")] == ["better", "better"]
    clock[0] += 10  # its cooldown is over
    assert [next_name(model="gpt-x"), next_name(model="gpt-x")] == ["first", "first"]
    first = manager.get_profile("first")
    assert first is not None
    cooled = manager.apply_shared_profile(  # another process cooled it
        "first", first.fingerprint, ProfileStatus.COOLING_DOWN, clock[0] + 30, 1
    )
    assert cooled and [next_name(model="gpt-x"), next_name(model="gpt-x")] == ["better"] * 2
    manager.enable("first")
    manager.update_profile("first", rate_limit_rpm=2)  # its uses now count
    assert [next_name(model="gpt-x") for _ in range(3)] == ["first", "first", "better"]
    manager.remove_profile("first")
    manager.remove_profile("better")
    assert next_name() is None


def test_a_profile_shared_with_another_manager_is_picked_by_what_it_says_now() -> None:
    """One AuthProfile held by two managers (one list given to two transports): an update
    through one changes the profile the other hands out, as it did before picks were kept."""
    from failover import AuthProfile, FailoverManager

    shared = AuthProfile("p", "openai", "sk-" + "a" * 40)
    first, second = FailoverManager(profiles=[shared]), FailoverManager(profiles=[shared])
    assert [second.get_next_profile("openai") for _ in range(3)] == [shared] * 3
    first.update_profile("p", models=["gpt-x"])
    assert second.get_next_profile("openai", model="gpt-y") is None
    assert second.get_next_profile("openai", model="gpt-x") is shared
    first.update_profile("p", models=None, rate_limit_rpm=1)
    assert [second.get_next_profile("openai") for _ in range(3)] == [shared, None, None]
