"""Replication: what a manager tells its store, decided once by whether the store is shared.

A store that shares nothing hears nothing (the manager's calls skip it); a shared one hears
every change other processes must see, once per change, and what it passes on to another
manager's ``apply_shared_*`` methods gives that manager the same view.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from failover import AuthProfile, FailoverConfig, FailoverManager, ProfileStatus
from failover.replication import LOCAL, StoreReplica, replica_for
from failover.store import MemoryStore
from failover.store.base import BreakerKey, ProfileOp, Store
from tests.conftest import FakeClock

URL = "https://a.example.test/v1"
BREAKER = ("openai", URL, "m")


class RecordingStore(Store):
    """A store that writes down what the manager tells it."""

    def __init__(self, *, shared: bool) -> None:
        self.shared = shared
        self.calls: list[tuple[Any, ...]] = []

    def register(self, profile: AuthProfile) -> None:
        self.calls.append(("register", profile.name))

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        self.calls.append(("profile", profile.name, op, profile.status, struck))

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        self.calls.append(("breaker", key, open_until, strikes, force))

    def used(self, profile: AuthProfile, at: float) -> None:
        self.calls.append(("used", profile.name, at))

    def take(self) -> list[tuple[Any, ...]]:
        calls, self.calls = self.calls, []
        return calls


def keys() -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", "sk-replication-key-a-0001", base_url=URL),
        AuthProfile("b", "openai", "sk-replication-key-b-0002", base_url=URL, rate_limit_rpm=5),
    ]


def manager_over(store: Store, clock: FakeClock) -> FailoverManager:
    config = FailoverConfig(breaker_min_requests=2, breaker_failure_rate=0.5)
    return FailoverManager(config, profiles=keys(), clock=clock, store=store)


def exercise(manager: FailoverManager, clock: FakeClock) -> None:
    """Every kind of change once."""
    manager.get_next_profile("openai", exclude={"a"})  # b is rpm-limited: a use
    manager.mark_failure("a", "503")
    clock.advance(1)
    manager.mark_success("a")
    manager.hold_until_reset("a", 5)
    for _ in range(2):
        manager.mark_failure("b", "503", kind="error", model="m")
    manager.disable("b", "revoked")
    manager.enable("b")
    manager.update_profile("a", priority=3)
    manager.reset_all()


def test_the_replica_is_chosen_once_from_whether_the_store_is_shared() -> None:
    assert replica_for(MemoryStore()) is LOCAL and not LOCAL.shared
    shared = replica_for(RecordingStore(shared=True))
    assert isinstance(shared, StoreReplica) and shared.shared
    assert replica_for(RecordingStore(shared=False)) is LOCAL


def test_a_store_that_shares_nothing_hears_nothing(clock: FakeClock) -> None:
    store = RecordingStore(shared=False)
    manager = manager_over(store, clock)
    exercise(manager, clock)
    assert store.calls == []
    assert manager.status().available_profiles == 2  # the manager works the same


def test_a_shared_store_hears_each_change_once(clock: FakeClock) -> None:
    store = RecordingStore(shared=True)
    manager = manager_over(store, clock)
    assert store.take() == [("register", "a"), ("register", "b")]
    start = clock.now
    manager.get_next_profile("openai", exclude={"a"})
    manager.get_next_profile("openai", exclude={"b"})  # a has no rpm: nothing to share
    assert store.take() == [("used", "b", start)]
    manager.mark_failure("a", "503")
    manager.mark_failure("a", "503", retry_after=1)  # shorter: no change, nothing to share
    assert store.take() == [("profile", "a", "cool", ProfileStatus.COOLING_DOWN, True)]
    clock.advance(1)
    assert manager.mark_success("a")
    assert manager.mark_success("a") is False  # healthy already: nothing to share
    assert store.take() == [("profile", "a", "recover", ProfileStatus.AVAILABLE, False)]
    for _ in range(2):
        manager.mark_failure("b", "503", kind="error", model="m")
    opened = manager.model_rest_until("b", "m")
    assert store.take() == [("breaker", BREAKER, opened, 0, False)]
    clock.advance(opened - clock.now)
    assert manager.get_next_profile("openai", model="m", exclude={"a"}) is not None  # the probe
    store.take()  # its use of b's rpm
    assert manager.mark_success("b", model="m")  # the probe succeeded: the breaker closes
    assert store.take() == [
        ("breaker", BREAKER, 0.0, 0, False),
        ("profile", "b", "recover", ProfileStatus.AVAILABLE, False),  # b had failed
    ]


def test_enable_and_reset_all_close_shared_breakers_by_force_once_each(clock: FakeClock) -> None:
    store = RecordingStore(shared=True)
    manager = manager_over(store, clock)
    for _ in range(2):
        manager.mark_failure("a", "503", kind="error", model="m")
    manager.disable("a")
    store.take()
    manager.enable("a")
    assert store.take() == [
        ("breaker", BREAKER, 0.0, 0, True),
        ("profile", "a", "heal", ProfileStatus.AVAILABLE, False),
    ]
    for _ in range(2):
        manager.mark_failure("a", "503", kind="error", model="m")
    store.take()
    manager.reset_all()
    assert store.take() == [
        ("breaker", BREAKER, 0.0, 0, True),
        ("profile", "a", "heal", ProfileStatus.AVAILABLE, False),
        ("profile", "b", "heal", ProfileStatus.AVAILABLE, False),
    ]
    assert all(not p.model_cooldowns for p in manager.list_profiles())


class LoopbackStore(Store):
    """A shared store that hands each change straight to another manager."""

    shared = True

    def __init__(self) -> None:
        self.peer: FailoverManager | None = None

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        assert self.peer is not None
        self.peer.apply_shared_profile(
            profile.name,
            profile.fingerprint,
            profile.status,
            profile.cooldown_until,
            profile.cooldown_strikes,
            error=profile.last_error,
        )

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        assert self.peer is not None
        self.peer.apply_shared_breaker(key, open_until, strikes, force=force)

    def used(self, profile: AuthProfile, at: float) -> None:
        assert self.peer is not None
        self.peer.apply_shared_use(profile.name, profile.fingerprint, at)


@pytest.mark.parametrize("kind", ["rate_limit", "quota", "auth", "error"])
def test_what_one_manager_shares_another_takes_in(clock: FakeClock, kind: str) -> None:
    store = LoopbackStore()
    here = manager_over(store, clock)
    there = store.peer = manager_over(MemoryStore(), clock)
    here.mark_failure("a", "boom", kind=kind)  # type: ignore[arg-type]
    mine, theirs = here.get_profile("a"), there.get_profile("a")
    assert mine is not None and theirs is not None
    assert (theirs.status, theirs.cooldown_until) == (mine.status, mine.cooldown_until)
    assert theirs.last_error == "boom"
    assert there.get_next_profile("openai", exclude={"b"}) is None
    if not math.isinf(mine.cooldown_until):
        clock.advance(mine.cooldown_until - clock.now)
        assert there.get_next_profile("openai", exclude={"b"}) is theirs
    here.enable("a")
    assert there.effective_status(theirs) is ProfileStatus.AVAILABLE


def test_shared_breakers_and_rpm_uses_reach_the_other_manager(clock: FakeClock) -> None:
    store = LoopbackStore()
    here = manager_over(store, clock)
    there = store.peer = manager_over(MemoryStore(), clock)
    for _ in range(2):
        here.mark_failure("a", "503", kind="error", model="m")
    assert there.model_rest_until("b", "m") == here.model_rest_until("a", "m") > clock.now
    assert there.get_next_profile("openai", model="m") is None
    for _ in range(5):
        assert here.get_next_profile("openai", exclude={"a"}) is not None
    assert there.get_next_profile("openai", exclude={"a"}) is None  # b's rpm is spent there too
