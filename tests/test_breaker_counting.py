"""A breaker counts every outcome exactly by its window, whichever way the outcome comes in.

Successes on a closed breaker take a short way (``Breakers.succeeded``: the newest bucket
takes them while no bucket is due to leave); these tests hold it to the window's rule,
written out here on its own: buckets of ``window / 10`` seconds, each started by the first
outcome after the previous one's width, forgotten once ``start <= now - window``.
"""

from __future__ import annotations

import random

import pytest

from failover import AuthProfile, FailoverConfig
from failover.breakers import Breakers
from failover.replication import LOCAL

URL = "https://a.example.test/v1"


class Window:
    """The sliding window's rule, with no short way."""

    def __init__(self) -> None:
        self.buckets: list[list[float]] = []

    def count(self, failed: bool, now: float, window: float) -> None:
        while self.buckets and self.buckets[0][0] <= now - window:
            self.buckets.pop(0)
        if not self.buckets or self.buckets[-1][0] + window / 10 <= now:
            self.buckets.append([now, 0, 0])
        self.buckets[-1][1] += 1
        self.buckets[-1][2] += failed

    def counts(self) -> tuple[int, int]:
        return int(sum(b[1] for b in self.buckets)), int(sum(b[2] for b in self.buckets))


def config(window: float) -> FailoverConfig:
    # never opens (its minimum volume is never reached): only the counting is under test
    return FailoverConfig(breaker_window=window, breaker_min_requests=10**9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("start", [0.0, 1000.1, 9_876_543.21, 1e12 + 0.3])
def test_successes_and_failures_are_counted_by_the_window_rule(seed: int, start: float) -> None:
    profile = AuthProfile("a", "openai", "sk-a-breaker-counting-0000", base_url=URL)
    breakers = Breakers({"a": profile}, LOCAL)
    reference = Window()
    rng = random.Random(seed)
    now, window = start, 7.0
    for step in range(3000):
        if step == 1500:
            window = 2.0  # the manager's config replaced: the new window counts at once
        gap = rng.choice([0.0, 0.001, 0.05, 0.3, 0.3, window / 10, window, window * 2])
        now += gap if rng.random() < 0.9 else 0.0
        if rng.random() < 0.05 and reference.buckets:  # exactly on a bucket's edge
            first, last = reference.buckets[0][0], reference.buckets[-1][0]
            now = max(now, rng.choice([first + window, last + window / 10]))
        failed = rng.random() < 0.2
        if failed:
            breakers.outcome(profile, "m", now, config(window), failed=True)
        else:
            assert breakers.succeeded(profile, "m", now, config(window)) is False
        reference.count(failed, now, window)
        breaker = breakers.known[("openai", URL, "m")]
        assert (breaker.total, breaker.failed) == reference.counts()
        assert [b[0] for b in breaker.buckets] == [b[0] for b in reference.buckets]


def test_a_success_through_the_short_way_dilutes_the_failure_rate() -> None:
    profile = AuthProfile("a", "openai", "sk-a-breaker-counting-0000", base_url=URL)
    breakers = Breakers({"a": profile}, LOCAL)
    rule = FailoverConfig(breaker_window=60.0, breaker_min_requests=4, breaker_failure_rate=0.5)
    for offset in range(5):
        breakers.succeeded(profile, "m", 100.0 + offset * 0.1, rule)
    for offset in range(4):
        breakers.outcome(profile, "m", 101.0 + offset * 0.1, rule, failed=True)
    assert not breakers.tripped  # 4 failures of 9: under the rate
    breakers.outcome(profile, "m", 102.0, rule, failed=True)
    assert breakers.tripped  # 5 of 10: the rate reached
    assert breakers.succeeded(profile, "m", 103.0, rule) is False  # open: not counted
    assert profile.model_cooldowns
