"""The demo refuses numbers that would hang it or make its accounting meaningless."""

from __future__ import annotations

import pytest

from failover import ConfigError
from failover.demo import run_demo


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"total": -3}, "requests"),
        ({"total": 2.5}, "requests"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": float("nan")}, "seconds"),
    ],
)
async def test_bad_demo_numbers_are_refused_before_anything_starts(
    arguments: dict[str, float], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        await run_demo(**arguments)  # type: ignore[arg-type]


async def test_the_gateway_panel_shows_openai_sdk_calls_answered_by_other_providers() -> None:
    pytest.importorskip("openai")
    from rich.console import Console

    from failover.demo_gateway import run_gateway_panel
    from failover.testing import Simulator

    keys = {"openai": "sk-panel-openai-000001", "anthropic": "sk-ant-panel-0000002"}
    keys["gemini"] = "AIzaSy-panel-gemini-0000003"
    console = Console(record=True, width=200)
    async with Simulator(keys={provider: [key] for provider, key in keys.items()}) as sim:
        crossed = await run_gateway_panel(sim, keys, console)
        assert sim.calls(provider="openai") >= 3  # OpenAI was asked first, every time
    shown = console.export_text()
    assert crossed == 3
    assert "anthropic / claude-haiku-4-5" in shown and "gemini / gemini-2.5-flash-lite" in shown
    assert "get_weather({'city': 'Paris'})" in shown
    assert not any(key in shown for key in keys.values())


async def test_the_cache_pass_reads_near_the_ideal_with_affinity_and_less_without() -> None:
    from failover.demo_cache import cache_passes

    kept, rotated = await cache_passes(conversations=6, turns=4, latency=0.0)
    assert kept.affinity and not rotated.affinity
    for run in (kept, rotated):
        assert run.requests == 24 and run.answered == 24 and run.failed == 0
    assert kept.prompt_tokens == rotated.prompt_tokens  # the same conversations
    # a key failed half-way: the conversations on it moved once, their cache cold once
    assert kept.repinned > 0 and rotated.repinned == 0
    assert kept.ideal_tokens * 0.9 <= kept.cached_tokens <= kept.ideal_tokens
    assert rotated.cached_tokens < kept.cached_tokens
    assert rotated.input_usd > kept.input_usd > 0
