"""The OpenTelemetry GenAI conventions as failover applies them, without opentelemetry.

Histogram buckets, the ``gen_ai.provider.name`` values, a failover event as a span event,
messages in the conventions' shape, and the probes that tell, cheaply, whether anything
would record a span (``failover.telemetry`` uses them; it imports opentelemetry lazily).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from failover.events import (
    CooldownEvent,
    Event,
    FailoverEvent,
    HedgeEvent,
    RecoveredEvent,
    RetryEvent,
)

__all__ = [
    "COOLING_STATUSES",
    "DURATION_BUCKETS",
    "FIRST_CHUNK_BUCKETS",
    "PROVIDERS_FROM_ENVIRONMENT",
    "PROVIDER_NAMES",
    "SCHEMA_URL",
    "TOKEN_BUCKETS",
    "budget_window",
    "event_attributes",
    "globals_unset",
    "messages_json",
    "package_version",
    "provider_name",
    "proxy_meter_provider",
]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""The conventions' advice for ``gen_ai.client.operation.duration`` (seconds)."""

TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
"""The conventions' advice for ``gen_ai.client.token.usage``."""

FIRST_CHUNK_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Buckets for ``gen_ai.client.operation.time_to_first_chunk`` (seconds)."""

PROVIDER_NAMES = {"gemini": "gcp.gemini", "mistral": "mistral_ai", "xai": "x_ai"}
"""``gen_ai.provider.name``'s well-known values where they differ from ours."""
COOLING_STATUSES = ("rate_limited", "cooling_down", "disabled")
"""The statuses of a key that the cooling gauge counts."""


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` value for one of failover's provider names."""
    return PROVIDER_NAMES.get(provider, provider)


def budget_window(per: str | float) -> str:
    """A budget's ``per`` as the ``failover.budget.window`` value: ``hour``, ``day``,
    ``month`` or seconds (``3600s``)."""
    return per if isinstance(per, str) else f"{per:g}s"


def globals_unset(trace_api: Any, metrics_internal: Any) -> bool:
    """A fast "no SDK yet": neither global provider set, nor named by the environment.

    Reads the API's module globals (so a request pays no environment look-ups); answers
    ``False`` (look closer) when they are not where this expects them.
    """
    return (
        getattr(trace_api, "_TRACER_PROVIDER", False) is None
        and getattr(metrics_internal, "_METER_PROVIDER", False) is None
        and not PROVIDERS_FROM_ENVIRONMENT
    )


PROVIDERS_FROM_ENVIRONMENT = any(
    name in os.environ for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
)
"""Whether the environment names a tracer or meter provider (read once, at import)."""


def proxy_meter_provider() -> tuple[type, ...]:
    """The class of the global meter provider before an SDK is set (private in the API)."""
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - a later API moved it: metrics then always count
        return ()
    return (_ProxyMeterProvider,)


def event_attributes(event: Event) -> tuple[str, dict[str, Any]]:
    """A failover event as a span event: its name and attributes."""
    if isinstance(event, FailoverEvent):
        if event.kind == "key":
            return "failover.rotation", {
                "failover.model": event.from_model,
                "failover.from_profile": event.from_profile or "",
                "failover.to_profile": event.to_profile or "",
                "failover.reason": event.reason,
            }
        return "failover.fallback", {
            "failover.from_model": event.from_model,
            "failover.to_model": event.to_model or "",
            "failover.reason": event.reason,
        }
    if isinstance(event, RetryEvent):
        return "failover.retry", {
            "failover.model": event.model,
            "failover.profile": event.profile,
            "failover.retry.number": event.attempt,
            "failover.retry.delay": round(event.delay, 3),
            "failover.reason": event.reason,
        }
    if isinstance(event, CooldownEvent):
        attributes: dict[str, Any] = {
            "failover.profile": event.profile,
            "failover.status": event.status,
            "failover.reason": event.reason,
        }
        if math.isfinite(event.duration):
            attributes["failover.cooldown"] = round(event.duration, 3)
        else:
            attributes["failover.disabled"] = True
        if event.model is not None:
            attributes["failover.model"] = event.model
        return "failover.cooldown", attributes
    if isinstance(event, RecoveredEvent):
        return "failover.recovered", {"failover.profile": event.profile}
    if isinstance(event, HedgeEvent):
        return "failover.hedge", {
            "failover.model": event.model,
            "failover.profile": event.profile,
            "failover.to_model": event.to_model,
            "failover.to_profile": event.to_profile,
            "failover.hedge.after": round(event.after, 3),
        }
    return f"failover.{type(event).__name__}", {}


def messages_json(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages in the conventions' shape: role and text parts."""
    shaped = []
    for message in messages:
        content = message.get("content")
        parts = (
            [{"type": "text", "content": content}]
            if isinstance(content, str)
            else [{"type": "text", "content": json.dumps(content, default=str)}]
        )
        shaped.append({"role": str(message.get("role", "")), "parts": parts})
    return json.dumps(shaped)


def package_version() -> str:
    """The installed package's version (``0`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-failover")
    except PackageNotFoundError:
        return "0"
