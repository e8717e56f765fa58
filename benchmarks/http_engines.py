"""The async HTTP/1.1 clients that could sit behind the ``Sender`` seam, measured side by side.

Every contender is installed beside failover (none is required: a missing one is skipped with
a note) and talks to the same loopback upstream (benchmarks/upstream.py, its own process).
They are measured in rounds, interleaved (A, B, C, ..., then the reverse order), so a drift
of this VM's speed over the run hits each alike; each figure is the median over rounds, with
its spread (± half the range between the lowest and the highest round). Per round and
contender, on a new client:

- ``C=1``: sequential calls, median µs;
- ``C=16``/``C=64``/``C=256``: requests/s of a burst by that many concurrent workers, on a
  warm pool;
- ``CPU``: this process's CPU µs per request during the C=64 burst (every thread counted: a
  Rust or C engine's own threads are part of its cost); ``loop CPU``: the event loop's
  thread alone (what bounds the throughput of an application's one Python thread);
- ``stream``: a 20-chunk SSE reply, time to its first chunk and to its end, median µs.

A call is what a bare caller does: encode the messages, POST them, read the whole reply and
parse it; ``fo+aiohttp`` and ``fo+reqwest`` are the whole client (``complete()``,
``stream()``) on ``AiohttpSender`` and ``PyreqwestSender``. Then, once per contender, each in
a fresh interpreter (so that no other engine's code or buffers count): ``RSS``, the MiB its
import, a client and 3,000 requests at C=64 add to the process; and ``cancel``, 1,000
requests at C=64 each cancelled at a random moment (asyncio's ``wait_for``, then anyio's
``move_on_after``) on a pool of 8 connections, after which 200 requests at C=16 must all
succeed within 10 s (``ok``) or the pool has lost slots (``STUCK``).

    .venv/bin/python benchmarks/http_engines.py [--rounds N] [--only a,b] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from load import drive  # benchmarks/, the script's own directory
from run import MESSAGES, free_port, request_body, rss_mib

HERE = Path(__file__).parent
HEADERS = {"authorization": "Bearer sk-bench-key-0001", "content-type": "application/json"}
STREAM_BODY = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).encode()
LIMIT = 512  # connections in each contender's pool (above the widest burst)
WIDTHS = (16, 64, 256)


class Made(NamedTuple):
    """A contender's client: one plain call, one streamed call, and its close."""

    call: Callable[[], Awaitable[Any]]
    stream: Callable[[], Awaitable[tuple[float, float]]] | None  # (first chunk s, total s)
    close: Callable[[], Awaitable[None]]


Maker = Callable[[str, int], Awaitable[Made]]  # (url, pool limit) -> a new client


@dataclass(frozen=True)
class Engine:
    """One contender: the module it needs, how to make a client, what the seam would get."""

    name: str
    module: str
    make: Maker
    note: str = ""


def _timed_stream(
    open_stream: Callable[[], Any], chunks: Callable[[Any], Any]
) -> Callable[[], Awaitable[tuple[float, float]]]:
    """A streamed call through an ``async with`` opener and an async iterator of its chunks."""

    async def stream() -> tuple[float, float]:
        start = time.perf_counter()
        first = 0.0
        async with open_stream() as reply:
            async for _ in chunks(reply):
                if not first:
                    first = time.perf_counter() - start
        return first, time.perf_counter() - start

    return stream


async def make_aiohttp(url: str, limit: int) -> Made:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit), cookie_jar=aiohttp.DummyCookieJar()
    )

    async def call() -> Any:
        async with session.post(url, data=request_body(), headers=HEADERS) as reply:
            return json.loads(await reply.read())

    stream = _timed_stream(
        lambda: session.post(url, data=STREAM_BODY, headers=HEADERS),
        lambda reply: reply.content.iter_any(),
    )
    return Made(call, stream, session.close)


def _make_httpx(module: str) -> Maker:
    async def make(url: str, limit: int) -> Made:
        library = importlib.import_module(module)
        # httpx's own keep-alive default (20): a larger idle pool costs every request in
        # httpcore 1.x (see failover.http.DEFAULT_LIMITS)
        limits = library.Limits(max_connections=limit, max_keepalive_connections=20)
        client = library.AsyncClient(limits=limits, timeout=None)

        async def call() -> Any:
            return (await client.post(url, content=request_body(), headers=HEADERS)).json()

        stream = _timed_stream(
            lambda: client.stream("POST", url, content=STREAM_BODY, headers=HEADERS),
            lambda reply: reply.aiter_bytes(),
        )
        return Made(call, stream, client.aclose)

    return make


async def make_pyreqwest(url: str, limit: int) -> Made:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(limit).follow_redirects(False).build()

    async def call() -> Any:
        request = client.post(url).body_bytes(request_body()).headers(HEADERS).build()
        reply = await request.send()
        return json.loads(bytes(await reply.bytes()))

    async def chunks(reply: Any) -> Any:
        while (chunk := await reply.body_reader.read_chunk()) is not None:
            yield chunk

    # a streamed body is pre-read up to 64 KiB by default: an SSE stream's first chunk would
    # wait for the whole reply
    stream = _timed_stream(
        lambda: (
            client.post(url)
            .body_bytes(STREAM_BODY)
            .headers(HEADERS)
            .streamed_read_buffer_limit(0)
            .build_streamed()
        ),
        chunks,
    )
    return Made(call, stream, client.close)


async def make_aiosonic(url: str, limit: int) -> Made:
    import aiosonic
    from aiosonic.pools import PoolConfig

    connector = aiosonic.TCPConnector(pool_configs={":default": PoolConfig(size=limit)})
    client = aiosonic.HTTPClient(connector)

    async def call() -> Any:
        reply = await client.post(url, data=request_body(), headers=HEADERS)
        return json.loads(await reply.content())

    stream = _timed_stream(
        lambda: client.stream("POST", url, data=STREAM_BODY, headers=HEADERS),
        lambda reply: reply.read_chunks(),
    )
    return Made(call, stream, client.aclose)


async def make_httpr(url: str, limit: int) -> Made:
    import httpr

    client = httpr.AsyncClient(
        max_concurrency=limit, follow_redirects=False, cookie_store=False, timeout=None
    )

    async def call() -> Any:
        reply = await client.post(url, content=request_body(), headers=HEADERS)
        return json.loads(reply.content)

    # its async stream yields a response read with blocking iterators only (the event loop
    # would stop while it waits for a chunk): no stream row
    return Made(call, None, client.aclose)


async def make_curl_cffi(url: str, limit: int) -> Made:
    from curl_cffi.requests import AsyncSession

    session: Any = AsyncSession(max_clients=limit, allow_redirects=False)

    async def call() -> Any:
        reply = await session.post(url, data=request_body(), headers=HEADERS)
        return json.loads(reply.content)

    stream = _timed_stream(
        lambda: session.stream("POST", url, data=STREAM_BODY, headers=HEADERS),
        lambda reply: reply.aiter_content(),
    )
    return Made(call, stream, session.close)


async def make_rnet(url: str, limit: int) -> Made:
    import rnet

    client = rnet.Client(pool_max_size=limit, allow_redirects=False, cookie_store=False)

    async def call() -> Any:
        reply = await client.post(url, body=request_body(), headers=HEADERS)
        try:
            return json.loads(await reply.bytes())
        finally:
            await reply.close()

    async def stream() -> tuple[float, float]:
        start = time.perf_counter()
        first = 0.0
        reply = await client.post(url, body=STREAM_BODY, headers=HEADERS)
        try:
            async with reply.stream() as chunks:
                async for _ in chunks:
                    if not first:
                        first = time.perf_counter() - start
        finally:
            await reply.close()
        return first, time.perf_counter() - start

    async def close() -> None:
        pass  # no close: the pool goes with the client

    return Made(call, stream, close)


async def make_niquests(url: str, limit: int) -> Made:
    import niquests

    session = niquests.AsyncSession(pool_maxsize=limit, disable_http2=True, disable_http3=True)

    async def call() -> Any:
        reply = await session.post(url, data=request_body(), headers=HEADERS)
        return json.loads(reply.content or b"")

    async def stream() -> tuple[float, float]:
        start = time.perf_counter()
        first = 0.0
        reply = await session.post(url, data=STREAM_BODY, headers=HEADERS, stream=True)
        try:
            async for _ in await reply.iter_content(None):
                if not first:
                    first = time.perf_counter() - start
        finally:
            await reply.close()
        return first, time.perf_counter() - start

    return Made(call, stream, session.close)


async def make_primp(url: str, limit: int) -> Made:
    import primp

    client = primp.AsyncClient(follow_redirects=False, cookie_store=False)

    async def call() -> Any:
        reply = await client.post(url, content=request_body(), headers=HEADERS)
        return json.loads(reply.content)

    async def stream() -> tuple[float, float]:
        start = time.perf_counter()
        first = 0.0
        reply = await client.post(url, content=STREAM_BODY, headers=HEADERS, stream=True)
        try:
            async for _ in reply.aiter_bytes():
                if not first:
                    first = time.perf_counter() - start
        finally:
            await reply.aclose()
        return first, time.perf_counter() - start

    async def close() -> None:
        pass

    return Made(call, stream, close)


async def make_zapros(url: str, limit: int) -> Made:
    import zapros

    handler = zapros.AsyncStdNetworkHandler(
        http1={"max_connections_per_host": limit, "max_idle_connections_per_host": limit}
    )
    client = zapros.AsyncClient(handler)

    async def call() -> Any:
        reply = await client.post(url, body=request_body(), headers=HEADERS)
        return json.loads(reply.content or b"")

    async def chunks(reply: Any) -> Any:
        async for chunk in reply.async_iter_bytes():
            yield chunk

    stream = _timed_stream(
        lambda: client.stream("POST", url, body=STREAM_BODY, headers=HEADERS), chunks
    )

    async def close() -> None:
        await client.aclose()

    return Made(call, stream, close)


def _make_failover(sender_module: str) -> Maker:
    """The whole client (``complete``, ``stream``) on a sender: what the engine costs on top."""

    async def make(url: str, limit: int) -> Made:
        from run import client_for

        sender: Any = None
        if sender_module == "aiohttp":
            from failover.aiohttp_sender import AiohttpSender

            sender = AiohttpSender(limit=limit)
        elif sender_module == "pyreqwest":
            from failover.pyreqwest_sender import PyreqwestSender

            sender = PyreqwestSender(limit=limit)
        base = url.removesuffix("/chat/completions")
        client = client_for(base, ["sk-bench-key-0001"], **({"sender": sender} if sender else {}))

        async def stream() -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            async for _ in client.stream(MESSAGES):
                if not first:
                    first = time.perf_counter() - start
            return first, time.perf_counter() - start

        async def close() -> None:
            await client.aclose()
            if sender is not None:
                await sender.aclose()

        return Made(lambda: client.complete(MESSAGES), stream, close)

    return make


ENGINES = [
    Engine("aiohttp", "aiohttp", make_aiohttp, "today's fast sender"),
    Engine("httpx", "httpx", _make_httpx("httpx"), "the default sender"),
    Engine("httpx2", "httpx2", _make_httpx("httpx2"), "HttpxSender takes it"),
    Engine("pyreqwest", "pyreqwest", make_pyreqwest, "Rust reqwest/hyper"),
    Engine("aiosonic", "aiosonic", make_aiosonic, "pure Python"),
    Engine("httpr", "httpr", make_httpr, "Rust, sync client in threads"),
    Engine("curl-cffi", "curl_cffi", make_curl_cffi, "libcurl"),
    Engine("rnet", "rnet", make_rnet, "Rust, GPL-3.0"),
    Engine("niquests", "niquests", make_niquests, "urllib3-future"),
    Engine("primp", "primp", make_primp, "Rust reqwest fork"),
    Engine("zapros", "zapros", make_zapros, "pure Python, h11"),
    # the whole client on a sender, beside the bare engines
    Engine("fo+aiohttp", "aiohttp", _make_failover("aiohttp"), "client on AiohttpSender"),
    Engine("fo+reqwest", "pyreqwest", _make_failover("pyreqwest"), "client on PyreqwestSender"),
]


async def sequential_us(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median µs of ``n`` sequential calls."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


async def burst(
    call: Callable[[], Awaitable[Any]], total: int, width: int
) -> tuple[float, float, float]:
    """Requests/s, and CPU µs per request of the process and of this (the event loop's)
    thread, of ``total`` calls by ``width`` concurrent workers."""
    cpu = time.process_time()
    mine = time.thread_time()
    start = time.perf_counter()
    await drive(call, total, width)
    wall = time.perf_counter() - start
    return (
        total / wall,
        (time.process_time() - cpu) / total * 1e6,
        (time.thread_time() - mine) / total * 1e6,
    )


async def one_round(engine: Engine, url: str, sizes: dict[str, int]) -> dict[str, float]:
    """One round of every figure for ``engine``, on a new client."""
    made = await engine.make(url, LIMIT)
    try:
        for _ in range(20):  # a connection, the first request's lazy imports
            await made.call()
        if engine.name not in sizes:  # the first round: ~0.4 s bursts from a short one
            sizes[engine.name] = max(200, int((await burst(made.call, 128, 64))[0] * 0.4))
        n = sizes[engine.name]
        row: dict[str, float] = {"c1_us": await sequential_us(made.call, max(50, n // 4))}
        await drive(made.call, max(n // 4, 256), 256)  # open the connections the bursts use
        for width in WIDTHS:
            rps, cpu, loop_cpu = await burst(made.call, n, width)
            row[f"c{width}_rps"] = rps
            if width == 64:
                row["cpu_us"] = cpu
                row["loop_cpu_us"] = loop_cpu
        # the next round's bursts last ~0.4 s each whatever the contender's speed
        sizes[engine.name] = max(200, int(row["c64_rps"] * 0.4))
        if made.stream is not None:
            samples = [await made.stream() for _ in range(60)]
            row["first_us"] = statistics.median(s[0] for s in samples) * 1e6
            row["stream_us"] = statistics.median(s[1] for s in samples) * 1e6
        return row
    finally:
        await made.close()


async def interleaved(engines: list[Engine], url: str, rounds: int) -> dict[str, list[dict]]:
    """Every engine's rounds, in alternating order; a failing engine is dropped with its error."""
    got: dict[str, list[dict[str, Any]]] = {engine.name: [] for engine in engines}
    sizes: dict[str, int] = {}
    live = list(engines)
    for number in range(rounds):
        for engine in live if number % 2 == 0 else list(reversed(live)):
            try:
                got[engine.name].append(await asyncio.wait_for(one_round(engine, url, sizes), 60))
            except Exception as exc:
                got[engine.name] = [{"error": f"{type(exc).__name__}: {exc}"[:120]}]
        live = [engine for engine in live if "error" not in got[engine.name][0]]
        print(f"  round {number + 1}/{rounds} done", file=sys.stderr, flush=True)
    return got


def in_child(mode: str, name: str, url: str) -> dict[str, Any]:
    """Run ``--child mode name`` in a fresh interpreter; its JSON line, or its error."""
    command = [sys.executable, __file__, "--child", mode, name, "--url", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timed out (120 s)"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def child_rss(engine: Engine, url: str) -> dict[str, Any]:
    """RSS MiB after importing ``engine`` and 3,000 requests at C=64 (this fresh interpreter)."""
    before = rss_mib()
    made = await engine.make(url, LIMIT)
    await drive(made.call, 3000, 64)
    after = rss_mib()
    await made.close()
    return {"rss_mib": after, "rss_growth_mib": after - before}


async def child_cancel(engine: Engine, url: str) -> dict[str, Any]:
    """Cancel requests at random moments, then check that the pool of 8 still serves."""
    import anyio

    made = await engine.make(url, 8)
    await drive(made.call, 64, 16)
    seconds = statistics.median([await sequential_us(made.call, 50) for _ in range(3)]) / 1e6
    chance = random.Random(25)
    cancelled = 0

    async def by_asyncio() -> None:
        nonlocal cancelled
        try:
            await asyncio.wait_for(made.call(), chance.uniform(0, 3 * seconds))
        except (asyncio.TimeoutError, TimeoutError):
            cancelled += 1

    async def by_anyio() -> None:
        nonlocal cancelled
        with anyio.move_on_after(chance.uniform(0, 3 * seconds)) as scope:
            await made.call()
        cancelled += scope.cancelled_caught

    errors: list[str] = []

    def guarded(call: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await call()
            except Exception as exc:
                errors.append(type(exc).__name__)
            except asyncio.CancelledError:  # nothing cancels this task: a scope's own let out
                errors.append("CancelledError out of its anyio scope")
                task = asyncio.current_task()
                while task is not None and task.cancelling():
                    task.uncancel()

        return run

    await drive(guarded(by_asyncio), 500, 64)
    await drive(guarded(by_anyio), 500, 64)
    served = 0

    async def after() -> None:
        nonlocal served
        await made.call()
        served += 1

    try:
        await asyncio.wait_for(drive(after, 200, 16), 10)
        verdict = "ok"
    except (asyncio.TimeoutError, TimeoutError):
        verdict = "STUCK"
    except Exception as exc:
        verdict = f"broken ({type(exc).__name__})"
    try:
        await asyncio.wait_for(made.close(), 5)
    except (asyncio.TimeoutError, TimeoutError):
        verdict += ", close hangs"
    return {
        "cancel": verdict,
        "cancelled": cancelled,
        "served_after": served,
        "errors": sorted(set(errors)),
    }


def spread(rows: list[dict[str, Any]], key: str) -> str:
    """``median ±half-range%`` of ``key`` over rounds, or ``-``."""
    values = [row[key] for row in rows if key in row]
    if not values:
        return "-"
    mid = statistics.median(values)
    return f"{mid:.0f} ±{(max(values) - min(values)) / 2 / mid * 100:.0f}%"


def print_table(
    engines: list[Engine],
    rounds: dict[str, list[dict[str, Any]]],
    extra: dict[str, dict[str, Any]],
    skipped: list[str],
) -> None:
    """The figures, one contender a line, then the ratios to aiohttp."""
    columns = [
        ("C=1 µs", "c1_us"),
        ("C=16 req/s", "c16_rps"),
        ("C=64 req/s", "c64_rps"),
        ("C=256 req/s", "c256_rps"),
        ("CPU µs @64", "cpu_us"),
        ("loop CPU µs", "loop_cpu_us"),
        ("1st chunk µs", "first_us"),
        ("stream µs", "stream_us"),
    ]
    print(f"\nmedian over {len(next(iter(rounds.values())))} rounds ±half their range")
    print(
        f"{'engine':10}"
        + "".join(f"{title:>13}" for title, _ in columns)
        + f"{'RSS MiB':>9}{'cancel':>8}"
    )
    for engine in engines:
        rows = rounds[engine.name]
        more = extra.get(engine.name, {})
        rss = f"{more['rss_growth_mib']:.1f}" if "rss_growth_mib" in more else "-"
        if "error" in rows[0]:
            print(f"{engine.name:10} failed: {rows[0]['error']}")
            continue
        print(
            f"{engine.name:10}"
            + "".join(f"{spread(rows, key):>13}" for _, key in columns)
            + f"{rss:>9}{more.get('cancel', '-'):>8}"
        )
    reference = rounds.get("aiohttp")
    if reference and "error" not in reference[0]:
        print(
            "\nper-round ratio to aiohttp (median): C=64 req/s, CPU per request (process, event"
            " loop's thread), first chunk"
        )
        for engine in engines:
            rows = rounds[engine.name]
            if engine.name == "aiohttp" or "error" in rows[0]:
                continue
            pairs = list(zip(rows, reference, strict=False))

            def ratio(key: str, pairs: list[tuple[dict, dict]] = pairs) -> str:
                got = [mine[key] / base[key] for mine, base in pairs if key in mine]
                return f"{statistics.median(got):.2f}x" if got else "-"

            print(
                f"  {engine.name:11} req/s {ratio('c64_rps'):>7}   CPU {ratio('cpu_us'):>7}"
                f" {ratio('loop_cpu_us'):>7}   first chunk {ratio('first_us'):>7}"
                f"   ({engine.note})"
            )
    clients = rounds.get("fo+aiohttp"), rounds.get("fo+reqwest")
    if all(rows and "error" not in rows[0] for rows in clients):
        pairs = list(zip(clients[1] or [], clients[0] or [], strict=False))
        got = {
            key: statistics.median(mine[key] / base[key] for mine, base in pairs if key in mine)
            for key in ("c1_us", "c16_rps", "c64_rps", "c256_rps", "cpu_us", "loop_cpu_us")
        }
        print(
            "  the client on PyreqwestSender / on AiohttpSender (per round, median): "
            f"C=1 µs {got['c1_us']:.2f}x, req/s C=16 {got['c16_rps']:.2f}x "
            f"C=64 {got['c64_rps']:.2f}x C=256 {got['c256_rps']:.2f}x, "
            f"CPU {got['cpu_us']:.2f}x, loop CPU {got['loop_cpu_us']:.2f}x"
        )
    for name, more in extra.items():
        if more.get("errors") or "error" in more:
            print(
                f"  note: {name}: {more.get('error') or 'errors while cancelling: '}"
                f"{', '.join(more.get('errors', []))}"
            )
    for note in skipped:
        print(f"  skipped: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--only", help="comma-separated contenders (default: all installed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-child", action="store_true", help="skip the RSS and cancel runs")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ENGINE"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    by_name = {engine.name: engine for engine in ENGINES}
    if args.child:
        mode, name = args.child
        work = child_rss if mode == "rss" else child_cancel
        print(json.dumps(asyncio.run(work(by_name[name], args.url))))
        return
    wanted = args.only.split(",") if args.only else list(by_name)
    engines, skipped = [], []
    for name in wanted:
        engine = by_name[name]
        if importlib.util.find_spec(engine.module) is None:
            skipped.append(f"{name} (not installed: pip install {name})")
        else:
            engines.append(engine)
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "upstream.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        assert upstream.stdout is not None
        assert upstream.stdout.readline().strip() == "ready"
        print(f"{len(engines)} engines, {args.rounds} rounds, interleaved ...", file=sys.stderr)
        rounds = asyncio.run(interleaved(engines, url, args.rounds))
        extra: dict[str, dict[str, Any]] = {}
        if not args.no_child:
            for engine in engines:
                extra[engine.name] = in_child("rss", engine.name, url)
                extra[engine.name].update(in_child("cancel", engine.name, url))
    finally:
        upstream.terminate()
    print_table(engines, rounds, extra, skipped)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "extra": extra}, indent=2))
    print(f"\n(Python {sys.version.split()[0]}, {os.cpu_count()} cores, loopback)")


if __name__ == "__main__":
    main()
