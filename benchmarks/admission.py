"""Benchmark rows for issue 22: token-rate admission, its CPU cost, a budget shared by processes.

1. overload: a pool of 4 keys, each with ``rate_limit_tpm`` and ``rate_limit_rpm``, against
   the simulator enforcing those limits (a process of its own), offered twice what the
   limits can let through in the window (the full buckets plus the window's refill), in
   requests of 50-150 input tokens arriving at random (seeded). Admission off (today's
   behaviour: the client learns of a limit from a 429) and on, one after the other, each
   against a fresh simulator. Printed: the share of the requests sent that got a 429,
   goodput (tokens the simulator served within the window, as a share of what the limits
   allowed), p50/p99 queue wait of the requests served (their time outside any attempt:
   waiting for room or for a cooling key), the callers' outcomes, and how many of the
   failed requests a later arrival overtook (sent while they still waited: 0 when first
   come is first served).
2. CPU per ``complete()`` with admission on and limits set (never reached) vs a plain
   client without them, in-memory sender (no network), in short chunks alternating.
3. 8 processes sharing one ``RedisStore`` and a $1 budget, each with 8 requests in flight
   until the budget refuses: total spend vs the budget, the overrun in units of one
   request's worst case (its estimated input plus ``max_tokens``, priced).

``make bench`` runs :func:`admission_rows` (wired in by benchmarks/run.py); on its own::

    .venv/bin/python benchmarks/admission.py

The window is real time: ``ADMISSION_SECONDS`` (default 60) per mode. The client's rate
windows and the simulator's buckets both refill per real minute, so the window is not
shortened by scaling time (a bucket holds a minute's worth; a faster clock on one side
only would make the two disagree). Needs the ``sim`` extra, and ``redis-server`` for row 3.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import json
import os
import random
import statistics
import sys
import textwrap
import time
import uuid
from asyncio.subprocess import Process
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
SECONDS = float(os.environ.get("ADMISSION_SECONDS", "60"))
KEYS = 4
TPM = int(os.environ.get("ADMISSION_TPM", "12000"))
RPM = int(os.environ.get("ADMISSION_RPM", "300"))
"""Per key. Tokens bind (a minute's requests of ~108 tokens is ~111 < 300): the pools hold
rpm as a sliding 60-s window, stricter than the provider's bucket in the first minute."""
OVERLOAD = 2.0
DEADLINE = float(os.environ.get("ADMISSION_DEADLINE", "10"))
LATENCY = 0.05
"""The simulator's service time per request."""
REPLY = "Simulated answer: all systems nominal, nothing to report today."
MAX_TOKENS = 16
SEED = 22
CPU_CHUNKS = int(os.environ.get("ADMISSION_CPU_CHUNKS", "20"))
CPU_CHUNK = 300
BUDGET_WORKERS = 8
BUDGET_CONCURRENCY = 8
BUDGET_USD = 1.0
BUDGET_MODEL = "gpt-4o"
BUDGET_REPLY_WORDS = 400
BUDGET_PROMPT = "Summarise the incident report. " * 32

SIMULATOR = textwrap.dedent(
    """
    import asyncio, json, sys
    from failover.testing import Behavior, Simulator

    async def main():
        limits, reply, latency = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
        limits = {key: tuple(pair) for key, pair in limits.items()}
        async with Simulator(default=Behavior(reply=reply, latency=latency), limits=limits) as sim:
            print(sim.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


def wired() -> bool:
    """Whether the client takes ``admission=`` (the coordinator's wiring is in)."""
    from failover import ResilientClient

    return "admission" in inspect.signature(ResilientClient).parameters


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile of ``values`` (nearest rank); 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- 1. overload ------------------------------------------------------------------------------


def workload(seconds: float) -> tuple[list[tuple[float, str]], dict[str, float]]:
    """The arrivals (time, prompt) offering OVERLOAD x what the limits allow in ``seconds``."""
    rng = random.Random(SEED)
    output = len(REPLY.split())
    sizes = [rng.randrange(200, 600) for _ in range(1000)]
    mean_tokens = statistics.fmean(max(1, size // 4) + output for size in sizes)
    minutes = 1.0 + seconds / 60.0  # the full buckets, then the window's refill
    allowed_tokens = KEYS * TPM * minutes
    allowed_requests = min(allowed_tokens / mean_tokens, KEYS * RPM * minutes)
    count = round(OVERLOAD * allowed_requests)
    times = sorted(rng.uniform(0.0, seconds) for _ in range(count))
    arrivals = [(at, "x" * rng.randrange(200, 600)) for at in times]
    return arrivals, {
        "allowed_tokens": allowed_tokens,
        "allowed_requests": allowed_requests,
        "mean_tokens": mean_tokens,
        "offered": count,
    }


async def _simulator(
    limits: dict[str, tuple[int, int]], latency: float = LATENCY
) -> tuple[Process, str]:
    """The simulator in a process of its own (so its work is not the client's), and its URL."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", SIMULATOR, json.dumps(limits), REPLY, str(latency)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    port = int(await process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


async def _usage(http: httpx.AsyncClient, root: str) -> dict[str, int]:
    keys = (await http.get(f"{root}/_sim/usage")).json()["keys"].values()
    return {name: sum(row[name] for row in keys) for name in ("requests", "tokens", "rate_limited")}


async def overload(admission: bool, seconds: float = SECONDS) -> dict[str, Any]:
    """One run of the overload: admission ``on`` or off (today's behaviour)."""
    from failover import AuthProfile, FailoverError, ResilientClient

    keys = [f"sk-bench-admission-{index:04d}" for index in range(KEYS)]
    process, root = await _simulator({key: (TPM, RPM) for key in keys})
    arrivals, plan = workload(seconds)
    profiles = [
        AuthProfile(
            f"k{index}",
            "openai",
            key,
            base_url=f"{root}/openai/v1",
            rate_limit_tpm=TPM,
            rate_limit_rpm=RPM,
        )
        for index, key in enumerate(keys)
    ]
    options: dict[str, Any] = {"deadline": DEADLINE}
    if wired():
        options["admission"] = admission
    waits: list[float] = []
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    failed: list[tuple[float, float]] = []  # (arrived, gave up)
    served: list[tuple[float, float]] = []  # (arrived, its successful attempt began)
    try:
        async with (
            ResilientClient(["openai/gpt-4o-mini"], profiles, **options) as client,
            httpx.AsyncClient() as http,
        ):

            async def one(prompt: str) -> None:
                start = time.perf_counter()
                try:
                    result = await client.complete(
                        [{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
                    )
                except FailoverError as error:
                    outcomes[type(error).__name__] += 1
                    failed.append((start, time.perf_counter()))
                    return
                end = time.perf_counter()
                took = end - start
                outcomes["served"] += 1
                latencies.append(took)
                waits.append(max(0.0, took - sum(a.elapsed for a in result.attempts)))
                served.append((start, end - result.attempts[-1].elapsed))

            loop = asyncio.get_running_loop()
            began = loop.time()
            tasks = []
            for at, prompt in arrivals:
                delay = began + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(prompt)))
            await asyncio.sleep(max(0.0, began + seconds - loop.time()))
            in_window = await _usage(http, root)
            await asyncio.gather(*tasks)
            total = await _usage(http, root)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await process.wait()
    sent = total["requests"] + total["rate_limited"]
    return {
        "offered": plan["offered"],
        "sent": sent,
        "rate_limited": total["rate_limited"],
        "share_429": total["rate_limited"] / sent if sent else 0.0,
        "goodput_tokens": in_window["tokens"] / plan["allowed_tokens"],
        "goodput_requests": in_window["requests"] / plan["allowed_requests"],
        "queue_wait_p50_ms": percentile(waits, 0.50) * 1e3,
        "queue_wait_p99_ms": percentile(waits, 0.99) * 1e3,
        "latency_p50_ms": percentile(latencies, 0.50) * 1e3,
        "latency_p99_ms": percentile(latencies, 0.99) * 1e3,
        "outcomes": dict(outcomes),
        "overtaken": overtaken(failed, served),
        "seconds": seconds,
    }


def overtaken(failed: list[tuple[float, float]], served: list[tuple[float, float]]) -> int:
    """Failed requests that a later arrival overtook: it was sent while they still waited.

    First come, first served means none (under one priority): a request that arrived
    earlier and could still be served is served first.
    """
    served = sorted(served)
    soonest_after: list[float] = []  # the earliest send among served[i:]
    soonest = float("inf")
    for _, sent in reversed(served):
        soonest = min(soonest, sent)
        soonest_after.append(soonest)
    soonest_after.reverse()
    arrivals = [arrived for arrived, _ in served]
    count = 0
    for arrived, gave_up in failed:
        later = bisect.bisect_right(arrivals, arrived)
        if later < len(served) and soonest_after[later] < gave_up:
            count += 1
    return count


# -- 2. CPU per request ------------------------------------------------------------------------


async def admission_cpu(chunks: int = CPU_CHUNKS, *, root: str | None = None) -> dict[str, Any]:
    """CPU µs per ``complete()``: admission with limits set vs a plain client, alternating;
    over an in-memory sender, or (``root``: the simulator's URL) httpx over loopback."""
    from work_count import InMemorySender  # benchmarks/, the script's own directory

    from failover import AuthProfile, ResilientClient

    def client(limited: bool) -> ResilientClient:
        limits = {"rate_limit_tpm": 10**9, "rate_limit_rpm": 10**9} if limited else {}
        base_url = f"{root}/openai/v1" if root else "http://127.0.0.1:9/v1"
        key = "sk-bench-admission-0000" if root else "sk-bench-key-0001"
        profile = AuthProfile("k0", "openai", key, base_url=base_url, **limits)
        options: dict[str, Any] = {"admission": limited} if wired() else {}
        if root is None:
            options["sender"] = InMemorySender(True)
        return ResilientClient(["openai/gpt-4o-mini"], [profile], **options)

    made = {"plain": client(False), "admission, limits set": client(True)}
    messages = [{"role": "user", "content": "ping"}]
    samples: dict[str, list[float]] = {name: [] for name in made}
    for c in made.values():
        for _ in range(CPU_CHUNK):  # caches and first-use paths settle
            await c.complete(messages)
    for number in range(chunks):
        for name in list(made) if number % 2 == 0 else list(reversed(made)):
            c = made[name]
            start = time.process_time()
            for _ in range(CPU_CHUNK):
                await c.complete(messages)
            samples[name].append((time.process_time() - start) / CPU_CHUNK * 1e6)
    for c in made.values():
        await c.aclose()
    plain, limited = samples["plain"], samples["admission, limits set"]
    ratios = [mine / base for mine, base in zip(limited, plain, strict=True)]
    return {
        "plain_us": statistics.median(plain),
        "admission_us": statistics.median(limited),
        "overhead": statistics.median(ratios) - 1.0,
        "chunks": chunks,
    }


# -- 3. one budget, 8 processes ----------------------------------------------------------------


def worst_case_usd() -> float:
    """One budget request's worst case: estimated input (4 chars a token, +1) and max_tokens."""
    from failover.catalog import default_catalog

    entry = default_catalog.get("openai", BUDGET_MODEL)
    assert entry is not None
    assert entry.cost_input is not None
    assert entry.cost_output is not None
    tokens_in = len(BUDGET_PROMPT) // 4 + 1
    return (tokens_in * entry.cost_input + BUDGET_REPLY_WORDS * entry.cost_output) / 1e6


async def _budget_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One worker process: its own manager and client over the shared RedisStore."""
    from failover import AuthProfile, FailoverError, FailoverManager, ResilientClient
    from failover.budgets import Budget
    from failover.errors import BudgetExceededError
    from failover.store import RedisStore

    store = RedisStore(spec["redis"], prefix=spec["prefix"])
    profile = AuthProfile("k0", "openai", spec["key"], base_url=spec["base"])
    budget = Budget(usd=BUDGET_USD, per="day")
    manager = FailoverManager(profiles=[profile], store=store, budgets=[budget])
    spent = 0.0
    served = refused = 0
    errors: Counter[str] = Counter()
    async with (
        manager,
        ResilientClient([f"openai/{BUDGET_MODEL}"], manager, deadline=30.0) as client,
    ):
        await store.settle(5.0)
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        messages = [{"role": "user", "content": BUDGET_PROMPT}]
        done = False

        async def loop() -> None:
            nonlocal spent, served, refused, done
            while not done:
                try:
                    result = await client.complete(messages, max_tokens=BUDGET_REPLY_WORDS)
                except BudgetExceededError:
                    refused += 1
                    done = True
                except FailoverError as error:
                    errors[type(error).__name__] += 1
                    if sum(errors.values()) > 50:
                        done = True
                else:
                    served += 1
                    spent += result.cost_usd or 0.0

        await asyncio.gather(*(loop() for _ in range(BUDGET_CONCURRENCY)))
    return {"spent": spent, "served": served, "refused": refused, "errors": dict(errors)}


async def shared_budget(redis_url: str) -> dict[str, Any]:
    """8 processes, one RedisStore, one $1 budget: what they spent together."""
    from failover.testing import Behavior, Simulator

    key = "sk-bench-budget-0001"
    reply = " ".join(["word"] * BUDGET_REPLY_WORDS)
    async with Simulator(default=Behavior(reply=reply)) as sim:
        spec = {
            "redis": redis_url,
            "prefix": f"bench-budget-{uuid.uuid4().hex[:8]}",
            "key": key,
            "base": sim.base_url("openai"),
        }
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__)),
                "--budget-worker",
                json.dumps(spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(BUDGET_WORKERS)
        ]
        for process in processes:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a budget worker failed to start: {line!r}")
        start_at = time.time() + 0.1
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start_at}\n".encode())
            await process.stdin.drain()
        rows = []
        for process in processes:
            out, _ = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"a budget worker exited with {process.returncode}")
            rows.append(json.loads(out.decode().strip().splitlines()[-1]))
    spent = sum(row["spent"] for row in rows)
    worst = worst_case_usd()
    errors: Counter[str] = Counter()
    for row in rows:
        errors.update(row["errors"])
    return {
        "budget_usd": BUDGET_USD,
        "spent_usd": spent,
        "served": sum(row["served"] for row in rows),
        "worst_case_usd": worst,
        "overrun_in_worst_cases": max(0.0, spent - BUDGET_USD) / worst,
        "errors": dict(errors),
    }


# -- all rows ----------------------------------------------------------------------------------


async def admission_rows(redis_url: str | None = None) -> dict[str, Any]:
    """Every row of this benchmark (starts a throwaway ``redis-server`` for row 3)."""
    import shutil

    rows: dict[str, Any] = {"wired": wired()}
    rows["overload"] = {"off": await overload(False)}
    if rows["wired"]:
        rows["overload"]["on"] = await overload(True)
    rows["cpu"] = await admission_cpu()
    process, root = await _simulator({}, latency=0.0)
    try:
        rows["cpu_http"] = await admission_cpu(CPU_CHUNKS // 2, root=root)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await process.wait()
    if not rows["wired"]:
        rows["budget"] = {"skipped": "the client takes no budgets yet"}
    elif redis_url is not None:
        rows["budget"] = await shared_budget(redis_url)
    elif shutil.which("redis-server") is None:
        rows["budget"] = {"skipped": "no redis-server on PATH (.ci/ensure-redis-server)"}
    else:
        from failover.demo_workers import temporary_redis

        async with temporary_redis() as url:
            rows["budget"] = await shared_budget(url)
    return rows


def print_rows(rows: dict[str, Any]) -> None:
    """Print the rows the way benchmarks/run.py prints its table."""
    first = next(iter(rows["overload"].values()))
    print(
        f"\n10. admission: {KEYS} keys x {TPM:,} tpm / {RPM} rpm, {OVERLOAD:g}x overload for "
        f"{first['seconds']:g} s ({first['offered']} requests; deadline {DEADLINE:g} s)"
        "\n    admission   sent   429s   429 share   goodput tokens (requests)"
        "   queue wait p50 / p99 ms   served  failed (overtaken)"
    )
    for name, row in rows["overload"].items():
        failed = sum(n for outcome, n in row["outcomes"].items() if outcome != "served")
        print(
            f"    {name:9} {row['sent']:6} {row['rate_limited']:6} {row['share_429']:10.2%}"
            f" {row['goodput_tokens']:15.1%} ({row['goodput_requests']:.1%})"
            f" {row['queue_wait_p50_ms']:14.0f} / {row['queue_wait_p99_ms']:.0f}"
            f" {row['outcomes'].get('served', 0):9} {failed:7} ({row['overtaken']})"
        )
    if not rows["wired"]:
        print("    on: not measured, the client takes no admission= yet")
    cpu = rows["cpu"]
    print(
        f"    CPU per complete(), in-memory sender: plain {cpu['plain_us']:.0f} µs, admission "
        f"with limits set {cpu['admission_us']:.0f} µs: {cpu['overhead']:+.1%} "
        f"(median of {cpu['chunks']} alternating chunk pairs; target < +10 %)"
    )
    if "cpu_http" in rows:
        cpu = rows["cpu_http"]
        print(
            f"    CPU per complete(), httpx over loopback to the simulator: plain "
            f"{cpu['plain_us']:.0f} µs, admission with limits set {cpu['admission_us']:.0f} µs: "
            f"{cpu['overhead']:+.1%} (median of {cpu['chunks']} alternating chunk pairs)"
        )
    budget = rows["budget"]
    if "skipped" in budget:
        print(f"    shared $1 budget: skipped, {budget['skipped']}")
    else:
        print(
            f"    {BUDGET_WORKERS} processes x {BUDGET_CONCURRENCY} in flight, one RedisStore, "
            f"${budget['budget_usd']:g} budget: spent ${budget['spent_usd']:.4f} in "
            f"{budget['served']} requests; overrun {budget['overrun_in_worst_cases']:.2f} x one "
            f"request's worst case (${budget['worst_case_usd']:.5f}; target <= 1)"
        )


def main() -> None:
    """Run every row; ``--budget-worker SPEC`` is one worker process of row 3."""
    if len(sys.argv) == 3 and sys.argv[1] == "--budget-worker":
        print(json.dumps(asyncio.run(_budget_worker(json.loads(sys.argv[2])))), flush=True)
        return
    rows = asyncio.run(admission_rows())
    print_rows(rows)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
