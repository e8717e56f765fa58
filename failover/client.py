"""ResilientClient: plan -> attempt -> classify -> act, over a fallback chain and key pool."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import httpx
from httpx_sse import EventSource, SSEError

import providers
from failover.attempts import Attempt
from failover.catalog import ModelCatalog, ModelEntry, TokenUsage, default_catalog
from failover.chain import FallbackChain
from failover.classify import classify_exception, rate_limit_headroom
from failover.config import FailoverConfig
from failover.errors import (
    AllAttemptsFailed,
    ConfigError,
    MalformedResponseError,
    NoProfileAvailable,
    ProviderError,
    ProviderTimeoutError,
    StreamInterrupted,
)
from failover.events import (
    CooldownEvent,
    Event,
    ExhaustedEvent,
    FailoverEvent,
    HookDispatcher,
    RecoveredEvent,
    RetryEvent,
    SuccessEvent,
)
from failover.http import HttpxSender, Reply, Sender, default_http_client
from failover.policy import Action, Decision, decide, retry_same_key
from failover.profiles import AuthProfile, FailoverManager, ProfileStatus
from providers.base import ChatRequest, ProviderAdapter, StreamChunk

__all__ = ["AttemptContext", "Completion", "CompletionStream", "ResilientClient"]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])

_request_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful completion and how it was obtained.

    Attributes:
        text: The answer.
        model: ``provider/model`` that answered.
        provider: The provider that answered.
        profile: The name of the auth profile used.
        usage: Token counts.
        cost_usd: Cost from the catalog's prices, ``None`` when a price is unknown.
        finish_reason: The provider's stop reason.
        attempts: Every attempt, the successful one last.
        latency: Seconds from the call to the answer.
        raw: The provider's parsed reply.
    """

    text: str
    model: str
    provider: str
    profile: str
    usage: TokenUsage
    cost_usd: float | None
    finish_reason: str | None
    attempts: tuple[Attempt, ...]
    latency: float
    raw: Any


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What a function passed to :meth:`ResilientClient.call` gets for one attempt."""

    profile: AuthProfile
    model: ModelEntry
    attempt: int
    request_id: str
    timeout: float

    @property
    def api_key(self) -> str:
        """The profile's key (send it only to :attr:`base_url`)."""
        return self.profile.api_key

    @property
    def base_url(self) -> str:
        """The profile's base URL, or the provider's public one."""
        return self.profile.base_url or providers.get_adapter(self.model.provider).default_base_url


@dataclass(slots=True)
class _Request:
    """The bookkeeping of one request."""

    id: str
    started: float
    deadline_at: float
    attempts: list[Attempt]


class ResilientClient:
    """Completes chat requests over a fallback chain of models and a pool of keys.

    Args:
        chain: A FallbackChain, or ``"provider/model"`` ids in priority order.
        profiles: A FailoverManager, or AuthProfiles to build one from.
        config: Retry and cooldown settings (for a new manager; a given manager keeps its own).
        timeout: Seconds one attempt may take.
        deadline: Seconds the whole request may take, retries and fallbacks included.
        http_client: Your own ``httpx.AsyncClient`` (not closed by :meth:`aclose`).
        sender: Your own sender (see ``failover.http.Sender``); overrides ``http_client``.
        catalog: Where chain ids are looked up.
        wait_for_recovery: When every key is cooling, wait for the earliest recovery if it
            fits the deadline instead of failing at once.
        raise_on_content_filter: Raise a content block instead of trying the next model.
        stream_idle_timeout: Seconds a stream may go without a chunk before it fails.
        sleep: The sleep used for backoff (inject one in tests).
    """

    def __init__(
        self,
        chain: FallbackChain | Iterable[str],
        profiles: FailoverManager | Iterable[AuthProfile],
        *,
        config: FailoverConfig | None = None,
        timeout: float = 60.0,
        deadline: float | None = None,
        http_client: httpx.AsyncClient | None = None,
        sender: Sender | None = None,
        catalog: ModelCatalog | None = None,
        wait_for_recovery: bool = False,
        raise_on_content_filter: bool = False,
        stream_idle_timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.chain = (
            chain
            if isinstance(chain, FallbackChain)
            else FallbackChain.from_ids(list(chain), catalog=catalog or default_catalog)
        )
        if self.chain.is_empty():
            raise ConfigError("chain must contain at least one model")
        if isinstance(profiles, FailoverManager):
            if config is not None:
                raise ConfigError("pass config to the FailoverManager, not to the client")
            self.manager = profiles
        else:
            self.manager = FailoverManager(config, profiles=profiles)
        for name, value in (("timeout", timeout), ("stream_idle_timeout", stream_idle_timeout)):
            if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if deadline is not None and (not isinstance(deadline, (int, float)) or not deadline > 0):
            raise ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self._adapters: dict[str, ProviderAdapter] = {}
        have = self.manager.providers()
        for model in self.chain:
            self._adapters[model.provider] = providers.get_adapter(model.provider)
            if model.provider not in have:
                raise ConfigError(f"no auth profile for provider {model.provider!r} ({model.key})")
        self.timeout = float(timeout)
        self.deadline = deadline
        self.wait_for_recovery = wait_for_recovery
        self.raise_on_content_filter = raise_on_content_filter
        self.stream_idle_timeout = float(stream_idle_timeout)
        self._sleep = sleep or anyio.sleep
        self._owned_http: httpx.AsyncClient | None = None
        if sender is None:
            if http_client is None:
                http_client = self._owned_http = default_http_client()
            sender = HttpxSender(http_client)
        self._sender = sender
        self._hooks = HookDispatcher()
        self._model_health: dict[str, dict[str, Any]] = {
            key: {"successes": 0, "failures": 0, "last_error": None} for key in self.chain.names
        }

    # -- hooks ------------------------------------------------------------------------

    def on_failover(self, hook: H) -> H:
        """Call ``hook(FailoverEvent)`` when a request moves to another key or model."""
        return self._hooks.add(FailoverEvent, hook)

    def on_retry(self, hook: H) -> H:
        """Call ``hook(RetryEvent)`` before a same-key retry."""
        return self._hooks.add(RetryEvent, hook)

    def on_cooldown(self, hook: H) -> H:
        """Call ``hook(CooldownEvent)`` when a profile is cooled down or disabled."""
        return self._hooks.add(CooldownEvent, hook)

    def on_recovered(self, hook: H) -> H:
        """Call ``hook(RecoveredEvent)`` when a failing profile succeeds again."""
        return self._hooks.add(RecoveredEvent, hook)

    def on_success(self, hook: H) -> H:
        """Call ``hook(SuccessEvent)`` when a request succeeds."""
        return self._hooks.add(SuccessEvent, hook)

    def on_exhausted(self, hook: H) -> H:
        """Call ``hook(ExhaustedEvent)`` when a request fails after trying everything."""
        return self._hooks.add(ExhaustedEvent, hook)

    def _emit(self, event_type: type[Event], **fields: Any) -> None:
        if self._hooks.wants(event_type):
            self._hooks.emit(event_type(**fields))

    # -- public calls -------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **params: Any,
    ) -> Completion:
        """Complete ``messages`` (OpenAI shape), failing over as needed.

        Raises:
            AllAttemptsFailed: Every model and key failed (``retry_after`` when known).
            NoProfileAvailable: No key could be tried at all.
            ProviderError: A failure that no other model can fix (e.g. InvalidRequestError),
                with ``attempts`` set.
        """
        request = _chat_request(messages, max_tokens, temperature, params, stream=False)

        async def attempt(ctx: AttemptContext) -> Any:
            adapter = self._adapters[ctx.model.provider]
            http_request = adapter.build_request(
                request,
                model=ctx.model.id,
                api_key=ctx.profile.api_key,
                base_url=ctx.profile.base_url or adapter.default_base_url,
            )
            async with self._sender.open(http_request, ctx.timeout) as reply:
                body = await reply.aread()
                self._check_reply(adapter, ctx.profile, reply, body)
            return adapter.parse_response(body)

        state = self._new_request()
        result, model, profile = await self._run(state, attempt)
        latency = time.monotonic() - state.started
        cost = model.calculate_cost(result.usage)
        self._emit(
            SuccessEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            attempts=len(state.attempts),
            latency=latency,
            cost_usd=cost,
        )
        return Completion(
            text=result.text,
            model=model.key,
            provider=model.provider,
            profile=profile.name,
            usage=result.usage,
            cost_usd=cost,
            finish_reason=result.finish_reason,
            attempts=tuple(state.attempts),
            latency=latency,
            raw=result.raw,
        )

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **params: Any,
    ) -> CompletionStream:
        """Stream a completion: an async iterator of text chunks, the last with usage.

        Failover happens until the first chunk reaches the caller; a later failure raises
        StreamInterrupted with the partial text. Use as ``async with client.stream(...) as s``
        or iterate directly.
        """
        request = _chat_request(messages, max_tokens, temperature, params, stream=True)
        return CompletionStream(self, request)

    async def call(self, fn: Callable[[AttemptContext], Awaitable[T]]) -> T:
        """Run ``fn`` with failover: it gets an AttemptContext (key, base URL, model).

        Exceptions it raises are classified from whatever they carry (status code, headers,
        body; SDK timeout and connection errors by type), then handled like any other.
        """

        async def attempt(ctx: AttemptContext) -> T:
            try:
                return await fn(ctx)
            except ProviderError:
                raise
            except Exception as exc:
                error = classify_exception(exc, provider=ctx.model.provider, model=ctx.model.id)
                if error is None:
                    raise
                raise error from exc

        state = self._new_request()
        value, model, profile = await self._run(state, attempt)
        self._emit(
            SuccessEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            attempts=len(state.attempts),
            latency=time.monotonic() - state.started,
            cost_usd=None,
        )
        return value

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and each chain model's health."""
        manager = self.manager.status().to_dict()
        models = []
        for model in self.chain:
            health = self._model_health[model.key]
            models.append(
                {
                    "model": model.key,
                    **health,
                    "available_profiles": sum(
                        1
                        for p in self.manager.list_profiles()
                        if p.provider == model.provider
                        and p.allows(model.id)
                        and self.manager.effective_status(p) is ProfileStatus.AVAILABLE
                    ),
                }
            )
        return {**manager, "models": models}

    async def aclose(self) -> None:
        """Wait for pending async hooks, then close the HTTP client the client created."""
        await self._hooks.drain()
        await self.manager.drain_callbacks()
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def __aenter__(self) -> ResilientClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ResilientClient(chain={list(self.chain.names)!r}, profiles={len(self.manager)})"

    # -- the loop ---------------------------------------------------------------------

    def _new_request(self) -> _Request:
        now = time.monotonic()
        deadline_at = now + self.deadline if self.deadline is not None else math.inf
        return _Request(f"req-{next(_request_ids)}", now, deadline_at, [])

    def _check_reply(
        self, adapter: ProviderAdapter, profile: AuthProfile, reply: Reply, body: bytes
    ) -> None:
        headers = reply.headers
        if (reset := rate_limit_headroom(headers)) is not None:
            self.manager.hold_until_reset(profile.name, reset)
        status = reply.status_code
        if status >= 300:
            raise adapter.parse_error(status, headers, body)

    async def _run(
        self, state: _Request, attempt: Callable[[AttemptContext], Awaitable[T]]
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """Walk the chain and the keys until ``attempt`` succeeds; raise when all fail."""
        passes = 0
        while True:
            outcome = await self._walk_chain(state, attempt)
            if outcome is not None:
                return outcome
            retry_after = self._retry_after()
            now = time.monotonic()
            if (
                self.wait_for_recovery
                and retry_after is not None
                and passes < 3
                and now + retry_after < state.deadline_at
                and (self.deadline is not None or retry_after <= self.manager.config.max_retry_delay)
            ):
                passes += 1
                await self._sleep(retry_after)
                continue
            self._exhausted(state, retry_after)

    def _exhausted(self, state: _Request, retry_after: float | None) -> None:
        if time.monotonic() >= state.deadline_at:
            message = f"deadline of {self.deadline}s exceeded"
        else:
            message = f"all {len(self.chain)} models failed"
        error_type = AllAttemptsFailed if state.attempts else NoProfileAvailable
        if not state.attempts:
            message = "no auth profile is available for any model in the chain"
        error = error_type(message, state.attempts, retry_after=retry_after)
        self._emit(
            ExhaustedEvent,
            request_id=state.id,
            attempts=len(state.attempts),
            retry_after=retry_after,
            error_message=message,
        )
        raise error

    def _retry_after(self) -> float | None:
        now = self.manager.clock()
        times = [
            at
            for provider in {model.provider for model in self.chain}
            if (at := self.manager.next_available_at(provider)) is not None
        ]
        return max(0.0, min(times) - now) if times else None

    async def _walk_chain(
        self, state: _Request, attempt: Callable[[AttemptContext], Awaitable[T]]
    ) -> tuple[T, ModelEntry, AuthProfile] | None:
        config = self.manager.config
        min_context: int | None = None
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None] | None = None
        fallbacks = 0
        for model in self.chain:
            if min_context is not None and (model.context_window or math.inf) <= min_context:
                continue
            if previous is not None:
                fallbacks += 1
                if config.max_model_fallbacks is not None and fallbacks > config.max_model_fallbacks:
                    return None
                self._announce_failover("model", state, previous, model, None)
            tried: set[str] = set()
            last_profile: AuthProfile | None = None
            last_error: ProviderError | None = None
            while time.monotonic() < state.deadline_at:
                profile = self.manager.get_next_profile(
                    model.provider, model=model.id, exclude=tried
                )
                if profile is None:
                    break
                if tried:
                    if config.max_key_rotations is not None and len(tried) > config.max_key_rotations:
                        break
                    self._announce_failover("key", state, (model, last_profile, last_error),
                                            model, profile)
                tried.add(profile.name)
                last_profile = profile
                try:
                    value = await self._attempt_with_retries(state, attempt, model, profile)
                except ProviderError as error:
                    last_error = error
                    action = decide(error, raise_on_content_filter=self.raise_on_content_filter).action
                    if action is Action.RAISE:
                        error.attempts = tuple(state.attempts)
                        raise
                    if action is Action.ROTATE:
                        continue
                    if action is Action.LARGER_MODEL:
                        min_context = model.context_window or 0
                    break
                if self.manager.mark_success(profile.name):
                    self._emit(RecoveredEvent, request_id=state.id, profile=profile.name,
                               provider=profile.provider)
                self._model_health[model.key]["successes"] += 1
                return value, model, profile
            previous = (model, last_profile, last_error)
        return None

    def _announce_failover(
        self,
        kind: str,
        state: _Request,
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None],
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        if not self._hooks.wants(FailoverEvent):
            return
        from_model, from_profile, error = previous
        self._hooks.emit(
            FailoverEvent(
                request_id=state.id,
                kind=kind,
                from_model=from_model.key,
                from_profile=from_profile.name if from_profile else None,
                to_model=model.key,
                to_profile=profile.name if profile else None,
                reason=error.kind if error else "no_profile_available",
                error_message=error.message if error else "no usable key for this model",
            )
        )

    async def _attempt_with_retries(
        self,
        state: _Request,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        model: ModelEntry,
        profile: AuthProfile,
    ) -> T:
        async def once() -> T:
            time_left = state.deadline_at - time.monotonic()
            if time_left <= 0:
                raise ProviderTimeoutError("the request's deadline passed")
            ctx = AttemptContext(
                profile, model, len(state.attempts) + 1, state.id, min(self.timeout, time_left)
            )
            started = time.monotonic()
            try:
                value = await attempt(ctx)
            except ProviderError as error:
                error.provider, error.model, error.profile = model.provider, model.id, profile.name
                error.redact(profile.api_key)
                state.attempts.append(
                    Attempt(model.key, profile.name, error.kind, error.status, error.retry_after,
                            time.monotonic() - started, error)
                )
                raise
            state.attempts.append(
                Attempt(model.key, profile.name, "ok", None, None, time.monotonic() - started)
            )
            return value

        def on_failure(error: ProviderError) -> Decision:
            return self._record_failure(state, model, profile, error)

        def on_retry(error: ProviderError, number: int, delay: float) -> None:
            self._emit(RetryEvent, request_id=state.id, model=model.key, profile=profile.name,
                       attempt=number, delay=delay, reason=error.kind,
                       error_message=error.message)

        return await retry_same_key(
            once,
            config=self.manager.config,
            sleep=self._sleep,
            time_left=lambda: state.deadline_at - time.monotonic(),
            on_failure=on_failure,
            on_retry=on_retry,
        )

    def _record_failure(
        self, state: _Request, model: ModelEntry, profile: AuthProfile, error: ProviderError
    ) -> Decision:
        """Apply a failure to the profile's health; return what to do next."""
        decision = decide(error, raise_on_content_filter=self.raise_on_content_filter)
        health = self._model_health[model.key]
        health["failures"] += 1
        health["last_error"] = f"{error.kind}: {error.message}"[:300]
        if decision.failure is None:
            return decision
        was_available = profile.status is ProfileStatus.AVAILABLE
        provider_wait = error.retry_after if decision.failure != "error" else None
        status = self.manager.mark_failure(
            profile.name, error.message, kind=decision.failure, retry_after=provider_wait
        )
        if status is not ProfileStatus.AVAILABLE:
            if was_available:
                self._emit(
                    CooldownEvent,
                    request_id=state.id,
                    profile=profile.name,
                    provider=profile.provider,
                    status=status.value,
                    duration=profile.cooldown_until - self.manager.clock(),
                    reason=error.kind,
                    error_message=error.message,
                )
            if decision.action is Action.RETRY:
                return Decision(Action.NEXT_MODEL, decision.failure)  # the key is resting now
        return decision

    # -- streaming internals ------------------------------------------------------------

    async def _open_stream(
        self, request: ChatRequest, ctx: AttemptContext
    ) -> tuple[AbstractAsyncContextManager[Reply], _ChunkReader, StreamChunk]:
        adapter = self._adapters[ctx.model.provider]
        http_request = adapter.build_request(
            request,
            model=ctx.model.id,
            api_key=ctx.profile.api_key,
            base_url=ctx.profile.base_url or adapter.default_base_url,
        )
        opener = self._sender.open(http_request, ctx.timeout)
        reply = await opener.__aenter__()
        try:
            if reply.status_code >= 300:
                self._check_reply(adapter, ctx.profile, reply, await reply.aread())
            self._check_reply(adapter, ctx.profile, reply, b"")
            reader = _ChunkReader(adapter, reply, self.stream_idle_timeout)
            first = await reader.next()
            if first is None:
                raise MalformedResponseError("the stream ended without any chunk")
        except BaseException as exc:
            await opener.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return opener, reader, first


class _ChunkReader:
    """Reads one stream's chunks: text deltas, then one summary chunk with usage."""

    def __init__(self, adapter: ProviderAdapter, reply: Reply, idle_timeout: float) -> None:
        self._parser = adapter.stream_parser()
        self._events = self._iterate(adapter, reply)
        self._idle = idle_timeout
        self._finish: str | None = None
        self._usage: TokenUsage | None = None
        self._done = False

    async def _iterate(self, adapter: ProviderAdapter, reply: Reply) -> AsyncIterator[StreamChunk]:
        parser = self._parser
        if adapter.stream_format == "sse":
            source = EventSource(cast(httpx.Response, reply))
            try:
                async for event in source.aiter_sse():
                    if (chunk := parser.feed(event.event, event.data)) is not None:
                        yield chunk
                    if parser.complete:
                        break
            except SSEError as exc:
                raise MalformedResponseError(f"not an event stream: {exc}") from exc
        else:
            async for line in reply.aiter_lines():
                if line.strip() and (chunk := parser.feed("", line)) is not None:
                    yield chunk
                if parser.complete:
                    break
        if not parser.complete:
            raise MalformedResponseError("the stream ended before its terminator")

    async def next(self) -> StreamChunk | None:
        """Return the next text chunk, then the summary chunk, then ``None``."""
        while not self._done:
            try:
                with anyio.fail_after(self._idle):
                    chunk = await self._events.__anext__()
            except StopAsyncIteration:
                self._done = True
                return StreamChunk("", self._finish, self._usage)
            except TimeoutError as exc:
                raise ProviderTimeoutError(f"the stream stalled for {self._idle}s") from exc
            if chunk.finish_reason is not None:
                self._finish = chunk.finish_reason
            if chunk.usage is not None:
                self._usage = chunk.usage
            if chunk.text:
                return StreamChunk(chunk.text)
        return None

    async def aclose(self) -> None:
        """Stop reading."""
        await cast(Any, self._events).aclose()


class CompletionStream:
    """The chunks of a streamed completion, with the answer's metadata once it starts.

    Attributes:
        text: The text received so far.
        model: ``provider/model`` that is answering (set at the first chunk).
        profile: The auth profile's name (set at the first chunk).
        usage: Token counts (set at the end).
        finish_reason: The stop reason (set at the end).
        attempts: Every attempt made so far.
    """

    def __init__(self, client: ResilientClient, request: ChatRequest) -> None:
        self._client = client
        self._request = request
        self._state = client._new_request()
        self._opener: AbstractAsyncContextManager[Reply] | None = None
        self._reader: _ChunkReader | None = None
        self._pending: StreamChunk | None = None
        self._finished = False
        self._chosen: tuple[ModelEntry, AuthProfile] | None = None
        self.text = ""
        self.model: str | None = None
        self.profile: str | None = None
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt made so far."""
        return tuple(self._state.attempts)

    def __aiter__(self) -> CompletionStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._finished:
            raise StopAsyncIteration
        try:
            chunk = await self._next_chunk()
        except BaseException:
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        self.text += chunk.text
        if chunk.usage is not None or chunk.finish_reason is not None:
            self.usage, self.finish_reason = chunk.usage, chunk.finish_reason
        return chunk

    async def _next_chunk(self) -> StreamChunk | None:
        client = self._client
        if self._reader is None:
            request = self._request

            async def attempt(ctx: AttemptContext) -> tuple[Any, _ChunkReader, StreamChunk]:
                return await client._open_stream(request, ctx)

            (opener, reader, first), model, profile = await client._run(self._state, attempt)
            self._opener, self._reader, self._chosen = opener, reader, (model, profile)
            self.model, self.profile = model.key, profile.name
            return first
        try:
            chunk = await self._reader.next()
        except ProviderError as error:
            assert self._chosen is not None
            model, profile = self._chosen
            error.provider, error.model, error.profile = model.provider, model.id, profile.name
            error.redact(profile.api_key)
            self._state.attempts.append(
                Attempt(model.key, profile.name, error.kind, error.status, error.retry_after,
                        time.monotonic() - self._state.started, error)
            )
            client._record_failure(self._state, model, profile, error)
            raise StreamInterrupted(error, self.text, self._state.attempts) from error
        if chunk is None or (chunk.text == "" and self._reader._done):
            self._succeeded()
        return chunk

    def _succeeded(self) -> None:
        if self._chosen is None or self._finished:
            return
        model, _ = self._chosen
        client = self._client
        client._emit(
            SuccessEvent,
            request_id=self._state.id,
            model=model.key,
            profile=self._chosen[1].name,
            attempts=len(self._state.attempts),
            latency=time.monotonic() - self._state.started,
            cost_usd=model.calculate_cost(self.usage) if self.usage else None,
        )

    async def aclose(self) -> None:
        """Stop the stream and release its connection."""
        if self._finished:
            return
        self._finished = True
        if self._reader is not None:
            await self._reader.aclose()
        if self._opener is not None:
            await self._opener.__aexit__(None, None, None)

    async def __aenter__(self) -> CompletionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _chat_request(
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    temperature: float | None,
    params: Mapping[str, Any],
    *,
    stream: bool,
) -> ChatRequest:
    if isinstance(messages, (str, bytes)) or not messages:
        raise ConfigError("messages must be a non-empty list of {'role', 'content'} dicts")
    for message in messages:
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(f"each message needs a 'role' and 'content', got {message!r}")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise ConfigError(f"max_tokens must be a positive int, got {max_tokens!r}")
    return ChatRequest(messages, max_tokens, temperature, params, stream)
