"""OpenTelemetry spans and metrics, and the Prometheus exposition, with the real SDK."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import respx
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableGauge
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from failover import AllAttemptsFailed, AuthProfile, FailoverConfig, ResilientClient
from failover.budgets import Budget
from failover.errors import ConfigError
from failover.events import FailoverEvent
from failover.telemetry import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    Telemetry,
    resolve_telemetry,
    serve_prometheus,
)
from failover.testing import Behavior, Simulator

KEYS = {
    "openai": ["sk-otel-openai-key-a-0000000001", "sk-otel-openai-key-b-0000000002"],
    "anthropic": ["sk-ant-otel-key-c-000000000003"],
}
CHAIN = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
PROMPT = "Tell me the secret recipe for the quarterly report"
ASK = [{"role": "user", "content": PROMPT}]
REPLY = "The recipe is forty-two parts diligence"

_DELTA = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}
_globals: tuple[InMemorySpanExporter, InMemoryMetricReader] | None = None


@pytest.fixture
def otel() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The SDK's in-memory exporter and reader, installed once as the global providers."""
    global _globals
    if _globals is None:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader(preferred_temporality=_DELTA)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _globals = exporter, reader
    exporter, reader = _globals
    exporter.clear()
    reader.get_metrics_data()  # start from zero: deltas from here on
    return exporter, reader


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(keys=KEYS, default=Behavior(reply=REPLY)) as simulator:
        yield simulator


def profiles_for(sim: Simulator) -> list[AuthProfile]:
    return [
        AuthProfile(f"{provider}-{index}", provider, key, base_url=sim.base_url(provider))
        for provider, keys in KEYS.items()
        for index, key in enumerate(keys)
    ]


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def keys_cooling(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """The keys-cooling gauge now, after the managers of finished tests are collected."""
    gc.collect()
    return {
        (p.attributes["gen_ai.provider.name"], p.attributes["failover.status"]): p.value
        for p in metric_points(reader).get("failover.client.keys.cooling", [])
    }


def everything_recorded(spans: tuple[ReadableSpan, ...], points: dict[str, list[Any]]) -> str:
    text = "".join(span.to_json() for span in spans)
    for name, data_points in points.items():
        text += name + "".join(json.dumps(dict(p.attributes)) for p in data_points)
    return text


async def test_a_rotation_and_a_fallback_make_one_request_span_with_three_attempts(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, reader = otel
    sim.script(Behavior("rate_limit", retry_after=30), key=KEYS["openai"][0])
    sim.script(Behavior("quota"), key=KEYS["openai"][1])
    cooling_before = keys_cooling(reader)  # other suites' clients share the global gauge
    async with ResilientClient(CHAIN, profiles_for(sim)) as client:
        result = await client.complete(ASK)
    assert result.model == "anthropic/claude-haiku-4-5"

    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.parent is None]
    attempts = [s for s in spans if s.parent is not None]
    assert len(requests) == 1 and len(attempts) == 3
    request = requests[0]
    assert request.name == "chat gpt-4o-mini" and request.kind is SpanKind.CLIENT
    assert request.attributes is not None
    assert request.attributes["gen_ai.operation.name"] == "chat"
    assert request.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert request.attributes["gen_ai.response.model"] == "claude-haiku-4-5"
    assert request.attributes["gen_ai.provider.name"] == "anthropic"
    assert request.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert request.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert request.attributes["failover.profile"] == "anthropic-0"
    assert request.status.status_code is not StatusCode.ERROR

    assert all(
        a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts
    )
    attempts = sorted(attempts, key=lambda s: s.attributes["failover.attempt"])  # type: ignore[index]
    outcomes = [
        (a.attributes["failover.profile"], a.attributes["failover.outcome"])  # type: ignore[index]
        for a in attempts
    ]
    assert outcomes == [("openai-0", "rate_limit"), ("openai-1", "quota"), ("anthropic-0", "ok")]
    limited = attempts[0].attributes
    assert limited is not None
    assert limited["http.response.status_code"] == 429
    assert limited["failover.retry_after"] == 30
    assert limited["error.type"] == "RateLimitError"
    assert limited["server.address"] == "127.0.0.1"
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[2].attributes["gen_ai.provider.name"] == "anthropic"  # type: ignore[index]

    events = [(e.name, dict(e.attributes or {})) for e in request.events]
    names = [name for name, _ in events]
    assert names.count("failover.rotation") == 1 and names.count("failover.fallback") == 1
    assert names.count("failover.cooldown") == 2
    rotation = next(attrs for name, attrs in events if name == "failover.rotation")
    assert rotation["failover.from_profile"] == "openai-0"
    assert rotation["failover.to_profile"] == "openai-1"
    assert rotation["failover.reason"] == "rate_limit"
    fallback = next(attrs for name, attrs in events if name == "failover.fallback")
    assert fallback["failover.from_model"] == "openai/gpt-4o-mini"
    assert fallback["failover.to_model"] == "anthropic/claude-haiku-4-5"

    points = metric_points(reader)
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "claude-haiku-4-5",
    }
    assert duration.count == 1 and tuple(duration.explicit_bounds) == DURATION_BUCKETS
    tokens = {p.attributes["gen_ai.token.type"]: p for p in points["gen_ai.client.token.usage"]}
    assert tokens["input"].sum == result.usage.input_tokens
    assert tokens["output"].sum == result.usage.output_tokens
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    by_outcome = {
        p.attributes["failover.outcome"]: p.value for p in points["failover.client.attempts"]
    }
    assert by_outcome == {"rate_limit": 1, "quota": 1, "ok": 1}
    assert sum(p.value for p in points["failover.client.rotations"]) == 1
    assert sum(p.value for p in points["failover.client.fallbacks"]) == 1
    cooling = {
        (p.attributes["gen_ai.provider.name"], p.attributes["failover.status"]): p.value
        for p in points["failover.client.keys.cooling"]
    }
    for series, more in (
        (("openai", "rate_limited"), 1),
        (("openai", "disabled"), 1),
        (("anthropic", "rate_limited"), 0),
    ):
        assert cooling[series] - cooling_before.get(series, 0) == more

    recorded = everything_recorded(spans, points)
    for secret in (
        *KEYS["openai"],
        *KEYS["anthropic"],
        PROMPT,
        REPLY,
        "current quota",
        "Rate limit",
    ):
        assert secret not in recorded


async def test_a_stream_records_time_to_first_chunk_and_its_usage(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, reader = otel
    async with ResilientClient(CHAIN, profiles_for(sim)) as client, client.stream(ASK) as stream:
        text = "".join([chunk.text async for chunk in stream])
    assert text == REPLY
    (request,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert request.attributes is not None
    assert request.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert request.attributes["gen_ai.usage.output_tokens"] == len(REPLY.split())
    points = metric_points(reader)
    assert len(points["gen_ai.client.operation.time_to_first_chunk"]) == 1
    assert points["gen_ai.client.operation.time_to_first_chunk"][0].count == 1


async def test_a_stream_closed_early_still_ends_its_span(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, _ = otel
    async with ResilientClient(CHAIN, profiles_for(sim)) as client, client.stream(ASK) as stream:
        async for _ in stream:
            break
    (request,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert request.attributes is not None and request.attributes["failover.abandoned"] is True


async def test_a_failed_request_is_an_error_span_with_error_type(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, reader = otel
    sim.script(Behavior("invalid_key"), provider="openai")
    sim.script(Behavior("invalid_key"), provider="anthropic")
    async with ResilientClient(CHAIN, profiles_for(sim)) as client:
        with pytest.raises(AllAttemptsFailed):
            await client.complete(ASK)
    (request,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert request.status.status_code is StatusCode.ERROR
    assert request.attributes is not None
    assert request.attributes["error.type"] == "AllAttemptsFailed"
    assert request.status.description == "AllAttemptsFailed"
    (duration,) = metric_points(reader)["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "AllAttemptsFailed"


async def test_a_retry_is_a_span_event(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, reader = otel
    only_one_key = [p for p in profiles_for(sim) if p.name in ("openai-0", "anthropic-0")]
    config = FailoverConfig(max_retries=1, retry_delay=0.01, jitter=0, retry_before_fallback=True)
    sim.script(Behavior("server_error"), key=KEYS["openai"][0])
    async with ResilientClient(CHAIN, only_one_key, config=config) as client:
        await client.complete(ASK)
    (request,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    retries = [e for e in request.events if e.name == "failover.retry"]
    assert retries and retries[0].attributes["failover.reason"] == "server"  # type: ignore[index]
    assert sum(p.value for p in metric_points(reader)["failover.client.retries"]) == len(retries)


async def test_content_is_recorded_only_when_asked_and_keys_never(sim: Simulator) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider, capture_content=True)
    sim.script(Behavior("rate_limit", retry_after=30), key=KEYS["openai"][0])
    async with ResilientClient(CHAIN, profiles_for(sim), telemetry=telemetry) as client:
        await client.complete(ASK)
    recorded = "".join(span.to_json() for span in exporter.get_finished_spans())
    assert PROMPT in recorded and REPLY in recorded
    for key in (*KEYS["openai"], *KEYS["anthropic"]):
        assert key not in recorded
    (request,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert request.attributes is not None
    messages = json.loads(str(request.attributes["gen_ai.input.messages"]))
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]


async def test_a_streams_content_is_recorded_when_asked(sim: Simulator) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider, capture_content=True)
    async with (
        ResilientClient(CHAIN, profiles_for(sim), telemetry=telemetry) as client,
        client.stream(ASK) as stream,
    ):
        text = "".join([chunk.text async for chunk in stream])
    assert text == REPLY
    recorded = "".join(span.to_json() for span in exporter.get_finished_spans())
    assert PROMPT in recorded and REPLY in recorded


async def test_telemetry_can_be_turned_off(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    exporter, _ = otel
    async with ResilientClient(CHAIN, profiles_for(sim), telemetry=False) as client:
        await client.complete(ASK)
    assert exporter.get_finished_spans() == ()


def test_a_wrong_telemetry_argument_is_named() -> None:
    with pytest.raises(ConfigError, match="telemetry must be"):
        resolve_telemetry("yes")  # type: ignore[arg-type]


async def test_the_prometheus_exposition_parses_and_holds_the_counters(sim: Simulator) -> None:
    exposition = serve_prometheus(0)
    try:
        sim.script(Behavior("rate_limit", retry_after=30), key=KEYS["openai"][0])
        async with ResilientClient(
            CHAIN, profiles_for(sim), telemetry=exposition.telemetry
        ) as client:
            for _ in range(3):
                await client.complete(ASK)
        assert exposition.url is not None
        async with httpx.AsyncClient() as http:
            reply = await http.get(exposition.url)
        assert reply.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(reply.text)}
        attempts = families["failover_client_attempts"]
        assert attempts.type == "counter"
        by_outcome: dict[str, float] = {}
        for sample in attempts.samples:
            if sample.name.endswith("_total"):
                outcome = sample.labels["failover_outcome"]
                by_outcome[outcome] = by_outcome.get(outcome, 0) + sample.value
        assert by_outcome == {"rate_limit": 1, "ok": 3}
        assert families["failover_client_rotations"].type == "counter"
        duration = families["gen_ai_client_operation_duration_seconds"]
        assert duration.type == "histogram"
        count = next(s for s in duration.samples if s.name.endswith("_count"))
        assert count.value == 3
        assert "failover_client_keys_cooling" in families
        for key in (*KEYS["openai"], *KEYS["anthropic"]):
            assert key not in reply.text
        assert exposition.text().count("failover_client_attempts") > 0
    finally:
        exposition.close()


def test_serve_prometheus_checks_the_port() -> None:
    with pytest.raises(ConfigError, match="port must be"):
        serve_prometheus(70000)


@pytest.mark.parametrize(
    "install",
    [
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry import trace\n"
        "trace.set_tracer_provider(TracerProvider())",
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry import metrics\n"
        "metrics.set_meter_provider(MeterProvider())",
    ],
    ids=["traces", "metrics"],
)
def test_nothing_is_done_per_request_until_an_sdk_is_installed(install: str) -> None:
    """Not even the events: an engine attached before the SDK makes none for telemetry's
    sake, and is heard from the moment one is installed."""
    code = f"""
from failover import FailoverManager
from failover.catalog import default_catalog
from failover.events import FailoverEvent, HookDispatcher
from failover.telemetry import default_telemetry

telemetry = default_telemetry()
chain = [default_catalog.resolve("openai/gpt-4o-mini")]
hooks = HookDispatcher()
telemetry.attach(hooks, FailoverManager())
assert telemetry is not None and not telemetry.recording()
assert telemetry.start_request("chat", "req-a", chain) is None
assert not hooks.wants(FailoverEvent)
{install}
assert telemetry.recording()
assert telemetry.start_request("chat", "req-b", chain) is not None
assert hooks.wants(FailoverEvent)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def test_an_sdk_call_through_the_transport_is_one_request_span(sim: Simulator) -> None:
    import httpx2
    import openai

    from failover import ResilientTransport

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sim.script(Behavior("rate_limit", retry_after=30), key=KEYS["openai"][0])
    openai_profiles = [p for p in profiles_for(sim) if p.provider == "openai"]
    transport = ResilientTransport(
        openai_profiles, provider="openai", telemetry=Telemetry(tracer_provider=provider)
    )
    sdk = openai.AsyncOpenAI(
        api_key="replaced-by-the-transport",
        base_url=sim.base_url("openai"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    async with sdk:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.parent is None]
    outcomes = [s.attributes["failover.outcome"] for s in spans if s.parent is not None]  # type: ignore[index]
    assert request.name == "chat gpt-4o-mini" and sorted(outcomes) == ["ok", "rate_limit"]
    assert [e.name for e in request.events].count("failover.rotation") == 1


async def test_every_telemetry_on_one_meter_provider_feeds_the_keys_cooling_gauge(
    sim: Simulator, otel: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    _, reader = otel
    groq_key = "gsk_telemetry_groq_key_000000001"
    sim.script(Behavior("rate_limit", retry_after=30), key=groq_key)
    profiles = [
        AuthProfile("groq-limited", "groq", groq_key, base_url=sim.base_url("groq")),
        *profiles_for(sim),
    ]
    own_tracing = Telemetry(tracer_provider=TracerProvider())  # the global meter provider
    before = keys_cooling(reader).get(("groq", "rate_limited"), 0)
    async with ResilientClient(
        ["groq/llama-3.1-8b-instant", *CHAIN], profiles, telemetry=own_tracing
    ) as client:
        await client.complete(ASK)
        cooling = keys_cooling(reader)
    assert cooling[("groq", "rate_limited")] - before == 1


async def test_a_hedged_request_has_both_attempts_and_a_hedge_event(sim: Simulator) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sim.script(Behavior("hang"), provider="openai")  # never in time
    async with ResilientClient(
        CHAIN,
        profiles_for(sim),
        hedge_after=0.05,
        telemetry=Telemetry(tracer_provider=provider),
    ) as client:
        result = await client.complete(ASK)
    assert result.profile == "anthropic-0"  # the hedge goes to another endpoint
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.parent is None]
    attempts = {
        s.attributes["failover.profile"]: s.attributes["failover.outcome"]  # type: ignore[index]
        for s in spans
        if s.parent is not None
    }
    assert attempts == {"openai-0": "cancelled", "anthropic-0": "ok"}
    (hedge,) = [e for e in request.events if e.name == "failover.hedge"]
    assert hedge.attributes is not None and hedge.attributes["failover.to_profile"] == "anthropic-0"


# -- admission: spend, budget remaining, the line -------------------------------------------

GPT = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-haiku-4-5"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


def own_otel() -> tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader]:
    """A Telemetry on providers of its own (its gauges watch only this test's clients)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader(preferred_temporality=_DELTA)
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    return telemetry, exporter, reader


def openai_reply(prompt: int = 10, completion: int = 5) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
        },
    )


def by_attributes(points: list[Any], *names: str) -> dict[tuple[Any, ...], Any]:
    return {tuple(p.attributes[name] for name in names): p for p in points}


@respx.mock
async def test_charges_are_counted_per_budget_scope_and_what_is_left_is_a_gauge() -> None:
    respx.post(OPENAI_URL).mock(return_value=openai_reply())
    respx.post(ANTHROPIC_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [{"type": "text", "text": "claude"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        )
    )
    telemetry, exporter, reader = own_otel()
    budgets = [
        Budget(usd=2.0, per="day"),
        Budget(usd=1.0, per="hour"),
        Budget(usd=0.5, per=600, scope="tag:tenant-a"),
        Budget(usd=0.001, per="day", scope=f"model:{GPT}"),  # one small request fits
    ]
    keys = [
        AuthProfile("a", "openai", KEYS["openai"][0]),
        AuthProfile("c", "anthropic", KEYS["anthropic"][0]),
    ]
    moves: list[FailoverEvent] = []
    async with ResilientClient([GPT, CLAUDE], keys, budgets=budgets, telemetry=telemetry) as client:
        client.on_failover(moves.append)
        first = await client.complete(ASK, max_tokens=100, tags="tenant-a")
        second = await client.complete(ASK, max_tokens=100_000)  # over the model's budget
    assert (first.model, second.model) == (GPT, CLAUDE)
    assert [m.reason for m in moves] == ["over_budget"]
    assert first.cost_usd and second.cost_usd

    points = metric_points(reader)
    spend = {
        key: p.value
        for key, p in by_attributes(
            points["failover.client.budget.spend"], "failover.budget.scope"
        ).items()
    }
    assert spend == {
        ("client",): pytest.approx(first.cost_usd + second.cost_usd),  # day and hour: once
        ("tag:tenant-a",): pytest.approx(first.cost_usd),
        (f"model:{GPT}",): pytest.approx(first.cost_usd),
    }
    left = {
        key: p.value
        for key, p in by_attributes(
            points["failover.client.budget.remaining"],
            "failover.budget.scope",
            "failover.budget.window",
        ).items()
    }
    assert left == {
        ("client", "day"): pytest.approx(2.0 - first.cost_usd - second.cost_usd),
        ("client", "hour"): pytest.approx(1.0 - first.cost_usd - second.cost_usd),
        ("tag:tenant-a", "600s"): pytest.approx(0.5 - first.cost_usd),
        (f"model:{GPT}", "day"): pytest.approx(0.001 - first.cost_usd),
    }
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.parent is None]
    assert [s.attributes["failover.budget.scopes"] for s in requests] == [  # type: ignore[index]
        ("client", "tag:tenant-a", f"model:{GPT}"),
        ("client",),
    ]
    assert requests[1].attributes["failover.budget.charged_usd"] == pytest.approx(  # type: ignore[index]
        second.cost_usd
    )
    assert KEYS["openai"][0] not in everything_recorded(spans, points)


@respx.mock
async def test_the_queue_length_sums_every_engines_line_and_each_wait_is_recorded() -> None:
    release, both = anyio.Event(), anyio.Event()
    arrived: list[str] = []

    async def held(request: httpx.Request) -> httpx.Response:
        arrived.append(request.headers["authorization"])
        if len(arrived) == 2:
            both.set()
        await release.wait()
        return openai_reply()

    respx.post(OPENAI_URL).mock(side_effect=held)
    telemetry, exporter, reader = own_otel()
    clients = [
        ResilientClient(
            [GPT],
            [AuthProfile("a", "openai", key, max_in_flight=1)],
            telemetry=telemetry,
        )
        for key in KEYS["openai"]  # two engines, two lines, one gauge
    ]

    waits: list[Any] = []  # each read of the reader takes the histogram's points since

    def queue_length() -> Any:
        points = metric_points(reader)
        waits.extend(points.get("failover.client.queue.wait_time", []))
        (point,) = points["failover.client.queue.length"]
        return point.value

    assert queue_length() == 0
    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(client.complete, ASK)
        await both.wait()  # each key holds its one request in flight
        for client in clients:
            group.start_soon(client.complete, ASK)  # no room: it waits in its engine's line
        for _ in range(500):  # the gauge is read, not awaited
            if queue_length() == 2:
                break
            await anyio.sleep(0.01)
        assert queue_length() == 2
        release.set()
    assert queue_length() == 0
    for client in clients:
        await client.aclose()

    waits.extend(metric_points(reader).get("failover.client.queue.wait_time", []))
    requests = [s for s in exporter.get_finished_spans() if s.parent is None]
    queued = [e for s in requests for e in s.events if e.name == "failover.queued"]
    assert sum(w.count for w in waits) == len(queued) >= 2  # both waiters, once or more
    assert {w.attributes["gen_ai.request.model"] for w in waits} == {"gpt-4o-mini"}
    assert sum(w.sum for w in waits) == pytest.approx(
        sum(e.attributes["failover.queue.wait_time"] for e in queued),
        abs=0.01,  # type: ignore[index]
    )
    assert sum(1 for s in requests if any(e.name == "failover.queued" for e in s.events)) == 2
