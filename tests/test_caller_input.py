"""Caller mistakes get a TypeError/ConfigError naming the argument, before any request is sent.

Each case is driven against the scripted provider (failover.testing.ScriptedProvider, the
client's sender), which records every request that would have gone out: the guarantee is the
error's type and wording, and that ``scripted_provider.calls`` stays empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from failover import AuthProfile, ConfigError, FailoverManager, ResilientClient
from failover.testing import ScriptedProvider

pytest_plugins = ["failover.testing.pytest_plugin"]  # the scripted_provider fixture

KEY = "sk-caller-input-key-000000000001"
CHAIN = ["openai/gpt-4o-mini"]
HI = [{"role": "user", "content": "hi"}]

BAD_ARGUMENT = (TypeError, ConfigError)


def _profiles() -> list[AuthProfile]:
    return [AuthProfile("a", "openai", KEY)]


def _client(scripted: ScriptedProvider) -> ResilientClient:
    return ResilientClient(CHAIN, _profiles(), sender=scripted.sender())


def _generator_of_messages() -> Iterator[dict[str, Any]]:
    yield {"role": "user", "content": "hi"}


async def _stream_all(client: ResilientClient, messages: Any, **params: Any) -> None:
    async with client.stream(messages, **params) as stream:
        async for _ in stream:
            pass


# (case id, the bad messages, a word the error must name)
BAD_MESSAGES: list[tuple[str, Callable[[], Any], str]] = [
    ("messages=5", lambda: 5, "messages"),
    ("messages=None", lambda: None, "messages"),
    ("a generator of messages", _generator_of_messages, "messages"),
    ("a dict instead of a list", lambda: {"role": "user", "content": "hi"}, "messages"),
    ("bytes content", lambda: [{"role": "user", "content": b"hi"}], "content"),
    ("set content", lambda: [{"role": "user", "content": {"hi"}}], "content"),
    ("a message that is a str", lambda: ["hi"], "message"),
]


def _assert_names(error: BaseException, *words: str) -> None:
    text = str(error)
    for word in words:
        assert word.lower() in text.lower(), (
            f"{type(error).__name__}({text!r}) does not name {word!r}"
        )


@pytest.mark.parametrize(
    ("messages", "named"), [c[1:] for c in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
async def test_complete_refuses_bad_messages_before_sending(
    scripted_provider: ScriptedProvider, messages: Callable[[], Any], named: str
) -> None:
    client = _client(scripted_provider)
    with pytest.raises(BAD_ARGUMENT) as info:
        await client.complete(messages())
    _assert_names(info.value, named)
    assert scripted_provider.calls == []
    await client.aclose()


@pytest.mark.parametrize(
    ("messages", "named"), [c[1:] for c in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
async def test_stream_refuses_bad_messages_before_sending(
    scripted_provider: ScriptedProvider, messages: Callable[[], Any], named: str
) -> None:
    client = _client(scripted_provider)
    with pytest.raises(BAD_ARGUMENT) as info:
        await _stream_all(client, messages())
    _assert_names(info.value, named)
    assert scripted_provider.calls == []
    await client.aclose()


BAD_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("bytes param", {"user": b"someone"}, "user"),
    ("set param", {"stop": {"\n"}}, "stop"),
    ("bytes temperature", {"temperature": b"0.5"}, "temperature"),
    ("max_tokens as str", {"max_tokens": "100"}, "max_tokens"),
]


@pytest.mark.parametrize(
    ("params", "named"), [c[1:] for c in BAD_PARAMS], ids=[c[0] for c in BAD_PARAMS]
)
async def test_complete_refuses_unsendable_params_before_sending(
    scripted_provider: ScriptedProvider, params: dict[str, Any], named: str
) -> None:
    client = _client(scripted_provider)
    with pytest.raises(BAD_ARGUMENT) as info:
        await client.complete(HI, **params)
    _assert_names(info.value, named)
    assert scripted_provider.calls == []
    await client.aclose()


@pytest.mark.parametrize(
    ("params", "named"), [c[1:] for c in BAD_PARAMS], ids=[c[0] for c in BAD_PARAMS]
)
async def test_stream_refuses_unsendable_params_before_sending(
    scripted_provider: ScriptedProvider, params: dict[str, Any], named: str
) -> None:
    client = _client(scripted_provider)
    with pytest.raises(BAD_ARGUMENT) as info:
        await _stream_all(client, HI, **params)
    _assert_names(info.value, named)
    assert scripted_provider.calls == []
    await client.aclose()


BAD_CHAINS: list[tuple[str, Any]] = [
    ("chain=[None]", [None]),
    ("chain=[123]", [123]),
    ("chain=None", None),
    ("chain=5", 5),
    ("chain=[b'openai/gpt-4o-mini']", [b"openai/gpt-4o-mini"]),
]


@pytest.mark.parametrize("chain", [c[1] for c in BAD_CHAINS], ids=[c[0] for c in BAD_CHAINS])
def test_client_refuses_a_bad_chain_naming_it(chain: Any) -> None:
    with pytest.raises(BAD_ARGUMENT) as info:
        ResilientClient(chain, _profiles())
    _assert_names(info.value, "chain")


BAD_PROFILES: list[tuple[str, Any]] = [
    ("profiles=None", None),
    ("profiles=5", 5),
    ("profiles=[None]", [None]),
    ("profiles=['sk-a-key']", ["sk-a-key-that-is-not-a-profile"]),
]


@pytest.mark.parametrize("profiles", [c[1] for c in BAD_PROFILES], ids=[c[0] for c in BAD_PROFILES])
def test_client_refuses_bad_profiles_naming_them(profiles: Any) -> None:
    with pytest.raises(BAD_ARGUMENT) as info:
        ResilientClient(CHAIN, profiles)
    _assert_names(info.value, "profile")
    assert "sk-a-key-that-is-not-a-profile" not in str(info.value)


@pytest.mark.parametrize("base_url", [5, b"http://127.0.0.1", ["http://127.0.0.1"]])
def test_profile_refuses_a_base_url_that_is_not_a_str(base_url: Any) -> None:
    with pytest.raises(BAD_ARGUMENT) as info:
        AuthProfile("a", "openai", KEY, base_url=base_url)
    _assert_names(info.value, "base_url")


async def test_manager_refuses_profiles_none_naming_it() -> None:
    with pytest.raises(BAD_ARGUMENT) as info:
        FailoverManager(profiles=None)  # type: ignore[arg-type]
    _assert_names(info.value, "profiles")


async def test_a_refused_generator_is_not_sent_as_an_empty_conversation(
    scripted_provider: ScriptedProvider,
) -> None:
    """The review's case: validation consumed the generator, then ``[]`` went out silently."""
    client = _client(scripted_provider)
    try:
        await client.complete(_generator_of_messages())  # type: ignore[arg-type]
    except BAD_ARGUMENT as error:
        _assert_names(error, "messages")
        assert scripted_provider.calls == []
    else:  # accepting a generator is only fine when every message it gave is sent
        (sent,) = scripted_provider.calls
        assert sent.messages == [{"role": "user", "content": "hi"}]
    await client.aclose()
