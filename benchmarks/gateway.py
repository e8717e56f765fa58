"""``make bench``: what the SDK transport's gateway costs (issue 19), measured on loopback.

Contenders alternate in short chunks within one run (the order reversed each round), so
the drift of this shared VM's speed hits them alike; a ratio is the median of the
per-round ratios, each between chunks run a second apart. CPU figures are this process's
``time.process_time``: the upstream (benchmarks/upstream.py, speaking OpenAI's chat and
Anthropic's Messages shapes) runs in its own process, so its CPU is not counted. Its OpenAI
replies here are the documented ones in full (its ``/full`` route: ``FULL_REPLY``,
``FULL_STREAM``): every reply and chunk with its id, object, created, model, service_tier,
system_fingerprint, each choice with its index, logprobs and finish_reason, the stream's
role chunk first; the usage with its details. They are what the SDK parses from OpenAI, and
what the transport's translated replies carry, so the SDK's own cost measured on them is
what it spends on a translated reply too; with the headers OpenAI documents on each reply
(request id, organization, project, version, rate limits), which the SDK reads and the
transport checks for keys on a same-wire reply.

1. cross-wire JSON: ``openai.AsyncOpenAI`` on ``httpx2.AsyncClient(transport=
   ResilientTransport(..., fallback_models=["anthropic/claude-haiku-4-5"]))`` answered by
   Anthropic, vs ``ResilientClient.complete`` to Anthropic directly: CPU µs per request at
   16 concurrent. The OpenAI step is skipped without a call: its only key rests (marked
   rate limited for an hour before the run; the upstream confirms it gets no request). So
   the transport decodes the SDK's request, sends it to Anthropic and encodes the reply
   back as a ``chat.completion``: translation and nothing of a failed attempt's round trip
   (benchmarks/run.py measures that). The skip itself costs a key lookup and an event:
   "ResilientClient, same resting step" pays it too, for comparison.
   The openai SDK's own cost per call is printed, and the ratio with and without it: the
   SDK on a bare httpx2 client against the upstream's OpenAI replies, minus the exchange
   beneath that client (the very request it sends, recorded once with its headers and
   extensions, its timeouts, sent on its transport itself; the reply's bytes read raw).
   The SDK's client and its layers (auth, redirects, cookies, hooks) are the SDK's own:
   it runs them on the transport as on a bare client, so they are taken off with it;
   and so is its reading of the reply (its JSON decoded, its objects built), which it
   does on a translated reply as on OpenAI's. What is left is the transport's whole work,
   its own exchange included, as ResilientClient's is. (A bare ``client.post`` runs the
   client's layers too: taken off instead, they would be charged to the transport; and
   an exchange that decoded the reply's JSON, as this one did until issue 19's fifth
   round, charged the SDK's own decoding to the transport too.)
2. translated stream (20 text deltas): wall time to the first text chunk, CPU to it, and
   CPU per later chunk, of the openai SDK streaming from Anthropic through the transport
   vs ``ResilientClient.stream`` to Anthropic; streams one at a time. The SDK's own share
   is measured as in 1 (the SDK streaming the upstream's OpenAI chunks minus the bare
   exchange beneath its client, its bytes read raw as they come: the SDK's own lines and
   JSON stay the SDK's): on chunks of the shape the transport hands it, field for field.
3. same-wire: the openai SDK through the transport (OpenAI serving) vs the same SDK on a
   bare ``httpx2.AsyncClient``, each on an ``httpx2.AsyncHTTPTransport()`` (the same,
   default, limits).
4. the transport's own work, without a network: the same contenders over an in-memory
   inner transport answering canned replies (``Canned``), one call at a time. What the
   transport adds is then a difference between two rows of one run, free of loopback's
   noise: the figure to watch when optimising failover/transport*.py and
   failover/gateway/.

Where the time goes (``benchmarks/transport_work_count.py`` counts it in opcodes, free of
this VM's drift). The openai SDK alone runs ~47,700 Python opcodes a chat call on OpenAI's
full reply and headers, and ~204,800 a stream of 20 deltas on its full chunks; the
transport adds ~4,150 to a same-wire call (its own ~3,100, of which ~1,300 the SDK then
spares: the reply's body read once, by the transport; the per-request cancel scope that
lets ``aclose()`` end it, ~450; headers read and written through httpx's own list; the
engine's ~2,250: ~400 the rate-limit headers read, ~200 the check that no header of the
reply shows a key, ~4,700 before its fast paths), ~5,700 to a same-wire stream (~12,450
before the guard stopped reading every event after OpenAI's ``"refusal":null`` opening
chunk, and the key check's fast paths), and ~4,750 to a cross-wire
call, less than the ~7,400-8,600 of a whole ``ResilientClient`` call (that count moves by
~1,200 between runs). A translated stream adds ~15,700 (~7,250 to its first chunk), less
than a whole ``ResilientClient.stream`` (~19,500; ~9,100 to its first chunk). Per opcode
the transport's code is dearer than the SDK's in CPU time (it runs once a request,
cache-cold, and calls into C more), so the CPU ratios stay above the opcode ones. OpenAI's
chunks in full cost the SDK ~27,000 opcodes a stream more than chunks carrying
``choices`` alone (benchmarks/upstream.py's lean ``STREAM``; ~7,000 for service_tier,
system_fingerprint and logprobs alone): measured on those, "the SDK's own share"
understated what the SDK spends on a translated stream, and charged the rest to the
transport. (Chunks the transport reads together reach the SDK in one piece.) "CPU per
later chunk, the SDK's own share taken off" is a small difference of two large figures
(the SDK spends ~190 µs a chunk, ResilientClient ~20): its quartiles are wide, read it
with the opcode counts.

``failover.testing.Simulator`` is not the upstream: it runs on this process's event loop,
so its work would be counted with the clients' (measured interleaved, it added ~500 µs of
CPU to each ResilientClient request on httpx2, ~40% of the request's own).

    python benchmarks/gateway.py        # ~35 s; GATEWAY_ROUNDS=N for more rounds
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
from load import drive  # benchmarks/, the script's own directory
from upstream import (
    ANTHROPIC_REPLY,
    ANTHROPIC_STREAM,
    FULL,
    FULL_HEADERS,
    FULL_REPLY,
    FULL_STREAM,
    running,
)

from failover import AuthProfile, FailoverManager, ResilientClient, ResilientTransport
from failover.http import HttpxSender

MESSAGES: Any = [{"role": "user", "content": "ping"}]
GPT, CLAUDE = "gpt-4o-mini", "claude-haiku-4-5"
OPENAI_KEY, RESTING_KEY, ANTHROPIC_KEY = "sk-bench-openai-01", "sk-bench-resting-02", "sk-ant-b-03"
ROUNDS = int(os.environ.get("GATEWAY_ROUNDS", "20"))
CALLS = int(os.environ.get("GATEWAY_CALLS", "60"))  # per contender per chunk, 16 concurrent
STREAMS = int(os.environ.get("GATEWAY_STREAMS", "12"))  # per contender per chunk, one at a time
MEMORY_ROUNDS = int(os.environ.get("GATEWAY_MEMORY_ROUNDS", "12"))
WIDTH = 16
DELTAS = 20  # text deltas per stream (benchmarks/upstream.py)
TARGETS = {"cross": 1.10, "stream": 1.10, "same": 1.05}
_TEXT_DELTA = re.compile(rb'"content": ?"[^"]')  # a chunk's delta with text, in raw bytes

Call = Callable[[], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]
Made = tuple[Call, Close]


class Canned(httpx2.AsyncBaseTransport):
    """An in-memory upstream: the replies of benchmarks/upstream.py (OpenAI's in full, with
    their headers, as under its ``/full`` route), no socket."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        streamed = b'"stream": true' in body or b'"stream":true' in body
        kind = "text/event-stream" if streamed else "application/json"
        if request.url.path.endswith("/messages"):
            data, more = ANTHROPIC_STREAM if streamed else ANTHROPIC_REPLY, []
        else:
            data, more = FULL_STREAM if streamed else FULL_REPLY, _FULL_HEADERS
        headers = [("content-type", kind), ("content-length", str(len(data))), *more]
        return httpx2.Response(200, headers=headers, stream=_Body(data))


_FULL_HEADERS = [
    (name.decode(), value.decode())
    for name, _, value in (line.partition(b": ") for line in FULL_HEADERS.split(b"\r\n") if line)
]


class _Body(httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data


class Contenders:
    """The clients compared; each method returns ``(call, close)``.

    ``inner`` makes each client's transport: ``httpx2.AsyncHTTPTransport`` (the default
    limits) over loopback, or :class:`Canned`. A stream's call returns its wall time to
    the first text chunk, its CPU time to it, and its CPU time in all.
    """

    def __init__(self, root: str, inner: Callable[[], httpx2.AsyncBaseTransport]) -> None:
        self.root = root  # http://127.0.0.1:PORT (Anthropic's base URL)
        self.openai_base = f"{root}{FULL}/v1"  # OpenAI's replies in full
        self.inner = inner
        self.sdk_requests: list[httpx2.Request] = []  # see record_sdk_requests

    def _sdk(self, transport: Any) -> tuple[openai.AsyncOpenAI, Close]:
        http = httpx2.AsyncClient(transport=transport)
        sdk = openai.AsyncOpenAI(
            api_key=OPENAI_KEY, base_url=self.openai_base, max_retries=0, http_client=http
        )

        async def close() -> None:
            await sdk.close()
            await http.aclose()

        return sdk, close

    def resting_manager(self) -> FailoverManager:
        """An OpenAI key resting for an hour (never called) and a healthy Anthropic key."""
        manager = FailoverManager(
            profiles=[
                AuthProfile("oa", "openai", RESTING_KEY, base_url=self.openai_base),
                AuthProfile("an", "anthropic", ANTHROPIC_KEY, base_url=self.root),
            ]
        )
        manager.mark_failure("oa", "429", is_rate_limit=True, retry_after=3600)
        return manager

    def transport(self, *, cross: bool) -> ResilientTransport:
        if cross:
            return ResilientTransport(
                self.resting_manager(),
                provider="openai",
                fallback_models=[f"anthropic/{CLAUDE}"],
                inner=self.inner(),
            )
        profiles = [AuthProfile("oa", "openai", OPENAI_KEY, base_url=self.openai_base)]
        return ResilientTransport(profiles, provider="openai", inner=self.inner())

    def _client(self, chain: list[str], manager: Any) -> tuple[ResilientClient, Close]:
        http = httpx2.AsyncClient(transport=self.inner())
        client = ResilientClient(chain, manager, sender=HttpxSender(http))

        async def close() -> None:
            await client.aclose()
            await http.aclose()

        return client, close

    def _anthropic_client(self) -> tuple[ResilientClient, Close]:
        profiles = [AuthProfile("an", "anthropic", ANTHROPIC_KEY, base_url=self.root)]
        return self._client([f"anthropic/{CLAUDE}"], profiles)

    # -- whole replies -----------------------------------------------------------------

    def _sdk_call(self, transport: Any) -> Made:
        sdk, close = self._sdk(transport)
        return lambda: sdk.chat.completions.create(model=GPT, messages=MESSAGES), close

    def sdk_bare(self) -> Made:
        return self._sdk_call(self.inner())

    def sdk_same_wire(self) -> Made:
        return self._sdk_call(self.transport(cross=False))

    def sdk_cross_wire(self) -> Made:
        return self._sdk_call(self.transport(cross=True))

    def client_direct(self) -> Made:
        client, close = self._anthropic_client()
        return lambda: client.complete(MESSAGES), close

    def client_resting_step(self) -> Made:
        chain = [f"openai/{GPT}", f"anthropic/{CLAUDE}"]
        client, close = self._client(chain, self.resting_manager())
        return lambda: client.complete(MESSAGES), close

    async def record_sdk_requests(self) -> None:
        """Record the two requests the SDK's client sends (a whole reply's, a stream's),
        which the bare exchanges then send as they are: the same body, headers and
        extensions (the timeouts the client sets, which the transport's own exchange
        forwards)."""
        seen: list[httpx2.Request] = []

        class Recording(Canned):
            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                seen.append(request)
                return await super().handle_async_request(request)

        sdk, close = self._sdk(Recording())
        await sdk.chat.completions.create(model=GPT, messages=MESSAGES)
        async for _ in await sdk.chat.completions.create(model=GPT, messages=MESSAGES, stream=True):
            pass
        await close()
        self.sdk_requests = seen

    def _sdk_exchange(self, inner: httpx2.AsyncBaseTransport, stream: bool) -> Any:
        """The SDK's recorded request (see :meth:`record_sdk_requests`) sent on ``inner``
        itself, beneath any client: its reply (its ``request`` set)."""
        sent = self.sdk_requests[1 if stream else 0]

        async def exchange() -> httpx2.Response:
            request = httpx2.Request(
                "POST",
                sent.url,
                content=sent.content,
                headers=sent.headers,
                extensions=sent.extensions,
            )
            reply = await inner.handle_async_request(request)
            reply.request = request
            return reply

        return exchange

    def exchange_raw(self) -> Made:
        """The exchange beneath the SDK's client, and nothing above it: its request sent on
        the inner transport itself, the reply's bytes read as they come (their JSON is the
        SDK's to decode, as it decodes a translated reply's: its own cost)."""
        return self._exchange_read(decoded=False)

    def exchange_bare(self) -> Made:
        """:meth:`exchange_raw`, the reply's JSON decoded too: what a bare client does."""
        return self._exchange_read(decoded=True)

    def _exchange_read(self, *, decoded: bool) -> Made:
        inner = self.inner()
        exchange = self._sdk_exchange(inner, stream=False)

        async def call() -> Any:
            reply = await exchange()
            try:
                body = await reply.aread()
                return json.loads(body) if decoded else body
            finally:
                await reply.aclose()

        return call, inner.aclose

    # -- streams -------------------------------------------------------------------------

    def _sdk_stream(self, transport: Any) -> Made:
        sdk, close = self._sdk(transport)

        async def call() -> tuple[float, float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            first: tuple[float, float] | None = None
            texts = 0
            stream = await sdk.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    texts += 1
                    if first is None:
                        first = time.perf_counter() - wall, time.process_time() - cpu
            assert texts == DELTAS, texts
            assert first is not None
            return (*first, time.process_time() - cpu)

        return call, close

    def stream_sdk_bare(self) -> Made:
        return self._sdk_stream(self.inner())

    def stream_sdk_cross_wire(self) -> Made:
        return self._sdk_stream(self.transport(cross=True))

    def stream_client(self) -> Made:
        client, close = self._anthropic_client()

        async def call() -> tuple[float, float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            first: tuple[float, float] | None = None
            texts = 0
            async for chunk in client.stream(MESSAGES):
                if chunk.text:
                    texts += 1
                    if first is None:
                        first = time.perf_counter() - wall, time.process_time() - cpu
            assert texts == DELTAS, texts
            assert first is not None
            return (*first, time.process_time() - cpu)

        return call, close

    def stream_exchange_raw(self) -> Made:
        """The stream beneath the SDK's client, and nothing above it (as
        :meth:`exchange_raw`): the reply's bytes as they come; the first chunk is the first
        piece carrying a delta's text (its lines and JSON are the SDK's to read)."""
        inner = self.inner()
        exchange = self._sdk_exchange(inner, stream=True)

        async def call() -> tuple[float, float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            first: tuple[float, float] | None = None
            reply = await exchange()
            try:
                async for piece in reply.aiter_raw():
                    if first is None and _TEXT_DELTA.search(piece):
                        first = time.perf_counter() - wall, time.process_time() - cpu
            finally:
                await reply.aclose()
            assert first is not None
            return (*first, time.process_time() - cpu)

        return call, inner.aclose


# -- measuring ---------------------------------------------------------------------------


def _orders(names: list[str], rounds: int) -> list[list[str]]:
    return [names if number % 2 == 0 else names[::-1] for number in range(rounds)]


async def cpu_chunks(made: dict[str, Made], per_chunk: int, width: int) -> dict[str, list[float]]:
    """CPU µs per call of each contender, one figure per chunk, chunks alternating."""
    samples: dict[str, list[float]] = {name: [] for name in made}
    for call, _ in made.values():  # warm: connections, caches
        await drive(call, per_chunk // 2, width)
    for names in _orders(list(made), ROUNDS):
        for name in names:
            start = time.process_time()
            await drive(made[name][0], per_chunk, width)
            samples[name].append((time.process_time() - start) / per_chunk * 1e6)
    return samples


async def stream_chunks(
    made: dict[str, Made], per_chunk: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Per contender and chunk, the medians over its streams (µs): ``first`` (wall time
    to the first text chunk), ``cpu_first`` (CPU to it), ``cpu_chunk`` (CPU per later chunk)
    and ``cpu_stream`` (CPU in all)."""
    keys = ("first", "cpu_first", "cpu_chunk", "cpu_stream")
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in keys} for n in made}
    for call, _ in made.values():
        for _ in range(5):
            await call()
    for names in _orders(list(made), rounds):
        for name in names:
            got = [await made[name][0]() for _ in range(per_chunk)]
            row = samples[name]
            row["first"].append(statistics.median(g[0] for g in got) * 1e6)
            row["cpu_first"].append(statistics.median(g[1] for g in got) * 1e6)
            row["cpu_chunk"].append(
                statistics.median((g[2] - g[1]) / (DELTAS - 1) for g in got) * 1e6
            )
            row["cpu_stream"].append(statistics.median(g[2] for g in got) * 1e6)
    return samples


async def memory_chunks(made: dict[str, Made], per_chunk: int) -> dict[str, list[float]]:
    """CPU µs per call, one call at a time, chunks alternating (in-memory contenders)."""
    samples: dict[str, list[float]] = {name: [] for name in made}
    for call, _ in made.values():
        for _ in range(20):
            await call()
    for names in _orders(list(made), MEMORY_ROUNDS):
        for name in names:
            call = made[name][0]
            start = time.process_time()
            for _ in range(per_chunk):
                await call()
            samples[name].append((time.process_time() - start) / per_chunk * 1e6)
    return samples


async def upstream_count(root: str, key: str) -> int:
    async with httpx2.AsyncClient() as http:
        return int((await http.get(f"{root}/count?key={key}")).text)


async def check_served(made: Contenders) -> None:
    """The cross-wire calls are Anthropic's replies, translated for the openai SDK."""
    sdk, close = made._sdk(made.transport(cross=True))
    raw = await sdk.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    assert raw.headers["x-failover-provider"] == "anthropic", raw.headers
    assert raw.parse().choices[0].message.content == "pong"
    await close()


def measured(factories: dict[str, Callable[[], Made]]) -> dict[str, Made]:
    return {name: factory() for name, factory in factories.items()}


async def closed(made: dict[str, Made]) -> None:
    for _, close in made.values():
        await close()


# -- printing ----------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4)
    return low, statistics.median(values), high


def minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def over(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def cell(values: list[float]) -> str:
    low, mid, high = quartiles(values)
    return f"{mid:>8.0f} [{low:.0f}-{high:.0f}]".ljust(21)


def row(name: str, values: list[float]) -> None:
    low, mid, high = quartiles(values)
    print(f"   {name:58} {mid:7.0f}   [{low:.0f}-{high:.0f}]")


def ratio_row(name: str, values: list[float], target: float | None = None) -> None:
    low, mid, high = quartiles(values)
    verdict = ""
    if target is not None:
        verdict = f"   target ≤ {target:.2f}x: " + ("met" if mid <= target else "MISSED")
    print(f"   {name:58} {mid:6.2f}x  [{low:.2f}-{high:.2f}]{verdict}")


async def measure(root: str) -> None:
    network = Contenders(root, httpx2.AsyncHTTPTransport)
    await network.record_sdk_requests()
    await check_served(network)
    resting_before = await upstream_count(root, RESTING_KEY)
    began = time.perf_counter()
    made = measured(
        {
            "openai SDK, bare httpx2 (OpenAI)": network.sdk_bare,
            "openai SDK, transport, same-wire (OpenAI)": network.sdk_same_wire,
            "openai SDK, transport, cross-wire (Anthropic)": network.sdk_cross_wire,
            "ResilientClient.complete, Anthropic": network.client_direct,
            "ResilientClient, same resting OpenAI step, Anthropic": network.client_resting_step,
            "bare exchange on the inner transport, raw (OpenAI)": network.exchange_raw,
        }
    )
    calls = await cpu_chunks(made, CALLS, WIDTH)
    await closed(made)
    calls_seconds = time.perf_counter() - began

    began = time.perf_counter()
    made = measured(
        {
            "openai SDK, bare httpx2 (OpenAI)": network.stream_sdk_bare,
            "openai SDK, transport, cross-wire (Anthropic)": network.stream_sdk_cross_wire,
            "ResilientClient.stream, Anthropic": network.stream_client,
            "bare exchange on the inner transport, raw (OpenAI)": network.stream_exchange_raw,
        }
    )
    streams = await stream_chunks(made, STREAMS, ROUNDS)
    await closed(made)
    streams_seconds = time.perf_counter() - began
    resting_calls = await upstream_count(root, RESTING_KEY) - resting_before

    began = time.perf_counter()
    memory = Contenders(root, Canned)
    await memory.record_sdk_requests()
    made = measured(
        {
            "a bare exchange alone (+ json.loads)": memory.exchange_bare,
            "openai SDK alone": memory.sdk_bare,
            "openai SDK + transport, same-wire": memory.sdk_same_wire,
            "openai SDK + transport, cross-wire": memory.sdk_cross_wire,
            "ResilientClient.complete (Anthropic)": memory.client_direct,
        }
    )
    whole = await memory_chunks(made, 60)
    await closed(made)
    made = measured(
        {
            "openai SDK alone, a whole stream": memory.stream_sdk_bare,
            "openai SDK + transport, cross-wire, a whole stream": memory.stream_sdk_cross_wire,
            "ResilientClient.stream (Anthropic), a whole stream": memory.stream_client,
        }
    )
    streamed = await stream_chunks(made, 20, MEMORY_ROUNDS)
    await closed(made)
    memory_seconds = time.perf_counter() - began

    resting = {"requests that reached the resting OpenAI key": resting_calls}
    seconds = (calls_seconds, streams_seconds, memory_seconds)
    report(calls, streams, whole, streamed, resting, seconds)


def report(
    calls: dict[str, list[float]],
    streams: dict[str, dict[str, list[float]]],
    whole: dict[str, list[float]],
    streamed: dict[str, dict[str, list[float]]],
    notes: dict[str, int],
    seconds: tuple[float, float, float],
) -> None:
    """Print the tables: medians over chunks [quartiles], and the ratios vs their targets."""
    print(
        f"\nfailover gateway benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} cores):"
        f" {ROUNDS} rounds of alternating chunks;\nmedian over chunks [quartiles]; a ratio is "
        "the median of its per-round ratios [quartiles]"
    )
    print(
        f"\n1./3. whole replies over loopback: CPU µs per request, {CALLS} per chunk at "
        f"{WIDTH} concurrent ({seconds[0]:.0f} s)"
    )
    for name, values in calls.items():
        row(name, values)
    sdk_bare, same, cross, direct, resting, exchange = calls.values()
    sdk_cost = minus(sdk_bare, exchange)
    row("the openai SDK's own cost, its client's too (SDK - raw exchange)", sdk_cost)
    for name, count in notes.items():
        print(f"   {name}: {count}")
    ratio_row(
        "1. cross-wire: SDK via transport / ResilientClient", over(cross, direct), TARGETS["cross"]
    )
    ratio_row(
        "   the same, the SDK's own cost taken off",
        over(minus(cross, sdk_cost), direct),
        TARGETS["cross"],
    )
    ratio_row("   (ResilientClient with the resting step / without)", over(resting, direct))
    ratio_row(
        "3. same-wire: SDK via transport / SDK on bare httpx2",
        over(same, sdk_bare),
        TARGETS["same"],
    )

    print(
        f"\n2. streams of {DELTAS} text deltas over loopback, one at a time, {STREAMS} per "
        f"chunk ({seconds[1]:.0f} s)"
    )
    keys = ("first", "cpu_first", "cpu_chunk")
    heads = ("to 1st chunk, wall", "CPU to 1st chunk", "CPU per later chunk")
    print((f"   {'µs':45}" + "".join(f"{head:>16}     " for head in heads)).rstrip())
    s_bare, s_cross, s_direct, s_exchange = streams.values()
    for name, got in streams.items():
        print((f"   {name:45}" + "".join(cell(got[key]) for key in keys)).rstrip())
    sdk_share = {key: minus(s_bare[key], s_exchange[key]) for key in keys}
    share = "the openai SDK's own share (SDK - raw exchange)"
    print((f"   {share:45}" + "".join(cell(sdk_share[key]) for key in keys)).rstrip())
    ratio_row(
        "2. first chunk (wall): SDK via transport / ResilientClient",
        over(s_cross["first"], s_direct["first"]),
        TARGETS["stream"],
    )
    ratio_row(
        "   the same, the SDK's own share taken off",
        over(minus(s_cross["first"], sdk_share["first"]), s_direct["first"]),
        TARGETS["stream"],
    )
    ratio_row(
        "   CPU per later chunk: SDK via transport / ResilientClient",
        over(s_cross["cpu_chunk"], s_direct["cpu_chunk"]),
        TARGETS["stream"],
    )
    ratio_row(
        "   the same, the SDK's own share taken off",
        over(minus(s_cross["cpu_chunk"], sdk_share["cpu_chunk"]), s_direct["cpu_chunk"]),
        TARGETS["stream"],
    )

    print(
        f"\n4. without a network (in-memory inner transport, canned replies): CPU µs per "
        f"call, one at a time ({seconds[2]:.0f} s)"
    )
    for name, values in whole.items():
        row(name, values)
    for name, got in streamed.items():
        row(name, got["cpu_stream"])
    raw, alone, m_same, m_cross, m_client = whole.values()
    st_alone, st_cross, st_client = (got["cpu_stream"] for got in streamed.values())
    print("   what the transport adds to an SDK call, and what ResilientClient does in all:")
    row("  transport, same-wire (SDK + transport - SDK alone)", minus(m_same, alone))
    row("  transport, cross-wire (SDK + transport - SDK alone)", minus(m_cross, alone))
    row("  ResilientClient.complete (it - a bare exchange)", minus(m_client, raw))
    row("  transport, cross-wire stream (SDK + transport - SDK alone)", minus(st_cross, st_alone))
    row("  ResilientClient.stream (all of it)", st_client)


def main() -> None:
    with running() as base:
        asyncio.run(measure(base.removesuffix("/v1")))


if __name__ == "__main__":
    main()
