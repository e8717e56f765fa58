"""Protecting calls made through the official SDKs: ResilientTransport and client.call."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import groq
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from failover import (
    AuthProfile,
    FailoverManager,
    OverloadedError,
    ProfileStatus,
    QuotaExceededError,
    RateLimitError,
    ResilientClient,
    ResilientTransport,
)
from failover.classify import classify_exception
from failover.testing import Behavior, Simulator
from tests.conftest import BOTH_BACKENDS, FakeClock, simulator_in_thread

anyio_backend = BOTH_BACKENDS

OPENAI_A = "sk-openai-transport-key-a-0001"
OPENAI_B = "sk-openai-transport-key-b-0002"
GROQ_A = "gsk_groqtransportkeya00000003"
GROQ_B = "gsk_groqtransportkeyb00000004"
ANTH_A = "sk-ant-transport-key-a-000005"
ANTH_B = "sk-ant-transport-key-b-000006"
ALL_KEYS = (OPENAI_A, OPENAI_B, GROQ_A, GROQ_B, ANTH_A, ANTH_B)
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    keys = {"openai": [OPENAI_A, OPENAI_B], "groq": [GROQ_A, GROQ_B], "anthropic": [ANTH_A, ANTH_B]}
    with simulator_in_thread(keys=keys) as simulator:
        yield simulator
        gc.collect()  # SDK clients a test left open close on the loop that opened them
        await anyio.sleep(0.01)


def manager(
    sim: Simulator,
    clock: FakeClock,
    provider: str,
    keys: tuple[str, str],
    base_url: str | None = None,
) -> FailoverManager:
    url = base_url or sim.base_url(provider)
    return FailoverManager(
        clock=clock,
        profiles=[
            AuthProfile(f"{provider}-a", provider, keys[0], base_url=url),
            AuthProfile(f"{provider}-b", provider, keys[1], base_url=url),
        ],
    )


def openai_sdk(sim: Simulator, transport: ResilientTransport) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sdk-key-is-replaced",
        base_url=sim.base_url("openai"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )


async def test_openai_sdk_429_rotates_inside_one_call_and_skips_the_cooling_key(
    sim: Simulator,
    clock: FakeClock,
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=OPENAI_A)
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    sdk = openai_sdk(sim, transport)
    for _ in range(3):
        reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert reply.choices[0].message.content.startswith("Simulated answer")
    assert sim.calls(key=OPENAI_A) == 1 and sim.calls(key=OPENAI_B) == 3
    assert sim.calls(key="sdk-key-is-replaced") == 0
    clock.advance(31)
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert sim.calls(key=OPENAI_A) == 2


async def test_openai_sdk_dead_key_is_disabled(sim: Simulator, clock: FakeClock) -> None:
    sim.script("invalid_key", key=OPENAI_A)
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    sdk = openai_sdk(sim, transport)
    for _ in range(3):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert transport.manager.get_profile("openai-a").status is ProfileStatus.DISABLED
    assert sim.calls(key=OPENAI_A) == 1


async def test_overloaded_model_falls_over_to_the_fallback_model(
    sim: Simulator,
    clock: FakeClock,
) -> None:
    sim.script("overloaded", model="gpt-4o-mini")
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)),
        provider="openai",
        fallback_models=["gpt-4o"],
        sleep=_no_sleep,
    )
    reply = await openai_sdk(sim, transport).chat.completions.create(
        model="gpt-4o-mini", messages=HI
    )
    assert "openai/gpt-4o:" in reply.choices[0].message.content
    assert [r.model for r in sim.requests][-1] == "gpt-4o"


async def _no_sleep(delay: float) -> None:
    return None


async def test_openai_sdk_stream_passes_through(sim: Simulator, clock: FakeClock) -> None:
    sim.script("rate_limit", key=OPENAI_A)
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    stream = await openai_sdk(sim, transport).chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Simulated answer") and sim.calls(key=OPENAI_B) == 1


async def test_every_key_cooling_gives_the_sdk_its_own_rate_limit_error(
    sim: Simulator,
    clock: FakeClock,
) -> None:
    sim.script(Behavior("rate_limit", retry_after=20), provider="openai")
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    sdk = openai_sdk(sim, transport)
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.RateLimitError) as info:  # no key left: a synthetic 429
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert info.value.response.headers["retry-after"] == "20"
    assert sim.calls(provider="openai") == 2


async def test_groq_sdk_on_httpx(sim: Simulator, clock: FakeClock) -> None:
    base = f"{sim.root_url}/groq"  # the groq SDK takes the bare host
    sim.script("rate_limit", key=GROQ_A)
    transport = ResilientTransport(
        manager(sim, clock, "groq", (GROQ_A, GROQ_B), base), provider="groq"
    )
    sdk = groq.AsyncGroq(
        api_key="replaced",
        base_url=base,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    reply = await sdk.chat.completions.create(model="llama-3.1-8b-instant", messages=HI)
    assert reply.choices[0].message.content.startswith("Simulated answer")
    stream = await sdk.chat.completions.create(
        model="llama-3.1-8b-instant", messages=HI, stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert sim.calls(key=GROQ_A) == 1 and sim.calls(key=GROQ_B) == 2


async def test_groq_sdk_call_succeeds_when_its_first_key_gets_503(
    sim: Simulator, clock: FakeClock
) -> None:
    base = f"{sim.root_url}/groq"
    sim.script("overloaded", key=GROQ_A)
    transport = ResilientTransport(
        manager(sim, clock, "groq", (GROQ_A, GROQ_B), base), provider="groq"
    )
    async with httpx.AsyncClient(transport=transport) as http:
        sdk = groq.AsyncGroq(api_key="replaced", base_url=base, max_retries=0, http_client=http)
        reply = await sdk.chat.completions.create(model="llama-3.1-8b-instant", messages=HI)
    assert reply.choices[0].message.content.startswith("Simulated answer")
    assert sim.calls(key=GROQ_A) == 1 and sim.calls(key=GROQ_B) == 1


async def test_anthropic_sdk_stream_helper_reads_a_stream_through_the_transport(
    sim: Simulator, clock: FakeClock
) -> None:
    """The SDK's ``messages.stream`` accumulates the message the API's events describe."""
    sim.script("overloaded", key=ANTH_A)
    transport = ResilientTransport(
        manager(sim, clock, "anthropic", (ANTH_A, ANTH_B)), provider="anthropic"
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(
            api_key="replaced", base_url=sim.base_url("anthropic"), max_retries=0, http_client=http
        )
        async with sdk.messages.stream(
            model="claude-haiku-4-5", max_tokens=20, messages=HI
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            message = await stream.get_final_message()
    assert text.startswith("Simulated answer") and message.content[0].text == text
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert sim.calls(key=ANTH_A) == 1 and sim.calls(key=ANTH_B) == 1


async def test_anthropic_sdk_call_succeeds_when_its_first_key_gets_529(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script("overloaded", key=ANTH_A)
    transport = ResilientTransport(
        manager(sim, clock, "anthropic", (ANTH_A, ANTH_B)), provider="anthropic"
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(
            api_key="replaced", base_url=sim.base_url("anthropic"), max_retries=0, http_client=http
        )
        message = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    assert message.content[0].text.startswith("Simulated answer")
    assert sim.calls(key=ANTH_A) == 1 and sim.calls(key=ANTH_B) == 1


async def test_anthropic_sdk_keys_rotate_in_its_own_header(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script("invalid_key", key=ANTH_A)
    transport = ResilientTransport(
        manager(sim, clock, "anthropic", (ANTH_A, ANTH_B)), provider="anthropic"
    )
    seen: list[tuple[str, str | None, str | None]] = []

    async def record(request: httpx2.Request) -> None:
        seen.append(
            (
                request.url.host,
                request.headers.get("authorization"),
                request.headers.get("x-api-key"),
            )
        )

    sdk = anthropic.AsyncAnthropic(
        api_key="replaced",
        base_url=sim.base_url("anthropic"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport, event_hooks={"request": [record]}),
    )
    message = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI)
    assert message.content[0].text.startswith("Simulated answer")
    assert transport.manager.get_profile("anthropic-a").status is ProfileStatus.DISABLED
    assert sim.calls(key=ANTH_A) == 1 and sim.calls(key=ANTH_B) == 1
    assert sim.calls(key="replaced") == 0


async def test_key_never_leaves_for_another_host_even_on_redirect(clock: FakeClock) -> None:
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        # as sent: the transport may send the SDK's own request, its key removed afterwards
        sent.append(httpx.Request(request.method, request.url, headers=request.headers))
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"location": "https://evil.test/steal"})
        return httpx.Response(200, json={"ok": True})

    profiles = [AuthProfile("a", "openai", OPENAI_A, base_url="https://api.example.test/v1")]
    transport = ResilientTransport(profiles, provider="openai", inner=httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as http:
        reply = await http.post(
            "https://api.example.test/v1/chat/completions",
            json={"model": "gpt-4o-mini"},
            headers={"authorization": "Bearer sdk", "x-api-key": "sdk"},
        )
    assert reply.status_code == 200
    assert [r.url.host for r in sent] == ["api.example.test", "evil.test"]
    assert sent[0].headers["authorization"] == f"Bearer {OPENAI_A}"
    assert "authorization" not in sent[1].headers and "x-api-key" not in sent[1].headers


async def test_request_body_is_replayed_on_every_attempt(clock: FakeClock) -> None:
    bodies: list[bytes] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(429, json={"error": {"message": "slow"}})
        return httpx.Response(200, json={"choices": []})

    m = FailoverManager(
        clock=clock,
        profiles=[AuthProfile("a", "openai", OPENAI_A), AuthProfile("b", "openai", OPENAI_B)],
    )
    transport = ResilientTransport(m, provider="openai", inner=httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=transport) as http:
        reply = await http.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HI},
        )
    assert reply.status_code == 200 and len(bodies) == 2 and bodies[0] == bodies[1]


async def test_no_key_in_logs_or_events_of_sdk_calls(
    sim: Simulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim.script("invalid_key", key=OPENAI_A)
    sim.script("rate_limit", key=OPENAI_B)
    transport = ResilientTransport(  # exhausted at once: this test reads what failing leaves
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)),
        provider="openai",
        wait_for_recovery=False,
    )
    events: list[Any] = []
    for register in (transport.on_failover, transport.on_cooldown, transport.on_exhausted):
        register(events.append)
    with caplog.at_level(logging.DEBUG), pytest.raises(openai.RateLimitError):
        await openai_sdk(sim, transport).chat.completions.create(model="gpt-4o-mini", messages=HI)
    await transport.aclose()
    text = caplog.text + repr(events) + json.dumps(transport.status()) + repr(transport)
    assert events and all(key not in text for key in ALL_KEYS)


def _openai_error(cls: type, status: int, body: dict[str, Any], headers: dict[str, str]) -> Any:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    response = httpx2.Response(status, headers=headers, json=body, request=request)
    return cls(body["error"]["message"], response=response, body=body["error"])


@pytest.mark.parametrize(
    ("error", "expected", "retry_after"),
    [
        (
            _openai_error(
                openai.RateLimitError,
                429,
                {"error": {"message": "slow", "code": "rate_limit_exceeded"}},
                {"retry-after": "7"},
            ),
            RateLimitError,
            7,
        ),
        (
            _openai_error(
                openai.RateLimitError,
                429,
                {"error": {"message": "quota", "code": "insufficient_quota"}},
                {},
            ),
            QuotaExceededError,
            None,
        ),
        (
            anthropic.APIStatusError(
                "overloaded",
                response=httpx2.Response(
                    529, request=httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
                ),
                body={
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                },
            ),
            OverloadedError,
            None,
        ),
        (
            anthropic.RateLimitError(
                "spend",
                response=httpx2.Response(
                    429, request=httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
                ),
                body={
                    "type": "error",
                    "error": {
                        "type": "rate_limit_error",
                        "message": "cap",
                        "details": {"error_code": "enforced_spend_limit_reached"},
                    },
                },
            ),
            QuotaExceededError,
            None,
        ),
        (
            groq.RateLimitError(
                "slow",
                response=httpx.Response(
                    429,
                    headers={"retry-after-ms": "1500"},
                    request=httpx.Request(
                        "POST", "https://api.groq.com/openai/v1/chat/completions"
                    ),
                ),
                body={"error": {"message": "slow"}},
            ),
            RateLimitError,
            1.5,
        ),
        (
            genai_errors.ClientError(
                429,
                {
                    "error": {
                        "code": 429,
                        "status": "RESOURCE_EXHAUSTED",
                        "message": "exhausted",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                                "retryDelay": "45.8s",
                            }
                        ],
                    }
                },
            ),
            RateLimitError,
            45.8,
        ),
        (
            genai_errors.ClientError(
                429,
                {
                    "error": {
                        "code": 429,
                        "status": "RESOURCE_EXHAUSTED",
                        "message": "quota",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                "violations": [
                                    {"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}
                                ],
                            }
                        ],
                    }
                },
            ),
            QuotaExceededError,
            None,
        ),
        (
            openai.APITimeoutError(request=httpx2.Request("POST", "https://api.openai.com")),
            __import__("failover").ProviderTimeoutError,
            None,
        ),
        (
            groq.APIConnectionError(request=httpx.Request("POST", "https://api.groq.com")),
            __import__("failover").ProviderConnectionError,
            None,
        ),
    ],
)
def test_sdk_exceptions_are_classified(
    error: Exception, expected: type, retry_after: float | None
) -> None:
    classified = classify_exception(error)
    assert isinstance(classified, expected), repr(classified)
    assert classified.retry_after == (pytest.approx(retry_after) if retry_after else None)


async def test_client_call_with_a_per_profile_openai_sdk(sim: Simulator, clock: FakeClock) -> None:
    sim.script(Behavior("rate_limit", retry_after=25), key=OPENAI_A)
    sdks: dict[str, openai.AsyncOpenAI] = {}

    async def ask(ctx: Any) -> str:
        sdk = sdks.setdefault(
            ctx.profile.name,
            openai.AsyncOpenAI(api_key=ctx.api_key, base_url=ctx.base_url, max_retries=0),
        )
        reply = await sdk.chat.completions.create(model=ctx.model.id, messages=HI)
        return str(reply.choices[0].message.content)

    client = ResilientClient(
        ["openai/gpt-4o-mini"], manager(sim, clock, "openai", (OPENAI_A, OPENAI_B))
    )
    assert (await client.call(ask)).startswith("Simulated answer")
    profile = client.manager.get_profile("openai-a")
    assert profile.status is ProfileStatus.RATE_LIMITED
    assert profile.cooldown_until - clock.now == pytest.approx(25)


async def test_transport_built_from_a_client_shares_its_keys_and_hooks(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script(Behavior("rate_limit", retry_after=40), key=OPENAI_A)
    client = ResilientClient(
        ["openai/gpt-4o-mini"], manager(sim, clock, "openai", (OPENAI_A, OPENAI_B))
    )
    rotations: list[Any] = []
    client.on_failover(rotations.append)
    transport = ResilientTransport(client, provider="openai")
    await openai_sdk(sim, transport).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert [event.from_profile for event in rotations] == ["openai-a"]
    assert (await client.complete(HI)).profile == "openai-b"  # the client knows A is cooling
    assert sim.calls(key=OPENAI_A) == 1


async def test_a_compressed_error_body_reaches_the_sdk_readable(clock: FakeClock) -> None:
    import gzip

    body = json.dumps({"error": {"message": "Invalid 'temperature'"}}).encode()

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, content=gzip.compress(body), headers={"content-encoding": "gzip"}
        )

    profiles = [AuthProfile("a", "openai", OPENAI_A)]
    transport = ResilientTransport(profiles, provider="openai", inner=httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=transport) as http:
        reply = await http.post("https://api.openai.com/v1/chat/completions", json={"model": "m"})
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "Invalid 'temperature'"


async def test_a_garbled_json_reply_is_failed_over_before_the_sdk_sees_it(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script("malformed", key=OPENAI_A)
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    async with openai_sdk(sim, transport) as sdk:
        reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert reply.choices[0].message.content.startswith("Simulated answer")
    assert sim.calls(key=OPENAI_A) == 1 and sim.calls(key=OPENAI_B) == 1


async def test_a_truncated_stream_is_never_taken_as_complete_by_the_sdk(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script("truncate", provider="openai")
    transport = ResilientTransport(
        manager(sim, clock, "openai", (OPENAI_A, OPENAI_B)), provider="openai"
    )
    async with openai_sdk(sim, transport) as sdk:
        stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        with pytest.raises(openai.APIConnectionError) as caught:
            async for _ in stream:
                pass
    assert "terminator" in str(caught.value.__cause__)
    failed = [p for p in transport.status()["profiles"] if p["failure_count"]]
    assert len(failed) == 1
