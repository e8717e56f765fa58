"""What ``ResilientTransport`` adds to an SDK call, counted rather than timed: Python opcodes.

Timings on this VM drift by up to 2x over minutes; a count of the bytecode a call runs does
not, so it tells whether a change made the transport lighter. The upstream is in memory
(benchmarks/gateway.py's ``Canned``: the canned replies of benchmarks/upstream.py, OpenAI's
in their documented shapes in full, no socket), and each contender is the one
benchmarks/gateway.py times:

- the openai SDK alone, on a bare ``httpx2.AsyncClient`` (what the transport adds to);
- the SDK through ``ResilientTransport``, same-wire (OpenAI serves, bytes passed through);
- the SDK through it, cross-wire (OpenAI's only key resting, Anthropic serves, translated);
- ``ResilientClient`` to Anthropic (what a cross-wire call is measured against);

each a whole reply and a stream of 20 text deltas, one call at a time.

Each opcode is counted to the function running it, and to an *owner*: the innermost frame
on the stack in one of these parts (library code, httpx2's, anyio's, asyncio's, json's,
counts to the part that called it):

- ``transport``: failover/transport*.py and failover/gateway/ (this work's own);
- ``engine``: the rest of failover/ (the engine, plan, chat_calls, profiles, ...);
- ``providers``: the adapters;
- ``sdk``: the openai SDK (and the httpx2 client it drives);
- ``bench``: the contenders' own code and the in-memory upstream (alike for all).

What the transport adds is the difference between a row and the SDK's own. A stream's
counts are split at the first text chunk the caller gets (the time to first chunk). The
SDK alone parses OpenAI's replies as the API sends them, which is what a translated reply
hands it too (a role chunk first; every chunk with its id, object, created, model,
service_tier, system_fingerprint, logprobs and finish_reason): the SDK's own work is alike
in the rows, and their difference is the transport's. (On benchmarks/upstream.py's lean
chunks, ``choices`` alone, the SDK runs ~27,000 opcodes a stream less.)

What opcodes do not see, C work, was most of the transport's same-wire cost: counted in
machine instructions (``valgrind --tool=cachegrind --cache-sim=no`` over 100 and 400 calls,
their difference per call), the transport added ~673,000 to the SDK's ~5,216,000 a call,
with ~3,900 opcodes; ~324,000 once its reply's JSON was parsed once (the guard's parse
handed to the SDK's ``json()``), the headers' key check kept what it had seen, and bytes
were searched with ``find`` (``in`` with a bytes needle raises and clears a TypeError on
Python 3.11), for ~3,400 opcodes. A change that runs fewer opcodes may still cost more.

Nor do instructions see memory. With a last-level cache of an L2's size simulated
(``valgrind --tool=callgrind --cache-sim=yes --LL=524288,8,64``, each contender's calls
between two dumps in one process), the SDK's ~5,204,000 instructions a call miss it ~12,500
times, and the ~278,000 the transport adds miss it ~3,300 times more: 26% more misses for
5.3% more instructions. The transport's code runs once a request, through ~90 functions
the SDK's call does not run (the transport's ~40, the engine's ~35, anyio's cancel scope,
httpx's URL text), each cold: its code, constants, globals and the objects it reads are
fetched again every call. So its timed share is about twice its instruction share (1.10x
where instructions say 1.05x), and what lightens it is fewer layers, functions and objects
touched per request, more than fewer opcodes. (~261,000 instructions after this round's
cuts, the misses unchanged.)

    python benchmarks/transport_work_count.py [--top N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import openai
from gateway import (  # benchmarks/, the script's own directory
    DELTAS,
    GPT,
    MESSAGES,
    Canned,
    Contenders,
)

import failover

CALLS = 20
Stream = Callable[[Callable[[], None]], Awaitable[None]]
"""A stream read whole; it calls its argument at the first text chunk."""
PARTS = ("transport", "engine", "providers", "sdk", "bench")
_FAILOVER = str(Path(failover.__file__).parent)
_PROVIDERS = str(Path(failover.__file__).parent.parent / "providers")
_OPENAI = str(Path(openai.__file__).parent)
_BENCH = str(Path(__file__).parent)


def part_of(filename: str) -> str | None:
    """The part a source file belongs to, or ``None`` (library code: its caller's)."""
    if filename.startswith(_FAILOVER):
        rest = filename[len(_FAILOVER) + 1 :]
        if rest.startswith(("transport", "gateway")):
            return "transport"
        if rest.startswith("providers"):
            return "providers"
        return "engine"
    if filename.startswith(_PROVIDERS):
        return "providers"
    if filename.startswith(_OPENAI):
        return "sdk"
    if filename.startswith(_BENCH):
        return "bench"
    return None


class WorkCounter:
    """A trace function counting opcodes per function and per owning part."""

    def __init__(self) -> None:
        self.functions: Counter[tuple[str, str]] = Counter()  # (owner, function)
        self.parts: Counter[str] = Counter()
        self.calls = 0
        self._owners: dict[int, str] = {}  # id(frame) -> owner, set at each "call"
        self._parts: dict[str, str | None] = {}  # filename -> part
        self._names: dict[Any, str] = {}  # code -> "file:function"

    def _owner(self, frame: FrameType | None) -> str:
        if frame is None:
            return "loop"
        owner = self._owners.get(id(frame))
        if owner is None:  # a frame entered before tracing began
            owner = self._own(frame)
        return owner

    def _own(self, frame: FrameType) -> str:
        filename = frame.f_code.co_filename
        part = self._parts.get(filename, "?")
        if part == "?":
            part = self._parts[filename] = part_of(filename)
        return part if part is not None else self._owner(frame.f_back)

    def __call__(self, frame: FrameType, event: str, arg: Any) -> WorkCounter:
        if event == "call":
            self.calls += 1
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            self._owners[id(frame)] = self._own(frame)
        elif event == "opcode":
            code = frame.f_code
            name = self._names.get(code)
            if name is None:
                name = self._names[code] = f"{Path(code.co_filename).name}:{code.co_name}"
            owner = self._owners.get(id(frame)) or self._own(frame)
            self.functions[owner, name] += 1
            self.parts[owner] += 1
        return self

    def total(self) -> int:
        """Opcodes counted so far."""
        return sum(self.parts.values())


class Counted:
    """One contender's counts: a whole call, or a stream split at its first text chunk."""

    def __init__(self) -> None:
        self.whole = WorkCounter()
        self.first: Counter[str] = Counter()  # per part, up to the first text chunk

    def per_call(self, part: str | None = None) -> float:
        count = self.whole.total() if part is None else self.whole.parts[part]
        return count / CALLS

    def to_first(self) -> float:
        return sum(self.first.values()) / CALLS

    def own(self) -> float:
        """Per call, but the contenders' own code and upstream (``bench``)."""
        return self.per_call() - self.per_call("bench")

    def own_to_first(self) -> float:
        """To the first text chunk, but ``bench``."""
        return self.to_first() - self.first["bench"] / CALLS


async def count_calls(call: Callable[[], Awaitable[Any]]) -> Counted:
    """The opcodes of ``CALLS`` whole calls, after warming up."""
    for _ in range(50):
        await call()
    counted = Counted()
    sys.settrace(counted.whole)
    try:
        for _ in range(CALLS):
            await call()
    finally:
        sys.settrace(None)
    return counted


async def count_streams(stream: Stream) -> Counted:
    """The opcodes of ``CALLS`` streams; ``stream(mark)`` calls ``mark`` at its first text."""
    for _ in range(20):
        await stream(lambda: None)
    counted = Counted()
    sys.settrace(counted.whole)
    try:
        for _ in range(CALLS):
            start = Counter(counted.whole.parts)

            def mark(start: Counter[str] = start) -> None:
                now = Counter(counted.whole.parts)
                now.subtract(start)
                counted.first.update(now)

            await stream(mark)
    finally:
        sys.settrace(None)
    return counted


def sdk_stream(sdk: openai.AsyncOpenAI) -> Stream:
    async def stream(mark: Callable[[], None]) -> None:
        texts = 0
        chunks = await sdk.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                texts += 1
                if texts == 1:
                    mark()
        assert texts == DELTAS, texts

    return stream


def client_stream(client: failover.ResilientClient) -> Stream:
    async def stream(mark: Callable[[], None]) -> None:
        texts = 0
        async for chunk in client.stream(MESSAGES):
            if chunk.text:
                texts += 1
                if texts == 1:
                    mark()
        assert texts == DELTAS, texts

    return stream


async def run(top: int) -> None:
    made = Contenders("http://127.0.0.1:9", Canned)
    closes: list[Callable[[], Awaitable[None]]] = []

    def sdk(transport: Any) -> openai.AsyncOpenAI:
        client, close = made._sdk(transport)
        closes.append(close)
        return client

    def client() -> failover.ResilientClient:
        resilient, close = made._anthropic_client()
        closes.append(close)
        return resilient

    calls: dict[str, Counted] = {}
    for name, factory in {
        "openai SDK alone": made.sdk_bare,
        "SDK + transport, same-wire": made.sdk_same_wire,
        "SDK + transport, cross-wire": made.sdk_cross_wire,
        "ResilientClient.complete (Anthropic)": made.client_direct,
    }.items():
        call, close = factory()
        calls[name] = await count_calls(call)
        await close()
    streams: dict[str, Counted] = {}
    for name, contender in {
        "openai SDK alone": sdk_stream(sdk(made.inner())),
        "SDK + transport, same-wire": sdk_stream(sdk(made.transport(cross=False))),
        "SDK + transport, cross-wire": sdk_stream(sdk(made.transport(cross=True))),
        "ResilientClient.stream (Anthropic)": client_stream(client()),
    }.items():
        streams[name] = await count_streams(contender)
    for close in closes:
        await close()
    report(calls, streams, top)


def report(calls: dict[str, Counted], streams: dict[str, Counted], top: int) -> None:
    """Print the counts per part, what the transport adds, and the busiest functions."""
    head = "".join(f"{part:>10}" for part in PARTS)
    print(f"Python opcodes per call (in-memory upstream, {CALLS} calls each), by owning part")
    print(f"\nwhole replies {'':33}{'all':>8}{head}")
    for name, counted in calls.items():
        cells = "".join(f"{counted.per_call(part):10.0f}" for part in PARTS)
        print(f"  {name:44}{counted.per_call():8.0f}{cells}")
    alone = calls["openai SDK alone"].per_call()
    same = calls["SDK + transport, same-wire"].per_call()
    cross = calls["SDK + transport, cross-wire"].per_call()
    client = calls["ResilientClient.complete (Anthropic)"].per_call()
    client_own = client - calls["ResilientClient.complete (Anthropic)"].per_call("bench")
    print(f"  the transport adds, same-wire (- SDK alone)  {same - alone:8.0f}")
    print(f"  the transport adds, cross-wire (- SDK alone) {cross - alone:8.0f}")
    print(f"  ResilientClient's own (all - bench)          {client_own:8.0f}")
    print(f"  cross-wire added / ResilientClient's own     {(cross - alone) / client_own:8.2f}x")

    print(f"\nstreams of {DELTAS} text deltas{'':26}{'all':>8}{head}{'to 1st':>10}")
    for name, counted in streams.items():
        cells = "".join(f"{counted.per_call(part):10.0f}" for part in PARTS)
        print(f"  {name:44}{counted.per_call():8.0f}{cells}{counted.to_first():10.0f}")
    s_alone = streams["openai SDK alone"]
    s_client = streams["ResilientClient.stream (Anthropic)"]
    client_first = s_client.own_to_first()
    for wire in ("same", "cross"):
        s = streams[f"SDK + transport, {wire}-wire"]
        print(
            f"  the transport adds, {wire}-wire (- bench): {s.own() - s_alone.own():8.0f} a "
            f"stream, {s.own_to_first() - s_alone.own_to_first():6.0f} to the 1st chunk"
        )
    client_own = s_client.own()
    print(
        f"  ResilientClient's own (- bench): {client_own:8.0f} a stream, {client_first:6.0f} "
        "to the 1st chunk"
    )
    if not top:
        return
    for title, table in (("whole replies", calls), ("streams", streams)):
        for name, counted in table.items():
            if name.startswith("openai SDK alone"):
                continue
            busiest = [
                (count, owner, function)
                for (owner, function), count in counted.whole.functions.items()
                if owner in ("transport", "engine", "providers")
            ]
            busiest.sort(reverse=True)
            print(f"\n{title}, {name}: the {top} busiest functions run by failover's parts")
            for count, owner, function in busiest[:top]:
                print(f"  {count / CALLS:6.0f}  {owner:9}  {function}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest functions")
    asyncio.run(run(parser.parse_args().top))


if __name__ == "__main__":
    main()
