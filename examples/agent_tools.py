"""An agent's tool-calling loop that survives its providers failing mid-conversation.

The conversation stays in OpenAI's shape; each turn, whichever provider answers gets it in
its own wire format (Anthropic tool_use/tool_result blocks, Gemini functionCall and
functionResponse parts), and its reply comes back as an OpenAI-shaped assistant message.
Runs against the local simulator, so it needs no API keys:

    python examples/agent_tools.py
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from failover import AuthProfile, FailoverEvent, ResilientClient

try:
    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example runs on the local simulator: pip install 'llm-failover[sim]'"
    ) from None

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a time zone.",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
        },
    },
]


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "clear", "celsius": 18}


def get_time(zone: str) -> dict[str, Any]:
    return {"zone": zone, "time": "14:05"}


FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "get_weather": get_weather,
    "get_time": get_time,
}
CHAIN = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash-lite"]


async def main() -> None:
    async with Simulator() as sim:
        # Every simulated model plays the same agent: weather first, then the time, then answer.
        agent = Behavior(
            tool_calls=(("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"}))
        )
        for provider in ("openai", "anthropic", "gemini"):
            sim.script(agent, provider=provider)
        profiles = [
            AuthProfile(
                provider, provider, f"sim-{provider}-key-0001", base_url=sim.base_url(provider)
            )
            for provider in ("openai", "anthropic", "gemini")
        ]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Answer with the tools' help."},
            {"role": "user", "content": "What's the weather and the time in Paris?"},
        ]
        outages = {1: "openai", 2: "anthropic"}  # after round N, this provider goes down

        async with ResilientClient(CHAIN, profiles) as client:

            @client.on_failover
            async def announce(event: FailoverEvent) -> None:
                print(f"  failover: {event.from_model} -> {event.to_model} ({event.reason})")

            for round_number in range(1, 6):
                reply = await client.complete(messages, tools=TOOLS, max_tokens=300)
                messages.append(reply.message)  # OpenAI's shape, whoever answered
                if reply.finish_reason != "tool_calls":
                    print(f"final: {reply.model} says {reply.text!r}")
                    break
                for call in reply.tool_calls:
                    print(
                        f"round {round_number}: {reply.model} called {call.name}({call.arguments})"
                    )
                    result = FUNCTIONS[call.name](**call.args)
                    messages.append(
                        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                    )
                if (down := outages.get(round_number)) is not None:
                    sim.script("overloaded", provider=down)
                    print(f"  ({down} is now overloaded)")
        print(f"conversation: {len(messages)} messages, {len(sim.requests)} provider calls")


if __name__ == "__main__":
    asyncio.run(main())
