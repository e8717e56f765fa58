"""ResilientTransport: the failover loop at the HTTP layer, for calls made through SDKs.

Pass it as the transport of the SDK's ``httpx.AsyncClient`` or ``httpx2.AsyncClient``, or of
a sync ``httpx.Client`` or ``httpx2.Client``; it only uses what the two libraries share, and
builds requests and responses with the classes of whichever library the request came from.

It is an in-process gateway. A step of the SDK's own provider passes the SDK's request
through byte for byte (the key and base URL replaced), its reply guarded
(``failover.transport_guard``); a step of another provider (a ``fallback_models`` entry
such as ``anthropic/claude-haiku-4-5``) serves the request translated, and its reply comes
back in the SDK's own wire format (``failover.transport_gateway``).

Sync clients run the same async engine: on an event loop thread the transport owns (an
anyio blocking portal, started at the first sync request and stopped by ``close()``), with
each HTTP call made by the sync inner transport in a worker thread, so sync callers in
several threads do not wait for each other (``failover.transport_io``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import ModuleType, TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from failover import providers
from failover._closing import AsyncClosing
from failover._secrets import watch_http_logs
from failover._tasks import cancel_scope
from failover.admission import payload_input_tokens, payload_max_tokens
from failover.affinity import check_affinity, session_of_payload
from failover.catalog import ModelCatalog, ModelEntry, canonical_provider, default_catalog
from failover.chat_calls import ChatCalls, close_opened
from failover.config import FailoverConfig
from failover.engine import AttemptContext, Engine, HookMethods
from failover.errors import AllAttemptsFailed, ConfigError, ProviderError
from failover.http import library_of
from failover.policy import Policy
from failover.profiles import AuthProfile, FailoverManager, last_profile_change
from failover.providers.base import ProviderAdapter
from failover.telemetry import Telemetry, resolve_telemetry
from failover.transport_chains import SdkChains
from failover.transport_gateway import (
    ResponseOwners,
    StreamContinuation,
    Translation,
    encoded_reply,
    failure_reply,
    fallback_steps,
)
from failover.transport_guard import (
    guard_stream,
    served_headers,
)
from failover.transport_io import (
    IO,
    AsyncInner,
    AsyncIO,
    IOSender,
    SyncInner,
    ThreadIO,
    closed_error,
    widen_worker_threads,
)
from failover.transport_rewrite import (
    SESSION_HEADER,
    SdkHeaders,
    attempt_url,
    json_object,
    sdk_headers,
    without_credentials,
)
from failover.transport_sdk import Route, SdkRequest

logger = logging.getLogger("failover.transport")

__all__ = ["ResilientTransport"]

_URLS_KEPT = 256  # attempt URLs kept, parsed
_SPLICED = ("openai", "anthropic", "gemini")  # wires a passed-through stream is continued in
T = TypeVar("T")


class ResilientTransport(HookMethods, AsyncClosing):
    """A transport that rotates keys, backs off and falls over, inside an SDK's client.

    For each request it picks a profile of ``provider``, writes that profile's key the way
    the SDK did (``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key``) and its base
    URL, replacing whatever key the SDK was built with; on failure it applies the same
    policy as ResilientClient. A key only ever goes to its own profile's base URL: a
    request for any other URL (a redirect, say) is sent on with every credential removed.

    ``fallback_models`` may name models of other providers (``anthropic/claude-haiku-4-5``
    under the openai SDK, ``openai/gpt-4o-mini`` under the anthropic SDK, ...): the SDK's
    request (OpenAI Chat or Responses, Anthropic Messages, Gemini generateContent) is then
    translated for that provider, sent with that provider's own profiles, and its reply
    encoded back as the SDK's own provider sends it, streams event by event. A request
    that cannot cross providers (``previous_response_id``, a server-side tool, an audio
    part for a model without audio, ...) skips those models as ``unsupported``. Replies
    name who served them in ``x-failover-provider`` and ``x-failover-model``.

    When everything fails, the SDK gets an error reply in its own wire's shape, so it
    raises its own exception (``RateLimitError``, ``OverloadedError``, ...) with
    ``retry-after`` as usual: with only the SDK's own provider in the chain, the last error
    reply that provider sent; otherwise the last error, encoded.

    Replies are guarded: no header the SDK (or an HTTP library's log) sees shows a key; a
    2xx reply of a known endpoint that is not JSON of its shape fails over like an error;
    a stream reaches the SDK decoded, and one that ends before its endpoint's terminator
    or goes ``stream_idle_timeout`` without a line raises in the SDK and counts against
    its key. After :meth:`aclose`, requests in flight and any later call raise ConfigError.

    An OpenAI Responses request that continues a response this transport passed back
    (``previous_response_id``) goes to the key that made it, and to no other.

    Set the SDK's own ``max_retries=0`` so retries are not multiplied.

    It serves async clients (``handle_async_request``) and sync ones (``handle_request``)
    alike, with the same policy and the same manager. A sync call runs the engine on an
    event loop thread the transport starts when first needed; backoff blocks only the
    calling thread, hooks run on that thread's loop, and ``close()`` (the sync client's
    ``close()``) waits for pending hooks and stops it.

    Args:
        profiles: A FailoverManager, a ResilientClient (shares its manager and hooks), or
            AuthProfiles.
        provider: The provider whose profiles to use (``openai``, ``anthropic``, ...).
        inner: The transport to send through (default: the library's own, per request):
            an async one for async clients, a sync one for sync clients.
        fallback_models: Models to try, in order, after the one the SDK asked for
            (``model`` in JSON bodies, or in Gemini's URL): ids of ``provider``'s own
            (``gpt-4o``, or ``openai/gpt-4o``), or ``other-provider/model`` ids.
        sdk_base_url: The SDK's base URL, when it is not one of the profiles' or the
            provider's public one.
        config: Retry and cooldown settings (for a new manager).
        deadline: Seconds one SDK call may take in all, retries and fallbacks included.
        wait_for_recovery: When every key is resting, wait for the earliest recovery (on by
            default) while it fits the deadline, or ``config.max_recovery_wait`` without
            one, as ``ResilientClient`` does; ``False`` fails at once.
        sleep: The sleep used for backoff (inject one in tests).
        telemetry: Spans and metrics, as for ``ResilientClient`` (for a new engine).
        strict_models: Refuse ``fallback_models`` the catalog does not know
            (``ModelNotFound``); by default they are accepted unpriced with an
            ``UnknownModelWarning``.
        stream_idle_timeout: Seconds a stream may go without a line before it fails (as
            ``ResilientClient``'s): the wait for the reply's headers and each gap after.
        on_stream_break: What a stream that breaks after some text does: ``"raise"`` (the
            SDK raises, as before) or ``"continue"``: a candidate of the chain whose wire
            takes an assistant prefill (Anthropic, Claude on Bedrock and Vertex, Gemini,
            Ollama's own API; not OpenAI's) continues the text, and its chunks follow in
            the SDK's own wire format (OpenAI Chat, Anthropic Messages, Gemini), so the
            SDK sees one stream. A stream with a tool call begun, an OpenAI Responses
            stream passed through, or one no candidate can continue raises as before.
        affinity: ``"session"`` (default): a request with an ``x-failover-session`` header
            (``extra_headers=`` in the SDKs) goes first where that conversation was last
            served, as ``ResilientClient(session=)`` does; ``"prefix"``: a request without
            one gets the digest of its conversation's stable prefix (system prompt, tools,
            first user turn: every wire's body) as its session; ``"off"``: none. The header
            is never sent on to the provider.

    Raises:
        ConfigError: No profile serves ``provider`` or a provider of ``fallback_models``,
            or a ``fallback_models`` prefix names no known provider.
    """

    def __init__(
        self,
        profiles: FailoverManager | Any | Iterable[AuthProfile],
        *,
        provider: str,
        inner: AsyncInner | SyncInner | None = None,
        fallback_models: Sequence[str] = (),
        sdk_base_url: str | None = None,
        config: FailoverConfig | None = None,
        catalog: ModelCatalog | None = None,
        deadline: float | None = None,
        wait_for_recovery: bool = True,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        telemetry: Telemetry | bool | None = None,
        stream_idle_timeout: float = 30.0,
        strict_models: bool = False,
        on_stream_break: str = "raise",
        affinity: str = "session",
    ) -> None:
        if on_stream_break not in ("raise", "continue"):
            raise ConfigError(
                "ResilientTransport(on_stream_break=...) must be 'raise' or 'continue' (an "
                f"SDK cannot be told to discard a stream it has read), got {on_stream_break!r}"
            )
        self.on_stream_break = on_stream_break
        self.affinity = check_affinity(affinity)
        self.provider = canonical_provider(provider)
        self._adapter = providers.get_adapter(self.provider)
        if hasattr(self._adapter, "credentials_for"):  # signed per request (SigV4, OAuth)
            raise ConfigError(
                f"ResilientTransport(provider={self.provider!r}): a cloud provider's requests "
                "are signed per attempt, so an SDK's own requests cannot be passed through to "
                "it; wrap the SDK of its wire (provider='anthropic' or 'gemini') and list "
                f"'{self.provider}/<model>' in fallback_models, where it is served translated"
            )
        engine = getattr(profiles, "engine", None)
        if isinstance(engine, Engine):
            self._engine = engine
        else:
            if isinstance(profiles, FailoverManager):
                manager = profiles
            else:
                manager = FailoverManager(config, profiles=profiles)
            self._engine = Engine(
                manager,
                base_url_for=lambda name: providers.get_adapter(name).default_base_url,
                timeout=math.inf,
                deadline=deadline,
                wait_for_recovery=wait_for_recovery,
                policy=Policy(raise_on_content_filter=True),
                sleep=sleep or anyio.sleep,
                telemetry=resolve_telemetry(telemetry),
            )
        if self.provider not in self._engine.manager.providers():
            raise ConfigError(f"no auth profile for provider {self.provider!r}")
        if (
            not isinstance(stream_idle_timeout, (int, float))
            or not stream_idle_timeout > 0
            or math.isinf(stream_idle_timeout)
        ):
            raise ConfigError(
                f"stream_idle_timeout must be a positive number of seconds, "
                f"got {stream_idle_timeout!r}"
            )
        self.stream_idle_timeout = float(stream_idle_timeout)
        self._catalog = catalog or default_catalog
        self._steps = fallback_steps(
            fallback_models, self.provider, self._engine.manager, self._catalog
        )
        self._wire = default_catalog.providers().get(self.provider, "openai")
        self._models = SdkChains(self.provider, self._wire, self._steps, self._catalog)
        self._models.check_known(strict=strict_models)
        self.fallback_models = tuple(fallback_models)
        self._adapters: dict[str, ProviderAdapter] = {
            step.provider: providers.get_adapter(step.provider)
            for step in self._steps
            if isinstance(step, ModelEntry)
        }
        # every provider a chain can name (the SDK's own and the fallbacks'), for a
        # continuation, which serves each of them translated
        self._every_adapter = {self.provider: self._adapter, **self._adapters}
        self.sdk_base_url = sdk_base_url.rstrip("/") if sdk_base_url else None
        if inner is not None and not (
            hasattr(inner, "handle_async_request") or hasattr(inner, "handle_request")
        ):
            raise ConfigError(
                f"inner must be an httpx or httpx2 transport, got {type(inner).__name__}"
            )
        self._inner = inner
        # the async inner transport given, when it is one (else made per library)
        self._given_async: AsyncInner | None = (
            inner if hasattr(inner, "handle_async_request") else None  # type: ignore[assignment]
        )
        self._defaults: dict[str, AsyncInner] = {}
        self._async_io: AsyncIO | None = None  # the I/O over the inner transport used last
        self._sync_defaults: dict[str, SyncInner] = {}
        self._sync_lock = threading.Lock()  # guards the portal and the sync transports
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._owners = ResponseOwners()
        self._closed = False
        self._in_flight: set[tuple[int, anyio.CancelScope]] = set()  # (thread of its loop, scope)
        self._sdk_retries_seen = False  # warned that the SDK retries by itself (once)
        self._sdk_retries_lock = threading.Lock()
        self._bases_of: tuple[int, list[str]] | None = None  # (last profile change, bases)
        self._urls: dict[tuple[ModuleType, str, str], Any] = {}  # (library, base, suffix)
        # (last profile change, {an SDK request's parsed URL: its route}), see _route_of
        self._routes: tuple[int, dict[Any, Route | None]] = (-1, {})
        watch_http_logs(self._engine)

    @property
    def manager(self) -> FailoverManager:
        """The profile manager this transport draws keys from."""
        return self._engine.manager

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` with failover; return the first good response, or an error reply.

        Raises:
            ConfigError: The transport is closed, or was closed while the request waited.
        """
        self._check_open()
        headers = sdk_headers(request.headers)
        self._note_sdk_retry(headers.retries)
        library = library_of(request)
        inner = self._given_async or self._async_inner(library)
        route = self._route_of(request.url)
        if route is None:  # not one of our hosts: never attach a key
            bare = without_credentials(request, library)
            return await self._serve(inner.handle_async_request, bare)
        io = self._async_io
        if io is None or io.inner is not inner:  # (one a transport, the same inner's)
            io = self._async_io = AsyncIO(inner)
        return await self._serve(self._failover, request, headers, library, route, None, io)

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` from a sync client with failover, as :meth:`handle_async_request`.

        The engine runs on the transport's event loop thread; this thread waits for it
        (backoff included) and, for a stream, reads the body itself as the SDK iterates.

        Raises:
            ConfigError: The transport is closed, or was closed while the request waited.
        """
        self._check_open()
        headers = sdk_headers(request.headers)
        self._note_sdk_retry(headers.retries)
        library = library_of(request)
        inner = self._sync_inner(library)
        route = self._route_of(request.url)
        if route is None:  # not one of our hosts: never attach a key
            with self._ended_by_close():
                return inner.handle_request(without_credentials(request, library))
        body = request.read()
        portal = self._start_portal()
        io = ThreadIO(inner, portal)
        arguments = (request, headers, library, route, body, io)
        try:
            future = portal.start_task_soon(self._serve, self._failover, *arguments)
        except RuntimeError:  # the portal stopped meanwhile: the transport was closed
            raise closed_error(in_flight=True) from None
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the request on the loop as well
            raise

    async def _failover(
        self,
        request: Any,
        headers: SdkHeaders,
        library: ModuleType,
        route: Route,
        body: bytes | None,
        io: IO,
    ) -> Any:
        """The failover loop around one SDK request, its I/O done by ``io`` (``body``:
        the request's, read; ``None``: an async client's, read here)."""
        if body is None:
            body = await request.aread()
        payload = json_object(body)
        suffix, wire = route.suffix, route.wire
        requested = self._models.requested(payload, suffix)
        chain = self._models.chain(requested)
        engine = self._engine
        sdk = SdkRequest(
            request,
            library,
            (route, body, payload, requested),
            io,
            self.provider,
            style_for=self._wire,
            stream_idle_timeout=self.stream_idle_timeout,
            engine=engine,
            url_for=self._url,
            owner_of=self._owner_of,
            credentials=headers.credentials,
        )
        translation: Translation | None = None
        unsupported: Callable[[ModelEntry], str | None] | None = None
        run_attempt: Callable[[AttemptContext], Awaitable[Any]] = sdk.attempt
        if self._adapters:  # steps of other providers: they serve the request translated
            sender = IOSender(io, library, sdk.extensions)
            calls = ChatCalls(
                engine, sender, self._adapters, stream_idle_timeout=self.stream_idle_timeout
            )
            translation = Translation(
                route, payload, calls, own=self.provider, same_wire=sdk.attempt
            )
            unsupported = translation.skipped
            run_attempt = translation.either
        state = engine.new_request()
        if headers.session is not None or self.affinity == "prefix":
            state.session = self._session_of(request, headers.session, payload)
        if engine.admission is not None and isinstance(payload, dict):
            state.estimate = functools.partial(payload_input_tokens, payload)
            state.max_tokens = payload_max_tokens(payload)
        if translation is not None:
            state.release = _release  # a hedged stream that lost: let it go
        previous = payload.get("previous_response_id") if sdk.responses and payload else None
        owner = self._owners.owner(previous, self.manager) if isinstance(previous, str) else None
        why = ""  # why a request pinned to one key goes nowhere else
        if owner is not None:
            why = (
                f"previous_response_id {previous!r} continues a response made with key "
                f"{owner.name!r}: no other key or provider can continue it"
            )
        try:
            value, model, profile = await engine.run(
                state, chain, run_attempt, unsupported=unsupported, key=owner, why=why
            )
        except (AllAttemptsFailed, ProviderError) as exc:
            held_reply = sdk.held
            return failure_reply(library, request, wire, exc, held_reply, translation, why or None)
        if state.ticket is not None:  # the SDK reads the usage: charged its worst case
            await engine.settle(state, None)
        continuation = None
        if self.on_stream_break == "continue" and sdk.streaming:
            continuation = self._continuation(chain, route, payload, library, io, sdk)
        if translation is not None and model.provider != self.provider:
            decoded = translation.decoded()
            assert decoded is not None
            served = served_headers(model.provider, model.id)
            chosen = (engine, state, model, profile)
            return encoded_reply(
                library, request, decoded, value, chosen, served, io, self._shut, continuation
            )
        if sdk.streaming:
            value = guard_stream(
                library,
                value,
                sdk.endpoint,
                engine,
                (state, model, profile),
                io,
                self.stream_idle_timeout,
                self._shut,
                served_headers(self.provider, model.id),
                self._owner_of(profile) if sdk.responses else None,
                None
                if continuation is None or wire not in _SPLICED
                else functools.partial(
                    continuation.spliced, broken=(model, profile), request_id=state.id
                ),
            )
        engine.succeeded(state, model, profile, None)
        return value

    def _continuation(
        self,
        chain: Sequence[ModelEntry | Sequence[ModelEntry]],
        route: Route,
        payload: dict[str, Any] | None,
        library: ModuleType,
        io: IO,
        sdk: SdkRequest,
    ) -> StreamContinuation:
        """What continues this SDK stream if it breaks (every model served translated)."""
        adapters = self._every_adapter
        sender = IOSender(io, library, sdk.extensions)
        calls = ChatCalls(
            self._engine, sender, adapters, stream_idle_timeout=self.stream_idle_timeout
        )
        return StreamContinuation(
            self._engine,
            chain,
            route,
            payload,
            calls,
            self._shut,
            adapters.__getitem__,
        )

    def _session_of(
        self, request: Any, given: str | None, payload: dict[str, Any] | None
    ) -> str | None:
        """The conversation of an SDK request (its header ``given``, taken out of the
        request, or its prefix's digest with ``affinity="prefix"``)."""
        if given is not None:
            del request.headers[SESSION_HEADER]  # the provider never sees it
        if self.affinity == "off":
            return None
        if given:
            return str(given)
        if self.affinity == "prefix" and payload is not None:
            return session_of_payload(payload)
        return None

    def _owner_of(self, profile: AuthProfile) -> Callable[[str], None]:
        """Notes ``profile`` as the maker of the Responses response whose id it is told."""
        return functools.partial(self._owners.remember, profile=profile)

    def _shut(self) -> bool:
        """Whether the transport has been closed."""
        return self._closed

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and per-model health."""
        return self._engine.status(self._models.chain(None))

    async def aclose(self) -> None:
        """Close the transport for good: end the requests in flight, wait for pending hooks,
        close the inner transports.

        Requests in flight (on this event loop and sync ones), streams being read and every
        later call end with a ConfigError saying the transport is closed.
        """
        self._closed = True
        self._cancel_in_flight()
        await self._engine.aclose()
        inner = [self._inner] if hasattr(self._inner, "aclose") else []
        for transport in {id(t): t for t in [*inner, *self._defaults.values()]}.values():
            await transport.aclose()  # type: ignore[union-attr]
        if self._portal_context is not None or self._sync_defaults:
            await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        """Close what sync clients used (a sync client's ``close()`` calls this).

        Waits for the hooks their calls started, stops the engine's event loop thread and
        closes the sync inner transports. A later sync call starts the thread again.
        """
        with self._sync_lock:
            context, portal = self._portal_context, self._portal
            self._portal_context = self._portal = None
            transports = list(self._sync_defaults.values())
            self._sync_defaults.clear()
        if context is not None and portal is not None:
            try:
                if self._closed:  # aclose(): end the sync requests in flight too
                    portal.call(self._cancel_in_flight)
                portal.call(self._engine.aclose)
            finally:
                context.__exit__(None, None, None)
        if hasattr(self._inner, "close"):
            transports.append(self._inner)  # type: ignore[arg-type]
        for transport in transports:
            transport.close()

    def __enter__(self) -> ResilientTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResilientTransport(provider={self.provider!r}, profiles={len(self.manager)})"

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(in_flight=False)

    @contextlib.contextmanager
    def _ended_by_close(self) -> Iterator[None]:
        """Whatever a request raises once the transport is closed becomes ConfigError."""
        try:
            yield
        except Exception:
            if self._closed:
                raise closed_error(in_flight=True) from None
            raise

    async def _serve(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run one request, ``call(*args)``, so that :meth:`aclose` can end it (with
        ConfigError)."""
        scope = cancel_scope()
        entry = (threading.get_ident(), scope)
        in_flight = self._in_flight
        in_flight.add(entry)
        try:  # as _ended_by_close, without a generator's frame per request
            with scope:
                return await call(*args)
        except Exception:
            if self._closed:
                raise closed_error(in_flight=True) from None
            raise
        finally:
            in_flight.discard(entry)
        raise closed_error(in_flight=True)  # aclose() cancelled it

    def _cancel_in_flight(self) -> None:
        """Cancel the requests in flight on this thread's event loop."""
        here = threading.get_ident()
        for thread, scope in list(self._in_flight):
            if thread == here:
                scope.cancel()

    def _async_inner(self, library: ModuleType) -> AsyncInner:
        if self._inner is not None:
            if not hasattr(self._inner, "handle_async_request"):
                raise ConfigError(
                    f"inner transport {type(self._inner).__name__} is sync only; an async "
                    f"client needs an async one (e.g. {library.__name__}.AsyncHTTPTransport())"
                )
            return self._inner  # type: ignore[return-value]
        transport = self._defaults.get(library.__name__)
        if transport is None:
            transport = self._defaults[library.__name__] = library.AsyncHTTPTransport()
        return transport

    def _sync_inner(self, library: ModuleType) -> SyncInner:
        if self._inner is not None:
            if not hasattr(self._inner, "handle_request"):
                raise ConfigError(
                    f"inner transport {type(self._inner).__name__} is async only; a sync "
                    f"client needs a sync one (e.g. {library.__name__}.HTTPTransport())"
                )
            return self._inner  # type: ignore[return-value]
        with self._sync_lock:
            transport = self._sync_defaults.get(library.__name__)
            if transport is None:
                transport = self._sync_defaults[library.__name__] = library.HTTPTransport()
            return transport

    def _start_portal(self) -> BlockingPortal:
        """The event loop thread that runs the engine for sync requests (started once)."""
        with self._sync_lock:
            self._check_open()
            if self._portal is None:
                context = start_blocking_portal(name=f"failover-{self.provider}-transport")
                portal = context.__enter__()
                portal.call(widen_worker_threads)
                self._portal_context, self._portal = context, portal
            return self._portal

    def _bases(self) -> list[str]:
        """Known base URLs, in matching order: the SDK's, the profiles', the public one.

        Profiles' base URLs must be written the way the SDK takes them; a profile without
        one is sent to the provider's public URL only.
        """
        # made again only after a profile changes (added, removed or updated)
        changed_at = last_profile_change()
        cached = self._bases_of
        if cached is not None and cached[0] == changed_at:
            return cached[1]
        profiles = sorted(
            {
                p.base_url
                for p in self.manager.list_profiles()
                if p.provider == self.provider and p.base_url
            },
            key=len,
            reverse=True,
        )
        first = [self.sdk_base_url] if self.sdk_base_url else []
        bases = [*first, *profiles, self._adapter.default_base_url]
        self._bases_of = (changed_at, bases)
        return bases

    def _route_of(self, url: Any) -> Route | None:
        """The :class:`Route` of a request's URL (its :meth:`_suffix`, wire and endpoint),
        ``None`` for a URL under no known base URL. Kept per URL (by its parsed parts, a
        tuple: no text made nor read again for a URL seen before) until a profile changes;
        a URL with a query or credentials (where a key may be) is never kept."""
        parts = getattr(url, "_uri_reference", None)  # httpx's and httpx2's parsed URL
        if parts is None or parts.query is not None or parts.userinfo:
            return self._route(str(url))
        changed_at = last_profile_change()
        kept = self._routes
        if kept[0] != changed_at:
            kept = self._routes = (changed_at, {})
        routes = kept[1]
        try:
            return routes[parts]
        except KeyError:
            pass
        route = routes[parts] = self._route(str(url))
        if len(routes) > _URLS_KEPT:  # paths come from callers: stay bounded
            with contextlib.suppress(StopIteration, RuntimeError, KeyError):
                del routes[next(iter(routes))]
        return route

    def _route(self, url: str) -> Route | None:
        """The route of ``url`` read anew (``None``: under no known base URL)."""
        suffix = self._suffix(url)
        return None if suffix is None else Route(suffix)

    def _suffix(self, url: str) -> str | None:
        """The part of ``url`` after a known base URL (path and query), or ``None``."""
        for base in self._bases():
            if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
                return url[len(base) :]
        return None

    def _note_sdk_retry(self, retries: str | None) -> None:
        """Warn, once per transport, when the SDK retries requests itself.

        The openai and anthropic SDKs number their retries in ``x-stainless-retry-count``;
        left at their default ``max_retries`` they repeat every request the transport
        already failed over, multiplying the attempts (and the wait).
        """
        # (the SDKs send "0" with a first try)
        if self._sdk_retries_seen or retries is None or retries == "0":
            return
        try:
            count = int(retries or 0)
        except ValueError:
            return
        if count <= 0:
            return
        with self._sdk_retries_lock:
            if self._sdk_retries_seen:
                return
            self._sdk_retries_seen = True
        message = (
            f"the SDK retried a request itself (x-stainless-retry-count: {count}) after "
            f"ResilientTransport(provider={self.provider!r}) had already retried and failed "
            "it over: its retries multiply the attempts. Build the SDK client with "
            "max_retries=0"
        )
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)

    def _url(self, library: ModuleType, base_url: str, suffix: str) -> Any:
        """The URL of an attempt to ``base_url`` (parsed once): the suffix's path and query,
        without any ``key`` parameter."""
        key = (library, base_url, suffix)
        url = self._urls.get(key)
        if url is None:
            url = library.URL(attempt_url(base_url, suffix))
            if len(self._urls) >= _URLS_KEPT:
                with contextlib.suppress(StopIteration, RuntimeError):
                    self._urls.pop(next(iter(self._urls)), None)
            self._urls[key] = url
        return url


async def _release(value: Any) -> None:
    """Free what a losing hedged attempt produced: a translated stream it opened."""
    if isinstance(value, tuple):
        await close_opened(value)
