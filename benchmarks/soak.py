"""``make soak``: a chaos soak. Every request must end in a result or a typed error.

N requests (``SOAK_REQUESTS``, default 20,000) at concurrency 64 (``SOAK_CONCURRENCY``),
half of them streamed, against the simulator running in a process of its own on
127.0.0.1 with every fault kind mixed in (rate limits, overloads, 500s, hangs, connection
resets, truncated bodies and streams, mid-stream errors, malformed replies, context limits,
content blocks; one dead key and one out-of-quota key). Three runs, each of N requests:

1. ``ResilientClient`` on ``HttpxSender`` (the default);
2. ``ResilientClient`` on ``failover.aiohttp_sender.AiohttpSender``;
3. ``ResilientTransport`` under the openai SDK, falling back to Anthropic and Gemini (the
   gateway: requests and replies translated);
4. ``ResilientTransport`` under the anthropic SDK, falling back to OpenAI and Gemini.

Each run prints: requests served (its availability, which must reach ``SOAK_MIN_SERVED``,
90 % by default), typed errors by class, other exceptions (by class),
hung requests (no end within the watchdog), streams passed truncated as success, keys
found in any output (results, exceptions and their tracebacks, events, every log record,
``status()``), connections left checked out, and RSS before and after. The bad columns
(other exceptions, hung, truncated, keys found, connections left) must all be 0, and the
availability must reach its floor.

Bounded in time: each request has a deadline (``SOAK_DEADLINE``, 10 s) and a watchdog
well above it; the whole run has ``SOAK_BUDGET`` seconds (default 900) before it stops
sending and reports what it has.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import re
import string
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from failover import (
    AuthProfile,
    ContentFilteredError,
    FailoverConfig,
    FailoverError,
    FailoverManager,
    ResilientClient,
    ResilientTransport,
)

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "20000"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "64"))
DEADLINE = float(os.environ.get("SOAK_DEADLINE", "10"))
WATCHDOG = DEADLINE * 3 + 10
BUDGET = float(os.environ.get("SOAK_BUDGET", "900"))
SEED = int(os.environ.get("SOAK_SEED", "10"))
MIN_SERVED = float(os.environ.get("SOAK_MIN_SERVED", "0.90"))
"""The share of requests that must be served. The chaos fails about a fifth of single calls
but leaves capacity (three providers, three keys each, faults that pass), so a client that
rotates, falls over and waits within the deadline serves nearly all of them; what it cannot
serve is mostly streams cut after their first chunk reached the caller (about 3 % of
requests in this mix), which no failover may replay."""

CHAOS = {
    "rate_limit": 0.04,
    "overloaded": 0.03,
    "server_error": 0.03,
    "hang": 0.004,
    "reset": 0.02,
    "truncate": 0.03,
    "midstream_error": 0.03,
    "malformed": 0.02,
    "context_limit": 0.005,
    "content_block": 0.005,
}
"""Behaviour -> probability, per request; ``invalid_key`` and ``quota`` are scripted on keys."""

CHAIN = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash-lite"]
_rng = random.Random(20261129)


def _random_key(prefix: str, size: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(_rng.choice(alphabet) for _ in range(size))


KEYS = {
    "openai": [_random_key("sk-proj-", 40) for _ in range(3)],
    "anthropic": [_random_key("sk-ant-api03-", 40) for _ in range(3)],
    "gemini": [_random_key("AIzaSy", 33) for _ in range(3)],
}
DEAD_KEY = _random_key("", 32)  # prefix-less; the simulator answers 401
SPENT_KEY = _random_key("sk-proj-", 40)  # the simulator answers out of quota
ALL_KEYS = [k for keys in KEYS.values() for k in keys] + [DEAD_KEY, SPENT_KEY]
HI = [{"role": "user", "content": "Say hi"}]
FULL_ANSWER = re.compile(r"^Simulated answer from \S+: all systems nominal\.$")

SIMULATOR = textwrap.dedent(
    """
    import asyncio, json, sys
    from failover.testing import Behavior, Simulator

    async def main():
        chaos, seed = json.loads(sys.argv[1]), int(sys.argv[2])
        dead, spent = sys.argv[3], sys.argv[4]
        async with Simulator(default=Behavior(retry_after=0.3), words_per_chunk=2) as sim:
            sim.chaos(chaos, seed=seed)
            sim.script("invalid_key", key=dead)
            sim.script("quota", key=spent)
            print(sim.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Capture(logging.Handler):
    """Keeps every log record's formatted text (traceback included), deduplicated."""

    def __init__(self, sink: set[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.add(self.format(record))
        except Exception as exc:
            self.sink.add(f"unformattable record {record.name}: {exc!r}")


@dataclass
class Tally:
    """What one run saw."""

    name: str
    served: int = 0
    typed: collections.Counter[str] = field(default_factory=collections.Counter)
    other: collections.Counter[str] = field(default_factory=collections.Counter)
    other_examples: list[str] = field(default_factory=list)
    hung: int = 0
    truncated: int = 0
    not_sent: int = 0
    outputs: set[str] = field(default_factory=set)
    tracebacks: collections.Counter[str] = field(default_factory=collections.Counter)
    keys_found: int = 0
    key_places: list[str] = field(default_factory=list)
    connections_left: int | str = 0
    rss_before: float = 0.0
    rss_after: float = 0.0
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        """Requests sent (the time budget may stop a run early)."""
        return REQUESTS - self.not_sent

    @property
    def availability(self) -> float:
        """The share of the requests sent that were served in full."""
        return self.served / self.sent if self.sent else 0.0

    @property
    def bad(self) -> int:
        """Everything that must be 0: other exceptions, hangs, truncations passed as success,
        keys found, connections left checked out (or not countable); and 1 when fewer than
        MIN_SERVED of the requests sent were served."""
        return (
            sum(self.other.values())
            + self.hung
            + self.truncated
            + self.keys_found
            + (self.connections_left if isinstance(self.connections_left, int) else 1)
            + (self.availability < MIN_SERVED)
        )

    def error(self, exc: BaseException, typed: bool) -> None:
        name = type(exc).__name__
        (self.typed if typed else self.other)[name] += 1
        if not typed and len(self.other_examples) < 5:
            self.other_examples.append("".join(traceback.format_exception(exc))[-1500:])
        self.outputs.add(str(exc))
        self.outputs.add(repr(exc))
        for attempt in getattr(exc, "attempts", ()) or ():
            self.outputs.add(repr(attempt))
            error = getattr(attempt, "error", None)
            if error is not None:
                self.outputs.add(repr(getattr(error, "code", None)))
        for attribute in ("body", "message", "code"):
            value = getattr(exc, attribute, None)
            if value is not None:
                self.outputs.add(repr(value))
        if self.tracebacks[name] < 50:  # formatting each of 20,000 would cost more than the run
            self.tracebacks[name] += 1
            self.outputs.add("".join(traceback.format_exception(exc)))


def _key_pattern() -> re.Pattern[str]:
    pieces = set()
    for key in ALL_KEYS:
        public = next(
            (len(p) for p in ("sk-ant-api03-", "sk-proj-", "AIzaSy") if key.startswith(p)), 0
        )
        pieces |= {key[i : i + 8] for i in range(len(key) - 7) if i + 8 > public}
    return re.compile("|".join(re.escape(p) for p in sorted(pieces)))


def _count_keys(tally: Tally) -> None:
    pattern = _key_pattern()
    for text in tally.outputs:
        if found := pattern.search(text):
            tally.keys_found += 1
            if len(tally.key_places) < 3:
                around = text[max(0, found.start() - 150) : found.end() + 150]
                tally.key_places.append(pattern.sub("<KEY PIECE>", around))


def _listen(target: Any, tally: Tally) -> None:
    for register in (
        target.on_failover,
        target.on_retry,
        target.on_cooldown,
        target.on_recovered,
        target.on_success,
        target.on_exhausted,
    ):
        register(lambda event: tally.outputs.add(repr(event)))


def _manager(port: int) -> FailoverManager:
    root = f"http://127.0.0.1:{port}"
    bases = {
        "openai": f"{root}/openai/v1",
        "anthropic": f"{root}/anthropic",
        "gemini": f"{root}/gemini",
    }
    profiles = [
        AuthProfile(f"{provider}-{i}", provider, key, base_url=bases[provider])
        for provider, keys in KEYS.items()
        for i, key in enumerate(keys)
    ]
    profiles.append(AuthProfile("openai-dead", "openai", DEAD_KEY, base_url=bases["openai"]))
    profiles.append(AuthProfile("openai-spent", "openai", SPENT_KEY, base_url=bases["openai"]))
    config = FailoverConfig(retry_delay=0.05, max_retry_delay=2.0, cooldown_on_error=2.0)
    return FailoverManager(config, profiles=profiles)


async def _drive(
    tally: Tally,
    one: Callable[[int], Awaitable[None]],
) -> None:
    """Run REQUESTS calls of ``one``, CONCURRENCY at a time, within the time budget."""
    started = time.monotonic()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < REQUESTS:
            if time.monotonic() - started > BUDGET:
                tally.not_sent += 1
                next_index += 1
                continue
            index = next_index
            next_index += 1
            try:
                await asyncio.wait_for(one(index), WATCHDOG)
            except asyncio.TimeoutError:
                tally.hung += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    tally.seconds = time.monotonic() - started


async def _client_run(name: str, port: int, sender: str) -> Tally:
    tally = Tally(name)
    tally.rss_before = rss_mib()
    http: httpx.AsyncClient | None = None
    aio: Any = None
    options: dict[str, Any] = {}
    if sender == "httpx":
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
        options["http_client"] = http
    else:
        from failover.aiohttp_sender import AiohttpSender

        aio = AiohttpSender()
        options["sender"] = aio
    client = ResilientClient(
        CHAIN,
        _manager(port),
        timeout=2.0,
        deadline=DEADLINE,
        stream_idle_timeout=1.0,
        **options,
    )
    _listen(client, tally)

    async def one(index: int) -> None:
        try:
            if index % 2:
                async with client.stream(HI) as stream:
                    text = "".join([chunk.text async for chunk in stream])
                tally.outputs.add(f"{stream.model} {stream.profile} {stream.attempts!r}")
            else:
                result = await client.complete(HI)
                text = result.text
                tally.outputs.add(repr(result.attempts))
        except FailoverError as exc:
            tally.error(exc, typed=True)
            return
        except Exception as exc:
            tally.error(exc, typed=False)
            return
        if FULL_ANSWER.match(text):
            tally.served += 1
        else:
            tally.truncated += 1

    await _drive(tally, one)
    tally.outputs.add(repr(client.status()))
    if http is not None:
        pool: Any = http._transport._pool  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)
        tally.connections_left = sum(
            1 for c in pool.connections if not c.is_idle() and not c.is_closed()
        ) + len(pool._requests)
    else:
        await asyncio.sleep(0.5)
        connector = aio._session.connector if aio._session is not None else None
        tally.connections_left = len(connector._acquired) if connector is not None else 0
    await client.aclose()
    if http is not None:
        await http.aclose()
    if aio is not None:
        await aio.aclose()
    tally.rss_after = rss_mib()
    return tally


class _SdkFace:
    """One official SDK on a ResilientTransport: how to call it and what it raises."""

    def __init__(self, name: str, port: int) -> None:
        import anthropic
        import httpx2
        import openai

        self.name = name
        self.manager = _manager(port)
        self.transport = ResilientTransport(
            self.manager,
            provider=name,
            # another model of its own provider, then the other providers: translated
            fallback_models=[
                "gpt-4o" if name == "openai" else "claude-sonnet-4-5",
                *(model for model in CHAIN if not model.startswith(f"{name}/")),
            ],
            deadline=DEADLINE,
        )
        http = httpx2.AsyncClient(
            transport=self.transport, limits=httpx2.Limits(max_connections=512)
        )
        root = f"http://127.0.0.1:{port}"
        self.sdk: Any
        if name == "openai":
            self.sdk = openai.AsyncOpenAI(
                api_key="replaced-by-the-transport",
                base_url=f"{root}/openai/v1",
                max_retries=0,
                timeout=DEADLINE * 2,
                http_client=http,
            )
            self.typed: tuple[type[BaseException], ...] = (openai.APIError,)
        else:
            self.sdk = anthropic.AsyncAnthropic(
                api_key="replaced-by-the-transport",
                base_url=f"{root}/anthropic",
                max_retries=0,
                timeout=DEADLINE * 2,
                http_client=http,
            )
            self.typed = (anthropic.APIError,)
        self.typed += (httpx.TransportError, httpx2.TransportError)

    async def ask(self, stream: bool, tally: Tally) -> str | None:
        """The reply's text; ``None`` when the provider itself declined (a content block)."""
        if self.name == "openai":
            return await self._ask_openai(stream, tally)
        return await self._ask_anthropic(stream, tally)

    async def _ask_openai(self, stream: bool, tally: Tally) -> str | None:
        if stream:
            chunks = await self.sdk.chat.completions.create(
                model="gpt-4o-mini", messages=HI, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        reply = await self.sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
        tally.outputs.add(repr(reply))
        if reply.choices[0].finish_reason == "content_filter":
            return None
        return str(reply.choices[0].message.content or "")

    async def _ask_anthropic(self, stream: bool, tally: Tally) -> str | None:
        ask = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": HI}
        if stream:
            async with self.sdk.messages.stream(**ask) as events:
                text = "".join([piece async for piece in events.text_stream])
                message = await events.get_final_message()
        else:
            message = await self.sdk.messages.create(**ask)
            text = "".join(block.text for block in message.content if block.type == "text")
        tally.outputs.add(repr(message))
        return None if message.stop_reason == "refusal" else text

    def connections_left(self) -> int:
        left = 0
        for inner in self.transport._defaults.values():
            pool: Any = getattr(inner, "_pool", None)
            if pool is not None:
                left += sum(1 for c in pool.connections if not c.is_idle() and not c.is_closed())
                left += len(pool._requests)
        return left


async def _transport_run(port: int, sdk_name: str) -> Tally:
    tally = Tally(f"ResilientTransport under the {sdk_name} SDK")
    tally.rss_before = rss_mib()
    face = _SdkFace(sdk_name, port)
    _listen(face.transport, tally)

    async def one(index: int) -> None:
        try:
            text = await face.ask(bool(index % 2), tally)
        except face.typed as exc:
            tally.error(exc, typed=True)
            return
        except Exception as exc:
            tally.error(exc, typed=False)
            return
        if text is None:  # the provider's own answer, reported as such: not a truncation
            tally.error(ContentFilteredError("content filter reply"), typed=True)
        elif FULL_ANSWER.match(text):
            tally.served += 1
        else:
            tally.truncated += 1

    await _drive(tally, one)
    tally.outputs.add(repr(face.transport.status()))
    await asyncio.sleep(0.5)
    tally.connections_left = face.connections_left()
    await face.sdk.close()
    await face.transport.aclose()
    tally.rss_after = rss_mib()
    return tally


def _print(tally: Tally) -> None:
    bad = tally.bad
    print(f"\n== {tally.name}  ({tally.seconds:.1f} s)")
    print(
        f"   requests served            {tally.served} of {tally.sent} "
        f"({tally.availability:.1%}; at least {MIN_SERVED:.0%} required)"
    )
    typed = ", ".join(f"{name} {count}" for name, count in tally.typed.most_common())
    print(f"   typed errors               {sum(tally.typed.values())}  ({typed or '-'})")
    other = ", ".join(f"{name} {count}" for name, count in tally.other.most_common())
    print(f"   other exceptions           {sum(tally.other.values())}  ({other or '-'})")
    print(f"   hung requests              {tally.hung}")
    print(f"   streams/replies truncated  {tally.truncated}  (passed as success)")
    print(f"   keys found in any output   {tally.keys_found}  (of {len(tally.outputs)} strings)")
    print(f"   connections left checked out {tally.connections_left}")
    print(f"   RSS                        {tally.rss_before:.0f} -> {tally.rss_after:.0f} MiB")
    if tally.not_sent:
        print(f"   not sent (time budget)     {tally.not_sent}")
    print(f"   verdict                    {'OK' if bad == 0 else 'BAD'}")
    for example in tally.other_examples[:2]:
        print(textwrap.indent(example.rstrip(), "      | "))
    for place in tally.key_places:
        print(f"      key piece in: {place!r}")


async def main() -> int:
    import json

    outputs_of_logs: set[str] = set()
    capture = _Capture(outputs_of_logs)
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for quiet in ("asyncio",):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any request)
        [sys.executable, "-c", SIMULATOR, json.dumps(CHAOS), str(SEED), DEAD_KEY, SPENT_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the simulator's own complaints about dropped sockets
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(
            f"soak: {REQUESTS} requests per run, concurrency {CONCURRENCY}, half streamed, "
            f"deadline {DEADLINE:g} s; simulator pid {server.pid} on 127.0.0.1:{port}; "
            f"chaos {sum(CHAOS.values()):.0%} of requests ({', '.join(CHAOS)}), "
            "one dead key, one spent key"
        )
        runs: list[Callable[[], Awaitable[Tally]]] = [
            lambda: _client_run("ResilientClient on HttpxSender", port, "httpx"),
            lambda: _client_run("ResilientClient on AiohttpSender", port, "aiohttp"),
            lambda: _transport_run(port, "openai"),
            lambda: _transport_run(port, "anthropic"),
        ]
        bad = 0
        for run in runs:
            outputs_of_logs.clear()
            tally = await run()
            tally.outputs |= outputs_of_logs
            _count_keys(tally)
            _print(tally)
            bad += tally.bad
        return 1 if bad else 0
    finally:
        root.removeHandler(capture)
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
