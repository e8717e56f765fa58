"""Each subcommand that needs an extra names it, with its install line, instead of a traceback.

The packages an extra brings are hidden from a fresh interpreter (as if never installed),
then the command runs as a user would run it. The real bare install is tried in
tests/test_packaging.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from failover.cli.extras import EXTRAS, advice, extra_for_module

HIDE = """
import sys
hidden = set(sys.argv[1].split(","))

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Hide())
from failover.cli import main
sys.exit(main(sys.argv[2:]))
"""


def failover_without(hidden: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``failover ARGV`` with the top-level packages ``hidden`` (comma-separated) missing."""
    return subprocess.run(
        [sys.executable, "-c", HIDE, hidden, *argv], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("hidden", "argv", "line"),
    [
        (
            "rich",
            ["check"],
            "failover check needs the 'cli' extra: pip install 'llm-failover[cli]'",
        ),
        (
            "rich",
            ["status"],
            "failover status needs the 'cli' extra: pip install 'llm-failover[cli]'",
        ),
        (
            "redis",
            ["status", "--redis", "redis://127.0.0.1:1/0"],
            "failover status needs the 'redis' extra: pip install 'llm-failover[redis]'",
        ),
        (
            "starlette",
            ["simulate"],
            "failover simulate needs the 'sim' extra: pip install 'llm-failover[sim]'",
        ),
        (
            "uvicorn,rich",
            ["demo"],
            "failover demo needs the 'sim' extra: pip install 'llm-failover[sim]'",
        ),
        (
            "starlette,redis",
            ["demo", "--workers", "2"],
            "failover demo needs the 'sim' and 'redis' extras: pip install 'llm-failover[sim,redis]'",
        ),
        (
            "opentelemetry",
            ["demo", "--metrics-port", "0"],
            "failover demo needs the 'prometheus' extra: pip install 'llm-failover[prometheus]'",
        ),
    ],
)
def test_a_command_names_the_extra_it_needs_and_exits_2(
    hidden: str, argv: list[str], line: str
) -> None:
    done = failover_without(hidden, *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == line
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_status_as_json_needs_no_extra(tmp_path: Path) -> None:
    config = tmp_path / "failover.toml"
    config.write_text(
        'chain = ["openai/gpt-4o-mini"]\n'
        '[[profiles]]\nname = "main"\nprovider = "openai"\napi_key = "env:JSON_TEST_KEY"\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            HIDE,
            "rich,starlette,uvicorn,redis",
            "status",
            "--json",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JSON_TEST_KEY": "sk-json-test-key-0000000009"},
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["probed"] is False and [p["name"] for p in shown["profiles"]] == ["main"]
    assert "sk-json-test-key-0000000009" not in done.stdout


def test_help_and_chat_work_with_no_extra_at_all() -> None:
    every = ",".join(sorted({m.partition(".")[0] for ms in EXTRAS.values() for m in ms}))
    done = failover_without(every, "--help")
    assert done.returncode == 0 and "chat" in done.stdout and "demo" in done.stdout
    done = subprocess.run(
        [sys.executable, "-c", HIDE, every, "chat", "hello"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no API key in sight
    )
    assert done.returncode == 2 and "no API keys found" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_module_an_extra_brings_is_traced_to_that_extra() -> None:
    assert extra_for_module("starlette.routing") == "sim"
    assert extra_for_module("rich") == "cli"
    assert extra_for_module("opentelemetry") == "prometheus"  # the parent of what it needs
    assert extra_for_module("redis.asyncio") == "redis"
    assert extra_for_module("numpy") is None and extra_for_module(None) is None
    assert advice("check", ["cli"]) == (
        "failover check needs the 'cli' extra: pip install 'llm-failover[cli]'"
    )
