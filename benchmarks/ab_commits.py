"""Two commits of this repository measured against each other, interleaved in one run.

    python benchmarks/ab_commits.py BASE [HEAD] [--rounds N]

Each commit is checked out into a temporary ``git worktree`` (removed at the end). One
loopback upstream (benchmarks/upstream.py) is started once and serves both. Every
measurement runs in a fresh interpreter whose ``PYTHONPATH`` is that commit's tree, so
``import failover`` resolves to it (checked once per tree: its ``failover.__file__`` is
printed). Rounds alternate the trees, A B then B A, metric by metric, so a drift of this
VM's speed hits both alike; within one interpreter the client and its bare library
(aiohttp or httpx, the same call without failover) alternate call by call (bursts at
C=64), and the client / bare ratio is taken there.

Per tree, using only what both commits offer (``ResilientClient``, ``AuthProfile``,
``complete()``, ``stream()``, ``AiohttpSender``, the default httpx sender):

- sequential ``complete()``, median µs per call, on the default httpx sender and on
  ``AiohttpSender``;
- requests/s at 64 concurrent on ``AiohttpSender``, and this process's CPU µs per request;
- a stream's time to its first chunk (and to its end), on the default httpx sender;
- ``benchmarks/work_count.py`` (opcodes per ``complete()``, deterministic), once per tree.

The table gives each metric's median over rounds with its spread (lowest to highest) per
tree, and B/A as the median of per-round ratios (A and B of a round run back to back).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "ping"}]
KEY = "sk-bench-key-0001"
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
SEQUENTIAL = 600  # calls per contender per interpreter, alternating call by call
BURST = 750  # calls per burst at concurrency 64
BURSTS = 6  # per contender, alternating
STREAMS = 180
WIDTH = 64

Call = Callable[[], Awaitable[Any]]

# metric -> (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "seq_httpx_us": ("sequential complete() p50, httpx", "µs", False),
    "seq_aiohttp_us": ("sequential complete() p50, AiohttpSender", "µs", False),
    "rps_c64": ("C=64 throughput, AiohttpSender", "req/s", True),
    "cpu_c64_us": ("CPU per request at C=64, AiohttpSender", "µs", False),
    "cpu_seq_httpx_us": ("CPU per sequential call, httpx", "µs", False),
    "first_chunk_us": ("stream first chunk p50, httpx", "µs", False),
    "stream_total_us": ("stream total p50 (20 chunks), httpx", "µs", False),
}
# metric -> its bare counterpart, measured in the same interpreter
BARE = {
    "seq_httpx_us": "bare_seq_httpx_us",
    "seq_aiohttp_us": "bare_seq_aiohttp_us",
    "rps_c64": "bare_rps_c64",
    "cpu_c64_us": "bare_cpu_c64_us",
    "cpu_seq_httpx_us": "bare_cpu_seq_httpx_us",
    "first_chunk_us": "bare_first_chunk_us",
    "stream_total_us": "bare_stream_total_us",
}
GROUPS = ("seq_httpx", "seq_aiohttp", "c64", "stream")


# ---------------------------------------------------------------- the worker (one tree)


def _body(stream: bool = False) -> bytes:
    payload: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


def _client(base: str, sender: Any = None) -> Any:
    from failover import AuthProfile, ResilientClient

    profile = AuthProfile("k0", "openai", KEY, base_url=base)
    if sender is None:
        return ResilientClient(["openai/gpt-4o-mini"], [profile])
    return ResilientClient(["openai/gpt-4o-mini"], [profile], sender=sender)


async def _alternate_sequential(
    contenders: dict[str, Call], total: int
) -> dict[str, tuple[float, float]]:
    """Per contender: (median µs per call, CPU µs per call), alternating call by call.

    Calls alternate one by one (the order flipped each turn), so a neighbour's burst of
    CPU on this shared machine lands on both contenders alike.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for call in contenders.values():
        for _ in range(30):
            await call()
    for turn in range(total):
        names = list(contenders) if turn % 2 == 0 else list(reversed(contenders))
        for name in names:
            cpu_start, start = time.process_time(), time.perf_counter()
            await contenders[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - cpu_start
    return {
        name: (statistics.median(got) * 1e6, cpu[name] / len(got) * 1e6)
        for name, got in times.items()
    }


async def _seq_httpx(base: str) -> dict[str, float]:
    import httpx

    url = f"{base}/chat/completions"
    client = _client(base)
    async with httpx.AsyncClient() as http:

        async def bare() -> Any:
            return (await http.post(url, content=_body(), headers=HEADERS)).json()

        got = await _alternate_sequential(
            {"ours": lambda: client.complete(MESSAGES), "bare": bare}, SEQUENTIAL
        )
    await client.aclose()
    return {
        "seq_httpx_us": got["ours"][0],
        "bare_seq_httpx_us": got["bare"][0],
        "cpu_seq_httpx_us": got["ours"][1],
        "bare_cpu_seq_httpx_us": got["bare"][1],
    }


async def _seq_aiohttp(base: str) -> dict[str, float]:
    import aiohttp

    from failover.aiohttp_sender import AiohttpSender

    url = f"{base}/chat/completions"
    sender = AiohttpSender()
    client = _client(base, sender)
    async with aiohttp.ClientSession() as session:

        async def bare() -> Any:
            async with session.post(url, data=_body(), headers=HEADERS) as reply:
                return json.loads(await reply.read())

        got = await _alternate_sequential(
            {"ours": lambda: client.complete(MESSAGES), "bare": bare}, SEQUENTIAL
        )
    await client.aclose()
    await sender.aclose()
    return {"seq_aiohttp_us": got["ours"][0], "bare_seq_aiohttp_us": got["bare"][0]}


async def _c64(base: str) -> dict[str, float]:
    import aiohttp
    from load import drive  # benchmarks/, the script's own directory

    from failover.aiohttp_sender import AiohttpSender

    url = f"{base}/chat/completions"
    sender = AiohttpSender()
    client = _client(base, sender)
    session = aiohttp.ClientSession()

    async def bare() -> Any:
        async with session.post(url, data=_body(), headers=HEADERS) as reply:
            return json.loads(await reply.read())

    contenders: dict[str, Call] = {"ours": lambda: client.complete(MESSAGES), "bare": bare}
    rps: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():
        await drive(call, BURST // 3, WIDTH)  # warm: connections, caches
    for number in range(BURSTS):
        names = list(contenders) if number % 2 == 0 else list(reversed(contenders))
        for name in names:
            cpu_start, start = time.process_time(), time.perf_counter()
            await drive(contenders[name], BURST, WIDTH)
            rps[name].append(BURST / (time.perf_counter() - start))
            cpu[name].append((time.process_time() - cpu_start) / BURST * 1e6)
    await client.aclose()
    await sender.aclose()
    await session.close()
    return {
        "rps_c64": statistics.median(rps["ours"]),
        "bare_rps_c64": statistics.median(rps["bare"]),
        "cpu_c64_us": statistics.median(cpu["ours"]),
        "bare_cpu_c64_us": statistics.median(cpu["bare"]),
    }


async def _stream(base: str) -> dict[str, float]:
    import httpx

    url = f"{base}/chat/completions"
    client = _client(base)
    async with httpx.AsyncClient() as http:

        async def bare() -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            async with http.stream("POST", url, content=_body(True), headers=HEADERS) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("data:") and not first:
                        first = time.perf_counter() - start
            return first, time.perf_counter() - start

        async def ours() -> tuple[float, float]:
            start = time.perf_counter()
            first = 0.0
            async for _ in client.stream(MESSAGES):
                if not first:
                    first = time.perf_counter() - start
            return first, time.perf_counter() - start

        contenders = {"ours": ours, "bare": bare}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for call in contenders.values():
            for _ in range(20):
                await call()
        for turn in range(STREAMS):  # alternating stream by stream
            names = list(contenders) if turn % 2 == 0 else list(reversed(contenders))
            for name in names:
                samples[name].append(await contenders[name]())
    await client.aclose()
    out: dict[str, float] = {}
    for name, prefix in (("ours", ""), ("bare", "bare_")):
        out[f"{prefix}first_chunk_us"] = statistics.median(s[0] for s in samples[name]) * 1e6
        out[f"{prefix}stream_total_us"] = statistics.median(s[1] for s in samples[name]) * 1e6
    return out


def worker(group: str, base: str) -> None:
    """Measure one group of metrics on the ``failover`` that PYTHONPATH points at."""
    measure = {"seq_httpx": _seq_httpx, "seq_aiohttp": _seq_aiohttp, "c64": _c64}
    run = measure.get(group, _stream)
    print(json.dumps(asyncio.run(run(base))), flush=True)


# ---------------------------------------------------------------- the parent


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def worktrees(repo: Path, commits: list[str]) -> Iterator[list[Path]]:
    """Each commit checked out, detached, into a temporary worktree; all removed after."""
    root = Path(tempfile.mkdtemp(prefix="ab_commits_"))
    made: list[Path] = []
    try:
        for label, commit in zip("AB", commits, strict=True):
            path = root / label
            _git("worktree", "add", "--detach", "--quiet", str(path), commit, cwd=repo)
            made.append(path)
        yield made
    finally:
        for path in made:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)], cwd=repo, check=False
            )
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=repo, check=False)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(tree: Path, args: list[str], timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        env=_env(tree),
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args} in {tree} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def check_import(tree: Path) -> str:
    """The ``failover.__file__`` an interpreter with this tree on PYTHONPATH imports."""
    found = _run(tree, ["-c", "import failover; print(failover.__file__)"]).strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"import failover resolved to {found}, not under {tree}")
    return found


def work_count(tree: Path) -> list[str]:
    """benchmarks/work_count.py (this script's copy) run on the tree: its summary lines."""
    out = _run(tree, [str(HERE / "work_count.py")])
    return [line for line in out.splitlines() if line.startswith("complete()")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def report(labels: list[str], rounds: dict[str, list[dict[str, float]]], count: int) -> None:
    """The table: medians over rounds and spreads per tree, B/A, and client/bare per tree."""
    a, b = labels
    print(
        f"\n{count} rounds; median over rounds [lowest-highest]; B/A = median of per-round ratios"
    )
    print(f"  A = {a}\n  B = {b}\n")
    print(f"  {'metric (unit, ^ higher is better)':50} {'A':>22} {'B':>22} {'B/A':>6}")
    for key, (label, unit, higher) in METRICS.items():
        ra = [row[key] for row in rounds[a]]
        rb = [row[key] for row in rounds[b]]
        paired = statistics.median(y / x for x, y in zip(ra, rb, strict=True))
        cell_a = f"{_fmt(statistics.median(ra))} [{_spread(ra)}]"
        cell_b = f"{_fmt(statistics.median(rb))} [{_spread(rb)}]"
        arrow = " ^" if higher else ""
        print(f"  {label + ' (' + unit + ')' + arrow:50} {cell_a:>22} {cell_b:>22} {paired:6.3f}")
    print(
        "\n  client / its bare library, same interpreter"
        " (median of per-round ratios [lowest-highest]):"
    )
    print(f"  {'metric (^ higher is better)':50} {'A':>18} {'B':>18} {'B/A':>6}")
    for key, (label, _unit, higher) in METRICS.items():
        medians, cells = [], []
        for tree in labels:
            ratios = [row[key] / row[BARE[key]] for row in rounds[tree]]
            medians.append(statistics.median(ratios))
            cells.append(f"{medians[-1]:.3f} [{min(ratios):.2f}-{max(ratios):.2f}]")
        note = " ^" if higher else ""
        print(f"  {label + note:50} {cells[0]:>18} {cells[1]:>18} {medians[1] / medians[0]:6.3f}")


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # one measurement, in this interpreter
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("base", help="commit A (the baseline)")
    parser.add_argument("head", nargs="?", default="HEAD", help="commit B (default HEAD)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of A and B (default 5)")
    parser.add_argument("--json", type=Path, help="also write the rounds to this file")
    args = parser.parse_args()
    repo = Path(_git("rev-parse", "--show-toplevel", cwd=HERE))
    commits = [
        _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repo)
        for ref in (args.base, args.head)
    ]
    labels = [f"{_git('log', '-1', '--format=%h %s', c, cwd=repo)[:70]}" for c in commits]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "upstream.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}/v1"
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    started = time.perf_counter()
    try:
        assert upstream.stdout is not None
        if upstream.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmarks/upstream.py did not start")
        with worktrees(repo, commits) as trees:
            for label, tree in zip(labels, trees, strict=True):
                print(f"{label[:7]}: failover imported from {check_import(tree)}", flush=True)
            for label, tree in zip(labels, trees, strict=True):
                for line in work_count(tree):
                    print(f"{label[:7]} work_count: {line}", flush=True)
            pairs = list(zip(labels, trees, strict=True))
            for number in range(args.rounds):
                rows: dict[str, dict[str, float]] = {label: {} for label in labels}
                for index, group in enumerate(GROUPS):
                    order = pairs if (number + index) % 2 == 0 else list(reversed(pairs))
                    for label, tree in order:
                        out = _run(tree, [str(Path(__file__).resolve()), "--worker", group, base])
                        rows[label].update(json.loads(out.strip().splitlines()[-1]))
                for label in labels:
                    rounds[label].append(rows[label])
                print(
                    f"round {number + 1}/{args.rounds} done"
                    f" ({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    finally:
        upstream.terminate()
        upstream.wait()
    report(labels, rounds, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"commits": commits, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
