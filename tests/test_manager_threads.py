"""One manager shared by many threads (sync SDK clients beside async ones) stays consistent.

Threads pick keys and report successes and failures at once, with the interpreter switching
threads as often as it can; afterwards no count is lost, the ready pools hold exactly the
available keys, and the circuit breakers agree with each profile's mirror of them.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from failover import AuthProfile, FailoverConfig, FailoverManager, ProfileStatus

THREADS = 8
ROUNDS = 1000
MODELS = ("m1", "m2")


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Make the interpreter switch threads every few bytecodes, to expose races."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def shared_manager() -> FailoverManager:
    config = FailoverConfig(
        cooldown_on_error=0.002, cooldown_on_rate_limit=0.003, breaker_min_requests=3
    )
    profiles = [
        AuthProfile(
            f"k{index}",
            "openai" if index % 2 else "anthropic",
            f"sk-thread-test-key-{index:04d}",
            base_url=f"https://e{index % 3}.example.test",
            priority=index % 2,
            rate_limit_rpm=None if index % 4 else 10_000,
        )
        for index in range(8)
    ]
    # Time advances with the work (0.1 ms per clock read), not with the machine's speed: how
    # many cooldowns end during the run, and so how many picks find a key, is the same on a
    # loaded machine as on an idle one.
    reads = itertools.count()
    return FailoverManager(config, profiles=profiles, clock=lambda: next(reads) * 1e-4)


def test_concurrent_picks_and_reports_lose_nothing_and_keep_the_pools_consistent(
    switch_often: None,
) -> None:
    manager = shared_manager()
    successes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    start = threading.Barrier(THREADS)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        mine_ok: Counter[str] = Counter()
        mine_failed: Counter[str] = Counter()
        start.wait()
        for _ in range(ROUNDS):
            model = rng.choice(MODELS)
            profile = manager.get_next_profile(rng.choice(["openai", "anthropic", None]))
            if profile is None:
                profile = manager.least_recently_failed(rng.choice(["openai", "anthropic"]))
                if profile is None:
                    continue
            roll = rng.random()
            if roll < 0.6:
                manager.mark_success(profile.name, model=model)
                mine_ok[profile.name] += 1
            else:
                kind = "error" if roll < 0.85 else "rate_limit"
                breaker_only = roll < 0.75
                manager.mark_failure(
                    profile.name, "503", kind=kind, model=model if breaker_only else None
                )
                mine_failed[profile.name] += 1
            if roll > 0.995:
                manager.enable(profile.name)
            if roll < 0.05:
                manager.status()
        with lock:
            successes.update(mine_ok)
            failures.update(mine_failed)

    lock = threading.Lock()
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"

    profiles = {p.name: p for p in manager.list_profiles()}
    assert {n: p.success_count for n, p in profiles.items() if p.success_count} == dict(successes)
    assert {n: p.failure_count for n, p in profiles.items() if p.failure_count} == dict(failures)
    assert sum(successes.values()) + sum(failures.values()) > THREADS * ROUNDS // 2

    now = manager.clock()
    manager.effective_status(profiles["k0"])  # wakes what has cooled down (after now)
    pools = manager._pools
    for profile in profiles.values():
        ready = profile.status is ProfileStatus.AVAILABLE
        assert pools.is_ready(profile) == ready, profile
        if not ready and profile.status is not ProfileStatus.DISABLED:
            assert profile.cooldown_until > now, profile
    breakers = manager._breakers
    for profile in profiles.values():
        open_here = {
            model: breaker.open_until
            for (provider, base_url, model), breaker in breakers.tripped.items()
            if (provider, base_url) == profile.endpoint
        }
        assert profile.model_cooldowns == open_here, profile.name


def test_a_callback_may_wait_for_another_thread_that_uses_the_manager() -> None:
    manager = shared_manager()
    seen: list[int] = []

    def hand_off(failed: AuthProfile, following: AuthProfile | None) -> None:
        helper = threading.Thread(target=lambda: seen.append(manager.status().total_profiles))
        helper.start()
        helper.join(10)  # the manager's lock is not held while callbacks run

    manager.on_failover(hand_off)
    done = threading.Thread(target=manager.mark_failure, args=("k0", "429", True))
    done.start()
    done.join(20)
    assert not done.is_alive(), "mark_failure is stuck behind its own callback"
    assert seen == [8]
