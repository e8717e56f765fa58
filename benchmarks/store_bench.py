"""Benchmark rows for the shared store (issue 11): what RedisStore costs and how fast it is.

1. happy path through the client with ``MemoryStore`` and with ``RedisStore`` (median µs,
   p99 µs, requests/s at concurrency 64), interleaved so drift hits both alike;
2. propagation delay between two processes: one reports a change, the other has it in
   its own view (p50/p99 ms);
3. calls reaching a closed key (429/401) across 4 worker processes, store off and on.

``make bench`` runs :func:`store_rows` (wired in by benchmarks/run.py); on its own::

    .venv/bin/python benchmarks/store_bench.py

needs a ``redis-server`` binary (started on a free port) and the ``sim`` extra.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from load import drive  # benchmarks/, the script's own directory

MESSAGES = [{"role": "user", "content": "ping"}]
PROPAGATION_EVENTS = 500


async def _sequential(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


async def _concurrent(call: Callable[[], Awaitable[Any]], total: int, width: int = 64) -> float:
    start = time.perf_counter()
    await drive(call, total, width)
    return total / (time.perf_counter() - start)


async def happy_path(base: str, redis_url: str, *, rounds: int = 5, n: int = 200) -> dict[str, Any]:
    """The client's happy path with each store, alternating rounds."""
    from failover import AuthProfile, FailoverManager, ResilientClient
    from failover.store import RedisStore

    def client(store: Any) -> tuple[FailoverManager, ResilientClient]:
        profiles = [AuthProfile("k", "openai", "sk-bench-key-0001", base_url=base)]
        manager = FailoverManager(profiles=profiles, store=store)
        return manager, ResilientClient(["openai/gpt-4o-mini"], manager)

    contenders = {
        "MemoryStore": client(None),
        "RedisStore": client(RedisStore(redis_url, prefix=f"bench-{uuid.uuid4().hex[:8]}")),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for manager, _ in contenders.values():
        await manager.start()
    try:
        for _, c in contenders.values():  # warm both pools
            await _concurrent(lambda c=c: c.complete(MESSAGES), 256)  # type: ignore[misc]
        for _ in range(rounds):
            for name, (_, c) in contenders.items():
                call = lambda c=c: c.complete(MESSAGES)  # type: ignore[misc]  # noqa: E731
                times = sorted(await _sequential(call, n))
                samples[name].append(
                    {
                        "median_us": statistics.median(times) * 1e6,
                        "p99_us": times[int(0.99 * len(times))] * 1e6,
                        "rps_c64": await _concurrent(call, 800),
                    }
                )
    finally:
        for manager, c in contenders.values():
            await c.aclose()
            await manager.aclose()
    rows = {
        name: {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        for name, rows in samples.items()
    }
    rows["RedisStore"]["rps_vs_memory"] = (
        rows["RedisStore"]["rps_c64"] / rows["MemoryStore"]["rps_c64"]
    )
    return rows


async def _listen(url: str, prefix: str, events: int) -> None:
    """The second process: take in ``events`` changes, then print their delays."""
    from failover import AuthProfile, FailoverManager
    from failover.store import RedisStore

    store = RedisStore(url, prefix=prefix)
    manager = FailoverManager(
        profiles=[AuthProfile(f"k{i}", "openai", f"sk-bench-prop-{i:08d}") for i in range(4)],
        store=store,
    )
    async with manager:
        await store.settle(5.0)
        print("ready", flush=True)
        for _ in range(6000):  # a minute at most
            if len(store.propagation) >= events:
                break
            await asyncio.sleep(0.01)
        delays = sorted(store.propagation)[:events]
    print(json.dumps(delays), flush=True)


async def propagation(redis_url: str, events: int = PROPAGATION_EVENTS) -> dict[str, float]:
    """Delay from one process's change to the other process having it, p50/p99 in ms."""
    from failover import AuthProfile, FailoverManager
    from failover.store import RedisStore

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    listener = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__)),
        "--listen",
        redis_url,
        prefix,
        str(events),
        stdout=asyncio.subprocess.PIPE,
    )
    assert listener.stdout is not None
    store = RedisStore(redis_url, prefix=prefix)
    manager = FailoverManager(
        profiles=[AuthProfile(f"k{i}", "openai", f"sk-bench-prop-{i:08d}") for i in range(4)],
        store=store,
    )
    async with manager:
        await store.settle(5.0)
        assert (await listener.stdout.readline()).strip() == b"ready"
        for event in range(events):  # each one lengthens a cooldown: each is published
            manager.mark_failure(f"k{event % 4}", "429", kind="rate_limit", retry_after=100 + event)
            await asyncio.sleep(0.005)
        out = await listener.stdout.readline()
    await listener.wait()
    delays = sorted(json.loads(out))
    return {
        "events": float(len(delays)),
        "p50_ms": statistics.median(delays) * 1e3,
        "p99_ms": delays[int(0.99 * (len(delays) - 1))] * 1e3,
        "max_ms": delays[-1] * 1e3,
    }


async def closed_key_calls(redis_url: str, workers: int = 4, requests: int = 50) -> dict[str, int]:
    """Calls the provider rejected (429/401) across ``workers`` processes, store off and on."""
    from failover.demo_workers import run_workers, script
    from failover.testing import Simulator

    row = {}
    for label, url in (("store_off", None), ("store_on", redis_url)):
        async with Simulator() as sim:
            script(sim)
            run = await run_workers(sim, workers=workers, requests=requests, redis_url=url)
        row[label] = sum(run.rejected.values())
        row[f"{label}_failed"] = run.failed
    return row


async def store_rows(base: str, redis_url: str | None = None) -> dict[str, Any]:
    """Every row of this benchmark, against the upstream at ``base`` (an OpenAI base URL).

    Starts a throwaway ``redis-server`` when ``redis_url`` is ``None``.
    """
    from failover.demo_workers import temporary_redis

    if redis_url is None:
        async with temporary_redis() as url:
            return await store_rows(base, url)
    return {
        "happy_path": await happy_path(base, redis_url),
        "propagation": await propagation(redis_url),
        "closed_key_calls_4_workers": await closed_key_calls(redis_url),
    }


def print_rows(rows: dict[str, Any]) -> None:
    """Print the rows the way benchmarks/run.py prints its table."""
    print("\n7. shared store (RedisStore vs MemoryStore)    median µs   p99 µs   req/s @64")
    for name, row in rows["happy_path"].items():
        print(f"   happy path, {name:29} {row['median_us']:9.0f} {row['p99_us']:8.0f} "
              f"{row['rps_c64']:10.0f}")  # fmt: skip
    ratio = rows["happy_path"]["RedisStore"]["rps_vs_memory"]
    print(f"   RedisStore throughput / MemoryStore's: {ratio:.3f} (target >= 0.95)")
    prop = rows["propagation"]
    print(
        f"   propagation between two processes: p50 {prop['p50_ms']:.2f} ms, "
        f"p99 {prop['p99_ms']:.2f} ms, max {prop['max_ms']:.2f} ms "
        f"({prop['events']:.0f} changes; target < 50 ms)"
    )
    calls = rows["closed_key_calls_4_workers"]
    print(
        f"   calls into closed keys, 4 workers x 50 requests: store off {calls['store_off']}, "
        f"store on {calls['store_on']}"
    )


def main() -> None:
    """Run every row against benchmarks/upstream.py and a throwaway redis-server."""
    if len(sys.argv) == 5 and sys.argv[1] == "--listen":
        asyncio.run(_listen(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    from upstream import running  # benchmarks/, the script's own directory

    with running() as base:
        rows = asyncio.run(store_rows(base))
    print_rows(rows)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
