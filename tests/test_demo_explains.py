"""``failover demo`` says what it scripted, why each failed request failed, and reads well piped."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys

from rich.console import Console

from failover.demo import run_demo
from failover.demo_cache import CACHE_KEYS
from failover.demo_scenario import CHAIN, KEYS, Outage, Scenario

ANSI = re.compile(r"\x1b\[")
EVERYTHING_DOWN = Scenario(
    dead_key="",
    outages=tuple(Outage(p, 0.0, 1000.0) for p in ("openai", "anthropic", "gemini")),
    chaos={},
    deadline=1.0,
    timeout=1.0,
)
"""Every provider overloaded for the whole run; a request may take 1 s: each one fails."""


def words(text: str) -> str:
    """``text`` with every run of whitespace as one space (rich wraps where it likes)."""
    return " ".join(text.split())


def plain_console() -> Console:
    return Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)


async def test_the_scenario_is_printed_before_the_run_from_what_was_scripted() -> None:
    console = plain_console()
    tally = await run_demo(24, 8, 1.0, console=console, gateway=False)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    scenario = words(out[: out.index("done at")])  # everything before the first progress line
    assert "dead key openai-revoked: revoked, the provider answers 401" in scenario
    assert (
        "rate limit openai-main: 6 requests per 1.5 s, then 429 with retry-after 1.5 s" in scenario
    )
    assert "openai overloaded (503) on every call from 0.3 s to 0.6 s" in scenario
    assert "anthropic overloaded (529) on every call from 0.5 s to 0.6 s" in scenario
    assert (
        "chaos at random on any call: 3% rate limited (429), 4% overloaded (503, Anthropic 529), "
        "2% server error (500), 1% reply cut short (seed 7)"
    ) in scenario
    assert "24 requests over 1 s, at most 8 at a time" in scenario
    assert (
        "spend budget $0.012 a day on openai/gpt-4o ($2.5 / $10 per million tokens in / out); "
        "each request reserves its worst case (max_tokens=64) until it is charged its real "
        "cost; once the budget is spent, its requests go on to anthropic/claude-haiku-4-5, "
        "cheaper ($1 / $5 per million tokens in / out)"
    ) in scenario
    assert "models skipped (every key resting)" in out
    assert "a model passed over without a call: every key of it was cooling down" in words(out)
    assert "every request" in out
    assert sum(tally.served_by.values()) + len(tally.failed) == 24
    assert not any(key in out for _, key in KEYS.values())
    # the prompt-cache pass: the same conversations with session affinity and without
    assert tally.cache is not None
    kept, rotated = tally.cache
    summary = words(out[out.index("failover demo: summary") :])
    assert f"prompt cache, affinity on {kept.share:.0%} of input cached" in summary
    assert f"(ideal {kept.ideal_tokens / kept.prompt_tokens:.0%})" in summary
    assert f"prompt cache, affinity off {rotated.share:.0%} of input cached" in summary
    assert f"{kept.repinned} re-pinned" in summary and kept.repinned > 0
    assert kept.share > rotated.share
    assert f"input cost, on / off ${kept.input_usd:.4f} / ${rotated.input_usd:.4f}" in summary
    assert "in the run and in each conversation pass" in summary
    assert not any(key in out for key in CACHE_KEYS.values())


async def test_each_failed_request_is_shown_attempt_by_attempt_without_a_key() -> None:
    engine = logging.getLogger("failover.engine")
    level_before, filters_before = engine.level, list(engine.filters)
    console = plain_console()
    tally = await run_demo(
        3, 3, 0.1, scenario=EVERYTHING_DOWN, console=console, gateway=False, cache=False
    )
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert sorted(r.number for r in tally.failed) == [1, 2, 3]
    assert "3 request(s) failed" in out
    for request in tally.failed:
        assert request.error == "AllAttemptsFailed"
        assert [s.number for s in request.steps] == list(range(1, len(request.steps) + 1))
        models = {step.model for step in request.steps}
        assert models <= set(CHAIN)
        assert CHAIN[0] in models
        assert {step.outcome for step in request.steps} == {"overloaded"}
        assert {step.status for step in request.steps} <= {503, 529}
        assert all(step.profile in KEYS for step in request.steps)  # a name, never a key
        assert all(step.waited is not None and step.waited >= 0 for step in request.steps)
        title = f"#{request.number}, started at"
        assert title in out
    table = out[out.index("3 request(s) failed") :]
    assert "waited" in table and "key (profile)" in table and "outcome" in table
    assert re.search(r"openai/gpt-4o\s+openai-\w+\s+overloaded\s+503", table)
    assert "deadline left), after" in words(table) and "retries after a backoff" in words(table)
    reasons = re.findall(r"^  (\d+): (.+)$", table, flags=re.MULTILINE)  # why, grouped
    assert sum(int(count) for count, _ in reasons) == 3
    assert all(
        "deadline passed" in why or "(max_retries) were spent" in why for _, why in reasons
    ), reasons
    assert words(table).count("why: ") == 3
    assert not any(key in out for _, key in KEYS.values())
    assert engine.level == level_before and engine.filters == filters_before  # put back


async def test_a_quiet_scenario_says_what_it_leaves_out_and_that_nothing_failed() -> None:
    console = plain_console()
    quiet = Scenario(dead_key="", budget_key="", outages=(), chaos={}, spend_model="")
    tally = await run_demo(10, 5, 0.2, scenario=quiet, console=console, gateway=False, cache=False)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert tally.failed == [] and "No request failed." in out
    assert "outage none" in words(out) and "chaos none" in words(out) and "dead key" not in out
    assert "spend budget" not in out and "moved by the budget" not in out
    assert tally.served_by == {CHAIN[0]: 10} and tally.over_budget == 0


async def test_once_the_spend_budget_is_spent_requests_go_on_to_the_cheaper_model() -> None:
    console = plain_console()
    # about 3 of the first model's answers fit in $0.002 beside two worst cases in flight
    spend = Scenario(dead_key="", budget_key="", outages=(), chaos={}, spend_usd=0.002)
    tally = await run_demo(20, 2, 0.5, scenario=spend, console=console, gateway=False, cache=False)
    out = words(console.file.getvalue())  # type: ignore[attr-defined]
    assert tally.failed == [] and sum(tally.served_by.values()) == 20
    assert set(tally.served_by) == {CHAIN[0], CHAIN[1]}  # nothing failed: the budget moved them
    assert tally.over_budget == tally.served_by[CHAIN[1]] > 0
    assert tally.over_budget_from is not None
    [budget] = tally.budget_rows
    assert budget["scope"] == f"model:{CHAIN[0]}" and budget["usd"] == 0.002
    assert 0 < budget["used"] <= 0.002  # spent, never overrun
    assert f"spend budget ${budget['used']:.4f} of $0.002 spent per day on {CHAIN[0]}" in out
    assert f"moved by the budget {tally.over_budget} (from " in out
    assert f"budget {CHAIN[0]} -> {CHAIN[1]} (spend budget spent)" in out  # the event line


def test_piped_output_has_no_escape_codes_and_no_sections_run_together() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")
    }
    done = subprocess.run(
        [sys.executable, "-m", "failover", "demo", "--requests", "30", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert not ANSI.search(out)
    assert out.index("dead key") < out.index("done at") < out.index("failover demo: summary")
    assert "30/30 done at" in out
    for line in out.splitlines():  # a box ends its line: the next section starts on a new one
        assert not re.search(r"[╯┘┛]\s*\S", line), line
    assert "failover demo: summary" in out and "every request" in out
    assert max(len(line) for line in out.splitlines()) <= 120


async def test_on_a_terminal_the_live_view_ends_before_the_summary() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    await run_demo(12, 6, 0.3, console=console, gateway=False, cache=False)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert ANSI.search(out)  # a terminal gets colour and the live view
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "failover events (the latest)" in plain
    assert re.search(r"\n\s*failover demo: summary", plain)
    assert not re.search(r"[╯┘┛] *\S", plain.split("failover demo: summary")[0].splitlines()[-1])


async def test_what_the_scenario_says_is_what_the_simulator_does() -> None:
    import httpx

    from failover.demo_scenario import accepted_keys, describe, script
    from failover.testing import Simulator

    scenario = Scenario(
        dead_key="openai-revoked",
        budget_key="openai-main",
        budget=1,
        window=60.0,
        retry_after=7.0,
        outages=(Outage("anthropic", 0.0, 100.0, "server_error"),),
        chaos={},
        spend_model="gemini/gemini-2.5-flash-lite",
        spend_usd=2.5,
        max_tokens=10,
    )
    said = dict(describe(scenario, total=1, concurrency=1, seconds=1.0))
    assert said["dead key"].startswith("openai-revoked: revoked, the provider answers 401")
    assert said["rate limit"].startswith(
        "openai-main: 1 requests per 60 s, then 429 with retry-after 7 s"
    )
    assert said["outage"] == "anthropic server error (500) on every call from 0.0 s to 100.0 s"
    assert said["spend budget"] == (
        "$2.5 a day on gemini/gemini-2.5-flash-lite ($0.1 / $0.4 per million tokens in / out); "
        "each request reserves its worst case (max_tokens=10) until it is charged its real "
        "cost; once the budget is spent, its requests fail (BudgetExceededError: no model after it)"
    )
    from failover import Budget
    from failover.demo_scenario import budgets

    assert budgets(scenario) == [Budget(2.5, "day", "model:gemini/gemini-2.5-flash-lite")]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with Simulator(keys=accepted_keys(scenario)) as sim, httpx.AsyncClient() as http:
        script(sim, scenario, 1.0)

        async def openai(name: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {KEYS[name][1]}"}
            return await http.post(
                f"{sim.base_url('openai')}/chat/completions", json=body, headers=headers
            )

        assert (await openai("openai-revoked")).status_code == 401
        assert (await openai("openai-main")).status_code == 200
        limited = await openai("openai-main")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        assert (await openai("openai-spare")).status_code == 200
        claude = await http.post(
            f"{sim.base_url('anthropic')}/v1/messages",
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": KEYS["anthropic"][1], "anthropic-version": "2023-06-01"},
        )
        assert claude.status_code == 500


async def test_a_budget_too_small_for_one_request_sends_nothing_to_its_model() -> None:
    others_down = Scenario(
        dead_key="",
        budget_key="",
        outages=tuple(Outage(p, 0.0, 1000.0) for p in ("anthropic", "gemini")),
        chaos={},
        spend_usd=0.0001,  # below one request's worst case (64 tokens out at $10 a million)
        deadline=1.0,
        timeout=1.0,
    )
    console = plain_console()
    tally = await run_demo(
        4, 4, 0.1, scenario=others_down, console=console, gateway=False, cache=False
    )
    out = words(console.file.getvalue())  # type: ignore[attr-defined]
    assert len(tally.failed) == 4 and tally.over_budget == 4
    for request in tally.failed:
        first = request.steps[0]
        assert (first.model, first.profile in KEYS, first.outcome) == (
            CHAIN[0],
            True,
            "over_budget",
        )
        assert first.status is None  # refused before any call
        assert all(  # never sent to the budget's model: every attempt on it was refused
            step.outcome == "over_budget" for step in request.steps if step.model == CHAIN[0]
        )
    assert tally.budget_rows[0]["used"] == 0  # nothing was sent to it, nothing charged
    assert "spend budget $0.0000 of $0.0001 spent per day on openai/gpt-4o" in out
    assert "moved by the budget 4 (from " in out


def test_a_request_the_budget_turned_away_is_explained_as_such() -> None:
    from failover.demo import FailedRequest, _why

    request = FailedRequest(1, False, 0.0, "BudgetExceededError", "no candidate", (), 0.1, 0)
    assert _why(request, 15.0, 3) == (
        "the spend budget refused the first model, and no model after it answered in its place"
    )
