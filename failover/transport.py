"""ResilientTransport: the failover loop at the HTTP layer, for calls made through SDKs.

Pass it as the transport of the SDK's ``httpx.AsyncClient`` or ``httpx2.AsyncClient``, or of
a sync ``httpx.Client`` or ``httpx2.Client``; it only uses what the two libraries share, and
builds requests and responses with the classes of whichever library the request came from.

Sync clients run the same async engine: on an event loop thread the transport owns (an
anyio blocking portal, started at the first sync request and stopped by ``close()``), with
each HTTP call made by the sync inner transport in a worker thread, so sync callers in
several threads do not wait for each other.

Every reply is guarded before the SDK sees it: its headers are scrubbed of keys; a 2xx reply
of an endpoint the transport knows (``_ENDPOINTS``) must be JSON of that endpoint's shape;
a stream is decoded (whatever its ``Content-Encoding``) and read as it passes, by the
endpoint's own reader, for its terminator, for keys in error events, and for idle gaps.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

import providers
from failover._closing import AsyncClosing
from failover._secrets import KeyScrubber, LogScrubber
from failover.catalog import ModelCatalog, ModelEntry, canonical_provider, default_catalog
from failover.classify import classify_exception, classify_http_error
from failover.config import FailoverConfig
from failover.engine import AttemptContext, Engine, HookMethods, RequestState
from failover.errors import (
    AllAttemptsFailed,
    ConfigError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
)
from failover.http import library_of
from failover.policy import Policy
from failover.profiles import AuthProfile, FailoverManager
from failover.telemetry import Telemetry, resolve_telemetry
from providers.base import StreamChunk, StreamParser, load_json

__all__ = ["ResilientTransport"]

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
_DEFAULT_STYLE = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}
_BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
_WORKER_THREADS = 100  # sync HTTP calls in flight at once (httpx's default pool size)
_HTTP_LOGGERS = (
    "httpx",
    "httpx2",
    *(
        f"{library}.{part}"
        for library in ("httpcore", "httpcore2")
        for part in ("connection", "http11", "http2", "proxy", "socks")
    ),
)
"""The loggers that print requests' URLs and replies' headers, before the transport sees them."""
_LOGS = LogScrubber()
T = TypeVar("T")


class _Transport(Protocol):
    async def handle_async_request(self, request: Any) -> Any: ...

    async def aclose(self) -> None: ...


class _SyncTransport(Protocol):
    def handle_request(self, request: Any) -> Any: ...

    def close(self) -> None: ...


class ResilientTransport(HookMethods, AsyncClosing):
    """A transport that rotates keys, backs off and falls over, inside an SDK's client.

    For each request it picks a profile of ``provider``, writes that profile's key the way
    the SDK did (``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key``) and its base
    URL, replacing whatever key the SDK was built with; on failure it applies the same
    policy as ResilientClient. A key only ever goes to its own profile's base URL: a
    request for any other URL (a redirect, say) is sent on with every credential removed.
    When everything fails, the SDK gets the last error response, so it raises its own
    exception as usual.

    Replies are guarded: no header the SDK (or an HTTP library's log) sees shows a key; a
    2xx reply of a known endpoint that is not JSON of its shape fails over like an error;
    a stream reaches the SDK decoded, and one that ends before its endpoint's terminator
    or goes ``stream_idle_timeout`` without a line raises in the SDK and counts against
    its key. After :meth:`aclose`, requests in flight and any later call raise ConfigError.

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
        fallback_models: Model ids of the same wire protocol to try, in order, after the
            one the SDK asked for (``model`` in JSON bodies, or in Gemini's URL).
        sdk_base_url: The SDK's base URL, when it is not one of the profiles' or the
            provider's public one.
        config: Retry and cooldown settings (for a new manager).
        deadline: Seconds one SDK call may take in all, retries and fallbacks included.
        wait_for_recovery: When every key is cooling, wait for the earliest if it fits.
        sleep: The sleep used for backoff (inject one in tests).
        telemetry: Spans and metrics, as for ``ResilientClient`` (for a new engine).
        stream_idle_timeout: Seconds a stream may go without a line before it fails (as
            ``ResilientClient``'s): the wait for the reply's headers and each gap after.
    """

    def __init__(
        self,
        profiles: FailoverManager | Any | Iterable[AuthProfile],
        *,
        provider: str,
        inner: _Transport | _SyncTransport | None = None,
        fallback_models: Sequence[str] = (),
        sdk_base_url: str | None = None,
        config: FailoverConfig | None = None,
        catalog: ModelCatalog | None = None,
        deadline: float | None = None,
        wait_for_recovery: bool = False,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        telemetry: Telemetry | bool | None = None,
        stream_idle_timeout: float = 30.0,
    ) -> None:
        self.provider = canonical_provider(provider)
        self._adapter = providers.get_adapter(self.provider)
        engine = getattr(profiles, "_engine", None)
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
        if isinstance(fallback_models, str):
            raise ConfigError("fallback_models must be a list of model ids, not a str")
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
        self.fallback_models = tuple(fallback_models)
        self.sdk_base_url = sdk_base_url.rstrip("/") if sdk_base_url else None
        self._catalog = catalog or default_catalog
        if inner is not None and not (
            hasattr(inner, "handle_async_request") or hasattr(inner, "handle_request")
        ):
            raise ConfigError(
                f"inner must be an httpx or httpx2 transport, got {type(inner).__name__}"
            )
        self._inner = inner
        self._defaults: dict[str, _Transport] = {}
        self._sync_defaults: dict[str, _SyncTransport] = {}
        self._sync_lock = threading.Lock()  # guards the portal and the sync transports
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._wire = default_catalog.providers().get(self.provider, "openai")
        self._closed = False
        self._in_flight: set[tuple[int, anyio.CancelScope]] = set()  # (thread of its loop, scope)
        _LOGS.watch(self._engine, _HTTP_LOGGERS)

    @property
    def manager(self) -> FailoverManager:
        """The profile manager this transport draws keys from."""
        return self._engine.manager

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` with failover; return the first good response, or the last bad one.

        Raises:
            ConfigError: The transport is closed, or was closed while the request waited.
        """
        self._check_open()
        library = library_of(request)
        inner = self._async_inner(library)
        suffix = self._suffix(str(request.url))
        if suffix is None:  # not one of our hosts: never attach a key
            bare = _without_credentials(request, library)
            return await self._serve(functools.partial(inner.handle_async_request, bare))
        body = await request.aread()
        io = _AsyncIO(inner)
        return await self._serve(
            functools.partial(self._failover, request, library, suffix, body, io)
        )

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` from a sync client with failover, as :meth:`handle_async_request`.

        The engine runs on the transport's event loop thread; this thread waits for it
        (backoff included) and, for a stream, reads the body itself as the SDK iterates.

        Raises:
            ConfigError: The transport is closed, or was closed while the request waited.
        """
        self._check_open()
        library = library_of(request)
        inner = self._sync_inner(library)
        suffix = self._suffix(str(request.url))
        if suffix is None:  # not one of our hosts: never attach a key
            with self._ended_by_close():
                return inner.handle_request(_without_credentials(request, library))
        body = request.read()
        portal = self._start_portal()
        io = _ThreadIO(inner, portal)
        call = functools.partial(self._failover, request, library, suffix, body, io)
        try:
            future = portal.start_task_soon(self._serve, call)
        except RuntimeError:  # the portal stopped meanwhile: the transport was closed
            raise _closed_error(in_flight=True) from None
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the request on the loop as well
            raise

    async def _failover(
        self, request: Any, library: ModuleType, suffix: str, body: bytes, io: _IO
    ) -> Any:
        """The failover loop around one SDK request, its I/O done by ``io``."""
        payload = _json_object(body)
        requested = self._requested_model(payload, suffix)
        chain = self._chain(requested)
        style = next((h for h in _CREDENTIAL_HEADERS if h in request.headers), None)
        style = style or _DEFAULT_STYLE.get(self._wire, "authorization")
        streaming = bool(payload and payload.get("stream")) or ":stream" in suffix
        endpoint = _endpoint_of(request.method, suffix)
        extensions = request.extensions
        if streaming:  # the wait for the headers, as each read after, is bounded by the idle time
            extensions = _with_read_timeout(extensions, self.stream_idle_timeout)
        last_error_response: list[Any] = []

        async def attempt(ctx: AttemptContext) -> Any:
            outgoing = _rewrite(
                request, library, ctx, suffix, style, body, payload, requested, extensions
            )
            try:
                response = await io.send(outgoing)
            except Exception as exc:
                error = _provider_error(exc, self.provider, ctx.model.id)
                if error is None:
                    raise
                raise error from None
            if response.status_code < 400:
                response = await self._checked(
                    library, response, outgoing, streaming, endpoint, io, ctx.model.id
                )
                self._engine.note_headroom(ctx.request_id, ctx.profile, response.headers)
                return response
            content = await _read(io, response, self.provider, ctx.model.id)
            error = classify_http_error(response.status_code, response.headers, content)
            scrub = self._engine.scrubber()  # the SDK puts the body in its exception
            text = scrub.in_json(content.decode("utf-8", "surrogateescape"))
            last_error_response[:] = [
                _reread(library, response, text.encode("utf-8", "surrogateescape"), outgoing, scrub)
            ]
            raise error

        state = self._engine.new_request()
        try:
            response, model, profile = await self._engine.run(state, chain, attempt)
        except (AllAttemptsFailed, ProviderError) as exc:
            if last_error_response:
                return last_error_response[0]
            return _no_key_response(library, request, exc)
        if streaming:
            response = self._guard_stream(library, response, endpoint, state, model, profile, io)
        self._engine.succeeded(state, model, profile, None)
        return response

    async def _checked(
        self,
        library: ModuleType,
        response: Any,
        outgoing: Any,
        streaming: bool,
        endpoint: _Endpoint | None,
        io: _IO,
        model: str,
    ) -> Any:
        """A reply below 400 the SDK may be given, its headers scrubbed of keys.

        A JSON body must parse; a 2xx reply of a known endpoint must be JSON of that
        endpoint's shape. Anything else raises MalformedResponseError (failover applies).
        Streams are checked as they pass (see :meth:`_guard_stream`).
        """
        if streaming:
            return response
        scrub = self._engine.scrubber()
        content_type = response.headers.get("content-type", "")
        shaped = endpoint if 200 <= response.status_code < 300 else None  # what it must be
        if shaped is None and "json" not in content_type:  # a redirect, audio, a file
            return _rebuilt(library, response, _shown(response.headers, scrub), response.stream)
        content = await _read(io, response, self.provider, model)
        if shaped is not None and "json" not in content_type:
            kind = content_type.partition(";")[0].strip() or "untyped"
            raise MalformedResponseError(
                f"a {kind} reply where JSON was expected ({len(content)} bytes)"
            )
        value = load_json(content)
        if shaped is not None and not shaped.fits(value):
            raise MalformedResponseError(
                f"the reply's JSON is {_described(value)}, not an object with "
                + " or ".join(repr(key) for key in shaped.reply_keys)
            )
        return _reread(library, response, content, outgoing, scrub)

    def _guard_stream(
        self,
        library: ModuleType,
        response: Any,
        endpoint: _Endpoint | None,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        io: _IO,
    ) -> Any:
        """The reply with its stream decoded and watched by its endpoint's reader.

        A stream that ends without its terminator, goes ``stream_idle_timeout`` without a
        line, or cannot be read raises the library's RemoteProtocolError (ReadTimeout when
        idle) into the SDK, so it is never taken as complete, and counts as a failure of
        that endpoint (recorded on the engine's event loop, whichever thread iterates the
        stream). A stream of an endpoint the transport does not know passes unguarded.
        """
        scrub = self._engine.scrubber()
        reader = endpoint.stream_reader() if endpoint is not None else None
        if reader is None or not 200 <= response.status_code < 300:
            return _rebuilt(library, response, _shown(response.headers, scrub), response.stream)
        engine = self._engine

        def failed(error: ProviderError) -> Exception:
            if self._closed:
                return _closed_error(in_flight=True)

            def record() -> None:
                engine.record_attempt(state, model, profile, error, state.started)
                engine.record_failure(state, model, profile, error)

            io.on_loop(record)
            timeout = isinstance(error, ProviderTimeoutError)
            kind = library.ReadTimeout if timeout else library.RemoteProtocolError
            return kind(error.message)  # type: ignore[no-any-return]

        parser, sse = reader
        watch = _TerminatorWatch(parser, sse, engine.scrubber)
        guard = _StreamGuard(watch, self.stream_idle_timeout, failed, lambda: self._closed)
        headers = _shown(response.headers, scrub, drop=_BODY_HEADERS)  # the SDK gets it decoded
        return _rebuilt(library, response, headers, _guarded_stream(library)(response, guard))

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and per-model health."""
        return self._engine.status(self._chain(None))

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
            raise _closed_error(in_flight=False)

    @contextlib.contextmanager
    def _ended_by_close(self) -> Iterator[None]:
        """Whatever a request raises once the transport is closed becomes ConfigError."""
        try:
            yield
        except Exception:
            if self._closed:
                raise _closed_error(in_flight=True) from None
            raise

    async def _serve(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request so that :meth:`aclose` can end it (with ConfigError)."""
        entry = (threading.get_ident(), anyio.CancelScope())
        self._in_flight.add(entry)
        try:
            with self._ended_by_close(), entry[1]:
                return await call()
        finally:
            self._in_flight.discard(entry)
        raise _closed_error(in_flight=True)  # aclose() cancelled it

    def _cancel_in_flight(self) -> None:
        """Cancel the requests in flight on this thread's event loop."""
        here = threading.get_ident()
        for thread, scope in list(self._in_flight):
            if thread == here:
                scope.cancel()

    def _async_inner(self, library: ModuleType) -> _Transport:
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

    def _sync_inner(self, library: ModuleType) -> _SyncTransport:
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
                portal.call(_widen_worker_threads)
                self._portal_context, self._portal = context, portal
            return self._portal

    def _bases(self) -> list[str]:
        """Known base URLs, in matching order: the SDK's, the profiles', the public one.

        Profiles' base URLs must be written the way the SDK takes them; a profile without
        one is sent to the provider's public URL only.
        """
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
        return [*first, *profiles, self._adapter.default_base_url]

    def _suffix(self, url: str) -> str | None:
        """The part of ``url`` after a known base URL (path and query), or ``None``."""
        for base in self._bases():
            if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
                return url[len(base) :]
        return None

    def _requested_model(self, payload: dict[str, Any] | None, suffix: str) -> str | None:
        if payload is not None and isinstance(payload.get("model"), str):
            return str(payload["model"])
        if self._wire == "gemini" and "/models/" in suffix:
            return suffix.split("/models/", 1)[1].split(":", 1)[0]
        return None

    def _chain(self, requested: str | None) -> list[ModelEntry]:
        ids = [requested] if requested else []
        ids += [m for m in self.fallback_models if m not in ids]
        if not ids:
            ids = [""]  # a request with no model: one pass over the keys
        return [
            self._catalog.get(self.provider, model_id)
            or ModelEntry(id=model_id, name=model_id, provider=self.provider, api=self._wire)
            for model_id in ids
        ]


class _IO(Protocol):
    """How the failover loop sends a request and reads a reply, for one kind of client."""

    async def send(self, request: Any) -> Any: ...

    async def read_and_close(self, response: Any) -> bytes: ...

    def on_loop(self, function: Callable[[], None]) -> None: ...


class _AsyncIO:
    """I/O of an async client: the inner async transport, on the caller's event loop."""

    def __init__(self, inner: _Transport) -> None:
        self._inner = inner

    async def send(self, request: Any) -> Any:
        return await self._inner.handle_async_request(request)

    async def read_and_close(self, response: Any) -> bytes:
        content: bytes = await response.aread()
        await response.aclose()
        return content

    def on_loop(self, function: Callable[[], None]) -> None:
        function()  # the stream is read on the engine's loop already


class _ThreadIO:
    """I/O of a sync client: the inner sync transport, in worker threads of the portal.

    A cancelled call (deadline, hedge lost, caller interrupted) abandons its thread at
    once; the reply that thread gets later is closed, not leaked.
    """

    def __init__(self, inner: _SyncTransport, portal: BlockingPortal) -> None:
        self._inner = inner
        self._portal = portal

    async def send(self, request: Any) -> Any:
        handoff = _Handoff(self._inner.handle_request)
        try:
            return await anyio.to_thread.run_sync(handoff.send, request, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            handoff.abandon()
            raise

    async def read_and_close(self, response: Any) -> bytes:
        return await anyio.to_thread.run_sync(_read_and_close, response, abandon_on_cancel=True)

    def on_loop(self, function: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the transport was closed meanwhile
            self._portal.call(function)


class _Handoff:
    """Passes a reply from a worker thread to the loop, or closes it if nobody waits."""

    def __init__(self, send: Callable[[Any], Any]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: Any = None

    def send(self, request: Any) -> Any:
        response = self._send(request)
        with self._lock:
            if not self._abandoned:
                self._response = response
                return response
        response.close()
        return response

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response, self._response = self._response, None
        if response is not None:  # it arrived as the wait was cancelled
            response.close()


def _read_and_close(response: Any) -> bytes:
    try:
        content: bytes = response.read()
    finally:
        response.close()
    return content


async def _widen_worker_threads() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = _WORKER_THREADS


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body or not body.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _rewrite(
    request: Any,
    library: ModuleType,
    ctx: AttemptContext,
    suffix: str,
    style: str,
    body: bytes,
    payload: dict[str, Any] | None,
    requested: str | None,
    extensions: dict[str, Any],
) -> Any:
    """The request for this attempt: the profile's base URL and key, and the attempt's model."""
    model = ctx.model.id
    if requested and model != requested:
        if payload is not None and "model" in payload:
            body = json.dumps({**payload, "model": model}).encode()
        suffix = suffix.replace(f"/models/{requested}:", f"/models/{model}:", 1)
    parts = urlsplit(suffix)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key"]
    url = ctx.base_url + parts.path + (f"?{urlencode(query)}" if query else "")
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _CREDENTIAL_HEADERS]
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    if ctx.api_key:
        value = f"Bearer {ctx.api_key}" if style == "authorization" else ctx.api_key
        headers.append((style, value))
    return library.Request(
        request.method, url, headers=headers, content=body, extensions=extensions
    )


def _with_read_timeout(extensions: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``extensions`` with the ``timeout`` of each read at most ``seconds``."""
    timeout = dict(extensions.get("timeout") or {})
    timeout["read"] = min(timeout.get("read") or math.inf, seconds)
    return {**extensions, "timeout": timeout}


def _closed_error(*, in_flight: bool) -> ConfigError:
    if in_flight:
        return ConfigError("the ResilientTransport was closed while this request was in flight")
    return ConfigError("the ResilientTransport is closed (aclose() was called); build a new one")


def _provider_error(exc: Exception, provider: str, model: str) -> ProviderError | None:
    """``exc`` of the HTTP library as a ProviderError, or ``None`` when it is no failure of
    the provider's. The library's exception is not kept: it holds the request, key and all."""
    error = classify_exception(exc, provider=provider, model=model)
    if error is not None and error is not exc:
        error.__cause__, error.cause_type = None, type(exc).__qualname__
    return error


async def _read(io: _IO, response: Any, provider: str, model: str) -> bytes:
    """A reply's whole body, decoded; a body that cannot be read fails the attempt."""
    try:
        return await io.read_and_close(response)
    except Exception as exc:
        error = _provider_error(exc, provider, model) or MalformedResponseError(
            f"the reply's body could not be read ({type(exc).__name__})"
        )
        raise error from None


def _shown(headers: Any, scrub: KeyScrubber, drop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``headers`` as the SDK may see them: every key scrubbed, the ``drop`` ones left out."""
    items = [(k, v) for k, v in headers.multi_items() if k.lower() not in drop]
    block = "\n".join(f"{k}: {v}" for k, v in items)
    if scrub(block) == block:  # the usual case: one pass over them all
        return items
    return [(scrub(k), scrub(v)) for k, v in items]


def _rebuilt(
    library: ModuleType, response: Any, headers: list[tuple[str, str]], stream: Any
) -> Any:
    """``response`` with these headers and this body stream."""
    return library.Response(
        response.status_code, headers=headers, stream=stream, extensions=response.extensions
    )


def _reread(
    library: ModuleType, response: Any, content: bytes, request: Any, scrub: KeyScrubber
) -> Any:
    """The response again, with a body already read (and decoded: no encoding headers)."""
    return library.Response(
        response.status_code,
        headers=_shown(response.headers, scrub, drop=_BODY_HEADERS),
        content=content,
        request=request,
        extensions=response.extensions,
    )


def _described(value: Any) -> str:
    if isinstance(value, dict):
        return "an object without them" if value else "an empty object"
    return "null" if value is None else f"a JSON {type(value).__name__}"


# -- what the transport knows of each endpoint ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """What the transport knows of one API endpoint (a POST to a path ending so).

    Attributes:
        reply_keys: A 2xx reply is a JSON object with at least one of these members.
        stream_wire: Whose reader guards its streams: a registered adapter's name, or
            ``"responses"`` (OpenAI Responses events); ``None``: streams pass unguarded.
        needs: A query parameter its streams need to be readable (Gemini's ``alt=sse``).
    """

    reply_keys: tuple[str, ...] = ()
    stream_wire: str | None = None
    needs: tuple[str, str] | None = None

    def fits(self, value: Any) -> bool:
        """Whether ``value`` (a parsed 2xx reply) has this endpoint's shape."""
        return isinstance(value, dict) and any(key in value for key in self.reply_keys)

    def stream_reader(self) -> tuple[StreamParser, bool] | None:
        """A fresh reader of one of its streams, and whether that stream is SSE (else NDJSON)."""
        if self.stream_wire is None:
            return None
        if self.stream_wire == "responses":
            return _ResponsesStream(), True
        adapter = providers.get_adapter(self.stream_wire)
        return adapter.stream_parser(), adapter.stream_format == "sse"


_ENDPOINTS: tuple[tuple[str, _Endpoint], ...] = (
    ("/chat/completions", _Endpoint(("choices",), "openai")),
    ("/completions", _Endpoint(("choices",), "openai")),
    ("/responses", _Endpoint(("output",), "responses")),
    ("/messages", _Endpoint(("content",), "anthropic")),
    (":generateContent", _Endpoint(("candidates", "promptFeedback"))),
    (":streamGenerateContent", _Endpoint((), "gemini", needs=("alt", "sse"))),
    ("/api/chat", _Endpoint(("message",), "ollama-native")),
    ("/api/generate", _Endpoint(("response",), "ollama-native")),
    ("/embeddings", _Endpoint(("data",))),
    (":embedContent", _Endpoint(("embedding",))),
    (":batchEmbedContents", _Endpoint(("embeddings",))),
    ("/api/embed", _Endpoint(("embeddings",))),
)
"""The endpoints whose replies the transport checks, by the end of their path (first match)."""


def _endpoint_of(method: str, suffix: str) -> _Endpoint | None:
    """The endpoint a request is for, or ``None`` when the transport does not know it."""
    if method != "POST":
        return None
    parts = urlsplit(suffix)
    for ending, endpoint in _ENDPOINTS:
        if parts.path.endswith(ending):
            if endpoint.needs and endpoint.needs not in parse_qsl(parts.query):
                return None
            return endpoint
    return None


_RESPONSES_ENDS = frozenset(
    ("response.completed", "response.failed", "response.incomplete", "error")
)


class _ResponsesStream:
    """Reads an OpenAI Responses stream for its end: ``response.completed``, or
    ``response.failed``, ``response.incomplete`` or ``error`` (which the SDK reports).
    Responses streams send no ``[DONE]``."""

    def __init__(self) -> None:
        self.complete = False

    def feed(self, event: str, data: str) -> StreamChunk | None:
        """Note an event; its name is its ``event:`` line, else its payload's ``type``."""
        if not event:
            with contextlib.suppress(ValueError, RecursionError):
                payload = json.loads(data)
                event = payload.get("type", "") if isinstance(payload, dict) else ""
        self.complete = self.complete or event in _RESPONSES_ENDS
        return None


class _TerminatorWatch:
    """Reads a stream's lines as they pass: whether it ended properly, and no key in them.

    Each line goes to the endpoint's reader (to see the terminator: the reader of
    ``ResilientClient``'s streams, or of OpenAI Responses events); a line that carries an
    error (a provider may echo the key in it) is passed on with every key scrubbed. Bytes
    are passed on a whole line at a time.
    """

    def __init__(
        self, parser: StreamParser, sse: bool, scrubber: Callable[[], KeyScrubber]
    ) -> None:
        self._parser = parser
        self._scrubber = scrubber  # asked only for a line to scrub: most streams have none
        self._ended_by_provider = False
        self._sse = sse
        self._pending = b""
        self._event = ""
        self._data: list[str] = []

    @property
    def complete(self) -> bool:
        """Whether the stream ended as the wire format ends one: its terminator, or an error
        or content-filter event (which the SDK reads and raises or reports itself)."""
        return self._parser.complete or self._ended_by_provider

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the stream; return the whole lines to pass on.

        Raises:
            MalformedResponseError: A line is not UTF-8 text (bytes in an encoding that
                could not be decoded, say).
        """
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for index, raw in enumerate(lines):
            try:
                text = raw.rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedResponseError(
                    "the stream is not UTF-8 text (in an encoding that could not be decoded?)"
                ) from None
            self._line(text)
            if b"error" in raw.lower():
                lines[index] = self._scrubbed(raw)
        return b"\n".join([*lines, b""]) if lines else b""

    def rest(self) -> bytes:
        """The bytes after the last line break, at the stream's end."""
        rest, self._pending = self._pending, b""
        return self._scrubbed(rest) if rest else rest

    def _scrubbed(self, raw: bytes) -> bytes:
        """A line with every key scrubbed, in its JSON payload's decoded strings too."""
        line = raw.decode("utf-8", "surrogateescape")
        scrub = self._scrubber()
        if line.startswith("data:"):  # an SSE event's payload
            line = "data: " + scrub.in_json(line[5:].strip())
        elif line.lstrip().startswith("{"):  # an NDJSON line
            line = scrub.in_json(line)
        else:
            line = scrub(line)
        return line.encode("utf-8", "surrogateescape")

    def _line(self, line: str) -> None:
        if not self._sse:
            if line.strip():
                self._dispatch("", line)
            return
        if not line:  # an SSE event ends at a blank line
            if self._data:
                self._dispatch(self._event, "\n".join(self._data))
            self._event, self._data = "", []
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))

    def _dispatch(self, event: str, data: str) -> None:
        try:
            self._parser.feed(event, data)
        except MalformedResponseError:  # a line the reader cannot read: only the end counts
            pass
        except ProviderError:  # an error or content-filter event: the SDK reads it itself
            self._ended_by_provider = True


class _StreamGuard:
    """One stream's checks as the SDK reads it, sync or async: its terminator and keys
    (``watch``), the time since its last whole line, and the transport being closed.

    ``failed`` records a failure of the stream's endpoint and returns what to raise.
    """

    def __init__(
        self,
        watch: _TerminatorWatch,
        idle: float,
        failed: Callable[[ProviderError], Exception],
        closed: Callable[[], bool],
    ) -> None:
        self._watch = watch
        self._idle = idle
        self._failed = failed
        self._closed = closed
        self._progress = time.monotonic()

    def idle_left(self) -> float:
        """Seconds the stream may still go without a whole line."""
        return self._progress + self._idle - time.monotonic()

    def passed(self, chunk: bytes) -> bytes:
        """The whole lines of the next decoded ``chunk``, to pass on."""
        if self._closed():
            raise _closed_error(in_flight=True)
        try:
            lines = self._watch.feed(chunk)
        except MalformedResponseError as error:
            raise self._failed(error) from None
        if lines:
            self._progress = time.monotonic()
        elif self.idle_left() < 0:  # bytes drip in, but no line ends
            raise self._failed(self._idle_error())
        return lines

    def read_failed(self, exc: Exception) -> Exception:
        """What to raise when reading the stream raised ``exc`` (a timeout: it was idle)."""
        error = classify_exception(exc) or MalformedResponseError(
            f"the stream could not be read ({type(exc).__name__})"
        )
        if isinstance(error, ProviderTimeoutError):
            error = self._idle_error()
        return self._failed(error)

    def end(self) -> bytes:
        """The stream's last bytes, once it ended; raises when it ended before its terminator."""
        rest = self._watch.rest()
        if not self._watch.complete:
            raise self._failed(
                MalformedResponseError("the stream ended before its terminator (a truncated reply)")
            )
        return rest

    def _idle_error(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"the stream was idle for more than {self._idle:g}s (stream_idle_timeout)"
        )


@functools.cache  # one class per library (httpx, httpx2), not one per stream
def _guarded_stream(library: ModuleType) -> Any:
    """A byte-stream class of ``library`` that passes a reply's decoded body through a
    :class:`_StreamGuard`. It reads a sync reply (a sync client's) or an async one alike.
    """

    class Guarded(library.SyncByteStream, library.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, response: Any, guard: _StreamGuard) -> None:
            self._response, self._guard = response, guard
            self._chunks: Any = None

        def __iter__(self) -> Iterator[bytes]:
            if self._chunks is None:  # once: iterated again (an SDK draining it), it goes on
                self._chunks = self._response.iter_bytes()  # decoded, whatever the encoding
            chunks = self._chunks
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as exc:  # a read timeout (the stream was idle), a reset
                    raise self._guard.read_failed(exc) from None
                if lines := self._guard.passed(chunk):
                    yield lines
            if rest := self._guard.end():
                yield rest

        def close(self) -> None:
            if self._chunks is not None:
                self._chunks.close()
            self._response.close()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            if self._chunks is None:
                self._chunks = self._response.aiter_bytes()
            chunks = self._chunks
            while True:
                try:
                    with anyio.fail_after(max(self._guard.idle_left(), 0)):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:  # TimeoutError: the stream was idle; a reset
                    raise self._guard.read_failed(exc) from None
                if lines := self._guard.passed(chunk):
                    yield lines
            if rest := self._guard.end():
                yield rest

        async def aclose(self) -> None:
            if self._chunks is not None:
                await self._chunks.aclose()
            await self._response.aclose()

    return Guarded


def _without_credentials(request: Any, library: ModuleType) -> Any:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _CREDENTIAL_HEADERS]
    return library.Request(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions=request.extensions,
    )


def _no_key_response(library: ModuleType, request: Any, error: Exception) -> Any:
    """A 429 telling the SDK that no key can be used now, and when one can."""
    retry_after = getattr(error, "retry_after", None)
    headers = {"retry-after": f"{math.ceil(retry_after)}"} if retry_after is not None else {}
    body = {
        "error": {
            "message": str(error).partition("\n")[0],
            "type": "rate_limit_error",
            "code": "no_profile_available",
        }
    }
    return library.Response(429, headers=headers, json=body, request=request)
