"""``make bench``: what failover costs, measured on loopback. Prints a table, writes JSON.

1. happy-path overhead vs a bare httpx (and aiohttp) POST: sequential median/p99 µs and
   requests/s at concurrency 64;
2. streaming: time to first chunk and total, vs bare httpx;
3. failover cost: first key 429 -> second key, vs a direct success; and the next request,
   which must skip the cooling key without calling it;
4. manager scale: get_next_profile + mark_failure with 10, 1,000 and 10,000 profiles;
5. ``import failover`` time;
6. RSS before and after 50,000 requests.

The upstream is benchmarks/upstream.py, a minimal raw-asyncio server in its own process,
so the server is not what is measured (the simulator is measured too, for comparison).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from failover import AuthProfile, FailoverManager, ResilientClient

HERE = Path(__file__).parent
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]})
MESSAGES = [{"role": "user", "content": "ping"}]
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "1000"))
CONCURRENT_TOTAL = int(os.environ.get("BENCH_CONCURRENT", "4000"))
MEMORY_REQUESTS = int(os.environ.get("BENCH_MEMORY", "50000"))
ROUNDS = 5
results: dict[str, Any] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def sequential(call: Callable[[], Awaitable[Any]], n: int = SEQUENTIAL) -> dict[str, float]:
    for _ in range(20):
        await call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"median_us": statistics.median(times) * 1e6, "p99_us": times[int(0.99 * n)] * 1e6}


async def concurrent(
    call: Callable[[], Awaitable[Any]], total: int = CONCURRENT_TOTAL, width: int = 64
) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(width)))  # warm the pool
    remaining = total
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return total / (time.perf_counter() - start)


async def interleaved(
    contenders: dict[str, Callable[[], Awaitable[Any]]],
) -> dict[str, dict[str, float]]:
    """Measure the contenders in alternating rounds; report each figure's median round.

    This VM's speed drifts by 2x over minutes; alternating short rounds lets the drift
    hit every contender alike instead of whichever happened to run during a slow patch.
    """
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, call in contenders.items():
            row = await sequential(call, SEQUENTIAL // ROUNDS)
            row["rps_c64"] = await concurrent(call, CONCURRENT_TOTAL // ROUNDS)
            rounds[name].append(row)
    return {
        name: {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        for name, rows in rounds.items()
    }


def client_for(base: str, keys: list[str], **kwargs: Any) -> ResilientClient:
    profiles = [AuthProfile(f"k{i}", "openai", key, base_url=base) for i, key in enumerate(keys)]
    return ResilientClient(["openai/gpt-4o-mini"], profiles, **kwargs)


async def happy_path(base: str) -> None:
    url = f"{base}/chat/completions"
    headers = {"authorization": "Bearer sk-bench-key-0001", "content-type": "application/json"}
    import aiohttp

    async with httpx.AsyncClient() as http, aiohttp.ClientSession() as session:

        async def bare_httpx() -> Any:
            return (await http.post(url, content=BODY, headers=headers)).json()

        async def bare_aiohttp() -> Any:
            async with session.post(url, data=BODY, headers=headers) as reply:
                return json.loads(await reply.read())

        contenders: dict[str, Callable[[], Awaitable[Any]]] = {
            "bare httpx": bare_httpx,
            "bare aiohttp": bare_aiohttp,
        }
        from failover.aiohttp_sender import AiohttpSender

        fast = AiohttpSender()
        clients = {
            "failover (httpx)": client_for(base, ["sk-bench-key-0001"]),
            "failover (AiohttpSender)": client_for(base, ["sk-bench-key-0001"], sender=fast),
            "failover (httpx-aiohttp)": client_for(
                base, ["sk-bench-key-0001"], http_client=_httpx_aiohttp_client()
            ),
        }
        for name, client in clients.items():
            contenders[name] = lambda client=client: client.complete(MESSAGES)  # type: ignore[misc]
        results["happy_path"] = await interleaved(contenders)
        for client in clients.values():
            await client.aclose()
        await clients["failover (httpx-aiohttp)"]._sender.client.aclose()  # type: ignore[attr-defined]
        await fast.aclose()


def _httpx_aiohttp_client() -> httpx.AsyncClient:
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=None)


async def streaming(base: str) -> None:
    url = f"{base}/chat/completions"
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    headers = {"authorization": "Bearer sk-bench-key-0001", "content-type": "application/json"}
    from failover.aiohttp_sender import AiohttpSender

    client = client_for(base, ["sk-bench-key-0001"])
    fast_sender = AiohttpSender()
    fast = client_for(base, ["sk-bench-key-0001"], sender=fast_sender)
    async with httpx.AsyncClient() as http:

        async def bare() -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            async with http.stream("POST", url, content=body, headers=headers) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("data:") and not first:
                        first = time.perf_counter() - start
            return first, time.perf_counter() - start

        async def ours(client: ResilientClient) -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            async for _ in client.stream(MESSAGES):
                if not first:
                    first = time.perf_counter() - start
            return first, time.perf_counter() - start

        contenders: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
            "bare httpx": bare,
            "failover (httpx)": lambda: ours(client),
            "failover (AiohttpSender)": lambda: ours(fast),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for _ in range(ROUNDS):  # interleaved, so the VM's drift hits every contender alike
            for name, call in contenders.items():
                samples[name] += [await call() for _ in range(100)]
        for name, got in samples.items():
            results.setdefault("streaming", {})[name] = {
                "first_chunk_us": statistics.median(s[0] for s in got) * 1e6,
                "total_us": statistics.median(s[1] for s in got) * 1e6,
            }
    await client.aclose()
    await fast.aclose()
    await fast_sender.aclose()


async def failover_cost(base: str) -> None:
    keys = ["sk-limited-key-0001", "sk-bench-key-0002"]
    clock = [0.0]
    manager = FailoverManager(
        profiles=[
            AuthProfile(f"k{i}", "openai", key, base_url=base, priority=i)
            for i, key in enumerate(keys)
        ],
        clock=lambda: clock[0],
    )
    client = ResilientClient(["openai/gpt-4o-mini"], manager)
    direct = client_for(base, ["sk-bench-key-0002"])
    async with httpx.AsyncClient() as http:

        async def limited_calls() -> int:
            reply = await http.get(f"{base.rsplit('/', 1)[0]}/count?key={keys[0]}")
            return int(reply.text)

        await direct.complete(MESSAGES)
        first, following, plain = [], [], []
        before = await limited_calls()
        for _ in range(300):
            manager.reset_all()
            start = time.perf_counter()
            await client.complete(MESSAGES)
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            await client.complete(MESSAGES)
            following.append(time.perf_counter() - start)
            start = time.perf_counter()
            await direct.complete(MESSAGES)
            plain.append(time.perf_counter() - start)
        limited = await limited_calls() - before
    results["failover_cost"] = {
        "direct_success_us": statistics.median(plain) * 1e6,
        "first_key_429_then_second_us": statistics.median(first) * 1e6,
        "next_request_us": statistics.median(following) * 1e6,
        "cooling_key_calls_per_pair": limited / 300,
    }
    await client.aclose()
    await direct.aclose()


async def client_overhead() -> None:
    """The client's own work per request: complete() and stream() over an in-memory sender."""
    from contextlib import asynccontextmanager

    reply_body = json.dumps(
        {
            "choices": [{"message": {"content": "pong"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        }
    ).encode()
    stream_body = (
        'data: {"choices": [{"delta": {"content": "tok "}}]}\n\n' * 20
        + 'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    )

    class Reply:
        status_code = 200

        def __init__(self, streamed: bool) -> None:
            kind = "text/event-stream" if streamed else "application/json"
            self.headers = httpx.Headers({"content-type": kind})

        async def aread(self) -> bytes:
            return reply_body

        async def aiter_text(self) -> Any:
            yield stream_body

    class InMemorySender:
        @asynccontextmanager
        async def open(self, request: Any, timeout: float, *, read_timeout: Any = None) -> Any:
            yield Reply(read_timeout is not None)

    profiles = [AuthProfile("k", "openai", "sk-bench-key-0001")]
    client = ResilientClient(["openai/gpt-4o-mini"], profiles, sender=InMemorySender())

    async def stream() -> None:
        async for _ in client.stream(MESSAGES):
            pass

    results["client_overhead_us"] = {
        "complete": (await sequential(lambda: client.complete(MESSAGES), 20_000))["median_us"],
        "stream_20_chunks": (await sequential(stream, 5_000))["median_us"],
    }
    await client.aclose()


def manager_scale() -> None:
    """Steady state with ~90% of keys cooling: each round one key is cooled, one wakes."""
    for size in (10, 1_000, 10_000):
        results.setdefault("manager_scale", {})[f"{size} profiles"] = _scale(size)


def _scale(size: int, rounds: int = 20_000) -> dict[str, float]:
    clock = [0.0]
    manager = FailoverManager(
        profiles=[AuthProfile(f"p{i}", "openai", f"sk-scale-{i:06d}") for i in range(size)],
        clock=lambda: clock[0],
    )
    cooldown = max(1.0, 0.9 * size)  # one round per clock second: ~90% of keys cooling

    def fail_round() -> None:
        clock[0] += 1.0
        profile = manager.get_next_profile("openai")
        assert profile is not None
        manager.mark_failure(profile.name, "429", is_rate_limit=True, retry_after=cooldown)

    for _ in range(2 * size):
        fail_round()
    status = manager.status()
    start = time.perf_counter()
    for _ in range(rounds):
        fail_round()
    pair = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        profile = manager.get_next_profile("openai")
        assert profile is not None
        manager.mark_success(profile.name)
    return {
        "cooling": status.total_profiles - status.available_profiles,
        "get_next+mark_failure_us": pair * 1e6,
        "get_next+mark_success_us": (time.perf_counter() - start) / rounds * 1e6,
    }


def import_time() -> None:
    """Median wall time of a fresh interpreter importing failover, minus a bare one.

    Bytecode may be written (this machine sets PYTHONDONTWRITEBYTECODE, which would
    make every run compile from source, as no installed package does).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(code: str) -> float:
        subprocess.run([sys.executable, "-c", code], check=True, env=env)  # write bytecode
        times = []
        for _ in range(9):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    baseline = run("pass")
    results["import_failover_ms"] = (run("import failover") - baseline) * 1000
    results["import_failover_client_ms"] = (
        run("from failover import ResilientClient") - baseline
    ) * 1000
    results["import_httpx_ms"] = (run("import httpx") - baseline) * 1000


async def memory(base: str) -> None:
    """RSS around many requests: 50,000 on the aiohttp sender, a fifth of that on httpx."""
    from failover.aiohttp_sender import AiohttpSender

    fast_sender = AiohttpSender()
    for name, sender, count in (
        ("AiohttpSender", fast_sender, MEMORY_REQUESTS),
        ("httpx", None, MEMORY_REQUESTS // 5),
    ):
        keys = ["sk-bench-key-0001", "sk-bench-key-0002"]
        client = client_for(base, keys, sender=sender) if sender else client_for(base, keys)
        for _ in range(2000):
            await client.complete(MESSAGES)
        gc.collect()
        before = rss_mib()
        remaining = count

        async def worker(client: ResilientClient = client) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.complete(MESSAGES)

        await asyncio.gather(*(worker() for _ in range(32)))
        gc.collect()
        results.setdefault("memory", {})[name] = {
            "requests": count,
            "rss_before_mib": before,
            "rss_after_mib": rss_mib(),
        }
        await client.aclose()
    await fast_sender.aclose()


async def simulator_speed() -> None:
    from failover.testing import Simulator

    async with Simulator() as sim:
        client = client_for(sim.base_url("openai"), ["sk-bench-key-0001"])
        row = await sequential(lambda: client.complete(MESSAGES), 500)
        row["rps_c64"] = await concurrent(lambda: client.complete(MESSAGES), 2000)
        results["simulator_upstream (same process)"] = row
        await client.aclose()


def print_table() -> None:
    overhead = results["client_overhead_us"]
    print(
        f"\n0. the client's own work (in-memory sender, no network): "
        f"complete() {overhead['complete']:.0f} µs, stream() of 20 chunks "
        f"{overhead['stream_20_chunks']:.0f} µs"
    )
    happy = results["happy_path"]
    base = happy["bare httpx"]
    print("\n1. happy path (loopback, one key)            median µs   p99 µs   req/s @64")
    for name, row in happy.items():
        print(f"   {name:40} {row['median_us']:9.0f} {row['p99_us']:8.0f} {row['rps_c64']:10.0f}")
    ours, fast, aio = (
        happy["failover (httpx)"],
        happy["failover (AiohttpSender)"],
        happy["bare aiohttp"],
    )
    print(
        f"   failover (httpx) vs bare httpx: {ours['median_us'] - base['median_us']:+.0f} µs "
        f"median, throughput {ours['rps_c64'] / base['rps_c64']:.2f}x"
    )
    print(
        f"   failover (AiohttpSender) vs bare aiohttp: {fast['median_us'] - aio['median_us']:+.0f}"
        f" µs median, throughput {fast['rps_c64'] / aio['rps_c64']:.2f}x"
    )
    sim = results["simulator_upstream (same process)"]
    print(
        f"   (upstream = simulator in-process: {sim['median_us']:.0f} µs, "
        f"{sim['rps_c64']:.0f} req/s: the simulator would be the bottleneck)"
    )
    print("\n2. streaming (20 chunks)                      first chunk µs   total µs")
    for name, row in results["streaming"].items():
        print(f"   {name:40} {row['first_chunk_us']:14.0f} {row['total_us']:10.0f}")
    cost = results["failover_cost"]
    print("\n3. failover cost                              median µs")
    print(f"   direct success                             {cost['direct_success_us']:9.0f}")
    print(
        f"   first key 429 -> second key                {cost['first_key_429_then_second_us']:9.0f}"
    )
    print(f"   next request (cooling key skipped)         {cost['next_request_us']:9.0f}")
    print(
        f"   calls to the cooling key per pair          {cost['cooling_key_calls_per_pair']:9.2f}"
    )
    print("\n4. manager scale                   keys cooling   get+fail µs   get+success µs")
    for name, row in results["manager_scale"].items():
        print(
            f"   {name:30} {row['cooling']:12} {row['get_next+mark_failure_us']:12.2f} "
            f"{row['get_next+mark_success_us']:14.2f}"
        )
    print(
        f"\n5. import failover: {results['import_failover_ms']:.0f} ms "
        f"(from failover import ResilientClient: {results['import_failover_client_ms']:.0f} ms, "
        f"of which import httpx alone: {results['import_httpx_ms']:.0f} ms)"
    )
    print("\n6. memory")
    for name, mem in results["memory"].items():
        print(
            f"   {name:16} RSS {mem['rss_before_mib']:.1f} MiB before, "
            f"{mem['rss_after_mib']:.1f} MiB after {mem['requests']:,} more requests"
        )


async def measure(base: str) -> None:
    print("benchmarking on loopback against benchmarks/upstream.py ...", flush=True)
    await client_overhead()
    await happy_path(base)
    await streaming(base)
    await failover_cost(base)
    manager_scale()
    import_time()
    await simulator_speed()
    await memory(base)


def main() -> None:
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "upstream.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert upstream.stdout is not None
        assert upstream.stdout.readline().strip() == "ready"
        asyncio.run(measure(f"http://127.0.0.1:{port}/v1"))
    finally:
        upstream.terminate()
    print_table()
    out = HERE / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out} (Python {sys.version.split()[0]}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
