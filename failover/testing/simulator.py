"""A local provider simulator: a real HTTP server on 127.0.0.1 that speaks OpenAI's (Chat
Completions and Responses), Anthropic's, Gemini's and Ollama's wire formats, Amazon Bedrock's
Converse (SigV4 checked, ConverseStream's event-stream frames) and Google Vertex AI's
(bearer tokens; Claude and Gemini), with failures
scripted per key, model or provider, scheduled outages, seeded chaos, and per-key token-rate
limits (tokens and requests per minute, enforced as providers do). Built on starlette +
uvicorn (extra ``sim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeGuard

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from failover.catalog import canonical_provider, default_catalog
from failover.testing import cloud_sim
from failover.testing.prompt_cache import DEFAULT_CACHE_TTL, PromptCache, prefix_of
from failover.testing.rejects import (
    Reject,
    check_request,
    responses_pairing,
    responses_state_error,
)
from failover.testing.responses import (
    REASONING_TOKENS,
    ResponseStore,
    call_item,
    context_chars,
    failure_event,
    input_items,
    message_item,
    new_id,
    response_events,
    response_object,
    usage_body,
)
from failover.testing.wire import (
    SimToolCall,
    azure_error,
    embedding_body,
    embedding_vector,
    error_reply,
    reply_body,
    stream_error,
    stream_events,
)

__all__ = ["KINDS", "Behavior", "KeyUsage", "Received", "Simulator"]

KINDS = (
    "healthy",
    "rate_limit",
    "quota",
    "invalid_key",
    "overloaded",
    "server_error",
    "hang",
    "reset",
    "truncate",
    "midstream_error",
    "malformed",
    "context_limit",
    "content_block",
    "invalid_json",
    "schema_mismatch",
)
"""Every behaviour the simulator can script."""

_ERROR_KINDS = {"rate_limit", "quota", "invalid_key", "overloaded", "server_error"}
_UNLIMITED_KINDS = _ERROR_KINDS | {"context_limit"}
"""Scripted failures answered before the token-rate limits are consulted (nothing counted)."""


@dataclass(frozen=True, slots=True)
class Behavior:
    """How the simulator answers.

    Attributes:
        kind: One of :data:`KINDS`.
        latency: Seconds before the first byte.
        tokens_per_second: Stream pacing (``None``: as fast as possible).
        retry_after: The wait a rate limit asks for, in seconds.
        after: For ``rate_limit``: allow this many requests per ``window`` per key, then 429.
            For ``truncate`` and ``midstream_error`` on a stream (every streaming wire):
            cut it after this many content deltas (default: about half of them; more than
            the answer has: after the last, before the stream's end).
        window: The rate-limit window in seconds.
        max_prompt_chars: For ``context_limit``: fail only for prompts longer than this.
        reply: The text to answer with (default: a sentence naming provider and model).
        tool_calls: An agent's tool rounds: ``(name, arguments)`` per round. A request whose
            history holds ``k`` tool results is answered with round ``k``'s call, in the wire's
            own shape; once every round is answered, with text.
        dimensions: For embeddings: answer with vectors of this length, whatever was asked
            (default: the length asked for, else the catalog's for the model, else 16).

    Two kinds answer a request for JSON wrongly (other requests as ``healthy``), so a
    client's schema check has something to reject: ``invalid_json`` answers prose around
    the JSON (it does not parse); ``schema_mismatch`` answers JSON that parses but does not
    match the request's schema (its first required property left out; without one, a
    value of another type than the schema's). A ``healthy`` model answers JSON that
    matches the schema (``response_format`` json_schema, Responses' ``text.format``,
    Anthropic's ``output_config.format``, Gemini's ``responseSchema``, Ollama's
    ``format``): every property, strings holding the reply's text.
    """

    kind: str = "healthy"
    latency: float = 0.0
    tokens_per_second: float | None = None
    retry_after: float = 1.0
    after: int | None = None
    window: float = 60.0
    max_prompt_chars: int | None = None
    reply: str | None = None
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()
    dimensions: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown behaviour {self.kind!r}; one of: {', '.join(KINDS)}")
        if self.after is not None and (
            isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0
        ):
            raise ValueError(f"after must be a whole number >= 0, got {self.after!r}")
        rounds = tuple((str(name), dict(args)) for name, args in self.tool_calls)
        object.__setattr__(self, "tool_calls", rounds)


@dataclass(frozen=True, slots=True)
class Received:
    """One request the simulator received."""

    provider: str
    wire: str
    key: str
    model: str
    stream: bool
    at: float
    prompt_chars: int
    outcome: str
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The request's JSON body, as the provider received it."""


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What one key's token-rate limits counted (keys given in ``Simulator(limits=...)``).

    Attributes:
        requests: Requests admitted within the limits.
        tokens: Tokens counted for them: each one's input tokens (the simulator's own
            count, the ``prompt_tokens`` its reply reports) plus the output tokens produced.
        rate_limited: Requests refused with a 429 because a limit had no room.
    """

    requests: int = 0
    tokens: int = 0
    rate_limited: int = 0


@dataclass(slots=True)
class _Bucket:
    """A key's two token buckets: ``tpm`` tokens and ``rpm`` requests (``None``: unlimited).

    Each holds at most its per-minute limit and refills continuously at limit / 60 per
    second. A request is admitted when the request bucket holds one request and the token
    bucket its input tokens (a request larger than the whole capacity: when the bucket is
    full, or it could never be served); its output tokens are taken as they are produced,
    which may leave the token bucket in debt, repaid by the refill before the next request
    fits (as a provider counting output tokens does).
    """

    tpm: int | None
    rpm: int | None
    at: float
    tokens: float = 0.0
    requests: float = 0.0
    usage: KeyUsage = field(default_factory=KeyUsage)

    def __post_init__(self) -> None:
        self.tokens = float(self.tpm or 0)
        self.requests = float(self.rpm or 0)

    def refill(self, now: float) -> None:
        elapsed = now - self.at
        if elapsed <= 0:
            return
        self.at = now
        if self.tpm is not None:
            self.tokens = min(float(self.tpm), self.tokens + elapsed * self.tpm / 60.0)
        if self.rpm is not None:
            self.requests = min(float(self.rpm), self.requests + elapsed * self.rpm / 60.0)

    def wait(self, tokens: int) -> float:
        """Seconds until both buckets have room for a request of ``tokens`` (0.0: now)."""
        wait = 0.0
        if self.tpm is not None:
            need = min(tokens, self.tpm)
            if self.tokens + 1e-9 < need:
                wait = (need - self.tokens) * 60.0 / self.tpm
        if self.rpm is not None and self.requests + 1e-9 < 1.0:
            wait = max(wait, (1.0 - self.requests) * 60.0 / self.rpm)
        return wait

    def take(self, tokens: int, *, request: bool) -> None:
        """Count ``tokens`` (and one request when ``request``)."""
        if self.tpm is not None:
            self.tokens -= tokens
        if request and self.rpm is not None:
            self.requests -= 1.0
        usage = self.usage
        self.usage = replace(usage, requests=usage.requests + request, tokens=usage.tokens + tokens)

    def headers(self, wire: str, provider: str) -> dict[str, str]:
        """The limit, remaining and reset headers in ``wire``'s style (none for wires whose
        providers send none: Gemini, Bedrock, Vertex AI, Ollama)."""
        anthropic = wire == "anthropic" and provider == "anthropic"
        if not anthropic and wire not in ("openai", "responses"):
            return {}
        headers: dict[str, str] = {}
        for name, limit, level in (
            ("requests", self.rpm, self.requests),
            ("tokens", self.tpm, self.tokens),
        ):
            if limit is None:
                continue
            remaining = str(max(0, math.floor(level + 1e-9)))
            until_full = max(0.0, (limit - level) * 60.0 / limit)
            if anthropic:
                headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
                headers[f"anthropic-ratelimit-{name}-remaining"] = remaining
                headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339_in(until_full)
            else:
                headers[f"x-ratelimit-limit-{name}"] = str(limit)
                headers[f"x-ratelimit-remaining-{name}"] = remaining
                headers[f"x-ratelimit-reset-{name}"] = _go_duration(until_full)
        return headers


@dataclass(slots=True)
class _Outage:
    provider: str
    start: float
    end: float
    behavior: Behavior


@dataclass(slots=True)
class _Chaos:
    rates: dict[str, float]
    rng: random.Random
    behavior: Behavior = field(default_factory=Behavior)


class _Reset(Response):
    """Starts a reply, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})
        raise ConnectionResetError("simulated connection reset")


class _CutStream(Response):
    """Sends the first events of a stream, then drops the connection before its end."""

    def __init__(self, chunks: list[bytes], delay: float, headers: Mapping[str, str]) -> None:
        super().__init__(status_code=200)
        self._chunks = chunks
        self._delay = delay
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            *((name.encode(), value.encode()) for name, value in headers.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        for chunk in self._chunks:
            if self._delay:
                await asyncio.sleep(self._delay)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        raise ConnectionResetError("simulated stream cut off before its end")


class Simulator:
    """A scripted fake of the LLM providers, over real HTTP on 127.0.0.1.

    Args:
        keys: Provider name -> keys it accepts. A provider with no keys listed accepts any
            key (and none).
        default: The behaviour when nothing more specific is scripted.
        port: The port (0: a free one).
        words_per_chunk: Words per stream chunk.
        limits: Key -> ``(tpm, rpm)``: tokens and requests per minute the key is allowed
            (``None``: that one unlimited), enforced as token buckets (see
            :meth:`set_limits`). A request over a limit gets its wire's own 429 with
            ``retry-after``; replies carry the remaining-budget headers (OpenAI's
            ``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``).
        clock: The token buckets' and the prompt cache's time source (monotonic seconds;
            injectable for tests).
        cache_ttl: Seconds a prompt prefix stays cached for the key (and model) that sent
            it, after its last use (``0``: no prompt cache). A request starting with a
            prefix its key sent within that time reports it as cached, in its wire's own
            usage fields (see :mod:`failover.testing.prompt_cache`).

    Example:
        >>> async with Simulator(keys={"openai": ["sk-a"]}) as sim:  # doctest: +SKIP
        ...     sim.script(Behavior("rate_limit", retry_after=5), key="sk-a")
        ...     url = sim.base_url("openai")
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, Iterable[str]] | None = None,
        default: Behavior | None = None,
        port: int = 0,
        words_per_chunk: int = 2,
        limits: Mapping[str, tuple[int | None, int | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        self._keys: dict[str, set[str]] = defaultdict(set)
        for provider, provider_keys in (keys or {}).items():
            self._keys[canonical_provider(provider)].update(provider_keys)
        self.default = default or Behavior()
        self.words_per_chunk = words_per_chunk
        self._port = port
        self._scripts: dict[tuple[str | None, str | None, str | None], Behavior] = {}
        self._outages: list[_Outage] = []
        self._chaos: _Chaos | None = None
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._clock = clock
        self.prompt_cache = PromptCache(cache_ttl, clock)
        """Prompt prefixes per (provider, key, model), as providers cache them."""
        self._limits: dict[str, _Bucket] = {}
        for key, (tpm, rpm) in (limits or {}).items():
            self.set_limits(key, tpm=tpm, rpm=rpm)
        self._closing = asyncio.Event()
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.started_at = time.monotonic()
        self.requests: list[Received] = []
        self.responses = ResponseStore()
        """The Responses API's responses, kept for ``previous_response_id`` (per key)."""
        self.aws_credentials: dict[str, str] = {
            cloud_sim.SIM_ACCESS_KEY_ID: cloud_sim.SIM_SECRET_ACCESS_KEY
        }
        """Access key id -> secret: Bedrock requests must be signed with one of these."""
        self.app = Starlette(
            routes=[
                Route("/{provider}/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/{provider}/openai/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/{provider}/v1/responses", self._responses, methods=["POST"]),
                Route("/{provider}/openai/v1/responses", self._responses, methods=["POST"]),
                Route(
                    "/{provider}/openai/deployments/{deployment}/chat/completions",
                    self._azure,
                    methods=["POST"],
                ),
                Route("/{provider}/v1/messages", self._anthropic, methods=["POST"]),
                Route("/{provider}/v1beta/models/{target:path}", self._gemini, methods=["POST"]),
                Route("/{provider}/api/chat", self._ollama, methods=["POST"]),
                Route("/{provider}/model/{model}/{action}", self._bedrock, methods=["POST"]),
                Route(
                    "/{provider}/v1/projects/{project}/locations/{location}/publishers/"
                    "{publisher}/models/{target}",
                    self._vertex,
                    methods=["POST"],
                ),
                Route("/{provider}/v1/embeddings", self._openai_embed, methods=["POST"]),
                Route("/{provider}/openai/v1/embeddings", self._openai_embed, methods=["POST"]),
                Route(
                    "/{provider}/openai/deployments/{deployment}/embeddings",
                    self._azure_embed,
                    methods=["POST"],
                ),
                Route("/{provider}/api/embed", self._ollama_embed, methods=["POST"]),
                Route("/_sim/script", self._control, methods=["POST"]),
                Route("/_sim/calls", self._calls, methods=["GET"]),
                Route("/_sim/usage", self._usage, methods=["GET"]),
            ]
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving on 127.0.0.1 (a free port unless one was given)."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        sock.bind(("127.0.0.1", self._port))
        sock.listen(1024)
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
            lifespan="off",
            backlog=1024,
        )
        self._server = uvicorn.Server(config)
        # the process's signals stay its own: uvicorn would take Ctrl-C (SIGINT) and SIGTERM
        # for as long as it serves, when started on the main thread
        self._server.capture_signals = contextlib.nullcontext
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        self.started_at = time.monotonic()

    async def stop(self) -> None:
        """Stop serving; hanging requests are released."""
        self._closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._socket is not None:
            self._socket.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the simulator listens on."""
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    def base_url(self, provider: str) -> str:
        """The base URL to give a profile of ``provider``, written the way its SDK takes it."""
        provider = canonical_provider(provider)
        if provider.startswith("vertex_"):
            return f"{self.root_url}/{provider}/v1/projects/sim-project/locations/us-east5"
        api = default_catalog.providers().get(provider, "openai")
        versioned = api == "openai" and provider != "azure"  # Azure's base is the resource
        return f"{self.root_url}/{provider}" + ("/v1" if versioned else "")

    # -- scripting ----------------------------------------------------------------------

    def add_key(self, provider: str, key: str) -> None:
        """Accept ``key`` for ``provider`` (once any key is listed, others get a 401)."""
        self._keys[canonical_provider(provider)].add(key)

    def script(
        self,
        behavior: Behavior | str | None,
        *,
        key: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        """Set how requests matching ``key``/``model``/``provider`` are answered (``None``: clear).

        The most specific script wins: key+model, then key, then model, then provider.
        Changes apply to the next request, also while the simulator runs.
        """
        if isinstance(behavior, str):
            behavior = Behavior(behavior)
        where = (key, model, canonical_provider(provider) if provider else None)
        if behavior is None:
            self._scripts.pop(where, None)
        else:
            self._scripts[where] = behavior

    def outage(self, provider: str, *, start: float, end: float, kind: str = "overloaded") -> None:
        """Make ``provider`` fail with ``kind`` from ``start`` to ``end`` s after now."""
        now = time.monotonic()
        self._outages.append(
            _Outage(canonical_provider(provider), now + start, now + end, Behavior(kind))
        )

    def chaos(self, rates: Mapping[str, float], *, seed: int = 0) -> None:
        """Mix failures in at random: ``rates`` maps a behaviour to its probability."""
        for kind, rate in rates.items():
            Behavior(kind)
            if not 0 <= rate <= 1:
                raise ValueError(f"rate for {kind!r} must be within [0, 1], got {rate}")
        if sum(rates.values()) > 1:
            raise ValueError("chaos rates add up to more than 1")
        self._chaos = _Chaos(dict(rates), random.Random(seed))

    def set_limits(self, key: str, *, tpm: int | None = None, rpm: int | None = None) -> None:
        """Limit ``key`` to ``tpm`` tokens and ``rpm`` requests per minute (both ``None``: lift).

        Each limit is a token bucket holding the per-minute limit, full at first, refilled
        continuously at limit / 60 per second. A request needs one request and its input
        tokens (``prompt_tokens`` as its reply reports them) in the buckets, or the whole
        token capacity when it is larger; its output tokens are taken when produced, which
        may leave the bucket in debt, repaid by the refill before the next request fits.
        Setting limits starts the key's buckets and counts (:meth:`usage`) afresh.

        Raises:
            ValueError: A limit that is not a positive integer.
        """
        for name, limit in (("tpm", tpm), ("rpm", rpm)):
            valid = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            if limit is not None and not valid:
                raise ValueError(f"{name} must be a positive integer or None, got {limit!r}")
        if tpm is None and rpm is None:
            self._limits.pop(key, None)
        else:
            self._limits[key] = _Bucket(tpm, rpm, self._clock())

    def usage(self, key: str) -> KeyUsage:
        """What ``key``'s limits counted so far: requests and tokens admitted, 429s sent
        (all zero for a key without limits)."""
        bucket = self._limits.get(key)
        return bucket.usage if bucket is not None else KeyUsage()

    def remaining(self, key: str) -> tuple[float | None, float | None]:
        """``key``'s (tokens, requests) left in its buckets now (``None``: unlimited;
        tokens below zero: a debt of output tokens)."""
        bucket = self._limits.get(key)
        if bucket is None:
            return None, None
        bucket.refill(self._clock())
        return (
            bucket.tokens if bucket.tpm is not None else None,
            bucket.requests if bucket.rpm is not None else None,
        )

    def calls(
        self, *, key: str | None = None, model: str | None = None, provider: str | None = None
    ) -> int:
        """How many requests matched ``key``, ``model`` and ``provider``."""
        return sum(
            1
            for r in self.requests
            if (key is None or r.key == key)
            and (model is None or r.model == model)
            and (provider is None or r.provider == canonical_provider(provider))
        )

    # -- request handling -----------------------------------------------------------------

    def _choose(self, provider: str, key: str, model: str) -> Behavior:
        now = time.monotonic()
        for outage in self._outages:
            if outage.provider == provider and outage.start <= now < outage.end:
                return outage.behavior
        for where in (
            (key, model, None),
            (key, None, None),
            (None, model, None),
            (None, None, provider),
        ):
            if (found := self._scripts.get(where)) is not None:
                return found
        if self._chaos is not None:
            draw = self._chaos.rng.random()
            for kind, rate in self._chaos.rates.items():
                if draw < rate:
                    return replace(self.default, kind=kind)
                draw -= rate
        return self.default

    async def _handle(
        self,
        request: Request,
        wire: str,
        key: str,
        model: str,
        body: dict[str, Any],
        stream: bool,
        prompt_chars: int,
    ) -> Response:
        gate = await self._gate(request, wire, key, model, body, stream, prompt_chars)
        if isinstance(gate, Response):
            return gate
        provider, kind, behavior, headers = gate
        text, calls, stopped = _plan(_RequestView(wire, body), provider, model, behavior, kind)
        usage = (max(1, prompt_chars // 4), max(1, len(text.split())))
        cache = self._cache(wire, provider, key, model, body)
        self._produced(wire, provider, key, usage[1], headers)
        if wire == "bedrock":
            return self._converse(
                text, calls, stopped, usage, kind, behavior, headers, stream, cache
            )
        if calls and kind not in ("truncate", "content_block"):
            if stream:
                events = list(stream_events(wire, model, [], usage, tool_calls=calls, cache=cache))
                return self._send(wire, events, 0.0, headers)
            return JSONResponse(
                reply_body(wire, model, "", usage, tool_calls=calls, cache=cache), headers=headers
            )
        if not stream:
            if kind == "truncate":
                return Response(
                    json.dumps(reply_body(wire, model, text, usage))[:40],
                    media_type="application/json",
                    headers=headers,
                )
            reply = reply_body(
                wire,
                model,
                text,
                usage,
                blocked=kind == "content_block",
                stopped=stopped,
                cache=cache,
            )
            return JSONResponse(reply, headers=headers)
        if kind == "content_block":
            return JSONResponse(
                reply_body(wire, model, text, usage, blocked=True, cache=cache), headers=headers
            )
        return self._stream(wire, model, text, usage, kind, behavior, headers, stopped, cache)

    def _cache(
        self,
        wire: str,
        provider: str,
        key: str,
        model: str,
        body: Mapping[str, Any],
        items: Sequence[Any] | None = None,
    ) -> tuple[int, int] | None:
        """The prompt tokens (read from, written to) ``key``'s cache for ``model``, which
        now holds this request's prefix; ``None`` on a wire that reports no cache."""
        if wire == "ollama":
            return None
        hit = self.prompt_cache.use((provider, key, model), prefix_of(wire, provider, body, items))
        return hit.read, hit.written

    async def _gate(
        self,
        request: Request,
        wire: str,
        key: str,
        model: str,
        body: dict[str, Any],
        stream: bool,
        prompt_chars: int,
        *,
        embedding: bool = False,
        check: Callable[[], Reject] | None = None,
    ) -> Response | tuple[str, str, Behavior, dict[str, str]]:
        """Record the request and answer every scripted failure; return what a success
        needs to be built: (provider, kind, behaviour, headers). ``check``: what the
        provider answers a well-formed request given its state (after the key is accepted)."""
        provider = canonical_provider(request.path_params["provider"])
        accepted = self._keys.get(provider)
        behavior = (
            Behavior("invalid_key")
            if accepted and key not in accepted
            else self._choose(provider, key, model)
        )
        kind, headers = self._apply_window(behavior, key)
        rejected = (
            _check(wire, provider, body, model) if kind != "invalid_key" and not embedding else None
        )
        if rejected is None and check is not None and kind != "invalid_key":
            rejected = check()
        if rejected is not None:
            kind = "invalid_request"
        if (
            kind == "context_limit"
            and behavior.max_prompt_chars is not None
            and (prompt_chars <= behavior.max_prompt_chars)
        ):
            kind = "healthy"
        wait = 0.0
        bucket = self._limits.get(key)
        if bucket is not None and rejected is None and kind not in _UNLIMITED_KINDS:
            wait = self._admit(bucket, max(1, prompt_chars // 4))
            if wait:
                kind = "rate_limit"
            headers.update(bucket.headers(wire, provider))
        self.requests.append(
            Received(
                provider,
                wire,
                key,
                model,
                stream,
                time.monotonic() - self.started_at,
                prompt_chars,
                kind,
                body,
            )
        )
        if rejected is not None:
            return JSONResponse(rejected[1], status_code=rejected[0], headers=headers)
        if wait:
            return _over_limit(wire, provider, wait, headers)
        if behavior.latency:
            await asyncio.sleep(behavior.latency)
        if provider == "azure" and (azure := azure_error(kind, behavior.retry_after)):
            retry = {"retry-after": f"{behavior.retry_after:g}"} if azure[0] == 429 else {}
            return JSONResponse(azure[1], status_code=azure[0], headers={**headers, **retry})
        if provider.startswith("vertex_") and (
            google := cloud_sim.vertex_error(kind, behavior.retry_after)
        ):
            return JSONResponse(google[1], status_code=google[0], headers={**headers, **google[2]})
        if wire == "bedrock" and (kind in _ERROR_KINDS or kind == "context_limit"):
            status, error, extra = cloud_sim.converse_error(kind, behavior.retry_after)
            return JSONResponse(error, status_code=status, headers={**headers, **extra})
        if kind in _ERROR_KINDS or kind == "context_limit":
            status, error, extra = error_reply(wire, kind, behavior.retry_after)
            return JSONResponse(error, status_code=status, headers={**headers, **extra})
        if kind == "hang":
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=3600)
            return Response(status_code=504)
        if kind == "reset":
            return _Reset()
        if kind == "malformed":
            broken = '{"output": [{"type": ' if wire == "responses" else '{"choices": [{"message": '
            return Response(broken, media_type="application/json", headers=headers)
        return provider, kind, behavior, headers

    def _admit(self, bucket: _Bucket, tokens: int) -> float:
        """Take one request and its ``tokens`` input tokens from the key's buckets; when
        they have no room, take nothing, count a 429 and return the wait (0.0: admitted)."""
        bucket.refill(self._clock())
        wait = bucket.wait(tokens)
        if wait:
            bucket.usage = replace(bucket.usage, rate_limited=bucket.usage.rate_limited + 1)
            return wait
        bucket.take(tokens, request=True)
        return 0.0

    def _produced(
        self, wire: str, provider: str, key: str, tokens: int, headers: dict[str, str]
    ) -> None:
        """Count the output ``tokens`` of a reply to ``key`` in its limits, and bring the
        reply's remaining-budget ``headers`` up to date."""
        bucket = self._limits.get(key)
        if bucket is None:
            return
        bucket.refill(self._clock())
        bucket.take(tokens, request=False)
        headers.update(bucket.headers(wire, provider))

    def _apply_window(self, behavior: Behavior, key: str) -> tuple[str, dict[str, str]]:
        """Count the request in the key's window when the behaviour limits requests."""
        if behavior.kind != "rate_limit" or behavior.after is None:
            return behavior.kind, {}
        now = time.monotonic()
        window = self._windows[key]
        while window and window[0] <= now - behavior.window:
            window.popleft()
        if len(window) >= behavior.after:
            wait = max(0.001, window[0] + behavior.window - now)
            return "rate_limit", {"retry-after": f"{wait:.3f}"}
        window.append(now)
        remaining = behavior.after - len(window)
        reset = f"{max(0.001, window[0] + behavior.window - now):.3f}s"
        return "healthy", {
            "x-ratelimit-limit-requests": str(behavior.after),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": reset,
        }

    def _stream(
        self,
        wire: str,
        model: str,
        text: str,
        usage: tuple[int, int],
        kind: str,
        behavior: Behavior,
        headers: dict[str, str],
        stopped: bool = False,
        cache: tuple[int, int] | None = None,
    ) -> StreamingResponse:
        words = text.split(" ")
        size = self.words_per_chunk
        pieces = [
            " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
            for i in range(0, len(words), size)
        ]
        events = list(stream_events(wire, model, pieces, usage, stopped=stopped, cache=cache))
        # after some text: the scripted number of deltas, else about half of them
        cut = (3 if wire == "anthropic" else 0) + _deltas_kept(behavior, len(pieces))
        if wire == "gemini" and cut >= len(events) and kind in ("truncate", "midstream_error"):
            # Gemini's last delta carries the stream's end: cut after it, send it without
            last = json.loads(events[-1][1])
            last.pop("usageMetadata", None)
            for candidate in last.get("candidates", []):
                candidate.pop("finishReason", None)
            events[-1] = (events[-1][0], json.dumps(last))
        if kind == "truncate":
            events = events[:cut]
        elif kind == "midstream_error":
            events = [*events[:cut], stream_error(wire)]
        delay = (size / behavior.tokens_per_second) if behavior.tokens_per_second else 0.0
        return self._send(wire, events, delay, headers)

    @staticmethod
    def _send(
        wire: str, events: list[tuple[str | None, str]], delay: float, headers: dict[str, str]
    ) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for name, data in events:
                if delay:
                    await asyncio.sleep(delay)
                if wire == "ollama":
                    yield (data + "\n").encode()
                else:
                    yield ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()

        media = "application/x-ndjson" if wire == "ollama" else "text/event-stream"
        return StreamingResponse(body(), media_type=media, headers=headers)

    async def _openai(self, request: Request) -> Response:
        body = await _json(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return await self._handle(
            request,
            "openai",
            key,
            str(body.get("model", "")),
            body,
            bool(body.get("stream")),
            _chars(body.get("messages")),
        )

    async def _responses(self, request: Request) -> Response:
        """OpenAI's Responses API: a ``response`` object, or its events with ``stream``."""
        body = await _json(request)
        key = request.headers.get("api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        model = str(body.get("model", ""))
        stream = body.get("stream") is True
        previous = body.get("previous_response_id")
        earlier = self.responses.recall(key, previous) if isinstance(previous, str) else ()
        items = [*(earlier or ()), *input_items(body)]
        chars = context_chars(items, body.get("instructions"))

        def check() -> Reject:
            return responses_state_error(body, earlier is not None) or responses_pairing(items)

        gate = await self._gate(request, "responses", key, model, body, stream, chars, check=check)
        if isinstance(gate, Response):
            return gate
        provider, kind, behavior, headers = gate
        view = _RequestView("responses", {**body, "input": items})
        text, calls, _ = _plan(view, provider, model, behavior, kind)
        cached = self._cache("responses", provider, key, model, body, items) or (0, 0)
        reasoning_config = body.get("reasoning")
        effort = reasoning_config.get("effort") if isinstance(reasoning_config, dict) else None
        reasoning = REASONING_TOKENS.get(str(effort), 0)
        prompt = max(1, chars // 4)
        output: list[dict[str, Any]] = []
        incomplete: str | None = None
        if kind == "content_block":
            incomplete, completion, reasoning = "content_filter", 0, 0
        elif calls:
            for call_id, name, args in calls:
                arguments = json.dumps(args)
                output.append(call_item(new_id("fc_"), call_id, name, arguments, "completed"))
            completion = max(1, sum(len(item["arguments"]) for item in output) // 4)
        else:
            words = text.split(" ")
            limit = body.get("max_output_tokens")
            if isinstance(limit, int) and len(words) + reasoning > limit:
                incomplete = "max_output_tokens"
                reasoning = min(reasoning, limit)
                words = words[: limit - reasoning]
                text = " ".join(words)
            status = "incomplete" if incomplete else "completed"
            output.append(message_item(new_id("msg_"), text, status))
            completion = len(words) if text else 0
        self._produced("responses", provider, key, completion + reasoning, headers)
        response = response_object(
            new_id("resp_"),
            int(time.time()),
            model,
            body,
            status="incomplete" if incomplete else "completed",
            output=output,
            usage=usage_body(prompt, completion, reasoning, cached[0]),
            incomplete=incomplete,
        )
        cut_off = kind == "truncate" or (stream and kind == "midstream_error")
        if body.get("store") is not False and not cut_off:  # what the client saw whole
            self.responses.remember(key, response["id"], [*items, *output])
        if not stream:
            if kind == "truncate":
                broken = json.dumps(response)[:40]
                return Response(broken, media_type="application/json", headers=headers)
            return JSONResponse(response, headers=headers)
        size = self.words_per_chunk
        words = text.split(" ")
        pieces = [
            " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
            for i in range(0, len(words), size)
        ]
        events, first, partial = response_events(response, pieces)
        deltas = sum(1 for name, _ in events if name and name.endswith(".delta"))
        cut = min(first + _deltas_kept(behavior, deltas), len(events) - 1)
        delay = (size / behavior.tokens_per_second) if behavior.tokens_per_second else 0.0
        if kind == "truncate":
            chunks = [f"event: {name}\ndata: {data}\n\n".encode() for name, data in events[:cut]]
            return _CutStream(chunks, delay, headers)
        if kind == "midstream_error":
            events = [*events[:cut], failure_event(response, partial[cut - 1], cut)]
        return self._send("responses", events, delay, headers)

    async def _azure(self, request: Request) -> Response:
        body = await _json(request)
        return await self._handle(
            request,
            "openai",
            request.headers.get("api-key", ""),
            request.path_params["deployment"],
            body,
            bool(body.get("stream")),
            _chars(body.get("messages")),
        )

    async def _anthropic(self, request: Request) -> Response:
        body = await _json(request)
        key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        chars = _chars(body.get("messages")) + len(str(body.get("system", "")))
        return await self._handle(
            request,
            "anthropic",
            key,
            str(body.get("model", "")),
            body,
            bool(body.get("stream")),
            chars,
        )

    async def _gemini(self, request: Request) -> Response:
        body = await _json(request)
        model, _, action = request.path_params["target"].partition(":")
        key = request.headers.get("x-goog-api-key", "")
        if action in ("embedContent", "batchEmbedContents"):
            return await self._gemini_embed(request, key, model, action, body)
        chars = sum(
            len(str(p.get("text", "")))
            for c in body.get("contents", [])
            for p in c.get("parts", [])
        )
        return await self._handle(
            request, "gemini", key, model, body, action.startswith("streamGenerateContent"), chars
        )

    def _converse(
        self,
        text: str,
        calls: tuple[SimToolCall, ...],
        stopped: bool,
        usage: tuple[int, int],
        kind: str,
        behavior: Behavior,
        headers: dict[str, str],
        stream: bool,
        cache: tuple[int, int] | None = None,
    ) -> Response:
        """A Converse reply, or ConverseStream's frames (cut or failed as scripted)."""
        blocked = kind == "content_block"
        if not stream:
            reply = cloud_sim.converse_body(
                text, usage, blocked=blocked, tool_calls=calls, stopped=stopped, cache=cache
            )
            if kind == "truncate":
                broken = json.dumps(reply)[:40]
                return Response(broken, media_type="application/json", headers=headers)
            return JSONResponse(reply, headers=headers)
        size = self.words_per_chunk
        words = text.split(" ")
        pieces = [
            " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
            for i in range(0, len(words), size)
        ]
        frames = list(
            cloud_sim.converse_frames(pieces, usage, tool_calls=calls, stopped=stopped, cache=cache)
        )
        if blocked:
            frames = [frames[0], *cloud_sim.guardrail_frames(usage)]
        cut = 1 + _deltas_kept(behavior, len(pieces))
        if kind == "truncate":
            frames = frames[:cut]
        elif kind == "midstream_error":
            frames = [*frames[:cut], cloud_sim.stream_exception()]
        delay = (size / behavior.tokens_per_second) if behavior.tokens_per_second else 0.0

        async def body() -> AsyncIterator[bytes]:
            for frame in frames:
                if delay:
                    await asyncio.sleep(delay)
                yield frame

        media = "application/vnd.amazon.eventstream"
        return StreamingResponse(body(), media_type=media, headers=headers)

    async def _bedrock(self, request: Request) -> Response:
        """Bedrock's Converse and ConverseStream, signed with SigV4 (or a Bedrock API key)."""
        action = request.path_params["action"]
        if action not in ("converse", "converse-stream"):
            return JSONResponse({"message": f"Unknown operation {action}"}, status_code=404)
        raw = await request.body()
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            key = authorization.removeprefix("Bearer ")
        else:
            host = request.headers.get("host", "")
            path = request.scope.get("raw_path", b"").decode() or request.url.path
            url = f"{request.url.scheme}://{host}{path}"
            signer, refusal = cloud_sim.verify_sigv4(
                "POST", url, request.headers, raw, self.aws_credentials
            )
            if refusal is not None:
                status, error, extra = refusal
                provider = canonical_provider(request.path_params["provider"])
                self.requests.append(
                    Received(
                        provider,
                        "bedrock",
                        "",
                        request.path_params["model"],
                        action == "converse-stream",
                        time.monotonic() - self.started_at,
                        0,
                        "invalid_signature",
                        {},
                    )
                )
                return JSONResponse(error, status_code=status, headers=extra)
            key = str(signer)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse(
                {"message": "Malformed input request, please reformat your input and try again."},
                status_code=400,
                headers={"x-amzn-ErrorType": "ValidationException"},
            )
        return await self._handle(
            request,
            "bedrock",
            key,
            request.path_params["model"],
            body,
            action == "converse-stream",
            cloud_sim.converse_chars(body),
        )

    async def _vertex(self, request: Request) -> Response:
        """Vertex AI: Claude's rawPredict/streamRawPredict, Gemini's generateContent."""
        body = await _json(request)
        model, _, action = request.path_params["target"].partition(":")
        publisher = request.path_params["publisher"]
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if publisher == "anthropic":
            if action not in ("rawPredict", "streamRawPredict"):
                return JSONResponse(
                    cloud_sim.google_error(404, f"Unknown method {action}"), status_code=404
                )
            if body.get("anthropic_version") != "vertex-2023-10-16":
                message = "anthropic_version: Input should be 'vertex-2023-10-16'"
                error = {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": message},
                }
                return JSONResponse(error, status_code=400)
            chars = _chars(body.get("messages")) + len(str(body.get("system", "")))
            stream = action == "streamRawPredict"
            return await self._handle(request, "anthropic", key, model, body, stream, chars)
        chars = sum(
            len(str(p.get("text", "")))
            for c in body.get("contents", [])
            for p in c.get("parts", [])
        )
        stream = action.startswith("streamGenerateContent")
        return await self._handle(request, "gemini", key, model, body, stream, chars)

    async def _ollama(self, request: Request) -> Response:
        body = await _json(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return await self._handle(
            request,
            "ollama",
            key,
            str(body.get("model", "")),
            body,
            body.get("stream", True) is not False,
            _chars(body.get("messages")),
        )

    # -- embeddings -------------------------------------------------------------------------

    async def _embed(
        self,
        request: Request,
        wire: str,
        key: str,
        model: str,
        body: dict[str, Any],
        texts: list[str],
        asked: Any,
        *,
        single: bool = False,
    ) -> Response:
        """Answer an embeddings request, scripted failures first, like a chat request."""
        gate = await self._gate(
            request, wire, key, model, body, False, sum(map(len, texts)), embedding=True
        )
        if isinstance(gate, Response):
            return gate
        provider, kind, behavior, headers = gate
        entry = default_catalog.get(provider, model)
        native = entry.embedding_dimensions if entry is not None else None
        dimensions = behavior.dimensions or (asked if isinstance(asked, int) else None)
        vectors = [embedding_vector(model, text, dimensions or native or 16) for text in texts]
        reply = embedding_body(
            wire, model, vectors, max(1, sum(map(len, texts)) // 4), single=single
        )
        if kind == "truncate":
            return Response(json.dumps(reply)[:40], media_type="application/json", headers=headers)
        return JSONResponse(reply, headers=headers)

    async def _openai_embed(self, request: Request) -> Response:
        body = await _json(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return await self._openai_embeddings(request, key, str(body.get("model", "")), body)

    async def _azure_embed(self, request: Request) -> Response:
        body = await _json(request)
        deployment = request.path_params["deployment"]
        return await self._openai_embeddings(
            request, request.headers.get("api-key", ""), deployment, body
        )

    async def _openai_embeddings(
        self, request: Request, key: str, model: str, body: dict[str, Any]
    ) -> Response:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not _texts(texts):
            return JSONResponse(_openai_invalid("'$.input' is invalid.", "input"), 400)
        if "dimensions" in body and model == "text-embedding-ada-002":
            message = "This model does not support specifying dimensions."
            return JSONResponse(_openai_invalid(message, "dimensions"), 400)
        return await self._embed(request, "openai", key, model, body, texts, body.get("dimensions"))

    async def _gemini_embed(
        self, request: Request, key: str, model: str, action: str, body: dict[str, Any]
    ) -> Response:
        items = [body] if action == "embedContent" else body.get("requests")
        if not isinstance(items, list) or not items:
            return JSONResponse(_gemini_invalid("* BatchEmbedContentsRequest.requests: empty"), 400)
        texts: list[Any] = []
        for item in items:
            parts = (item.get("content") or {}).get("parts") if isinstance(item, dict) else None
            texts.append(
                "".join(str(p.get("text", "")) for p in parts or [] if isinstance(p, dict))
            )
            if action == "batchEmbedContents" and item.get("model") != f"models/{model}":
                message = f"Model in request {item.get('model')!r} does not match models/{model}."
                return JSONResponse(_gemini_invalid(message), 400)
        if not _texts(texts):
            return JSONResponse(_gemini_invalid("* EmbedContentRequest.content: empty text"), 400)
        asked = items[0].get("outputDimensionality")
        return await self._embed(
            request, "gemini", key, model, body, texts, asked, single=action == "embedContent"
        )

    async def _ollama_embed(self, request: Request) -> Response:
        body = await _json(request)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not _texts(texts):
            return JSONResponse({"error": "invalid input type"}, 400)
        model = str(body.get("model", ""))
        return await self._embed(request, "ollama", key, model, body, texts, body.get("dimensions"))

    async def _control(self, request: Request) -> Response:
        """``POST /_sim/script`` {"behavior": {...} | null, "key", "model", "provider"}."""
        body = await _json(request)
        try:
            spec = body.get("behavior")
            behavior = Behavior(**spec) if isinstance(spec, dict) else (spec or None)
            self.script(
                behavior,
                key=body.get("key"),
                model=body.get("model"),
                provider=body.get("provider"),
            )
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    async def _calls(self, request: Request) -> Response:
        """``GET /_sim/calls``: every request received, oldest first (keys shown by their
        last four characters only)."""
        return JSONResponse(
            {
                "calls": [
                    {
                        "provider": r.provider,
                        "wire": r.wire,
                        "key": f"...{r.key[-4:]}" if r.key else "",
                        "model": r.model,
                        "stream": r.stream,
                        "at": r.at,
                        "prompt_chars": r.prompt_chars,
                        "outcome": r.outcome,
                    }
                    for r in self.requests
                ]
            }
        )

    async def _usage(self, request: Request) -> Response:
        """``GET /_sim/usage``: what the token-rate limits counted, per limited key (keys
        shown by their last four characters only)."""
        return JSONResponse(
            {
                "keys": {
                    f"...{key[-4:]}": asdict(bucket.usage) for key, bucket in self._limits.items()
                }
            }
        )


def _over_limit(wire: str, provider: str, wait: float, headers: dict[str, str]) -> Response:
    """``wire``'s own 429 for a request the token-rate limits refused, asking for ``wait``
    seconds (rounded up to the millisecond, so a caller that waits that long fits)."""
    wait = math.ceil(wait * 1000) / 1000
    if provider == "azure" and (azure := azure_error("rate_limit", wait)):
        return JSONResponse(
            azure[1], status_code=azure[0], headers={**headers, "retry-after": f"{wait:g}"}
        )
    if provider.startswith("vertex_") and (google := cloud_sim.vertex_error("rate_limit", wait)):
        return JSONResponse(google[1], status_code=google[0], headers={**google[2], **headers})
    if wire == "bedrock":
        status, error, extra = cloud_sim.converse_error("rate_limit", wait)
    else:
        status, error, extra = error_reply(wire, "rate_limit", wait)
    extra = {k: v for k, v in extra.items() if not k.startswith("x-ratelimit-")}
    return JSONResponse(error, status_code=status, headers={**extra, **headers})


def _go_duration(seconds: float) -> str:
    """``seconds`` as OpenAI writes a reset: a Go duration (``12ms``, ``1.5s``, ``6m0s``)."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, rest = divmod(rest, 60.0)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{int(minutes)}m{text}"
    return f"{int(hours)}h{text}" if hours else text


def _rfc3339_in(seconds: float) -> str:
    """The wall-clock moment ``seconds`` from now, as Anthropic writes a reset (RFC 3339)."""
    moment = datetime.fromtimestamp(time.time() + seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _deltas_kept(behavior: Behavior, deltas: int) -> int:
    """How many of a stream's ``deltas`` content deltas go out before a scripted cut:
    ``behavior.after`` (at most all of them), else about half (at least one)."""
    if behavior.after is not None and behavior.kind != "rate_limit":
        return min(behavior.after, deltas)
    return max(1, deltas // 2)


def _plan(
    view: _RequestView, provider: str, model: str, behavior: Behavior, kind: str = "healthy"
) -> tuple[str, tuple[SimToolCall, ...], bool]:
    """What a simulated model answers: its text, its tool calls (a forced tool, else the
    scripted round the history has reached), and whether a stop sequence cut the text.
    A JSON answer matches the request's schema, unless ``kind`` says it must not."""
    wire = view.wire
    results = view.tool_results()
    text = behavior.reply or (
        f"Simulated answer from {provider}/{model}"
        + (f" after {results} tool results" if results else "")
        + ": all systems nominal."
    )
    calls: tuple[SimToolCall, ...] = ()
    if (forced := view.forced_tool()) is not None:
        calls = ((_call_id(wire, 0, 0), forced, {"answer": text}),)
    elif results < len(behavior.tool_calls):
        name, args = behavior.tool_calls[results]
        calls = ((_call_id(wire, results, 0), name, args),)
    elif view.json_mode():
        schema = view.json_schema()
        value = {"answer": text} if schema is None else _instance(schema, text, schema)
        if kind == "schema_mismatch":
            value = _mismatch(value, schema)
        text = json.dumps(value)
        if kind == "invalid_json":
            text = f"Here is the JSON you asked for:\n```json\n{text}\n```"
    stopped = False
    for stop in view.stop_sequences():
        if stop and stop in text:
            text, stopped = text[: text.index(stop)], True
    return text, calls, stopped


def _instance(schema: Any, text: str, root: Mapping[str, Any], depth: int = 0) -> Any:
    """A value matching ``schema`` (JSON Schema, or Gemini's upper-case types): every
    property of an object, one item of an array, ``text`` for a string, the first of an
    enum, the least number allowed. ``root`` resolves local ``$ref`` pointers."""
    if not isinstance(schema, dict) or depth > 12:
        return text
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _instance(target, text, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combined)
        if isinstance(options, list) and options:
            return _instance(options[0], text, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), None)
    kind = str(kind).lower() if kind else ("object" if "properties" in schema else "string")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            return {"answer": text}
        return {
            str(name): _instance(sub, text, root, depth + 1) for name, sub in properties.items()
        }
    if kind == "array":
        least = schema.get("minItems")
        count = max(1, least) if isinstance(least, int) else 1
        maximum = schema.get("maxItems")
        if isinstance(maximum, int):
            count = min(count, maximum)
        return [_instance(schema.get("items"), text, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        least = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = (
            least + (1 if "exclusiveMinimum" in schema else 0)
            if isinstance(least, (int, float))
            else 0
        )
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    longest = schema.get("maxLength")
    return text[:longest] if isinstance(longest, int) else text


def _mismatch(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """``value`` made not to match ``schema``: its first required property left out, else
    wrapped in a list (an object when the schema asks for an array)."""
    required = schema.get("required") if schema is not None else None
    if isinstance(value, dict) and isinstance(required, list) and required:
        return {k: v for k, v in value.items() if k != required[0]}
    kind = schema.get("type") if schema is not None else None
    if isinstance(kind, str) and kind.lower() == "array":
        return {"unexpected": value}
    return [value]


def _call_id(wire: str, round_: int, index: int) -> str:
    if wire == "anthropic":
        return f"toolu_sim{round_}{index}"
    return f"call_sim_{round_}_{index}"


class _RequestView:
    """What a request asks for, read in its own wire's shape."""

    def __init__(self, wire: str, body: dict[str, Any]) -> None:
        self.wire = wire
        self.body = body

    def tool_results(self) -> int:
        """How many tool results the history holds."""
        body = self.body
        if self.wire == "bedrock":
            return cloud_sim.converse_view(body)[0]
        if self.wire == "anthropic":
            return sum(
                1
                for m in body.get("messages") or []
                if isinstance(m, dict) and isinstance(m.get("content"), list)
                for block in m["content"]
                if isinstance(block, dict) and block.get("type") == "tool_result"
            )
        if self.wire == "gemini":
            return sum(
                1
                for c in body.get("contents") or []
                if isinstance(c, dict)
                for part in c.get("parts") or []
                if isinstance(part, dict) and "functionResponse" in part
            )
        if self.wire == "responses":
            return sum(
                1
                for item in body.get("input") or []
                if isinstance(item, dict) and item.get("type") == "function_call_output"
            )
        return sum(
            1 for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "tool"
        )

    def forced_tool(self) -> str | None:
        """The tool the request forces the model to call (answered with that call)."""
        if self.wire == "bedrock":
            return cloud_sim.converse_view(self.body)[1]
        choice = self.body.get("tool_choice")
        if self.wire == "anthropic" and isinstance(choice, dict) and choice.get("type") == "tool":
            return str(choice.get("name"))
        if self.wire == "openai" and isinstance(choice, dict):
            function = choice.get("function")
            return str(function.get("name")) if isinstance(function, dict) else None
        if self.wire == "responses" and isinstance(choice, dict):
            return str(choice["name"]) if choice.get("type") == "function" else None
        if self.wire == "gemini":
            config = (self.body.get("toolConfig") or {}).get("functionCallingConfig") or {}
            names = config.get("allowedFunctionNames")
            if config.get("mode") == "ANY" and isinstance(names, list) and len(names) == 1:
                return str(names[0])
        return None

    def json_mode(self) -> bool:
        """Whether the request asks for a JSON answer."""
        body = self.body
        if self.wire == "anthropic":
            return "output_config" in body
        if self.wire == "gemini":
            config = body.get("generationConfig") or {}
            return config.get("responseMimeType") == "application/json"
        if self.wire == "ollama":
            return "format" in body
        if self.wire == "responses":
            text = body.get("text")
            form = text.get("format") if isinstance(text, dict) else None
            return isinstance(form, dict) and form.get("type") in ("json_object", "json_schema")
        return isinstance(body.get("response_format"), dict) and body["response_format"].get(
            "type"
        ) in ("json_object", "json_schema")

    def json_schema(self) -> Mapping[str, Any] | None:
        """The JSON schema the answer must match, read where this wire keeps it (``None``:
        none, e.g. a bare JSON mode)."""
        body = self.body
        schema: Any = None
        if self.wire == "anthropic":
            config = body.get("output_config")
            form = config.get("format") if isinstance(config, dict) else None
            schema = form.get("schema") if isinstance(form, dict) else None
        elif self.wire == "gemini":
            config = body.get("generationConfig") or {}
            schema = config.get("responseJsonSchema") or config.get("responseSchema")
        elif self.wire == "ollama":
            schema = body.get("format")
        elif self.wire == "responses":
            text = body.get("text")
            form = text.get("format") if isinstance(text, dict) else None
            schema = form.get("schema") if isinstance(form, dict) else None
        else:
            form = body.get("response_format")
            spec = form.get("json_schema") if isinstance(form, dict) else None
            schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) and schema else None

    def stop_sequences(self) -> list[str]:
        """The stop sequences, read where this wire keeps them."""
        if self.wire == "bedrock":
            return cloud_sim.converse_view(self.body)[2]
        if self.wire == "anthropic":
            stop: Any = self.body.get("stop_sequences")
        elif self.wire == "gemini":
            stop = (self.body.get("generationConfig") or {}).get("stopSequences")
        elif self.wire == "ollama":
            stop = (self.body.get("options") or {}).get("stop")
        elif self.wire == "responses":
            stop = None  # the Responses API has no stop sequences
        else:
            stop = self.body.get("stop")
        if isinstance(stop, str):
            return [stop]
        return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []


def _check(wire: str, provider: str, body: dict[str, Any], model: str) -> Reject:
    """What the real provider answers a malformed ``body`` with (Converse's own checks;
    Claude on Vertex as Anthropic's, with the model in the URL instead of the body)."""
    if wire == "bedrock":
        return cloud_sim.check_converse(body)
    if provider == "vertex_anthropic":
        if "model" in body:
            return 400, {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "model: Extra inputs are not permitted",
                },
            }
        body = {k: v for k, v in body.items() if k != "anthropic_version"} | {"model": model}
    return check_request(wire, provider, body, model)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _texts(texts: Any) -> TypeGuard[list[str]]:
    """Whether ``texts`` is a non-empty list of non-empty strings."""
    return (
        isinstance(texts, list)
        and bool(texts)
        and all(isinstance(text, str) and text for text in texts)
    )


def _openai_invalid(message: str, param: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def _gemini_invalid(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def _chars(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
