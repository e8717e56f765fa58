"""The OpenAI Agents SDK keeps working when OpenAI is down: Anthropic answers, tool call included.

    pip install openai-agents 'llm-failover[sim]'

The SDK's AsyncOpenAI client is built on an httpx2 client over ResilientTransport and set
as the SDK's default (``set_default_openai_client``). OpenAI is overloaded in the local
simulator, so every turn of the agent (the tool call, then the answer after the tool's
result) is served by Anthropic, translated into the API the SDK called: the Responses API
(the SDK's default model) and then Chat Completions (``OpenAIChatCompletionsModel``).
Tracing is disabled: nothing leaves 127.0.0.1.

    python examples/agents_sdk_fallback.py
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, ResilientTransport

INSTALL = "pip install openai-agents 'llm-failover[sim]'"
try:
    import httpx2
    import openai
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_default_openai_client,
        set_tracing_disabled,
    )

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(f"This example needs the OpenAI Agents SDK: {INSTALL}") from None

set_tracing_disabled(True)  # no trace export (or OPENAI_AGENTS_DISABLE_TRACING=1)


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    print(f"  tool get_weather(city={city!r})")
    return f"Sunny, 21 C in {city}"


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

        # The recipe: the transport under the SDK's own client, set as the SDK's default.
        transport = ResilientTransport(
            profiles,
            provider="openai",
            fallback_models=["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"],
        )

        async def show(reply: httpx2.Response) -> None:
            served = reply.headers.get("x-failover-provider"), reply.headers.get("x-failover-model")
            print(f"  reply from {'/'.join(map(str, served))}")

        http_client = httpx2.AsyncClient(transport=transport, event_hooks={"response": [show]})
        client = openai.AsyncOpenAI(
            api_key="unused",
            base_url=sim.base_url("openai"),
            max_retries=0,
            http_client=http_client,
        )
        set_default_openai_client(client, use_for_tracing=False)

        transport.on_failover(
            lambda e: print(f"  {e.kind} failover: {e.from_model} -> {e.to_model} ({e.reason})")
        )

        print("Responses API (the SDK's default model):")
        agent = Agent(
            name="weather",
            instructions="Answer with the get_weather tool.",
            tools=[get_weather],
            model="gpt-4o-mini",
        )
        result = await Runner.run(agent, "What is the weather in Paris?")
        print(f"  final: {result.final_output}")

        print("Chat Completions API (OpenAIChatCompletionsModel):")
        chat_agent = agent.clone(
            model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
        )
        result = await Runner.run(chat_agent, "What is the weather in Paris?")
        print(f"  final: {result.final_output}")
        await http_client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
