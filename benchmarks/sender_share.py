"""Where a request's CPU goes at C=64: the bare client, the sender alone, the engine.

Each engine (pyreqwest, aiohttp) is measured four ways, interleaved in chunks of 600 calls
at 64 concurrent (the order reversed each round) against benchmarks/upstream.py:

- ``bare``: what a bare caller does (encode, POST, read, parse), as in bare_clients.py;
- ``sender``: the same call through the failover sender alone (``sender.open``, the status,
  the rate-limit headers read as the engine reads them, ``aread``, ``json.loads``): the
  sender's own cost is ``sender`` minus ``bare``;
- ``client``: ``complete()`` on that sender;
- ``client, in memory``: ``complete()`` on work_count.py's in-memory sender (the engine's
  own work at C=64, no network).

CPU is this process's, every thread counted (pyreqwest's I/O runs in a Rust thread);
``loop`` is the event loop's thread alone. The last lines give, per engine, the sender's
share (``sender - bare``) and the engine's under load (``client - sender``), medians of the
per-round differences.

    .venv/bin/python benchmarks/sender_share.py [--rounds N] [--only pyreqwest|aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from load import drive  # benchmarks/, the script's own directory
from run import MESSAGES, client_for, request_body
from upstream import running
from work_count import InMemorySender

from failover.classify import rate_limit_headroom
from failover.providers.base import HttpRequest

KEY = "sk-bench-key-0001"
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
CHUNK = 600
Call = Callable[[], Awaitable[Any]]


def through(sender: Any, url: str) -> Call:
    """One call through ``sender`` alone, reading what the engine reads of a reply."""

    async def call() -> Any:
        request = HttpRequest("POST", url, dict(HEADERS), request_body())
        async with sender.open(request, 60.0) as reply:
            body = await reply.aread()
            if reply.status_code >= 300:
                raise RuntimeError(reply.status_code)
            rate_limit_headroom(reply.headers)
        return json.loads(body)

    return call


def _rows(
    engine: str,
    bare: Call,
    sender: Callable[[], Any],
    base: str,
    made: dict[str, Call],
    closing: list[Call],
) -> None:
    """``engine``'s three rows: its bare client, a sender of its own alone, the client on one."""
    alone, under = sender(), sender()
    made[f"{engine} bare"] = bare
    made[f"{engine} sender"] = through(alone, f"{base}/chat/completions")
    made[f"{engine} client"] = functools.partial(
        client_for(base, [KEY], sender=under).complete, MESSAGES
    )
    closing += [alone.aclose, under.aclose]


async def contenders(base: str, only: str) -> tuple[dict[str, Call], list[Call]]:
    url = f"{base}/chat/completions"
    made: dict[str, Call] = {}
    closing: list[Call] = []
    if only in ("", "pyreqwest"):
        from pyreqwest.client import ClientBuilder

        from failover.pyreqwest_sender import PyreqwestSender

        bare = ClientBuilder().max_connections(512).follow_redirects(False).build()

        async def bare_pyreqwest() -> Any:
            request = bare.post(url).body_bytes(request_body()).headers(HEADERS).build()
            reply = await request.send()
            return json.loads((await reply.bytes()).to_bytes())

        _rows("pyreqwest", bare_pyreqwest, PyreqwestSender, base, made, closing)
        closing.append(bare.close)
    if only in ("", "aiohttp"):
        import aiohttp

        from failover.aiohttp_sender import AiohttpSender

        session = aiohttp.ClientSession()

        async def bare_aiohttp() -> Any:
            async with session.post(url, data=request_body(), headers=HEADERS) as reply:
                return json.loads(await reply.read())

        _rows("aiohttp", bare_aiohttp, AiohttpSender, base, made, closing)
        closing.append(session.close)
    made["client, in memory"] = functools.partial(
        client_for(base, [KEY], sender=InMemorySender(True)).complete, MESSAGES
    )
    return made, closing


async def measure(base: str, rounds: int, only: str) -> None:
    made, closing = await contenders(base, only)
    for call in made.values():  # connections opened, caches filled
        await drive(call, CHUNK)
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in made}
    for number in range(rounds):
        for name in list(made) if number % 2 == 0 else list(reversed(made)):
            cpu, loop, start = time.process_time(), time.thread_time(), time.perf_counter()
            await drive(made[name], CHUNK)
            wall = time.perf_counter() - start
            samples[name].append(
                (
                    CHUNK / wall,
                    (time.process_time() - cpu) / CHUNK * 1e6,
                    (time.thread_time() - loop) / CHUNK * 1e6,
                )
            )
    print(f"C=64, {rounds} rounds of {CHUNK} calls each; medians (CPU µs per request)")
    print(f"{'':20} {'req/s':>7} {'CPU':>6} {'loop':>6}")
    for name, got in samples.items():
        rate, cpu, loop = (statistics.median(sample[i] for sample in got) for i in range(3))
        print(f"{name:20} {rate:7.0f} {cpu:6.0f} {loop:6.0f}")

    def gap(ours: str, theirs: str, index: int) -> float:
        pairs = zip(samples[ours], samples[theirs], strict=True)
        return statistics.median(mine[index] - other[index] for mine, other in pairs)

    for engine in ("pyreqwest", "aiohttp"):
        if f"{engine} bare" not in samples:
            continue
        bare, sender, client = (f"{engine} {what}" for what in ("bare", "sender", "client"))
        print(
            f"{engine}: the sender's own share {gap(sender, bare, 1):+.0f} µs CPU "
            f"({gap(sender, bare, 2):+.0f} loop); the engine's under load "
            f"{gap(client, sender, 1):+.0f} µs ({gap(client, sender, 2):+.0f} loop)"
        )
    for close in closing:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", choices=("pyreqwest", "aiohttp"), default="")
    options = parser.parse_args()
    with running() as base:
        asyncio.run(measure(base, options.rounds, options.only))


if __name__ == "__main__":
    main()
