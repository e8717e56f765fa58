"""One request shape, four wire formats: over the simulator, which rejects what each real API
rejects with that provider's own 400, so a mis-translation fails here as in production."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    ContentFilteredError,
    FailoverConfig,
    FailoverManager,
    ModelCatalog,
    ModelEntry,
    ResilientClient,
    UnsupportedParameterError,
)
from failover.testing import Behavior, Simulator

WIRES = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
    "ollama-native": "ollama-native/llama3.2",
}
PAIRS = list(itertools.permutations(WIRES, 2))
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/unit"}},
                "required": ["city"],
                "additionalProperties": False,
                "$defs": {"unit": {"type": ["string", "null"], "enum": ["C", "F"]}},
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a zone.",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
]
ROUNDS = (("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"}))
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n-one-pixel").decode()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def client_for(
    sim: Simulator, *models: str, catalog: ModelCatalog | None = None
) -> ResilientClient:
    providers = {model.split("/")[0] for model in models}
    profiles = [
        AuthProfile(
            provider, provider, f"key-{provider}-0000000001", base_url=sim.base_url(provider)
        )
        for provider in providers
    ]
    manager = FailoverManager(FailoverConfig(max_retries=0), profiles=profiles)
    return ResilientClient(list(models), manager, catalog=catalog)


def received(sim: Simulator, provider: str) -> dict[str, Any]:
    bodies = [r.body for r in sim.requests if r.provider == provider]
    assert bodies, f"{provider} received nothing"
    return bodies[-1]


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
async def test_agent_loop_survives_a_fallback_to_another_wire_format_mid_conversation(
    sim: Simulator, primary: str, fallback: str
) -> None:
    for provider in WIRES:
        sim.script(Behavior(tool_calls=ROUNDS), provider=provider)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Weather and time in Paris?"},
    ]
    async with client_for(sim, WIRES[primary], WIRES[fallback]) as client:
        first = await client.complete(messages, tools=TOOLS, max_tokens=200)
        assert first.model == WIRES[primary] and first.finish_reason == "tool_calls"
        assert [(c.name, c.args) for c in first.tool_calls] == [ROUNDS[0]]
        messages += [
            first.message,
            {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"temp": 18}'},
        ]
        sim.script("server_error", provider=primary)  # the primary fails on round two

        second = await client.complete(messages, tools=TOOLS, max_tokens=200)
        assert second.model == WIRES[fallback] and second.finish_reason == "tool_calls"
        assert [a.outcome for a in second.attempts] == ["server", "ok"]
        assert [(c.name, c.args) for c in second.tool_calls] == [ROUNDS[1]]
        messages += [
            second.message,
            {"role": "tool", "tool_call_id": second.tool_calls[0].id, "content": "14:05"},
        ]

        last = await client.complete(messages, tools=TOOLS, max_tokens=200)
    assert last.model == WIRES[fallback] and last.finish_reason == "stop"
    assert "after 2 tool results" in last.text and not last.tool_calls
    assert last.message == {"role": "assistant", "content": last.text}


@pytest.mark.parametrize("source", ["openai", "gemini"])
async def test_gemini_3_gets_its_thought_signatures_back_or_the_documented_stand_in(
    sim: Simulator, source: str
) -> None:
    sim.script(Behavior(tool_calls=ROUNDS[:1]), provider=source)
    ask: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    async with client_for(sim, WIRES[source]) as client:
        reply = await client.complete(ask, tools=TOOLS)
    history = [
        *ask,
        reply.message,
        {"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": "sunny"},
    ]
    async with client_for(sim, "gemini/gemini-3-pro-preview") as client:
        answer = await client.complete(history, tools=TOOLS)
    assert "after 1 tool results" in answer.text
    part = received(sim, "gemini")["contents"][1]["parts"][0]
    expected = (
        "c2ltdWxhdGVkLXNpZ25hdHVyZQ==" if source == "gemini" else "skip_thought_signature_validator"
    )
    assert part["thoughtSignature"] == expected
    bare = [{**history[1], "tool_calls": [{**reply.message["tool_calls"][0], "extra_content": {}}]}]
    async with client_for(sim, "openai/gpt-4o") as client:
        await client.complete([*ask, *bare, history[2]], tools=TOOLS)
    assert "extra_content" not in json.dumps(received(sim, "openai"))


@pytest.mark.parametrize(("source", "target"), PAIRS)
async def test_a_replys_message_is_history_for_any_other_provider(
    sim: Simulator, source: str, target: str
) -> None:
    sim.script(Behavior(tool_calls=ROUNDS[:1]), provider=source)
    ask: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    async with client_for(sim, WIRES[source]) as client:
        reply = await client.complete(ask, tools=TOOLS)
    history = [
        *ask,
        reply.message,
        {"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": "sunny"},
        {"role": "user", "content": "Thanks. And tomorrow?"},
    ]
    async with client_for(sim, WIRES[target]) as client:
        answer = await client.complete(history, tools=TOOLS)
    assert answer.model == WIRES[target] and "after 1 tool results" in answer.text


def _stop_and_json(provider: str, body: dict[str, Any]) -> tuple[Any, Any]:
    if provider == "openai":
        return body["stop"], body["response_format"]["type"]
    if provider == "anthropic":
        return body["stop_sequences"], body["output_config"]["format"]["type"]
    if provider == "gemini":
        config = body["generationConfig"]
        return config["stopSequences"], config["responseMimeType"]
    return body["options"]["stop"], body["format"]["type"]


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize("provider", list(WIRES))
async def test_stop_and_json_mode_reach_each_provider_in_its_own_shape(
    sim: Simulator, provider: str
) -> None:
    async with client_for(sim, WIRES[provider]) as client:
        stopped = await client.complete(
            [{"role": "user", "content": "Status?"}], stop=["nominal"], max_tokens=50
        )
        shaped = await client.complete(
            [{"role": "user", "content": "Status?"}], response_format=SCHEMA, stop=["zzz"]
        )
    assert stopped.text.endswith("all systems ") and stopped.finish_reason == "stop"
    assert json.loads(shaped.text)["answer"].startswith("Simulated answer")
    stop, mode = _stop_and_json(provider, received(sim, provider))
    assert stop == ["zzz"]
    assert mode in ("json_schema", "application/json", "object")


@pytest.mark.parametrize("provider", list(WIRES))
async def test_json_object_mode_answers_json_everywhere(sim: Simulator, provider: str) -> None:
    async with client_for(sim, WIRES[provider]) as client:
        reply = await client.complete(
            [{"role": "user", "content": "Status as JSON"}],
            response_format={"type": "json_object"},
        )
    assert json.loads(reply.text)["answer"].startswith("Simulated answer")
    assert reply.finish_reason == "stop" and not reply.tool_calls


def _image(provider: str, body: dict[str, Any]) -> Any:
    if provider == "openai":
        return body["messages"][0]["content"][1]["image_url"]["url"]
    if provider == "anthropic":
        return body["messages"][0]["content"][1]["source"]
    if provider == "gemini":
        return body["contents"][0]["parts"][1]["inlineData"]
    return body["messages"][0]["images"]


@pytest.mark.parametrize("provider", list(WIRES))
async def test_an_image_part_reaches_each_provider(sim: Simulator, provider: str) -> None:
    url = f"data:image/png;base64,{PIXEL}"
    ask = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]
    async with client_for(sim, WIRES[provider]) as client:
        reply = await client.complete(ask)
    assert reply.text.startswith("Simulated answer")
    expected = {
        "openai": url,
        "anthropic": {"type": "base64", "media_type": "image/png", "data": PIXEL},
        "gemini": {"mimeType": "image/png", "data": PIXEL},
        "ollama-native": [PIXEL],
    }
    assert _image(provider, received(sim, provider)) == expected[provider]


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
async def test_a_field_no_model_can_take_is_a_clear_error_with_zero_calls(
    sim: Simulator, primary: str, fallback: str
) -> None:
    catalog = ModelCatalog()
    for model_id in (WIRES[primary], WIRES[fallback]):
        provider, _, name = model_id.partition("/")
        catalog.register(
            ModelEntry(id=name, name=name, provider=provider, api="x", input=("text",))
        )
    ask = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
        }
    ]
    async with client_for(sim, WIRES[primary], WIRES[fallback], catalog=catalog) as client:
        with pytest.raises(UnsupportedParameterError) as caught:
            await client.complete(ask)
    assert caught.value.field == "image_url"
    assert caught.value.models == (WIRES[primary], WIRES[fallback])
    assert "image_url" in str(caught.value) and WIRES[fallback] in str(caught.value)
    assert [a.outcome for a in caught.value.attempts] == ["unsupported", "unsupported"]
    assert sim.requests == []


async def test_a_model_that_cannot_take_a_field_is_skipped_and_the_next_answers(
    sim: Simulator,
) -> None:
    async with client_for(sim, WIRES["anthropic"], WIRES["gemini"]) as client:
        reply = await client.complete([{"role": "user", "content": "Hi"}], seed=7)
    assert reply.model == WIRES["gemini"]
    skipped, answered = reply.attempts
    assert (skipped.model, skipped.outcome) == (WIRES["anthropic"], "unsupported")
    assert skipped.error is not None and "'seed'" in skipped.error.message
    assert answered.outcome == "ok" and sim.calls(provider="anthropic") == 0
    assert received(sim, "gemini")["generationConfig"]["seed"] == 7


@pytest.mark.parametrize("provider", list(WIRES))
async def test_streamed_tool_calls_assemble_the_same_from_every_wire_format(
    sim: Simulator, provider: str
) -> None:
    sim.script(Behavior(tool_calls=ROUNDS[1:]), provider=provider)
    async with client_for(sim, WIRES[provider]) as client:
        stream = client.stream([{"role": "user", "content": "Time?"}], tools=TOOLS)
        async with stream:
            chunks = [chunk async for chunk in stream]
    assert any(chunk.tool_calls for chunk in chunks)
    assert [(c.name, c.args) for c in stream.tool_calls] == [ROUNDS[1]]
    assert stream.finish_reason == "tool_calls" and stream.usage is not None
    assert stream.message["tool_calls"][0]["function"]["name"] == "get_time"
    assert stream.message["content"] is None


async def test_the_simulator_rejects_an_untranslated_request_the_way_the_provider_does(
    sim: Simulator,
) -> None:
    import httpx

    openai_shaped = {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "assistant", "content": None}],
        "tools": TOOLS,
    }
    async with httpx.AsyncClient() as http:
        anthropic = await http.post(f"{sim.base_url('anthropic')}/v1/messages", json=openai_shaped)
        gemini = await http.post(
            f"{sim.base_url('gemini')}/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "stop": ["x"]},
        )
        mistral = await http.post(
            f"{sim.base_url('mistral')}/chat/completions",
            json={**openai_shaped, "stream_options": {"include_usage": True}},
        )
    assert anthropic.status_code == 400
    assert anthropic.json()["error"]["type"] == "invalid_request_error"
    assert "input_schema: Field required" in anthropic.json()["error"]["message"]
    assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "stop"' in gemini.json()["error"]["message"]
    assert mistral.status_code == 422 and "stream_options" in mistral.text


async def test_azure_deployment_url_api_key_header_and_content_filter(sim: Simulator) -> None:
    profile = AuthProfile("east", "azure", "azure-key-000000000001", base_url=sim.base_url("azure"))
    async with ResilientClient(["azure/my-gpt4o"], [profile]) as client:
        reply = await client.complete([{"role": "user", "content": "Hi"}], max_tokens=20)
        sim.script("content_block", provider="azure")
        with pytest.raises(AllAttemptsFailed) as caught:
            await client.complete([{"role": "user", "content": "Hi"}])
    error = caught.value.errors[0]
    assert isinstance(error, ContentFilteredError) and error.status == 400
    assert reply.text.startswith("Simulated answer from azure/my-gpt4o")
    assert sim.requests[0].model == "my-gpt4o" and sim.requests[0].key == "azure-key-000000000001"
    assert "model" not in sim.requests[0].body
    assert sim.requests[0].body["max_completion_tokens"] == 20


async def test_azure_rate_limit_is_a_rate_limit_with_its_wait(sim: Simulator) -> None:
    from failover import RateLimitError

    sim.script(Behavior("rate_limit", retry_after=6), provider="azure")
    profile = AuthProfile("east", "azure", "azure-key-000000000001", base_url=sim.base_url("azure"))
    async with ResilientClient(["azure/my-gpt4o"], [profile]) as client:
        with pytest.raises(AllAttemptsFailed) as caught:
            await client.complete([{"role": "user", "content": "Hi"}])
    error = caught.value.errors[0]
    assert isinstance(error, RateLimitError) and error.retry_after == 6


@pytest.mark.parametrize("provider", list(WIRES))
async def test_a_streamed_json_answer_is_text_on_every_wire(sim: Simulator, provider: str) -> None:
    async with client_for(sim, WIRES[provider]) as client:
        stream = client.stream(
            [{"role": "user", "content": "Status as JSON"}], response_format={"type": "json_object"}
        )
        async with stream:
            text = "".join([chunk.text async for chunk in stream])
    assert json.loads(text)["answer"].startswith("Simulated answer")
    assert stream.finish_reason == "stop" and stream.tool_calls == ()
    if provider == "ollama-native":  # local: unpriced
        assert stream.cost_usd is None
    else:
        assert stream.cost_usd is not None and stream.cost_usd > 0


async def test_a_malformed_request_is_a_config_error_before_any_call(sim: Simulator) -> None:
    from failover import ConfigError

    async with client_for(sim, WIRES["anthropic"], WIRES["openai"]) as client:
        with pytest.raises(ConfigError, match="tool_choice must be"):
            await client.complete(
                [{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="sometimes"
            )
        with pytest.raises(ConfigError, match="answers no earlier assistant tool call"):
            await client.complete([{"role": "tool", "tool_call_id": "x", "content": "1"}])
    assert sim.requests == []


async def test_another_wires_own_field_skips_openai_instead_of_a_400(sim: Simulator) -> None:
    async with client_for(sim, WIRES["openai"], WIRES["anthropic"]) as client:
        reply = await client.complete([{"role": "user", "content": "Hi"}], top_k=5)
    assert reply.model == WIRES["anthropic"] and reply.attempts[0].outcome == "unsupported"
    assert received(sim, "anthropic")["top_k"] == 5 and sim.calls(provider="openai") == 0
