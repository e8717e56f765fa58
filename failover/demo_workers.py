"""``failover demo --workers N``: several worker processes on the same keys, store off and on.

The simulator serves two OpenAI keys the provider has already closed (one rate limited
with ``retry-after: 30``, one revoked) next to a healthy spare and an Anthropic fallback.
N worker processes come up a moment apart and each sends its requests through a
:class:`~failover.ResilientClient`. With each worker's state in its own memory, every
worker learns the closed keys for itself; with a :class:`~failover.store.RedisStore`
the first worker's lesson reaches the others in milliseconds, so the closed keys are
called about once in total. The summary counts, per key, the calls the provider
rejected, store off and store on. Needs the ``sim`` and ``redis`` extras and a
``redis-server`` (started on a free port when no ``--redis`` URL is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkerRun", "main", "run_workers", "run_workers_demo", "temporary_redis"]

CHAIN = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
KEYS = {  # name -> (provider, key, priority, what the simulator does with it)
    "openai-limited": ("openai", "sk-demo-workers-limited-000001", 0, "rate_limit"),
    "openai-revoked": ("openai", "sk-demo-workers-revoked-000002", 0, "invalid_key"),
    "openai-spare": ("openai", "sk-demo-workers-spare-00000003", 1, "healthy"),
    "anthropic": ("anthropic", "sk-ant-demo-workers-0000000004", 2, "healthy"),
}
CLOSED = ("rate_limit", "invalid_key")


@dataclass
class WorkerRun:
    """What a set of workers did: their own counts and what the simulator saw per key."""

    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    """Calls per profile name that the provider answered 429/401."""
    calls: Counter[str] = field(default_factory=Counter)
    """Calls per profile name."""


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One worker process: its own manager and client, sharing a store when told to."""
    from failover import AuthProfile, FailoverError, FailoverManager, ResilientClient
    from failover.store import RedisStore

    profiles = [
        AuthProfile(name, provider, key, base_url=spec["base_urls"][provider], priority=priority)
        for name, (provider, key, priority, _) in KEYS.items()
    ]
    store = RedisStore(spec["redis"], prefix=spec["prefix"]) if spec.get("redis") else None
    manager = FailoverManager(profiles=profiles, store=store)
    ok = failed = 0
    errors: Counter[str] = Counter()
    async with manager, ResilientClient(CHAIN, manager, timeout=5.0, deadline=10.0) as client:
        if store is not None:
            await store.settle(5.0)  # connected and registered
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        gate = asyncio.Semaphore(spec.get("concurrency", 4))
        messages = [{"role": "user", "content": "Summarise the incident report."}]

        async def one() -> None:
            nonlocal ok, failed
            async with gate:
                try:
                    await client.complete(messages)
                    ok += 1
                except FailoverError as error:
                    failed += 1
                    errors[type(error).__name__] += 1

        await asyncio.gather(*(one() for _ in range(spec["requests"])))
    return {"ok": ok, "failed": failed, "errors": dict(errors)}


async def run_workers(
    sim: Any,
    *,
    workers: int,
    requests: int,
    redis_url: str | None,
    stagger: float = 0.1,
    concurrency: int = 4,
) -> WorkerRun:
    """Run ``workers`` worker processes against ``sim`` and count what happened.

    Args:
        sim: A running :class:`~failover.testing.Simulator` (scripted by :func:`script`).
        workers: How many processes.
        requests: Requests per process.
        redis_url: The Redis they share state through, or ``None`` (each keeps its own).
        stagger: Seconds between one worker's first request and the next one's.
        concurrency: Requests in flight per worker.
    """
    before = len(sim.requests)
    spec = {
        "base_urls": {provider: sim.base_url(provider) for provider in ("openai", "anthropic")},
        "redis": redis_url,
        "prefix": f"demo-{uuid.uuid4().hex[:8]}",
        "requests": requests,
        "concurrency": concurrency,
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "failover.demo_workers",
            "--worker",
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    for process in processes:  # every worker is up (and connected) before any starts
        assert process.stdout is not None
        line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"a demo worker failed to start: {line!r}")
    start_at = time.time() + 0.05
    for index, process in enumerate(processes):
        assert process.stdin is not None
        process.stdin.write(f"{start_at + index * stagger}\n".encode())
        await process.stdin.drain()
    run = WorkerRun()
    for process in processes:
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a demo worker exited with {process.returncode}")
        result = json.loads(out.decode().strip().splitlines()[-1])
        run.ok += result["ok"]
        run.failed += result["failed"]
        run.errors.update(result["errors"])
    names = {key: name for name, (_, key, _, _) in KEYS.items()}
    for received in sim.requests[before:]:
        name = names.get(received.key, received.key)
        run.calls[name] += 1
        if received.outcome in CLOSED:
            run.rejected[name] += 1
    return run


def script(sim: Any) -> None:
    """Close two of the OpenAI keys the way providers do: a 429 and a 401."""
    from failover.testing import Behavior

    for _, key, _, behaviour in KEYS.values():
        if behaviour == "rate_limit":
            sim.script(Behavior("rate_limit", retry_after=30), key=key)
        elif behaviour != "healthy":
            sim.script(Behavior(behaviour), key=key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def temporary_redis() -> AsyncIterator[str]:
    """Run a throwaway ``redis-server`` on a free loopback port; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "no redis-server found: install it (apt-get install redis-server, brew install "
            "redis) or pass --redis redis://host:6379/0"
        )
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            await asyncio.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        await process.wait()


async def run_workers_demo(workers: int, requests: int, redis_url: str | None) -> int:
    """The demo: the same workers twice, store off then on, and a per-key summary."""
    from rich.console import Console
    from rich.table import Table

    from failover.testing import Simulator

    console = Console()
    if not 1 <= workers <= 64 or requests < 1:
        console.print("failover demo: --workers must be 1..64 and --requests at least 1")
        return 2
    console.print(
        f"[bold]{workers} worker processes x {requests} requests[/], starting 0.1 s apart, "
        "on keys where the provider has closed openai-limited (429, retry-after 30 s) and "
        "openai-revoked (401). Each worker sends 4 requests at a time, so the first "
        "worker's opening burst reaches a closed key more than once before its answers "
        "are back."
    )
    async with contextlib.AsyncExitStack() as stack:
        if redis_url is None:
            redis_url = await stack.enter_async_context(temporary_redis())
        runs: dict[str, WorkerRun] = {}
        for label, url in (("store off (MemoryStore)", None), ("store on (RedisStore)", redis_url)):
            async with Simulator() as sim:
                script(sim)
                console.print(f"running with {label}...")
                runs[label] = await run_workers(
                    sim, workers=workers, requests=requests, redis_url=url
                )
    table = Table(title="calls the provider rejected (429/401), per key")
    table.add_column("key")
    for label in runs:
        table.add_column(label, justify="right")
    for name in KEYS:
        table.add_row(name, *(str(run.rejected[name]) for run in runs.values()))
    table.add_row(
        "[bold]requests served[/]",
        *(f"{run.ok}/{run.ok + run.failed}" for run in runs.values()),
    )
    console.print(table)
    off, on = runs.values()
    console.print(
        f"Sharing state cut the calls into closed keys from {sum(off.rejected.values())} "
        f"to {sum(on.rejected.values())}; every request is accounted for: "
        f"{'yes' if all(r.ok + r.failed == workers * requests for r in runs.values()) else 'NO'}."
    )
    return 0 if all(run.failed == 0 for run in runs.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker (``--worker SPEC``): the demo's child processes start here."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "--worker":
        print("usage: python -m failover.demo_workers --worker SPEC_JSON", file=sys.stderr)
        return 2
    result = asyncio.run(_worker(json.loads(args[1])))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
