"""The simulator: every scripted behaviour is observable on the wire (raw httpx, no client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from failover.testing import Behavior, Simulator

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
