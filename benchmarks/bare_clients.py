"""Issue 25's targets, as ratios of the client to the bare HTTP clients, interleaved in one run.

    .venv/bin/python benchmarks/bare_clients.py [--runs N] [--quick] [--json PATH]

(3 runs take ~2-4 minutes on a shared 2-core VM; ``--quick``, ~1/6 of the requests, ~30 s.)

One loopback upstream (benchmarks/upstream.py, its own process) serves every contender. A run
measures every target once; ``--runs N`` (default 3) repeats the whole run, prints each run's
ratios, then per target the median over runs, the spread (lowest-highest) and PASS/MISS. Each
run makes its clients afresh and warms each before measuring. Within a run the contenders
alternate, call by call or in short chunks, the order reversed each turn, and a ratio is taken
within the run (or within a round of chunks), so a drift of this VM's speed (up to 2x over
minutes) hits both sides alike. The client is ``ResilientClient(["openai/gpt-4o-mini"],
[AuthProfile(...)])``; a bare call encodes its messages, POSTs them and json-decodes the reply.

1. C=64, chunks of requests by 64 concurrent workers, alternating: req/s and this process's
   CPU µs per request (``time.process_time``: every thread, a Rust engine's too), the client on
   ``PyreqwestSender`` (the recommended throughput sender) over a bare
   ``aiohttp.ClientSession()`` with default settings: req/s >= 1.0x, CPU <= 1.0x. The client
   on ``AiohttpSender`` over the same bare session is printed too (informational).
2. The default httpx sender (no sender given) over a bare ``httpx.AsyncClient`` with the same
   limits (``failover.http.DEFAULT_LIMITS``; httpx's other defaults, its 5 s timeout too):
   sequential p50, alternating call by call, <= 1.05x; C=64 req/s in alternating chunks,
   >= 0.95x.
3. A request that rotates past a 429, on the default httpx sender: two keys, the first (a
   ``limited`` key, priority 0: the upstream answers it 429 with ``retry-after: 60``) then a
   healthy one; the manager is reset (``reset_all()``, outside the timing) before each measured
   request, so each one calls the 429 key first (checked: the upstream's count of the 429
   key's calls must equal the number of rotations, and every answer must come from the
   second key). Its p50 over a direct call (a client with the healthy key only), alternating
   call by call: <= 1.10x. A rotation makes two round trips where the direct call makes one,
   so the floor is printed too (informational): the rotation over a direct call plus a bare
   httpx POST answered 429.
4. Opcodes per successful ``complete()``: benchmarks/work_count.py's ``count`` (in-memory
   sender, attempt bounded by asyncio's timer), its first figure, once: <= 1,500.
5. Streams, on the default httpx sender over the bare httpx client (same limits) streaming
   the same 20-chunk SSE reply (reading its lines and json-decoding each ``data:`` payload),
   alternating stream by stream: time to the first chunk, p50, <= 1.05x; CPU per chunk (CPU
   of the whole stream / its 20 chunks, summed over the run's streams) <= 1.05x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import os
import statistics
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from load import drive  # benchmarks/, the script's own directory
from run import MESSAGES, client_for, request_body
from upstream import STREAM, running
from work_count import count

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.aiohttp_sender import AiohttpSender
from failover.http import DEFAULT_LIMITS
from failover.pyreqwest_sender import PyreqwestSender

KEY = "sk-bench-key-0001"
HEALTHY = "sk-bench-key-0002"
LIMITED = "sk-limited-key-0001"
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
STREAM_BODY = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).encode()
CHUNKS = STREAM.count(b'"content": "tok "')  # text chunks per streamed reply (20)
WIDTH = 64

Call = Callable[[], Awaitable[Any]]
Sample = tuple[float, float]  # (seconds measured, CPU seconds) of one call
Timed = Callable[[], Awaitable[Sample]]


class Sizes:
    """Requests per run: a full run ~35-70 s on a shared 2-core VM, ``--quick`` ~6-12 s."""

    def __init__(self, quick: bool) -> None:
        self.fast_chunk = 100 if quick else 600  # per chunk at C=64: aiohttp, pyreqwest
        self.fast_rounds = 4 if quick else 10
        self.httpx_chunk = 64 if quick else 160  # httpx is ~10x slower at C=64
        self.httpx_rounds = 3 if quick else 8
        self.sequential = 120 if quick else 1500  # alternating turns: each contender once
        self.rotations = 60 if quick else 600
        self.streams = 60 if quick else 800


# ------------------------------------------------------------------ interleaving helpers


def timed(call: Call) -> Timed:
    """``call`` timed: its wall time and this process's CPU time."""

    async def run() -> Sample:
        cpu, start = time.process_time(), time.perf_counter()
        await call()
        return time.perf_counter() - start, time.process_time() - cpu

    return run


async def alternate(contenders: dict[str, Timed], turns: int) -> dict[str, list[Sample]]:
    """Every contender once per turn, the order reversed each turn, after 30 warming calls."""
    for measure in contenders.values():
        for _ in range(30):
            await measure()
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    for turn in range(turns):
        names = list(contenders) if turn % 2 == 0 else list(reversed(contenders))
        for name in names:
            samples[name].append(await contenders[name]())
    return samples


async def alternate_bursts(
    contenders: dict[str, Call], size: int, rounds: int
) -> dict[str, list[Sample]]:
    """Per contender and round: (req/s, CPU µs per request) of ``size`` calls at C=64.

    Each contender first makes ``size`` warming calls (connections opened, caches filled);
    then each round runs one chunk per contender, the order reversed each round.
    """
    for call in contenders.values():
        await drive(call, size, WIDTH)
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    for number in range(rounds):
        names = list(contenders) if number % 2 == 0 else list(reversed(contenders))
        for name in names:
            cpu, start = time.process_time(), time.perf_counter()
            await drive(contenders[name], size, WIDTH)
            wall = time.perf_counter() - start
            samples[name].append((size / wall, (time.process_time() - cpu) / size * 1e6))
    return samples


def round_ratio(samples: dict[str, list[Sample]], ours: str, bare: str, index: int) -> float:
    """The median over rounds of ours / bare, each pair measured within a second or so."""
    pairs = zip(samples[ours], samples[bare], strict=True)
    return float(statistics.median(mine[index] / theirs[index] for mine, theirs in pairs))


def p50(samples: list[Sample]) -> float:
    return float(statistics.median(sample[0] for sample in samples))


# ------------------------------------------------------------------ the measurements


async def fast_engines(base: str, sizes: Sizes) -> dict[str, float]:
    """Target 1: the client on PyreqwestSender (and AiohttpSender) over bare aiohttp, C=64."""
    url = f"{base}/chat/completions"
    async with AsyncExitStack() as stack:
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)

        async def bare() -> Any:
            async with session.post(url, data=request_body(), headers=HEADERS) as reply:
                return json.loads(await reply.read())

        contenders: dict[str, Call] = {"bare aiohttp": bare}
        for name, sender in (
            ("PyreqwestSender", PyreqwestSender()),
            ("AiohttpSender", AiohttpSender()),
        ):
            stack.push_async_callback(sender.aclose)
            client = client_for(base, [KEY], sender=sender)
            stack.push_async_callback(client.aclose)
            contenders[name] = functools.partial(client.complete, MESSAGES)
        got = await alternate_bursts(contenders, sizes.fast_chunk, sizes.fast_rounds)
    out: dict[str, float] = {}
    for name, tag in (("PyreqwestSender", "reqwest"), ("AiohttpSender", "aiohttp")):
        out[f"rps_{tag}"] = round_ratio(got, name, "bare aiohttp", 0)
        out[f"cpu_{tag}"] = round_ratio(got, name, "bare aiohttp", 1)
    for name, rows in got.items():
        out[f"{name} req/s"] = statistics.median(row[0] for row in rows)
        out[f"{name} CPU µs"] = statistics.median(row[1] for row in rows)
    return out


async def default_httpx(base: str, sizes: Sizes) -> dict[str, float]:
    """Target 2: the client on its default httpx sender over bare httpx, same limits."""
    url = f"{base}/chat/completions"
    async with AsyncExitStack() as stack:
        http = httpx.AsyncClient(limits=DEFAULT_LIMITS)
        stack.push_async_callback(http.aclose)
        client = client_for(base, [KEY])
        stack.push_async_callback(client.aclose)

        async def bare() -> Any:
            return (await http.post(url, content=request_body(), headers=HEADERS)).json()

        contenders: dict[str, Call] = {
            "bare httpx": bare,
            "httpx (default)": lambda: client.complete(MESSAGES),
        }
        seq = await alternate(
            {name: timed(call) for name, call in contenders.items()}, sizes.sequential
        )
        got = await alternate_bursts(contenders, sizes.httpx_chunk, sizes.httpx_rounds)
    return {
        "seq_httpx": p50(seq["httpx (default)"]) / p50(seq["bare httpx"]),
        "rps_httpx": round_ratio(got, "httpx (default)", "bare httpx", 0),
        "bare httpx p50 µs": p50(seq["bare httpx"]) * 1e6,
        "httpx (default) p50 µs": p50(seq["httpx (default)"]) * 1e6,
        "bare httpx req/s": statistics.median(row[0] for row in got["bare httpx"]),
        "httpx (default) req/s": statistics.median(row[0] for row in got["httpx (default)"]),
    }


async def rotation(base: str, sizes: Sizes) -> dict[str, float]:
    """Target 3: first key 429 -> second key, over a direct call to the healthy key."""
    url = f"{base}/chat/completions"
    manager = FailoverManager(
        profiles=[
            AuthProfile(f"k{i}", "openai", key, base_url=base, priority=i)
            for i, key in enumerate((LIMITED, HEALTHY))
        ]
    )
    limited_headers = {**HEADERS, "authorization": f"Bearer {LIMITED}"}
    async with AsyncExitStack() as stack:
        rotating = ResilientClient(["openai/gpt-4o-mini"], manager)
        direct = client_for(base, [HEALTHY])
        http = httpx.AsyncClient(limits=DEFAULT_LIMITS)
        for each in (rotating.aclose, direct.aclose, http.aclose):
            stack.push_async_callback(each)
        served: list[str] = []  # every rotation's serving profile, warming ones too
        bare_429s = [0]

        async def rotate() -> Sample:
            manager.reset_all()  # the 429 key available again: this request calls it first
            cpu, start = time.process_time(), time.perf_counter()
            answer = await rotating.complete(MESSAGES)
            sample = time.perf_counter() - start, time.process_time() - cpu
            served.append(answer.profile)
            return sample

        async def bare_429() -> None:
            reply = await http.post(url, content=request_body(), headers=limited_headers)
            assert reply.status_code == 429, reply.status_code
            bare_429s[0] += 1
            reply.json()

        async def calls_to_limited() -> int:
            reply = await http.get(f"{base.rsplit('/', 1)[0]}/count?key={LIMITED}")
            return int(reply.text)

        before = await calls_to_limited()
        got = await alternate(
            {
                "rotation": rotate,
                "direct": timed(lambda: direct.complete(MESSAGES)),
                "bare 429": timed(bare_429),
            },
            sizes.rotations,
        )
        limited_calls = await calls_to_limited() - before
    if limited_calls != len(served) + bare_429s[0] or set(served) != {"k1"}:
        raise RuntimeError(
            f"not every rotation called the 429 key first: {limited_calls} calls to it for "
            f"{len(served)} rotations and {bare_429s[0]} bare 429s; served by {set(served)}"
        )
    rotate_p50, direct_p50, bare_p50 = (p50(got[name]) for name in got)
    return {
        "rotate_429": rotate_p50 / direct_p50,
        "rotate_429_floor": rotate_p50 / (direct_p50 + bare_p50),
        "rotation p50 µs": rotate_p50 * 1e6,
        "direct p50 µs": direct_p50 * 1e6,
        "bare 429 p50 µs": bare_p50 * 1e6,
    }


async def streams(base: str, sizes: Sizes) -> dict[str, float]:
    """Target 5: client.stream() on the default httpx sender over bare httpx streaming."""
    url = f"{base}/chat/completions"
    async with AsyncExitStack() as stack:
        http = httpx.AsyncClient(limits=DEFAULT_LIMITS)
        stack.push_async_callback(http.aclose)
        client = client_for(base, [KEY])
        stack.push_async_callback(client.aclose)

        async def bare() -> Sample:
            cpu, start = time.process_time(), time.perf_counter()
            first = 0.0
            async with http.stream("POST", url, content=STREAM_BODY, headers=HEADERS) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("data:") and line != "data: [DONE]":
                        json.loads(line[5:])
                        if not first:
                            first = time.perf_counter() - start
            return first, time.process_time() - cpu

        async def ours() -> Sample:
            cpu, start = time.process_time(), time.perf_counter()
            first = 0.0
            async for _ in client.stream(MESSAGES):
                if not first:
                    first = time.perf_counter() - start
            return first, time.process_time() - cpu

        got = await alternate({"bare httpx": bare, "httpx (default)": ours}, sizes.streams)
    cpu = {name: sum(s[1] for s in rows) / len(rows) / CHUNKS for name, rows in got.items()}
    return {
        "ttfc": p50(got["httpx (default)"]) / p50(got["bare httpx"]),
        "stream_cpu": cpu["httpx (default)"] / cpu["bare httpx"],
        "bare httpx first chunk µs": p50(got["bare httpx"]) * 1e6,
        "httpx (default) first chunk µs": p50(got["httpx (default)"]) * 1e6,
        "bare httpx CPU µs/chunk": cpu["bare httpx"] * 1e6,
        "httpx (default) CPU µs/chunk": cpu["httpx (default)"] * 1e6,
    }


def opcodes() -> float:
    """benchmarks/work_count.py's first figure: opcodes per complete(), asyncio's timer."""
    with contextlib.redirect_stdout(io.StringIO()):
        return asyncio.run(count(0, True))


async def one_run(base: str, sizes: Sizes) -> tuple[dict[str, float], dict[str, float]]:
    """Every measurement once: (its figures, seconds per measurement)."""
    row: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for measure in (fast_engines, default_httpx, rotation, streams):
        start = time.perf_counter()
        row.update(await measure(base, sizes))
        seconds[measure.__name__] = time.perf_counter() - start
    return row, seconds


# ------------------------------------------------------------------ the report

# key -> (label, comparison, target); comparison "" marks an informational ratio
TARGETS: dict[str, tuple[str, str, float]] = {
    "rps_reqwest": ("C=64 req/s, PyreqwestSender / bare aiohttp", ">=", 1.0),
    "cpu_reqwest": ("C=64 CPU per request, PyreqwestSender / bare aiohttp", "<=", 1.0),
    "rps_aiohttp": ("C=64 req/s, AiohttpSender / bare aiohttp", "", 0.0),
    "cpu_aiohttp": ("C=64 CPU per request, AiohttpSender / bare aiohttp", "", 0.0),
    "seq_httpx": ("sequential p50, default httpx / bare httpx", "<=", 1.05),
    "rps_httpx": ("C=64 req/s, default httpx / bare httpx", ">=", 0.95),
    "rotate_429": ("429 -> next key p50 / direct call p50", "<=", 1.10),
    "rotate_429_floor": ("429 -> next key p50 / (direct + bare 429) p50", "", 0.0),
    "ttfc": ("stream first chunk p50, default httpx / bare httpx", "<=", 1.05),
    "stream_cpu": ("stream CPU per chunk, default httpx / bare httpx", "<=", 1.05),
}


def verdict(key: str, value: float) -> str:
    _, comparison, target = TARGETS[key]
    if not comparison:
        return "info"
    met = value >= target if comparison == ">=" else value <= target
    return "PASS" if met else "MISS"


def print_run(number: int, row: dict[str, float]) -> None:
    ratios = ", ".join(f"{key} {row[key]:.3f}x" for key in TARGETS)
    figures = ", ".join(f"{key} {value:,.0f}" for key, value in row.items() if key not in TARGETS)
    print(textwrap.fill(f"run {number}: {ratios}", 100, subsequent_indent="  "))
    print(textwrap.fill(f"figures: {figures}", 100, initial_indent="  ", subsequent_indent="  "))


def summarize(rows: list[dict[str, float]], ops: float) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for key, (label, comparison, target) in TARGETS.items():
        values = [row[key] for row in rows]
        median = statistics.median(values)
        summary[key] = {
            "label": label,
            "runs": values,
            "median": median,
            "lowest": min(values),
            "highest": max(values),
            "target": f"{comparison} {target:.2f}x" if comparison else "",
            "verdict": verdict(key, median),
        }
    summary["opcodes"] = {
        "label": "opcodes per successful complete() (work_count)",
        "median": ops,
        "target": "<= 1,500",
        "verdict": "PASS" if ops <= 1500 else "MISS",
    }
    return summary


def print_table(summary: dict[str, dict[str, Any]], runs: int) -> None:
    print(f"\nissue 25's targets, {runs} run(s), each run's ratio, their median and spread\n")
    heads = "".join(f"{f'run {n}':>7}" for n in range(1, runs + 1))
    print(f"  {'ratio':52}{heads} {'median':>7} {'spread':>11} {'target':>9}  verdict")
    for key, row in summary.items():
        if key == "opcodes":
            cells = " " * 7 * runs + f" {row['median']:>7,.0f} {'':>11}"
        else:
            cells = "".join(f"{value:7.3f}" for value in row["runs"])
            cells += f" {row['median']:7.3f} {row['lowest']:5.3f}-{row['highest']:5.3f}"
        print(f"  {row['label']:52}{cells} {row['target']:>9}  {row['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="whole measurements (default 3)")
    parser.add_argument("--quick", action="store_true", help="~1/6 of the requests: a check")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sizes = Sizes(args.quick)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    ops = opcodes()
    print(f"opcodes per complete() (benchmarks/work_count.py): {ops:,.0f}", flush=True)
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    with running() as base:
        for number in range(1, args.runs + 1):
            row, seconds = asyncio.run(one_run(base, sizes))
            rows.append(row)
            print_run(number, row)
            took = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
            print(
                f"  ({took}; {time.perf_counter() - started:.0f} s in all,"
                f" load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    summary = summarize(rows, ops)
    print_table(summary, args.runs)
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
