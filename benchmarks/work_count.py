"""The client's own work per ``complete()``, counted rather than timed: Python opcodes and calls.

Timings on this VM drift by up to 2x over minutes; a count of the bytecode one call runs does
not, so it tells whether a change made the hot path lighter. The sender is in memory (no
network), the request is a plain one-message chat, and the count covers everything the call
runs in Python (json's pure-Python parts and asyncio's timer included; C code counts as the
call that enters it). Also counted: a request whose first key answers 429 and whose second
answers, the keys reset before each (so every request meets the 429).

    python benchmarks/work_count.py [--top N] [--time]

``--time`` also times a plain ``complete()`` (CPU µs; run it on two trees alternately, e.g.
with ``PYTHONPATH`` set to an older checkout, to compare them).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from upstream import LIMITED, REPLY  # benchmarks/, the script's own directory

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.providers.base import HttpRequest

MESSAGES = [{"role": "user", "content": "ping"}]
CALLS = 20


class _Reply:
    def __init__(self, status_code: int, body: bytes, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers
        self._body = body

    async def aread(self) -> bytes:
        return self._body


class _Exchange:
    def __init__(self, reply: _Reply) -> None:
        self._reply = reply

    async def __aenter__(self) -> _Reply:
        return self._reply

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_OK = _Reply(200, REPLY, {"content-type": "application/json"})
_LIMITED = _Reply(429, LIMITED, {"content-type": "application/json", "retry-after": "60"})


class InMemorySender:
    """Answers every request at once with the upstream's canned reply.

    ``asyncio_cancel_safe``: bound attempts by asyncio's timer, as for AiohttpSender and for
    HttpxSender's whole replies on asyncio, or by anyio's cancel scope, as for its streams,
    a sender of your own and on trio.
    """

    def __init__(self, asyncio_cancel_safe: bool) -> None:
        self.asyncio_cancel_safe = asyncio_cancel_safe

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        return _Exchange(_OK)

    async def aclose(self) -> None:
        return None


class LimitingSender(InMemorySender):
    """As InMemorySender, but a key containing ``limited`` gets the upstream's 429."""

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        limited = "limited" in request.headers.get("authorization", "")
        return _Exchange(_LIMITED if limited else _OK)


class WorkCounter:
    """A trace function counting opcodes and calls, per function."""

    def __init__(self) -> None:
        self.opcodes: Counter[str] = Counter()
        self.calls = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> WorkCounter:
        if event == "call":
            self.calls += 1
            frame.f_trace_opcodes = True
        elif event == "opcode":
            code = frame.f_code
            self.opcodes[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return self


def _profile(name: str, key: str, priority: int = 0) -> AuthProfile:
    return AuthProfile(name, "openai", key, base_url="http://127.0.0.1:9/v1", priority=priority)


async def count(top: int, asyncio_cancel_safe: bool, *, rotation: bool = False) -> float:
    """Print (and return) the opcodes per ``complete()``; ``rotation``: of a request whose
    first key answers 429 and whose second key answers (the keys reset before each)."""
    if rotation:
        manager = FailoverManager(
            profiles=[_profile("k0", "sk-limited-key-0001"), _profile("k1", "sk-bench-0002", 1)]
        )
    else:
        manager = FailoverManager(profiles=[_profile("k0", "sk-bench-key-0001")])
    sender = (LimitingSender if rotation else InMemorySender)(asyncio_cancel_safe)
    client = ResilientClient(["openai/gpt-4o-mini"], manager, sender=sender)
    for _ in range(200):  # caches and first-use paths settle
        if rotation:
            manager.reset_all()
        answer = await client.complete(MESSAGES)
    assert len(answer.attempts) == (2 if rotation else 1), answer.attempts
    counter = WorkCounter()
    for _ in range(CALLS):
        if rotation:
            manager.reset_all()  # outside the count
        sys.settrace(counter)
        try:
            await client.complete(MESSAGES)
        finally:
            sys.settrace(None)
    await client.aclose()
    total = sum(counter.opcodes.values()) / CALLS
    bound = (
        "asyncio's timer (aiohttp, httpx)"
        if asyncio_cancel_safe
        else "anyio's scope (httpx streams, trio, a sender of your own)"
    )
    what = "complete() past a 429 (two attempts)" if rotation else "complete()"
    print(
        f"{what}, in-memory sender, attempt bounded by {bound}: "
        f"{total:.0f} Python opcodes, {counter.calls / CALLS:.0f} function calls"
    )
    for name, opcodes in counter.opcodes.most_common(top):
        print(f"  {opcodes / CALLS:6.0f}  {name}")
    return total


async def timed(calls: int = 4000, repeats: int = 5) -> float:
    """Print (and return) the least CPU µs per plain ``complete()`` over ``repeats`` runs of
    ``calls`` (the same in-memory sender, asyncio's timer): the counts' figure in time."""
    profile = AuthProfile("k0", "openai", "sk-bench-key-0001", base_url="http://127.0.0.1:9/v1")
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], sender=InMemorySender(True))
    for _ in range(500):
        await client.complete(MESSAGES)
    best = math.inf
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            await client.complete(MESSAGES)
        best = min(best, (time.process_time() - started) / calls * 1e6)
    await client.aclose()
    print(f"complete(), in-memory sender: {best:.1f} µs of CPU (the least of {repeats} runs)")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest functions")
    parser.add_argument("--time", action="store_true", help="also time a plain complete()")
    args = parser.parse_args()
    for asyncio_cancel_safe in (True, False):
        asyncio.run(count(args.top, asyncio_cancel_safe))
    asyncio.run(count(args.top, True, rotation=True))
    if args.time:
        asyncio.run(timed())


if __name__ == "__main__":
    main()
