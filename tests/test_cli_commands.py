"""The `failover` command on a config file: chat, check (--live), status, simulate --script."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import failover
from failover.cli import main, profiles_from_environment
from failover.testing import Behavior, Simulator

GOOD = "sk-cli-good-key-00000000000001"
LIMITED = "sk-cli-limited-key-0000000002"
REVOKED = "sk-cli-revoked-key-0000000003"
CLAUDE = "sk-ant-cli-key-00000000000004"
ENV = {"GOOD_KEY": GOOD, "LIMITED_KEY": LIMITED, "REVOKED_KEY": REVOKED, "CLAUDE_KEY": CLAUDE}
REPLY = "Simulated answer for the command line"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    keys = {"openai": [GOOD, LIMITED], "anthropic": [CLAUDE]}
    async with Simulator(keys=keys, default=Behavior(reply=REPLY)) as simulator:
        yield simulator


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_BASE_URL")) or name.startswith(("OLLAMA_", "VLLM_")):
            monkeypatch.delenv(name)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def write_config(tmp_path: Path, sim: Simulator, *, revoked: bool = True) -> Path:
    profiles = [("good", "openai", "GOOD_KEY"), ("limited", "openai", "LIMITED_KEY")]
    if revoked:
        profiles.append(("revoked", "openai", "REVOKED_KEY"))
    profiles.append(("claude", "anthropic", "CLAUDE_KEY"))
    text = 'chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]\n'
    text += "[settings]\ntimeout = 10\ndeadline = 30\nmax_retries = 0\n"
    for name, provider, variable in profiles:
        text += (
            f'[[profiles]]\nname = "{name}"\nprovider = "{provider}"\n'
            f'api_key = "env:{variable}"\nbase_url = "{sim.base_url(provider)}"\n'
        )
    path = tmp_path / "failover.toml"
    path.write_text(text)
    return path


async def run(*argv: str) -> int:
    """Run the command as a user would, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_chat_with_a_config_streams_the_answer(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=GOOD)
    path = write_config(tmp_path, sim, revoked=False)
    assert await run("chat", "--config", str(path), "Say hi") == 0
    out, err = capsys.readouterr()
    assert out.strip() == REPLY
    assert "[openai/gpt-4o-mini via limited, 2 attempt(s)]" in err
    assert (
        "2 attempts: openai/gpt-4o-mini via good: rate_limit 429 -> rotated; "
        "openai/gpt-4o-mini via limited: ok"
    ) in err
    assert GOOD not in out + err and LIMITED not in out + err


async def test_chat_says_why_it_took_several_attempts(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=GOOD)
    sim.script("overloaded", key=LIMITED)
    path = write_config(tmp_path, sim, revoked=False)
    assert await run("chat", "--config", str(path), "--no-stream", "Say hi") == 0
    out, err = capsys.readouterr()
    assert out.strip() == REPLY
    assert "[anthropic/claude-haiku-4-5 via claude, 3 attempt(s)]" in err
    assert (
        "3 attempts: openai/gpt-4o-mini via good: rate_limit 429 -> rotated; "
        "openai/gpt-4o-mini via limited: overloaded 503 -> fell back; "
        "anthropic/claude-haiku-4-5 via claude: ok"
    ) in err
    assert GOOD not in out + err and LIMITED not in out + err and CLAUDE not in out + err


async def test_chat_with_one_attempt_adds_no_trail(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, sim, revoked=False)
    assert await run("chat", "--config", str(path), "--no-stream", "hi") == 0
    err = capsys.readouterr().err
    assert "[openai/gpt-4o-mini via good, 1 attempt(s)]" in err and "attempts:" not in err


async def test_chat_without_streaming_and_with_a_chain_override(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, sim)
    code = await run(
        "chat", "--config", str(path), "--chain", "anthropic/claude-haiku-4-5", "--no-stream", "hi"
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert out.strip() == REPLY and "via claude" in err


async def test_chat_reports_a_failed_request(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in (GOOD, LIMITED, CLAUDE):
        sim.script(Behavior("quota"), key=key)
    path = write_config(tmp_path, sim, revoked=False)
    assert await run("chat", "--config", str(path), "hi") == 1
    err = capsys.readouterr().err
    assert "failover chat: " in err
    assert "via 'good': quota (HTTP 429)" in err and "via 'claude': quota (HTTP 429)" in err


async def test_chat_from_the_environment_honours_base_urls(
    sim: Simulator, environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "OPENAI_API_KEY": GOOD,
        "OPENAI_BASE_URL": sim.base_url("openai"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "failover",
        "chat",
        "--no-stream",
        "hi",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == REPLY
    assert "openai_api_key (openai)" in err.decode() and sim.calls(key=GOOD) == 1


async def test_chat_reaches_ollama_with_no_key(
    sim: Simulator,
    environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", sim.base_url("ollama"))
    assert await run("chat", "hi") == 0
    out, err = capsys.readouterr()
    assert out.strip() == REPLY and "[ollama/llama3.2 via ollama" in err
    assert sim.calls(provider="ollama", key="") == 1


def test_environment_profiles_and_chain() -> None:
    profiles, chain = profiles_from_environment(
        {
            "OPENAI_API_KEY": "sk-1",
            "OPENAI_BASE_URL": "https://gateway.example.com/v1",
            "ANTHROPIC_API_KEY": "sk-ant-2",
            "OLLAMA_HOST": "127.0.0.1:11434",
            "OLLAMA_MODEL": "qwen3",
            "VLLM_BASE_URL": "http://gpu-box:8000/v1",
            "VLLM_MODEL": "meta-llama/Llama-3.1-8B-Instruct",
        }
    )
    assert [(p.name, p.provider, p.base_url) for p in profiles] == [
        ("openai_api_key", "openai", "https://gateway.example.com/v1"),
        ("anthropic_api_key", "anthropic", None),
        ("ollama", "ollama", "http://127.0.0.1:11434/v1"),
        ("vllm", "vllm", "http://gpu-box:8000/v1"),
    ]
    assert chain == [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "ollama/qwen3",
        "vllm/meta-llama/Llama-3.1-8B-Instruct",
    ]


async def test_check_validates_and_shows_the_file_without_keys(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, sim)
    assert await run("check", "--config", str(path)) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid" in out and "4 profile(s), chain of 2 model(s)" in out
    assert "env:GOOD_KEY" in out and "***0001" in out
    for key in ENV.values():
        assert key not in out
    assert sim.requests == []  # no --live: nothing sent


async def test_check_live_tries_every_key(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script(Behavior("rate_limit", after=50, window=60), key=GOOD)  # healthy, with headers
    sim.script(Behavior("rate_limit", retry_after=30), key=LIMITED)
    path = write_config(tmp_path, sim)
    assert await run("check", "--config", str(path), "--live") == 1
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "ok" in rows["good"] and "49" in rows["good"]  # requests left in its window
    assert "rate_limit" in rows["limited"] and "429" in rows["limited"]
    assert "auth" in rows["revoked"] and "401" in rows["revoked"]
    assert "ok" in rows["claude"]
    assert "2 of 4 profile(s) failed" in out
    for key in ENV.values():
        assert key not in out


async def test_check_names_the_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "failover.toml"
    path.write_text(
        '[[profiles]]\nname = "a"\nprovider = "openai"\napi_key = "env:NOT_SET_ANYWHERE"\n'
    )
    assert await run("check", "--config", str(path)) == 2
    err = capsys.readouterr().err
    assert "failover check:" in err and "NOT_SET_ANYWHERE, which is not set" in err


async def test_check_runs_the_clients_own_checks(
    tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "failover.toml"
    path.write_text(
        'chain = ["anthropic/claude-haiku-4-5"]\n'
        '[[profiles]]\nname = "a"\nprovider = "openai"\napi_key = "env:GOOD_KEY"\n'
    )
    assert await run("check", "--config", str(path)) == 2
    assert "no auth profile for provider 'anthropic'" in capsys.readouterr().err


async def test_status_without_a_probe_says_no_key_was_checked(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=LIMITED)
    path = write_config(tmp_path, sim)
    assert await run("status", "--config", str(path)) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "not probed: run with --probe to check keys" in out
    assert "available" not in out  # nothing was checked, so nothing is claimed
    assert all("not probed" in rows[name] for name in ("good", "limited", "revoked", "claude"))
    assert "***0001" in rows["good"] and sim.requests == []
    for key in ENV.values():
        assert key not in out

    assert await run("status", "--config", str(path), "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["probed"] is False and status["available_profiles"] is None
    assert {p["status"] for p in status["profiles"]} == {"not_probed"}
    assert sim.requests == []


async def test_status_shows_every_key_after_a_probe(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=LIMITED)
    path = write_config(tmp_path, sim)
    assert await run("status", "--config", str(path), "--probe") == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "2 of 4 available" in out
    assert "available" in rows["good"] and "***0001" in rows["good"]
    assert "rate_limited" in rows["limited"] and "30s" in rows["limited"]
    assert "disabled" in rows["revoked"] and "never" in rows["revoked"]
    for key in ENV.values():
        assert key not in out

    assert await run("status", "--config", str(path), "--probe", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in status["profiles"]}
    assert status["probed"] is True and status["available_profiles"] == 2
    assert by_name["limited"]["status"] == "rate_limited"
    assert by_name["revoked"]["status"] == "disabled"
    assert by_name["good"]["success_count"] == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_simulate_takes_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "outage.toml"
    script.write_text(
        '[keys]\nopenai = ["sk-a-000000000001", "sk-b-000000000002"]\n'
        '[[script]]\nkey = "sk-a-000000000001"\nbehavior = { kind = "rate_limit", retry_after = 7 }\n'
        '[[script]]\nprovider = "anthropic"\nbehavior = "overloaded"\n'
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover",
            "simulate",
            "--port",
            str(port),
            "--script",
            str(script),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        ask = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        url = f"http://127.0.0.1:{port}/openai/v1/chat/completions"
        limited = httpx.post(url, json=ask, headers={"authorization": "Bearer sk-a-000000000001"})
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        fine = httpx.post(url, json=ask, headers={"authorization": "Bearer sk-b-000000000002"})
        assert fine.status_code == 200
        unknown = httpx.post(url, json=ask, headers={"authorization": "Bearer sk-other"})
        assert unknown.status_code == 401
        overloaded = httpx.post(
            f"http://127.0.0.1:{port}/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        )
        assert overloaded.status_code == 529
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("[[script]]\nkey = 'k'\n", "[[script]] #1: needs behavior"),
        ("[[script]]\nbehavior = 'sleepy'\n", "[[script]] #1: unknown behaviour 'sleepy'"),
        ("[[outage]]\nprovider = 'openai'\n", "[[outage]] #1: needs provider, start and end"),
        ("[chaos]\nrates = { overloaded = 2.0 }\n", "[chaos]: rate for 'overloaded'"),
        ("colour = 1\n", "unknown key 'colour'"),
    ],
)
async def test_a_bad_script_is_named(
    tmp_path: Path, script: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "script.toml"
    path.write_text(script)
    assert await run("simulate", "--port", "0", "--script", str(path)) == 2
    assert message in capsys.readouterr().err


def test_version_and_number_checks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"failover {failover.__version__}"
    for argv, message in [
        (["chat", "--max-tokens", "0", "hi"], "--max-tokens: must be > 0, got 0"),
        (["chat", "--timeout", "soon", "hi"], "--timeout: expected a number of seconds"),
        (["chat", "--deadline", "inf", "hi"], "--deadline: must be a positive, finite number"),
        (["demo", "--requests", "-5"], "--requests: must be > 0"),
        (["demo", "--metrics-port", "70000"], "--metrics-port: a port is within 0..65535"),
        (["simulate", "--key", "openai"], "expected PROVIDER=KEY"),
        (["check", "--timeout", "0"], "--timeout: must be a positive"),
    ]:
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        assert message in capsys.readouterr().err


def test_every_option_has_help() -> None:
    from failover.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():  # type: ignore[union-attr]
        for action in sub._actions:
            assert action.help, f"failover {name} {action.dest} has no help"


def test_demo_serves_prometheus_metrics_while_it_runs() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover",
            "demo",
            "--requests",
            "60",
            "--seconds",
            "3",
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Prometheus metrics at http://127.0.0.1:")
        url = first.split(" at ")[1].strip()
        scraped = ""
        wanted = (
            "failover_client_attempts_total",
            "gen_ai_client_operation_duration_seconds_bucket",
        )
        while process.poll() is None and not all(name in scraped for name in wanted):
            try:  # the first requests may still be on their way
                scraped = httpx.get(url).text
            except httpx.TransportError:  # the demo ended meanwhile
                break
        assert "failover_client_attempts_total" in scraped
        assert "gen_ai_client_operation_duration_seconds_bucket" in scraped
        process.stdout.read()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_check_warns_about_a_key_in_the_file_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "failover.toml"
    path.write_text(f'[[profiles]]\nname = "a"\nprovider = "openai"\napi_key = "{GOOD}"\n')
    assert await run("check", "--config", str(path)) == 0
    out, err = capsys.readouterr()
    assert "failover: warning:" in err and "api_key is written in the file itself" in err
    assert "literal (***0001)" in out
    assert GOOD not in out + err


async def test_a_json_script_file_scripts_the_simulator_too(tmp_path: Path) -> None:
    from failover.cli.simulate import apply_script, read_script

    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "keys": {"gemini": ["AIza-json-key-0000000000000001"]},
                "default": {"reply": "from the script"},
                "script": [{"model": "gemini-2.5-pro", "behavior": {"kind": "server_error"}}],
                "chaos": {"seed": 1, "rates": {"overloaded": 0.0}},
            }
        )
    )
    async with Simulator() as sim:
        apply_script(sim, read_script(str(path)), str(path))
        url = f"{sim.root_url}/gemini/v1beta/models/{{}}:generateContent"
        body = {"contents": [{"parts": [{"text": "x"}]}]}
        headers = {"x-goog-api-key": "AIza-json-key-0000000000000001"}
        async with httpx.AsyncClient() as http:
            fine = await http.post(url.format("gemini-2.5-flash"), json=body, headers=headers)
            broken = await http.post(url.format("gemini-2.5-pro"), json=body, headers=headers)
            stranger = await http.post(
                url.format("gemini-2.5-flash"), json=body, headers={"x-goog-api-key": "AIza-other"}
            )
    assert fine.status_code == 200 and "from the script" in fine.text
    assert broken.status_code == 500 and stranger.status_code in (400, 401, 403)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "--watch"], "--watch refreshes the shared state: give --redis URL"),
        (
            ["status", "--redis", "redis://127.0.0.1:1", "--probe"],
            "--redis shows the shared store; --probe and --json are local",
        ),
    ],
)
async def test_status_options_that_do_not_go_together(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(*argv) == 2
    assert message in capsys.readouterr().err
