"""The in-process scripted provider (failover.testing.ScriptedProvider): every wire format
through the client and through SDKs, scripted failures, what it records, the pytest fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from failover import (
    AuthProfile,
    FailoverManager,
    ProfileStatus,
    ResilientClient,
    ResilientTransport,
    StreamInterrupted,
)
from failover.testing import Script, ScriptedProvider, Step
from tests.conftest import FakeClock

pytest_plugins = ["failover.testing.pytest_plugin"]

KEY_A = "sk-scripted-key-aaaaaaaa0001"
KEY_B = "sk-scripted-key-bbbbbbbb0002"
HI = [{"role": "user", "content": "hi"}]
TEXT = "Hello from the scripted provider."
# provider -> (model id, the wire it speaks)
MODELS = {
    "openai": ("openai/gpt-4o-mini", "openai"),
    "anthropic": ("anthropic/claude-haiku-4-5", "anthropic"),
    "gemini": ("gemini/gemini-2.5-flash-lite", "gemini"),
    "ollama-native": ("ollama-native/llama3.2", "ollama"),
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _client(
    scripted: ScriptedProvider, provider: str = "openai", keys: tuple[str, ...] = (KEY_A,)
) -> ResilientClient:
    profiles = [AuthProfile(f"k{i}", provider, key) for i, key in enumerate(keys)]
    return ResilientClient([MODELS[provider][0]], profiles, sender=scripted.sender())


async def _read_into(client: ResilientClient, received: list[str]) -> None:
    async with client.stream(HI) as stream:
        async for chunk in stream:
            received.append(chunk.text)


@pytest.mark.parametrize("provider", list(MODELS))
async def test_each_wire_answers_complete_and_stream(provider: str) -> None:
    scripted = ScriptedProvider(Script().ok("a plain answer"))
    client = _client(scripted, provider)
    result = await client.complete(HI)
    async with client.stream(HI) as stream:
        chunks = [chunk.text async for chunk in stream]
    await client.aclose()
    assert result.text == "a plain answer"
    assert "".join(chunks) == TEXT and len([c for c in chunks if c]) == 5
    wire = MODELS[provider][1]
    model = MODELS[provider][0].split("/", 1)[1]
    assert [(c.wire, c.model, c.stream, c.outcome) for c in scripted.calls] == [
        (wire, model, False, "ok"),
        (wire, model, True, "ok"),
    ]


@pytest.mark.parametrize("provider", list(MODELS))
async def test_429_with_retry_after_rotates_keys_and_records_the_cooldown(provider: str) -> None:
    clock = FakeClock()
    scripted = ScriptedProvider(["429 retry-after=2", "ok"])
    manager = FailoverManager(
        clock=clock,
        profiles=[AuthProfile("a", provider, KEY_A), AuthProfile("b", provider, KEY_B)],
    )
    client = ResilientClient([MODELS[provider][0]], manager, sender=scripted.sender())
    result = await client.complete(HI)
    await client.aclose()
    assert result.text == TEXT and result.profile == "b"
    assert scripted.keys == [KEY_A, KEY_B]
    assert [c.outcome for c in scripted.calls] == ["rate_limit", "ok"]
    cooled = manager.get_profile("a")
    assert cooled is not None and cooled.status is not ProfileStatus.AVAILABLE
    if provider != "gemini":  # Gemini's 429 carries no retry-after: the policy's own wait
        assert cooled.cooldown_until == pytest.approx(clock.now + 2)


@pytest.mark.parametrize("provider", list(MODELS))
async def test_stream_cut_after_3_chunks_raises_stream_interrupted(provider: str) -> None:
    scripted = ScriptedProvider(Script().stream_cut_after(3))
    client = _client(scripted, provider)
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        await _read_into(client, received)
    await client.aclose()
    assert "".join(received) == info.value.partial_text == "Hello from the "


@pytest.mark.parametrize("provider", list(MODELS))
async def test_a_tool_call_round(provider: str) -> None:
    scripted = ScriptedProvider(
        Script().tool_call("get_weather", {"city": "Paris"}).then_ok("Sunny in Paris.")
    )
    client = _client(scripted, provider)
    first = await client.complete(HI, tools=[WEATHER])
    (call,) = first.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    history = [
        *HI,
        first.message,
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
    ]
    second = await client.complete(history, tools=[WEATHER])
    await client.aclose()
    assert second.text == "Sunny in Paris." and not second.tool_calls
    assert "sunny, 24 C" in json.dumps(scripted.calls[1].messages)
    assert [c.outcome for c in scripted.calls] == ["tool_call", "ok"]


async def test_scripts_per_key_and_per_model_come_before_the_providers_own() -> None:
    scripted = ScriptedProvider()
    scripted.on(key=KEY_A).invalid_key(times=5)
    scripted.on(model="gpt-4o-mini").overloaded()
    profiles = [AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)]
    client = ResilientClient(
        ["openai/gpt-4o-mini", "openai/gpt-4o"], profiles, sender=scripted.sender()
    )
    result = await client.complete(HI)
    await client.aclose()
    assert result.model == "openai/gpt-4o"
    assert [(c.masked_key, c.model, c.outcome) for c in scripted.calls] == [
        ("***0001", "gpt-4o-mini", "invalid_key"),
        ("***0002", "gpt-4o-mini", "overloaded"),
        ("***0002", "gpt-4o", "ok"),
    ]


async def test_a_connection_error_moves_to_the_next_key() -> None:
    scripted = ScriptedProvider(Script().connection_error().then_ok("reached"))
    client = _client(scripted, keys=(KEY_A, KEY_B))
    result = await client.complete(HI)
    await client.aclose()
    assert result.text == "reached"
    assert [c.outcome for c in scripted.calls] == ["connection_error", "ok"]


async def test_a_hang_times_out_and_a_slow_reply_arrives() -> None:
    scripted = ScriptedProvider(Script().hang().slow(0.05, "late but fine"))
    profiles = [AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)]
    client = ResilientClient([MODELS["openai"][0]], profiles, sender=scripted.sender(), timeout=0.3)
    result = await client.complete(HI)
    await client.aclose()
    assert result.text == "late but fine"
    assert [a.outcome for a in result.attempts] == ["timeout", "ok"]
    assert [c.outcome for c in scripted.calls] == ["hang", "ok"]


async def test_it_records_every_request_with_keys_masked_in_reprs() -> None:
    scripted = ScriptedProvider()
    client = _client(scripted)
    await client.complete(HI, temperature=0.5)
    await client.aclose()
    (call,) = scripted.calls
    assert call.key == KEY_A and call.body["temperature"] == 0.5 and call.messages == HI
    assert call.url == "https://api.openai.com/v1/chat/completions"
    assert scripted.calls_for(key=KEY_A, wire="openai") == [call]
    assert scripted.calls_for(model="gpt-4o") == []
    shown = repr(call) + repr(scripted) + str(scripted.calls)
    assert KEY_A not in shown and "***0001" in shown
    scripted.reset()
    assert scripted.calls == [] and len(scripted.script) == 0


def test_steps_in_short_form() -> None:
    assert Step.parse("429 retry-after=2") == Step("rate_limit", retry_after=2.0)
    assert Step.parse("ok: hi there") == Step("ok", text="hi there")
    assert Step.parse("529") == Step("overloaded")
    assert Step.parse("cut after 4") == Step("cut", cut_after=4)
    assert Step.parse("cut 2").cut_after == 2
    assert Step.parse("slow 2") == Step("ok", latency=2.0)
    assert Step.parse("hang").latency == float("inf")
    with pytest.raises(ValueError, match="unknown step 'teapot'"):
        Step.parse("teapot")
    with pytest.raises(ValueError, match="cannot read step"):
        Step.parse("429 soon")
    with pytest.raises(ValueError, match="times"):
        Script().ok(times=0)


# -- SDKs through ResilientTransport(inner=scripted.transport()) -------------------------------


def _transport(scripted: ScriptedProvider) -> ResilientTransport:
    profiles = [AuthProfile("a", "openai", KEY_A), AuthProfile("b", "openai", KEY_B)]
    return ResilientTransport(profiles, provider="openai", inner=scripted.transport())


async def test_async_openai_sdk_through_the_transport() -> None:
    scripted = ScriptedProvider(Script().rate_limit(retry_after=2).then_ok("hello"))
    transport = _transport(scripted)
    sdk = openai.AsyncOpenAI(
        api_key="sdk-key", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "hello"
    stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == TEXT
    response = await sdk.responses.create(model="gpt-4o-mini", input="hi")
    assert response.output_text == TEXT
    events = await sdk.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    deltas = [e.delta async for e in events if e.type == "response.output_text.delta"]
    await sdk.close()
    assert "".join(deltas) == TEXT
    assert scripted.keys == [KEY_A, KEY_B, KEY_B, KEY_B, KEY_B]
    assert [c.wire for c in scripted.calls] == ["openai"] * 3 + ["responses"] * 2
    assert "sdk-key" not in scripted.keys


def test_sync_openai_sdk_through_the_transport() -> None:
    scripted = ScriptedProvider(Script().overloaded().then_ok("hello"))
    transport = _transport(scripted)
    with openai.OpenAI(
        api_key="sdk-key", max_retries=0, http_client=httpx2.Client(transport=transport)
    ) as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert reply.choices[0].message.content == "hello" and text == TEXT
    assert [c.outcome for c in scripted.calls] == ["overloaded", "ok", "ok"]


async def test_anthropic_sdk_through_the_transport_rotates_on_529() -> None:
    scripted = ScriptedProvider(Script().overloaded().then_ok("hello"))
    profiles = [AuthProfile("a", "anthropic", KEY_A), AuthProfile("b", "anthropic", KEY_B)]
    transport = ResilientTransport(profiles, provider="anthropic", inner=scripted.transport())
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(api_key="sdk-key", max_retries=0, http_client=http)
        reply = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)  # type: ignore[arg-type]
        async with sdk.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=HI,  # type: ignore[arg-type]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
    assert reply.content[0].text == "hello" and text == TEXT  # type: ignore[union-attr]
    assert [c.outcome for c in scripted.calls] == ["overloaded", "ok", "ok"]
    assert scripted.keys[:2] == [KEY_A, KEY_B]  # a 529 is no fault of the key's: A serves again


async def test_the_transport_serves_a_plain_httpx_client_too() -> None:
    scripted = ScriptedProvider(["500"])
    async with httpx.AsyncClient(transport=scripted.transport()) as http:
        failed = await http.post("https://api.anthropic.com/v1/messages", json={"model": "m"})
        ok = await http.post("https://api.anthropic.com/v1/messages", json={"model": "m"})
        missing = await http.post("https://api.anthropic.com/v1/nothing", json={})
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
    assert ok.json()["content"][0]["text"] == TEXT
    assert missing.status_code == 404


# -- the pytest fixture and the package's imports ---------------------------------------------


async def test_the_fixture_gives_a_fresh_provider(scripted_provider: ScriptedProvider) -> None:
    scripted_provider.script.rate_limit(retry_after=30).then_ok("after the limit")
    client = _client(scripted_provider, keys=(KEY_A, KEY_B))
    result = await client.complete(HI)
    await client.aclose()
    assert result.text == "after the limit" and len(scripted_provider.calls) == 2


def test_failover_testing_imports_without_the_sim_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = sys.modules['uvicorn'] = None\n"
        "from failover.testing import ScriptedProvider, Script\n"
        "import failover.testing.pytest_plugin\n"
        "ScriptedProvider(Script().ok())\n"
        "try:\n"
        "    from failover.testing import Simulator\n"
        "except ImportError:\n"
        "    print('simulator needs sim')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "simulator needs sim"


def test_the_example_user_test_passes() -> None:
    """examples/test_my_failover.py, as a user runs it (only anyio's plugin: a fast start)."""
    example = Path(__file__).parent.parent / "examples" / "test_my_failover.py"
    command = [sys.executable, "-m", "pytest", str(example), "-q", "-p", "no:cacheprovider"]
    command += ["-p", "anyio", "-W", "ignore::pytest.PytestConfigWarning"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout
