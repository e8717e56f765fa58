"""The client's own work per ``complete()``, counted rather than timed: Python opcodes and calls.

Timings on this VM drift by up to 2x over minutes; a count of the bytecode one call runs does
not, so it tells whether a change made the hot path lighter. The sender is in memory (no
network), the request is a plain one-message chat, and the count covers everything the call
runs in Python (json's pure-Python parts and asyncio's timer included; C code counts as the
call that enters it).

    python benchmarks/work_count.py [--top N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar

from upstream import REPLY  # benchmarks/, the script's own directory

from failover import AuthProfile, ResilientClient
from failover.providers.base import HttpRequest

MESSAGES = [{"role": "user", "content": "ping"}]
CALLS = 20


class _Reply:
    status_code = 200
    headers: ClassVar[dict[str, str]] = {"content-type": "application/json"}

    async def aread(self) -> bytes:
        return REPLY


class _Exchange:
    async def __aenter__(self) -> _Reply:
        return _Reply()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class InMemorySender:
    """Answers every request at once with the upstream's canned reply.

    ``asyncio_cancel_safe``: bound attempts by asyncio's timer, as for AiohttpSender and for
    HttpxSender on asyncio, or by anyio's cancel scope, as for a sender of your own and on
    trio.
    """

    def __init__(self, asyncio_cancel_safe: bool) -> None:
        self.asyncio_cancel_safe = asyncio_cancel_safe

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        return _Exchange()

    async def aclose(self) -> None:
        return None


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


async def count(top: int, asyncio_cancel_safe: bool) -> None:
    profile = AuthProfile("k0", "openai", "sk-bench-key-0001", base_url="http://127.0.0.1:9/v1")
    sender = InMemorySender(asyncio_cancel_safe)
    client = ResilientClient(["openai/gpt-4o-mini"], [profile], sender=sender)
    for _ in range(200):  # caches and first-use paths settle
        await client.complete(MESSAGES)
    counter = WorkCounter()
    sys.settrace(counter)
    try:
        for _ in range(CALLS):
            await client.complete(MESSAGES)
    finally:
        sys.settrace(None)
    await client.aclose()
    total = sum(counter.opcodes.values())
    bound = (
        "asyncio's timer (aiohttp, httpx)"
        if asyncio_cancel_safe
        else "anyio's scope (trio, a sender of your own)"
    )
    print(
        f"complete(), in-memory sender, attempt bounded by {bound}: "
        f"{total / CALLS:.0f} Python opcodes, {counter.calls / CALLS:.0f} function calls"
    )
    for name, opcodes in counter.opcodes.most_common(top):
        print(f"  {opcodes / CALLS:6.0f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest functions")
    top = parser.parse_args().top
    for asyncio_cancel_safe in (True, False):
        asyncio.run(count(top, asyncio_cancel_safe))


if __name__ == "__main__":
    main()
