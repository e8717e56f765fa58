"""Load for the benchmarks: a number of calls made by a number of concurrent workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def drive(call: Callable[[], Awaitable[Any]], total: int, width: int = 64) -> None:
    """Make ``total`` calls of ``call`` with ``width`` concurrent workers."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(width)))
