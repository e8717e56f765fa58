"""ResilientClient: plan -> attempt -> classify -> act, over a fallback chain and key pool."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import httpx

from failover import providers
from failover._closing import AsyncClosing
from failover._secrets import watch_http_logs
from failover._tasks import on_asyncio
from failover.admission import checked_tags
from failover.affinity import DEFAULT_SESSION_TTL, check_affinity, prefix_session
from failover.budgets import Budget
from failover.catalog import ModelCatalog, ModelEntry, TokenUsage, default_catalog
from failover.chain import FallbackChain
from failover.chat_calls import ChatCalls
from failover.chat_input import (
    chain_from,
    chat_request,
    estimate_input_tokens,
    estimate_usage,
)
from failover.classify import classify_exception
from failover.completion import Accept, Completion
from failover.config import FailoverConfig
from failover.engine import AttemptContext, Engine, HookMethods
from failover.errors import (
    ConfigError,
    ProviderError,
)
from failover.http import HttpxSender, Sender, default_http_client
from failover.policy import Action, Policy
from failover.profiles import AuthProfile, FailoverManager
from failover.providers.base import (
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderAdapter,
)
from failover.reply_checks import ReplyChecks
from failover.request import RequestState
from failover.routing import Hedging, Strategy
from failover.store import Store
from failover.streams import CompletionStream, StreamSource
from failover.telemetry import Telemetry, resolve_telemetry

if TYPE_CHECKING:
    from failover.embeddings import EmbeddingChain, Embeddings

__all__ = ["AttemptContext", "Completion", "CompletionStream", "ResilientClient"]

T = TypeVar("T")


StreamBreak = Literal["raise", "restart", "continue"]
_BREAKS = ("raise", "restart", "continue")


def _checked_break(mode: str) -> StreamBreak:
    if mode not in _BREAKS:
        raise ConfigError(f"on_stream_break must be one of {', '.join(_BREAKS)}; got {mode!r}")
    return mode  # type: ignore[return-value]


def _keyed(models: Iterable[ModelEntry], manager: FailoverManager) -> None:
    """Refuse a model whose provider has no key in ``manager`` (ConfigError)."""
    have = manager.providers()
    for model in models:
        if model.provider not in have:
            raise ConfigError(f"no auth profile for provider {model.provider!r} ({model.key})")


def _checked_order(priority: object, tags: str | Sequence[str]) -> tuple[int, tuple[str, ...]]:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigError(f"priority must be an int, got {priority!r}")
    return priority, checked_tags(tags) if tags else ()


def _checked_session(session: object) -> str:
    if not isinstance(session, str) or not session:
        raise ConfigError(f"session must be a non-empty str, got {session!r}")
    return session


def _checked_accept(accept: Accept | None) -> Accept | None:
    if accept is not None and not callable(accept):
        raise ConfigError(f"accept must be a function of a Completion, got {accept!r}")
    return accept


def _completion(
    result: ChatResult,
    model: ModelEntry,
    profile: AuthProfile,
    state: RequestState,
    cost: float | None,
) -> Completion:
    """The caller's view of ``result`` (its attempts so far, its latency until now)."""
    return Completion(
        text=result.text,
        model=model.key,
        provider=model.provider,
        profile=profile.name,
        usage=result.usage,
        cost_usd=cost,
        finish_reason=result.finish_reason,
        attempts=tuple(state.attempts),
        latency=monotonic() - state.started,
        raw=result.raw,
        tool_calls=result.tool_calls,
        raw_finish_reason=result.raw_finish_reason,
    )


class ResilientClient(HookMethods, AsyncClosing):
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
        strict_models: Refuse chain ids the catalog does not know (``ModelNotFound``);
            by default they are accepted unpriced with an ``UnknownModelWarning``.
        wait_for_recovery: When every key is resting, wait for the earliest recovery (on
            by default) while it fits the deadline, or ``config.max_recovery_wait`` (10 s)
            without one; waiters go on in the order they came. ``False`` fails at once.
        raise_on_content_filter: Raise a content block instead of trying the next model.
        fallback_on: Who decides to fall over: a predicate on the ProviderError (``False``
            raises it to you, ``True`` falls over even where the policy would raise), or a
            tuple of error classes to fall over on (the rest are raised).
        policy_overrides: Error class -> action (``"retry"``, ``"rotate"``,
            ``"next_model"``, ``"raise"``) replacing the policy table's row for it; the
            most specific class wins.
        stream_idle_timeout: Seconds a stream may go without a chunk before it fails.
        hedge_after: Hedge slow requests: when the first attempt has no reply (for a
            stream, no first chunk) after this many seconds, or after ``"p95"`` of that
            deployment's recent latency, a second attempt starts on another endpoint of
            the model or on the next model; the first success wins, the other is
            cancelled. ``None`` (default): no hedging.
        hedge_budget: Extra requests hedging may add, as a share of all requests.
        strategy: How the deployments of a chain step (a group of equivalent models) are
            ordered for each request: ``"priority"`` (as listed), ``"round_robin"``,
            ``"weighted"`` (by the profiles' ``weight``), ``"least_busy"`` (fewest in
            flight), ``"latency"`` (lowest recent latency, exploring), ``"cost"``
            (cheapest for the request's estimated tokens), or your own Strategy.
        sleep: The sleep used for backoff (inject one in tests).
        store: Where the new manager keeps its state (``failover.store.RedisStore`` to
            share it between processes); ``async with client:`` runs its sync.
        telemetry: Where spans and metrics go (see ``failover.telemetry``): ``None`` uses
            OpenTelemetry's global providers when ``opentelemetry-api`` is installed (a no-op
            until the application installs an SDK), ``False`` turns telemetry off, or pass
            your own ``Telemetry``.
        budgets: Spend budgets (:class:`~failover.budgets.Budget`) for the new manager:
            an attempt whose worst case would overrun one is skipped, the chain moves on,
            and :class:`~failover.errors.BudgetExceededError` says when nothing fits.
        max_in_flight: For the new manager: ``provider/model`` -> requests that deployment
            may run at once in this process (a key's own cap is its ``max_in_flight``).
        admission: Hold requests to the budgets, the keys' ``rate_limit_tpm`` and the
            in-flight caps (see :mod:`failover.admission`); ``False``: send regardless.
        accept: Checks each reply (a function of the :class:`Completion`, sync or async,
            true to keep it); a rejected reply is an attempt with outcome ``rejected`` and
            the next model is tried (the key's health is untouched).
        on_stream_break: What a stream cut after its first chunk does: ``"raise"``
            (StreamInterrupted), ``"restart"`` (the next candidate starts over, after a
            marker chunk telling the caller to discard what it has) or ``"continue"``
            (the next candidate that can continues the text).
        session: The conversation every call belongs to unless it names its own: it is
            tried first on the model and key that served it last (their prompt cache is
            warm), for ``session_ttl`` seconds after its last turn.
        affinity: ``"session"`` (default): calls with a session stay where it was
            served; ``"prefix"``: a call without one gets the digest of its conversation's
            stable prefix (system prompt, tools, first user turn) as its session;
            ``"off"``: no affinity.
        session_ttl: For the new manager: how long a conversation stays pinned after its
            last turn (default 300 s, near the providers' prompt-cache lifetimes).
    """

    def __init__(
        self,
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]],
        profiles: FailoverManager | Iterable[AuthProfile],
        *,
        config: FailoverConfig | None = None,
        timeout: float = 60.0,
        deadline: float | None = None,
        http_client: httpx.AsyncClient | None = None,
        sender: Sender | None = None,
        catalog: ModelCatalog | None = None,
        wait_for_recovery: bool = True,
        raise_on_content_filter: bool = False,
        fallback_on: Callable[[ProviderError], bool]
        | tuple[type[ProviderError], ...]
        | None = None,
        policy_overrides: Mapping[type[ProviderError], Action | str] | None = None,
        stream_idle_timeout: float = 30.0,
        hedge_after: float | Literal["p95"] | None = None,
        hedge_budget: float = 0.1,
        strategy: str | Strategy = "priority",
        sleep: Callable[[float], Awaitable[None]] | None = None,
        store: Store | None = None,
        telemetry: Telemetry | bool | None = None,
        strict_models: bool = False,
        budgets: Sequence[Budget] = (),
        max_in_flight: Mapping[str, int] | None = None,
        admission: bool = True,
        accept: Accept | None = None,
        on_stream_break: Literal["raise", "restart", "continue"] = "raise",
        session: str | None = None,
        affinity: Literal["session", "prefix", "off"] = "session",
        session_ttl: float | None = None,
    ) -> None:
        self._catalog, self._strict = catalog or default_catalog, strict_models
        self._chain = chain_from(chain, self._catalog, strict=strict_models)
        if self._chain.is_empty():
            raise ConfigError("chain must contain at least one model")
        if isinstance(profiles, FailoverManager):
            if (
                config is not None
                or store is not None
                or budgets
                or max_in_flight
                or session_ttl is not None
            ):
                raise ConfigError(
                    "pass config, store, budgets, max_in_flight and session_ttl to the "
                    "FailoverManager, not the client"
                )
            manager = profiles
        elif (
            profiles is None
            or isinstance(profiles, (str, bytes))
            or not isinstance(profiles, Iterable)
        ):
            raise ConfigError(
                "profiles must be a FailoverManager or a list of AuthProfile, "
                f"got {type(profiles).__name__}"
            )
        else:
            manager = FailoverManager(
                config,
                profiles=profiles,
                store=store,
                budgets=budgets,
                max_in_flight=max_in_flight,
                session_ttl=DEFAULT_SESSION_TTL if session_ttl is None else session_ttl,
            )
        self._started_store = False  # whether __aenter__ started the store (aclose stops it)
        for name, value in (("timeout", timeout), ("stream_idle_timeout", stream_idle_timeout)):
            if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if deadline is not None and (not isinstance(deadline, (int, float)) or not deadline > 0):
            raise ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self._adapters: dict[str, ProviderAdapter] = {}
        self._adopt(self.chain, manager)
        self._engine = Engine(
            manager,
            base_url_for=lambda provider: providers.get_adapter(provider).default_base_url,
            timeout=float(timeout),
            deadline=deadline,
            wait_for_recovery=wait_for_recovery,
            policy=Policy(
                raise_on_content_filter=raise_on_content_filter,
                overrides=policy_overrides,
                fallback_on=fallback_on,
            ),
            sleep=sleep or anyio.sleep,
            hedging=None if hedge_after is None else Hedging(hedge_after, budget=hedge_budget),
            strategy=strategy,
            telemetry=resolve_telemetry(telemetry),
            admission=admission,
        )
        self._groups = self._chain.groups or None
        self._steps = self._chain.steps  # what each call without a chain of its own walks
        self.accept = _checked_accept(accept)
        self.affinity = check_affinity(affinity)
        self.session = None if session is None else _checked_session(session)
        # whether every request has a session (the client's, or its prefix's)
        self._sessions_always = affinity == "prefix" or (
            affinity == "session" and self.session is not None
        )
        self._cost_strategy = self._engine.strategy.name == "cost"
        # whether a request's state names its chain's groups or its session without being
        # given one (else only a call's own session has a say)
        self._grouped_or_in_session = self._groups is not None or self._sessions_always
        self.on_stream_break = _checked_break(on_stream_break)
        self.stream_idle_timeout = float(stream_idle_timeout)
        self._owned_http: httpx.AsyncClient | None = None
        if sender is None:
            if http_client is None:
                http_client = self._owned_http = default_http_client()
            sender = HttpxSender(http_client)
        self._sender = sender
        self._calls = ChatCalls(
            self._engine, sender, self._adapters, stream_idle_timeout=self.stream_idle_timeout
        )
        self._complete = self._calls.complete  # bound once: complete()'s attempt
        self._stream_source = StreamSource(self._engine, self._calls.open_stream, self._unsupported)
        # a sender for asyncio alone (aiohttp) lets the engine bound attempts more cheaply
        self._sender_cancel_safe = bool(getattr(sender, "asyncio_cancel_safe", False))
        # so does HttpxSender for a whole reply on asyncio: it sends and reads it in a task
        # of its own that asyncio's cancellation never reaches (see failover.http). Not a
        # stream's: its first chunk is read in the caller's task, where a native cancel
        # landing one turn after a scope's would cut httpcore's shielded cleanup short.
        self._whole_apart = isinstance(sender, HttpxSender)
        # the HTTP libraries log replies' headers (which may echo a key) before we see them
        watch_http_logs(self._engine)

    @property
    def chain(self) -> FallbackChain:
        """The fallback chain the client was built with (fixed: its keys, adapters and
        groups were checked and read then; a call may bring its own, ``chain=``)."""
        return self._chain

    @property
    def manager(self) -> FailoverManager:
        """The profile manager this client draws keys from."""
        return self._engine.manager

    # -- public calls -------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        priority: int = 0,
        tags: str | Sequence[str] = (),
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]] | None = None,
        accept: Accept | None = None,
        check_schema: bool = True,
        session: str | None = None,
        **params: Any,
    ) -> Completion:
        """Complete ``messages`` (OpenAI shape), failing over as needed.

        ``priority``: a request waiting for room (a key's token window, an in-flight cap)
        goes before those of lower priority. ``tags``: budgets scoped ``tag:<tag>`` apply
        (e.g. a tenant). ``chain``: this call's chain instead of the client's (checked the
        same way; keys, health and budgets are shared). ``accept``: this call's check of
        the reply instead of the client's. ``check_schema``: with a strict ``json_schema``
        ``response_format``, a reply that does not parse or validate is rejected and the
        next model tried (``False``: take it as it is). ``session``: the conversation this
        call belongs to (see the client's ``session`` and ``affinity``).

        Raises:
            AllAttemptsFailed: Every model and key failed (``retry_after`` when known).
            NoProfileAvailable: No key could be tried at all.
            ProviderError: A failure that no other model can fix (e.g. InvalidRequestError),
                with ``attempts`` set.
        """
        request = chat_request(messages, max_tokens, temperature, params, stream=False)
        state = self._new_state(request, priority, tags, session, whole=True)
        steps = self._steps if chain is None else self._steps_for(chain, state)
        if request.plain and accept is None and self.accept is None:  # nothing to check
            attempt = partial(self._complete, request)
            unsupported = None  # plain text without parameters: every model takes it
        else:
            checks = self._checks(request, accept, check_schema)
            if checks is None:
                attempt = partial(self._complete, request)
            else:
                attempt = partial(self._checked, request, checks, state)
            unsupported = self._unsupported(request)
        result, model, profile = await self._engine.run(
            state, steps, attempt, unsupported=unsupported
        )
        usage: TokenUsage | None
        if not result.usage_known:
            usage = cost = None
        else:
            usage = result.usage
            cost = model.calculate_cost(usage)
        if state.ticket is not None:
            await self._engine.settle(state, usage)
        self._engine.succeeded(
            state,
            model,
            profile,
            cost,
            usage,
            # built only for telemetry, which may capture it
            exchange=(messages, result.text) if state.telemetry is not None else None,
        )
        return _completion(result, model, profile, state, cost)

    async def _checked(
        self, request: ChatRequest, checks: ReplyChecks, state: RequestState, ctx: AttemptContext
    ) -> ChatResult:
        """One attempt whose reply must pass ``checks`` (else ReplyRejected, with it)."""
        result = await self._complete(request, ctx)
        cost = ctx.model.calculate_cost(result.usage) if result.usage_known else None
        await checks.check(_completion(result, ctx.model, ctx.profile, state, cost))
        return result

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        priority: int = 0,
        tags: str | Sequence[str] = (),
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]] | None = None,
        on_stream_break: StreamBreak | None = None,
        accept: Accept | None = None,
        check_schema: bool = True,
        session: str | None = None,
        **params: Any,
    ) -> CompletionStream:
        """Stream a completion: an async iterator of text chunks, the last with usage.

        Failover happens until the first chunk reaches the caller; a later failure raises
        StreamInterrupted with the partial text. Use as ``async with client.stream(...) as s``
        or iterate directly. ``priority``, ``tags`` and ``chain`` as for :meth:`complete`;
        budgets are charged at the stream's end (its worst case when closed early or cut).
        ``on_stream_break`` and ``accept`` override the client's; ``accept`` and the strict
        schema check (``check_schema``, as for :meth:`complete`) run on the whole answer at
        its end, and a rejection is a break.
        """
        request = chat_request(messages, max_tokens, temperature, params, stream=True)
        state = self._new_state(request, priority, tags, session)
        steps = self._steps_for(chain, state)
        mode = self.on_stream_break if on_stream_break is None else _checked_break(on_stream_break)
        checks = self._checks(request, accept, check_schema)
        check = None if checks is None else checks.accept_reply
        return CompletionStream(
            self._stream_source, request, state, steps, on_break=mode, accept=check
        )

    async def call(
        self,
        fn: Callable[[AttemptContext], Awaitable[T]],
        *,
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]] | None = None,
    ) -> T:
        """Run ``fn`` with failover: it gets an AttemptContext (key, base URL, model);
        ``chain``: this call's chain instead of the client's.

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
                # the SDK's exception may carry the key (a URL with ?key=, a request's
                # headers): keep its type and message, not the exception itself
                error.__cause__ = None
                error.cause_type = type(exc).__qualname__
                raise error from None

        state = self._engine.new_request()
        if self._groups is not None:
            state.groups = self._groups
        steps = self._steps_for(chain, state)
        value, model, profile = await self._engine.run(state, steps, attempt)
        if state.ticket is not None:  # nothing tells its usage: its worst case is charged
            await self._engine.settle(state, None)
        self._engine.succeeded(state, model, profile, None)
        return value

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        model_chain: EmbeddingChain | FallbackChain | Iterable[str | Sequence[str]] | None = None,
        dimensions: int | None = None,
        task_type: str | None = None,
        mixed_dimensions: bool = False,
        **params: Any,
    ) -> Embeddings:
        """Embed ``inputs`` (one vector each), failing over as ``complete`` does.

        Args:
            inputs: A text, or a list of texts.
            model_chain: The embedding models to try (ids or an EmbeddingChain); default:
                the client's chain. Their vectors must have one length (see EmbeddingChain).
            dimensions: Ask every model for vectors of this length.
            task_type: What the vectors are for (Gemini's ``taskType``, e.g.
                ``"RETRIEVAL_QUERY"``); ignored by other wires.
            mixed_dimensions: Allow models whose vectors differ in length.
            **params: Further wire fields (``user``; Ollama's ``truncate``, ``keep_alive``;
                Gemini's ``title``); a model whose wire has no such field is skipped.

        Raises:
            ConfigError: Bad inputs, or a chain that mixes vector lengths (before any call).
            AllAttemptsFailed: Every model and key failed.
            ProviderError: A failure no other model can fix, with ``attempts`` set.
        """
        from failover.embeddings import EmbeddingChain, Embeddings, embedding_request

        request = embedding_request(inputs, task_type=task_type, params=params)
        chain = EmbeddingChain.of(
            self.chain if model_chain is None else model_chain,
            dimensions=dimensions,
            mixed_dimensions=mixed_dimensions,
        )
        _keyed(chain.models, self.manager)

        def unsupported(model: ModelEntry) -> str | None:
            return chain.adapter(model).embedding_unsupported(
                chain.request_for(request, model), model
            )

        async def attempt(ctx: AttemptContext) -> EmbeddingResult:
            adapter = chain.adapter(ctx.model)
            http_request = adapter.build_embedding_request(
                chain.request_for(request, ctx.model),
                model=ctx.model.id,
                api_key=ctx.api_key,
                base_url=ctx.base_url,
            )
            async with self._sender.open(http_request, ctx.timeout) as reply:
                body = await reply.aread()
                self._calls.check_reply(adapter, ctx, reply, body)
            result = adapter.parse_embedding_response(body, len(request.inputs))
            return chain.check(ctx.model, result)

        state = self._engine.new_request(asyncio_cancel_safe=self._sender_cancel_safe)
        characters = sum(len(text) for text in request.inputs)
        state.estimated_usage = TokenUsage(input_tokens=characters // 4 + 1, output_tokens=0)
        state.max_tokens = 0
        result, model, profile = await self._engine.run(
            state, chain.steps, attempt, unsupported=unsupported
        )
        cost = model.calculate_cost(result.usage) if result.usage_known else None
        if state.ticket is not None:
            await self._engine.settle(state, result.usage if result.usage_known else None)
        self._engine.succeeded(state, model, profile, cost)
        return Embeddings(
            vectors=result.vectors,
            model=model.key,
            provider=model.provider,
            profile=profile.name,
            usage=result.usage,
            cost_usd=cost,
            attempts=tuple(state.attempts),
            latency=monotonic() - state.started,
        )

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and each chain model's health."""
        return self._engine.status(self.chain.models)

    async def __aenter__(self) -> ResilientClient:
        # a shared store's sync (nothing for MemoryStore): whoever starts it stops it
        starting = not self.manager.store.running
        await self.manager.start()
        self._started_store = starting
        return self

    async def aclose(self) -> None:
        """Wait for pending async hooks, stop the store's sync if ``async with`` started it
        (a store already running is left to whoever started it), close the HTTP client."""
        try:
            await self._engine.aclose()
        finally:
            if self._started_store:
                self._started_store = False
                await self.manager.store.aclose()  # shielded: runs even when cancelled
        if self._owned_http is not None:
            await self._owned_http.aclose()

    def __repr__(self) -> str:
        return f"ResilientClient(chain={list(self.chain.names)!r}, profiles={len(self.manager)})"

    def _checks(
        self, request: ChatRequest, accept: Accept | None, check_schema: bool
    ) -> ReplyChecks | None:
        """What a call's reply must pass: the client's ``accept`` unless it brings its own,
        and the strict schema of its ``response_format`` (``None``: nothing)."""
        mine = self.accept if accept is None else _checked_accept(accept)
        return ReplyChecks.of(request, mine, check_schema=check_schema)

    def _steps_for(
        self,
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]] | None,
        state: RequestState,
    ) -> Sequence[tuple[ModelEntry, ...]]:
        """The call's steps: the client's, or its own chain's (whose groups then name the
        ``group:`` budgets)."""
        if chain is None:
            return self._steps
        own = self._chain_for(chain)
        state.groups = own.groups or None
        return own.steps

    def _chain_for(
        self, chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]]
    ) -> FallbackChain:
        """A call's own chain, checked as the client's is (every provider needs a key)."""
        found = chain_from(chain, self._catalog, strict=self._strict)
        if found.is_empty():
            raise ConfigError("chain must contain at least one model")
        self._adopt(found, self.manager)
        return found

    def _adopt(self, chain: Iterable[ModelEntry], manager: FailoverManager) -> None:
        """Load the adapter of every provider of ``chain``, each of which needs a key."""
        _keyed(chain, manager)
        for model in chain:
            if model.provider not in self._adapters:
                self._adapters[model.provider] = providers.get_adapter(model.provider)

    def _new_state(
        self,
        request: ChatRequest,
        priority: int,
        tags: str | Sequence[str],
        session: str | None = None,
        *,
        whole: bool = False,
    ) -> RequestState:
        """A chat request's bookkeeping, with what admission and the strategy read
        (``whole``: its replies are read whole, not streamed)."""
        engine = self._engine
        state = engine.new_request(
            asyncio_cancel_safe=on_asyncio()  # with an HttpxSender
            if self._whole_apart and whole
            else self._sender_cancel_safe
        )
        if self._cost_strategy:
            state.estimated_usage = estimate_usage(request)
        elif engine.admission is not None:
            state.estimate = partial(estimate_input_tokens, request)
        if request.max_tokens is not None:
            state.max_tokens = request.max_tokens
        if priority or tags:
            state.priority, state.tags = _checked_order(priority, tags)
        if session is not None or self._grouped_or_in_session:
            if self._groups is not None:
                state.groups = self._groups
            if session is not None or self._sessions_always:
                state.session = self._session_of(request, session)
        return state

    def _session_of(self, request: ChatRequest, session: str | None) -> str | None:
        """The request's conversation: its own, the client's, or (``affinity="prefix"``)
        its stable prefix's digest; ``None`` with affinity off."""
        if self.affinity == "off":
            return None
        if session is not None:
            return _checked_session(session)
        if self.session is not None:
            return self.session
        return prefix_session(request.messages, tools=request.params.get("tools"))

    def _unsupported(self, request: ChatRequest) -> Callable[[ModelEntry], str | None] | None:
        """Which field of ``request`` a model cannot take (the engine skips such models);
        ``None`` for plain text without parameters, which every model takes."""
        if request.plain:
            return None
        return lambda model: self._adapters[model.provider].unsupported_field(request, model)
