"""The same model on three clouds: a {model, on} step expanded through the catalog, a chain
Anthropic -> Bedrock -> Vertex AI where each fails in turn and the last serves (with a tool
round continued on another cloud), the example, and every cloud credential kept out of
reprs, logs, events, exceptions and status."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover._secrets import remember_secret, scrub
from failover.chain import FallbackChain
from failover.config_file import parse_config
from failover.errors import ConfigError, FailoverError, RateLimitError, StreamInterrupted
from failover.testing import Behavior, Simulator
from failover.testing.cloud_sim import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY

STEP = {"model": "claude-sonnet-4-5", "on": ["anthropic", "bedrock", "vertex_anthropic"]}
BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX = "vertex_anthropic/claude-sonnet-4-5@20250929"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_a_model_named_once_becomes_each_clouds_own_id_as_one_priced_group() -> None:
    chain = FallbackChain.from_ids([STEP, "openai/gpt-4o-mini"])
    assert [[m.key for m in step] for step in chain.steps] == [
        ["anthropic/claude-sonnet-4-5", BEDROCK, VERTEX],
        ["openai/gpt-4o-mini"],
    ]
    for model in chain.steps[0]:  # prices and context windows from genai-prices
        assert model.cost_input is not None and model.context_window == 200_000


def test_on_may_name_a_clouds_id_and_refuses_what_it_cannot_expand() -> None:
    own = "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
    chain = FallbackChain.from_ids(
        [{"model": "claude-haiku-4-5", "on": {"anthropic": None, "bedrock": own}}]
    )
    assert [m.key for m in chain.steps[0]][1] == f"bedrock/{own}"
    gemini = FallbackChain.from_ids(
        [{"model": "gemini-2.5-flash", "on": ["gemini", "vertex_gemini"]}]
    )
    assert [m.key for m in gemini.steps[0]] == [
        "gemini/gemini-2.5-flash",
        "vertex_gemini/gemini-2.5-flash",
    ]
    with pytest.raises(ConfigError, match="no Bedrock id"):
        FallbackChain.from_ids([{"model": "no-such-model-anywhere", "on": ["bedrock"]}])
    with pytest.raises(ConfigError, match="without a provider"):
        FallbackChain.from_ids([{"model": "anthropic/claude-sonnet-4-5", "on": ["bedrock"]}])


def test_the_config_file_takes_the_same_step_and_cloud_profiles() -> None:
    loaded = parse_config(
        """
chain = [{ model = "claude-sonnet-4-5", on = ["anthropic", "bedrock", "vertex_anthropic"] }]

[[profiles]]
name = "aws"
provider = "bedrock"
region = "eu-west-1"

[[profiles]]
name = "gcp"
provider = "vertex_anthropic"
project = "my-project"
region = "global"
"""
    )
    assert loaded.model_ids == ("anthropic/claude-sonnet-4-5", BEDROCK, VERTEX)
    aws, gcp = (spec.build() for spec in loaded.profiles)
    assert aws.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert (
        gcp.base_url == "https://aiplatform.googleapis.com/v1/projects/my-project/locations/global"
    )


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(keys={"vertex_anthropic": ["ya29.vertex-token-000000000"]}) as simulator:
        yield simulator


def three_clouds(sim: Simulator) -> list[AuthProfile]:
    return [
        AuthProfile(
            "claude", "anthropic", "sk-ant-key-0000000001", base_url=sim.base_url("anthropic")
        ),
        AuthProfile(
            "aws",
            "bedrock",
            f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}",
            base_url=sim.base_url("bedrock"),
            region="us-east-1",
        ),
        AuthProfile(
            "gcp",
            "vertex_anthropic",
            "ya29.vertex-token-000000000",
            base_url=sim.base_url("vertex_anthropic"),
        ),
    ]


async def test_each_cloud_fails_in_turn_the_last_serves_and_the_tool_round_goes_on(
    sim: Simulator,
) -> None:
    sim.script(Behavior("overloaded"), provider="anthropic")
    sim.script(Behavior("server_error"), provider="bedrock")
    sim.script(
        Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), provider="vertex_anthropic"
    )
    async with ResilientClient([STEP], three_clouds(sim), wait_for_recovery=False) as client:
        events: list[Any] = []
        client.on_failover(events.append)
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
        first = await client.complete(messages, max_tokens=100, tools=[TOOL])
        assert first.model == VERTEX
        assert [(a.model, a.outcome) for a in first.attempts] == [
            ("anthropic/claude-sonnet-4-5", "overloaded"),
            (BEDROCK, "server"),
            (VERTEX, "ok"),
        ]
        assert first.tool_calls[0].name == "get_weather"
        # Vertex fails now and Bedrock is back: the tool result goes to Converse
        sim.script(Behavior("overloaded"), provider="vertex_anthropic")
        sim.script(None, provider="bedrock")
        messages += [
            first.message,
            {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "21 C"},
        ]
        second = await client.complete(messages, max_tokens=100, tools=[TOOL])
    assert second.model == BEDROCK
    assert second.text.endswith("after 1 tool results: all systems nominal.")
    converse = sim.requests[-1].body
    assert converse["messages"][1]["content"][0]["toolUse"]["name"] == "get_weather"
    assert converse["messages"][2]["content"][0]["toolResult"]["content"] == [{"text": "21 C"}]
    assert {e.kind for e in events} == {"deployment"}


async def read_all(client: ResilientClient) -> str:
    return "".join([c.text async for c in client.stream([{"role": "user", "content": "hi"}])])


async def test_a_stream_crosses_the_clouds_before_its_first_chunk(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), provider="anthropic")
    sim.script(Behavior("midstream_error"), provider="vertex_anthropic")
    sim.script(Behavior("overloaded"), provider="bedrock")
    async with ResilientClient([STEP], three_clouds(sim), wait_for_recovery=False) as client:
        with pytest.raises(StreamInterrupted):  # Vertex fails after its first chunk
            await read_all(client)
        sim.script(None, provider="bedrock")
        text = [c.text async for c in client.stream([{"role": "user", "content": "hi"}])]
    assert "".join(text).startswith(f"Simulated answer from {BEDROCK}")


# -- secrets -------------------------------------------------------------------------------

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQEXAMPLE"
GOOGLE_TOKEN = "ya29.a0AfB_byEXAMPLEgoogleAccessToken0000"
BEDROCK_KEY = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlMDAwMDAw"
SIGNATURE = "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


@pytest.mark.parametrize(
    "text",
    [
        f"aws_secret_access_key = {SECRET_KEY}",
        f"X-Amz-Security-Token: {SESSION_TOKEN}",
        f"Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/x, {SIGNATURE}",
        f"token {GOOGLE_TOKEN} expired",
        f"bad key {BEDROCK_KEY}",
    ],
)
def test_every_cloud_credential_shape_is_scrubbed_from_text(text: str) -> None:
    shown = scrub(text)
    for secret in (
        SECRET_KEY,
        SESSION_TOKEN,
        GOOGLE_TOKEN,
        BEDROCK_KEY,
        SIGNATURE[10:],
        "AKIAIOSFODNN7EXAMPLE",
    ):
        assert secret[:16] not in shown


def test_credentials_found_at_run_time_are_scrubbed_wherever_they_are_echoed() -> None:
    secret = "runtimeSecretFromTheChain0000EXAMPLE+abc"  # no telltale shape at all
    remember_secret(secret)
    error = RateLimitError(f"the upstream echoed {secret} back")
    assert secret[:8] not in str(error) and secret[:8] not in repr(error)
    assert secret[8:24] not in scrub(json.dumps({"detail": secret}))


def test_a_secret_still_in_use_is_never_forgotten_however_many_come_after() -> None:
    import hashlib

    live = "liveSessionSecretInUseByAProfile0000EXAMPLE"
    remember_secret(live)
    tokens = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(200)]
    for token in tokens:  # each refresh brings a new token; the live one is used too
        remember_secret(token)
        assert live[4:20] not in scrub(f"echoed: {live}")
        remember_secret(live)
    assert tokens[0] in scrub(f"expired long ago: {tokens[0]}")  # the least recent went
    assert tokens[-1] not in scrub(f"recent: {tokens[-1]}")


def test_remembering_one_more_secret_works_out_that_secrets_pieces_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from failover import _secrets

    for number in range(70):
        remember_secret(f"sessionTokenFiller{number:04d}" + "Q" * 600)
    built: list[int] = []
    real = _secrets.KeyScrubber

    def counting(keys: Any, **options: Any) -> Any:
        keys = tuple(keys)
        built.append(len(keys))
        return real(keys, **options)

    monkeypatch.setattr(_secrets, "KeyScrubber", counting)
    remember_secret("aBrandNewSessionToken" + "Z" * 600)
    remember_secret("aBrandNewSessionToken" + "Z" * 600)  # known: nothing to build
    assert built == [1]
    monkeypatch.undo()
    assert "***" in scrub("echo aBrandNewSessionTokenZZZZ")


def test_keyless_cloud_profiles_of_different_accounts_have_different_fingerprints() -> None:
    from botocore.credentials import Credentials

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY9"
    profiles = [
        AuthProfile("prod", "bedrock", "", region="us-east-1", credentials="prod"),
        AuthProfile("staging", "bedrock", "", region="us-east-1", credentials="staging"),
        AuthProfile("west", "bedrock", "", region="us-west-2", credentials="prod"),
        AuthProfile(
            "pair",
            "bedrock",
            "",
            region="us-east-1",
            credentials=Credentials("AKIAIOSFODNN7EXAMPLE", secret),
        ),
        AuthProfile("gcp", "vertex_gemini", "", project="proj-a", region="us-central1"),
        AuthProfile("gcp2", "vertex_gemini", "", project="proj-b", region="us-central1"),
    ]
    fingerprints = [profile.fingerprint for profile in profiles]
    assert len(set(fingerprints)) == len(profiles)
    again = AuthProfile("prod-again", "bedrock", "", region="us-east-1", credentials="prod")
    assert again.fingerprint == profiles[0].fingerprint  # stable: the same account, one record
    other_secret = Credentials("AKIAIOSFODNN7EXAMPLE", secret[::-1])
    same_id = AuthProfile("pair2", "bedrock", "", region="us-east-1", credentials=other_secret)
    assert same_id.fingerprint == profiles[3].fingerprint  # the secret plays no part


def test_a_built_request_shows_no_credentials_in_its_repr() -> None:
    from failover.providers.base import HttpRequest

    request = HttpRequest(
        "POST",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
        {"authorization": "Bearer opaquetokenvalue0000", "x-api-key": "plainkeyvalue0000"},
        b'{"key": "bodysecretvalue0000"}',
    )
    shown = repr(request)
    assert "converse" in shown
    for secret in ("opaquetokenvalue", "plainkeyvalue", "bodysecretvalue"):
        assert secret not in shown


async def test_no_cloud_secret_reaches_logs_events_errors_or_status(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session_token = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENforTHEtest0000"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SIM_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    google_token = "ya29.vertex-token-000000000"
    sim.script(Behavior("rate_limit", retry_after=30), provider="bedrock")
    sim.script(Behavior("invalid_key"), provider="vertex_anthropic")
    profiles = [
        AuthProfile("aws", "bedrock", "", base_url=sim.base_url("bedrock"), region="us-east-1"),
        AuthProfile(
            "gcp", "vertex_anthropic", google_token, base_url=sim.base_url("vertex_anthropic")
        ),
    ]
    manager = FailoverManager()
    for profile in profiles:
        manager.add_profile(profile)
    chain = [{"model": "claude-sonnet-4-5", "on": ["bedrock", "vertex_anthropic"]}]
    seen: list[str] = []
    async with ResilientClient(chain, manager, wait_for_recovery=False) as client:
        for hook in (client.on_failover, client.on_cooldown, client.on_exhausted):
            hook(lambda event: seen.append(repr(event)))
        with pytest.raises(FailoverError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
        status = json.dumps(client.status(), default=str)
    shown = "\n".join(
        [caplog.text, *seen, str(caught.value), repr(caught.value), status, *map(repr, profiles)]
    )
    for secret in (SIM_SECRET_ACCESS_KEY, session_token, google_token):
        assert secret[:12] not in shown and secret[-12:] not in shown
    assert not re.search(r"Signature=[0-9a-f]{64}", shown)
    assert sim.requests[0].key == SIM_ACCESS_KEY_ID  # the chain's credentials were used


def test_the_example_runs_on_the_simulator_with_no_cloud_account() -> None:
    script = Path(__file__).parent.parent / "examples" / "same_model_three_clouds.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    for line in (
        f"  {BEDROCK}  ($3.3/M input tokens)",
        "failover: anthropic/claude-sonnet-4-5 -> bedrock/",
        f"-> {VERTEX} (rate_limit)",
        f"tool call from {VERTEX}: get_weather",
        "answer from anthropic/claude-sonnet-4-5: Simulated answer from anthropic/claude-sonnet-4-5 "
        "after 1 tool results",
    ):
        assert line in done.stdout


async def test_an_anthropic_sdk_call_is_served_by_bedrock_when_anthropic_is_down(
    sim: Simulator,
) -> None:
    import anthropic
    import httpx2

    from failover import ResilientTransport

    sim.script(Behavior("overloaded"), provider="anthropic")
    transport = ResilientTransport(
        three_clouds(sim)[:2], provider="anthropic", fallback_models=[BEDROCK]
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(
            api_key="unused", base_url=sim.base_url("anthropic"), max_retries=0, http_client=http
        )
        reply = await sdk.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
        )
        text = ""
        async with sdk.messages.stream(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for piece in stream.text_stream:
                text += piece
    assert reply.content[0].text.startswith(f"Simulated answer from {BEDROCK}")  # type: ignore[union-attr]
    assert text.startswith(f"Simulated answer from {BEDROCK}")
    assert [r.key for r in sim.requests if r.provider == "bedrock"] == [SIM_ACCESS_KEY_ID] * 2


async def test_the_aiohttp_sender_reads_converse_streams_too(sim: Simulator) -> None:
    from failover.aiohttp_sender import AiohttpSender

    sender = AiohttpSender()
    try:
        async with ResilientClient([BEDROCK], three_clouds(sim)[1:2], sender=sender) as client:
            sim.script(Behavior(tool_calls=[("get_weather", {"city": "Oslo"})]), provider="bedrock")
            async with client.stream([{"role": "user", "content": "hi"}], tools=[TOOL]) as stream:
                async for _ in stream:
                    pass
            sim.script(None, provider="bedrock")
            text = await read_all(client)
    finally:
        await sender.aclose()
    assert stream.tool_calls[0].args == {"city": "Oslo"}  # type: ignore[attr-defined]
    assert text.startswith(f"Simulated answer from {BEDROCK}")


def test_import_failover_loads_neither_botocore_nor_google_auth() -> None:
    code = (
        "import sys, failover, failover.providers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'google')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_missing_extra_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from failover.providers._aws import require_botocore
    from failover.providers._google import require_google_auth

    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "google.auth", None)
    with pytest.raises(ConfigError, match=r"llm-failover\[bedrock\]"):
        require_botocore()
    with pytest.raises(ConfigError, match=r"llm-failover\[vertex\]"):
        require_google_auth()


async def test_the_clouds_of_a_step_share_the_load_under_a_strategy(sim: Simulator) -> None:
    async with ResilientClient([STEP], three_clouds(sim), strategy="round_robin") as client:
        served = [
            (await client.complete([{"role": "user", "content": "hi"}])).model for _ in range(3)
        ]
    assert sorted(served) == sorted(["anthropic/claude-sonnet-4-5", BEDROCK, VERTEX])


def test_a_sync_openai_sdk_stream_is_served_by_bedrock_through_the_transport() -> None:
    import httpx2
    import openai

    from failover import ResilientTransport
    from tests.conftest import simulator_in_thread

    with simulator_in_thread() as sim:
        sim.script(Behavior("overloaded"), provider="openai")
        profiles = [
            AuthProfile(
                "oa", "openai", "sk-openai-key-0000000001", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "aws",
                "bedrock",
                f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}",
                base_url=sim.base_url("bedrock"),
                region="us-east-1",
            ),
        ]
        transport = ResilientTransport(profiles, provider="openai", fallback_models=[BEDROCK])
        with httpx2.Client(transport=transport) as http:
            sdk = openai.OpenAI(
                api_key="unused", base_url=sim.base_url("openai"), max_retries=0, http_client=http
            )
            stream = sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        transport.close()
    assert text.startswith(f"Simulated answer from {BEDROCK}")


@pytest.mark.parametrize("provider", ["bedrock", "vertex_anthropic", "vertex_gemini"])
def test_the_transport_refuses_a_cloud_as_its_own_provider_naming_the_way(provider: str) -> None:
    # An SDK's own request would be passed through unsigned (the AWS secret as a bearer
    # token, or to AI Studio's host with no credentials): refused at construction instead.
    from failover import ResilientTransport

    key = f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}"
    where = {"region": "us-east-1"} if provider == "bedrock" else {"region": "us-east5"}
    profile = AuthProfile("cloud", provider, key, project="p", **where)
    with pytest.raises(ConfigError, match="fallback_models") as caught:
        ResilientTransport([profile], provider=provider)
    assert SIM_SECRET_ACCESS_KEY not in str(caught.value)
