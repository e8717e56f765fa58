"""failover.toml: every field round-trips, every mistake is named, keys stay out of messages."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from failover import (
    AuthProfile,
    BudgetExceededError,
    ConfigError,
    FailoverConfig,
    FailoverManager,
    ResilientClient,
)
from failover.budgets import Budget
from failover.config_file import ConfigWarning, client_options, load_config, parse_config
from failover.testing import Simulator

SECRET = "sk-the-real-secret-key-000000001"
ENV = {"OPENAI_API_KEY": SECRET, "OTHER_KEY": "sk-another-secret-value-0000002"}
BASIC = """
chain = ["openai/gpt-4o-mini"]

[[profiles]]
name = "main"
provider = "openai"
api_key = "env:OPENAI_API_KEY"
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return repr(value)


STRING_CHOICES = {  # another valid value of each string option
    "strategy": "round_robin",
    "on_stream_break": "continue",
    "affinity": "prefix",
}


def other_value(annotation: str, default: Any, name: str = "") -> Any:
    """A valid value for a setting that differs from its default."""
    if isinstance(default, str):
        return STRING_CHOICES[name]
    if "bool" in annotation:
        return not default
    if default is None:
        return 2 if annotation.startswith("int") else 2.5
    if annotation.startswith("int"):
        return default * 2 + 1
    if 0 < default < 1:  # a rate or a fraction
        return default / 2
    return float(default) * 2 + 1


def test_every_setting_and_profile_field_round_trips(tmp_path: Path) -> None:
    expected_config = {
        f.name: other_value(str(f.type), f.default)
        for f in dataclasses.fields(FailoverConfig)
        if f.init
    }
    signature = inspect.signature(ResilientClient.__init__)
    defaults = {name: parameter.default for name, parameter in signature.parameters.items()}
    expected_options = {
        name: other_value(annotation, defaults[name], name)
        for name, annotation in client_options().items()
    }
    assert {"timeout", "deadline", "wait_for_recovery", "stream_idle_timeout"} <= set(
        expected_options
    )
    settings = "\n".join(
        f"{key} = {toml_value(value)}"
        for key, value in {**expected_config, **expected_options}.items()
    )
    path = tmp_path / "failover.toml"
    path.write_text(
        f"""
chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]

[settings]
{settings}

[[profiles]]
name = "main"
provider = "openai"
api_key = "env:OPENAI_API_KEY"
base_url = "https://gateway.example.com/v1"
models = ["gpt-4o-mini"]
priority = 2
rate_limit_rpm = 500
rate_limit_tpm = 90000
metadata = {{ team = "search" }}

[[profiles]]
name = "claude"
provider = "anthropic"
api_key = "env:OTHER_KEY"

[telemetry]
enabled = true
capture_content = true
prometheus_port = 9999
prometheus_addr = "0.0.0.0"
"""
    )
    loaded = load_config(path, env=ENV)
    assert loaded.chain == ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5")
    assert dataclasses.asdict(loaded.config) == expected_config
    assert dict(loaded.options) == expected_options
    main, claude = loaded.build_profiles()
    assert (main.name, main.provider, main.api_key) == ("main", "openai", SECRET)
    assert main.base_url == "https://gateway.example.com/v1"
    assert main.models == frozenset({"gpt-4o-mini"})
    assert (main.priority, main.rate_limit_rpm, main.rate_limit_tpm) == (2, 500, 90000)
    assert main.metadata == {"team": "search"}
    assert claude.api_key == ENV["OTHER_KEY"]
    assert [spec.key_source for spec in loaded.profiles] == ["env:OPENAI_API_KEY", "env:OTHER_KEY"]
    telemetry = loaded.telemetry
    assert (telemetry.enabled, telemetry.capture_content) == (True, True)
    assert (telemetry.prometheus_port, telemetry.prometheus_addr) == (9999, "0.0.0.0")
    assert SECRET not in repr(loaded)
    loaded.client(telemetry=False)  # the client takes every value


def test_an_empty_file_gives_the_defaults() -> None:
    loaded = parse_config("")
    assert loaded.config == FailoverConfig() and loaded.chain == () and loaded.profiles == ()
    assert loaded.telemetry.enabled is None and not loaded.options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chian = []", "top level: unknown key 'chian'; did you mean 'chain'?"),
        (
            "[settings]\nmax_retires = 2",
            "[settings]: unknown key 'max_retires'; did you mean 'max_retries'?",
        ),
        ("[settings]\ncolour = 2", "[settings]: unknown key 'colour'; known keys: max_retries"),
        (
            '[[profiles]]\nname = "a"\nprovider = "openai"\napikey = "x"',
            "[[profiles]] #1 ('a'): unknown key 'apikey'; did you mean 'api_key'?",
        ),
        ("[telemetry]\nprometheus = 1", "[telemetry]: unknown key 'prometheus'"),
        (
            '[settings]\nmax_retries = "3"',
            "[settings]: max_retries must be a whole number, got string '3'",
        ),
        (
            "[settings]\nmax_retries = 2.5",
            "[settings]: max_retries must be a whole number, got float 2.5",
        ),
        (
            "[settings]\nretry_delay = true",
            "[settings]: retry_delay must be a number, got boolean True",
        ),
        (
            '[settings]\nexponential_backoff = "yes"',
            "[settings]: exponential_backoff must be true or false",
        ),
        ('[settings]\ntimeout = "30s"', "[settings]: timeout must be a number, got string '30s'"),
        ("[settings]\nretry_delay = -1", "[settings]: retry_delay must be finite and >= 0"),
        (
            "[settings]\nretry_delay = 10\nmax_retry_delay = 5",
            "[settings]: max_retry_delay (5.0) must be >= retry_delay",
        ),
        ("settings = 3", "[settings] must be a table, got integer 3"),
        (
            '[[profiles]]\nname = "a"\nprovider = "openai"\npriority = "high"',
            "[[profiles]] #1 ('a'): priority must be a whole number, got string 'high'",
        ),
        (
            '[[profiles]]\nname = "a"\nprovider = "openai"\nmodels = "gpt-4o"',
            "[[profiles]] #1 ('a'): models must be a list of strings",
        ),
        ('[[profiles]]\nprovider = "openai"', "[[profiles]] #1: name is missing"),
        ('[[profiles]]\nname = "a"', "[[profiles]] #1 ('a'): provider is missing"),
        (
            '[[profiles]]\nname = "a"\nprovider = "nosuch"',
            "[[profiles]] #1 ('a'): AuthProfile 'a': unknown provider 'nosuch'",
        ),
        (
            '[[profiles]]\nname = "a"\nprovider = "openai"\napi_key = "env:OPENAI_API_KEY"\n'
            'base_url = "ftp://x"',
            "[[profiles]] #1 ('a'): AuthProfile 'a': base_url must be an http(s) URL",
        ),
        (
            '[[profiles]]\nname = "a"\nprovider = "vllm"\n[[profiles]]\nname = "a"\nprovider = "vllm"',
            "two profiles are named 'a'",
        ),
        ("profiles = 3", "profiles must be [[profiles]] tables"),
        ('chain = "openai/gpt-4o"', 'chain must be a list of "provider/model" strings'),
        (
            'chain = ["openai/no-such-model-x"]\n[settings]\nstrict_models = true',
            "chain: model not found in the catalog: 'openai/no-such-model-x'",
        ),
        ('chain = ["opnai/gpt-4o"]', "did you mean 'openai'?"),
        ('[[profiles]]\nname = "a"\nprovider = "openai"', "AuthProfile 'a': api_key is empty"),
        (
            "[telemetry]\nprometheus_port = 70000",
            "[telemetry]: prometheus_port must be within 0..65535",
        ),
        ("chain = [", "not valid TOML"),
    ],
)
def test_each_mistake_is_named_with_its_table_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="failover.toml", env=ENV)
    assert str(caught.value).startswith("failover.toml: ")
    assert message in str(caught.value)


def test_invalid_toml_says_where() -> None:
    with pytest.raises(ConfigError, match=r"line 2"):
        parse_config('chain = ["a/b"]\nsettings = {x = = 1}\n', source="f.toml")


def test_a_missing_environment_variable_is_named_and_no_value_is_shown() -> None:
    text = BASIC.replace("env:OPENAI_API_KEY", "env:MISSING_OPENAI_KEY")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="failover.toml", env=ENV)
    message = str(caught.value)
    assert "[[profiles]] #1 ('main'): api_key refers to the environment variable" in message
    assert "MISSING_OPENAI_KEY, which is not set" in message
    for value in ENV.values():
        assert value not in message


def test_an_empty_environment_variable_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY, which is empty"):
        parse_config(BASIC, env={"OPENAI_API_KEY": ""})


def test_a_base_url_can_come_from_the_environment() -> None:
    text = BASIC + 'base_url = "env:OPENAI_BASE_URL"\n'
    env = {**ENV, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    (profile,) = parse_config(text, env=env).build_profiles()
    assert profile.base_url == "http://127.0.0.1:9/v1"


def test_a_malformed_env_reference_is_an_error() -> None:
    with pytest.raises(ConfigError, match='api_key must be "env:NAME"'):
        parse_config(BASIC.replace("env:OPENAI_API_KEY", "env:1BAD-NAME"), env=ENV)


def test_an_api_key_of_the_wrong_type_is_not_echoed() -> None:
    text = BASIC.replace('"env:OPENAI_API_KEY"', "987654321987654321")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env=ENV)
    assert "api_key must be a string, got a integer" in str(caught.value)
    assert "987654321987654321" not in str(caught.value)


def test_a_literal_key_works_with_a_warning_that_does_not_show_it() -> None:
    text = BASIC.replace("env:OPENAI_API_KEY", SECRET)
    with pytest.warns(ConfigWarning, match="api_key is written in the file itself") as caught:
        loaded = parse_config(text, source="failover.toml")
    assert all(SECRET not in str(w.message) for w in caught)
    assert loaded.build_profiles()[0].api_key == SECRET
    assert loaded.profiles[0].key_source == "literal"


def test_a_local_profile_needs_no_key() -> None:
    text = (
        '[[profiles]]\nname = "local"\nprovider = "ollama"\nbase_url = "http://127.0.0.1:11434/v1"'
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (spec,) = parse_config(text).profiles
    assert spec.key_source == "none" and spec.build().api_key == ""


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        load_config(tmp_path / "nope.toml")


def test_a_client_needs_a_chain() -> None:
    with pytest.raises(ConfigError, match="chain is missing"):
        parse_config(BASIC.replace('chain = ["openai/gpt-4o-mini"]', ""), env=ENV).client()


def test_each_manager_gets_fresh_profiles() -> None:
    loaded = parse_config(BASIC, env=ENV)
    first, second = loaded.manager(), loaded.manager()
    first.mark_failure("main", "boom", kind="auth")
    assert second.get_profile("main") is not first.get_profile("main")
    assert second.status().available_profiles == 1


async def test_client_and_manager_from_a_file_work_against_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Simulator(keys={"openai": [SECRET]}) as sim:
        path = tmp_path / "failover.toml"
        path.write_text(
            BASIC
            + f'base_url = "{sim.base_url("openai")}"\n'
            + "\n[settings]\nmax_retries = 1\ntimeout = 5\ndeadline = 20\n"
        )
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        manager = load_config(path).manager()
        assert isinstance(manager, FailoverManager)
        assert manager.config.max_retries == 1
        assert [p.name for p in manager.list_profiles()] == ["main"]
        async with load_config(path).client(telemetry=False) as client:
            assert isinstance(client, ResilientClient)
            assert client.manager.config.max_retries == 1
            assert client._engine.timeout == 5.0 and client._engine.deadline == 20.0
            result = await client.complete([{"role": "user", "content": "hi"}])
        assert result.profile == "main" and sim.calls(key=SECRET) == 1


def test_overrides_win_over_the_file() -> None:
    loaded = parse_config(BASIC + "\n[settings]\ntimeout = 5\n", env=ENV)
    client = loaded.client(timeout=9, telemetry=False)
    assert client._engine.timeout == 9.0
    assert isinstance(client.manager.get_profile("main"), AuthProfile)


async def test_the_telemetry_table_serves_prometheus(tmp_path: Path) -> None:
    async with Simulator(keys={"openai": [SECRET]}) as sim:
        text = BASIC + f'base_url = "{sim.base_url("openai")}"\n[telemetry]\nprometheus_port = 0\n'
        loaded = parse_config(text, env=ENV)
        exposition = loaded.serve_prometheus()
        try:
            async with loaded.client(telemetry=exposition.telemetry) as client:
                await client.complete([{"role": "user", "content": "hi"}])
            assert exposition.url is not None
            async with httpx.AsyncClient() as http:
                scraped = (await http.get(exposition.url)).text
            assert "failover_client_attempts_total{" in scraped and SECRET not in scraped
        finally:
            exposition.close()


def test_telemetry_can_be_switched_off_in_the_file() -> None:
    loaded = parse_config(BASIC + "\n[telemetry]\nenabled = false\n", env=ENV)
    assert loaded.client()._engine.telemetry is None


def test_policy_overrides_and_fallback_on_name_error_classes() -> None:
    from failover import ContentFilteredError, OverloadedError, RateLimitError, ServerError

    text = BASIC + (
        "\n[settings]\nfallback_on = ['RateLimitError', 'ServerError']\n"
        "[settings.policy_overrides]\nContentFilteredError = 'raise'\nOverloadedError = 'next_model'\n"
    )
    loaded = parse_config(text, env=ENV)
    assert loaded.options["fallback_on"] == (RateLimitError, ServerError)
    assert loaded.options["policy_overrides"] == {
        ContentFilteredError: "raise",
        OverloadedError: "next_model",
    }
    loaded.client(telemetry=False)  # the client takes them as they are


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            "fallback_on = ['Nope']",
            "[settings]: fallback_on: 'Nope' is not an error class; one of: ",
        ),
        (
            "fallback_on = 'RateLimitError'",
            "[settings]: fallback_on must be a list of error class names",
        ),
        ("policy_overrides = 3", "[settings]: policy_overrides must be a table"),
        (
            "[settings.policy_overrides]\nConfigError = 'raise'",
            "policy_overrides: 'ConfigError' is not an error class",
        ),
        (
            "[settings.policy_overrides]\nServerError = 'explode'",
            "[settings]: policy_overrides: unknown action 'explode' for ServerError",
        ),
    ],
)
def test_policy_mistakes_are_named(settings: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASIC + "\n[settings]\n" + settings + "\n", source="failover.toml", env=ENV)
    assert message in str(caught.value)


def test_the_example_file_loads() -> None:
    path = Path(__file__).parent.parent / "examples" / "failover.toml"
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_API_KEY_2": SECRET + "2", "ANTHROPIC_API_KEY": SECRET}
    loaded = load_config(path, env=env)
    assert len(loaded.chain) == 3 and len(loaded.profiles) == 4
    loaded.client(telemetry=False)


def test_the_telemetry_table_turns_content_capture_on() -> None:
    from failover.telemetry import Telemetry

    loaded = parse_config(BASIC + "\n[telemetry]\ncapture_content = true\n", env=ENV)
    telemetry = loaded.build_telemetry()
    assert isinstance(telemetry, Telemetry) and telemetry.capture_content
    assert parse_config(BASIC, env=ENV).build_telemetry() is None  # the client's default


def test_literal_and_string_options() -> None:
    loaded = parse_config(
        BASIC + "\n[settings]\nhedge_after = 'p95'\nstrategy = 'latency'\n", env=ENV
    )
    assert loaded.options == {"hedge_after": "p95", "strategy": "latency"}
    assert parse_config(BASIC + "\n[settings]\nhedge_after = 2\n", env=ENV).options == {
        "hedge_after": 2.0
    }
    with pytest.raises(
        ConfigError, match=r"\[settings\]: hedge_after must be a number or 'p95', got string 'p99'"
    ):
        parse_config(BASIC + "\n[settings]\nhedge_after = 'p99'\n", env=ENV)
    with pytest.raises(
        ConfigError, match=r"\[settings\]: strategy must be a string, got integer 3"
    ):
        parse_config(BASIC + "\n[settings]\nstrategy = 3\n", env=ENV)
    with pytest.raises(ConfigError, match="unknown key 'telemetry'"):
        parse_config(BASIC + "\n[settings]\ntelemetry = true\n", env=ENV)


def test_a_chain_step_can_be_a_group_of_deployments_with_a_strategy_and_weights() -> None:
    text = """
chain = [["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"],
         {name = "claude", deployments = ["anthropic/claude-haiku-4-5"]}]
[[profiles]]
name = "o"
provider = "openai"
api_key = "env:KEY"
weight = 2
[[profiles]]
name = "g"
provider = "groq"
api_key = "env:KEY"
[[profiles]]
name = "a"
provider = "anthropic"
api_key = "env:KEY"
[settings]
strategy = "weighted"
"""
    loaded = parse_config(text, env={"KEY": "sk-config-group-key-0001"})
    client = loaded.client()
    assert [len(step) for step in client.chain.steps] == [2, 1]
    assert client._engine.strategy.name == "weighted"
    assert client.manager.get_profile("o").weight == 2.0
    assert loaded.model_ids[:2] == ("openai/gpt-4o-mini", "groq/llama-3.1-8b-instant")


def test_a_group_with_an_unknown_key_is_refused() -> None:
    text = 'chain = [{name = "x", models = ["openai/gpt-4o-mini"]}]'
    with pytest.raises(ConfigError, match="models"):
        parse_config(text, env={})


def test_a_sync_client_from_a_file_takes_its_chain_keys_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from failover import SyncResilientClient
    from tests.conftest import simulator_in_thread

    with simulator_in_thread(keys={"openai": [SECRET]}) as sim:
        path = tmp_path / "failover.toml"
        path.write_text(
            BASIC + f'base_url = "{sim.base_url("openai")}"\n' + "\n[settings]\ntimeout = 5\n"
        )
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with load_config(path).sync_client(telemetry=False) as client:
            assert isinstance(client, SyncResilientClient)
            assert client.manager.get_profile("main") is not None
            result = client.complete([{"role": "user", "content": "hi"}])
        assert result.profile == "main" and sim.calls(key=SECRET) == 1


# -- budgets and in-flight caps -----------------------------------------------------------------

ADMISSION = """
chain = [{name = "mini", deployments = ["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"]},
         "anthropic/claude-haiku-4-5"]

[settings.max_in_flight]
"anthropic/claude-haiku-4-5" = 4

[[profiles]]
name = "main"
provider = "openai"
api_key = "env:OPENAI_API_KEY"
max_in_flight = 2
rate_limit_tpm = 90000

[[profiles]]
name = "groq"
provider = "groq"
api_key = "env:OTHER_KEY"

[[profiles]]
name = "claude"
provider = "anthropic"
api_key = "env:OTHER_KEY"

[[budgets]]
usd = 50

[[budgets]]
usd = 2.5
per = "hour"
scope = "group:mini"

[[budgets]]
usd = 1
per = 600
scope = "tag:tenant-a"

[[budgets]]
usd = 10
per = "month"
scope = "profile:main"
"""


def test_budgets_and_in_flight_caps_in_the_file_reach_the_manager() -> None:
    loaded = parse_config(ADMISSION, env=ENV)
    assert loaded.budgets == (
        Budget(usd=50, per="day"),
        Budget(usd=2.5, per="hour", scope="group:mini"),
        Budget(usd=1, per=600, scope="tag:tenant-a"),
        Budget(usd=10, per="month", scope="profile:main"),
    )
    assert loaded.max_in_flight == {"anthropic/claude-haiku-4-5": 4}
    admission = loaded.manager().admission
    assert admission.budgets == loaded.budgets
    assert admission.caps == {"anthropic/claude-haiku-4-5": 4}
    client = loaded.client(telemetry=False)
    assert client.manager.admission.budgets == loaded.budgets
    assert client.manager.get_profile("main").max_in_flight == 2
    assert dict(client.chain.groups) == {  # group:mini applies to both deployments
        "openai/gpt-4o-mini": "mini",
        "groq/llama-3.1-8b-instant": "mini",
    }


@respx.mock
async def test_a_budget_in_the_file_holds_the_client_to_it() -> None:
    route = respx.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})
    )
    loaded = parse_config(BASIC + "\n[[budgets]]\nusd = 0.000001\n", env=ENV)
    async with loaded.client(telemetry=False) as client:
        with pytest.raises(BudgetExceededError) as caught:
            await client.complete([{"role": "user", "content": "hello"}], max_tokens=100)
    assert caught.value.budget == Budget(usd=0.000001, per="day")
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[budgets]]\nper = 'day'", "[[budgets]] #1: usd is missing"),
        ("[[budgets]]\nusd = '5'", "[[budgets]] #1: usd must be a number, got string"),
        ("[[budgets]]\nusd = -1", "[[budgets]] #1: Budget usd must be a number > 0"),
        ("[[budgets]]\nusd = 1\nper = 'week'", "[[budgets]] #1: Budget per must be 'hour'"),
        ("[[budgets]]\nusd = 1\nper = 0", "[[budgets]] #1: Budget per (seconds) must be > 0"),
        ("[[budgets]]\nusd = 1\nper = true", "[[budgets]] #1: per must be a string or a number"),
        ("[[budgets]]\nusd = 1\nscope = 'team:x'", "[[budgets]] #1: Budget scope must be"),
        ("[[budgets]]\nusd = 1\nlimit = 2", "[[budgets]] #1: unknown key 'limit'"),
        (
            "[[budgets]]\nusd = 1\n[[budgets]]\nusd = 1\nscope = 'profile:nobody'",
            "[[budgets]] #2: scope 'profile:nobody' names no profile of this file; "
            "its profiles: main",
        ),
        (
            "[[budgets]]\nusd = 1\nscope = 'model:openai/gpt-4o'",
            "[[budgets]] #1: scope: 'openai/gpt-4o' is not in the chain",
        ),
        (
            "[[budgets]]\nusd = 1\nscope = 'group:mini'",
            "[[budgets]] #1: scope 'group:mini' names no group of the chain",
        ),
        ("[settings]\nmax_in_flight = 4", "[settings] max_in_flight must be a table"),
        (
            "[settings.max_in_flight]\n'openai/gpt-4o-mini' = 0",
            '[settings] max_in_flight: "openai/gpt-4o-mini" must be a whole number of 1 or more',
        ),
        (
            "[settings.max_in_flight]\n'gpt-4o-mini' = 2",
            "[settings] max_in_flight: keys are \"provider/model\" ids, got 'gpt-4o-mini'",
        ),
        (
            "[settings.max_in_flight]\n'anthropic/claude-haiku-4-5' = 2",
            "[settings] max_in_flight: 'anthropic/claude-haiku-4-5' is not in the chain",
        ),
    ],
)
def test_each_budget_and_cap_mistake_names_its_table_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASIC + "\n" + text, env=ENV)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


def test_budgets_must_be_tables() -> None:
    with pytest.raises(ConfigError, match=r"budgets must be \[\[budgets\]\] tables"):
        parse_config("budgets = 5\n" + BASIC, env=ENV)
