"""The `failover` command: chat without keys, simulate, and the demo (the main job)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx

from failover.cli import keys_from_environment


def test_keys_are_found_in_the_environment_with_numbered_extras() -> None:
    env = {"OPENAI_API_KEY": "sk-1", "OPENAI_API_KEY_2": "sk-2", "GOOGLE_API_KEY": "AIza-3"}
    found = keys_from_environment(env)
    assert [(name, provider) for name, provider, _ in found] == [
        ("openai_api_key", "openai"),
        ("openai_api_key_2", "openai"),
        ("google_api_key", "gemini"),
    ]


def test_chat_without_keys_says_which_variables_it_looked_for() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "failover", "chat", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no API keys found" in done.stderr and "OPENAI_API_KEY" in done.stderr


def test_simulate_serves_until_stopped() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "failover", "simulate", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        reply = httpx.post(
            f"http://127.0.0.1:{port}/openai/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )
        assert reply.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_demo_accounts_for_every_request() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "failover", "demo", "--requests", "80", "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every request" in done.stdout and "key rotations" in done.stdout


def test_every_default_chat_model_exists_in_the_catalog() -> None:
    from failover import FallbackChain
    from failover.cli import CHAT_MODELS, ENV_KEYS

    assert set(CHAT_MODELS) == set(ENV_KEYS)
    assert len(FallbackChain.from_ids(CHAT_MODELS.values())) == len(CHAT_MODELS)
