"""What a test of your own failover handling can look like: no server, no keys, no sleeps.

Run it with ``pytest examples/test_my_failover.py`` (needs pytest and anyio's pytest plugin,
which comes with anyio). In your project, put the ``pytest_plugins`` line in your top-level
``conftest.py`` instead.
"""

from __future__ import annotations

import pytest

from failover import AuthProfile, FailoverManager, ResilientClient, StreamInterrupted
from failover.testing import Script, ScriptedProvider

pytest_plugins = ["failover.testing.pytest_plugin"]  # the scripted_provider fixture
pytestmark = pytest.mark.anyio

PRIMARY, BACKUP = "sk-test-primary-000000000001", "sk-test-backup-0000000000002"
HI = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def my_client(scripted: ScriptedProvider, manager: FailoverManager) -> ResilientClient:
    """Your application's client, with the scripted provider as its sender."""
    return ResilientClient(
        ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
        manager,
        sender=scripted.sender(),
    )


async def read_all(client: ResilientClient) -> str:
    """Your application's streaming code."""
    async with client.stream(HI) as stream:
        return "".join([chunk.text async for chunk in stream])


@pytest.fixture
def manager() -> FailoverManager:
    return FailoverManager(
        profiles=[
            AuthProfile("primary", "openai", PRIMARY),
            AuthProfile("backup", "openai", BACKUP),
            AuthProfile("claude", "anthropic", "sk-ant-test-000000000003"),
        ]
    )


async def test_a_rate_limited_key_rotates_to_the_backup(
    scripted_provider: ScriptedProvider, manager: FailoverManager
) -> None:
    scripted_provider.script.rate_limit(retry_after=2).then_ok("Sunny.")
    result = await my_client(scripted_provider, manager).complete(HI)
    assert result.text == "Sunny."
    assert result.profile == "backup"
    assert scripted_provider.keys == [PRIMARY, BACKUP]


async def test_an_overloaded_model_falls_back_to_claude(
    scripted_provider: ScriptedProvider, manager: FailoverManager
) -> None:
    scripted_provider.on(model="gpt-4o-mini").overloaded(times=10)
    result = await my_client(scripted_provider, manager).complete(HI)
    assert result.model == "anthropic/claude-haiku-4-5"
    assert [call.wire for call in scripted_provider.calls][-1] == "anthropic"


async def test_a_stream_cut_midway_is_reported_with_its_partial_text(
    scripted_provider: ScriptedProvider, manager: FailoverManager
) -> None:
    scripted_provider.script.stream_cut_after(2, "It is sunny in Paris today.")
    client = my_client(scripted_provider, manager)
    with pytest.raises(StreamInterrupted) as info:
        await read_all(client)
    assert info.value.partial_text == "It is "


async def test_a_tool_call_round(
    scripted_provider: ScriptedProvider, manager: FailoverManager
) -> None:
    scripted_provider.script.tool_call("get_weather", {"city": "Paris"}).then_ok("Sunny, 24 C.")
    client = my_client(scripted_provider, manager)
    first = await client.complete(HI)
    (call,) = first.tool_calls
    tool_result = {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}
    second = await client.complete([*HI, first.message, tool_result])
    assert call.name == "get_weather"
    assert second.text == "Sunny, 24 C."


def test_a_script_in_short_form() -> None:
    scripted = ScriptedProvider(["429 retry-after=2", "503", "ok: fine"])
    assert [step.kind for step in scripted.script.steps] == ["rate_limit", "overloaded", "ok"]
    assert isinstance(scripted.script, Script)
