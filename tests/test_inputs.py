"""Forgiving where it should be, strict where it must be (issue 23).

A model released yesterday is accepted with a warning (strictness is an option); provider
names, keys and parameter names are checked where they are written, with a did-you-mean;
an SDK left retrying on its own under the transport is warned about once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any, cast

import httpx2
import openai
import pytest

from failover import (
    AuthProfile,
    ConfigError,
    FailoverConfig,
    FailoverManager,
    FallbackChain,
    InvalidModelId,
    ModelNotFound,
    ResilientClient,
    ResilientTransport,
    TokenUsage,
    UnknownModelWarning,
    providers,
)
from failover.chat_calls import KNOWN_PARAMETERS, check_parameter_names
from failover.config_file import parse_config
from failover.testing import Behavior, Simulator
from tests.conftest import simulator_in_thread

KEY = "sk-inputs-test-key-0000000000001"
NEW_MODEL = "openai/gpt-7-preview"
HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys={"openai": [KEY]}) as simulator:
        yield simulator


def _profiles(sim: Simulator | None = None) -> list[AuthProfile]:
    url = sim.base_url("openai") if sim is not None else None
    return [AuthProfile("main", "openai", KEY, base_url=url)]


def _recorded(action: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, list(caught)


# -- 1. a model the catalog does not know ------------------------------------------------


def test_a_model_released_yesterday_is_accepted_unpriced_with_one_warning() -> None:
    chain, caught = _recorded(lambda: FallbackChain.from_ids([NEW_MODEL, "openai/gpt-4o-mini"]))
    assert [w.category for w in caught] == [UnknownModelWarning]  # nothing else
    assert NEW_MODEL in str(caught[0].message) and "strict=True" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    entry = chain.first()
    assert (entry.provider, entry.id, entry.api) == ("openai", "gpt-7-preview", "openai")
    assert entry.cost_input is None and entry.context_window is None
    assert entry.calculate_cost(TokenUsage(input_tokens=10, output_tokens=5)) is None
    assert issubclass(UnknownModelWarning, UserWarning)


def test_strict_refuses_it_with_model_not_found_naming_the_fix() -> None:
    with pytest.raises(ModelNotFound, match="gpt-7-preview") as caught:
        FallbackChain.from_ids([NEW_MODEL], strict=True)
    assert "catalog.register(ModelEntry" in str(caught.value)
    assert "strict=False" in str(caught.value)


@pytest.mark.parametrize("model_id", ["gpt-7-preview", "openai/", "/gpt-7", "openai/gpt 7"])
def test_a_malformed_id_stays_an_error(model_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidModelId):
            FallbackChain.from_ids([model_id])


def test_an_unknown_provider_stays_an_error_with_a_did_you_mean() -> None:
    # other tests may have registered providers of their own: the list is read, not matched
    with pytest.raises(ModelNotFound, match=r"did you mean 'openai'\?") as refused:
        FallbackChain.from_ids(["opnai/gpt-4o-mini"])
    known = str(refused.value).partition("(known: ")[2].rstrip(")").split(", ")
    assert {"anthropic", "gemini", "openai"} <= set(known)


async def test_the_client_serves_the_new_model_with_cost_none(sim: Simulator) -> None:
    client, caught = _recorded(lambda: ResilientClient([NEW_MODEL], _profiles(sim)))
    assert [w.category for w in caught] == [UnknownModelWarning]
    async with client:
        result = await client.complete(HI)
    assert result.model == NEW_MODEL and result.cost_usd is None
    with pytest.raises(ModelNotFound, match="strict"):
        ResilientClient([NEW_MODEL], _profiles(), strict_models=True)


def test_the_transport_warns_about_unknown_fallback_models_or_refuses_them() -> None:
    _, caught = _recorded(
        lambda: ResilientTransport(
            _profiles(), provider="openai", fallback_models=["gpt-7-preview", "gpt-4o"]
        )
    )
    assert [w.category for w in caught] == [UnknownModelWarning]
    assert NEW_MODEL in str(caught[0].message)
    with pytest.raises(ModelNotFound, match="gpt-7-preview"):
        ResilientTransport(
            _profiles(), provider="openai", fallback_models=[NEW_MODEL], strict_models=True
        )


CONFIG = f"""
chain = ["{NEW_MODEL}"]

[[profiles]]
name = "main"
provider = "openai"
api_key = "env:OPENAI_API_KEY"
"""


def test_the_config_file_warns_once_when_the_client_is_built_or_refuses_when_strict() -> None:
    env = {"OPENAI_API_KEY": KEY}
    loaded, caught = _recorded(lambda: parse_config(CONFIG, env=env))
    assert caught == []  # the parse does not warn as well
    _, caught = _recorded(loaded.client)
    assert [w.category for w in caught] == [UnknownModelWarning]
    strict = CONFIG.replace("[[profiles]]", "[settings]\nstrict_models = true\n\n[[profiles]]")
    with pytest.raises(ConfigError, match=r"chain: model not found.*gpt-7-preview"):
        parse_config(strict, env=env)


# -- 2. provider names and keys, checked where they are written ------------------------------


def test_a_misspelt_provider_is_refused_with_a_did_you_mean_and_the_providers() -> None:
    with pytest.raises(ConfigError) as caught:
        AuthProfile("x", "opnai", KEY)
    message = str(caught.value)
    assert "did you mean 'openai'?" in message
    assert "anthropic" in message and "gemini" in message and "ollama" in message


def test_aliases_and_providers_registered_later_are_accepted() -> None:
    assert AuthProfile("g", "google", KEY).provider == "gemini"
    assert AuthProfile("c", "claude", KEY).provider == "anthropic"
    assert AuthProfile("l", "llama.cpp", "").provider == "llamacpp"
    with pytest.raises(ConfigError, match="unknown provider 'inputs-gateway'"):
        AuthProfile("mine", "inputs-gateway", KEY)
    providers.register_adapter("inputs-gateway", providers.OpenAIAdapter("http://gw:8000/v1"))
    assert AuthProfile("mine", "inputs-gateway", KEY).provider == "inputs-gateway"


def test_an_empty_key_is_refused_except_for_local_providers() -> None:
    for provider in ("openai", "anthropic", "gemini", "azure"):
        with pytest.raises(ConfigError, match="api_key is empty"):
            AuthProfile("x", provider, "")
    assert AuthProfile("local", "ollama", "").api_key.get_secret_value() == ""
    assert AuthProfile("local", "vllm", "").provider == "vllm"


@pytest.mark.parametrize(
    "swapped",
    [
        "sk-proj-Abc123def456ghi789",
        "sk-ant-api03-abcdefghij",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrS",
        "gsk_abcdefghijklmnop1234",
        "Xk29fjQp0aL3mZ8vB7nT4yRw",
        "d41d8cd98f00b204e9800998ecf8427e9f1c0a7b",
    ],
)
def test_a_key_in_the_provider_position_is_refused_without_being_shown(swapped: str) -> None:
    with pytest.raises(ConfigError, match="looks like an API key") as caught:
        AuthProfile("x", swapped, "openai")
    for shown in (str(caught.value), repr(caught.value)):
        assert swapped not in shown and swapped[:8] not in shown
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_long_provider_name_that_is_not_key_like_gets_the_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'my-company-internal-vllm'"):
        AuthProfile("x", "my-company-internal-vllm", KEY)


# -- 3. near misses of parameter names -------------------------------------------------------

TYPOS = {
    "max_token": "max_tokens",
    "temprature": "temperature",
    "top-p": "top_p",
    "stop_sequence": "stop",
    "tool": "tools",
    "respone_format": "response_format",
    "topP": "top_p",
    "tools_choice": "tool_choice",
}
NEW_PARAMETERS = [
    "verbosity",
    "prediction",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "web_search_options",
    "reasoning",
    "repetition_penalty",
    "min_p",
    "response_schema",
    "user_id",
]


@pytest.mark.parametrize(("typo", "meant"), TYPOS.items())
async def test_a_near_miss_is_refused_before_any_call(
    sim: Simulator, typo: str, meant: str
) -> None:
    async with ResilientClient(["openai/gpt-4o-mini"], _profiles(sim)) as client:
        with pytest.raises(ConfigError, match=f"did you mean {meant!r}") as caught:
            await client.complete(HI, **{typo: 5})
        assert repr(typo) in str(caught.value)
        with pytest.raises(ConfigError, match=f"did you mean {meant!r}"):
            async with client.stream(HI, **{typo: 5}):
                pass
    assert sim.calls() == 0


@pytest.mark.parametrize("name", NEW_PARAMETERS)
def test_a_plausible_new_parameter_passes(name: str) -> None:
    check_parameter_names({name: "x"})


def test_every_known_parameter_passes() -> None:
    check_parameter_names(dict.fromkeys(KNOWN_PARAMETERS, 1))


async def test_a_new_parameter_reaches_the_provider(sim: Simulator) -> None:
    async with ResilientClient(["openai/gpt-4o-mini"], _profiles(sim)) as client:
        result = await client.complete(HI, max_tokens=5, verbosity="low")
    assert result.text and sim.calls() == 1
    assert sim.requests[-1].body.get("verbosity") == "low"


# -- 4. an SDK left retrying under the transport --------------------------------------------


async def test_the_sdks_own_retries_are_warned_about_once(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.script(Behavior("server_error"), key=KEY)
    cleared: list[int] = []

    async def recover(response: Any) -> None:  # after the first failure, the key recovers
        if response.status_code >= 500 and not cleared:
            cleared.append(response.status_code)
            sim.script(None, key=KEY)

    manager = FailoverManager(
        FailoverConfig(max_retries=0, cooldown_on_error=0.01), profiles=_profiles(sim)
    )
    transport = ResilientTransport(manager, provider="openai", wait_for_recovery=True)
    sdk = openai.AsyncOpenAI(  # max_retries left at its default
        api_key="unused",
        base_url=sim.base_url("openai"),
        http_client=httpx2.AsyncClient(
            transport=cast(Any, transport), event_hooks={"response": [recover]}
        ),
    )
    with (
        caplog.at_level(logging.WARNING, logger="failover.transport"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert reply.choices[0].message.content
        sim.script(Behavior("server_error"), key=KEY)  # the SDK retries again: no second warning
        cleared.clear()
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    await sdk.close()
    await transport.aclose()
    assert [w.category for w in caught if "max_retries=0" in str(w.message)] == [UserWarning]
    records = [r for r in caplog.records if r.name == "failover.transport"]
    assert len(records) == 1 and "max_retries=0" in records[0].getMessage()
    assert "x-stainless-retry-count: 1" in records[0].getMessage()
    assert KEY not in records[0].getMessage()


async def test_an_sdk_with_max_retries_0_is_not_warned_about(sim: Simulator) -> None:
    transport = ResilientTransport(_profiles(sim), provider="openai")
    sdk = openai.AsyncOpenAI(
        api_key="unused",
        base_url=sim.base_url("openai"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=cast(Any, transport)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    await sdk.close()
    await transport.aclose()
