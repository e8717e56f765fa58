"""OpenTelemetry traces and metrics, after the GenAI semantic conventions.

One span per request (``chat {model}``) with a child span per attempt and span events for
every retry, key rotation, cooldown and model fallback; the GenAI client metrics
(``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``) and the library's own (``failover.client.*``),
admission's among them: dollars charged per budget scope (``budget.spend``) and left
(``budget.remaining``), the time requests waited in the line (``queue.wait_time``) and how
many wait now (``queue.length``).

Everything goes through the OpenTelemetry *API* (the ``otel`` extra): nothing is recorded
until the application installs an SDK, and a client pays nothing for it when
``opentelemetry-api`` is not installed. Keys are never recorded; prompts, completions and
provider error messages only with ``capture_content=True``.

``opentelemetry`` is imported when a :class:`Telemetry` is created, never by
``import failover``.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from failover.errors import ConfigError, ProviderError
from failover.events import (
    CooldownEvent,
    Event,
    FailoverEvent,
    HedgeEvent,
    HookDispatcher,
    RecoveredEvent,
    RetryEvent,
)
from failover.telemetry_conventions import (
    COOLING_STATUSES,
    DURATION_BUCKETS,
    FIRST_CHUNK_BUCKETS,
    PROVIDERS_FROM_ENVIRONMENT,
    SCHEMA_URL,
    TOKEN_BUCKETS,
    budget_window,
    event_attributes,
    globals_unset,
    messages_json,
    package_version,
    provider_name,
    proxy_meter_provider,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider, Observation
    from opentelemetry.trace import Span, TracerProvider

    from failover.budgets import Budget, BudgetLedger
    from failover.catalog import ModelEntry, TokenUsage
    from failover.profiles import FailoverManager
    from failover.recovery import RecoveryLine
    from failover.request import AttemptContext


__all__ = [
    "DURATION_BUCKETS",
    "FIRST_CHUNK_BUCKETS",
    "SCHEMA_URL",
    "TOKEN_BUCKETS",
    "PrometheusExposition",
    "RequestTelemetry",
    "Telemetry",
    "default_telemetry",
    "provider_name",
    "resolve_telemetry",
    "serve_prometheus",
]


class Telemetry:
    """Where failover sends its spans and metrics.

    Args:
        tracer_provider: Your own TracerProvider (default: the global one).
        meter_provider: Your own MeterProvider (default: the global one).
        capture_content: Also record the messages, the completion text and providers'
            error messages. Off by default, as the conventions advise: they may hold
            personal data. Keys are never recorded either way.

    Raises:
        ConfigError: ``opentelemetry-api`` is not installed (``pip install
            'llm-failover[otel]'``).

    Example:
        >>> telemetry = Telemetry(tracer_provider=my_provider)  # doctest: +SKIP
        >>> client = ResilientClient(chain, profiles, telemetry=telemetry)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            raise ConfigError(
                "telemetry needs opentelemetry-api: pip install 'llm-failover[otel]'"
            ) from None

        self.capture_content = bool(capture_content)
        self._trace = trace
        self._metrics = metrics
        # On the global providers, nothing is recorded before the application installs an
        # SDK; until then requests skip telemetry altogether (see `recording`).
        self._own_provider = tracer_provider is not None or meter_provider is not None
        self._sdk_installed = self._own_provider  # own providers record from the start
        # engines' hooks not listened to yet: nothing would record their events, so they
        # are not even made until something records (see `recording`)
        self._unheard: weakref.WeakSet[HookDispatcher] = weakref.WeakSet()
        self._hearing = threading.Lock()
        import opentelemetry.metrics._internal as metrics_internal

        self._metrics_internal = metrics_internal
        # whether "no SDK yet" can be read from the two globals alone (see globals_unset)
        self._unset_readable = (
            not self._own_provider
            and not PROVIDERS_FROM_ENVIRONMENT
            and hasattr(trace, "_TRACER_PROVIDER")
            and hasattr(metrics_internal, "_METER_PROVIDER")
        )
        self._no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self._no_metrics: tuple[type, ...] = (metrics.NoOpMeterProvider, *proxy_meter_provider())
        self.tracer = trace.get_tracer(
            "failover", package_version(), tracer_provider=tracer_provider, schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            "failover", package_version(), meter_provider=meter_provider, schema_url=SCHEMA_URL
        )
        self.meter = meter
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration, failover included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed completion, failover included.",
            explicit_bucket_boundaries_advisory=FIRST_CHUNK_BUCKETS,
        )
        self.attempts = meter.create_counter(
            "failover.client.attempts",
            unit="{attempt}",
            description="Attempts (one key, one model), by outcome.",
        )
        self.fallbacks = meter.create_counter(
            "failover.client.fallbacks",
            unit="{fallback}",
            description="Moves of a request to the next model of the chain.",
        )
        self.rotations = meter.create_counter(
            "failover.client.rotations",
            unit="{rotation}",
            description="Moves of a request to another key of the same model.",
        )
        self.retries = meter.create_counter(
            "failover.client.retries",
            unit="{retry}",
            description="Same-key retries after a transient failure.",
        )
        self.cooldowns = meter.create_counter(
            "failover.client.cooldowns",
            unit="{cooldown}",
            description="Keys taken out of rotation, by status and reason.",
        )
        self.cost = meter.create_counter(
            "failover.client.cost_usd",
            unit="{USD}",
            description="Cost of successful requests from the catalog's prices.",
        )
        self.queue_wait = meter.create_histogram(
            "failover.client.queue.wait_time",
            unit="s",
            description="Time a request waited in the line for a key to recover or for room.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.spend = meter.create_counter(
            "failover.client.budget.spend",
            unit="{USD}",
            description="Dollars charged to spend budgets, by budget scope.",
        )
        self._watched = _watched(meter, meter_provider)
        # requests in flight, for their events; one dropped unfinished is forgotten with it
        self._live: weakref.WeakValueDictionary[str, RequestTelemetry] = (
            weakref.WeakValueDictionary()
        )

    # -- wiring ---------------------------------------------------------------------------

    def attach(
        self, hooks: HookDispatcher, manager: FailoverManager, line: RecoveryLine | None = None
    ) -> None:
        """Listen to an engine's events and watch its manager's keys, budgets and line of
        waiting requests (done by the engine).

        The events are listened to from when anything records (:meth:`recording`): until
        then an engine makes none of them for telemetry's sake.
        """
        with self._hearing:
            if self._sdk_installed:
                self._listen(hooks)
            else:
                self._unheard.add(hooks)
        admission = getattr(manager, "admission", None)
        if admission is not None and admission.budgets:
            admission.ledger  # noqa: B018 - made here, on the engine's thread, not by a scrape
        self._watched.managers.add(manager)
        if line is not None:
            self._watched.lines.add(line)

    def recording(self) -> bool:
        """Whether anything would be recorded: own providers, or an SDK installed globally.

        The global providers can be set once only, so once true this stays true.
        """
        if self._sdk_installed:
            return True
        if globals_unset(self._trace, self._metrics_internal):
            return False
        installed = not isinstance(
            self._trace.get_tracer_provider(), self._no_tracing
        ) or not isinstance(self._metrics.get_meter_provider(), self._no_metrics)
        if installed:
            with self._hearing:  # from now on, every attached engine's events are heard
                for hooks in list(self._unheard):
                    self._listen(hooks)
                self._unheard.clear()
                self._sdk_installed = True
        return installed

    def _listen(self, hooks: HookDispatcher) -> None:
        for event_type in (FailoverEvent, RetryEvent, CooldownEvent, RecoveredEvent, HedgeEvent):
            hooks.add(event_type, self.event)

    def start_request(
        self,
        operation: str,
        request_id: str,
        chain: Sequence[ModelEntry | Sequence[ModelEntry]],
    ) -> RequestTelemetry | None:
        """Open the span of one request over ``chain`` (``None``: nothing would record it).

        A step of the chain may be a group of equivalent models (its first names the span).
        """
        if not self._sdk_installed and (
            # no SDK yet, read straight from the two globals when they tell (as
            # ``globals_unset`` reads them), else asked of recording()
            (
                self._unset_readable
                and self._trace._TRACER_PROVIDER is None
                and self._metrics_internal._METER_PROVIDER is None
            )
            or not self.recording()
        ):
            return None
        request = RequestTelemetry(self, operation, request_id, chain)
        self._live[request_id] = request
        return request

    def event(self, event: Event) -> None:
        """Turn a failover event into a span event of its request and count it."""
        request = self._live.get(event.request_id)
        if isinstance(event, FailoverEvent):
            to_model = event.to_model or ""
            if event.kind == "key":
                self.rotations.add(
                    1,
                    {
                        "gen_ai.provider.name": provider_name(event.from_model.partition("/")[0]),
                        "gen_ai.request.model": event.from_model.partition("/")[2],
                        "failover.reason": event.reason,
                    },
                )
            else:
                self.fallbacks.add(
                    1,
                    {
                        "failover.from_model": event.from_model,
                        "failover.to_model": to_model,
                        "failover.reason": event.reason,
                    },
                )
        elif isinstance(event, RetryEvent):
            self.retries.add(1, {"failover.model": event.model, "failover.reason": event.reason})
        elif isinstance(event, CooldownEvent):
            self.cooldowns.add(
                1,
                {
                    "gen_ai.provider.name": provider_name(event.provider),
                    "failover.status": event.status,
                    "failover.reason": event.reason,
                },
            )
        if request is not None:
            request.add_event(event)

    def _forget(self, request_id: str) -> None:
        self._live.pop(request_id, None)


class _Watched:
    """What the gauges of one meter provider read: managers and engines' lines."""

    __slots__ = ("lines", "managers", "meter_provider")

    def __init__(self, meter_provider: Any) -> None:
        self.meter_provider = meter_provider  # holding it keeps its id valid
        self.managers: weakref.WeakSet[FailoverManager] = weakref.WeakSet()
        self.lines: weakref.WeakSet[RecoveryLine] = weakref.WeakSet()


_gauges: dict[int, _Watched] = {}


def _watched(meter: Any, meter_provider: Any) -> _Watched:
    """The managers and lines behind the gauges of ``meter_provider`` (``None``: global).

    A meter keeps the first callback of a gauge and drops later ones, so every Telemetry on
    one provider shares one set of gauges, and what they watch.
    """
    found = _gauges.get(id(meter_provider))
    if found is not None:
        return found
    watched = _Watched(meter_provider)
    meter.create_observable_gauge(
        "failover.client.keys.cooling",
        callbacks=[lambda options: _observe_cooling(watched.managers)],
        unit="{key}",
        description="Keys out of rotation now, by provider and status.",
    )
    meter.create_observable_gauge(
        "failover.client.queue.length",
        callbacks=[lambda options: _observe_line(watched.lines)],
        unit="{request}",
        description="Requests waiting in the line for a key to recover or for room.",
    )
    meter.create_observable_gauge(
        "failover.client.budget.remaining",
        callbacks=[lambda options: _observe_budgets(watched.managers)],
        unit="{USD}",
        description="Dollars left in each spend budget's window (budgets kept in this process).",
    )
    _gauges[id(meter_provider)] = watched
    return watched


def _alive(items: weakref.WeakSet[Any]) -> list[Any]:
    try:
        return list(items)
    except RuntimeError:  # one was added under a scrape; the next scrape counts it
        return []


def _observe_cooling(managers: weakref.WeakSet[FailoverManager]) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    counts: dict[tuple[str, str], int] = {}
    for manager in _alive(managers):
        now = manager.clock()
        try:
            profiles = list(manager.list_profiles())
        except RuntimeError:  # the registry changed under a scrape; next scrape counts
            continue
        for profile in profiles:
            provider = provider_name(profile.provider)
            for status in COOLING_STATUSES:
                counts.setdefault((provider, status), 0)
            status = profile.status.value
            if status in COOLING_STATUSES and profile.cooldown_until > now:
                counts[provider, status] += 1
    return [
        Observation(count, {"gen_ai.provider.name": provider, "failover.status": status})
        for (provider, status), count in sorted(counts.items())
    ]


def _observe_line(lines: weakref.WeakSet[RecoveryLine]) -> Iterable[Observation]:
    """One point: the requests waiting in every watched engine's line."""
    from opentelemetry.metrics import Observation

    return [Observation(sum(len(line) for line in _alive(lines)))]


def _observe_budgets(managers: weakref.WeakSet[FailoverManager]) -> Iterable[Observation]:
    """Dollars left per budget scope and window, read from ledgers kept in this process.

    A budget kept in Redis is not observed: a scrape runs on the exporter's thread and may
    not wait on the event loop's Redis client (``failover status`` shows it). Budgets of the
    same scope and window under several managers report the least left.
    """
    from opentelemetry.metrics import Observation

    from failover.budgets import BudgetLedger

    least: dict[tuple[str, str], float] = {}
    for manager in _alive(managers):
        admission = getattr(manager, "admission", None)
        if admission is None or not admission.budgets:
            continue
        ledger = admission.ledger
        if not isinstance(ledger, BudgetLedger):
            continue
        for row in _snapshot_now(ledger, admission.budgets):
            found = (row["scope"], budget_window(row["per"]))
            least[found] = min(least.get(found, math.inf), row["remaining"])
    return [
        Observation(left, {"failover.budget.scope": scope, "failover.budget.window": window})
        for (scope, window), left in sorted(least.items())
    ]


def _snapshot_now(ledger: BudgetLedger, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
    """``ledger.snapshot(budgets)`` without an event loop: BudgetLedger's coroutines never
    suspend (its documented shape), so one step runs it to the end. Empty if one did."""
    step = ledger.snapshot(budgets)
    try:
        step.send(None)
    except StopIteration as done:
        rows: list[dict[str, Any]] = done.value
        return rows
    step.close()
    return []


class RequestTelemetry:
    """The span and measurements of one request; the engine and the client drive it."""

    __slots__ = (
        "__weakref__",
        "_attempts",
        "_attributes",
        "_context",
        "_done",
        "_started",
        "_telemetry",
        "request_id",
        "span",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        request_id: str,
        chain: Sequence[ModelEntry | Sequence[ModelEntry]],
    ) -> None:
        from opentelemetry.trace import SpanKind

        from failover.catalog import ModelEntry

        models = [m for step in chain for m in ((step,) if isinstance(step, ModelEntry) else step)]
        first = models[0]
        self._telemetry = telemetry
        self.request_id = request_id
        self._attributes: dict[str, str] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(first.provider),
            "gen_ai.request.model": first.id,
        }
        self.span: Span = telemetry.tracer.start_span(
            f"{operation} {first.id}",
            kind=SpanKind.CLIENT,
            attributes={
                **self._attributes,
                "failover.request_id": request_id,
                "failover.chain": [model.key for model in models],
            },
        )
        self._context = telemetry._trace.set_span_in_context(self.span)
        self._started = time.monotonic()
        self._attempts: dict[int, Span] = {}
        self._done = False

    def attempt_started(self, ctx: AttemptContext) -> None:
        """Open the child span of one attempt."""
        from opentelemetry.trace import SpanKind

        parts = urlsplit(ctx.base_url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self._attributes["gen_ai.operation.name"],
            "gen_ai.provider.name": provider_name(ctx.model.provider),
            "gen_ai.request.model": ctx.model.id,
            "failover.profile": ctx.profile.name,
            "failover.attempt": ctx.attempt,
        }
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = parts.port
        self._attempts[id(ctx)] = self._telemetry.tracer.start_span(
            f"{self._attributes['gen_ai.operation.name']} {ctx.model.id}",
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )

    def attempt_ended(
        self, ctx: AttemptContext, outcome: str, error: BaseException | None = None
    ) -> None:
        """Close an attempt's span with its outcome (``ok`` or the error's kind)."""
        span = self._attempts.pop(id(ctx), None)
        if span is None:
            return
        self._end_attempt(span, outcome, error)
        self._telemetry.attempts.add(
            1,
            {
                "gen_ai.provider.name": provider_name(ctx.model.provider),
                "gen_ai.request.model": ctx.model.id,
                "failover.profile": ctx.profile.name,
                "failover.outcome": outcome,
            },
        )

    def _end_attempt(self, span: Span, outcome: str, error: BaseException | None) -> None:
        from opentelemetry.trace import StatusCode

        if error is None:
            span.set_attribute("failover.outcome", outcome)
        else:
            found: dict[str, Any] = {
                "failover.outcome": outcome,
                "error.type": type(error).__name__,
            }
            if isinstance(error, ProviderError):
                if error.status is not None:
                    found["http.response.status_code"] = error.status
                if error.retry_after is not None and math.isfinite(error.retry_after):
                    found["failover.retry_after"] = error.retry_after
            span.set_attributes(found)
            span.set_status(StatusCode.ERROR, self._describe(error))
        span.end()

    def add_event(self, event: Event) -> None:
        """Record a retry, rotation, fallback, cooldown or recovery as a span event."""
        name, attributes = event_attributes(event)
        if self._telemetry.capture_content and (message := getattr(event, "error_message", "")):
            attributes["failover.error_message"] = message
        self.span.add_event(name, attributes)

    def queued(self, seconds: float) -> None:
        """Note a wait in the line (for a key to recover, or for room): a span event and
        ``failover.client.queue.wait_time``."""
        seconds = max(0.0, seconds)
        self.span.add_event("failover.queued", {"failover.queue.wait_time": round(seconds, 3)})
        self._telemetry.queue_wait.record(seconds, self._attributes)

    def charged(self, usd: float, budgets: Sequence[str]) -> None:
        """Note the dollars the answer was charged to budgets: ``failover.client.budget.spend``
        once per scope named (two budgets of one scope, per hour and per day, count once)."""
        scopes = list(dict.fromkeys(budgets))
        if not scopes:
            return
        self.span.set_attributes(
            {"failover.budget.charged_usd": usd, "failover.budget.scopes": scopes}
        )
        for scope in scopes:
            self._telemetry.spend.add(usd, {"failover.budget.scope": scope})

    def first_chunk(self) -> None:
        """Note that a stream's first chunk reached the caller."""
        elapsed = time.monotonic() - self._started
        self.span.set_attribute("gen_ai.response.time_to_first_chunk", elapsed)
        self._telemetry.first_chunk.record(elapsed, self._attributes)

    def capture(self, messages: Sequence[Mapping[str, Any]], text: str) -> None:
        """Record the messages and the answer, only when content capture is on."""
        if not self._telemetry.capture_content:
            return
        self.span.set_attribute("gen_ai.input.messages", messages_json(messages))
        output = [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
        self.span.set_attribute("gen_ai.output.messages", json.dumps(output))

    def finished(
        self,
        model: ModelEntry | None = None,
        usage: TokenUsage | None = None,
        cost: float | None = None,
        error: BaseException | None = None,
        *,
        profile: str | None = None,
    ) -> None:
        """End the request: with the answering ``model``, or with ``error``.

        Only the first call counts. With neither (a stream the caller closed early), the
        span ends marked ``failover.abandoned``.
        """
        if self._done:
            return
        self._done = True
        telemetry = self._telemetry
        telemetry._forget(self.request_id)
        for span in self._attempts.values():  # an attempt cut short (cancelled)
            self._end_attempt(span, "cancelled", error)
        self._attempts.clear()
        span = self.span
        attributes: dict[str, Any] = dict(self._attributes)
        if model is not None:
            attributes["gen_ai.provider.name"] = provider_name(model.provider)
            attributes["gen_ai.response.model"] = model.id
            found: dict[str, Any] = dict(attributes)
            if profile is not None:
                found["failover.profile"] = profile
            if cost is not None:
                found["failover.cost_usd"] = cost
                telemetry.cost.add(cost, attributes)
            prompt = 0
            if usage is not None:  # the conventions count cached input inside input tokens
                prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
                found["gen_ai.usage.input_tokens"] = prompt
                found["gen_ai.usage.output_tokens"] = usage.output_tokens
                if usage.cache_read_tokens:
                    found["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
                if usage.cache_write_tokens:
                    found["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            span.set_attributes(found)
            if usage is not None:
                for kind, tokens in (
                    ("input", prompt),
                    ("output", usage.output_tokens),
                ):
                    telemetry.token_usage.record(tokens, {**attributes, "gen_ai.token.type": kind})
        elif error is not None:
            from opentelemetry.trace import StatusCode

            attributes["error.type"] = type(error).__name__
            span.set_attribute("error.type", attributes["error.type"])
            span.set_status(StatusCode.ERROR, self._describe(error))
        else:
            span.set_attribute("failover.abandoned", True)
        telemetry.duration.record(time.monotonic() - self._started, attributes)
        span.end()

    def _describe(self, error: BaseException) -> str:
        """The status description: the error's type, and its message with content capture."""
        if self._telemetry.capture_content:
            return f"{type(error).__name__}: {str(error).partition(chr(10))[0]}"
        return type(error).__name__


_default: Telemetry | None = None
_probed = False


def default_telemetry() -> Telemetry | None:
    """The shared Telemetry on the global providers, or ``None`` without opentelemetry-api.

    Clients built without ``telemetry=`` use it: spans and metrics are a no-op until the
    application installs an OpenTelemetry SDK, and cost nothing when the API is absent.
    """
    global _default, _probed
    if not _probed:
        _probed = True
        try:
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            return None
        _default = Telemetry()
    return _default


def resolve_telemetry(telemetry: Telemetry | bool | None) -> Telemetry | None:
    """What a client's ``telemetry=`` argument means.

    ``None``: :func:`default_telemetry` (on when opentelemetry-api is installed);
    ``True``: the same, but an error without opentelemetry-api; ``False``: off.
    """
    if telemetry is None:
        return default_telemetry()
    if isinstance(telemetry, Telemetry):
        return telemetry
    if telemetry is True:
        return default_telemetry() or Telemetry()  # Telemetry() raises the ConfigError
    if telemetry is False:
        return None
    raise ConfigError(f"telemetry must be a Telemetry, True, False or None, got {telemetry!r}")


class PrometheusExposition:
    """failover's metrics served for Prometheus to scrape; see :func:`serve_prometheus`.

    Attributes:
        telemetry: Pass it to the client: ``ResilientClient(..., telemetry=...)``.
        meter_provider: The SDK MeterProvider behind it.
        registry: The ``prometheus_client`` registry that holds the metrics.
        url: Where to scrape, e.g. ``http://127.0.0.1:9464/metrics`` (``None``: not served).
    """

    def __init__(self, telemetry: Telemetry, meter_provider: Any, registry: Any) -> None:
        self.telemetry = telemetry
        self.meter_provider = meter_provider
        self.registry = registry
        self.url: str | None = None
        self._server: Any = None
        self._thread: Any = None

    def text(self) -> str:
        """The current exposition, in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def close(self) -> None:
        """Stop serving and shut the meter provider down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.meter_provider.shutdown()


def serve_prometheus(
    port: int | None = 9464,
    *,
    addr: str = "127.0.0.1",
    tracer_provider: TracerProvider | None = None,
    capture_content: bool = False,
) -> PrometheusExposition:
    """Expose failover's metrics for Prometheus at ``http://addr:port/metrics``.

    Metrics go through OpenTelemetry's Prometheus exporter into a registry of their own,
    served by ``prometheus_client`` on a background thread (``port=0``: any free port;
    ``None``: not served, read :meth:`PrometheusExposition.text` yourself). Needs the
    ``prometheus`` extra. Spans still go to ``tracer_provider`` (default: the global one).

    Example:
        >>> metrics = serve_prometheus(9464)  # doctest: +SKIP
        >>> client = ResilientClient(chain, profiles, telemetry=metrics.telemetry)  # doctest: +SKIP
    """
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
    ):
        raise ConfigError(f"port must be an int within 0..65535, got {port!r}")
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError(
            "serving Prometheus metrics needs the OpenTelemetry SDK and its Prometheus "
            "exporter: pip install 'llm-failover[prometheus]'"
        ) from None
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
    )
    exposition = PrometheusExposition(telemetry, meter_provider, registry)
    if port is not None:
        server, thread = start_http_server(port, addr=addr, registry=registry)
        exposition._server, exposition._thread = server, thread
        exposition.url = f"http://{addr}:{server.server_port}/metrics"
    return exposition
