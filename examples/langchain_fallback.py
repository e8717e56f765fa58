"""LangChain keeps working when its provider is down: another provider answers, tool call included.

    pip install langchain-openai langchain-anthropic 'llm-failover[sim]'

``ChatOpenAI`` takes httpx2 clients over ResilientTransport (``http_async_client`` and
``http_client``). ``ChatAnthropic`` takes no client of its own yet
(langchain-ai/langchain#36056), so a small subclass hands it anthropic SDK clients
built on the transport. In the local simulator OpenAI is overloaded, so ChatOpenAI's tool
call and answer come from Anthropic, translated into Chat Completions; then OpenAI is back
and Anthropic is down, and ChatAnthropic's turns come from OpenAI, translated into Messages.

    python examples/langchain_fallback.py
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

from failover import AuthProfile, ResilientTransport

INSTALL = "pip install langchain-openai langchain-anthropic 'llm-failover[sim]'"
try:
    import anthropic
    import httpx2
    from langchain_anthropic import ChatAnthropic
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage, HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import Field

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(f"This example needs LangChain: {INSTALL}") from None


class ChatAnthropicOn(ChatAnthropic):
    """ChatAnthropic on the anthropic SDK clients given (built on the transport)."""

    anthropic_client: Any = Field(default=None, exclude=True)  # anthropic.Anthropic
    anthropic_async_client: Any = Field(default=None, exclude=True)  # anthropic.AsyncAnthropic

    @cached_property
    def _client(self) -> Any:
        return self.anthropic_client

    @cached_property
    def _async_client(self) -> Any:
        return self.anthropic_async_client


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    print(f"  tool get_weather(city={city!r})")
    return f"Sunny, 21 C in {city}"


async def show(reply: httpx2.Response) -> None:
    served = reply.headers.get("x-failover-provider"), reply.headers.get("x-failover-model")
    print(f"  reply from {'/'.join(map(str, served))}")


async def ask(model: BaseChatModel) -> None:
    """The tool-calling loop: call the model, run the tools it asks for, until it answers."""
    llm = model.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What is the weather in Paris?")]
    reply = await llm.ainvoke(messages)
    while reply.tool_calls:
        messages += [reply, *[await get_weather.ainvoke(call) for call in reply.tool_calls]]
        reply = await llm.ainvoke(messages)
    print(f"  final: {reply.content}")


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

        print("ChatOpenAI (OpenAI overloaded):")
        transport = ResilientTransport(
            profiles,
            provider="openai",
            fallback_models=["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"],
        )
        transport.on_failover(
            lambda e: print(f"  {e.kind} failover: {e.from_model} -> {e.to_model} ({e.reason})")
        )
        async_http = httpx2.AsyncClient(transport=transport, event_hooks={"response": [show]})
        sync_http = httpx2.Client(transport=transport)  # for llm.invoke (sync code)
        chat_openai = ChatOpenAI(
            model="gpt-4o-mini",
            api_key="unused",
            base_url=sim.base_url("openai"),
            max_retries=0,
            http_async_client=async_http,
            http_client=sync_http,
        )
        await ask(chat_openai)

        print("ChatAnthropic (OpenAI back, Anthropic overloaded):")
        sim.script(None, provider="openai")
        sim.script("overloaded", provider="anthropic")
        claude_transport = ResilientTransport(
            profiles,
            provider="anthropic",
            fallback_models=["openai/gpt-4o-mini", "gemini/gemini-2.5-flash"],
        )
        claude_transport.on_failover(
            lambda e: print(f"  {e.kind} failover: {e.from_model} -> {e.to_model} ({e.reason})")
        )
        claude_http = httpx2.AsyncClient(
            transport=claude_transport, event_hooks={"response": [show]}
        )
        chat_anthropic = ChatAnthropicOn(
            model="claude-haiku-4-5",
            api_key="unused",
            max_tokens=1024,
            anthropic_async_client=anthropic.AsyncAnthropic(
                api_key="unused",
                base_url=sim.base_url("anthropic"),
                max_retries=0,
                http_client=claude_http,
            ),
        )
        await ask(chat_anthropic)

        await async_http.aclose()
        sync_http.close()
        await claude_http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
