"""Observability: the OpenTelemetry spans and metrics of one failover, on the simulator.

The application installs an OpenTelemetry SDK (here with in-memory exporters, to print what
was recorded; in production an OTLP exporter); failover records through the global
providers on its own. The first OpenAI key is rate-limited, the second is out of quota, so
the request rotates once, falls over to Anthropic once, and succeeds.

    pip install 'llm-failover[prometheus]'   # the SDK (and the Prometheus exporter)
    python examples/observability.py
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, ResilientClient

try:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example needs the OpenTelemetry SDK and the local simulator: pip install 'llm-failover[prometheus,sim]'"
    ) from None

# 1. What the application does once at start-up: install the SDK as the global providers.
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def show(span: ReadableSpan, children: list[ReadableSpan]) -> None:
    attributes = dict(span.attributes or {})
    took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    print(f"span {span.name!r} ({span.kind.name}, {took:.0f} ms)")
    for key in sorted(attributes):
        if key.startswith(("gen_ai.", "failover.", "error.")):
            print(f"    {key} = {attributes[key]}")
    for child in sorted(children, key=lambda s: s.start_time or 0):
        found = dict(child.attributes or {})
        outcome = found["failover.outcome"]
        status = found.get("http.response.status_code")
        print(
            f"  attempt {found['failover.attempt']}: {child.name} via {found['failover.profile']}"
            f" at {found.get('server.address')}: {outcome}"
            + (f" (HTTP {status})" if status else "")
        )
    for event in span.events:
        details = ", ".join(f"{k}={v}" for k, v in (event.attributes or {}).items())
        print(f"  event {event.name}: {details}")


async def main() -> None:
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=30), key="sk-openai-main-0000000001")
        sim.script(Behavior("quota"), key="sk-openai-spare-000000002")
        profiles = [
            AuthProfile(
                "openai-main", "openai", "sk-openai-main-0000000001",
                base_url=sim.base_url("openai"),
            ),
            AuthProfile(
                "openai-spare", "openai", "sk-openai-spare-000000002",
                base_url=sim.base_url("openai"),
            ),
            AuthProfile(
                "claude", "anthropic", "sk-ant-claude-00000000003",
                base_url=sim.base_url("anthropic"),
            ),
        ]  # fmt: skip
        chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
        # 2. No telemetry argument: failover uses the global providers installed above.
        async with ResilientClient(chain, profiles) as client:
            result = await client.complete([{"role": "user", "content": "Hello!"}])
        print(f"answer from {result.model} via {result.profile}\n")

    finished = spans.get_finished_spans()
    for request in (s for s in finished if s.parent is None):
        show(
            request,
            [s for s in finished if s.parent and s.parent.span_id == request.context.span_id],
        )

    print("\nmetrics:")
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = f"count={point.count} sum={point.sum:.4g}"  # type: ignore[union-attr]
                    labels = ", ".join(f"{k}={v}" for k, v in sorted(point.attributes.items()))
                    print(f"  {metric.name} {{{labels}}} {value}")


if __name__ == "__main__":
    asyncio.run(main())
