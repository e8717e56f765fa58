from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from failover import AuthProfile, FailoverConfig, FailoverManager, ProfileStatus
from failover.store import MemoryStore, RedisStore
from tests.redis_server import RedisServer, free_port

KEY_A = "sk-store-aaaaaaaaaaaaaaaa1111"
KEY_B = "sk-store-bbbbbbbbbbbbbbbb2222"


def profiles(**extra: object) -> list[AuthProfile]:
    return [
        AuthProfile("a", "openai", KEY_A, **extra),  # type: ignore[arg-type]
        AuthProfile("b", "openai", KEY_B),
    ]


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[FailoverManager, FailoverManager]]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix))
    second = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix))
    async with first, second:
        await settle(first, second)
        yield first, second


async def settle(*managers: FailoverManager) -> None:
    for _ in range(2):  # what one hears may make it answer
        for manager in managers:
            assert isinstance(manager.store, RedisStore)
            assert await manager.store.settle(), "the store did not settle within 2 s"


async def test_a_rate_limit_seen_by_one_manager_holds_the_key_in_the_other(pair) -> None:
    first, second = pair
    first.mark_failure("a", "429", kind="rate_limit", retry_after=30)
    await settle(first, second)
    profile = second.get_profile("a")
    assert profile.status is ProfileStatus.RATE_LIMITED
    assert profile.cooldown_until == pytest.approx(time.monotonic() + 30, abs=0.5)
    assert {second.get_next_profile("openai").name for _ in range(4)} == {"b"}


async def test_a_revoked_key_is_disabled_everywhere_and_enable_reaches_everyone(pair) -> None:
    first, second = pair
    first.mark_failure("a", "invalid key", kind="auth")
    await settle(first, second)
    assert second.get_profile("a").status is ProfileStatus.DISABLED
    assert math.isinf(second.get_profile("a").cooldown_until)
    second.enable("a")
    await settle(first, second)
    assert first.get_profile("a").status is ProfileStatus.AVAILABLE
    assert {first.get_next_profile("openai").name for _ in range(2)} == {"a", "b"}


async def test_a_success_never_uncools_a_key_another_process_rate_limited(pair) -> None:
    first, second = pair
    first.mark_failure("a", "boom")  # the seed's report: cooling after an error
    second.mark_failure("a", "429", kind="rate_limit", retry_after=30)
    await settle(first, second)
    first.mark_success("a")  # a request sent before the 429 ends well
    await settle(first, second)
    for manager in (first, second):
        assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED


async def test_a_success_after_an_error_returns_the_key_everywhere(pair) -> None:
    first, second = pair
    first.mark_failure("a", "boom")
    await settle(first, second)
    assert second.get_profile("a").status is ProfileStatus.COOLING_DOWN
    second.mark_success("a")
    await settle(first, second)
    assert first.get_profile("a").status is ProfileStatus.AVAILABLE


async def test_concurrent_reports_escalate_once_and_cooldowns_only_grow(pair) -> None:
    first, second = pair
    first.mark_failure("a", "429", kind="rate_limit")  # both before either hears the other
    second.mark_failure("a", "429", kind="rate_limit")
    first.mark_failure("b", "429", kind="rate_limit", retry_after=100)
    second.mark_failure("b", "429", kind="rate_limit", retry_after=5)
    await settle(first, second)
    now = time.monotonic()
    for manager in (first, second):
        a, b = manager.get_profile("a"), manager.get_profile("b")
        assert a.cooldown_strikes == 1
        assert a.cooldown_until == pytest.approx(now + 60, abs=0.5)
        assert b.cooldown_until == pytest.approx(now + 100, abs=0.5)


async def test_an_open_breaker_rests_the_model_in_every_process(pair) -> None:
    first, second = pair
    for _ in range(first.config.breaker_min_requests):
        first.mark_failure("a", "503", kind="error", model="m")
    await settle(first, second)
    assert second.model_rest_until("b", "m") > time.monotonic()
    assert second.get_next_profile("openai", model="m") is None
    assert second.get_next_profile("openai", model="other").name in {"a", "b"}
    second.enable("a")  # an enable clears the breaker at the key's endpoint everywhere
    await settle(first, second)
    assert first.get_next_profile("openai", model="m") is not None


async def test_rpm_limits_hold_across_processes(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    managers = [
        FailoverManager(
            profiles=[AuthProfile("a", "openai", KEY_A, rate_limit_rpm=5)],
            store=RedisStore(redis_server.url, prefix=prefix),
        )
        for _ in range(2)
    ]
    async with managers[0], managers[1]:
        await settle(*managers)
        picked = 0
        for turn in range(12):
            if managers[turn % 2].get_next_profile("openai") is not None:
                picked += 1
            await settle(*managers)
        assert picked == 5


async def test_redis_holds_fingerprints_never_keys_and_everything_expires(
    pair, redis_server: RedisServer
) -> None:
    first, second = pair
    first.mark_failure("a", f"401 for {KEY_A}", kind="auth")
    first.mark_failure("b", "429", kind="rate_limit", retry_after=30)
    for _ in range(first.config.breaker_min_requests):
        second.mark_failure("b", "503", kind="error", model="m")
    await settle(first, second)
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    prefix = first.store.prefix  # type: ignore[attr-defined]
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        assert {key.split(":")[1] for key in keys} == {"profile", "endpoints", "breaker"}
        for key in keys:
            dump = key + repr(await client.hgetall(key))
            for secret in (KEY_A, KEY_B):
                assert secret[3:15] not in dump and secret[-12:] not in dump
            assert await client.pttl(key) > 0, f"{key} never expires"
        record = await client.hgetall(first.store.profile_key(first.get_profile("a")))  # type: ignore[attr-defined]
        assert record["fp"] == first.get_profile("a").fingerprint and len(record["fp"]) == 16
    finally:
        await client.aclose()


async def test_another_key_under_the_same_name_keeps_a_state_of_its_own(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix))
    rotated = [AuthProfile("a", "openai", "sk-store-rotated-key-0000003"), profiles()[1]]
    second = FailoverManager(profiles=rotated, store=RedisStore(redis_server.url, prefix=prefix))
    async with first, second:
        await settle(first, second)
        first.mark_failure("a", "invalid key", kind="auth")  # the old key is revoked
        first.mark_failure("b", "429", kind="rate_limit", retry_after=30)
        await settle(first, second)
        assert second.get_profile("a").status is ProfileStatus.AVAILABLE  # the new key is fine
        assert second.get_profile("b").status is ProfileStatus.RATE_LIMITED
        assert second.store.conflicts == {}  # type: ignore[attr-defined]


async def test_the_same_key_with_other_routing_fields_is_reported_not_merged(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    warnings: list[str] = []
    first = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix))
    narrowed = [AuthProfile("a", "openai", KEY_A, models=["gpt-4o"])]
    second = FailoverManager(
        profiles=narrowed,
        store=RedisStore(redis_server.url, prefix=prefix, on_warning=warnings.append),
    )
    async with first:
        await settle(first)
        async with second:
            await settle(first, second)
            first.mark_failure("a", "429", kind="rate_limit", retry_after=30)
            second.mark_failure("a", "invalid key", kind="auth")
            await settle(first, second)
            assert second.get_profile("a").status is ProfileStatus.DISABLED
            assert first.get_profile("a").status is ProfileStatus.RATE_LIMITED
            assert second.store.conflicts == {"a": "routing"}  # type: ignore[attr-defined]
            assert second.status().profiles[0].conflict == "routing"
            assert len(warnings) == 1 and "'a'" in warnings[0] and KEY_A not in warnings[0]
            first.update_profile("a", models=["gpt-4o"])  # now they agree
            await settle(first)  # the shared record moves before the other registers again
            second.update_profile("a", priority=0)
            await settle(first, second)
            assert second.store.conflicts == {}  # type: ignore[attr-defined]
            second.enable("a")
            await settle(first, second)
            assert first.get_profile("a").status is ProfileStatus.AVAILABLE


async def test_the_same_key_at_another_base_url_is_reported_and_never_merged(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    heard: dict[str, list[str]] = {"us": [], "eu": []}

    def manager(where: str, base_url: str | None) -> FailoverManager:
        store = RedisStore(redis_server.url, prefix=prefix, on_warning=heard[where].append)
        return FailoverManager(profiles=profiles(base_url=base_url), store=store)

    us = manager("us", None)
    eu = manager("eu", "https://eu.example.test/v1")
    us_too = FailoverManager(profiles=profiles(), store=RedisStore(redis_server.url, prefix=prefix))
    async with us, us_too:
        await settle(us, us_too)
        # eu's first request is rate limited before its store has even connected
        eu.mark_failure("a", "429", kind="rate_limit", retry_after=30)
        async with eu:
            await settle(us, us_too, eu)
            assert eu.get_profile("a").status is ProfileStatus.RATE_LIMITED
            for elsewhere in (us, us_too):  # key "a" at the other URL is not held back
                assert elsewhere.get_profile("a").status is ProfileStatus.AVAILABLE
            us.mark_failure("a", "invalid key", kind="auth")
            await settle(us, us_too, eu)
            assert us_too.get_profile("a").status is ProfileStatus.DISABLED  # same URL: shared
            assert eu.get_profile("a").status is ProfileStatus.RATE_LIMITED  # other URL: not
            for mine in (eu, us, us_too):  # every process with that name and key is told
                assert mine.store.conflicts == {"a": "base_url"}  # type: ignore[attr-defined]
                assert mine.status().to_dict()["profiles"][0]["conflict"] == "base_url"
            for told in heard.values():  # once, without the key
                assert len(told) == 1 and "'a'" in told[0] and "base URL" in told[0]
                assert KEY_A not in told[0] and KEY_A[-12:] not in told[0]


async def test_a_process_changing_its_own_routing_is_no_disagreement(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    manager = FailoverManager(profiles=profiles(), store=store)
    async with manager:
        await settle(manager)
        manager.update_profile("a", priority=3, rate_limit_rpm=100)
        await settle(manager)
        assert store.conflicts == {}


async def test_unreachable_redis_costs_nothing_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warnings: list[str] = []
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", on_warning=warnings.append)
    manager = FailoverManager(profiles=profiles(), store=store)
    async with manager:
        for _ in range(50):
            profile = manager.get_next_profile("openai")
            manager.mark_failure(profile.name, "boom")
            manager.mark_success(profile.name)
            await asyncio.sleep(0.01)
        assert manager.get_profile("a").status is ProfileStatus.AVAILABLE
    assert len(warnings) == 1 and "unreachable" in warnings[0]
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


async def test_redis_killed_and_restarted_empty_gets_the_state_back() -> None:
    server = RedisServer()
    server.start()
    warnings: list[str] = []
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = FailoverManager(
        profiles=profiles(),
        store=RedisStore(server.url, prefix=prefix, on_warning=warnings.append),
    )
    second = FailoverManager(profiles=profiles(), store=RedisStore(server.url, prefix=prefix))
    try:
        async with first, second:
            await settle(first, second)
            server.kill()
            first.mark_failure("a", "429", kind="rate_limit", retry_after=30)
            assert first.get_next_profile("openai").name == "b"  # served from memory
            await asyncio.sleep(0.3)
            server.start()  # empty: nothing was saved
            await settle(first, second)
            assert second.get_profile("a").status is ProfileStatus.RATE_LIMITED
            second.mark_success("a")  # a request sent before: no "healed" from an empty Redis
            await settle(first, second)
            for manager in (first, second):
                assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED
            assert [w.split(" ")[1] for w in warnings] == ["unreachable", "is"]
    finally:
        server.kill()


async def test_memory_store_is_the_default_and_shares_nothing() -> None:
    manager = FailoverManager(profiles=profiles())
    assert isinstance(manager.store, MemoryStore) and not manager.store.shared
    async with manager:
        manager.mark_failure("a", "429", kind="rate_limit")
    assert manager.get_profile("a").status is ProfileStatus.RATE_LIMITED


def test_store_settings_are_checked() -> None:
    from failover import ConfigError

    with pytest.raises(ConfigError, match="redis://"):
        RedisStore("http://localhost:6379")
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore("redis://localhost:6379", prefix="has space")
    with pytest.raises(ConfigError, match="store"):
        FailoverManager(store="redis://localhost")  # type: ignore[arg-type]
    store = RedisStore("redis://localhost:6379")
    FailoverManager(store=store)
    with pytest.raises(ConfigError, match="one FailoverManager"):
        FailoverManager(store=store)


def test_config_for_breaker_is_shared_shape() -> None:
    assert FailoverConfig().breaker_min_requests == 8


async def test_redis_store_says_it_needs_asyncio_under_trio() -> None:
    import trio

    from failover import ConfigError

    async def under_trio() -> None:
        manager = FailoverManager(profiles=profiles(), store=RedisStore("redis://localhost:1"))
        with pytest.raises(ConfigError, match="asyncio"):
            await manager.start()

    await asyncio.to_thread(trio.run, under_trio)


async def test_failover_status_shows_the_shared_state_without_keys(
    pair, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from failover.cli import main
    from failover.status_view import read_shared_state, render

    first, second = pair
    first.mark_failure("a", f"429 for {KEY_A}", kind="rate_limit", retry_after=30)
    second.mark_failure("b", "revoked", kind="auth")
    for _ in range(first.config.breaker_min_requests):
        first.mark_failure("a", "503", kind="error", model="gpt-4o")
    await settle(first, second)
    prefix = first.store.prefix  # type: ignore[attr-defined]
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        shared, breakers = await read_shared_state(client, prefix)
    finally:
        await client.aclose()
    by_name = {p.name: p for p in shared}
    assert by_name["a"].status == "rate_limited" and 29 < by_name["a"].rest <= 30
    assert by_name["b"].status == "disabled" and by_name["b"].rest == math.inf
    assert by_name["a"].fingerprint == first.get_profile("a").fingerprint
    assert [(b.provider, b.model) for b in breakers] == [("openai", "gpt-4o")]
    console = Console(width=200, record=True)
    console.print(render(shared, breakers, prefix))
    text = console.export_text()
    assert "until enabled" in text and "model resting" in text and KEY_A not in text
    assert (
        await asyncio.to_thread(main, ["status", "--redis", redis_server.url, "--prefix", prefix])
        == 0
    )
    assert "rate_limited" in capsys.readouterr().out
    bad = f"redis://127.0.0.1:{free_port()}/0"
    assert await asyncio.to_thread(main, ["status", "--redis", bad]) == 1


async def test_failover_status_counts_an_rpm_limited_keys_recent_uses(
    redis_server: RedisServer,
) -> None:
    from failover.status_view import read_shared_state

    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = FailoverManager(
        profiles=profiles(rate_limit_rpm=10), store=RedisStore(redis_server.url, prefix=prefix)
    )
    async with first:
        for _ in range(3):
            picked = first.get_next_profile("openai", exclude=["b"])
            assert picked is not None and picked.name == "a"
        await settle(first)
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        try:
            shared, _ = await read_shared_state(client, prefix)
        finally:
            await client.aclose()
    by_name = {p.name: p for p in shared}
    assert by_name["a"].uses_last_minute == 3
    assert by_name["b"].uses_last_minute == 0


async def test_the_workers_demo_refuses_bad_numbers() -> None:
    from failover.demo_workers import run_workers_demo

    assert await run_workers_demo(0, 10, None) == 2
    assert await run_workers_demo(2, -3, None) == 2
