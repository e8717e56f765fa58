"""ResilientTransport as an in-process gateway: an SDK's call served by another provider.

Each test drives a real SDK (openai, anthropic, google-genai) through the transport against
the simulator on 127.0.0.1 (``simulator_in_thread``), or a scripted local server where a
test needs bytes the simulator does not send. A fallback model of another provider
serves the SDK's request translated, and the SDK reads the reply as its own provider's.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anthropic
import anyio
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from failover import (
    AuthProfile,
    ConfigError,
    FailoverManager,
    ResilientClient,
    ResilientTransport,
)
from failover.testing import Behavior, Simulator
from failover.transport_gateway import ResponseOwners
from tests.conftest import BOTH_BACKENDS, FakeClock, simulator_in_thread
from tests.test_transport_guards import Upstream, chat_reply, running_upstream, sse

anyio_backend = BOTH_BACKENDS
C = TypeVar("C")

OA_A = "sk-proj-gateway-openai-key-a-01"
OA_B = "sk-proj-gateway-openai-key-b-02"
AN_A = "sk-ant-gateway-anthropic-key-03"
GE_A = "AIzaSyGatewayGeminiKey0000000004"
GQ_A = "gsk_gatewaygroqkey000000000006"
ALL_KEYS = (OA_A, OA_B, AN_A, GE_A, GQ_A)
SDK_KEY = "sdk-key-never-sent-anywhere"
HI: Any = [{"role": "user", "content": "Hi"}]
CLAUDE, GEMINI, GPT = "claude-haiku-4-5", "gemini-2.5-flash", "gpt-4o-mini"
TARGETS = {"anthropic": CLAUDE, "gemini": GEMINI, "openai": GPT, "groq": "llama-3.1-8b-instant"}
SIM_KEYS = {"openai": [OA_A, OA_B], "anthropic": [AN_A], "gemini": [GE_A], "groq": [GQ_A]}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    with simulator_in_thread(keys=SIM_KEYS) as simulator:
        yield simulator
        gc.collect()  # SDK clients a test left open close on the loop that opened them
        await anyio.sleep(0.01)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    """A local server each test scripts (see tests/test_transport_guards.py)."""
    with running_upstream() as served:
        yield served


@pytest.fixture
def asyncio_only(anyio_backend: str) -> None:
    """Skip on trio: google-genai's async client runs on asyncio."""
    if anyio_backend == "trio":
        pytest.skip("google-genai's async client runs on asyncio")


@pytest.fixture
def sync_sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys=SIM_KEYS) as simulator:
        yield simulator


def manager(sim: Simulator, clock: FakeClock | None = None) -> FailoverManager:
    return FailoverManager(
        clock=clock or FakeClock(),
        profiles=[
            AuthProfile("openai-a", "openai", OA_A, base_url=sim.base_url("openai")),
            AuthProfile("openai-b", "openai", OA_B, base_url=sim.base_url("openai")),
            AuthProfile("anthropic", "anthropic", AN_A, base_url=sim.base_url("anthropic")),
            AuthProfile("gemini", "gemini", GE_A, base_url=sim.base_url("gemini")),
            AuthProfile("groq", "groq", GQ_A, base_url=sim.base_url("groq")),
        ],
    )


def gateway(sim: Simulator, provider: str, *targets: str, **options: Any) -> ResilientTransport:
    """A transport for ``provider``'s SDK falling back to each target provider's model."""
    fallbacks = [f"{target}/{TARGETS[target]}" for target in targets]
    return ResilientTransport(manager(sim), provider=provider, fallback_models=fallbacks, **options)


def sdk_on(sdk: Callable[..., C], base_url: str, http: Any) -> C:
    """An SDK client (``openai.OpenAI``, ``anthropic.AsyncAnthropic``, ...) built with a key
    the transport replaces, no retries of its own, and ``http`` (a client or a transport,
    which gets an ``httpx2.AsyncClient`` of its own)."""
    if isinstance(http, ResilientTransport):
        http = httpx2.AsyncClient(transport=http)
    return sdk(api_key=SDK_KEY, base_url=base_url, max_retries=0, http_client=http)


def openai_sdk(sim: Simulator, transport: ResilientTransport) -> openai.AsyncOpenAI:
    return sdk_on(openai.AsyncOpenAI, sim.base_url("openai"), transport)


def anthropic_sdk(sim: Simulator, transport: ResilientTransport) -> anthropic.AsyncAnthropic:
    return sdk_on(anthropic.AsyncAnthropic, sim.base_url("anthropic"), transport)


def genai_sdk(sim: Simulator, transport: ResilientTransport) -> genai.Client:
    options = genai_types.HttpOptions(
        base_url=sim.base_url("gemini"),
        httpx_async_client=httpx2.AsyncClient(transport=transport),
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=SDK_KEY, http_options=options)


def served_by(sim: Simulator, provider: str) -> list[Any]:
    """The requests ``provider`` answered well."""
    return [r for r in sim.requests if r.provider == provider and r.outcome == "healthy"]


def keys_were_kept_apart(sim: Simulator) -> bool:
    """Whether every request carried a key of its own provider, and never the SDK's."""
    own = {"openai": (OA_A, OA_B), "anthropic": (AN_A,), "gemini": (GE_A,), "groq": (GQ_A,)}
    return all(r.key in own[r.provider] for r in sim.requests)


class _AnyText:
    """Equal to any non-empty string."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


any_text: Any = _AnyText()


def shows_a_key(text: str) -> bool:
    """Whether ``text`` shows 8 characters in a row of one of the keys."""
    return any(key[i : i + 8] in text for key in ALL_KEYS for i in range(len(key) - 7))


def expected_usage(sim: Simulator, text: str) -> tuple[int, int]:
    """The (input, output) tokens the simulator counted for its last answer, ``text``."""
    return max(1, sim.requests[-1].prompt_chars // 4), len(text.split())


# -- the openai SDK, answered by Anthropic and Gemini ---------------------------------------


@pytest.mark.parametrize("target", ["anthropic", "gemini"])
async def test_openai_chat_overloaded_is_answered_by_another_provider(
    sim: Simulator, target: str
) -> None:
    sim.script("overloaded", provider="openai")
    transport = gateway(sim, "openai", target)
    async with openai_sdk(sim, transport) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model=GPT, messages=HI)
    reply = raw.parse()
    text = reply.choices[0].message.content or ""
    assert text.startswith(f"Simulated answer from {target}/{TARGETS[target]}")
    assert raw.headers["x-failover-provider"] == target
    assert raw.headers["x-failover-model"] == TARGETS[target] == reply.model
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    usage = (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert usage == expected_usage(sim, text)
    assert sim.calls(provider="openai") == 1  # its two keys share one endpoint: sideways
    assert len(served_by(sim, target)) == 1 and keys_were_kept_apart(sim)


@pytest.mark.parametrize("target", ["anthropic", "gemini"])
async def test_openai_chat_stream_is_translated_event_by_event(sim: Simulator, target: str) -> None:
    sim.script("overloaded", provider="openai")
    transport = gateway(sim, "openai", target)
    async with openai_sdk(sim, transport) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=GPT, messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(f"Simulated answer from {target}/")
    assert raw.headers["x-failover-provider"] == target
    assert raw.headers["content-type"].startswith("text/event-stream")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    usage = chunks[-1].usage
    assert not chunks[-1].choices and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == expected_usage(sim, text)
    assert len(chunks) > 3  # several deltas: streamed, not one whole answer


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sync_sdk_is_answered_by_anthropic(sync_sim: Simulator, stream: bool) -> None:
    sync_sim.script("overloaded", provider="openai")
    transport = gateway(sync_sim, "openai", "anthropic")
    with httpx2.Client(transport=transport) as http:
        sdk = sdk_on(openai.OpenAI, sync_sim.base_url("openai"), http)
        if stream:
            pieces = sdk.chat.completions.create(model=GPT, messages=HI, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
        else:
            reply = sdk.chat.completions.create(model=GPT, messages=HI)
            text = reply.choices[0].message.content or ""
            assert reply.usage is not None and reply.usage.completion_tokens == len(text.split())
    assert text.startswith(f"Simulated answer from anthropic/{CLAUDE}")
    assert len(served_by(sync_sim, "anthropic")) == 1 and keys_were_kept_apart(sync_sim)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sync_sdk_is_answered_by_openai(sync_sim: Simulator, stream: bool) -> None:
    sync_sim.script("overloaded", provider="anthropic")
    transport = gateway(sync_sim, "anthropic", "openai")
    with httpx2.Client(transport=transport) as http:
        sdk = sdk_on(anthropic.Anthropic, sync_sim.base_url("anthropic"), http)
        if stream:
            with sdk.messages.stream(model=CLAUDE, max_tokens=100, messages=HI) as events:
                text = "".join(events.text_stream)
                message = events.get_final_message()
        else:
            message = sdk.messages.create(model=CLAUDE, max_tokens=100, messages=HI)
            text = message.content[0].text if message.content[0].type == "text" else ""
    assert text.startswith(f"Simulated answer from openai/{GPT}")
    assert message.stop_reason == "end_turn" and message.model == GPT
    assert message.usage.output_tokens == len(text.split())
    assert len(served_by(sync_sim, "openai")) == 1 and keys_were_kept_apart(sync_sim)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sync_responses_are_answered_by_gemini(sync_sim: Simulator, stream: bool) -> None:
    sync_sim.script("overloaded", provider="openai")
    transport = gateway(sync_sim, "openai", "gemini")
    with httpx2.Client(transport=transport) as http:
        sdk = sdk_on(openai.OpenAI, sync_sim.base_url("openai"), http)
        if stream:
            with sdk.responses.stream(model=GPT, input="Hi") as events:
                deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
                reply = events.get_final_response()
            assert "".join(deltas) == reply.output_text
        else:
            reply = sdk.responses.create(model=GPT, input="Hi")
    assert reply.output_text.startswith(f"Simulated answer from gemini/{GEMINI}")
    assert reply.status == "completed" and reply.model == GEMINI
    assert len(served_by(sync_sim, "gemini")) == 1 and keys_were_kept_apart(sync_sim)


async def test_another_provider_of_the_same_wire_gets_the_request_as_it_takes_it(
    sim: Simulator,
) -> None:
    """Groq speaks OpenAI's wire but rejects ``metadata`` and ``store``: its adapter builds
    the request (with Groq's key, to Groq's URL), so a fallback to Groq works."""
    sim.script("overloaded", provider="openai")
    transport = gateway(sim, "openai", "groq")
    async with openai_sdk(sim, transport) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=GPT, messages=HI, metadata={"team": "a"}, store=True, max_completion_tokens=50
        )
    reply = raw.parse()
    assert (reply.choices[0].message.content or "").startswith("Simulated answer from groq/")
    assert raw.headers["x-failover-provider"] == "groq"
    [request] = served_by(sim, "groq")
    assert "metadata" not in request.body and "store" not in request.body
    assert request.body["max_tokens"] == 50 and keys_were_kept_apart(sim)


@pytest.mark.parametrize("target", ["anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_call_round_through_another_provider(
    sim: Simulator, target: str, stream: bool
) -> None:
    sim.script("overloaded", provider="openai")
    sim.script(Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), provider=target)
    transport = gateway(sim, "openai", target)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    async with openai_sdk(sim, transport) as sdk:
        if stream:
            calls: dict[int, dict[str, str]] = {}
            finish = None
            async for chunk in await sdk.chat.completions.create(
                model=GPT, messages=messages, tools=[WEATHER], stream=True
            ):
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    for delta in choice.delta.tool_calls or []:
                        call = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                        call["id"] += delta.id or ""
                        if delta.function:
                            call["name"] += delta.function.name or ""
                            call["args"] += delta.function.arguments or ""
            [call] = calls.values()
            call_id, name, arguments = call["id"], call["name"], call["args"]
        else:
            reply = await sdk.chat.completions.create(model=GPT, messages=messages, tools=[WEATHER])
            finish = reply.choices[0].finish_reason
            [tool_call] = reply.choices[0].message.tool_calls or []
            assert tool_call.type == "function"
            call_id = tool_call.id
            name, arguments = tool_call.function.name, tool_call.function.arguments
        assert finish == "tool_calls" and name == "get_weather" and call_id
        assert json.loads(arguments) == {"city": "Paris"}
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "clear"}'},
        ]
        answer = await sdk.chat.completions.create(model=GPT, messages=messages, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop"
    assert "after 1 tool results" in (answer.choices[0].message.content or "")
    assert len(served_by(sim, target)) == 2 and keys_were_kept_apart(sim)


# -- the anthropic SDK, answered by OpenAI and Gemini ----------------------------------------


@pytest.mark.parametrize("target", ["openai", "gemini"])
async def test_anthropic_messages_are_answered_by_another_provider(
    sim: Simulator, target: str
) -> None:
    sim.script("overloaded", provider="anthropic")
    transport = gateway(sim, "anthropic", target)
    async with anthropic_sdk(sim, transport) as sdk:
        raw = await sdk.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=HI)
        message = await raw.parse()
    assert message.content[0].type == "text"
    text = message.content[0].text
    assert text.startswith(f"Simulated answer from {target}/{TARGETS[target]}")
    assert raw.headers["x-failover-provider"] == target and message.model == TARGETS[target]
    assert message.stop_reason == "end_turn"
    usage = (message.usage.input_tokens, message.usage.output_tokens)
    assert usage == expected_usage(sim, text)
    assert keys_were_kept_apart(sim)


@pytest.mark.parametrize("target", ["openai", "gemini"])
async def test_anthropic_message_stream_is_answered_by_another_provider(
    sim: Simulator, target: str
) -> None:
    sim.script("overloaded", provider="anthropic")
    transport = gateway(sim, "anthropic", target)
    async with (
        anthropic_sdk(sim, transport) as sdk,
        sdk.messages.stream(model=CLAUDE, max_tokens=100, messages=HI) as stream,
    ):
        pieces = [piece async for piece in stream.text_stream]
        message = await stream.get_final_message()
    text = "".join(pieces)
    assert len(pieces) > 1 and text.startswith(f"Simulated answer from {target}/")
    assert message.content[0].type == "text" and message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(text.split())
    assert len(served_by(sim, target)) == 1 and keys_were_kept_apart(sim)


# -- the google-genai SDK, answered by OpenAI and Anthropic ----------------------------------


@pytest.mark.parametrize("target", ["openai", "anthropic"])
@pytest.mark.usefixtures("asyncio_only")
async def test_genai_generate_content_is_answered_by_another_provider(
    sim: Simulator, target: str
) -> None:
    sim.script("overloaded", provider="gemini")
    client = genai_sdk(sim, gateway(sim, "gemini", target))
    reply = await client.aio.models.generate_content(model=GEMINI, contents="Hi")
    text = reply.text or ""
    assert text.startswith(f"Simulated answer from {target}/{TARGETS[target]}")
    assert reply.candidates and reply.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert reply.usage_metadata is not None
    usage = (reply.usage_metadata.prompt_token_count, reply.usage_metadata.candidates_token_count)
    assert usage == expected_usage(sim, text)
    assert reply.sdk_http_response is not None and reply.sdk_http_response.headers is not None
    assert reply.sdk_http_response.headers["x-failover-provider"] == target
    assert keys_were_kept_apart(sim)


@pytest.mark.parametrize("target", ["openai", "anthropic"])
@pytest.mark.usefixtures("asyncio_only")
async def test_genai_generate_content_stream_is_answered_by_another_provider(
    sim: Simulator, target: str
) -> None:
    sim.script("overloaded", provider="gemini")
    client = genai_sdk(sim, gateway(sim, "gemini", target))
    pieces = [
        chunk
        async for chunk in await client.aio.models.generate_content_stream(
            model=GEMINI, contents="Hi"
        )
    ]
    text = "".join(chunk.text or "" for chunk in pieces)
    assert len(pieces) > 2 and text.startswith(f"Simulated answer from {target}/")
    last = pieces[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == len(text.split())
    assert keys_were_kept_apart(sim)


def test_genai_sync_client_is_answered_by_openai(sync_sim: Simulator) -> None:
    sync_sim.script("overloaded", provider="gemini")
    transport = gateway(sync_sim, "gemini", "openai")
    with httpx2.Client(transport=transport) as http:
        options = genai_types.HttpOptions(
            base_url=sync_sim.base_url("gemini"),
            httpx_client=http,
            retry_options=genai_types.HttpRetryOptions(attempts=1),
        )
        client = genai.Client(api_key=SDK_KEY, http_options=options)
        whole = client.models.generate_content(model=GEMINI, contents="Hi").text or ""
        streamed = "".join(
            chunk.text or ""
            for chunk in client.models.generate_content_stream(model=GEMINI, contents="Hi")
        )
    assert whole == streamed and whole.startswith(f"Simulated answer from openai/{GPT}")
    assert len(served_by(sync_sim, "openai")) == 2 and keys_were_kept_apart(sync_sim)


# -- the OpenAI Responses API, answered by Anthropic ------------------------------------------


async def test_openai_responses_are_answered_by_anthropic(sim: Simulator) -> None:
    transport = ResilientTransport(
        manager(sim), provider="openai", fallback_models=[f"anthropic/{CLAUDE}"]
    )
    sim.script("overloaded", provider="openai")
    async with openai_sdk(sim, transport) as sdk:
        raw = await sdk.responses.with_raw_response.create(
            model=GPT, input="Hi", instructions="Be brief.", max_output_tokens=50
        )
        reply = raw.parse()
        async with sdk.responses.stream(model=GPT, input="Hi") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
    assert reply.output_text.startswith(f"Simulated answer from anthropic/{CLAUDE}")
    assert reply.status == "completed" and reply.instructions == "Be brief."
    assert raw.headers["x-failover-provider"] == "anthropic"
    assert reply.usage is not None and reply.usage.output_tokens == len(reply.output_text.split())
    assert len(deltas) > 1 and "".join(deltas) == final.output_text == reply.output_text
    assert final.status == "completed" and final.model == CLAUDE
    assert all(r.body.get("system") for r in served_by(sim, "anthropic")[:1])
    assert keys_were_kept_apart(sim)


# -- every step failing: the SDK's own error ------------------------------------------------


async def test_every_step_rate_limited_gives_the_openai_sdk_its_rate_limit_error(
    sim: Simulator,
) -> None:
    sim.script(Behavior("rate_limit", retry_after=20), provider="openai")
    sim.script(Behavior("rate_limit", retry_after=30), provider="anthropic")
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        with pytest.raises(openai.RateLimitError) as first:
            await sdk.chat.completions.create(model=GPT, messages=HI)
        with pytest.raises(openai.RateLimitError) as again:  # every key cooling: no call
            await sdk.chat.completions.create(model=GPT, messages=HI, stream=True)
    assert int(first.value.response.headers["retry-after"]) >= 20
    assert first.value.code == "rate_limit_exceeded"
    assert int(again.value.response.headers["retry-after"]) >= 19
    assert sim.calls(provider="openai") == 2 and sim.calls(provider="anthropic") == 1


async def test_every_step_overloaded_gives_the_anthropic_sdk_its_overloaded_error(
    sim: Simulator,
) -> None:
    for provider in ("anthropic", "openai", "gemini"):
        sim.script(Behavior("overloaded", retry_after=7), provider=provider)
    transport = gateway(sim, "anthropic", "openai", "gemini")
    async with anthropic_sdk(sim, transport) as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await sdk.messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    error = caught.value
    assert type(error).__name__ == "OverloadedError" and error.status_code == 529
    assert error.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": any_text},
    }
    assert "retry-after" in error.response.headers
    assert served_by(sim, "gemini") == [] and sim.calls(provider="gemini") >= 1


@pytest.mark.usefixtures("asyncio_only")
async def test_every_step_rate_limited_gives_genai_its_resource_exhausted_error(
    sim: Simulator,
) -> None:
    for provider in ("gemini", "openai"):
        sim.script(Behavior("rate_limit", retry_after=12), provider=provider)
    transport = gateway(sim, "gemini", "openai")
    with pytest.raises(genai_errors.ClientError) as caught:
        await genai_sdk(sim, transport).aio.models.generate_content(model=GEMINI, contents="Hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    delays = [d.get("retryDelay") for d in caught.value.details["error"].get("details", [])]
    assert any(delay and float(delay.rstrip("s")) >= 12 for delay in delays)


# -- what cannot cross providers -------------------------------------------------------------


def _audio_message() -> list[Any]:
    audio = base64.b64encode(b"RIFF....WAVEfmt ").decode()
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is said here?"},
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
            ],
        }
    ]


async def test_an_audio_part_skips_the_provider_without_audio_and_names_it(
    sim: Simulator,
) -> None:
    sim.script("overloaded", provider="openai")
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model=GPT, messages=_audio_message())
    assert "anthropic/claude-haiku-4-5 cannot take input_audio" in caught.value.message
    assert sim.calls(provider="anthropic") == 0


async def test_an_audio_part_goes_on_to_a_provider_that_takes_it(sim: Simulator) -> None:
    sim.script("overloaded", provider="openai")
    transport = gateway(sim, "openai", "anthropic", "gemini")
    async with openai_sdk(sim, transport) as sdk:
        reply = await sdk.chat.completions.create(model=GPT, messages=_audio_message())
    assert (reply.choices[0].message.content or "").startswith("Simulated answer from gemini/")
    [request] = served_by(sim, "gemini")
    parts = request.body["contents"][0]["parts"]
    assert {
        "inlineData": {
            "mimeType": "audio/wav",
            "data": base64.b64encode(b"RIFF....WAVEfmt ").decode(),
        }
    } in parts
    assert sim.calls(provider="anthropic") == 0


async def test_a_request_our_provider_can_take_still_passes_through(sim: Simulator) -> None:
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=GPT, messages=_audio_message()
        )
    assert raw.headers["x-failover-provider"] == "openai" and raw.headers["x-failover-model"] == GPT
    [request] = served_by(sim, "openai")
    assert request.body["messages"] == _audio_message()


async def test_a_previous_response_id_skips_other_providers_and_names_the_field(
    sim: Simulator, upstream: Upstream
) -> None:
    async def overloaded(request: Request) -> Response:
        error = {"message": "The server is overloaded", "type": "server_error"}
        return JSONResponse({"error": error}, status_code=503)

    root = upstream.mount(overloaded)
    profiles = [
        AuthProfile("openai-a", "openai", OA_A, base_url=root + "/v1"),
        AuthProfile("anthropic", "anthropic", AN_A, base_url=sim.base_url("anthropic")),
    ]
    transport = ResilientTransport(
        profiles, provider="openai", fallback_models=[f"anthropic/{CLAUDE}"]
    )
    async with sdk_on(openai.AsyncOpenAI, root + "/v1", transport) as sdk:
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.responses.create(
                model=GPT, input="And then?", previous_response_id="resp_unknown"
            )
        reply = await sdk.responses.create(model=GPT, input="Hi")  # no state: it crosses
    message = caught.value.message
    assert "The server is overloaded" in message
    assert f"anthropic/{CLAUDE}: previous_response_id cannot be sent" in message
    assert set(upstream.keys_seen(root)) == {OA_A} and len(served_by(sim, "anthropic")) == 1
    assert reply.output_text.startswith(f"Simulated answer from anthropic/{CLAUDE}")


async def test_an_endpoint_the_gateway_does_not_translate_stays_with_our_provider(
    sim: Simulator,
) -> None:
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        vectors = await sdk.embeddings.create(model="text-embedding-3-small", input="Hi")
        sim.script("overloaded", provider="openai")
        with pytest.raises(openai.InternalServerError) as caught:  # our provider's own reply
            await sdk.embeddings.create(model="text-embedding-3-small", input="Hi")
    assert len(vectors.data[0].embedding) > 0
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-failover-provider"] == "openai"
    assert caught.value.message.endswith(" - The server is overloaded (simulated)")
    assert sim.calls(provider="anthropic") == 0


# -- streams that break ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["malformed", "reset"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_translated_reply_failing_before_its_first_chunk_falls_over(
    sim: Simulator, kind: str, stream: bool
) -> None:
    sim.script("overloaded", provider="openai")
    sim.script(kind, provider="anthropic")
    transport = gateway(sim, "openai", "anthropic", "gemini")
    async with openai_sdk(sim, transport) as sdk:
        create = sdk.chat.completions.with_raw_response.create
        if stream:
            raw: Any = await create(model=GPT, messages=HI, stream=True)
            text = "".join(
                [c.choices[0].delta.content or "" async for c in raw.parse() if c.choices]
            )
        else:
            raw = await create(model=GPT, messages=HI)
            text = raw.parse().choices[0].message.content or ""
    assert raw.headers["x-failover-provider"] == "gemini"
    assert text.startswith("Simulated answer from gemini/")
    failed = [p["name"] for p in transport.status()["profiles"] if p["failure_count"]]
    assert "anthropic" in failed


async def test_a_translated_stream_truncated_after_its_first_chunk_raises_in_the_sdk(
    sim: Simulator,
) -> None:
    sim.script("overloaded", provider="openai")
    sim.script("truncate", provider="anthropic")
    transport = gateway(sim, "openai", "anthropic", "gemini")
    async with openai_sdk(sim, transport) as sdk:
        stream = await sdk.chat.completions.create(model=GPT, messages=HI, stream=True)
        received: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            await _read_into(stream, received)
    assert "".join(received).startswith("Simulated") and "terminator" in caught.value.message
    assert sim.calls(provider="gemini") == 0  # too late to fall over
    failed = [p["name"] for p in transport.status()["profiles"] if p["failure_count"]]
    assert "anthropic" in failed


async def _read_into(stream: Any, texts: list[str]) -> None:
    """Read an openai SDK chat stream, its texts into ``texts`` as they come."""
    async for chunk in stream:
        texts.extend(choice.delta.content or "" for choice in chunk.choices)


def test_a_sync_translated_stream_truncated_after_its_first_chunk_raises(
    sync_sim: Simulator,
) -> None:
    sync_sim.script("overloaded", provider="openai")
    sync_sim.script("truncate", provider="anthropic")
    transport = gateway(sync_sim, "openai", "anthropic")
    with httpx2.Client(transport=transport) as http:
        sdk = sdk_on(openai.OpenAI, sync_sim.base_url("openai"), http)
        stream = sdk.chat.completions.create(model=GPT, messages=HI, stream=True)
        with pytest.raises(openai.APIError) as caught:
            for _ in stream:
                pass
    assert "terminator" in caught.value.message


async def test_an_sdk_leaving_a_translated_stream_early_releases_it(sim: Simulator) -> None:
    sim.script("overloaded", provider="anthropic")
    transport = gateway(sim, "anthropic", "openai")
    successes: list[Any] = []
    transport.on_success(successes.append)
    async with anthropic_sdk(sim, transport) as sdk:
        stream = await sdk.messages.create(model=CLAUDE, max_tokens=50, messages=HI, stream=True)
        async for event in stream:
            if event.type == "content_block_delta":
                break
        await stream.close()
        message = await sdk.messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    assert message.content[0].type == "text"
    assert not [
        p for p in transport.status()["profiles"] if p["failure_count"] and p["name"] == "openai-a"
    ]


# -- our own provider's steps: pass-through, byte for byte ----------------------------------


_ODD_REPLY = (
    b'{"id":"chatcmpl-1",   "object":"chat.completion","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"caf\\u00e9"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,'
    b'"total_tokens":2},  "x_vendor": [1, 2.50, {"k": null}]}'
)
_ODD_STREAM = sse(
    {"id": "c1", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
    {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    "[DONE]",
)


async def test_our_own_steps_pass_bodies_through_byte_for_byte(upstream: Upstream) -> None:
    received: list[bytes] = []

    async def answer(request: Request) -> Response:
        body = await request.body()
        received.append(body)
        if json.loads(body).get("stream"):
            return Response(_ODD_STREAM, media_type="text/event-stream")
        return Response(_ODD_REPLY, media_type="application/json")

    root = upstream.mount(answer)
    profiles = [
        AuthProfile("openai-a", "openai", OA_A, base_url=root + "/v1"),
        AuthProfile("anthropic", "anthropic", AN_A, base_url="http://127.0.0.1:9"),
    ]
    transport = ResilientTransport(
        profiles, provider="openai", fallback_models=[f"anthropic/{CLAUDE}", "gpt-4o"]
    )
    sent = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "caf\\u00e9"}]}'
    streamed = sent[:-1] + b', "stream": true}'
    async with httpx2.AsyncClient(transport=transport) as http:
        whole = await http.post(root + "/v1/chat/completions", content=sent)
        async with http.stream("POST", root + "/v1/chat/completions", content=streamed) as reply:
            pieces = [piece async for piece in reply.aiter_raw()]
    assert whole.content == _ODD_REPLY and b"".join(pieces) == _ODD_STREAM
    assert received == [sent, streamed]
    assert whole.headers["x-failover-provider"] == "openai"


# -- OpenAI Responses state: the key that made a response continues it ---------------------


def _response_object(response_id: str, text: str) -> dict[str, Any]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1,
        "model": GPT,
        "status": "completed",
        "output": [message],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }


async def test_a_continued_response_goes_to_the_key_that_made_it(upstream: Upstream) -> None:
    made: dict[str, str] = {}  # response id -> the key that made it
    counter = iter(range(1, 100))

    async def responses(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        body = json.loads(await request.body())
        previous = body.get("previous_response_id")
        if previous is not None and made.get(previous) != key:
            error = {"message": f"Previous response with id '{previous}' not found."}
            return JSONResponse({"error": error}, status_code=404)
        response_id = f"resp_{next(counter)}"
        made[response_id] = key
        if body.get("stream"):
            created = {"type": "response.created", "response": _response_object(response_id, "")}
            done = {"type": "response.completed", "response": _response_object(response_id, "ok")}
            return Response(sse(created, done, named=True), media_type="text/event-stream")
        return JSONResponse(_response_object(response_id, "ok"))

    root = upstream.mount(responses)
    profiles = [
        AuthProfile("openai-a", "openai", OA_A, base_url=root + "/v1"),
        AuthProfile("openai-b", "openai", OA_B, base_url=root + "/v1"),
    ]
    transport = ResilientTransport(profiles, provider="openai")
    async with sdk_on(openai.AsyncOpenAI, root + "/v1", transport) as sdk:
        first = await sdk.responses.create(model=GPT, input="Hi")
        chain = [first.id]
        for _ in range(3):  # the keys rotate for new requests, never for continuations
            reply = await sdk.responses.create(
                model=GPT, input="And then?", previous_response_id=chain[-1]
            )
            chain.append(reply.id)
        async with sdk.responses.stream(
            model=GPT, input="Go on", previous_response_id=chain[-1]
        ) as stream:
            final = await stream.get_final_response()
        after_stream = await sdk.responses.create(
            model=GPT, input="More", previous_response_id=final.id
        )
        fresh = [(await sdk.responses.create(model=GPT, input="New")).id for _ in range(2)]
    assert after_stream.output_text == "ok"
    assert {made[response_id] for response_id in [*chain, final.id, after_stream.id]} == {OA_A}
    assert {made[response_id] for response_id in fresh} == {OA_A, OA_B}


async def test_a_continued_response_whose_key_is_limited_goes_nowhere_else(
    upstream: Upstream,
) -> None:
    made: dict[str, str] = {}

    async def responses(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        if json.loads(await request.body()).get("previous_response_id"):
            error = {"message": "Rate limit reached", "code": "rate_limit_exceeded"}
            return JSONResponse({"error": error}, status_code=429, headers={"retry-after": "9"})
        made["resp_1"] = key
        return JSONResponse(_response_object("resp_1", "ok"))

    root = upstream.mount(responses)
    clock = FakeClock()
    profiles = FailoverManager(
        clock=clock,
        profiles=[
            AuthProfile("openai-a", "openai", OA_A, base_url=root + "/v1"),
            AuthProfile("openai-b", "openai", OA_B, base_url=root + "/v1"),
            AuthProfile("anthropic", "anthropic", AN_A, base_url="http://127.0.0.1:9"),
        ],
    )
    transport = ResilientTransport(
        profiles, provider="openai", fallback_models=["gpt-4o", f"anthropic/{CLAUDE}"]
    )
    async with sdk_on(openai.AsyncOpenAI, root + "/v1", transport) as sdk:
        await sdk.responses.create(model=GPT, input="Hi")
        with pytest.raises(openai.RateLimitError) as limited:
            await sdk.responses.create(model=GPT, input="More", previous_response_id="resp_1")
        with pytest.raises(openai.RateLimitError) as resting:  # the key rests: no call at all
            await sdk.responses.create(model=GPT, input="More", previous_response_id="resp_1")
    assert made == {"resp_1": OA_A}
    assert upstream.keys_seen(root) == [OA_A, OA_A]  # never the other key, never anthropic
    assert "previous_response_id" in limited.value.message and "'openai-a'" in limited.value.message
    assert int(resting.value.response.headers["retry-after"]) == 9
    assert "'openai-a'" in resting.value.message


async def test_responses_of_our_own_provider_continue_on_the_key_that_made_them(
    sim: Simulator,
) -> None:
    """The simulator keeps each response for the key that made it, as OpenAI does: a
    continuation sent with the other key would get ``previous_response_not_found``."""
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        reply = await sdk.responses.create(model=GPT, input="Hi")
        for number in range(4):  # new requests alternate between the keys meanwhile
            await sdk.responses.create(model=GPT, input="Something else")
            reply = await sdk.responses.create(
                model=GPT, input=f"And then {number}?", previous_response_id=reply.id
            )
        async with sdk.responses.stream(
            model=GPT, input="Go on", previous_response_id=reply.id
        ) as stream:
            final = await stream.get_final_response()
        last = await sdk.responses.create(model=GPT, input="End", previous_response_id=final.id)
    continued = [r for r in sim.requests if r.body.get("previous_response_id")]
    assert len(continued) == 6 and all(r.outcome == "healthy" for r in sim.requests)
    assert len({r.key for r in continued}) == 1 and {r.key for r in sim.requests} == {OA_A, OA_B}
    assert last.output_text.startswith("Simulated answer from openai/")
    assert sim.calls(provider="anthropic") == 0


async def test_a_continued_response_whose_key_fails_is_not_sent_elsewhere(
    sim: Simulator,
) -> None:
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        first = await sdk.responses.create(model=GPT, input="Hi")
        [maker] = {r.key for r in sim.requests}
        sim.script("overloaded", key=maker)
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.responses.create(model=GPT, input="More", previous_response_id=first.id)
        fresh = await sdk.responses.create(model=GPT, input="New")  # goes to another key
    message = caught.value.message
    assert "previous_response_id" in message and "no other key or provider" in message
    assert {r.key for r in sim.requests if r.body.get("previous_response_id")} == {maker}
    assert sim.calls(provider="anthropic") == 0
    assert fresh.output_text.startswith("Simulated answer from openai/")
    assert sim.requests[-1].key != maker


async def test_a_responses_stream_of_our_own_provider_passes_through(sim: Simulator) -> None:
    sim.script("rate_limit", key=OA_A)
    transport = gateway(sim, "openai", "anthropic")
    async with openai_sdk(sim, transport) as sdk:
        async with sdk.responses.stream(model=GPT, input="Hi") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        sim.script("truncate", key=OA_B)
        broken = await sdk.responses.create(model=GPT, input="Hi", stream=True)
        with pytest.raises(openai.APIConnectionError):
            await _read_events(broken)
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text.startswith("Simulated answer from openai/")
    assert [r.key for r in served_by(sim, "openai")] == [OA_B]
    assert sim.calls(provider="anthropic") == 0


async def _read_events(stream: Any) -> None:
    async for _ in stream:
        pass


def test_the_map_of_response_owners_is_bounded() -> None:
    owners = ResponseOwners(limit=3)
    profile = AuthProfile("a", "openai", OA_A)
    manager = FailoverManager(profiles=[profile])
    for number in range(10):
        owners.remember(f"resp_{number}", profile)
    assert len(owners) == 3
    assert owners.owner("resp_9", manager) is profile and owners.owner("resp_0", manager) is None
    manager.update_profile("a", api_key=OA_B)  # another key under the same name
    assert owners.owner("resp_9", manager) is None


# -- configuration --------------------------------------------------------------------------


def test_an_unknown_provider_prefix_is_refused_by_name(sync_sim: Simulator) -> None:
    with pytest.raises(ConfigError, match="'meta-llama'") as caught:
        ResilientTransport(
            manager(sync_sim), provider="openai", fallback_models=["meta-llama/llama-3.1-8b"]
        )
    assert "openai/meta-llama/llama-3.1-8b" in str(caught.value)  # how to name it instead
    profiles = [AuthProfile("groq", "groq", GQ_A, base_url=sync_sim.base_url("groq"))]
    with pytest.raises(ConfigError, match="no auth profile for provider 'openai'") as caught:
        ResilientTransport(profiles, provider="groq", fallback_models=["openai/gpt-oss-120b"])
    assert "groq/openai/gpt-oss-120b" in str(caught.value)


def test_our_own_provider_prefix_stays_a_pass_through_step(sync_sim: Simulator) -> None:
    sync_sim.script("overloaded", model=GPT)
    transport = ResilientTransport(
        manager(sync_sim), provider="openai", fallback_models=["openai/gpt-4o"]
    )
    with httpx2.Client(transport=transport) as http:
        sdk = sdk_on(openai.OpenAI, sync_sim.base_url("openai"), http)
        raw = sdk.chat.completions.with_raw_response.create(model=GPT, messages=HI)
    assert raw.headers["x-failover-model"] == "gpt-4o"
    assert [r.model for r in served_by(sync_sim, "openai")] == ["gpt-4o"]


# -- the client's own HTTP logs -------------------------------------------------------------


async def test_the_clients_http_debug_logs_show_no_key(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    async def echoing(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return JSONResponse(chat_reply("hello"), headers={"x-echo-key": key})

    root = upstream.mount(echoing)
    key = "sk-proj-client-log-key-only-here-05"  # no other engine's: none scrubs it for us
    profiles = [AuthProfile("a", "openai", key, base_url=root + "/v1")]
    with caplog.at_level(logging.DEBUG):
        async with ResilientClient([f"openai/{GPT}"], profiles) as client:
            reply = await client.complete(HI)
    assert reply.text == "hello"
    assert "x-echo-key" in caplog.text  # httpcore logged the reply's headers
    assert key[-12:] not in caplog.text and key[:12] not in caplog.text
