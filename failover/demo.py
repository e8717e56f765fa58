"""``failover demo``: a few hundred requests, a few dozen at a time, through failures, live.

Starts the simulator, scripts a key with a small budget, a dead key, two healthy keys to
rotate to, an outage of the first provider, an overlapping one of the second and a little
chaos (429s among it: a key that gets one rotates to the next), then drives a
realistic client through it while a rich live view shows progress and failover events. Ends
with a summary that accounts for every request. Needs the ``sim`` extra (starlette, uvicorn,
rich).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

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
from failover.demo_gateway import run_gateway_panel
from failover.events import CooldownEvent, FailoverEvent, RecoveredEvent, RetryEvent
from failover.testing import Behavior, Simulator

__all__ = ["run_demo"]

CHAIN = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash-lite"]
KEYS = {
    "openai-main": ("openai", "sk-demo-openai-main-0000000001"),
    "openai-spare": ("openai", "sk-demo-openai-spare-000000002"),
    "openai-backup": ("openai", "sk-demo-openai-backup-00000006"),
    "openai-revoked": ("openai", "sk-demo-openai-revoked-0000003"),
    "anthropic": ("anthropic", "sk-ant-demo-anthropic-00000004"),
    "gemini": ("gemini", "AIzaSy-demo-gemini-000000000005"),
}


@dataclass
class Tally:
    """What happened, counted as it happens."""

    done: int = 0
    latencies: list[float] = field(default_factory=list)
    served_by: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
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
                f"[cyan]held[/] {event.profile} {event.duration:.1f}s (budget spent)",
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


def _view(progress: Progress, tally: Tally, total: int) -> Group:
    counters = Table.grid(padding=(0, 2))
    counters.add_row(
        "served",
        ", ".join(f"{m.split('/')[0]}={n}" for m, n in sorted(tally.served_by.items())) or "-",
    )
    counters.add_row(
        "rotations / fallbacks / cooldowns",
        f"{tally.rotations} / {tally.fallbacks} / {tally.cooldowns}",
    )
    counters.add_row("failed", str(sum(tally.failures.values())))
    lines = [
        stamp + text + (f" [dim]x{count}[/dim]" if count > 1 else "")
        for stamp, text, count in tally.log
    ]
    events = "\n".join(lines) or "[dim]waiting for the first failure...[/dim]"
    return Group(progress, counters, Panel(events, title="failover events", height=14))


def _summary(tally: Tally, total: int, concurrency: int, elapsed: float, console: Console) -> None:
    table = Table(title="failover demo: summary", show_header=False)
    ok = sum(tally.served_by.values())
    failed = sum(tally.failures.values())
    latencies = sorted(tally.latencies)
    p50 = statistics.median(latencies) if latencies else 0.0
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    table.add_row(
        "requests",
        f"{total}, {concurrency} at a time ({tally.streamed} streamed) in {elapsed:.1f}s",
    )
    table.add_row("succeeded", str(ok))
    table.add_row("failed", f"{failed}" + (f" ({dict(tally.failures)})" if failed else ""))
    table.add_row("served by", ", ".join(f"{m}: {n}" for m, n in tally.served_by.most_common()))
    table.add_row(
        "key rotations", f"{tally.rotations} ({tally.rate_limit_rotations} right after a 429)"
    )
    table.add_row("model fallbacks after a failure", str(tally.fallbacks))
    table.add_row("models skipped (every key resting)", str(tally.skips))
    table.add_row("cooldowns", str(tally.cooldowns))
    table.add_row("keys held before a 429", str(tally.held))
    table.add_row("retries after a backoff", str(tally.retries))
    table.add_row("recoveries", str(tally.recoveries))
    table.add_row("latency p50 / p95", f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms")
    table.add_row("cost", f"${tally.cost:.6f}")
    accounted = ok + failed == total
    table.add_row("accounted for", "[green]every request[/]" if accounted else "[red]NO[/]")
    console.print(table)
    if not accounted:
        raise SystemExit("demo: some requests were not accounted for")


async def run_demo(
    total: int = 300, concurrency: int = 32, seconds: float = 12.0, metrics_port: int | None = None
) -> Tally:
    """Run the demo and return its tally (``metrics_port``: serve Prometheus metrics there).

    Raises:
        ConfigError: ``total`` or ``concurrency`` is not a positive whole number, or
            ``seconds`` is not a positive finite number.
    """
    for name, value in (("requests", total), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
    console = Console()
    metrics = None
    if metrics_port is not None:
        from failover.telemetry import serve_prometheus

        metrics = serve_prometheus(metrics_port)
        console.print(f"Prometheus metrics at {metrics.url}")
    rng = random.Random(42)
    accepted = {
        "openai": [KEYS["openai-main"][1], KEYS["openai-spare"][1], KEYS["openai-backup"][1]],
        "anthropic": [KEYS["anthropic"][1]],
        "gemini": [KEYS["gemini"][1]],
    }
    default = Behavior(latency=0.02, tokens_per_second=500)
    async with Simulator(keys=accepted, default=default) as sim:
        # openai-main allows 6 requests per 1.5 s; under load some requests still get a 429
        sim.script(
            Behavior("rate_limit", after=6, window=1.5, latency=0.02, retry_after=1.5),
            key=KEYS["openai-main"][1],
        )
        sim.outage("openai", start=seconds * 0.3, end=seconds * 0.6)
        sim.outage("anthropic", start=seconds * 0.45, end=seconds * 0.55)
        # 429s without budget headers come as a surprise: the key cools and the next one serves
        sim.chaos(
            {"rate_limit": 0.03, "overloaded": 0.04, "server_error": 0.02, "truncate": 0.01},
            seed=7,
        )
        profiles = [
            AuthProfile(name, provider, key, base_url=sim.base_url(provider))
            for name, (provider, key) in KEYS.items()
        ]
        config = FailoverConfig(
            retry_delay=0.05,
            max_retry_delay=2.0,
            jitter=0.05,
            cooldown_on_rate_limit=1.0,
            cooldown_on_error=1.5,
            max_cooldown=4.0,
            breaker_window=3.0,
            breaker_min_requests=4,
        )
        manager = FailoverManager(config, profiles=profiles)
        tally = Tally()
        started = time.monotonic()
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
            CHAIN,
            manager,
            timeout=5.0,
            deadline=15.0,
            wait_for_recovery=True,
            telemetry=metrics.telemetry if metrics else None,
        ) as client:
            _wire_hooks(client, tally, started)
            messages = [{"role": "user", "content": "Summarise the incident report."}]

            async def one(index: int) -> None:
                await asyncio.sleep(index * seconds / total)
                async with gate:
                    began = time.monotonic()
                    try:
                        if rng.random() < 0.3:
                            tally.streamed += 1
                            async with client.stream(messages) as stream:
                                async for _ in stream:
                                    pass
                            served = stream.model or "?"
                        else:
                            result = await client.complete(messages)
                            served, tally.cost = result.model, tally.cost + (result.cost_usd or 0)
                        tally.served_by[served] += 1
                        tally.latencies.append(time.monotonic() - began)
                    except FailoverError as exc:  # AllAttemptsFailed, StreamInterrupted, ...
                        tally.failures[type(exc).__name__] += 1
                    finally:
                        tally.done += 1
                        progress.update(task_id, completed=tally.done)

            with Live(_view(progress, tally, total), console=console, refresh_per_second=8) as live:
                tasks = [asyncio.create_task(one(i)) for i in range(total)]
                while not all(task.done() for task in tasks):
                    live.update(_view(progress, tally, total))
                    await asyncio.sleep(0.125)
                live.update(_view(progress, tally, total))
                await asyncio.gather(*tasks)
        _summary(tally, total, concurrency, time.monotonic() - started, console)
        status: dict[str, Any] = client.status()
        console.print(
            "profiles:",
            ", ".join(f"{p['name']}={p['status']} ({p['key']})" for p in status["profiles"]),
        )
        gateway_keys = {
            provider: KEYS[name][1]
            for provider, name in (
                ("openai", "openai-backup"),
                ("anthropic", "anthropic"),
                ("gemini", "gemini"),
            )
        }
        await run_gateway_panel(sim, gateway_keys, console)
        return tally
