from __future__ import annotations

import pytest

from failover import ConfigError, FailoverConfig, FailoverManager


def test_seed_defaults() -> None:
    config = FailoverConfig()
    assert (config.max_retries, config.retry_delay, config.exponential_backoff) == (3, 1.0, True)
    assert (config.max_retry_delay, config.cooldown_on_rate_limit, config.cooldown_on_error) == (
        60.0,
        60.0,
        30.0,
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"retry_delay": float("nan")}, "retry_delay"),
        ({"cooldown_on_error": float("inf")}, "cooldown_on_error"),
        ({"retry_delay": 5.0, "max_retry_delay": 1.0}, "max_retry_delay"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"cooldown_multiplier": 0.5}, "cooldown_multiplier"),
        ({"cooldown_on_quota": 10.0, "max_quota_cooldown": 5.0}, "cooldown_on_quota"),
        ({"breaker_window": 0}, "breaker_window"),
        ({"breaker_min_requests": 0}, "breaker_min_requests"),
        ({"breaker_min_requests": 2.5}, "breaker_min_requests"),
        ({"breaker_failure_rate": 0}, "breaker_failure_rate"),
        ({"breaker_failure_rate": 1.5}, "breaker_failure_rate"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FailoverConfig(**kwargs)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        FailoverConfig(retry_delay=-1)


def test_get_retry_delay_is_the_seeds_deterministic_formula() -> None:
    manager = FailoverManager(FailoverConfig(retry_delay=1.0, max_retry_delay=60.0))
    assert [manager.get_retry_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert manager.get_retry_delay(10**9) == 60.0  # no overflow


def test_flat_delay_without_exponential_backoff() -> None:
    manager = FailoverManager(FailoverConfig(retry_delay=2.0, exponential_backoff=False))
    assert {manager.get_retry_delay(n) for n in range(10)} == {2.0}


def test_cooldowns_escalate_up_to_the_cap() -> None:
    config = FailoverConfig(cooldown_multiplier=5.0, max_cooldown=3600.0)
    assert [config.escalated(60.0, n) for n in range(4)] == [60.0, 300.0, 1500.0, 3600.0]
    assert config.escalated(5 * 3600.0, 5, quota=True) == 24 * 3600.0


def test_breaker_defaults_skip_an_outage_after_a_handful_of_requests() -> None:
    config = FailoverConfig()
    assert (config.breaker_window, config.breaker_min_requests) == (30.0, 8)
    assert config.breaker_failure_rate == 0.5
