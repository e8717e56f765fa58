"""Each adapter's translation of the OpenAI-shaped request, checked on the wire (respx)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
import respx

from failover import AuthProfile, ResilientClient
from failover.providers import get_adapter, register_adapter
from failover.providers.base import ChatRequest

ASK = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Again"},
]


def captured(route: respx.Route) -> tuple[httpx.Request, dict[str, Any]]:
    request = route.calls.last.request
    return request, json.loads(request.content)


@respx.mock
async def test_anthropic_system_goes_top_level_max_tokens_is_set_and_version_pinned() -> None:
    route = respx.post("https://api.anthropic.com/v1/messages").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "usage": {},
            },
        )
    )
    profile = AuthProfile("c", "anthropic", "sk-ant-secret-000000001")
    async with ResilientClient(["anthropic/claude-haiku-4-5"], [profile]) as client:
        await client.complete(ASK, top_k=5)
    request, body = captured(route)
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] == 4096 and body["top_k"] == 5
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert request.headers["x-api-key"] == "sk-ant-secret-000000001"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers


@respx.mock
async def test_gemini_roles_system_instruction_and_key_in_header_never_in_url() -> None:
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-lite"
    route = respx.post(f"{base}:generateContent").mock(
        return_value=httpx.Response(
            200,
            json={"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]},
        )
    )
    profile = AuthProfile("g", "gemini", "AIzaSy-secret-key-000000000001")
    async with ResilientClient(["gemini/gemini-2.5-flash-lite"], [profile]) as client:
        result = await client.complete(ASK, max_tokens=50, temperature=0.2)
    request, body = captured(route)
    assert result.text == "ok"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2}
    assert request.headers["x-goog-api-key"] == "AIzaSy-secret-key-000000000001"
    assert "AIza" not in str(request.url)


def test_gemini_stream_uses_sse_endpoint() -> None:
    built = get_adapter("google").build_request(
        ChatRequest(ASK, stream=True), model="gemini-2.5-flash", api_key="k", base_url="https://g"
    )
    assert built.url == "https://g/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


@pytest.mark.parametrize(
    ("provider", "field"),
    [("openai", "max_completion_tokens"), ("groq", "max_tokens"), ("vllm", "max_tokens")],
)
def test_openai_compatible_max_tokens_field_and_stream_usage(provider: str, field: str) -> None:
    built = get_adapter(provider).build_request(
        ChatRequest(ASK, max_tokens=10, stream=True, params={"seed": 7}),
        model="m",
        api_key="sk-x",
        base_url="https://h/v1",
    )
    body = json.loads(built.body)
    assert body[field] == 10 and body["seed"] == 7
    assert body["stream_options"] == {"include_usage": True}
    assert built.url == "https://h/v1/chat/completions"
    assert built.headers["authorization"] == "Bearer sk-x"


def test_ollama_native_options_and_no_auth_without_a_key() -> None:
    built = get_adapter("ollama-native").build_request(
        ChatRequest(ASK, max_tokens=10, temperature=0.5),
        model="llama3.2",
        api_key="",
        base_url="http://localhost:11434",
    )
    body = json.loads(built.body)
    assert body["options"] == {"num_predict": 10, "temperature": 0.5} and body["stream"] is False
    assert "authorization" not in built.headers and built.url.endswith("/api/chat")


def test_unknown_provider_is_a_clear_config_error_and_adapters_can_be_registered() -> None:
    from failover import ConfigError

    with pytest.raises(ConfigError, match="no adapter for provider 'acme'"):
        get_adapter("acme")
    register_adapter("acme", get_adapter("openai"))
    assert get_adapter("ACME") is get_adapter("openai")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<html>502 Bad Gateway</html>", 502),
        (b"", 500),
        (b'{"error": "model not loaded"}', 500),
        (b'{"object": "error", "message": "bad", "code": 400}', 400),
    ],
)
def test_odd_error_bodies_never_break_classification(body: bytes, status: int) -> None:
    error = get_adapter("vllm").parse_error(status, {}, body)
    assert error.status == status and error.message


async def test_one_call_adds_a_provider_adapter_and_catalog_entry_together() -> None:
    from failover.providers import OpenAIAdapter, add_provider
    from failover.testing import Simulator

    async with Simulator() as sim:
        add_provider("acme-gpu", OpenAIAdapter("http://unused.invalid/v1"))
        profile = AuthProfile(
            "gpu", "acme-gpu", "acme-key-000001", base_url=sim.base_url("acme-gpu")
        )
        async with ResilientClient(["acme-gpu/llama-3.1-8b"], [profile]) as client:
            reply = await client.complete([{"role": "user", "content": "hi"}])
    assert reply.text.startswith("Simulated answer from acme-gpu/llama-3.1-8b")
    assert reply.cost_usd is None  # a local provider: unpriced, never a made-up 0.0


def test_a_registered_adapter_is_known_to_the_catalog_and_priced_providers_stay_priced() -> None:
    from failover import get_model_entry as default_catalog_entry
    from failover.providers import OpenAIAdapter, add_provider

    register_adapter("acme-two", OpenAIAdapter("http://h/v1"))
    assert default_catalog_entry("acme-two", "any-model") is not None
    add_provider("my-openai", OpenAIAdapter("https://proxy.test/v1"), prices_id="openai")
    entry = default_catalog_entry("my-openai", "gpt-4o-mini")
    assert entry is not None and entry.cost_input is not None
    assert default_catalog_entry("my-openai", "no-such-model") is None
    assert default_catalog_entry("azure", "my-deployment") is not None
    priced = default_catalog_entry("azure", "gpt-4o")
    assert priced is not None and priced.cost_input is not None


PLAIN_MODELS = [
    "openai/gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "gemini/gemini-2.0-flash",
    "gemini/gemini-2.5-pro",
    "groq/llama-3.1-8b-instant",
    "ollama-native/llama3.2",
    "mistral/mistral-small-latest",
]


@pytest.mark.parametrize("model_id", PLAIN_MODELS)
def test_a_plain_text_request_is_one_every_model_takes(model_id: str) -> None:
    """The client skips the unsupported-field check for plain requests: that must be safe."""
    from failover import FallbackChain
    from failover.providers import registered_providers

    request = ChatRequest(ASK)
    assert request.plain
    model = FallbackChain.from_ids([model_id]).steps[0][0]
    assert model.provider in registered_providers()
    for text_only in (
        model,
        dataclasses.replace(model, input=("text",), tools=False, reasoning=False),
    ):
        assert get_adapter(model.provider).unsupported_field(request, text_only) is None


@pytest.mark.parametrize(
    ("messages", "params"),
    [
        (ASK, {"stop": ["x"]}),
        ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], {}),
        ([{"role": "user", "content": "hi", "name": "ann"}], {}),
        ([{"role": "tool", "content": "42", "tool_call_id": "c1"}], {}),
        ([{"role": "user", "content": None}], {}),
    ],
)
def test_anything_beyond_plain_text_is_checked(
    messages: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    assert not ChatRequest(messages, params=params).plain
