"""``failover demo``: a few hundred requests, a few dozen at a time, through failures, live.

Starts the simulator and scripts a :class:`~failover.demo_scenario.Scenario` into it: a key
with a small rate limit, a dead key, two healthy keys to rotate to, an outage of the first
provider, an overlapping one of the second and a little chaos (429s among it: a key that
gets one rotates to the next). The client has a spend budget on the chain's first (dearest)
model: once it is spent, that model's requests go on to the next, cheaper one. It prints that
scenario, then drives a realistic client through it while a live view shows progress and
failover events (on a terminal; piped, a progress line every quarter instead). Then a short
pass of conversations, with session affinity and without, measures the prompt cache
(:mod:`failover.demo_cache`). It ends with a summary that accounts for every request, each
term in plain words (the budget's spend and the requests it moved among them, the share of
the conversations' input read from a prompt cache with affinity and without), and the
attempt history of every request that failed.
Needs the ``sim`` extra (starlette, uvicorn, rich).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from failover import (
    AuthProfile,
    ConfigError,
    FailoverConfig,
    FailoverError,
    FailoverManager,
    ResilientClient,
)
from failover.attempts import Attempt
from failover.demo_cache import CACHE_KEYS, CACHE_MODEL, CachePass, cache_passes
from failover.demo_gateway import run_gateway_panel
from failover.demo_history import Step, capturing, request_history, retries, steps
from failover.demo_scenario import (
    CHAIN,
    KEYS,
    Scenario,
    accepted_keys,
    budgets,
    describe,
    script,
)
from failover.events import CooldownEvent, FailoverEvent, RecoveredEvent, RetryEvent
from failover.testing import Behavior, Simulator

__all__ = ["FailedRequest", "Tally", "run_demo"]


@dataclass(frozen=True, slots=True)
class FailedRequest:
    """A request the client gave up on, with what it tried.

    Attributes:
        number: The request's number (1 for the first sent).
        streamed: Whether it asked for a stream.
        at: Seconds into the run when it started.
        error: The exception's class name (``AllAttemptsFailed``, ``StreamInterrupted``, ...).
        summary: The exception's first line (no key, no prompt).
        steps: Its attempts, in order.
        took: Seconds from its start to the error.
        retries: How many retries after a backoff it made.
    """

    number: int
    streamed: bool
    at: float
    error: str
    summary: str
    steps: tuple[Step, ...]
    took: float
    retries: int


@dataclass
class Tally:
    """What happened, counted as it happens."""

    done: int = 0
    latencies: list[float] = field(default_factory=list)
    served_by: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failed: list[FailedRequest] = field(default_factory=list)
    rotations: int = 0
    rate_limit_rotations: int = 0
    fallbacks: int = 0
    skips: int = 0
    cooldowns: int = 0
    held: int = 0
    retries: int = 0
    recoveries: int = 0
    cost: float = 0.0
    streamed: int = 0
    over_budget: int = 0
    """Requests the spend budget moved past its model (a refusal among their attempts)."""
    over_budget_from: float | None = None
    """Seconds into the run of the first refusal."""
    budget_rows: list[dict[str, Any]] = field(default_factory=list)
    """The budgets at the end: scope, per, usd, used, remaining, resets_in."""
    cache: tuple[CachePass, CachePass] | None = None
    """The prompt-cache passes after the run: (with session affinity, without)."""
    log: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=12))


def _log(tally: Tally, started: float, text: str) -> None:
    """Add an event line; a repeat of the previous line only bumps its count."""
    stamp = f"[dim]{time.monotonic() - started:5.1f}s[/dim] "
    if tally.log and tally.log[-1][1] == text:
        tally.log[-1] = (stamp, text, tally.log[-1][2] + 1)
    else:
        tally.log.append((stamp, text, 1))


def _wire_hooks(client: ResilientClient, tally: Tally, started: float) -> None:
    @client.on_failover
    def failover(event: FailoverEvent) -> None:
        if event.kind == "key":
            tally.rotations += 1
            tally.rate_limit_rotations += event.reason == "rate_limit"
            text = f"[yellow]key[/] {event.from_profile} -> {event.to_profile} ({event.reason})"
        else:
            if event.reason == "no_profile_available":
                tally.skips += 1  # a quiet skip: every key of that model is resting
                return
            if event.reason == "over_budget":  # not a failure: counted per request, below
                if tally.over_budget_from is None:
                    tally.over_budget_from = time.monotonic() - started
                _log(
                    tally,
                    started,
                    f"[blue]budget[/] {event.from_model} -> {event.to_model} (spend budget spent)",
                )
                return
            tally.fallbacks += 1
            text = f"[magenta]model[/] {event.from_model} -> {event.to_model} ({event.reason})"
        _log(tally, started, text)

    @client.on_cooldown
    def cooldown(event: CooldownEvent) -> None:
        if event.reason == "budget_spent":
            tally.held += 1  # held before it could earn a 429: not a failure
            _log(
                tally,
                started,
                f"[cyan]held[/] {event.profile} {event.duration:.1f}s (its rate limit used up)",
            )
            return
        tally.cooldowns += 1
        wait = "for good" if event.duration == float("inf") else f"{event.duration:.1f}s"
        _log(
            tally,
            started,
            f"[red]cooldown[/] {event.profile} {event.status} {wait} ({event.reason})",
        )

    @client.on_retry
    def retry(event: RetryEvent) -> None:
        tally.retries += 1

    @client.on_recovered
    def recovered(event: RecoveredEvent) -> None:
        tally.recoveries += 1
        _log(tally, started, f"[green]recovered[/] {event.profile}")


def _events_panel(tally: Tally) -> Panel:
    lines = [
        stamp + text + (f" [dim]x{count}[/dim]" if count > 1 else "")
        for stamp, text, count in tally.log
    ]
    events = "\n".join(lines) or "[dim]waiting for the first failure...[/dim]"
    return Panel(events, title="failover events (the latest)", height=14)


def _view(progress: Progress, tally: Tally) -> Group:
    counters = Table.grid(padding=(0, 2))
    counters.add_row(
        "served",
        ", ".join(f"{m.split('/')[0]}={n}" for m, n in sorted(tally.served_by.items())) or "-",
    )
    counters.add_row(
        "rotations / fallbacks / cooldowns",
        f"{tally.rotations} / {tally.fallbacks} / {tally.cooldowns}",
    )
    if tally.over_budget:
        counters.add_row("moved by the spend budget", str(tally.over_budget))
    counters.add_row("failed", str(sum(tally.failures.values())))
    return Group(progress, counters, _events_panel(tally))


def _progress_line(tally: Tally, total: int, elapsed: float) -> str:
    """One plain line of progress, for output that is not a terminal."""
    served = ", ".join(f"{m.split('/')[0]}={n}" for m, n in sorted(tally.served_by.items()))
    return (
        f"{tally.done}/{total} done at {elapsed:.1f}s: served {served or 'none yet'}; "
        f"{sum(tally.failures.values())} failed"
    )


def _scenario(scenario: Scenario, total: int, concurrency: int, seconds: float) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for topic, words in describe(scenario, total=total, concurrency=concurrency, seconds=seconds):
        table.add_row(topic, words)
    return table


def _summary(tally: Tally, total: int, concurrency: int, elapsed: float) -> Table:
    table = Table(title="failover demo: summary", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    table.add_column("count", no_wrap=True)
    table.add_column("what it means")
    ok = sum(tally.served_by.values())
    failed = sum(tally.failures.values())
    latencies = sorted(tally.latencies)
    p50 = statistics.median(latencies) if latencies else 0.0
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    kinds = ", ".join(f"{n} {name}" for name, n in tally.failures.most_common())
    rows = [
        (
            "requests",
            str(total),
            f"{concurrency} at a time, {tally.streamed} streamed, in {elapsed:.1f}s",
        ),
        ("succeeded", str(ok), "answered by a model of the chain"),
        (
            "failed",
            f"{failed}" + (f" ({kinds})" if failed else ""),
            "gave up; why, and each one's attempts, below" if failed else "none gave up",
        ),
        (
            "served by",
            "\n".join(f"{m}: {n}" for m, n in tally.served_by.most_common()) or "-",
            "the model that answered",
        ),
        (
            "key rotations",
            f"{tally.rotations} ({tally.rate_limit_rotations} right after a 429)",
            "a failed call moved at once to another key of the same model",
        ),
        (
            "model fallbacks after a failure",
            str(tally.fallbacks),
            "a failed call moved at once to the next model of the chain",
        ),
        (
            "models skipped (every key resting)",
            str(tally.skips),
            "a model passed over without a call: every key of it was cooling down",
        ),
        (
            "cooldowns",
            str(tally.cooldowns),
            "a key rested after a failure for a while (a revoked key for good)",
        ),
        (
            "keys held before a 429",
            str(tally.held),
            "a key rested because its rate-limit headers said it had no requests left",
        ),
        *_budget_rows(tally),
        (
            "retries after a backoff",
            str(tally.retries),
            "nothing usable was left: the request waited a moment and tried again",
        ),
        ("recoveries", str(tally.recoveries), "a resting key answered again"),
        (
            "latency p50 / p95",
            f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms",
            "of the answered requests, waits included",
        ),
        ("cost", f"${tally.cost:.6f}", "the answers' tokens at list prices (genai-prices)"),
        *_cache_rows(tally),
        (
            "accounted for",
            "[green]every request[/]" if _accounted(tally, total) else "[red]NO[/]",
            "succeeded + failed = requests"
            + (", in the run and in each conversation pass" if tally.cache else ""),
        ),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _accounted(tally: Tally, total: int) -> bool:
    """Whether every request of the run (and of the cache passes) succeeded or failed."""
    run = sum(tally.served_by.values()) + sum(tally.failures.values()) == total
    passes = tally.cache or ()
    return run and all(p.answered + p.failed == p.requests for p in passes)


def _share(tokens: int, run: CachePass) -> str:
    return f"{tokens / run.prompt_tokens:.0%}" if run.prompt_tokens else "-"


def _cache_rows(tally: Tally) -> list[tuple[str, str, str]]:
    """The prompt-cache passes: the cached share of the input with affinity and without."""
    if tally.cache is None:
        return []
    kept, rotated = tally.cache
    conversations = f"{kept.conversations} conversations x {kept.turns} turns"
    saved = rotated.input_usd - kept.input_usd
    return [
        (
            "prompt cache, affinity on",
            f"{kept.share:.0%} of input cached\n(ideal {_share(kept.ideal_tokens, kept)})",
            f"{conversations} on {len(CACHE_KEYS)} keys of {CACHE_MODEL}, each with its "
            f"session= (kept on the key that served it); one key rate-limited half-way: "
            f"{kept.repinned} re-pinned, their cache cold once; {kept.requests} requests, "
            f"{kept.failed} failed",
        ),
        (
            "prompt cache, affinity off",
            f"{rotated.share:.0%} of input cached",
            f"the same conversations, each turn on the key the rotation gave it: a key "
            f"reads only the turns it served itself; {rotated.requests} requests, "
            f"{rotated.failed} failed",
        ),
        (
            "input cost, on / off",
            f"${kept.input_usd:.4f} / ${rotated.input_usd:.4f}",
            f"the conversations' input at list prices, cached reads at the cached price: "
            f"affinity saved ${saved:.4f} ({saved / rotated.input_usd:.0%})"
            if rotated.input_usd
            else "the conversations' input at list prices",
        ),
    ]


def _budget_rows(tally: Tally) -> list[tuple[str, str, str]]:
    """The spend budgets at the end, and the requests they moved to the next model."""
    rows = []
    for budget in tally.budget_rows:
        rows.append(
            (
                "spend budget",
                f"${budget['used']:.4f} of ${budget['usd']:g}",
                f"spent per {budget['per']} on {budget['scope'].partition(':')[2]}"
                + (
                    "; what was left could not hold another request's worst case"
                    if tally.over_budget
                    else ""
                ),
            )
        )
    if tally.budget_rows:
        rows.append(
            (
                "moved by the budget",
                str(tally.over_budget)
                + (
                    f" (from {tally.over_budget_from:.1f}s)"
                    if tally.over_budget_from is not None
                    else ""
                ),
                "its worst case would overrun what was left: not sent to that model, the "
                "request went on down the chain (a refusal, not a failure)",
            )
        )
    return rows


def _refused(attempts: tuple[Attempt, ...] | list[Attempt]) -> bool:
    """Whether a spend budget refused one of these attempts."""
    return any(attempt.outcome == "over_budget" for attempt in attempts)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _why(request: FailedRequest, deadline: float, max_retries: int) -> str:
    """Why the client gave up on ``request``, in plain words (under 100 characters)."""
    if request.error == "StreamInterrupted":
        return "its stream broke after text had reached the caller: no other model may take over"
    if request.error == "BudgetExceededError":
        return (
            "the spend budget refused the first model, and no model after it answered in its place"
        )
    if "deadline" in request.summary:
        return f"its {deadline:g}s deadline passed"
    if request.retries >= max_retries:
        return (
            f"every model failed or was resting, and its {max_retries} retries after a backoff "
            "(max_retries) were spent"
        )
    return "every model failed or was resting, with retries and deadline left"


def _failed_request(request: FailedRequest, deadline: float, max_retries: int) -> Group:
    """A failed request: what it raised, its attempts as a table, then the facts in a line."""
    kind = "streamed request" if request.streamed else "request"
    title = (
        f"[bold]{kind} #{request.number}[/], started at {request.at:.1f}s: "
        f"{request.error}: {request.summary}"
    )
    last = request.steps[-1] if request.steps else None
    facts = (
        f"why: {_why(request, deadline, max_retries)}. "
        f"It stopped {request.took:.1f}s in ({max(0.0, deadline - request.took):.1f}s of its "
        f"{deadline:g}s deadline left), after {len(request.steps)} attempt(s) and "
        f"{request.retries} retr{'y' if request.retries == 1 else 'ies'} after a backoff"
    )
    if last is not None:
        status = "" if last.status is None else f" {last.status}"
        facts += f"; last: {last.model} via {last.profile or '-'}: {last.outcome}{status}"
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("#", "waited", "model", "key (profile)", "outcome", "HTTP", "took"):
        table.add_column(column, no_wrap=column != "outcome")
    for step in request.steps:
        outcome = step.outcome
        if step.retry_after:
            outcome += f" (asked to wait {step.retry_after:g}s)"
        table.add_row(
            str(step.number),
            _seconds(step.waited),
            step.model,
            step.profile or "-",
            outcome,
            "-" if step.status is None else str(step.status),
            _seconds(step.took),
        )
    return Group(title, table, facts)


def _console() -> Console:
    """Stdout; 120 columns wide when it is not a terminal (and ``COLUMNS`` is not set)."""
    sized = sys.stdout.isatty() or "COLUMNS" in os.environ
    return Console(width=None if sized else 120)


def _validate(total: int, concurrency: int, seconds: float) -> None:
    for name, value in (("requests", total), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ConfigError(f"seconds must be a positive number, got {seconds!r}")


async def run_demo(
    total: int = 300,
    concurrency: int = 32,
    seconds: float = 12.0,
    metrics_port: int | None = None,
    *,
    scenario: Scenario | None = None,
    console: Console | None = None,
    gateway: bool = True,
    cache: bool = True,
) -> Tally:
    """Run the demo and return its tally.

    Args:
        total: Requests to send.
        concurrency: At most this many at once.
        seconds: Spread their starts over this many seconds.
        metrics_port: Serve Prometheus metrics on this port while it runs.
        scenario: What to script (default: the demo's own, :class:`Scenario` ``()``).
        console: Where to print (default: stdout; live view only on a terminal).
        gateway: Show the openai SDK panel at the end.
        cache: Measure the prompt cache after the run: conversations with session
            affinity and without (:func:`~failover.demo_cache.cache_passes`).

    Raises:
        ConfigError: ``total`` or ``concurrency`` is not a positive whole number, or
            ``seconds`` is not a positive finite number.
    """
    _validate(total, concurrency, seconds)
    scenario = scenario or Scenario()
    console = console or _console()
    metrics = None
    if metrics_port is not None:
        from failover.telemetry import serve_prometheus

        metrics = serve_prometheus(metrics_port)
        console.print(f"Prometheus metrics at {metrics.url}")
    console.print(
        f"[bold]failover demo[/]: {total} requests through simulated provider failures "
        "(a local simulator on 127.0.0.1; no key or request leaves this machine)"
    )
    console.print(_scenario(scenario, total, concurrency, seconds))
    console.print()
    rng = random.Random(42)
    default = Behavior(latency=0.02, tokens_per_second=500)
    async with Simulator(keys=accepted_keys(scenario), default=default) as sim:
        profiles = [
            AuthProfile(name, provider, key, base_url=sim.base_url(provider))
            for name, (provider, key) in KEYS.items()
        ]
        config = FailoverConfig(
            # 0.25 + 0.5 + 1 + 2 s of backoff outlasts OpenAI's outage (3.6 s), in which
            # the other two models take turns; 3 retries did not always (1 in ~300 failed)
            max_retries=4,
            retry_delay=0.25,
            max_retry_delay=2.0,
            jitter=0.05,
            cooldown_on_rate_limit=1.0,
            cooldown_on_error=1.5,
            max_cooldown=4.0,
            breaker_window=3.0,
            breaker_min_requests=4,
        )
        manager = FailoverManager(config, profiles=profiles, budgets=budgets(scenario))
        tally = Tally()
        gate = asyncio.Semaphore(concurrency)
        progress = Progress(
            TextColumn("requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        task_id = progress.add_task("requests", total=total)
        async with ResilientClient(
            list(CHAIN),
            manager,
            timeout=scenario.timeout,
            deadline=scenario.deadline,
            wait_for_recovery=True,
            telemetry=metrics.telemetry if metrics else None,
        ) as client:
            script(sim, scenario, seconds)  # the outages' times count from here
            started = time.monotonic()
            _wire_hooks(client, tally, started)
            messages = [{"role": "user", "content": "Summarise the incident report."}]
            limit = scenario.max_tokens

            async def one(index: int) -> None:
                await asyncio.sleep(index * seconds / total)
                streamed = rng.random() < scenario.streamed
                async with gate:
                    began, wall = time.monotonic(), time.time()
                    attempts: tuple[Attempt, ...] = ()
                    try:
                        with request_history() as records:
                            if streamed:
                                tally.streamed += 1
                                async with client.stream(messages, max_tokens=limit) as stream:
                                    async for _ in stream:
                                        pass
                                served, cost = stream.model or "?", stream.cost_usd
                                attempts = stream.attempts
                            else:
                                result = await client.complete(messages, max_tokens=limit)
                                served, cost = result.model, result.cost_usd
                                attempts = result.attempts
                        tally.cost += cost or 0
                        tally.served_by[served] += 1
                        tally.latencies.append(time.monotonic() - began)
                    except FailoverError as exc:  # AllAttemptsFailed, StreamInterrupted, ...
                        tally.failures[type(exc).__name__] += 1
                        attempts = getattr(exc, "attempts", ())
                        tally.failed.append(
                            FailedRequest(
                                index + 1,
                                streamed,
                                began - started,
                                type(exc).__name__,
                                str(exc).partition("\n")[0],
                                tuple(steps(attempts, records, wall)),
                                time.monotonic() - began,
                                retries(records),
                            )
                        )
                    finally:
                        tally.over_budget += _refused(attempts)
                        tally.done += 1
                        progress.update(task_id, completed=tally.done)

            with capturing():
                tasks = [asyncio.create_task(one(i)) for i in range(total)]
                await _watch(tasks, tally, progress, console, started)
            tally.budget_rows = (await manager.admission.status(profiles))["budgets"]
        elapsed = time.monotonic() - started
        if cache:
            console.print(
                "prompt cache: the same conversations with session affinity, then without ..."
            )
            tally.cache = await cache_passes()
        console.print()
        console.print(_summary(tally, total, concurrency, elapsed))
        _print_failures(tally, console, scenario.deadline, config.max_retries)
        status: dict[str, Any] = client.status()
        console.print(
            "keys at the end:",
            ", ".join(f"{p['name']}={p['status']}" for p in status["profiles"]),
        )
        if sum(tally.served_by.values()) + len(tally.failed) != total or not _accounted(
            tally, total
        ):
            raise SystemExit("demo: some requests were not accounted for")
        if gateway:
            gateway_keys = {
                provider: KEYS[name][1]
                for provider, name in (
                    ("openai", "openai-backup"),
                    ("anthropic", "anthropic"),
                    ("gemini", "gemini"),
                )
            }
            sim.chaos({})  # the panel shows the outage it scripts, not the dice of the run
            console.print()
            await run_gateway_panel(sim, gateway_keys, console)
        return tally


async def _watch(
    tasks: list[asyncio.Task[None]],
    tally: Tally,
    progress: Progress,
    console: Console,
    started: float,
) -> None:
    """Show the run until every task is done: live on a terminal, else a line a quarter."""
    total = len(tasks)
    if console.is_terminal:
        with Live(_view(progress, tally), console=console, refresh_per_second=8) as live:
            while not all(task.done() for task in tasks):
                live.update(_view(progress, tally))
                await asyncio.sleep(0.125)
            live.update(_view(progress, tally))
    else:
        quarter = 1  # the next quarter of the requests to report
        while quarter <= 4:
            await asyncio.sleep(0.05)
            if tally.done >= quarter * total / 4:
                console.print(_progress_line(tally, total, time.monotonic() - started))
                quarter = tally.done * 4 // total + 1
        console.print(_events_panel(tally))
    await asyncio.gather(*tasks)


def _print_failures(tally: Tally, console: Console, deadline: float, max_retries: int) -> None:
    if not tally.failed:
        console.print("No request failed.")
        return
    console.print()
    reasons = Counter(_why(request, deadline, max_retries) for request in tally.failed)
    console.print(f"[bold]{len(tally.failed)} request(s) failed[/]:")
    for reason, count in reasons.most_common():
        console.print(f"  {count}: {reason}")
    console.print(
        "Each one's attempts, in order (waited: the pause before the attempt, for a backoff "
        "or for a resting key; took: the attempt itself; a key is shown by its profile name, "
        "never itself):"
    )
    for request in sorted(tally.failed, key=lambda r: r.number):
        console.print()
        console.print(_failed_request(request, deadline, max_retries))
