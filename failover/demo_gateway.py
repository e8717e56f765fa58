"""The demo's last panel: openai SDK calls answered by other providers during an outage.

An unmodified ``openai.AsyncOpenAI`` client sits on a ``ResilientTransport`` whose
fallbacks are Anthropic and Gemini models. With every OpenAI model overloaded, each call
(a reply, a stream, a tool call) is translated to the serving provider's wire format and
back, so the SDK parses the answer as its own; the ``x-failover-*`` headers say who served.
Needs the ``demo`` extra (the openai SDK).
"""

from __future__ import annotations

import json
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from failover import AuthProfile, FailoverConfig, ResilientTransport
from failover.testing import Behavior, Simulator

__all__ = ["run_gateway_panel"]

FALLBACKS = ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash-lite"]
_WEATHER_ROUND = (("get_weather", {"city": "Paris"}),)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def run_gateway_panel(sim: Simulator, keys: dict[str, str], console: Console) -> int:
    """Make three openai SDK calls while OpenAI is down; print who answered each.

    Args:
        sim: The running simulator.
        keys: A key the simulator accepts, per provider (``openai``, ``anthropic``, ``gemini``).
        console: Where the panel is printed.

    Returns:
        How many of the calls another provider answered.
    """
    try:
        import httpx2
        import openai
    except ImportError:
        console.print("(the openai SDK panel needs the demo extra: pip install llm-failover[demo])")
        return 0
    profiles = [
        AuthProfile(f"{provider}-gateway", provider, key, base_url=sim.base_url(provider))
        for provider, key in keys.items()
    ]
    sim.script("overloaded", provider="openai")
    transport = ResilientTransport(
        profiles,
        provider="openai",
        fallback_models=FALLBACKS,
        config=FailoverConfig(max_retries=0),
    )
    table = Table(title="the openai SDK during an OpenAI outage (ResilientTransport)")
    for column in ("call", "served by", "what the SDK parsed"):
        table.add_column(column)
    crossed = 0
    try:
        async with httpx2.AsyncClient(transport=cast(Any, transport)) as http:
            sdk = openai.AsyncOpenAI(
                api_key="unused", base_url=sim.base_url("openai"), max_retries=0, http_client=http
            )
            for call, ask in _calls().items():
                if call == "tool call":  # Anthropic goes down too: Gemini answers
                    sim.script("overloaded", provider="anthropic")
                    sim.script(Behavior(tool_calls=_WEATHER_ROUND), provider="gemini")
                served, parsed = await ask(sdk)
                crossed += not served.startswith("openai")
                table.add_row(call, served, parsed)
    finally:
        for provider in ("openai", "anthropic", "gemini"):
            sim.script(None, provider=provider)
        await transport.aclose()
    console.print(table)
    return crossed


def _calls() -> dict[str, Any]:
    """The panel's calls: each returns (who served, what the SDK parsed)."""
    messages = [{"role": "user", "content": "Summarise the incident report."}]

    async def reply(sdk: Any) -> tuple[str, str]:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages
        )
        completion = raw.parse()
        return _served(raw.headers), _short(completion.choices[0].message.content)

    async def stream(sdk: Any) -> tuple[str, str]:
        chunks = await sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in chunks.parse() if c.choices]
        return _served(chunks.headers), f"{len(parts)} chunks: " + _short("".join(parts))

    async def tool(sdk: Any) -> tuple[str, str]:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
        )
        call = raw.parse().choices[0].message.tool_calls[0]
        arguments = json.loads(call.function.arguments)
        return _served(raw.headers), f"tool call {call.function.name}({arguments})"

    return {"chat completion": reply, "streamed completion": stream, "tool call": tool}


def _served(headers: Any) -> str:
    provider = headers.get("x-failover-provider", "openai")
    return f"{provider} / {headers.get('x-failover-model', '?')}"


def _short(text: str | None, limit: int = 48) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
