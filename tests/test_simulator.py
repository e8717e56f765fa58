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


# -- the prompt cache -----------------------------------------------------------------------

SYSTEM = "You answer questions about the incident report. " * 8
SYSTEM_TOKENS = len(SYSTEM) // 4  # the simulator counts 4 characters a token
OTHER_KEY = "sk-sim-key-000000002"


def chat(*contents: str, model: str = "gpt-4o-mini", **extra: object) -> dict:
    """A Chat Completions body: a system prompt, then turns (user, assistant, user, ...)."""
    messages = [{"role": "system", "content": SYSTEM}]
    messages += [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(contents)
    ]
    return {"model": model, "messages": messages, **extra}


async def raw(
    sim: Simulator, path: str, body: dict, headers: dict[str, str], *, stream: bool = False
) -> httpx.Response:
    http: httpx.AsyncClient = sim.http  # type: ignore[attr-defined]
    return await http.post(f"{sim.root_url}/{path}", json=body, headers=headers, timeout=5.0)


async def openai_usage(sim: Simulator, body: dict, key: str = KEY) -> dict:
    reply = await raw(sim, "openai/v1/chat/completions", body, {"authorization": f"Bearer {key}"})
    return reply.json()["usage"]


async def test_a_prefix_the_same_key_sent_is_reported_cached_in_openais_usage(
    sim: Simulator,
) -> None:
    sim.add_key("openai", OTHER_KEY)
    first = await openai_usage(sim, chat("What broke?"))
    again = await openai_usage(sim, chat("What broke?"))
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    # all but the last message: the system prompt
    assert again["prompt_tokens_details"]["cached_tokens"] == SYSTEM_TOKENS
    assert (
        again["prompt_tokens"] == first["prompt_tokens"] == (len(SYSTEM) + 11) // 4
    )  # cached included
    # another key, another model: their own caches, cold
    assert (await openai_usage(sim, chat("What broke?"), OTHER_KEY))["prompt_tokens_details"][
        "cached_tokens"
    ] == 0
    cold = await openai_usage(sim, chat("What broke?", model="gpt-4o"))
    assert cold["prompt_tokens_details"]["cached_tokens"] == 0


async def test_the_next_turn_reads_the_whole_previous_prompt_message_by_message(
    sim: Simulator,
) -> None:
    turn1 = await openai_usage(sim, chat("What broke?"))
    turn2 = await openai_usage(sim, chat("What broke?", "The disk.", "Why?"))
    assert turn2["prompt_tokens_details"]["cached_tokens"] == turn1["prompt_tokens"]
    # a conversation that changes an earlier message reads only up to the change
    changed = await openai_usage(sim, chat("What else broke?", "The disk.", "Why?"))
    assert changed["prompt_tokens_details"]["cached_tokens"] == SYSTEM_TOKENS
    # tools are part of the prefix: other tools, nothing read
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools = await openai_usage(sim, chat("What broke?", tools=tools))
    assert with_tools["prompt_tokens_details"]["cached_tokens"] == 0


async def test_a_cached_prefix_expires_its_ttl_after_its_last_use() -> None:
    clock = Clock()
    async with (
        Simulator(clock=clock, cache_ttl=300.0) as simulator,
        httpx.AsyncClient() as http,
    ):
        simulator.http = http  # type: ignore[attr-defined]

        async def cached() -> int:
            return int(
                (await openai_usage(simulator, chat("hi")))["prompt_tokens_details"][
                    "cached_tokens"
                ]
            )

        assert await cached() == 0
        clock.now += 299.0
        assert await cached() == SYSTEM_TOKENS  # a use refreshes it ...
        clock.now += 299.0
        assert await cached() == SYSTEM_TOKENS
        clock.now += 300.5
        assert await cached() == 0  # ... and 300 s without one forget it
    async with Simulator(cache_ttl=0) as uncached, httpx.AsyncClient() as http:
        uncached.http = http  # type: ignore[attr-defined]
        for _ in range(2):
            usage = await openai_usage(uncached, chat("hi"))
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    with pytest.raises(ValueError, match="cache_ttl"):
        Simulator(cache_ttl=-1)


async def test_openai_and_anthropic_streams_report_cached_tokens_where_their_apis_do(
    sim: Simulator,
) -> None:
    await openai_usage(sim, chat("What broke?"))
    streamed = await raw(
        sim,
        "openai/v1/chat/completions",
        chat("What broke?", stream=True, stream_options={"include_usage": True}),
        {"authorization": f"Bearer {KEY}"},
    )
    usage = [
        json.loads(line[6:])["usage"]
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and '"usage"' in line
    ]
    assert usage[-1]["prompt_tokens_details"]["cached_tokens"] == SYSTEM_TOKENS
    body = anthropic_body(marked=True, stream=True)
    await raw(sim, "anthropic/v1/messages", body, {"x-api-key": KEY})
    again = await raw(sim, "anthropic/v1/messages", body, {"x-api-key": KEY})
    start = next(
        json.loads(line[6:])
        for line in again.text.splitlines()
        if line.startswith("data: ") and "message_start" in line
    )
    assert start["message"]["usage"]["cache_read_input_tokens"] > 0


def anthropic_body(*, marked: bool, turns: tuple[str, ...] = ("What broke?",), **extra: object):
    """An Anthropic body; ``marked``: a cache_control breakpoint on the system prompt."""
    block: dict = {"type": "text", "text": SYSTEM}
    if marked:
        block["cache_control"] = {"type": "ephemeral"}
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(turns)
    ]
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "system": [block],
        "messages": messages,
        **extra,
    }


async def anthropic_usage(sim: Simulator, body: dict, key: str = KEY) -> dict:
    reply = await raw(sim, "anthropic/v1/messages", body, {"x-api-key": key})
    assert reply.status_code == 200, reply.text
    return reply.json()["usage"]


async def test_anthropic_caches_only_up_to_a_breakpoint_and_reports_writes_and_reads(
    sim: Simulator,
) -> None:
    for _ in range(2):  # no cache_control anywhere: nothing is cached, as Anthropic documents
        plain = await anthropic_usage(sim, anthropic_body(marked=False))
    assert plain["cache_read_input_tokens"] == plain["cache_creation_input_tokens"] == 0
    sim.add_key("anthropic", OTHER_KEY)
    body = anthropic_body(marked=True)
    system_tokens = len(str(body["system"])) // 4
    written = await anthropic_usage(sim, body)
    read = await anthropic_usage(sim, body)
    assert written["cache_creation_input_tokens"] == system_tokens
    assert written["cache_read_input_tokens"] == 0
    assert read["cache_read_input_tokens"] == system_tokens
    assert read["cache_creation_input_tokens"] == 0
    # input_tokens leaves out what was read or written: the same rest both times
    assert read["input_tokens"] == written["input_tokens"] > 0
    assert plain["input_tokens"] > read["input_tokens"]
    assert (await anthropic_usage(sim, body, OTHER_KEY))["cache_read_input_tokens"] == 0


async def test_anthropic_reads_the_previous_turns_breakpoint_and_writes_up_to_its_own(
    sim: Simulator,
) -> None:
    def turn(*turns: str) -> dict:
        body = anthropic_body(marked=False, turns=turns)
        last = body["messages"][-1]
        last["content"] = [
            {"type": "text", "text": last["content"], "cache_control": {"type": "ephemeral"}}
        ]
        return body

    first = await anthropic_usage(sim, turn("What broke?"))
    body = turn("What broke?", "The disk.", "Why did it?")
    second = await anthropic_usage(sim, body)
    assert first["cache_read_input_tokens"] == 0 and first["cache_creation_input_tokens"] > 0
    assert first["input_tokens"] == 0  # everything up to the breakpoint on the last block
    # the earlier breakpoint's prefix, read (its marker moved on, and a string is the same
    # text block: neither changes a prefix), counted as this request counts it
    assert second["cache_read_input_tokens"] == (len(str(body["system"])) + 11) // 4
    # the new turns, written up to the new breakpoint
    assert second["cache_creation_input_tokens"] > 0 and second["input_tokens"] == 0
    # Anthropic's top-level cache_control puts the breakpoint on the last block
    auto = anthropic_body(marked=False, cache_control={"type": "ephemeral"})
    await anthropic_usage(sim, auto)
    assert (await anthropic_usage(sim, auto))["cache_read_input_tokens"] > 0


async def test_gemini_and_responses_report_cached_tokens_in_their_own_fields(
    sim: Simulator,
) -> None:
    contents = [
        {"role": "user", "parts": [{"text": SYSTEM}]},
        {"role": "model", "parts": [{"text": "Noted."}]},
        {"role": "user", "parts": [{"text": "What broke?"}]},
    ]
    url = "gemini/v1beta/models/gemini-2.5-flash-lite"
    headers = {"x-goog-api-key": KEY}
    first = await raw(sim, f"{url}:generateContent", {"contents": contents}, headers)
    assert "cachedContentTokenCount" not in first.json()["usageMetadata"]
    streamed = await raw(
        sim, f"{url}:streamGenerateContent?alt=sse", {"contents": contents}, headers
    )
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line[:6] == "data: "]
    meta = events[-1]["usageMetadata"]
    assert meta["cachedContentTokenCount"] == (len(SYSTEM) + 6) // 4
    assert meta["promptTokenCount"] == (len(SYSTEM) + 6 + 11) // 4  # the cached part included

    body = {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": "What broke?"}
    auth = {"authorization": f"Bearer {KEY}"}
    response = (await raw(sim, "openai/v1/responses", body, auth)).json()
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 0
    follow = {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": "Why?"}
    follow["previous_response_id"] = response["id"]
    usage = (await raw(sim, "openai/v1/responses", follow, auth)).json()["usage"]
    # the earlier response's whole input (instructions and question) was read from the cache
    assert usage["input_tokens_details"]["cached_tokens"] == response["usage"]["input_tokens"]


async def test_the_client_sees_cached_tokens_at_the_cached_price() -> None:
    from failover import AuthProfile, ResilientClient, get_model_entry

    async with Simulator() as simulator:
        profile = AuthProfile("a", "openai", KEY, base_url=simulator.base_url("openai"))
        async with ResilientClient(["openai/gpt-4o-mini"], [profile]) as client:
            messages = chat("What broke?")["messages"]
            cold = await client.complete(messages)
            warm = await client.complete(messages)
    assert cold.usage is not None and warm.usage is not None
    assert cold.usage.cache_read_tokens == 0 and warm.usage.cache_read_tokens == SYSTEM_TOKENS
    assert warm.usage.input_tokens == cold.usage.input_tokens - SYSTEM_TOKENS  # the rest, uncached
    entry = get_model_entry("openai", "gpt-4o-mini")
    assert entry is not None
    assert warm.cost_usd == pytest.approx(entry.calculate_cost(warm.usage))
    assert warm.cost_usd is not None and cold.cost_usd is not None
    assert warm.cost_usd < cold.cost_usd


async def test_bedrock_caches_up_to_a_cache_point() -> None:
    from failover import AuthProfile, ResilientClient
    from failover.testing.cloud_sim import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY

    model = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    marked = [
        {"role": "system", "content": SYSTEM, "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "What broke?"},
    ]
    async with Simulator() as simulator:
        profile = AuthProfile(
            "aws",
            "bedrock",
            f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}",
            base_url=simulator.base_url("bedrock"),
            region="us-east-1",
        )
        async with ResilientClient([model], [profile]) as client:
            plain = [await client.complete(marked[1:]) for _ in range(2)][-1]
            written = await client.complete(marked)
            read = await client.complete(marked)
    assert plain.usage is not None and written.usage is not None and read.usage is not None
    assert plain.usage.cache_read_tokens == plain.usage.cache_write_tokens == 0  # no cachePoint
    assert written.usage.cache_write_tokens == len(SYSTEM) // 4 == read.usage.cache_read_tokens
    assert read.usage.cache_write_tokens == 0


# -- a stream cut after N content deltas ----------------------------------------------------

REPLY = "one two three four five six seven eight nine ten"  # five deltas of two words


def deltas_in(wire: str, text: str) -> list[str]:
    """The content deltas of a raw stream, in order."""
    found: list[str] = []
    for line in text.splitlines():
        data = line[6:] if line.startswith("data: ") else line
        if not data.startswith("{"):
            continue
        event = json.loads(data)
        if wire == "openai":
            choices = event.get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                found.append(choices[0]["delta"]["content"])
        elif wire == "anthropic":
            if event.get("type") == "content_block_delta":
                found.append(event["delta"]["text"])
        elif wire == "gemini":
            for candidate in event.get("candidates", []):
                found += [p["text"] for p in candidate["content"]["parts"] if p.get("text")]
        elif wire == "ollama" and not event.get("done") and event.get("message", {}).get("content"):
            found.append(event["message"]["content"])
    return found


async def stream_raw(sim: Simulator, wire: str) -> httpx.Response:
    messages = [{"role": "user", "content": "count"}]
    if wire == "anthropic":
        body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": messages}
        return await raw(sim, "anthropic/v1/messages", {**body, "stream": True}, {"x-api-key": KEY})
    if wire == "gemini":
        return await raw(
            sim,
            "gemini/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": "count"}]}]},
            {"x-goog-api-key": KEY},
        )
    if wire == "ollama":
        return await raw(sim, "ollama/api/chat", {"model": "llama3.2", "messages": messages}, {})
    body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
    return await raw(sim, "openai/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"})


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini", "ollama"])
@pytest.mark.parametrize("after", [0, 1, 3, 9])
async def test_a_stream_is_cut_after_the_scripted_number_of_content_deltas(
    sim: Simulator, wire: str, after: int
) -> None:
    sim.script(Behavior("truncate", after=after, reply=REPLY), provider=wire)
    cut = await stream_raw(sim, wire)
    words = REPLY.split()
    kept = deltas_in(wire, cut.text)
    assert len(kept) == min(after, 5)
    assert "".join(kept).split() == words[: 2 * min(after, 5)]
    assert "[DONE]" not in cut.text and "message_stop" not in cut.text
    assert '"done": true' not in cut.text and "finishReason" not in cut.text
    sim.script(Behavior("midstream_error", after=after, reply=REPLY), provider=wire)
    failed = await stream_raw(sim, wire)
    assert len(deltas_in(wire, failed.text)) == min(after, 5)
    assert '"error"' in failed.text.strip().splitlines()[-1]


async def test_a_responses_stream_and_a_bedrock_stream_are_cut_after_n_deltas(
    sim: Simulator,
) -> None:
    from failover import AuthProfile, ResilientClient, StreamInterrupted
    from failover.testing.cloud_sim import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY

    sim.script(Behavior("midstream_error", after=2, reply=REPLY), key=KEY)
    body = {"model": "gpt-4o-mini", "input": "count", "stream": True}
    reply = await raw(sim, "openai/v1/responses", body, {"authorization": f"Bearer {KEY}"})
    names = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    assert names.count("response.output_text.delta") == 2 and names[-1] == "response.failed"

    sim.script(Behavior("truncate", after=3, reply=REPLY), provider="bedrock")
    profile = AuthProfile(
        "aws",
        "bedrock",
        f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}",
        base_url=sim.base_url("bedrock"),
        region="us-east-1",
    )
    model = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    texts: list[str] = []

    async def read(client: ResilientClient) -> None:
        async for chunk in client.stream([{"role": "user", "content": "count"}]):
            texts.append(chunk.text)

    async with ResilientClient([model], [profile], wait_for_recovery=False) as client:
        with pytest.raises(StreamInterrupted):
            await read(client)
    assert "".join(texts).split() == REPLY.split()[:6]


def test_a_cut_needs_a_whole_number_of_deltas() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="after"):
            Behavior("truncate", after=bad)  # type: ignore[arg-type]


# -- JSON that does not parse, or does not match the schema ---------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["big", "small"]}},
    },
    "required": ["city", "population", "tags"],
    "additionalProperties": False,
}


def json_request(wire: str) -> tuple[str, dict, dict[str, str]]:
    """(path, body, headers) of a request for JSON matching ``SCHEMA`` on ``wire``."""
    messages = [{"role": "user", "content": "a city"}]
    if wire == "anthropic":
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": messages,
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        }
        return "anthropic/v1/messages", body, {"x-api-key": KEY}
    if wire == "gemini":
        body = {
            "contents": [{"role": "user", "parts": [{"text": "a city"}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": SCHEMA,
            },
        }
        path = "gemini/v1beta/models/gemini-2.5-flash-lite:generateContent"
        return path, body, {"x-goog-api-key": KEY}
    if wire == "responses":
        form = {"type": "json_schema", "name": "city", "schema": SCHEMA, "strict": True}
        body = {"model": "gpt-4o-mini", "input": "a city", "text": {"format": form}}
        return "openai/v1/responses", body, {"authorization": f"Bearer {KEY}"}
    form = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}}
    body = {"model": "gpt-4o-mini", "messages": messages, "response_format": form}
    return "openai/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"}


def text_of(wire: str, reply: dict) -> str:
    if wire == "anthropic":
        return str(reply["content"][0]["text"])
    if wire == "gemini":
        return str(reply["candidates"][0]["content"]["parts"][0]["text"])
    if wire == "responses":
        return str(reply["output"][0]["content"][0]["text"])
    return str(reply["choices"][0]["message"]["content"])


@pytest.mark.parametrize("wire", ["openai", "responses", "anthropic", "gemini"])
async def test_json_answers_match_the_schema_unless_scripted_not_to(
    sim: Simulator, wire: str
) -> None:
    import jsonschema

    path, body, headers = json_request(wire)
    provider = "openai" if wire == "responses" else wire
    healthy = json.loads(text_of(wire, (await raw(sim, path, body, headers)).json()))
    jsonschema.validate(healthy, SCHEMA)
    assert healthy["population"] == 1 and healthy["tags"] == ["big"]

    sim.script(Behavior("invalid_json"), provider=provider)
    broken = text_of(wire, (await raw(sim, path, body, headers)).json())
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)

    sim.script(Behavior("schema_mismatch"), provider=provider)
    parsed = json.loads(text_of(wire, (await raw(sim, path, body, headers)).json()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(parsed, SCHEMA)

    plain = {k: v for k, v in body.items() if k not in ("output_config", "response_format")}
    plain.pop("text", None)
    plain.pop("generationConfig", None)
    answer = text_of(wire, (await raw(sim, path, plain, headers)).json())
    assert answer.startswith("Simulated answer")  # a request for text is answered as usual


async def test_the_clients_schema_check_rejects_the_bad_json_and_the_next_model_answers() -> None:
    from failover import AuthProfile, ResilientClient

    form = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}}
    async with Simulator() as simulator:
        simulator.script(Behavior("invalid_json"), provider="openai")
        simulator.script(Behavior("schema_mismatch"), provider="gemini")
        profiles = [
            AuthProfile(name, name, KEY, base_url=simulator.base_url(name))
            for name in ("openai", "gemini", "anthropic")
        ]
        chain = ["openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "anthropic/claude-haiku-4-5"]
        async with ResilientClient(chain, profiles) as client:
            reply = await client.complete(
                [{"role": "user", "content": "a city"}], response_format=form
            )
    assert reply.model == "anthropic/claude-haiku-4-5"
    assert [a.outcome for a in reply.attempts] == ["rejected", "rejected", "ok"]
    assert json.loads(reply.text)["population"] == 1


async def test_vertex_caches_claude_at_its_breakpoints_and_gemini_implicitly() -> None:
    from failover import AuthProfile, ResilientClient

    token = "ya29.vertex-token-000000000"
    marked = [
        {"role": "system", "content": SYSTEM, "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "What broke?"},
    ]
    conversation = [
        {"role": "user", "content": SYSTEM},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "What broke?"},
    ]
    async with Simulator() as simulator:
        profiles = [
            AuthProfile(name, name, token, base_url=simulator.base_url(name))
            for name in ("vertex_anthropic", "vertex_gemini")
        ]
        async with ResilientClient(
            ["vertex_anthropic/claude-sonnet-4-5@20250929"], profiles
        ) as claude:
            written = await claude.complete(marked)
            read = await claude.complete(marked)
        async with ResilientClient(["vertex_gemini/gemini-2.5-flash"], profiles) as gemini:
            cold = await gemini.complete(conversation)
            warm = await gemini.complete(conversation)
    assert written.usage is not None and read.usage is not None
    assert written.usage.cache_write_tokens > 0 and written.usage.cache_read_tokens == 0
    assert read.usage.cache_read_tokens == written.usage.cache_write_tokens
    assert cold.usage is not None and warm.usage is not None
    assert cold.usage.cache_read_tokens == 0
    assert warm.usage.cache_read_tokens == (len(SYSTEM) + len("Noted.")) // 4


async def test_a_simulator_on_the_main_thread_leaves_the_process_signals_alone() -> None:
    """Ctrl-C stays the application's (and the test run's) while a simulator serves."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set from the main thread only")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with Simulator() as sim:
        async with httpx.AsyncClient() as http:
            await http.get(sim.root_url)  # serving
        assert {sig: signal.getsignal(sig) for sig in before} == before
    assert {sig: signal.getsignal(sig) for sig in before} == before
