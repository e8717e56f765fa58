"""Every failover decision as a log record on ``failover``, and ``FAILOVER_LOG``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    FailoverConfig,
    FailoverManager,
    InvalidRequestError,
    ResilientClient,
    ResilientTransport,
)
from failover.testing import Behavior, Simulator
from tests.conftest import FakeClock

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
KEY_A = "sk-proj-logaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-proj-logbbbbbbbbbbbbbbbbbbb2222"
KEY_C = "sk-ant-logccccccccccccccccccccc3333"
KEYS = (KEY_A, KEY_B, KEY_C)
PROMPT = "the launch code is PINEAPPLE-7731-ZEBRA"
MESSAGES = [{"role": "user", "content": PROMPT}]
ENGINE = "failover.engine"


def ok(text: str = "hi") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        },
    )


def anthropic_ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": [{"type": "text", "text": "claude"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    )


def error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message}}, headers=headers or {})


def rate_limited(key: str = KEY_A) -> httpx.Response:
    # the provider echoes the key: the engine scrubs it before anything logs the message
    return error(429, f"Rate limit reached for key {key}", {"retry-after": "20"})


def by_key(responses: dict[str, httpx.Response]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("authorization", request.headers.get("x-api-key", ""))
        return responses[key.removeprefix("Bearer ")]

    return handler


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(
    clock: FakeClock,
    *,
    keys: tuple[str, ...] = KEYS,
    chain: list[str] | None = None,
    config: FailoverConfig | None = None,
    **options: Any,
) -> ResilientClient:
    names = {KEY_A: ("a", "openai"), KEY_B: ("b", "openai"), KEY_C: ("c", "anthropic")}
    profiles = [AuthProfile(names[key][0], names[key][1], key) for key in keys]
    manager = FailoverManager(config, clock=clock, profiles=profiles)
    return ResilientClient(
        chain or ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
        manager,
        sleep=Sleeps(),
        **options,
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every level, on the ``failover`` logger and the root."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="failover")
    yield caplog
    assert_clean(caplog.records)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k.startswith("failover_")}


def decisions(caplog: pytest.LogCaptureFixture, decision: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "failover_decision", None) == decision]


def assert_clean(records: list[logging.LogRecord]) -> None:
    """No 8-character piece of any key, and no prompt text, anywhere in any record."""
    pieces = {key[i : i + 8] for key in KEYS for i in range(len(key) - 7)}
    pieces |= {PROMPT, "PINEAPPLE"}
    for record in records:
        text = " ".join(
            [record.getMessage(), repr(record.args), *map(repr, fields(record).values())]
        )
        leaked = [piece for piece in pieces if piece in text]
        assert not leaked, f"{leaked} in {record.name}: {text}"


@respx.mock
async def test_rotation_past_a_429_and_fallback_past_a_503(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    respx.post(OPENAI).mock(
        side_effect=by_key({KEY_A: rate_limited(), KEY_B: error(503, "upstream unavailable")})
    )
    respx.post(ANTHROPIC).mock(return_value=anthropic_ok())
    client = make_client(clock, config=FailoverConfig(max_retries=0))
    result = await client.complete(MESSAGES)
    assert result.profile == "c" and len(result.attempts) == 3

    (rotation,) = decisions(logs, "rotate")
    assert rotation.levelno == logging.INFO and rotation.name == ENGINE
    assert fields(rotation) | {"failover_request_id": None} == {
        "failover_decision": "rotate",
        "failover_request_id": None,
        "failover_model": "openai/gpt-4o-mini",
        "failover_profile": "a",
        "failover_to_model": "openai/gpt-4o-mini",
        "failover_to_profile": "b",
        "failover_reason": "rate_limit",
        "failover_status": 429,
    }
    assert "rotated from key a to b after rate_limit 429" in rotation.getMessage()
    assert rotation.failover_request_id.startswith("req-")  # type: ignore[attr-defined]

    (fallback,) = decisions(logs, "fallback")
    assert fallback.levelno == logging.INFO
    assert fields(fallback)["failover_model"] == "openai/gpt-4o-mini"
    assert fields(fallback)["failover_profile"] == "b"
    assert fields(fallback)["failover_to_model"] == "anthropic/claude-haiku-4-5"
    assert fields(fallback)["failover_reason"] == "overloaded"
    assert fields(fallback)["failover_status"] == 503
    assert "fell back" in fallback.getMessage() and "overloaded 503" in fallback.getMessage()

    (cooldown,) = decisions(logs, "cooldown")
    assert cooldown.levelno == logging.INFO
    assert fields(cooldown)["failover_profile"] == "a"
    assert fields(cooldown)["failover_reason"] == "rate_limit"
    assert fields(cooldown)["failover_duration"] == pytest.approx(20)
    assert fields(cooldown)["failover_status"] == 429
    assert "for 20s: rate_limit" in cooldown.getMessage()

    # the whole request: one request id on each of its records
    ids = {r.failover_request_id for r in logs.records if r.name == ENGINE}  # type: ignore[attr-defined]
    assert ids == {rotation.failover_request_id}  # type: ignore[attr-defined]


@respx.mock
async def test_each_attempt_at_debug_with_model_profile_outcome_status_and_elapsed(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    respx.post(OPENAI).mock(side_effect=by_key({KEY_A: rate_limited(), KEY_B: ok()}))
    await make_client(clock).complete(MESSAGES)
    attempts = decisions(logs, "attempt")
    assert [r.levelno for r in attempts] == [logging.DEBUG, logging.DEBUG]
    first, second = map(fields, attempts)
    assert (first["failover_attempt"], second["failover_attempt"]) == (1, 2)
    assert (first["failover_profile"], second["failover_profile"]) == ("a", "b")
    assert (first["failover_outcome"], second["failover_outcome"]) == ("rate_limit", "ok")
    assert (first["failover_status"], second["failover_status"]) == (429, None)
    assert first["failover_model"] == second["failover_model"] == "openai/gpt-4o-mini"
    assert first["failover_elapsed"] >= 0 and first["failover_retry_after"] == 20
    assert "failover_error" not in first  # a provider's message may quote the request back
    assert "attempt 2: openai/gpt-4o-mini via b: ok in" in attempts[1].getMessage()


@respx.mock
async def test_a_retry_with_its_wait_then_the_recovery(
    clock: FakeClock, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a real backoff (the client's sleep only records it)
    monkeypatch.setattr("failover.policy._testing", False)
    respx.post(OPENAI).mock(side_effect=[error(503, "try later"), ok()])
    client = make_client(
        clock, keys=(KEY_A,), chain=["openai/gpt-4o-mini"], config=FailoverConfig(max_retries=2)
    )
    await client.complete(MESSAGES)
    (retry,) = decisions(logs, "retry")
    assert retry.levelno == logging.INFO
    wait = fields(retry)["failover_wait"]
    assert wait > 0 and client._engine.sleep.delays == [wait]  # type: ignore[attr-defined]
    assert fields(retry)["failover_retry"] == 1
    assert fields(retry)["failover_reason"] == "overloaded"
    assert fields(retry)["failover_status"] == 503
    assert fields(retry)["failover_profile"] == "a"
    assert f"in {wait:.3g}s" in retry.getMessage()

    (recovered,) = decisions(logs, "recovered")
    assert recovered.levelno == logging.INFO
    assert fields(recovered)["failover_profile"] == "a"
    assert fields(recovered)["failover_provider"] == "openai"


@respx.mock
async def test_a_dead_key_is_a_warning_and_exhaustion_is_a_warning_with_the_attempts(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    respx.post(OPENAI).mock(
        side_effect=by_key(
            {KEY_A: error(401, f"Incorrect API key provided: {KEY_A}"), KEY_B: rate_limited(KEY_B)}
        )
    )
    respx.post(ANTHROPIC).mock(return_value=error(429, "quota", {"retry-after": "30"}))
    client = make_client(clock, config=FailoverConfig(max_retries=0), wait_for_recovery=False)
    with pytest.raises(AllAttemptsFailed):
        await client.complete(MESSAGES)

    disabled = [r for r in decisions(logs, "cooldown") if r.failover_profile == "a"]  # type: ignore[attr-defined]
    assert [r.levelno for r in disabled] == [logging.WARNING]
    assert fields(disabled[0])["failover_duration"] == float("inf")
    assert fields(disabled[0])["failover_reason"] == "auth"

    (exhausted,) = decisions(logs, "exhausted")
    assert exhausted.levelno == logging.WARNING
    assert fields(exhausted)["failover_attempts"] == 3
    assert fields(exhausted)["failover_wait"] is not None
    message = exhausted.getMessage()
    assert "3 attempts: openai/gpt-4o-mini via a: auth 401 -> rotated" in message
    assert "anthropic/claude-haiku-4-5 via c: rate_limit 429" in message


@respx.mock
async def test_a_failure_no_other_model_can_fix_is_logged_as_raised(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    # the provider quotes the prompt back: the log records must not (the `logs` fixture checks)
    respx.post(OPENAI).mock(return_value=error(400, f"Invalid value in {PROMPT!r}"))
    with pytest.raises(InvalidRequestError):
        await make_client(clock).complete(MESSAGES)
    (raised,) = decisions(logs, "raise")
    assert raised.levelno == logging.INFO
    assert fields(raised)["failover_reason"] == "invalid_request"
    assert fields(raised)["failover_status"] == 400
    assert fields(raised)["failover_model"] == "openai/gpt-4o-mini"
    assert decisions(logs, "exhausted") == []


@respx.mock
async def test_nothing_is_built_or_logged_when_logging_is_off(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="failover")
    respx.post(OPENAI).mock(side_effect=by_key({KEY_A: rate_limited(), KEY_B: ok()}))
    await make_client(clock).complete(MESSAGES)
    assert [r for r in caplog.records if r.name == ENGINE] == []


@respx.mock
async def test_logs_and_hooks_together_each_see_the_decision_once(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    respx.post(OPENAI).mock(side_effect=by_key({KEY_A: rate_limited(), KEY_B: ok()}))
    client = make_client(clock)
    events: list[Any] = []
    client.on_failover(events.append)
    client.on_cooldown(events.append)
    await client.complete(MESSAGES)
    assert [type(e).__name__ for e in events] == ["CooldownEvent", "FailoverEvent"]
    assert len(decisions(logs, "rotate")) == len(decisions(logs, "cooldown")) == 1


async def test_the_transport_logs_through_the_same_engine(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    base = "https://llm.example.test/v1"

    def reply(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == f"Bearer {KEY_A}":
            return rate_limited()
        return ok()

    manager = FailoverManager(
        clock=clock,
        profiles=[
            AuthProfile("a", "openai", KEY_A, base_url=base),
            AuthProfile("b", "openai", KEY_B, base_url=base),
        ],
    )
    transport = ResilientTransport(manager, provider="openai", inner=httpx.MockTransport(reply))
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    request = httpx.Request("POST", f"{base}/chat/completions", json=body)
    response = await transport.handle_async_request(request)
    await response.aread()
    assert response.status_code == 200
    await transport.aclose()
    (rotation,) = decisions(logs, "rotate")
    assert fields(rotation)["failover_profile"] == "a"
    assert fields(rotation)["failover_to_profile"] == "b"
    assert [fields(r)["failover_outcome"] for r in decisions(logs, "attempt")] == [
        "rate_limit",
        "ok",
    ]
    assert len(decisions(logs, "cooldown")) == 1


# -- FAILOVER_LOG ------------------------------------------------------------------------------

SIM_KEYS = ("sk-sim-log-main-key-000000001", "sk-sim-log-backup-key-00000002")

SCRIPT = """
import asyncio, sys
from failover import AuthProfile, ResilientClient

async def main():
    url, *keys = sys.argv[1:]
    profiles = [AuthProfile(n, "openai", k, base_url=url) for n, k in zip(("main", "backup"), keys)]
    async with ResilientClient(["openai/gpt-4o-mini"], profiles) as client:
        result = await client.complete([{"role": "user", "content": "PINEAPPLE secret"}])
    print(result.text)

asyncio.run(main())
"""


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(keys={"openai": list(SIM_KEYS)}) as simulator:
        simulator.script(Behavior("rate_limit", retry_after=30), key=SIM_KEYS[0])
        yield simulator


async def run_script(sim: Simulator, level: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_LOG"}
    if level is not None:
        env["FAILOVER_LOG"] = level
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        sim.base_url("openai"),
        *SIM_KEYS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.strip(), "the request answered"
    return out.decode(), err.decode()


async def test_failover_log_debug_prints_the_records_to_stderr(sim: Simulator) -> None:
    _, err = await run_script(sim, "debug")
    lines = err.splitlines()
    assert any("DEBUG failover.engine: req-1 attempt 1" in line for line in lines), err
    assert any("INFO failover.engine: req-1 openai/gpt-4o-mini: rotated" in line for line in lines)
    assert any("rate_limit" in line and "for 30s" in line for line in lines), err
    assert not any(key[8:16] in err for key in SIM_KEYS) and "PINEAPPLE" not in err


async def test_failover_log_info_leaves_out_the_attempts(sim: Simulator) -> None:
    _, err = await run_script(sim, "info")
    assert "rotated from key main to backup" in err and "DEBUG" not in err


async def test_without_failover_log_nothing_is_printed(sim: Simulator) -> None:
    _, err = await run_script(sim, None)
    assert err == ""


def test_configure_from_environment_attaches_one_handler() -> None:
    from failover.logs import configure_from_environment

    root = logging.getLogger("failover")
    level, handlers = root.level, list(root.handlers)
    try:
        assert configure_from_environment({}) is None
        assert configure_from_environment({"FAILOVER_LOG": "loud"}) is None
        first = configure_from_environment({"FAILOVER_LOG": "info"})
        again = configure_from_environment({"FAILOVER_LOG": "DEBUG"})
        assert first is not None and first is again and again.level == logging.DEBUG
        assert root.level == logging.DEBUG and root.handlers.count(first) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_the_attempt_trail_says_what_came_of_each_attempt() -> None:
    from failover import Attempt
    from failover.logs import trail

    attempts = [
        Attempt("openai/gpt-4o-mini", "main", "rate_limit", 429, 20.0, 0.1),
        Attempt("openai/gpt-4o-mini", "backup", "server", 503, None, 0.1),
        Attempt("openai/gpt-4o-mini", "backup", "server", 503, None, 0.1),
        Attempt("anthropic/claude-haiku-4-5", None, "unsupported", None, None, 0.0),
        Attempt("groq/llama-3.1-8b-instant", "g", "ok", None, None, 0.2),
    ]
    assert trail(attempts) == (
        "5 attempts: openai/gpt-4o-mini via main: rate_limit 429 -> rotated; "
        "openai/gpt-4o-mini via backup: server 503 -> retried; "
        "openai/gpt-4o-mini via backup: server 503 -> fell back; "
        "anthropic/claude-haiku-4-5: unsupported -> skipped; "
        "groq/llama-3.1-8b-instant via g: ok"
    )
    assert trail(attempts[-1:]) == "1 attempt: groq/llama-3.1-8b-instant via g: ok"
    assert json.dumps(trail([]))  # no attempts: still a line
