"""failover beside LiteLLM's Router, interleaved in one run against one loopback upstream.

    python benchmarks/litellm_compare.py [--rounds N] [--json PATH]

Needs ``litellm`` (the ``bench`` extra: ``pip install -e '.[bench]'``); without it, says so
and exits. The upstream is benchmarks/upstream.py in its own process (OpenAI's wire, a key
containing ``limited`` answered 429 with ``retry-after: 60``). Both sides use two keys of
``gpt-4o-mini`` on that upstream, LiteLLM as a Router with one deployment per key,
failover as a ``ResilientClient`` on its default httpx sender and on ``AiohttpSender``.
Per round, in alternating order:

- sequential: the median µs of a call, the contenders taking turns call by call;
- concurrency 64: requests/s and this process's CPU µs per request, a burst each;
- through a 429: the first key answers 429; the median µs of a request that meets it and
  goes on to the second key, every request meeting it (see :func:`through_429`).

It prints each figure's median over rounds, and failover's speed-up over LiteLLM (the
median of per-round ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from load import drive  # benchmarks/, the script's own directory
from upstream import running

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.aiohttp_sender import AiohttpSender

MESSAGES = [{"role": "user", "content": "ping"}]
HEALTHY, LIMITED = "sk-bench-key-0001", "sk-limited-key-0002"
Call = Callable[[], Awaitable[Any]]


def router(base: str, keys: list[str], **settings: Any) -> Any:
    """LiteLLM's Router over one deployment per key, tried in the keys' order."""
    from litellm import Router

    return Router(
        model_list=[
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": key,
                    "api_base": base,
                    "order": number,
                },
            }
            for number, key in enumerate(keys, start=1)
        ],
        **settings,
    )


def client(base: str, keys: list[str], *, sender: AiohttpSender | None = None) -> ResilientClient:
    """failover over the same keys, the first one first."""
    manager = FailoverManager(
        profiles=[
            AuthProfile(f"k{i}", "openai", key, base_url=base, priority=i)
            for i, key in enumerate(keys)
        ]
    )
    return ResilientClient(["openai/gpt-4o-mini"], manager, sender=sender)


async def sequential(calls: dict[str, Call], n: int) -> dict[str, float]:
    """Median µs per call, the contenders taking turns call by call."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            start = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(each) * 1e6 for name, each in times.items()}


async def burst(call: Call, total: int) -> tuple[float, float]:
    """Requests/s and CPU µs per request of ``total`` calls at concurrency 64."""
    wall, cpu = time.perf_counter(), time.process_time()
    await drive(call, total, 64)
    return total / (time.perf_counter() - wall), (time.process_time() - cpu) / total * 1e6


async def through_429(base: str, n: int) -> dict[str, float]:
    """Median µs of a request whose first key answers 429, which every request meets.

    failover: its keys reset before each request (no cooldown skips the 429 key). The
    Router: cooldowns off (each request tries the 429 deployment first, by its ``order``)
    and its own retries off (with them, it retries the 429 deployment before moving on).
    """
    ours = client(base, [LIMITED, HEALTHY])
    theirs = router(base, [LIMITED, HEALTHY], disable_cooldowns=True, num_retries=0)
    calls: dict[str, Call] = {
        "failover (httpx)": lambda: ours.complete(MESSAGES),
        "LiteLLM Router": lambda: theirs.acompletion(model="gpt-4o-mini", messages=MESSAGES),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for number in range(n + 3):  # the first three warm both
        for name, call in calls.items():
            ours.manager.reset_all()
            start = time.perf_counter()
            await call()
            if number >= 3:
                times[name].append(time.perf_counter() - start)
    await ours.aclose()
    return {name: statistics.median(each) * 1e6 for name, each in times.items()}


async def one_round(base: str, number: int, quick: bool) -> dict[str, dict[str, float]]:
    """Every figure of one round, the contenders' order reversed on odd rounds."""
    theirs = router(base, [HEALTHY, "sk-bench-key-0003"], routing_strategy="simple-shuffle")
    ours = client(base, [HEALTHY, "sk-bench-key-0003"])
    ours_fast_sender = AiohttpSender()
    ours_fast = client(base, [HEALTHY, "sk-bench-key-0003"], sender=ours_fast_sender)
    calls: dict[str, Call] = {
        "LiteLLM Router": lambda: theirs.acompletion(model="gpt-4o-mini", messages=MESSAGES),
        "failover (httpx)": lambda: ours.complete(MESSAGES),
        "failover (AiohttpSender)": lambda: ours_fast.complete(MESSAGES),
    }
    if number % 2:
        calls = dict(reversed(list(calls.items())))
    for call in calls.values():  # warm: pools, caches, LiteLLM's first-call work
        for _ in range(20):
            await call()
    rows: dict[str, dict[str, float]] = {name: {} for name in calls}
    for name, median in (await sequential(calls, 40 if quick else 150)).items():
        rows[name]["sequential_us"] = median
    for name, call in calls.items():
        total = 200 if quick else (1500 if "Aiohttp" in name else 500)
        rows[name]["rps_c64"], rows[name]["cpu_us_c64"] = await burst(call, total)
    for name, median in (await through_429(base, 10 if quick else 40)).items():
        rows[name]["through_429_us"] = median
    await ours.aclose()
    await ours_fast.aclose()
    await ours_fast_sender.aclose()  # given to the client: ours to close
    return rows


def report(rounds: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Medians over rounds, and failover's speed-up over LiteLLM per figure."""
    names = list(rounds[0])
    figures = ("sequential_us", "rps_c64", "cpu_us_c64", "through_429_us")
    medians = {
        name: {
            key: statistics.median(r[name][key] for r in rounds)
            for key in figures
            if key in rounds[0][name]
        }
        for name in names
    }
    print("\nfailover beside LiteLLM's Router (loopback, median over rounds)")
    print(
        f"{'':28} {'sequential µs':>14} {'req/s @64':>10} {'CPU µs/req @64':>15}"
        f" {'via a 429 µs':>13}"
    )
    for name in sorted(names):
        row = medians[name]
        via = f"{row['through_429_us']:13.0f}" if "through_429_us" in row else f"{'':>13}"
        print(
            f"{name:28} {row['sequential_us']:14.0f} {row['rps_c64']:10.0f} "
            f"{row['cpu_us_c64']:15.0f} {via}"
        )
    speedups: dict[str, dict[str, float]] = {}
    for ours in ("failover (httpx)", "failover (AiohttpSender)"):
        per_round = {
            key: statistics.median(
                (r[ours][key] / r["LiteLLM Router"][key])
                if key == "rps_c64"
                else (r["LiteLLM Router"][key] / r[ours][key])
                for r in rounds
            )
            for key in figures
            if key in rounds[0][ours]
        }
        speedups[ours] = per_round
        print(
            f"{ours} over LiteLLM: "
            + ", ".join(f"{key} {value:.1f}x" for key, value in per_round.items())
        )
    return {"medians": medians, "speedups": speedups, "rounds": rounds}


async def measure(base: str, rounds: int, quick: bool) -> dict[str, Any]:
    """All rounds, then the report."""
    collected = []
    for number in range(rounds):
        collected.append(await one_round(base, number, quick))
        print(f"round {number + 1}/{rounds} done", file=sys.stderr)
    return report(collected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="a short check (~30 s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    try:
        import litellm
    except ImportError:
        print("litellm is not installed (pip install -e '.[bench]'): skipped")
        return
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    with running() as base:
        figures = asyncio.run(measure(base, args.rounds, args.quick))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
