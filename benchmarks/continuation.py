"""Benchmark rows for issue 21's streams that continue (``on_stream_break="continue"``).

1. 1,000 client streams of a 40-word scripted answer, each cut at a random chunk (1-39)
   by a random break (truncated body, connection reset, idle read timeout, in-band error
   event), continued by the next model: the share that completed, characters duplicated
   or lost against the scripted text, and the time from the last chunk before the break
   to the continuation's first (in process: what failover itself adds).
2. 200 ``openai`` SDK streams through ``ResilientTransport(on_stream_break="continue")``
   cut the same way and continued by Claude, spliced into the SDK's own stream: the share
   the SDK read whole without raising, and characters duplicated or lost.
3. CPU per stream that never breaks, ``"raise"`` vs ``"continue"`` (a stream that does
   not break must not pay for continuation), in short runs alternating.

Every answer is the scripted provider's (``failover.testing.ScriptedProvider``, each
wire's own format), read over httpx with a mock transport that breaks the body: no
network, no keys. On its own::

    .venv/bin/python benchmarks/continuation.py

``CONTINUATION_STREAMS`` (default 1000) sets row 1's count, row 2 takes a fifth of it.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from failover import AuthProfile, ResilientClient, ResilientTransport, policy
from failover.http import library_of
from failover.testing import ScriptedProvider
from failover.testing.wire import stream_error

WORDS = [f"w{i}" for i in range(40)]
FULL = " ".join(WORDS)
ASK = [{"role": "user", "content": "count"}]
BREAKS = ("truncate", "reset", "idle", "error_event")


class Breaking:
    """An httpx/httpx2 transport answering from a ScriptedProvider, breaking the first
    stream after ``after`` text chunks as ``kind`` says."""

    def __init__(self, scripted: ScriptedProvider, kind: str, after: int) -> None:
        self.scripted, self.kind, self.after = scripted, kind, after

    async def handle_async_request(self, request: Any) -> Any:
        library = library_of(request)
        body = await request.aread()
        answer = self.scripted.answer(request.method, str(request.url), request.headers, body)
        chunks, kind = list(answer.chunks), None
        call = self.scripted.calls[-1]
        if call.stream and answer.status == 200 and self.kind:
            kind, self.kind = self.kind, ""
            chunks = chunks[: (3 if call.wire == "anthropic" else 0) + self.after]
            if kind == "error_event":
                name, data = stream_error(call.wire)
                chunks.append(((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode())

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            if kind == "reset":
                raise library.ReadError("connection reset", request=request)
            if kind == "idle":
                raise library.ReadTimeout("idle", request=request)

        return library.Response(
            answer.status, headers=answer.headers, content=stream(), request=request
        )

    async def aclose(self) -> None:
        return None


def _scripted(cut: int, first: str, second: str) -> ScriptedProvider:
    scripted = ScriptedProvider()
    scripted.on(model=first).ok(FULL)
    scripted.on(model=second).ok(" " + " ".join(WORDS[cut:]))
    return scripted


def _wrong(text: str) -> int:
    """Characters duplicated or lost against FULL."""
    return abs(len(text) - len(FULL)) + sum(a != b for a, b in zip(text, FULL, strict=False))


async def client_streams(n: int, rng: random.Random) -> None:
    complete = wrong = 0
    gaps: list[float] = []
    profiles = [AuthProfile("anthropic", "anthropic", "sk-ant-bench-key-0001")]
    for _ in range(n):
        cut = rng.randint(1, len(WORDS) - 1)
        scripted = _scripted(cut, "claude-haiku-4-5", "claude-sonnet-4-5")
        breaking = Breaking(scripted, rng.choice(BREAKS), cut)
        http = httpx.AsyncClient(transport=httpx.MockTransport(breaking.handle_async_request))
        client = ResilientClient(
            ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"],
            profiles,
            http_client=http,
            on_stream_break="continue",
            telemetry=False,
        )
        texts, stamps = [], []
        async with client.stream(ASK) as stream:
            async for chunk in stream:
                texts.append(chunk.text)
                stamps.append(time.perf_counter())
        await client.aclose()
        await http.aclose()
        text = "".join(texts)
        complete += text == FULL and stream.finish_reason == "stop"
        wrong += _wrong(text)
        gaps.append(stamps[cut] - stamps[cut - 1])
    gaps.sort()
    print(f"1. client: {n} streams cut at a random chunk, on_stream_break='continue'")
    print(f"   complete: {complete / n:.1%}; characters duplicated or lost: {wrong}")
    print(
        f"   time to the continuation's first chunk: p50 {statistics.median(gaps) * 1e3:.2f} ms,"
        f" p99 {gaps[min(n - 1, int(0.99 * n))] * 1e3:.2f} ms (in process)"
    )


async def sdk_streams(n: int, rng: random.Random) -> None:
    import httpx2
    import openai

    complete = wrong = 0
    profiles = [
        AuthProfile("openai", "openai", "sk-openai-bench-key-0001"),
        AuthProfile("anthropic", "anthropic", "sk-ant-bench-key-0001"),
    ]
    for _ in range(n):
        cut = rng.randint(1, len(WORDS) - 1)
        scripted = _scripted(cut, "gpt-4o-mini", "claude-haiku-4-5")
        transport = ResilientTransport(
            profiles,
            provider="openai",
            inner=Breaking(scripted, rng.choice(BREAKS), cut),  # type: ignore[arg-type]
            fallback_models=["anthropic/claude-haiku-4-5"],
            on_stream_break="continue",
            telemetry=False,
        )
        async with httpx2.AsyncClient(transport=transport) as http:
            sdk = openai.AsyncOpenAI(api_key="sdk-key", max_retries=0, http_client=http)
            try:
                stream = await sdk.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=ASK,  # type: ignore[arg-type]
                    stream=True,
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
            except openai.APIError:
                text = ""
        await transport.aclose()
        complete += text == FULL
        wrong += _wrong(text) if text else 0
    print(f"2. openai SDK through ResilientTransport: {n} streams cut, continued by Claude")
    print(
        f"   read whole without an error: {complete / n:.1%}; characters duplicated or lost:"
        f" {wrong}"
    )


async def success_cost(rounds: int = 10, per_round: int = 200) -> None:
    scripted = ScriptedProvider(text=FULL)
    profiles = [AuthProfile("anthropic", "anthropic", "sk-ant-bench-key-0001")]
    client = ResilientClient(
        ["anthropic/claude-haiku-4-5"], profiles, sender=scripted.sender(), telemetry=False
    )
    runs: dict[str, list[float]] = {"raise": [], "continue": []}
    for _ in range(rounds):
        for mode in runs:
            scripted.calls.clear()
            start = time.process_time()
            for _ in range(per_round):
                async for _chunk in client.stream(ASK, on_stream_break=mode):  # type: ignore[arg-type]
                    pass
            runs[mode].append((time.process_time() - start) / per_round * 1e6)
    await client.aclose()
    shown = ", ".join(f"{mode} {statistics.median(xs):.0f}" for mode, xs in runs.items())
    print(f"3. CPU per 40-chunk stream that never breaks (median of {rounds} runs, us): {shown}")


async def main() -> None:
    policy.set_testing(True)
    n = int(os.environ.get("CONTINUATION_STREAMS", "1000"))
    rng = random.Random(21)
    await client_streams(n, rng)
    await sdk_streams(max(1, n // 5), rng)
    await success_cost()


if __name__ == "__main__":
    asyncio.run(main())
