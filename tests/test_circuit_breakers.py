"""The circuit breakers on their own: the sliding window, opening, the probe, the bound.

``Breakers`` keeps one breaker per model at an endpoint (provider and base URL) and mirrors
the open ones into each profile's ``model_cooldowns``; these tests drive it without a
manager, with explicit clock times.
"""

from __future__ import annotations

from failover import AuthProfile, FailoverConfig
from failover.breakers import BREAKER_LIMIT, Breaker, Breakers
from failover.replication import LOCAL

CONFIG = FailoverConfig(breaker_window=60.0, breaker_min_requests=4, breaker_failure_rate=0.5)
NOW = 1000.0
A_URL = "https://a.example.test/v1"


def key(name: str, base_url: str | None = A_URL) -> AuthProfile:
    return AuthProfile(name, "openai", f"sk-{name}-breaker-test-0000", base_url=base_url)


def breakers_of(*profiles: AuthProfile) -> Breakers:
    breakers = Breakers({p.name: p for p in profiles}, LOCAL)
    for profile in profiles:
        breakers.mirror(profile)
    return breakers


def fail(breakers: Breakers, profile: AuthProfile, times: int, now: float = NOW) -> None:
    for _ in range(times):
        breakers.outcome(profile, "m", now, CONFIG, failed=True)


def test_the_window_counts_outcomes_and_forgets_those_older_than_it() -> None:
    breaker = Breaker()
    for offset in (0.0, 1.0, 7.0, 20.0):
        breaker.count(offset == 7.0, NOW + offset, 60.0)
    assert (breaker.total, breaker.failed) == (4, 1)
    breaker.count(False, NOW + 65.0, 60.0)  # the outcomes of the first bucket(s) leave
    assert (breaker.total, breaker.failed) == (3, 1)
    breaker.count(False, NOW + 200.0, 60.0)
    assert (breaker.total, breaker.failed) == (1, 0)
    for index in range(2000):  # steady traffic: memory does not grow with it
        breaker.count(index % 4 == 0, NOW + 300.0 + index * 0.25, 60.0)
    assert len(breaker.buckets) <= 11
    # the last 54 to 60 s (whole buckets of 6 s leave at once), 4 outcomes a second
    assert 4 * 54 <= breaker.total <= 4 * 60 and breaker.failed * 4 == breaker.total


def test_it_opens_on_the_failure_rate_over_the_minimum_volume_and_rests_the_whole_endpoint() -> (
    None
):
    first, second, elsewhere = key("first"), key("second"), key("elsewhere", "https://b.test")
    breakers = breakers_of(first, second, elsewhere)
    fail(breakers, first, 3)
    assert breakers.rest_until(first, "m") == 0.0  # 3 failures < 4 requests: still closed
    breakers.outcome(first, "m", NOW, CONFIG, failed=False)
    fail(breakers, first, 1)  # 4 of 5 failed
    until = NOW + CONFIG.cooldown_on_error
    assert breakers.rest_until(second, "m") == until
    assert first.model_cooldowns == second.model_cooldowns == {"m": until}
    assert elsewhere.model_cooldowns == {} and breakers.rest_until(elsewhere, "m") == 0.0
    resting = breakers.resting_check("m", NOW, CONFIG.breaker_window)
    assert resting is not None and resting(second) and not resting(elsewhere)
    assert breakers.resting_check("other-model", NOW, CONFIG.breaker_window) is not None
    assert breakers.open_now(NOW) == [(("openai", A_URL, "m"), until, 0)]


def test_half_open_it_lets_one_probe_through_whose_success_closes_it() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    fail(breakers, profile, 4)
    after = breakers.rest_until(profile, "m") + 1
    window = CONFIG.breaker_window
    resting = breakers.resting_check("m", after, window)
    assert resting is not None and not resting(profile)  # half-open: a probe may go
    breakers.probe_sent(profile, "m", after)
    assert breakers.resting_check("m", after, window)(profile)  # type: ignore[misc]
    assert breakers.ready_at(profile, "m", after, window) == after + window  # a lost probe
    assert breakers.outcome(profile, "m", after + 1, CONFIG, failed=False) is True
    assert profile.model_cooldowns == {} and breakers.rest_until(profile, "m") == 0.0


def test_a_failed_probe_reopens_it_for_longer_and_stragglers_of_an_open_one_do_not_count() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    fail(breakers, profile, 4)
    first_rest = breakers.rest_until(profile, "m") - NOW
    fail(breakers, profile, 10, now=NOW + 1)  # requests sent before it opened: ignored
    assert breakers.rest_until(profile, "m") - NOW == first_rest
    probe_at = NOW + first_rest + 1
    fail(breakers, profile, 1, now=probe_at)
    assert breakers.rest_until(profile, "m") - probe_at == CONFIG.escalated(
        CONFIG.cooldown_on_error, 1
    )
    assert breakers.rest_until(profile, "m") - probe_at > first_rest


def test_the_breakers_stay_bounded_and_a_forgotten_one_lifts_its_rest() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    fail(breakers, profile, 4)  # "m" opens first, so it is the least recently used
    for index in range(BREAKER_LIMIT):
        breakers.outcome(profile, f"model-{index}", NOW, CONFIG, failed=False)
    assert len(breakers) == BREAKER_LIMIT
    assert "m" not in profile.model_cooldowns and breakers.rest_until(profile, "m") == 0.0


def test_a_longer_rest_from_another_process_is_taken_in_and_a_forced_close_clears_it() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    breaker_key = ("openai", A_URL, "m")
    breakers.take_in(breaker_key, NOW + 90, 2, force=False, now=NOW)
    assert profile.model_cooldowns == {"m": NOW + 90}
    breakers.take_in(breaker_key, NOW + 30, 1, force=False, now=NOW)  # shorter: ignored
    assert breakers.rest_until(profile, "m") == NOW + 90
    breakers.take_in(breaker_key, 0.0, 0, force=False, now=NOW)  # still resting here: kept
    assert breakers.rest_until(profile, "m") == NOW + 90
    breakers.take_in(breaker_key, 0.0, 0, force=True, now=NOW)  # enable/reset_all elsewhere
    assert profile.model_cooldowns == {} and breakers.open_now(NOW) == []


def test_a_profile_moved_to_another_endpoint_mirrors_that_endpoints_breakers() -> None:
    here, there = key("here"), key("there", "https://b.example.test")
    breakers = breakers_of(here, there)
    fail(breakers, there, 4)
    assert here.model_cooldowns == {}
    object.__setattr__(here, "base_url", "https://b.example.test")  # as update_profile does
    breakers.mirror(here)
    assert here.model_cooldowns == there.model_cooldowns != {}


def test_clear_closes_every_breaker_and_its_mirror() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    fail(breakers, profile, 4)
    breakers.clear()
    assert len(breakers) == 0 and profile.model_cooldowns == {}
    assert breakers.resting_check("m", NOW, CONFIG.breaker_window) is None


def test_a_success_of_the_model_last_counted_keeps_its_breaker_the_most_recently_used() -> None:
    profile = key("a")
    breakers = breakers_of(profile)
    here = ("openai", A_URL, "m")
    fail(breakers, profile, 1)
    breakers.succeeded(profile, "m", NOW, CONFIG)
    breakers.take_in(("openai", A_URL, "other"), NOW + 90, 1, force=False, now=NOW)
    breakers.succeeded(profile, "m", NOW + 1, CONFIG)  # used after the one taken in
    assert list(breakers.known) == [("openai", A_URL, "other"), here]
    assert (breakers.known[here].total, breakers.known[here].failed) == (3, 1)
    for index in range(BREAKER_LIMIT - 1):  # the least recently used goes first
        breakers.succeeded(profile, f"model-{index}", NOW + 2, CONFIG)
    assert ("openai", A_URL, "other") not in breakers.known and here in breakers.known
    breakers.succeeded(profile, "m", NOW + 2, CONFIG)
    breakers.clear()
    breakers.succeeded(profile, "m", NOW + 3, CONFIG)  # a breaker of its own again
    assert list(breakers.known) == [here] and breakers.known[here].total == 1
