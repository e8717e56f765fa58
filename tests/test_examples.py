"""Every example runs as a user would run it, against the simulator, with no keys."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
FRAMEWORKS = {  # the framework recipes: the package each needs, and its install line
    "agents_sdk_fallback.py": ("agents", "pip install openai-agents 'llm-failover[sim]'"),
    "pydantic_ai_fallback.py": (
        "pydantic_ai",
        "pip install 'pydantic-ai-slim[openai,anthropic]' 'llm-failover[sim]'",
    ),
    "langchain_fallback.py": (
        "langchain_openai",
        "pip install langchain-openai langchain-anthropic 'llm-failover[sim]'",
    ),
}


def _framework(script: str, expected: list[str]) -> object:
    """An example that runs only where its framework is installed."""
    missing = find_spec(FRAMEWORKS[script][0]) is None
    return pytest.param(
        script, expected, marks=pytest.mark.skipif(missing, reason=FRAMEWORKS[script][1])
    )


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", ["failover: first -> second (rate_limit)", "stream:", "call:"]),
        (
            "conversations_and_budgets.py",
            [
                "turn 1: openai/gpt-4o-mini via oa-1, 0 tokens cached",
                "turn 3: openai/gpt-4o-mini via oa-1, 264 tokens cached",
                "model: openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (rejected)",
                "attempts: ['rejected', 'ok']",
                "continue: anthropic/claude-haiku-4-5 -> gemini/gemini-2.5-flash",
                "continued: answered by gemini/gemini-2.5-flash",
                "(over_budget)\nbudget: $0.000",
            ],
        ),
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
        _framework(
            "agents_sdk_fallback.py",
            [
                "Responses API (the SDK's default model):\n"
                "  model failover: openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (overloaded)\n"
                "  reply from anthropic/claude-haiku-4-5\n"
                "  tool get_weather(city='Paris')\n",
                "Chat Completions API (OpenAIChatCompletionsModel):\n"
                "  model failover: openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (overloaded)\n",
                "  reply from anthropic/claude-haiku-4-5\n"
                "  final: Simulated answer from anthropic/claude-haiku-4-5 after 1 tool results",
            ],
        ),
        _framework(
            "pydantic_ai_fallback.py",
            [
                "OpenAIChatModel (OpenAI overloaded):\n"
                "  model failover: openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (overloaded)\n"
                "  reply from anthropic/claude-haiku-4-5\n"
                "  tool get_weather(city='Paris')\n",
                "  final: Simulated answer from anthropic/claude-haiku-4-5 after 1 tool results",
                "  model failover: anthropic/claude-haiku-4-5 -> gemini/gemini-2.5-flash (overloaded)\n"
                "  reply from gemini/gemini-2.5-flash\n",
                "  final: Simulated answer from gemini/gemini-2.5-flash after 1 tool results",
            ],
        ),
        _framework(
            "langchain_fallback.py",
            [
                "ChatOpenAI (OpenAI overloaded):\n"
                "  model failover: openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (overloaded)\n"
                "  reply from anthropic/claude-haiku-4-5\n"
                "  tool get_weather(city='Paris')\n",
                "  final: Simulated answer from anthropic/claude-haiku-4-5 after 1 tool results",
                "  model failover: anthropic/claude-haiku-4-5 -> openai/gpt-4o-mini (overloaded)\n"
                "  reply from openai/gpt-4o-mini\n",
                "  final: Simulated answer from openai/gpt-4o-mini after 1 tool results",
            ],
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


@pytest.mark.parametrize("script", sorted(FRAMEWORKS))
def test_a_framework_example_says_what_to_install_when_its_framework_is_missing(
    script: str,
) -> None:
    package, install = FRAMEWORKS[script]
    path = EXAMPLES / script
    assert install in path.read_text().split('"""')[1].splitlines()[2]  # at the top
    hide = (
        "import runpy, sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] == {package!r}:\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        f"runpy.run_path({str(path)!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and install in done.stderr, done.stderr
