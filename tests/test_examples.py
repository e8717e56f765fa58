"""Every example runs as a user would run it, against the simulator, with no keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", ["failover: first -> second (rate_limit)", "stream:", "call:"]),
        ("wrap_openai_sdk.py", ["model failover: overloaded", "openai/gpt-4o:"]),
        ("wrap_anthropic_sdk.py", ["revoked: disabled (auth)", "anthropic SDK: Simulated"]),
        ("wrap_groq_sdk.py", ["calls per key: {'0001': 1, '0002': 3}"]),
        (
            "embeddings.py",
            [
                "embedded 3 x 3072 with openai/text-embedding-3-large via oa-2",
                "failover (model): openai/text-embedding-3-large -> gemini/gemini-embedding-001",
                "openai/text-embedding-3-small (1536), gemini/text-embedding-004 (768)",
                "with dimensions=768: 768 for every model",
            ],
        ),
        (
            "agent_tools.py",
            [
                "round 1: openai/gpt-4o-mini called get_weather",
                "round 2: anthropic/claude-haiku-4-5 called get_time",
                "final: gemini/gemini-2.5-flash-lite says 'Simulated answer",
                "after 2 tool results",
            ],
        ),
        (
            "wrap_openai_sdk_sync.py",
            ["key failover: rate_limit", "openai SDK (sync): Simulated", "key a: rate_limited"],
        ),
        (
            "observability.py",
            [
                "span 'chat gpt-4o-mini' (CLIENT",
                "attempt 1: chat gpt-4o-mini via openai-main at 127.0.0.1: rate_limit (HTTP 429)",
                "attempt 2: chat gpt-4o-mini via openai-spare at 127.0.0.1: quota (HTTP 429)",
                "attempt 3: chat claude-haiku-4-5 via claude at 127.0.0.1: ok",
                "event failover.rotation: failover.model=openai/gpt-4o-mini, failover.from_profile=openai-main",
                "event failover.fallback: failover.from_model=openai/gpt-4o-mini, failover.to_model=anthropic/claude-haiku-4-5",
                "gen_ai.client.operation.duration {gen_ai.operation.name=chat",
                "gen_ai.client.token.usage {",
                "failover.client.attempts {failover.outcome=quota",
            ],
        ),
    ],
)
def test_example_runs_and_shows_failover(script: str, expected: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout
