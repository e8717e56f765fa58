"""The simulator: every scripted behaviour is observable on the wire (raw httpx, no client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import httpx
import pytest

from failover.classify import parse_duration, rate_limit_headroom
from failover.testing import Behavior, Simulator
from failover.testing.simulator import KeyUsage

KEY = "sk-sim-key-000000001"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    keys = {"openai": [KEY], "anthropic": [KEY], "gemini": [KEY]}
    async with Simulator(keys=keys) as simulator, httpx.AsyncClient() as http:
        simulator.http = http  # type: ignore[attr-defined]
        yield simulator


async def post(
    sim: Simulator,
    provider: str = "openai",
    *,
    key: str = KEY,
    stream: bool = False,
    body: dict | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    payload = dict(body or BODY, stream=stream)
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    if provider == "anthropic":
        return await http.post(
            f"{sim.base_url('anthropic')}/v1/messages",
            json={"max_tokens": 100, **payload},
            headers={"x-api-key": key},
            timeout=timeout,
        )
    if provider == "gemini":
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return await http.post(
            f"{sim.base_url('gemini')}/v1beta/models/gemini-2.5-flash-lite:{action}",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": key},
            timeout=timeout,
        )
    return await http.post(
        f"{sim.base_url(provider)}/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}"},
        timeout=timeout,
    )


async def test_healthy_reply_and_stream_in_openai_format(sim: Simulator) -> None:
    reply = await post(sim)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"].startswith("Simulated answer")
    streamed = await post(sim, stream=True)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith("data: [DONE]") and '"usage"' in streamed.text


async def test_wrong_key_gets_the_providers_401_body(sim: Simulator) -> None:
    openai = await post(sim, key="sk-wrong-000000000")
    assert openai.status_code == 401 and openai.json()["error"]["code"] == "invalid_api_key"
    anthropic = await post(sim, "anthropic", key="nope")
    assert anthropic.status_code == 401
    assert anthropic.json()["error"]["type"] == "authentication_error"
    gemini = await post(sim, "gemini", key="nope")
    assert gemini.status_code == 400 and "API key not valid" in gemini.json()["error"]["message"]


async def test_rate_limit_has_retry_after_and_headers(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=7), key=KEY)
    reply = await post(sim)
    assert reply.status_code == 429 and reply.headers["retry-after"] == "7"
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    gemini = await post(sim, "gemini")
    details = gemini.json()["error"]["details"]
    assert gemini.status_code == 429 and details[0]["retryDelay"] == "7s"


async def test_rate_limit_after_n_requests_per_window(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", after=2, window=30), key=KEY)
    statuses = [(await post(sim)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    first = await post(sim)
    assert 0 < float(first.headers["retry-after"]) <= 30


@pytest.mark.parametrize(
    ("kind", "provider", "status", "marker"),
    [
        ("quota", "openai", 429, "insufficient_quota"),
        ("quota", "anthropic", 429, "enforced_spend_limit_reached"),
        ("quota", "gemini", 429, "PerDay"),
        ("overloaded", "anthropic", 529, "overloaded_error"),
        ("overloaded", "gemini", 503, "UNAVAILABLE"),
        ("server_error", "openai", 500, "server_error"),
        ("context_limit", "openai", 400, "context_length_exceeded"),
        ("context_limit", "anthropic", 400, "prompt is too long"),
    ],
)
async def test_error_behaviours_use_each_providers_body(
    sim: Simulator, kind: str, provider: str, status: int, marker: str
) -> None:
    sim.script(kind, provider=provider)
    reply = await post(sim, provider)
    assert reply.status_code == status and marker in reply.text


async def test_context_limit_only_above_the_prompt_size(sim: Simulator) -> None:
    sim.script(Behavior("context_limit", max_prompt_chars=100), model="gpt-4o-mini")
    assert (await post(sim)).status_code == 200
    long = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 200}]}
    assert (await post(sim, body=long)).status_code == 400


async def test_content_block_arrives_as_a_200(sim: Simulator) -> None:
    sim.script("content_block", provider="openai")
    sim.script("content_block", provider="gemini")
    assert (await post(sim)).json()["choices"][0]["finish_reason"] == "content_filter"
    gemini = await post(sim, "gemini")
    assert gemini.status_code == 200 and gemini.json()["promptFeedback"]["blockReason"] == "SAFETY"


async def test_truncated_stream_has_no_terminator(sim: Simulator) -> None:
    sim.script("truncate", key=KEY)
    reply = await post(sim, stream=True)
    assert reply.status_code == 200 and "[DONE]" not in reply.text
    anthropic = await post(sim, "anthropic", stream=True)
    assert "message_stop" not in anthropic.text


async def test_midstream_error_event_after_a_200(sim: Simulator) -> None:
    sim.script("midstream_error", provider="anthropic")
    reply = await post(sim, "anthropic", stream=True)
    assert reply.status_code == 200 and "event: error" in reply.text
    assert reply.text.index("content_block_delta") < reply.text.index("event: error")


async def test_malformed_json_and_connection_reset(sim: Simulator) -> None:
    sim.script("malformed", key=KEY)
    reply = await post(sim)
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    sim.script("reset", key=KEY)
    with pytest.raises(httpx.TransportError):
        await post(sim)


async def test_hang_never_answers(sim: Simulator) -> None:
    sim.script("hang", key=KEY)
    with pytest.raises(httpx.ReadTimeout):
        await post(sim, timeout=0.3)


async def test_scheduled_outage_starts_and_ends(sim: Simulator) -> None:
    sim.outage("openai", start=0.5, end=1.5)
    assert (await post(sim)).status_code == 200
    await asyncio.sleep(0.8)
    assert (await post(sim)).status_code == 503
    await asyncio.sleep(1.0)
    assert (await post(sim)).status_code == 200


async def test_chaos_is_seeded_and_mixes_behaviours(sim: Simulator) -> None:
    async def run(seed: int) -> list[int]:
        sim.chaos({"rate_limit": 0.3, "server_error": 0.2}, seed=seed)
        return [(await post(sim)).status_code for _ in range(30)]

    first, second = await run(7), await run(7)
    assert first == second and {200, 429, 500} <= set(first)
    with pytest.raises(ValueError, match="more than 1"):
        sim.chaos({"rate_limit": 0.8, "quota": 0.5})


async def test_records_what_it_received_and_script_can_change_while_running(sim: Simulator) -> None:
    await post(sim)
    sim.script("overloaded", model="gpt-4o-mini")
    assert (await post(sim)).status_code == 503
    sim.script(None, model="gpt-4o-mini")
    assert (await post(sim)).status_code == 200
    assert sim.calls(key=KEY, model="gpt-4o-mini") == 3 and sim.calls(key="other") == 0
    assert [r.outcome for r in sim.requests] == ["healthy", "overloaded", "healthy"]


async def test_control_endpoint_scripts_remotely(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sim.root_url}/_sim/script", json={"behavior": {"kind": "quota"}, "key": KEY}
        )
        assert reply.status_code == 200
        bad = await http.post(f"{sim.root_url}/_sim/script", json={"behavior": {"kind": "x"}})
        assert bad.status_code == 400 and "unknown behaviour" in bad.text
    assert (await post(sim)).json()["error"]["code"] == "insufficient_quota"


async def test_ollama_native_ndjson_stream() -> None:
    async with Simulator() as sim, httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sim.base_url('ollama-native')}/api/chat",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
        )
        lines = [json.loads(line) for line in reply.text.splitlines()]
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] > 0


async def test_sim_calls_lists_every_request_with_keys_masked(sim: Simulator) -> None:
    await post(sim, "openai")
    await post(sim, "anthropic", key="sk-wrong-key-99999")
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    calls = (await http.get(f"{sim.root_url}/_sim/calls")).json()["calls"]
    assert [(c["provider"], c["outcome"]) for c in calls] == [
        ("openai", "healthy"),
        ("anthropic", "invalid_key"),
    ]
    assert calls[0]["key"] == "...0001" and KEY not in json.dumps(calls)
    assert calls[0]["model"] == "gpt-4o-mini" and calls[0]["stream"] is False


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_scripted_tool_rounds_answer_in_each_wire_format(
    sim: Simulator, provider: str
) -> None:
    sim.script(Behavior(tool_calls=[("lookup", {"q": "x"})]), provider=provider)
    reply = (await post(sim, provider)).json()
    if provider == "openai":
        call = reply["choices"][0]["message"]["tool_calls"][0]["function"]
        assert call == {"name": "lookup", "arguments": '{"q": "x"}'}
        assert reply["choices"][0]["finish_reason"] == "tool_calls"
    elif provider == "anthropic":
        block = reply["content"][0]
        assert (block["type"], block["name"], block["input"]) == ("tool_use", "lookup", {"q": "x"})
        assert reply["stop_reason"] == "tool_use"
    else:
        part = reply["candidates"][0]["content"]["parts"][0]
        assert part["functionCall"] == {"name": "lookup", "args": {"q": "x"}}


@pytest.mark.parametrize(
    ("provider", "body", "marker"),
    [
        (
            "anthropic",
            {"max_tokens": 5, "messages": [{"role": "user", "content": None}]},
            "messages.0.content: Input should be a valid list",
        ),
        (
            "anthropic",
            {"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            "anthropic",
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop": ["a"]},
            "stop: Extra inputs are not permitted",
        ),
        (
            "anthropic",
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "1"}],
                    }
                ],
            },
            "unexpected `tool_use_id`",
        ),
        (
            "gemini",
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "Please use a valid role: user, model.",
        ),
        (
            "gemini",
            {
                "contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "Unknown name \\\"type\\\" at 'tools[0]'",
        ),
        (
            "openai",
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]},
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            "openai",
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 3},
            "Unrecognized request argument supplied: top_k",
        ),
    ],
)
async def test_what_the_real_apis_reject_gets_each_providers_own_400(
    sim: Simulator, provider: str, body: dict, marker: str
) -> None:
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    if provider == "anthropic":
        reply = await http.post(
            f"{sim.base_url(provider)}/v1/messages", json=body, headers={"x-api-key": KEY}
        )
        assert reply.json()["error"]["type"] == "invalid_request_error"
    elif provider == "gemini":
        reply = await http.post(
            f"{sim.base_url(provider)}/v1beta/models/gemini-2.5-flash:generateContent",
            json=body,
            headers={"x-goog-api-key": KEY},
        )
        assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    else:
        reply = await http.post(
            f"{sim.base_url(provider)}/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert reply.json()["error"]["type"] == "invalid_request_error"
    assert reply.status_code == 400 and marker in reply.text
    assert sim.requests[-1].outcome == "invalid_request"


async def test_tool_rounds_can_be_scripted_over_http(sim: Simulator) -> None:
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    spec = {"behavior": {"tool_calls": [["lookup", {"q": "x"}]]}, "provider": "openai"}
    assert (await http.post(f"{sim.root_url}/_sim/script", json=spec)).json() == {"ok": True}
    message = (await post(sim, "openai")).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "lookup"


# -- token-rate limits ------------------------------------------------------------------------


class Clock:
    """A hand-moved monotonic clock for the simulator's token buckets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def limited() -> AsyncIterator[tuple[Simulator, Clock]]:
    clock = Clock()
    keys = {"openai": [KEY], "anthropic": [KEY], "gemini": [KEY]}
    async with (
        Simulator(keys=keys, default=Behavior(reply="one two three"), clock=clock) as simulator,
        httpx.AsyncClient() as http,
    ):
        simulator.http = http  # type: ignore[attr-defined]
        yield simulator, clock


def prompt(tokens: int) -> dict:
    """A chat body whose input the simulator counts as ``tokens`` tokens (4 chars each)."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (4 * tokens)}]}


async def test_requests_over_rpm_get_a_429_until_the_bucket_refills(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, clock = limited
    sim.set_limits(KEY, rpm=2)
    first, second, third = [await post(sim) for _ in range(3)]
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.json()["error"]["type"] == "requests"  # OpenAI's 429 body, unchanged
    assert float(third.headers["retry-after"]) == pytest.approx(30.0)  # 2 per minute
    assert parse_duration(third.headers["x-ratelimit-reset-requests"]) == pytest.approx(60.0)
    clock.now += 29.9
    assert (await post(sim)).status_code == 429
    clock.now += 0.1
    assert (await post(sim)).status_code == 200
    assert sim.usage(KEY) == KeyUsage(requests=3, tokens=3 * (1 + 3), rate_limited=2)
    assert [r.outcome for r in sim.requests] == [
        "healthy",
        "healthy",
        "rate_limit",
        "rate_limit",
        "healthy",
    ]


async def test_tokens_counted_are_input_plus_output_and_refill_continuously(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, clock = limited
    sim.set_limits(KEY, tpm=250)
    reply = await post(sim, body=prompt(100))
    usage = reply.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (100, 3)
    assert reply.headers["x-ratelimit-limit-tokens"] == "250"
    assert reply.headers["x-ratelimit-remaining-tokens"] == "147"
    assert "x-ratelimit-remaining-requests" not in reply.headers  # no rpm limit set
    assert (await post(sim, body=prompt(100))).headers["x-ratelimit-remaining-tokens"] == "44"
    refused = await post(sim, body=prompt(100))
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-tokens"] == "44"
    wait = float(refused.headers["retry-after"])  # 56 tokens at 250 per minute
    assert wait == pytest.approx(56 * 60 / 250, abs=0.002)
    small = await post(sim, body=prompt(40))  # a smaller request fits what is left
    assert small.status_code == 200 and small.headers["x-ratelimit-remaining-tokens"] == "1"
    clock.now += 60.0
    assert (await post(sim, body=prompt(100))).headers["x-ratelimit-remaining-tokens"] == "147"
    assert sim.remaining(KEY) == (pytest.approx(147.0), None)
    assert sim.usage(KEY) == KeyUsage(requests=4, tokens=3 * 103 + 43, rate_limited=1)


async def test_output_tokens_can_leave_the_bucket_in_debt_repaid_before_the_next_request(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, clock = limited
    sim.script(Behavior(reply=" ".join(["word"] * 50)), key=KEY)
    sim.set_limits(KEY, tpm=120)
    reply = await post(sim, body=prompt(100))
    assert reply.status_code == 200 and reply.headers["x-ratelimit-remaining-tokens"] == "0"
    assert sim.remaining(KEY)[0] == pytest.approx(-30.0)
    refused = await post(sim, body=prompt(100))
    assert float(refused.headers["retry-after"]) == pytest.approx(130 * 60 / 120, abs=0.002)
    clock.now += 65.0
    assert (await post(sim, body=prompt(100))).status_code == 200


async def test_a_request_larger_than_the_capacity_is_served_only_from_a_full_bucket(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, clock = limited
    sim.set_limits(KEY, tpm=60)
    assert (await post(sim, body=prompt(100))).status_code == 200  # full: served
    assert sim.remaining(KEY)[0] == pytest.approx(60 - 103)
    refused = await post(sim, body=prompt(100))  # needs the whole 60 back: 103 tokens
    assert float(refused.headers["retry-after"]) == pytest.approx(103.0, abs=0.002)
    clock.now += 103.0
    assert (await post(sim, body=prompt(100))).status_code == 200


async def test_anthropic_replies_carry_anthropic_ratelimit_headers(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, _ = limited
    sim.set_limits(KEY, tpm=1000, rpm=1)
    body = {**prompt(100), "model": "claude-haiku-4-5"}
    reply = await post(sim, "anthropic", body=body)
    usage = reply.json()["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (100, 3)
    assert reply.headers["anthropic-ratelimit-tokens-limit"] == "1000"
    assert reply.headers["anthropic-ratelimit-tokens-remaining"] == "897"
    assert reply.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert not any(name.startswith("x-ratelimit") for name in reply.headers)
    reset = datetime.fromisoformat(reply.headers["anthropic-ratelimit-requests-reset"])
    assert 59 < (reset - datetime.now(timezone.utc)).total_seconds() <= 60
    refused = await post(sim, "anthropic", body=body)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert float(refused.headers["retry-after"]) == pytest.approx(60.0)
    headroom = rate_limit_headroom(refused.headers)
    assert headroom is not None and headroom.requests_remaining == 0
    assert headroom.tokens_remaining == 897


async def test_gemini_over_its_limit_gets_resource_exhausted_with_retry_delay(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, _ = limited
    sim.set_limits(KEY, rpm=1)
    assert (await post(sim, "gemini")).status_code == 200
    refused = await post(sim, "gemini")
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    assert parse_duration(error["details"][0]["retryDelay"]) == pytest.approx(60.0)
    assert "retry-after" not in refused.headers  # Gemini sends none


async def test_streams_responses_and_embeddings_count_the_usage_their_replies_report(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, _ = limited
    sim.set_limits(KEY, tpm=100_000)
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    auth = {"authorization": f"Bearer {KEY}"}
    streamed = await post(sim, stream=True, body=prompt(20))
    last = json.loads(streamed.text.split("data: ")[-2])
    reported = last["usage"]["total_tokens"]
    response = await http.post(
        f"{sim.base_url('openai')}/responses",
        json={"model": "gpt-5-mini", "input": "y" * 80, "reasoning": {"effort": "low"}},
        headers=auth,
    )
    reported += response.json()["usage"]["total_tokens"]
    assert response.json()["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    embedded = await http.post(
        f"{sim.base_url('openai')}/embeddings",
        json={"model": "text-embedding-3-small", "input": ["z" * 40, "w" * 40]},
        headers=auth,
    )
    reported += embedded.json()["usage"]["total_tokens"]
    assert sim.usage(KEY) == KeyUsage(requests=3, tokens=reported)
    assert embedded.headers["x-ratelimit-remaining-tokens"] == str(100_000 - reported)


async def test_scripted_failures_and_invalid_requests_take_nothing_from_the_limits(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, _ = limited
    sim.set_limits(KEY, tpm=1000, rpm=1)
    sim.script("overloaded", key=KEY)
    assert (await post(sim)).status_code == 503
    sim.script(None, key=KEY)
    bad = {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 3}
    assert (await post(sim, body=bad)).status_code == 400
    assert (await post(sim, key="sk-wrong-000000000")).status_code == 401
    assert sim.usage(KEY) == KeyUsage()
    assert (await post(sim)).status_code == 200  # its one request is still there


async def test_limits_are_per_key_validated_lifted_and_listed_over_http(
    limited: tuple[Simulator, Clock],
) -> None:
    sim, _ = limited
    other = "sk-sim-key-000000002"
    sim.add_key("openai", other)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            sim.set_limits(KEY, tpm=bad)  # type: ignore[arg-type]
    sim.set_limits(KEY, rpm=1)
    assert (await post(sim)).status_code == 200
    assert (await post(sim)).status_code == 429
    assert (await post(sim, key=other)).status_code == 200  # another key, its own buckets
    assert sim.usage(other) == KeyUsage() and sim.remaining(other) == (None, None)
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    listed = (await http.get(f"{sim.root_url}/_sim/usage")).json()
    assert listed == {"keys": {"...0001": {"requests": 1, "tokens": 4, "rate_limited": 1}}}
    sim.set_limits(KEY)  # lifted
    assert [(await post(sim)).status_code for _ in range(3)] == [200, 200, 200]


async def test_limits_given_to_the_constructor_use_the_real_clock() -> None:
    async with Simulator(limits={KEY: (None, 1)}) as sim, httpx.AsyncClient() as http:
        sim.http = http  # type: ignore[attr-defined]
        assert [(await post(sim)).status_code for _ in range(2)] == [200, 429]
        assert sim.usage(KEY).rate_limited == 1
