"""The failover policy of ResilientClient, driven by respx."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx
import pytest
import respx

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    ConfigError,
    ContentFilteredError,
    FailoverConfig,
    FailoverManager,
    InvalidRequestError,
    ModelCatalog,
    ModelEntry,
    ModelNotFoundError,
    NoProfileAvailable,
    ProfileStatus,
    ResilientClient,
    StreamInterrupted,
)
from tests.conftest import BOTH_BACKENDS, FakeClock

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
KEY_A = "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-proj-bbbbbbbbbbbbbbbbbbbbbbbb2222"
KEY_C = "sk-ant-cccccccccccccccccccccccc3333"
MESSAGES = [{"role": "user", "content": "hello"}]


def ok(text: str = "hi") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        },
    )


def anthropic_ok(text: str = "claude") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    )


def error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers or {})


def by_key(responses: dict[str, Any]) -> Any:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("authorization", request.headers.get("x-api-key", ""))
        key = key.removeprefix("Bearer ")
        calls.append(key)
        reply = responses[key]
        return reply() if callable(reply) else reply

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(
    clock: FakeClock,
    chain: list[str] | None = None,
    *,
    sleep: Sleeps | None = None,
    catalog: ModelCatalog | None = None,
    config: FailoverConfig | None = None,
    **kwargs: Any,
) -> ResilientClient:
    manager = FailoverManager(
        config,
        clock=clock,
        profiles=[
            AuthProfile("a", "openai", KEY_A),
            AuthProfile("b", "openai", KEY_B),
            AuthProfile("c", "anthropic", KEY_C),
        ],
    )
    return ResilientClient(
        chain or ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
        manager,
        sleep=sleep or Sleeps(),
        catalog=catalog,
        **kwargs,
    )


@respx.mock
async def test_rate_limited_key_rotates_with_no_sleep_and_is_skipped_until_retry_after(
    clock: FakeClock,
) -> None:
    sleeps = Sleeps()
    handler = by_key(
        {
            KEY_A: error(
                429,
                {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                {"retry-after": "20"},
            ),
            KEY_B: ok("from b"),
        }
    )
    respx.post(OPENAI).mock(side_effect=handler)
    client = make_client(clock, sleep=sleeps)
    first = await client.complete(MESSAGES)
    assert first.text == "from b" and first.profile == "b" and sleeps.delays == []
    assert [a.outcome for a in first.attempts] == ["rate_limit", "ok"]
    assert first.attempts[0].retry_after == 20
    for _ in range(3):
        assert (await client.complete(MESSAGES)).profile == "b"
    assert handler.calls.count(KEY_A) == 1  # never called while cooling
    clock.advance(20.5)
    await client.complete(MESSAGES)
    await client.complete(MESSAGES)
    assert handler.calls.count(KEY_A) == 2
    await client.aclose()


@respx.mock
async def test_quota_error_disables_the_key_for_hours(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(
        side_effect=by_key(
            {
                KEY_A: error(
                    429,
                    {
                        "error": {
                            "message": "You exceeded your current quota",
                            "type": "insufficient_quota",
                            "code": "insufficient_quota",
                        }
                    },
                ),
                KEY_B: ok(),
            }
        )
    )
    client = make_client(clock)
    result = await client.complete(MESSAGES)
    assert result.attempts[0].outcome == "quota"
    profile = client.manager.get_profile("a")
    assert profile.status is ProfileStatus.DISABLED
    assert profile.cooldown_until - clock.now == pytest.approx(5 * 3600)


@respx.mock
async def test_key_rotation_budget_is_separate_from_model_fallbacks(clock: FakeClock) -> None:
    handler = by_key({KEY_A: error(429, {"error": {"message": "slow"}}), KEY_B: ok("b")})
    respx.post(OPENAI).mock(side_effect=handler)
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok("fallback"))
    client = make_client(clock, config=FailoverConfig(max_key_rotations=0))
    result = await client.complete(MESSAGES)
    assert result.text == "fallback" and handler.calls == [KEY_A]  # no second key tried
    assert client.manager.get_profile("b").last_used_at == 0.0  # and not counted as used


@respx.mock
async def test_model_fallback_budget_stops_the_walk(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(return_value=error(404, {"error": {"message": "no such model"}}))
    anthropic = respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock, config=FailoverConfig(max_model_fallbacks=0))
    with pytest.raises(AllAttemptsFailed) as info:
        await client.complete(MESSAGES)
    assert anthropic.call_count == 0 and [a.outcome for a in info.value.attempts] == [
        "model_not_found"
    ]


@respx.mock
async def test_invalid_key_is_disabled_and_never_retried(clock: FakeClock) -> None:
    handler = by_key(
        {KEY_A: error(401, {"error": {"message": "Incorrect API key provided"}}), KEY_B: ok()}
    )
    respx.post(OPENAI).mock(side_effect=handler)
    client = make_client(clock)
    for _ in range(3):
        await client.complete(MESSAGES)
    assert handler.calls.count(KEY_A) == 1
    assert client.manager.get_profile("a").status is ProfileStatus.DISABLED


@respx.mock
async def test_overloaded_primary_falls_over_to_the_healthy_fallback_at_once_without_sleeping(
    clock: FakeClock,
) -> None:
    import failover

    failover.set_testing(False)
    sleeps = Sleeps()
    overloaded = error(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    chain = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    anthropic = respx.post(ANTHROPIC).mock(return_value=overloaded)
    respx.post(OPENAI).mock(return_value=ok("fallback"))
    config = FailoverConfig(max_retries=2, retry_delay=0.5, jitter=0.0)
    client = make_client(clock, chain, sleep=sleeps, config=config)
    result = await client.complete(MESSAGES)
    assert result.model == "openai/gpt-4o-mini" and result.text == "fallback"
    assert anthropic.call_count == 1 and sleeps.delays == []
    assert [a.outcome for a in result.attempts] == ["overloaded", "ok"]
    assert client.manager.get_profile("c").status is ProfileStatus.AVAILABLE


@respx.mock
async def test_retry_before_fallback_backs_off_on_the_primary_before_falling_over(
    clock: FakeClock,
) -> None:
    import failover

    failover.set_testing(False)
    sleeps = Sleeps()
    overloaded = error(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    chain = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    anthropic = respx.post(ANTHROPIC).mock(return_value=overloaded)
    respx.post(OPENAI).mock(return_value=ok("fallback"))
    config = FailoverConfig(max_retries=2, retry_delay=0.5, jitter=0.0, retry_before_fallback=True)
    client = make_client(clock, chain, sleep=sleeps, config=config)
    result = await client.complete(MESSAGES)
    assert result.model == "openai/gpt-4o-mini"
    assert anthropic.call_count == 3 and sleeps.delays == [0.5, 1.0]


@respx.mock
async def test_retry_before_fallback_announces_the_model_it_retries(clock: FakeClock) -> None:
    import failover

    failover.set_testing(False)
    overloaded = error(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    respx.post(ANTHROPIC).mock(return_value=overloaded)
    respx.post(OPENAI).mock(
        side_effect=[error(500, {"error": {"message": "boom"}}), ok("second try")]
    )
    chain = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    config = FailoverConfig(max_retries=1, retry_delay=0.5, jitter=0.0, retry_before_fallback=True)
    client = make_client(clock, chain, sleep=Sleeps(), config=config)
    retries: list[Any] = []
    client.on_retry(retries.append)
    result = await client.complete(MESSAGES)
    assert result.text == "second try"
    assert [(r.model, r.reason) for r in retries] == [
        ("anthropic/claude-haiku-4-5", "overloaded"),
        ("openai/gpt-4o-mini", "server"),
    ]


@respx.mock
async def test_another_endpoint_of_the_same_model_is_tried_at_once_after_a_503(
    clock: FakeClock,
) -> None:
    sleeps = Sleeps()
    east = respx.post("https://east.example/v1/chat/completions").mock(
        return_value=error(503, {"error": {"message": "Service Unavailable"}})
    )
    west = respx.post("https://west.example/v1/chat/completions").mock(return_value=ok("west"))
    manager = FailoverManager(
        clock=clock,
        profiles=[
            AuthProfile("east", "openai", KEY_A, base_url="https://east.example/v1"),
            AuthProfile("west", "openai", KEY_B, base_url="https://west.example/v1", priority=1),
        ],
    )
    client = ResilientClient(["openai/gpt-4o-mini"], manager, sleep=sleeps)
    result = await client.complete(MESSAGES)
    assert result.text == "west" and result.profile == "west"
    assert east.call_count == 1 and west.call_count == 1 and sleeps.delays == []


@respx.mock
async def test_when_nothing_else_is_left_the_client_backs_off_and_retries_on_another_key(
    clock: FakeClock,
) -> None:
    import failover

    failover.set_testing(False)
    sleeps = Sleeps()
    handler = by_key({KEY_A: error(503, {"error": {"message": "busy"}}), KEY_B: ok("from b")})
    respx.post(OPENAI).mock(side_effect=handler)
    config = FailoverConfig(retry_delay=0.5, jitter=0.0)
    client = make_client(clock, ["openai/gpt-4o-mini"], sleep=sleeps, config=config)
    retries: list[Any] = []
    client.on_retry(retries.append)
    result = await client.complete(MESSAGES)
    assert result.text == "from b" and handler.calls == [KEY_A, KEY_B]
    assert sleeps.delays == [0.5]
    assert retries[0].profile == "a" and retries[0].reason == "overloaded"


@respx.mock
async def test_x_should_retry_false_is_not_retried_at_that_endpoint(clock: FakeClock) -> None:
    route = respx.post(OPENAI).mock(
        return_value=error(500, {"error": {"message": "no"}}, {"x-should-retry": "false"})
    )
    client = make_client(clock, ["openai/gpt-4o-mini"])
    with pytest.raises(AllAttemptsFailed) as caught:
        await client.complete(MESSAGES)
    assert route.call_count == 1 and len(caught.value.attempts) == 1


@respx.mock
async def test_x_should_retry_true_makes_a_conflict_transient(clock: FakeClock) -> None:
    route = respx.post(OPENAI).mock(
        side_effect=[
            error(400, {"error": {"message": "try again"}}, {"x-should-retry": "true"}),
            ok("second time"),
        ]
    )
    client = make_client(clock, ["openai/gpt-4o-mini"])
    result = await client.complete(MESSAGES)
    assert result.text == "second time" and route.call_count == 2


@respx.mock
async def test_retry_after_on_overload_wins_over_backoff(clock: FakeClock) -> None:
    import failover

    failover.set_testing(False)
    sleeps = Sleeps()
    respx.post(ANTHROPIC).mock(
        side_effect=[
            error(503, {"error": {"message": "busy"}}, {"retry-after-ms": "250"}),
            anthropic_ok(),
        ]
    )
    client = make_client(clock, ["anthropic/claude-haiku-4-5"], sleep=sleeps)
    assert (await client.complete(MESSAGES)).text == "claude"
    assert sleeps.delays == [0.25]


@respx.mock
async def test_model_not_found_skips_the_model_and_leaves_the_key_healthy(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(
        return_value=error(
            404, {"error": {"message": "The model does not exist", "code": "model_not_found"}}
        )
    )
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock)
    result = await client.complete(MESSAGES)
    assert result.model == "anthropic/claude-haiku-4-5"
    assert len(result.attempts) == 2  # one openai key, not both
    assert client.manager.get_profile("a").failure_count == 0


@respx.mock
async def test_context_overflow_skips_to_a_model_with_a_larger_window(clock: FakeClock) -> None:
    catalog = ModelCatalog()
    for model_id, window in (("small", 8_000), ("also-small", 8_000), ("big", 200_000)):
        catalog.register(
            ModelEntry(
                id=model_id, name=model_id, provider="openai", api="openai", context_window=window
            )
        )
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        seen.append(model)
        if model != "big":
            return error(
                400,
                {
                    "error": {
                        "message": "This model's maximum context length is 8000",
                        "code": "context_length_exceeded",
                    }
                },
            )
        return ok("big answer")

    respx.post(OPENAI).mock(side_effect=handler)
    client = make_client(
        clock, ["openai/small", "openai/also-small", "openai/big"], catalog=catalog
    )
    result = await client.complete(MESSAGES)
    assert result.text == "big answer" and seen == ["small", "big"]


@respx.mock
async def test_invalid_request_is_raised_at_once_with_nothing_else_called(clock: FakeClock) -> None:
    openai = respx.post(OPENAI).mock(
        return_value=error(
            400,
            {
                "error": {
                    "message": "Invalid value for 'temperature'",
                    "type": "invalid_request_error",
                }
            },
        )
    )
    anthropic = respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock)
    with pytest.raises(InvalidRequestError) as info:
        await client.complete(MESSAGES, temperature=7)
    assert openai.call_count == 1 and anthropic.call_count == 0
    assert len(info.value.attempts) == 1 and info.value.status == 400


@respx.mock
async def test_content_filter_falls_over_by_default_or_raises_when_asked(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(
        return_value=httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {"content": None, "refusal": "I can't help"},
                        "finish_reason": "stop",
                    }
                ]
            },
        )
    )
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok("safe"))
    assert (await make_client(clock).complete(MESSAGES)).text == "safe"
    strict = make_client(clock, raise_on_content_filter=True)
    with pytest.raises(ContentFilteredError):
        await strict.complete(MESSAGES)


@respx.mock
async def test_every_key_cooling_raises_with_retry_after(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(
        return_value=error(429, {"error": {"message": "slow"}}, {"retry-after": "30"})
    )
    client = make_client(clock, ["openai/gpt-4o-mini"])
    with pytest.raises(AllAttemptsFailed) as info:
        await client.complete(MESSAGES)
    assert len(info.value.attempts) == 2
    assert info.value.retry_after == pytest.approx(30, abs=1)
    with pytest.raises(NoProfileAvailable) as again:
        await client.complete(MESSAGES)
    assert again.value.attempts == () and again.value.retry_after is not None


@respx.mock
async def test_wait_for_recovery_sleeps_until_the_earliest_key_is_back(clock: FakeClock) -> None:
    sleeps = Sleeps()

    async def sleep(delay: float) -> None:
        sleeps.delays.append(delay)
        clock.advance(delay)

    route = respx.post(OPENAI).mock(
        side_effect=[
            error(429, {"error": {"message": "slow"}}, {"retry-after": "2"}),
            error(429, {"error": {"message": "slow"}}, {"retry-after": "3"}),
            ok("after waiting"),
        ]
    )
    manager = FailoverManager(
        clock=clock, profiles=[AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)]
    )
    client = ResilientClient(
        ["openai/gpt-4o-mini"], manager, sleep=sleep, deadline=30, wait_for_recovery=True
    )
    clock_now = clock.now
    result = await client.complete(MESSAGES)
    assert result.text == "after waiting" and route.call_count == 3
    assert len(sleeps.delays) == 1 and clock.now - clock_now >= 2


@respx.mock
async def test_deadline_stops_the_walk(clock: FakeClock) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.3)
        return error(503, {"error": {"message": "busy"}})

    respx.post(OPENAI).mock(side_effect=slow)
    respx.post(ANTHROPIC).mock(side_effect=slow)
    client = make_client(clock, deadline=0.5)
    with pytest.raises(AllAttemptsFailed, match="deadline"):
        await client.complete(MESSAGES)


class Trickle(httpx.AsyncByteStream):
    """A reply body that sends one byte every ``every`` seconds, ``total`` bytes in all."""

    def __init__(self, every: float, total: int) -> None:
        self.every, self.total, self.sent = every, total, 0

    async def __aiter__(self) -> Any:
        while self.sent < self.total:
            await anyio.sleep(self.every)
            self.sent += 1
            yield b" "


@respx.mock
async def test_a_deadline_bounds_a_reply_that_trickles_in(clock: FakeClock) -> None:
    trickle = Trickle(every=0.02, total=1000)  # 20 s in all, every read on time
    respx.post(OPENAI).mock(return_value=httpx.Response(200, stream=trickle))
    client = make_client(clock, ["openai/gpt-4o-mini"], deadline=0.3)
    with pytest.raises(AllAttemptsFailed, match="deadline") as caught:
        await client.complete(MESSAGES)
    assert trickle.sent < trickle.total
    assert [a.outcome for a in caught.value.attempts] == ["timeout"]
    assert client.manager.get_profile("a").failure_count == 0  # the caller's bound, not the key's


@respx.mock
async def test_the_attempt_timeout_is_a_total_not_per_read(clock: FakeClock) -> None:
    trickles = [Trickle(every=0.02, total=1000), Trickle(every=0.02, total=1000)]
    respx.post(OPENAI).mock(side_effect=[httpx.Response(200, stream=t) for t in trickles])
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok("claude"))
    client = make_client(clock, timeout=0.2)
    result = await client.complete(MESSAGES)
    assert result.text == "claude"
    assert [a.outcome for a in result.attempts] == ["timeout", "ok"]
    assert all(t.sent < t.total for t in trickles)


@respx.mock
async def test_cancellation_propagates_and_changes_no_profile(clock: FakeClock) -> None:
    started = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await anyio.sleep(60)
        return ok()

    respx.post(OPENAI).mock(side_effect=hang)
    client = make_client(clock)
    async with anyio.create_task_group() as group:
        group.start_soon(client.complete, MESSAGES)
        await started.wait()
        group.cancel_scope.cancel()
    for profile in client.manager.list_profiles():
        assert profile.failure_count == 0 and profile.status is ProfileStatus.AVAILABLE


@respx.mock
async def test_hooks_receive_events_in_order_and_slow_or_raising_hooks_do_not_hurt(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    respx.post(OPENAI).mock(
        side_effect=by_key(
            {
                KEY_A: error(
                    429, {"error": {"message": f"limit for key {KEY_A}"}}, {"retry-after": "5"}
                ),
                KEY_B: ok(),
            }
        )
    )
    client = make_client(clock)
    seen: list[str] = []
    finished = anyio.Event()

    @client.on_cooldown
    def cooldown(event: Any) -> None:
        seen.append(f"cooldown:{event.profile}")

    @client.on_failover
    def failover_hook(event: Any) -> None:
        seen.append(f"failover:{event.from_profile}->{event.to_profile}")

    @client.on_failover
    async def slow_hook(event: Any) -> None:
        await anyio.sleep(0.5)  # slow: must not delay the request
        finished.set()

    @client.on_success
    def success(event: Any) -> None:
        seen.append(f"success:{event.profile}")
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="failover"):
        result = await client.complete(MESSAGES)
        assert not finished.is_set()  # the request returned before the slow hook finished
        await client.aclose()
    assert finished.is_set() and result.profile == "b"
    assert seen == ["cooldown:a", "failover:a->b", "success:b"]
    assert "hook bug" in caplog.text


@respx.mock
async def test_no_key_in_events_logs_errors_or_status(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = f"Incorrect API key provided: {KEY_A}"
    respx.post(OPENAI).mock(
        side_effect=by_key(
            {
                KEY_A: error(401, {"error": {"message": echo}}),
                KEY_B: error(503, {"error": {"message": f"key {KEY_B} unavailable"}}),
            }
        )
    )
    respx.post(ANTHROPIC).mock(return_value=error(401, {"error": {"message": KEY_C}}))
    client = make_client(clock)
    events: list[Any] = []
    for register in (
        client.on_failover,
        client.on_retry,
        client.on_cooldown,
        client.on_exhausted,
        client.on_success,
    ):
        register(events.append)
    with caplog.at_level(logging.DEBUG), pytest.raises(AllAttemptsFailed) as info:
        await client.complete(MESSAGES)
    await client.aclose()
    texts = [repr(e) for e in events] + [
        str(info.value),
        repr(info.value),
        caplog.text,
        json.dumps(client.status()),
        repr(client),
        repr(client.manager.list_profiles()),
    ]
    texts += [str(a.error) for a in info.value.attempts]
    assert events
    for key in (KEY_A, KEY_B, KEY_C):
        assert all(key not in text for text in texts)


@respx.mock
async def test_a_redirect_is_never_followed_even_if_the_http_client_would(
    clock: FakeClock,
) -> None:
    respx.post(ANTHROPIC).mock(
        return_value=httpx.Response(307, headers={"location": "https://evil.test/v1/messages"})
    )
    stolen = respx.post("https://evil.test/v1/messages").mock(return_value=anthropic_ok())
    async with httpx.AsyncClient(follow_redirects=True) as http:
        client = make_client(clock, ["anthropic/claude-haiku-4-5"], http_client=http)
        with pytest.raises(InvalidRequestError, match=r"evil\.test.*check that base_url"):
            await client.complete(MESSAGES)
    assert stolen.call_count == 0


def test_construction_errors_are_clear(clock: FakeClock) -> None:
    from failover import ConfigError

    with pytest.raises(ConfigError, match="no auth profile for provider 'gemini'"):
        make_client(clock, ["gemini/gemini-2.5-flash-lite"])
    with pytest.raises(ConfigError, match="timeout"):
        make_client(clock, timeout=0)
    with pytest.raises(ConfigError, match="deadline"):
        make_client(clock, deadline=-1)


async def test_bad_messages_are_rejected(clock: FakeClock) -> None:
    from failover import ConfigError

    client = make_client(clock)
    with pytest.raises(ConfigError, match="messages"):
        await client.complete("hello")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_tokens"):
        await client.complete(MESSAGES, max_tokens=0)


@respx.mock
async def test_call_runs_any_function_with_failover(clock: FakeClock) -> None:
    class SDKError(Exception):
        def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            super().__init__("sdk failure")
            self.status_code, self.body = status_code, body
            self.response = httpx.Response(status_code, headers=headers)

    used: list[str] = []

    async def fn(ctx: Any) -> str:
        used.append(ctx.profile.name)
        if ctx.api_key == KEY_A:
            raise SDKError(429, {"error": {"message": "slow down"}}, {"retry-after": "9"})
        return f"{ctx.model.key} via {ctx.base_url}"

    client = make_client(clock)
    assert await client.call(fn) == "openai/gpt-4o-mini via https://api.openai.com/v1"
    assert used == ["a", "b"]
    assert client.manager.get_profile("a").cooldown_until - clock.now == pytest.approx(9)

    async def bug(ctx: Any) -> None:
        raise KeyError("programming error")

    with pytest.raises(KeyError):
        await client.call(bug)


def sse(*events: dict[str, Any] | str) -> httpx.Response:
    text = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)


def delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"delta": {"content": text}, "finish_reason": finish}]}


@respx.mock
async def test_stream_fails_over_before_the_first_chunk(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(return_value=error(503, {"error": {"message": "busy"}}))
    respx.post(ANTHROPIC).mock(
        return_value=httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            text='event: message_start\ndata: {"message": {"usage": {"input_tokens": 4}}}\n\n'
            'event: content_block_delta\ndata: {"delta": {"type": "text_delta", "text": "Hi"}}\n\n'
            'event: message_delta\ndata: {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}\n\n'
            "event: message_stop\ndata: {}\n\n",
        )
    )
    client = make_client(clock, config=FailoverConfig(max_retries=0))
    chunks = [chunk async for chunk in client.stream(MESSAGES)]
    assert [c.text for c in chunks] == ["Hi", ""]
    assert chunks[-1].usage.input_tokens == 4 and chunks[-1].finish_reason == "stop"
    assert chunks[-1].raw_finish_reason == "end_turn"


@respx.mock
async def test_stream_failure_after_the_first_chunk_raises_stream_interrupted(
    clock: FakeClock,
) -> None:
    respx.post(OPENAI).mock(
        return_value=sse(
            delta("Hel"), delta("lo"), {"error": {"message": "overloaded", "code": 503}}
        )
    )
    anthropic = respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock)
    received: list[str] = []

    async def consume() -> None:
        async with client.stream(MESSAGES) as stream:
            async for chunk in stream:
                received.append(chunk.text)

    with pytest.raises(StreamInterrupted) as info:
        await consume()
    assert received == ["Hel", "lo"] and info.value.partial_text == "Hello"
    assert anthropic.call_count == 0 and info.value.attempts[-1].outcome == "overloaded"


@respx.mock
async def test_truncated_stream_is_a_failure_never_a_silent_success(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(return_value=sse(delta("partial")))  # no [DONE]
    client = make_client(clock)
    with pytest.raises(StreamInterrupted, match="terminator"):
        async for _ in client.stream(MESSAGES):
            pass


@respx.mock
async def test_truncated_stream_before_any_text_fails_over(clock: FakeClock) -> None:
    respx.post(OPENAI).mock(return_value=sse())
    respx.post(ANTHROPIC).mock(
        return_value=httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            text='event: content_block_delta\ndata: {"delta": {"type": "text_delta", "text": "ok"}}\n\n'
            "event: message_stop\ndata: {}\n\n",
        )
    )
    client = make_client(clock, config=FailoverConfig(max_retries=0))
    stream = client.stream(MESSAGES)
    texts = [c.text async for c in stream]
    assert texts[0] == "ok" and stream.model == "anthropic/claude-haiku-4-5"


@respx.mock
async def test_a_429_with_a_spent_budget_is_reported_as_a_rate_limit(clock: FakeClock) -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "90000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    handler = by_key(
        {KEY_A: error(429, {"error": {"message": "Rate limit reached"}}, headers), KEY_B: ok()}
    )
    respx.post(OPENAI).mock(side_effect=handler)
    client = make_client(clock, ["openai/gpt-4o-mini"])
    cooldowns: list[Any] = []
    client.on_cooldown(cooldowns.append)
    await client.complete(MESSAGES)
    assert [(c.profile, c.reason) for c in cooldowns] == [("a", "rate_limit")]
    assert cooldowns[0].duration == pytest.approx(1.0)  # the spent budget's reset, not 6 min


@respx.mock
async def test_a_providers_absurd_wait_is_capped_and_the_event_says_so(clock: FakeClock) -> None:
    handler = by_key(
        {
            KEY_A: error(429, {"error": {"message": "wait"}}, {"retry-after": "1000000000000"}),
            KEY_B: ok(),
        }
    )
    respx.post(OPENAI).mock(side_effect=handler)
    client = make_client(clock, ["openai/gpt-4o-mini"])
    cooldowns: list[Any] = []
    client.on_cooldown(cooldowns.append)
    await client.complete(MESSAGES)
    hour = client.manager.config.max_first_wait  # the key had not failed before
    assert cooldowns[0].duration == pytest.approx(hour) and cooldowns[0].capped_from == 1e12
    assert client.manager.get_profile("a").cooldown_until - clock.now == pytest.approx(hour)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "9" * 400 + "s"},
        {"retry-after": "Fri, 01 Jan 100000000000000000000 00:00:00 GMT"},
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1e400"},
    ],
)
@respx.mock
async def test_odd_wait_headers_never_break_a_reply_or_hold_a_key_forever(
    clock: FakeClock, headers: dict[str, str]
) -> None:
    reply = ok()
    reply.headers.update(headers)
    respx.post(OPENAI).mock(return_value=reply)
    client = make_client(clock, ["openai/gpt-4o-mini"])
    assert (await client.complete(MESSAGES)).text == "hi"
    profile = client.manager.get_profile("a")
    assert profile.cooldown_until - clock.now <= client.manager.config.max_provider_wait


@respx.mock
async def test_fallback_on_decides_who_falls_over(clock: FakeClock) -> None:
    not_found = error(404, {"error": {"message": "no such model", "code": "model_not_found"}})
    respx.post(OPENAI).mock(return_value=not_found)
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    raising = make_client(clock, fallback_on=lambda error: error.kind != "model_not_found")
    with pytest.raises(ModelNotFoundError) as caught:
        await raising.complete(MESSAGES)
    assert len(caught.value.attempts) == 1
    falling = make_client(clock, fallback_on=(ModelNotFoundError,))
    assert (await falling.complete(MESSAGES)).text == "claude"


@respx.mock
async def test_policy_overrides_replace_a_row_of_the_table(clock: FakeClock) -> None:
    blocked = error(400, {"error": {"message": "blocked", "code": "content_filter"}})
    respx.post(OPENAI).mock(return_value=blocked)
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock, policy_overrides={ContentFilteredError: "raise"})
    with pytest.raises(ContentFilteredError):
        await client.complete(MESSAGES)
    bad = error(400, {"error": {"message": "bad request"}})
    respx.post(OPENAI).mock(return_value=bad)
    lenient = make_client(clock, policy_overrides={InvalidRequestError: "next_model"})
    assert (await lenient.complete(MESSAGES)).text == "claude"


def test_bad_overrides_are_refused_at_construction(clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="unknown action"):
        make_client(clock, policy_overrides={ContentFilteredError: "explode"})
    with pytest.raises(ConfigError, match="ProviderError classes"):
        make_client(clock, policy_overrides={ValueError: "raise"})
