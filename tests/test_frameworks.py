"""Framework recipes, tested: the OpenAI Agents SDK, pydantic-ai and LangChain on the transport.

Each framework gets its own SDK client built on an httpx2 client over ResilientTransport,
as the examples (examples/*_fallback.py) show. The simulator scripts the primary provider
``overloaded``; the agent's tool round and its final answer are then served either by a
second key of the same provider (same wire) or by another provider, translated into the
SDK's own wire format (cross wire: the in-process gateway). Each test checks the tool ran
once with the model's arguments, its result reached the serving provider in that
provider's own wire format, and the final text is the serving model's.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from failover import AuthProfile, ResilientTransport, SuccessEvent
from failover.testing import Behavior, Simulator
from tests.conftest import simulator_in_thread

OPENAI_A = "sk-openai-frameworks-key-a-0001"
OPENAI_B = "sk-openai-frameworks-key-b-0002"
ANTH_A = "sk-ant-frameworks-key-a-000003"
ANTH_B = "sk-ant-frameworks-key-b-000004"
GEMINI = "AIzaSy-frameworks-gemini-key-0005"
KEYS = {"openai": (OPENAI_A, OPENAI_B), "anthropic": (ANTH_A, ANTH_B), "gemini": (GEMINI,)}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
CITY = {"city": "Paris"}
WEATHER = "Sunny, 21 C in Paris"
QUESTION = "What is the weather in Paris?"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    agent = Behavior(tool_calls=(("get_weather", CITY),))  # one tool round, then text
    keys = {provider: list(keys) for provider, keys in KEYS.items()}
    with simulator_in_thread(keys=keys, default=agent) as simulator:
        yield simulator
        gc.collect()  # SDK clients a framework left open close on the loop that opened them


@dataclass
class Rig:
    """A transport whose primary provider is overloaded, and what the SDKs saw through it.

    Same wire (``to is None``): the primary's first key is overloaded, its second serves.
    Cross wire: the primary is overloaded and ``to``, the first of ``fallback_models``
    (``then`` is the second), serves in its own wire format.
    """

    sim: Simulator
    primary: str
    to: str | None = None
    then: str | None = None
    wire: str | None = None
    """The SDK's wire when it is not its provider's own (``responses``)."""
    successes: list[SuccessEvent] = field(default_factory=list)
    headers: list[tuple[str | None, str | None]] = field(default_factory=list)
    """``x-failover-provider`` and ``x-failover-model`` of each reply the SDK got."""
    tool_args: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sim, primary = self.sim, self.primary
        profiles = [
            AuthProfile(
                f"{primary}-main", primary, KEYS[primary][0], base_url=sim.base_url(primary)
            )
        ]
        if self.to is None:
            sim.script("overloaded", key=KEYS[primary][0])
            profiles.append(
                AuthProfile(
                    f"{primary}-spare", primary, KEYS[primary][1], base_url=sim.base_url(primary)
                )
            )
            fallback_models: list[str] = []
        else:
            sim.script("overloaded", provider=primary)
            others = [p for p in (self.to, self.then) if p]
            profiles += [
                AuthProfile(f"{p}-main", p, KEYS[p][0], base_url=sim.base_url(p)) for p in others
            ]
            fallback_models = [f"{p}/{MODELS[p]}" for p in others]
        self.transport = ResilientTransport(
            profiles, provider=primary, fallback_models=fallback_models
        )
        self.transport.on_success(self.successes.append)

    # -- the clients a framework is given ----------------------------------------------------

    @cached_property
    def async_http(self) -> httpx2.AsyncClient:
        async def seen(response: httpx2.Response) -> None:
            self.headers.append(_served_by(response))

        return httpx2.AsyncClient(transport=self.transport, event_hooks={"response": [seen]})

    @cached_property
    def sync_http(self) -> httpx2.Client:
        def seen(response: httpx2.Response) -> None:
            self.headers.append(_served_by(response))

        return httpx2.Client(transport=self.transport, event_hooks={"response": [seen]})

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key="unused",
            base_url=self.sim.base_url("openai"),
            max_retries=0,
            http_client=self.async_http,
        )

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key="unused",
            base_url=self.sim.base_url("anthropic"),
            max_retries=0,
            http_client=self.async_http,
        )

    def get_weather(self, city: str) -> str:
        """The tool every framework is given: records its arguments, returns the weather."""
        self.tool_args.append({"city": city})
        return WEATHER

    async def aclose(self) -> None:
        if "async_http" in self.__dict__:
            await self.async_http.aclose()
        if "sync_http" in self.__dict__:
            self.sync_http.close()
        await self.transport.aclose()

    # -- what must have happened -------------------------------------------------------------

    def check(self, final: str) -> None:
        """One tool round and the final text, both served by the expected key and wire."""
        provider = self.to or self.primary
        key = KEYS[provider][0] if self.to else KEYS[provider][1]
        profile = f"{provider}-main" if self.to else f"{provider}-spare"
        model = MODELS[provider]
        assert final == (
            f"Simulated answer from {provider}/{model} after 1 tool results: all systems nominal."
        )
        assert self.tool_args == [CITY]
        served = [r for r in self.sim.requests if r.outcome == "healthy"]
        wire = provider if self.to else self.wire or provider
        assert [(r.provider, r.wire, r.key, r.model) for r in served] == [
            (provider, wire, key, model)
        ] * 2
        assert WEATHER in json.dumps(served[1].body)  # the tool's result, in the server's wire
        assert any(
            r.provider == self.primary and r.outcome == "overloaded" for r in self.sim.requests
        )
        assert [(e.model, e.profile) for e in self.successes] == [
            (f"{provider}/{model}", profile)
        ] * 2
        assert self.headers == [(provider, model)] * 2


def _served_by(response: httpx2.Response) -> tuple[str | None, str | None]:
    return response.headers.get("x-failover-provider"), response.headers.get("x-failover-model")


# -- the OpenAI Agents SDK ---------------------------------------------------------------------


def _agents() -> Any:
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)  # no trace export: nothing leaves 127.0.0.1
    return agents


async def _run_agent(rig: Rig, api: str, streamed: bool) -> str:
    agents = _agents()
    client = rig.openai()
    model_class = (
        agents.OpenAIResponsesModel if api == "responses" else agents.OpenAIChatCompletionsModel
    )
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the get_weather tool.",
        tools=[agents.function_tool(rig.get_weather, name_override="get_weather")],
        model=model_class(model=MODELS["openai"], openai_client=client),
    )
    if streamed:
        run = agents.Runner.run_streamed(agent, QUESTION)
        async for _ in run.stream_events():
            pass
    else:
        run = await agents.Runner.run(agent, QUESTION)
    await rig.aclose()
    return str(run.final_output)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_agents_sdk_moves_to_a_second_openai_key(
    sim: Simulator, api: str, streamed: bool
) -> None:
    rig = Rig(sim, "openai", wire="responses" if api == "responses" else None)
    rig.check(await _run_agent(rig, api, streamed))


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_agents_sdk_is_answered_by_anthropic_when_openai_is_overloaded(
    sim: Simulator, api: str, streamed: bool
) -> None:
    rig = Rig(sim, "openai", to="anthropic", then="gemini")
    rig.check(await _run_agent(rig, api, streamed))


# -- pydantic-ai -------------------------------------------------------------------------------


def _pydantic_ai_model(rig: Rig) -> Any:
    if rig.primary == "openai":
        pytest.importorskip("pydantic_ai.models.openai")
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        provider = OpenAIProvider(
            base_url=rig.sim.base_url("openai"), api_key="unused", http_client=rig.async_http
        )
        return OpenAIChatModel(MODELS["openai"], provider=provider)
    pytest.importorskip("pydantic_ai.models.anthropic")
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    provider = AnthropicProvider(
        base_url=rig.sim.base_url("anthropic"), api_key="unused", http_client=rig.async_http
    )
    return AnthropicModel(MODELS["anthropic"], provider=provider)


async def _run_pydantic_ai(rig: Rig) -> str:
    pydantic_ai = pytest.importorskip("pydantic_ai")
    agent = pydantic_ai.Agent(
        _pydantic_ai_model(rig),
        instructions="Answer with the get_weather tool.",
        tools=[pydantic_ai.Tool(rig.get_weather, name="get_weather")],
        model_settings={"max_retries": 0},  # the transport retries; the SDK must not
    )
    result = await agent.run(QUESTION)
    await rig.aclose()
    return str(result.output)


@pytest.mark.parametrize("primary", ["openai", "anthropic"])
async def test_pydantic_ai_moves_to_a_second_key(sim: Simulator, primary: str) -> None:
    rig = Rig(sim, primary)
    rig.check(await _run_pydantic_ai(rig))


async def test_pydantic_ai_openai_model_is_answered_by_anthropic(sim: Simulator) -> None:
    rig = Rig(sim, "openai", to="anthropic", then="gemini")
    rig.check(await _run_pydantic_ai(rig))


async def test_pydantic_ai_anthropic_model_is_answered_by_gemini(sim: Simulator) -> None:
    rig = Rig(sim, "anthropic", to="gemini", then="openai")
    rig.check(await _run_pydantic_ai(rig))


# -- LangChain ---------------------------------------------------------------------------------


def _langchain_model(rig: Rig) -> Any:
    if rig.primary == "openai":
        langchain_openai = pytest.importorskip("langchain_openai")
        return langchain_openai.ChatOpenAI(
            model=MODELS["openai"],
            api_key="unused",
            base_url=rig.sim.base_url("openai"),
            max_retries=0,
            http_async_client=rig.async_http,
            http_client=rig.sync_http,
        )
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    from pydantic import Field

    class ChatAnthropicOn(langchain_anthropic.ChatAnthropic):
        """ChatAnthropic on given SDK clients: it takes no http_client (langchain#36056)."""

        anthropic_client: Any = Field(default=None, exclude=True)
        anthropic_async_client: Any = Field(default=None, exclude=True)

        @cached_property
        def _client(self) -> Any:
            return self.anthropic_client

        @cached_property
        def _async_client(self) -> Any:
            return self.anthropic_async_client

    base_url = rig.sim.base_url("anthropic")
    return ChatAnthropicOn(
        model=MODELS["anthropic"],
        api_key="unused",
        max_tokens=1024,
        anthropic_async_client=rig.anthropic(),
        anthropic_client=anthropic.Anthropic(
            api_key="unused", base_url=base_url, max_retries=0, http_client=rig.sync_http
        ),
    )


def _langchain_tool(rig: Rig) -> Any:
    tools = pytest.importorskip("langchain_core.tools")
    return tools.StructuredTool.from_function(rig.get_weather, name="get_weather")


async def _run_langchain(rig: Rig) -> str:
    from langchain_core.messages import HumanMessage

    tool = _langchain_tool(rig)
    model = _langchain_model(rig).bind_tools([tool])
    messages: list[Any] = [HumanMessage(QUESTION)]
    reply = await model.ainvoke(messages)
    while reply.tool_calls:
        messages += [reply, *[await tool.ainvoke(call) for call in reply.tool_calls]]
        reply = await model.ainvoke(messages)
    await rig.aclose()
    return str(reply.content)


def _run_langchain_sync(rig: Rig) -> str:
    from langchain_core.messages import HumanMessage

    tool = _langchain_tool(rig)
    model = _langchain_model(rig).bind_tools([tool])
    messages: list[Any] = [HumanMessage(QUESTION)]
    reply = model.invoke(messages)
    while reply.tool_calls:
        messages += [reply, *[tool.invoke(call) for call in reply.tool_calls]]
        reply = model.invoke(messages)
    rig.sync_http.close()
    rig.transport.close()
    return str(reply.content)


@pytest.mark.parametrize("primary", ["openai", "anthropic"])
async def test_langchain_moves_to_a_second_key(sim: Simulator, primary: str) -> None:
    rig = Rig(sim, primary)
    rig.check(await _run_langchain(rig))


async def test_langchain_chat_openai_is_answered_by_anthropic(sim: Simulator) -> None:
    rig = Rig(sim, "openai", to="anthropic", then="gemini")
    rig.check(await _run_langchain(rig))


async def test_langchain_chat_anthropic_is_answered_by_openai(sim: Simulator) -> None:
    rig = Rig(sim, "anthropic", to="openai", then="gemini")
    rig.check(await _run_langchain(rig))


@pytest.mark.parametrize("primary", ["openai", "anthropic"])
def test_langchain_sync_moves_to_a_second_key(sim: Simulator, primary: str) -> None:
    rig = Rig(sim, primary)
    rig.check(_run_langchain_sync(rig))


def test_langchain_sync_chat_openai_is_answered_by_gemini(sim: Simulator) -> None:
    rig = Rig(sim, "openai", to="gemini", then="anthropic")
    rig.check(_run_langchain_sync(rig))


def test_langchain_sync_chat_anthropic_is_answered_by_openai(sim: Simulator) -> None:
    rig = Rig(sim, "anthropic", to="openai", then="gemini")
    rig.check(_run_langchain_sync(rig))


def test_importing_failover_loads_no_framework() -> None:
    code = (
        "import sys, failover, failover.transport, failover.gateway, failover.testing\n"
        "print(sorted({m.partition('.')[0] for m in sys.modules} & {"
        "'agents', 'pydantic_ai', 'langchain_core', 'langchain_openai', 'langchain_anthropic'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
