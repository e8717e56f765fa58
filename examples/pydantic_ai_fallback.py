"""pydantic-ai keeps working when its provider is down: another provider answers, tool call included.

    pip install 'pydantic-ai-slim[openai,anthropic]' 'llm-failover[sim]'

pydantic-ai's OpenAI and Anthropic providers take an ``http_client``: an httpx2 client over
ResilientTransport. In the local simulator OpenAI is overloaded, so the OpenAI model's
tool call and answer come from Anthropic, translated into Chat Completions; then Anthropic
is down too, and the Anthropic model's turns come from Gemini, translated into Messages.
``max_retries=0`` leaves retrying to the transport.

    python examples/pydantic_ai_fallback.py
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, ResilientTransport

INSTALL = "pip install 'pydantic-ai-slim[openai,anthropic]' 'llm-failover[sim]'"
try:
    import httpx2
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(f"This example needs pydantic-ai: {INSTALL}") from None


def get_weather(city: str) -> str:
    """The current weather in a city."""
    print(f"  tool get_weather(city={city!r})")
    return f"Sunny, 21 C in {city}"


async def show(reply: httpx2.Response) -> None:
    served = reply.headers.get("x-failover-provider"), reply.headers.get("x-failover-model")
    print(f"  reply from {'/'.join(map(str, served))}")


def resilient_http(
    profiles: list[AuthProfile], provider: str, fallbacks: list[str]
) -> httpx2.AsyncClient:
    """The recipe: an httpx2 client over the transport, for the provider's http_client."""
    transport = ResilientTransport(profiles, provider=provider, fallback_models=fallbacks)
    transport.on_failover(
        lambda e: print(f"  {e.kind} failover: {e.from_model} -> {e.to_model} ({e.reason})")
    )
    return httpx2.AsyncClient(transport=transport, event_hooks={"response": [show]})


async def main() -> None:
    weather_agent = Behavior(tool_calls=[("get_weather", {"city": "Paris"})])
    async with Simulator(default=weather_agent) as sim:
        sim.script("overloaded", provider="openai")  # OpenAI's outage
        profiles = [  # in production: no base_url (the public APIs), real keys
            AuthProfile("gpt", "openai", "sk-openai-key-0000001", base_url=sim.base_url("openai")),
            AuthProfile(
                "claude", "anthropic", "sk-ant-key-00000002", base_url=sim.base_url("anthropic")
            ),
            AuthProfile(
                "gemini", "gemini", "AIza-gemini-key-0003", base_url=sim.base_url("gemini")
            ),
        ]

        print("OpenAIChatModel (OpenAI overloaded):")
        openai_http = resilient_http(
            profiles, "openai", ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"]
        )
        provider = OpenAIProvider(
            base_url=sim.base_url("openai"), api_key="unused", http_client=openai_http
        )
        agent = Agent(
            OpenAIChatModel("gpt-4o-mini", provider=provider),
            instructions="Answer with the get_weather tool.",
            tools=[get_weather],
            model_settings={"max_retries": 0},  # the transport retries, not the SDK
        )
        result = await agent.run("What is the weather in Paris?")
        print(f"  final: {result.output}")

        print("AnthropicModel (Anthropic overloaded too):")
        sim.script("overloaded", provider="anthropic")
        anthropic_http = resilient_http(
            profiles, "anthropic", ["gemini/gemini-2.5-flash", "openai/gpt-4o-mini"]
        )
        claude = AnthropicProvider(
            base_url=sim.base_url("anthropic"), api_key="unused", http_client=anthropic_http
        )
        agent = Agent(
            AnthropicModel("claude-haiku-4-5", provider=claude),
            instructions="Answer with the get_weather tool.",
            tools=[get_weather],
            model_settings={"max_retries": 0},
        )
        result = await agent.run("What is the weather in Paris?")
        print(f"  final: {result.output}")
        await openai_http.aclose()
        await anthropic_http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
