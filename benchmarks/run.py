"""``make bench``: what failover costs, measured on loopback. Prints a table, writes JSON.

1. happy-path overhead vs a bare httpx (and aiohttp) POST: sequential median/p99 µs, and
   requests/s at concurrency 64 from a cold pool (a new client: its first requests) and from
   a warm one, each client side by side with its bare library in the same round (a bare
   caller encodes its messages on each call, as the client does); the "least client": a
   bare aiohttp call plus only what any failover client must do per request (take a key
   and record its success, translate the request, parse the reply), the floor under the
   client's ratio; then the warm clients again, as CPU µs per request in short alternating
   chunks (ratios between chunks a second apart, steadier than rounds minutes apart);
2. streaming: time to first chunk and total, vs bare httpx;
3. failover cost: first key 429 -> second key, vs a direct success; the next request,
   which must skip the cooling key without calling it; and a primary model overloaded
   (503) with a healthy fallback model, vs a direct call to the fallback;
4. manager scale: get_next_profile + mark_failure with 10, 1,000 and 10,000 profiles;
5. ``import failover`` time;
6. RSS before and after 50,000 requests;
7. the shared store (benchmarks/store_bench.py; skipped without a ``redis-server``);
8. routing: the cost of one pick per strategy (order a group of two deployments, then take
   a key) at 10 and 10,000 profiles;
9. hedging: p50/p99 with a deployment whose replies take 2 s one time in ten, with
   ``hedge_after`` and without;
10. admission (benchmarks/admission.py): 4 rate-limited keys at 2x overload against the
   simulator enforcing their limits, admission off and on (429 share, goodput, queue wait);
   the CPU admission adds to ``complete()``; 8 processes sharing a $1 budget through Redis;
11. session affinity (benchmarks/affinity.py): 200 ten-turn conversations over 3 keys and 2
   deployments on the simulator's per-key prompt cache, one key failing half-way: the
   cached share of the input with affinity (a session per conversation, or derived from
   its prefix) against the ideal and without affinity, and the dollars saved.

The upstream is benchmarks/upstream.py, a minimal raw-asyncio server in its own process,
so the server is not what is measured (the simulator is measured too, for comparison).
"""

from __future__ import annotations

import asyncio
import functools
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
from admission import admission_rows
from admission import print_rows as print_admission_rows
from affinity import affinity_rows
from affinity import print_rows as print_affinity_rows
from load import drive  # benchmarks/, the script's own directory
from store_bench import print_rows, store_rows

from failover import AuthProfile, FailoverManager, ResilientClient

HERE = Path(__file__).parent
MESSAGES = [{"role": "user", "content": "ping"}]


def request_body() -> bytes:
    """What a bare caller sends: its messages encoded on each call, as the client does."""
    return json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()


SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "500"))
# requests per burst at concurrency 64 (cold, then warm), per round; httpx is ~10x slower
BURST_HTTPX = int(os.environ.get("BENCH_BURST_HTTPX", "250"))
BURST_AIOHTTP = int(os.environ.get("BENCH_BURST_AIOHTTP", "1500"))
MEMORY_REQUESTS = int(os.environ.get("BENCH_MEMORY", "20000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
WIDTH = 64
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


async def burst(call: Callable[[], Awaitable[Any]], total: int, width: int = WIDTH) -> float:
    """Requests/s of ``total`` calls made by ``width`` concurrent workers."""
    start = time.perf_counter()
    await drive(call, total, width)
    return total / (time.perf_counter() - start)


Call = Callable[[], Awaitable[Any]]
Contender = Callable[[], Awaitable[tuple[Call, Call]]]  # makes a client: (call, close)


async def interleaved(
    groups: list[dict[str, tuple[Contender, int]]],
) -> dict[str, dict[str, Any]]:
    """Measure groups of contenders in alternating rounds; report each figure's median round.

    Each round, each contender of a group gets a new client (its own, cold, pool): the
    group's cold bursts at concurrency 64 run one after the other (``rps_cold``: a new
    client's first requests), then its warm bursts in the reverse order (``rps_warm``), then
    sequential calls; the next round reverses both orders. A client and its bare library
    share a group, so a drift of this VM's speed (2x over minutes) that is linear over a
    round hits both alike, and the ``rounds`` kept per contender let a ratio be taken
    within each round.
    """
    rounds: dict[str, list[dict[str, float]]] = {name: [] for group in groups for name in group}
    for number in range(ROUNDS):
        for group in groups:
            names = list(group) if number % 2 == 0 else list(reversed(group))
            made = {name: await group[name][0]() for name in names}
            rows: dict[str, dict[str, float]] = {name: {} for name in names}
            for name in names:
                rows[name]["rps_cold"] = await burst(made[name][0], group[name][1])
            for name in reversed(names):
                rows[name]["rps_warm"] = await burst(made[name][0], group[name][1])
            for name in names:
                rows[name].update(await sequential(made[name][0], SEQUENTIAL // ROUNDS))
                await made[name][1]()
                rounds[name].append(rows[name])
    return {
        name: {
            **{key: statistics.median(row[key] for row in rows) for key in rows[0]},
            "rounds": rows,
        }
        for name, rows in rounds.items()
    }


async def cpu_per_request(call: Call, total: int, width: int = WIDTH) -> float:
    """This process's CPU µs per request over ``total`` calls at concurrency ``width``."""
    start = time.process_time()
    await drive(call, total, width)
    return (time.process_time() - start) / total * 1e6


WARM_CHUNKS = int(os.environ.get("BENCH_WARM_CHUNKS", "24"))


async def warm_cpu(group: dict[str, tuple[Contender, int]]) -> dict[str, Any]:
    """CPU per request of warm clients, in many short alternating chunks.

    The rounds of :func:`interleaved` are minutes apart and their per-round ratios spread
    widely on this VM; here each contender keeps one warm client, and chunks of a few hundred
    requests alternate (order reversed each time), so a ratio is taken between chunks run
    within a second of each other. The process is CPU-bound at 64 concurrent requests
    against the upstream, so CPU per request is what bounds throughput.
    """
    made = {name: await factory() for name, (factory, _) in group.items()}
    samples: dict[str, list[float]] = {name: [] for name in made}
    for name, (call, _) in made.items():
        await cpu_per_request(call, group[name][1] // 3)  # warm: connections, caches
    for number in range(WARM_CHUNKS):
        names = list(made) if number % 2 == 0 else list(reversed(made))
        for name in names:
            samples[name].append(await cpu_per_request(made[name][0], group[name][1] // 4))
    for _, close in made.values():
        await close()
    bare = next(iter(made))
    return {
        name: {
            "cpu_us": statistics.median(got),
            "bare_over_this": statistics.median(
                b / mine for b, mine in zip(samples[bare], got, strict=True)
            ),
        }
        for name, got in samples.items()
    }


def ratio(rows: dict[str, dict[str, Any]], ours: str, bare: str, key: str) -> float:
    """The median over rounds of ours/bare, each round's pair measured minutes apart at most."""
    pairs = zip(rows[ours]["rounds"], rows[bare]["rounds"], strict=True)
    return float(statistics.median(mine[key] / theirs[key] for mine, theirs in pairs))


def client_for(base: str, keys: list[str], **kwargs: Any) -> ResilientClient:
    profiles = [AuthProfile(f"k{i}", "openai", key, base_url=base) for i, key in enumerate(keys)]
    return ResilientClient(["openai/gpt-4o-mini"], profiles, **kwargs)


async def happy_path(base: str) -> None:
    import aiohttp

    from failover.aiohttp_sender import AiohttpSender

    url = f"{base}/chat/completions"
    headers = {"authorization": "Bearer sk-bench-key-0001", "content-type": "application/json"}
    key = ["sk-bench-key-0001"]

    async def bare_httpx() -> Any:
        http = httpx.AsyncClient()

        async def call() -> Any:
            return (await http.post(url, content=request_body(), headers=headers)).json()

        return call, http.aclose

    async def bare_aiohttp() -> Any:
        session = aiohttp.ClientSession()

        async def call() -> Any:
            async with session.post(url, data=request_body(), headers=headers) as reply:
                return json.loads(await reply.read())

        return call, session.close

    async def least_client_aiohttp() -> Any:
        """What any failover client does on top of the bare call, and nothing more: take a
        key and report its success, translate the request, parse the reply into a result;
        sent on a session configured as AiohttpSender's (no cookie jar, parsed URL)."""
        import yarl

        from failover.chat_input import chat_request
        from failover.providers import get_adapter

        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        manager = FailoverManager(profiles=[AuthProfile("k0", "openai", key[0], base_url=base)])
        adapter = get_adapter("openai")
        parsed = yarl.URL(url)

        async def call() -> Any:
            request = chat_request(MESSAGES, None, None, {}, stream=False)
            profile = manager.get_next_profile("openai", model="gpt-4o-mini")
            assert profile is not None
            built = adapter.build_request(
                request,
                model="gpt-4o-mini",
                api_key=profile.api_key.get_secret_value(),
                base_url=base,
            )
            async with session.post(parsed, data=built.body, headers=built.headers) as reply:
                result = adapter.parse_response(await reply.read())
            manager.mark_success(profile.name, model="gpt-4o-mini")
            return result

        return call, session.close

    async def ours_httpx() -> Any:
        client = client_for(base, key)
        return lambda: client.complete(MESSAGES), client.aclose

    async def ours_aiohttp() -> Any:
        sender = AiohttpSender()
        client = client_for(base, key, sender=sender)

        async def close() -> None:
            await client.aclose()
            await sender.aclose()

        return lambda: client.complete(MESSAGES), close

    async def bare_httpx2() -> Any:
        import httpx2

        http = httpx2.AsyncClient()

        async def call() -> Any:
            return (await http.post(url, content=request_body(), headers=headers)).json()

        return call, http.aclose

    async def ours_httpx2() -> Any:
        import httpx2

        from failover.http import HttpxSender

        http = httpx2.AsyncClient(timeout=None)
        client = client_for(base, key, sender=HttpxSender(http))

        async def close() -> None:
            await client.aclose()
            await http.aclose()

        return lambda: client.complete(MESSAGES), close

    async def ours_httpx_aiohttp() -> Any:
        http = _httpx_aiohttp_client()
        client = client_for(base, key, http_client=http)

        async def close() -> None:
            await client.aclose()
            await http.aclose()

        return lambda: client.complete(MESSAGES), close

    results["happy_path"] = await interleaved(
        [
            {
                "bare httpx": (bare_httpx, BURST_HTTPX),
                "failover (httpx)": (ours_httpx, BURST_HTTPX),
            },
            {
                "bare aiohttp": (bare_aiohttp, BURST_AIOHTTP),
                "failover (AiohttpSender)": (ours_aiohttp, BURST_AIOHTTP),
                "least client (aiohttp)": (least_client_aiohttp, BURST_AIOHTTP),
            },
            {"failover (httpx-aiohttp)": (ours_httpx_aiohttp, BURST_AIOHTTP // 2)},
            {
                "bare httpx2": (bare_httpx2, BURST_HTTPX),
                "failover (httpx2 in HttpxSender)": (ours_httpx2, BURST_HTTPX),
            },
        ]
    )
    results["warm_cpu_c64"] = {
        "httpx": await warm_cpu(
            {
                "bare httpx": (bare_httpx, BURST_HTTPX),
                "failover (httpx)": (ours_httpx, BURST_HTTPX),
            }
        ),
        "aiohttp": await warm_cpu(
            {
                "bare aiohttp": (bare_aiohttp, BURST_AIOHTTP),
                "failover (AiohttpSender)": (ours_aiohttp, BURST_AIOHTTP),
                "least client (aiohttp)": (least_client_aiohttp, BURST_AIOHTTP),
            }
        ),
    }
    happy = results["happy_path"]
    results["throughput_ratios_c64"] = {
        f"{ours} / {bare}": {
            kind: ratio(happy, ours, bare, f"rps_{kind}") for kind in ("cold", "warm")
        }
        for ours, bare in (
            ("failover (httpx)", "bare httpx"),
            ("failover (AiohttpSender)", "bare aiohttp"),
            ("least client (aiohttp)", "bare aiohttp"),
            ("failover (httpx2 in HttpxSender)", "bare httpx2"),
        )
    }


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
    sleeps: list[float] = []

    async def counted_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    # primary model overloaded (503 on every call), fallback model on another provider healthy
    overloaded_manager = FailoverManager(
        profiles=[
            AuthProfile("primary", "openai", "sk-overloaded-0001", base_url=base),
            AuthProfile("fallback", "groq", "sk-bench-key-0003", base_url=base),
        ]
    )
    overloaded = ResilientClient(
        ["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"],
        overloaded_manager,
        sleep=counted_sleep,
    )
    direct_fallback = ResilientClient(
        ["groq/llama-3.1-8b-instant"],
        [AuthProfile("g", "groq", "sk-bench-key-0003", base_url=base)],
    )
    async with httpx.AsyncClient() as http:

        async def calls_to(key: str) -> int:
            reply = await http.get(f"{base.rsplit('/', 1)[0]}/count?key={key}")
            return int(reply.text)

        await direct.complete(MESSAGES)
        await direct_fallback.complete(MESSAGES)
        first, following, plain, via_fallback, fallback_plain = [], [], [], [], []
        limited_before = await calls_to(keys[0])
        overloaded_before = await calls_to("sk-overloaded-0001")
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
            overloaded_manager.reset_all()  # the primary's breaker must not skip it: pay the 503
            start = time.perf_counter()
            answer = await overloaded.complete(MESSAGES)
            via_fallback.append(time.perf_counter() - start)
            assert answer.model == "groq/llama-3.1-8b-instant", answer.attempts
            start = time.perf_counter()
            await direct_fallback.complete(MESSAGES)
            fallback_plain.append(time.perf_counter() - start)
        limited = await calls_to(keys[0]) - limited_before
        primary_calls = await calls_to("sk-overloaded-0001") - overloaded_before
    results["failover_cost"] = {
        "direct_success_us": statistics.median(plain) * 1e6,
        "first_key_429_then_second_us": statistics.median(first) * 1e6,
        "next_request_us": statistics.median(following) * 1e6,
        "cooling_key_calls_per_pair": limited / 300,
        "direct_call_to_fallback_us": statistics.median(fallback_plain) * 1e6,
        "primary_503_then_fallback_us": statistics.median(via_fallback) * 1e6,
        "primary_calls_per_request": primary_calls / 300,
        "backoff_sleeps": len(sleeps),
    }
    for each in (client, direct, overloaded, direct_fallback):
        await each.aclose()


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
        "complete": (await sequential(lambda: client.complete(MESSAGES), 10_000))["median_us"],
        "stream_20_chunks": (await sequential(stream, 2_000))["median_us"],
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
    """RSS around many requests: 20,000 on the aiohttp sender, a tenth of that on httpx."""
    from failover.aiohttp_sender import AiohttpSender

    fast_sender = AiohttpSender()
    for name, sender, count in (
        ("AiohttpSender", fast_sender, MEMORY_REQUESTS),
        ("httpx", None, MEMORY_REQUESTS // 10),
    ):
        keys = ["sk-bench-key-0001", "sk-bench-key-0002"]
        client = client_for(base, keys, sender=sender) if sender else client_for(base, keys)
        for _ in range(500):
            await client.complete(MESSAGES)
        gc.collect()
        before = rss_mib()
        await drive(functools.partial(client.complete, MESSAGES), count, 32)
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
        row = await sequential(lambda: client.complete(MESSAGES), 300)
        await burst(lambda: client.complete(MESSAGES), 500)
        row["rps_c64"] = await burst(lambda: client.complete(MESSAGES), 1000)
        results["simulator_upstream (same process)"] = row
        await client.aclose()


PICKS = int(os.environ.get("BENCH_PICKS", "10000"))
GROUP = [["openai/gpt-4o-mini", "azure/gpt-4o-mini"]]


def routing_picks() -> None:
    """Per strategy, one pick: order a group of two deployments, then take a key of the first.

    The order is the planner's (``Planner.order``). The profiles are split between the two
    deployments (OpenAI and Azure). ``weighted`` reads each deployment's weight, the sum
    over its profiles, recounted at most once a second (``Engine._weight_of``): its row
    includes the recounts that fall in the loop, and the recount itself is timed on its own.
    """
    from failover.routing import STRATEGIES

    for size in (10, 10_000):
        profiles = [
            AuthProfile(f"o{i}", "openai", f"sk-pick-{i:06d}")
            if i % 2 == 0
            else AuthProfile(
                f"a{i}", "azure", f"sk-pick-{i:06d}", base_url="https://x.openai.azure.com/openai"
            )
            for i in range(size)
        ]
        manager = FailoverManager(profiles=profiles)
        for name in STRATEGIES:
            client = ResilientClient(GROUP, manager, strategy=name)
            engine = client._engine
            steps = [tuple(client.chain.steps[0])]
            state = engine.new_request()
            for model in steps[0]:  # a known latency for each, for the latency strategy
                engine.latency.record(model.key, None, 0.01)

            def pick(engine: Any = engine, steps: Any = steps, state: Any = state) -> None:
                model = engine.planner.order(steps, state.estimated_usage)[0][1]
                found = engine.manager.get_next_profile(model.provider, model=model.id)
                assert found is not None

            for _ in range(200):
                pick()
            start = time.perf_counter()
            for _ in range(PICKS):
                engine.planner.order(steps, state.estimated_usage)
            order = (time.perf_counter() - start) / PICKS
            start = time.perf_counter()
            for _ in range(PICKS):
                pick()
            total = (time.perf_counter() - start) / PICKS
            row = {"order_us": order * 1e6, "pick_us": total * 1e6}
            if name == "weighted":
                recounts = []
                for _ in range(20):
                    engine._weights.clear()
                    start = time.perf_counter()
                    engine._weight_of(steps[0][0])
                    recounts.append(time.perf_counter() - start)
                row["recount_us"] = statistics.median(recounts) * 1e6
            results.setdefault("routing_pick", {}).setdefault(name, {})[f"{size}"] = row


HEDGE_REQUESTS = int(os.environ.get("BENCH_HEDGE_REQUESTS", "200"))
HEDGE_RATE = 200.0  # requests started per second (open loop)
HEDGE_AFTER = 0.1


async def hedging(base: str) -> None:
    """p50/p99 with a deployment that answers in 2 s one time in ten, hedged and not.

    Two endpoints of one model: the preferred one (priority 0, a ``slow`` key: the
    upstream holds every tenth of its replies for 2 s) and another (priority 1, always
    fast). Each contender has its own keys, so it meets exactly one slow reply in ten. It
    starts ``HEDGE_REQUESTS`` requests at ``HEDGE_RATE`` a second whatever their replies
    (open loop), in two halves run in alternating order, one contender at a time. A last
    row sends a burst instead: 10 in flight, each started when one ends, which is faster
    than ``hedge_after``, so several slow replies wait for a hedge at once.
    """
    from upstream import SLOW_SECONDS

    root = base.rsplit("/", 1)[0]

    def make(tag: str, **kwargs: Any) -> ResilientClient:
        profiles = [
            AuthProfile("slow", "openai", f"sk-slow-key-{tag}", base_url=f"{root}/slow/v1"),
            AuthProfile("fast", "openai", f"sk-fast-key-{tag}", base_url=base, priority=1),
        ]
        return ResilientClient(["openai/gpt-4o-mini"], profiles, **kwargs)

    after = f"hedge_after={HEDGE_AFTER:g} s"
    burst_row = f"{after}, burst of 10 in flight"
    tags = {
        "without hedging": "0001",
        f"{after} (budget 10%)": "0002",
        f"{after}, budget 20%": "0003",
        burst_row: "0004",
    }
    contenders = {
        name: make(tag, **({} if tag == "0001" else {"hedge_after": HEDGE_AFTER}))
        for name, tag in tags.items()
    }
    contenders[f"{after}, budget 20%"] = make("0003", hedge_after=HEDGE_AFTER, hedge_budget=0.2)
    hedges: dict[str, list[Any]] = {name: [] for name in contenders}
    for name, client in contenders.items():
        client.on_hedge(hedges[name].append)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    served: dict[str, list[str]] = {name: [] for name in contenders}

    async def one(name: str) -> None:
        start = time.perf_counter()
        answer = await contenders[name].complete(MESSAGES)
        samples[name].append(time.perf_counter() - start)
        served[name].append(answer.profile)

    async def paced(name: str, count: int) -> None:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        tasks = []
        for number in range(count):
            await asyncio.sleep(max(0.0, begin + number / HEDGE_RATE - loop.time()))
            tasks.append(asyncio.ensure_future(one(name)))
        await asyncio.gather(*tasks)

    async def burst(name: str, count: int) -> None:
        await drive(functools.partial(one, name), count, 10)

    for client in contenders.values():
        await client.complete(MESSAGES)  # warm; the upstream's tenth-request count starts at 1
    paced_names = [name for name in contenders if name != burst_row]
    for half in range(2):
        for name in paced_names if half == 0 else reversed(paced_names):
            await paced(name, HEDGE_REQUESTS // 2)
    await burst(burst_row, HEDGE_REQUESTS // 2)
    async with httpx.AsyncClient() as http:
        for name, times in samples.items():
            slow_key = f"sk-slow-key-{tags[name]}"
            calls = int((await http.get(f"{root}/count?key={slow_key}")).text)
            times.sort()
            results.setdefault("hedging", {})[name] = {
                "requests": len(times),
                "slow_replies": calls // 10,
                "p50_ms": statistics.median(times) * 1e3,
                "p99_ms": times[int(0.99 * len(times))] * 1e3,
                "max_ms": times[-1] * 1e3,
                "served_by_fast": served[name].count("fast"),
                "hedges": len(hedges[name]),
            }
    results["hedging_slow_seconds"] = SLOW_SECONDS
    for client in contenders.values():
        await client.aclose()


async def store(base: str) -> None:
    """The shared-store rows (benchmarks/store_bench.py), when a redis-server is installed."""
    import shutil

    if shutil.which("redis-server") is None:
        results["store"] = {"skipped": "no redis-server on PATH (.ci/ensure-redis-server)"}
        return
    results["store"] = await store_rows(base)


def print_table() -> None:
    overhead = results["client_overhead_us"]
    print(
        f"\n0. the client's own work (in-memory sender, no network): "
        f"complete() {overhead['complete']:.0f} µs, stream() of 20 chunks "
        f"{overhead['stream_20_chunks']:.0f} µs"
    )
    happy = results["happy_path"]
    print(
        "\n1. happy path (loopback, one key)      median µs   p99 µs"
        "   req/s @64 cold   req/s @64 warm"
    )
    for name, row in happy.items():
        print(
            f"   {name:32} {row['median_us']:9.0f} {row['p99_us']:8.0f}"
            f" {row['rps_cold']:16.0f} {row['rps_warm']:16.0f}"
        )
    print("   throughput at 64 concurrent, client / its bare library (median of per-round ratios):")
    for pair, row in results["throughput_ratios_c64"].items():
        print(f"     {pair:40} cold {row['cold']:.2f}x   warm {row['warm']:.2f}x")
    print(
        "   warm clients, CPU µs per request at 64 concurrent, short chunks alternating "
        f"({WARM_CHUNKS} each):"
    )
    for rows in results["warm_cpu_c64"].values():
        for name, row in rows.items():
            print(
                f"     {name:32} {row['cpu_us']:8.0f} µs   bare / this {row['bare_over_this']:.2f}x"
            )
    for ours, bare in (
        ("failover (httpx)", "bare httpx"),
        ("failover (AiohttpSender)", "bare aiohttp"),
    ):
        delta = happy[ours]["median_us"] - happy[bare]["median_us"]
        print(f"   sequential median, {ours} vs {bare}: {delta:+.0f} µs")
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
    print(
        f"   direct call to the fallback model          {cost['direct_call_to_fallback_us']:9.0f}"
    )
    print(
        f"   primary overloaded (503), fallback healthy {cost['primary_503_then_fallback_us']:9.0f}"
        f"   ({cost['primary_calls_per_request']:.2f} calls to the primary per request, "
        f"{cost['backoff_sleeps']} backoff sleeps)"
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
    if "skipped" in results["store"]:
        print(f"\n7. shared store: skipped, {results['store']['skipped']}")
    else:
        print_rows(results["store"])
    print(
        "\n8. routing, one pick: order a group of 2 deployments, then get_next_profile"
        "\n   strategy        order µs @10 profiles  @10,000    order+get µs @10  @10,000"
    )
    for name, sizes in results["routing_pick"].items():
        small, large = sizes["10"], sizes["10000"]
        print(
            f"   {name:14} {small['order_us']:18.2f} {large['order_us']:9.2f}"
            f" {small['pick_us']:20.2f} {large['pick_us']:8.2f}"
        )
    weighted = results["routing_pick"]["weighted"]
    print(
        f"   (weighted's rows include its recounts; a recount of one deployment's weight, "
        f"at most once a second:\n    {weighted['10']['recount_us']:.1f} µs at 10 profiles, "
        f"{weighted['10000']['recount_us']:.0f} µs at 10,000, paid by the request that "
        f"triggers it)"
    )
    slow = results["hedging_slow_seconds"]
    print(
        f"\n9. hedging: the preferred endpoint answers in {slow:g} s one time in ten, the other"
        f" always fast;\n   {HEDGE_RATE:g} requests/s started   requests (slow)   p50 ms   p99 ms"
        f"   max ms   hedges sent (won)"
    )
    for name, row in results["hedging"].items():
        print(
            f"   {name:40} {row['requests']:8} ({row['slow_replies']:3}) {row['p50_ms']:8.1f}"
            f" {row['p99_ms']:8.1f} {row['max_ms']:8.1f} {row['hedges']:11}"
            f" ({row['served_by_fast']})"
        )
    print_admission_rows(results["admission"])
    print_affinity_rows(results["affinity"])


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
    await store(base)
    routing_picks()
    await hedging(base)
    results["admission"] = await admission_rows()
    results["affinity"] = await affinity_rows()


def main() -> None:
    from upstream import running  # benchmarks/, the script's own directory

    with running() as base:
        asyncio.run(measure(base))
    print_table()
    out = HERE / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out} (Python {sys.version.split()[0]}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
