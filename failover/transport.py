"""ResilientTransport: the failover loop at the HTTP layer, for calls made through SDKs.

Pass it as the transport of the SDK's ``httpx.AsyncClient`` or ``httpx2.AsyncClient``, or of
a sync ``httpx.Client`` or ``httpx2.Client``; it only uses what the two libraries share, and
builds requests and responses with the classes of whichever library the request came from.

Sync clients run the same async engine: on an event loop thread the transport owns (an
anyio blocking portal, started at the first sync request and stopped by ``close()``), with
each HTTP call made by the sync inner transport in a worker thread, so sync callers in
several threads do not wait for each other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import ModuleType, TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

import providers
from failover._closing import AsyncClosing
from failover._secrets import KeyScrubber
from failover.catalog import ModelCatalog, ModelEntry, canonical_provider, default_catalog
from failover.classify import classify_exception, classify_http_error
from failover.config import FailoverConfig
from failover.engine import AttemptContext, Engine, HookMethods, RequestState
from failover.errors import AllAttemptsFailed, ConfigError, MalformedResponseError, ProviderError
from failover.http import library_of
from failover.policy import Policy
from failover.profiles import AuthProfile, FailoverManager
from failover.telemetry import Telemetry, resolve_telemetry
from providers.base import StreamParser

__all__ = ["ResilientTransport"]

_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
_DEFAULT_STYLE = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}
_BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
_WORKER_THREADS = 100  # sync HTTP calls in flight at once (httpx's default pool size)


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
    Streaming responses pass through untouched once they start. When everything fails, the
    SDK gets the last error response, so it raises its own exception as usual.

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

    @property
    def manager(self) -> FailoverManager:
        """The profile manager this transport draws keys from."""
        return self._engine.manager

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` with failover; return the first good response, or the last bad one."""
        library = library_of(request)
        inner = self._async_inner(library)
        suffix = self._suffix(str(request.url))
        if suffix is None:  # not one of our hosts: never attach a key
            return await inner.handle_async_request(_without_credentials(request, library))
        body = await request.aread()
        return await self._failover(request, library, suffix, body, _AsyncIO(inner))

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` from a sync client with failover, as :meth:`handle_async_request`.

        The engine runs on the transport's event loop thread; this thread waits for it
        (backoff included) and, for a stream, reads the body itself as the SDK iterates.
        """
        library = library_of(request)
        inner = self._sync_inner(library)
        suffix = self._suffix(str(request.url))
        if suffix is None:  # not one of our hosts: never attach a key
            return inner.handle_request(_without_credentials(request, library))
        body = request.read()
        portal = self._start_portal()
        future = portal.start_task_soon(
            self._failover, request, library, suffix, body, _ThreadIO(inner, portal)
        )
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
        last_error_response: list[Any] = []

        async def attempt(ctx: AttemptContext) -> Any:
            outgoing = _rewrite(request, library, ctx, suffix, style, body, payload, requested)
            try:
                response = await io.send(outgoing)
            except Exception as exc:
                error = classify_exception(exc, provider=self.provider, model=ctx.model.id)
                if error is None:
                    raise
                error.__cause__, error.cause_type = None, type(exc).__qualname__
                raise error from None  # the library's exception holds the request, key and all
            if response.status_code < 400:
                response = await self._checked(library, response, outgoing, streaming, io)
                self._engine.note_headroom(ctx.request_id, ctx.profile, response.headers)
                return response
            content = await io.read_and_close(response)
            error = classify_http_error(response.status_code, response.headers, content)
            scrub = self._engine.scrubber()  # the SDK puts the body in its exception
            text = scrub.in_json(content.decode("utf-8", "surrogateescape"))
            last_error_response[:] = [
                _reread(library, response, text.encode("utf-8", "surrogateescape"), outgoing)
            ]
            raise error

        streaming = bool(payload and payload.get("stream")) or ":stream" in suffix
        state = self._engine.new_request()
        try:
            response, model, profile = await self._engine.run(state, chain, attempt)
        except (AllAttemptsFailed, ProviderError) as exc:
            if last_error_response:
                return last_error_response[0]
            return _no_key_response(library, request, exc)
        if streaming:
            response = self._guard_stream(library, response, state, model, profile, io)
        self._engine.succeeded(state, model, profile, None)
        return response

    async def _checked(
        self, library: ModuleType, response: Any, outgoing: Any, streaming: bool, io: _IO
    ) -> Any:
        """A 2xx reply the SDK can read: a JSON body that parses, whole.

        A truncated or garbled JSON body raises MalformedResponseError (failover applies);
        streams are checked as they pass (see :meth:`_guard_stream`).
        """
        if streaming or "json" not in response.headers.get("content-type", ""):
            return response
        content = await io.read_and_close(response)
        try:
            json.loads(content)
        except ValueError:
            raise MalformedResponseError(
                f"the reply's JSON body does not parse ({len(content)} bytes)"
            ) from None
        return _reread(library, response, content, outgoing)

    def _guard_stream(
        self,
        library: ModuleType,
        response: Any,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        io: _IO,
    ) -> Any:
        """The reply with its stream watched for the wire format's terminator.

        A stream that ends without it raises the library's RemoteProtocolError into the
        SDK, so it is never taken as complete, and counts as a failure of that endpoint
        (recorded on the engine's event loop, whichever thread iterates the stream).
        """
        if response.headers.get("content-encoding", "identity") != "identity":
            return response  # compressed bytes: the SDK's own decoder must see them
        engine = self._engine

        def record() -> None:
            error = MalformedResponseError("the stream ended before its terminator")
            engine.record_attempt(state, model, profile, error, state.started)
            engine.record_failure(state, model, profile, error)

        def truncated() -> Exception:
            io.on_loop(record)
            return library.RemoteProtocolError(  # type: ignore[no-any-return]
                "the stream ended before its terminator (a truncated reply)"
            )

        watcher = _TerminatorWatch(
            self._adapter.stream_parser(), self._adapter.stream_format, engine.scrubber
        )
        guarded = _guarded_stream(library)(response.stream, watcher, truncated)
        return library.Response(
            response.status_code,
            headers=response.headers,
            stream=guarded,
            extensions=response.extensions,
        )

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and per-model health."""
        return self._engine.status(self._chain(None))

    async def aclose(self) -> None:
        """Close the inner transports and wait for pending hooks."""
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
        request.method, url, headers=headers, content=body, extensions=request.extensions
    )


def _reread(library: ModuleType, response: Any, content: bytes, request: Any) -> Any:
    """The response again, with a body already read (and decoded: no encoding headers)."""
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS]
    return library.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=response.extensions,
    )


class _TerminatorWatch:
    """Reads a stream's lines as they pass: whether it ended properly, and no key in them.

    Each line goes to the adapter's parser (to see the terminator); a line that carries
    an error (a provider may echo the key in it) is passed on with every key scrubbed.
    Bytes are passed on a whole line at a time.
    """

    def __init__(
        self, parser: StreamParser, stream_format: str, scrubber: Callable[[], KeyScrubber]
    ) -> None:
        self._parser = parser
        self._scrubber = scrubber  # asked only for a line to scrub: most streams have none
        self._ended_by_provider = False
        self._sse = stream_format == "sse"
        self._pending = b""
        self._event = ""
        self._data: list[str] = []

    @property
    def complete(self) -> bool:
        """Whether the stream ended as the wire format ends one: its terminator, or an error
        or content-filter event (which the SDK reads and raises or reports itself)."""
        return self._parser.complete or self._ended_by_provider

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the stream; return the whole lines to pass on."""
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for index, raw in enumerate(lines):
            text = raw.rstrip(b"\r").decode("utf-8", "replace")
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
        except ProviderError:  # an error or content-filter event: the SDK reads it itself
            self._ended_by_provider = True


@functools.cache  # one class per library (httpx, httpx2), not one per stream
def _guarded_stream(library: ModuleType) -> Any:
    """A byte-stream class of ``library`` that raises when its stream was cut short.

    It wraps a sync stream (a sync client's) or an async one alike.
    """

    class Guarded(library.SyncByteStream, library.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(
            self, inner: Any, watch: _TerminatorWatch, truncated: Callable[[], Exception]
        ) -> None:
            self._inner, self._watch, self._truncated = inner, watch, truncated

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                if lines := self._watch.feed(chunk):
                    yield lines
            if rest := self._watch.rest():
                yield rest
            if not self._watch.complete:
                raise self._truncated()

        def close(self) -> None:
            self._inner.close()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                if lines := self._watch.feed(chunk):
                    yield lines
            if rest := self._watch.rest():
                yield rest
            if not self._watch.complete:
                raise self._truncated()

        async def aclose(self) -> None:
            await self._inner.aclose()

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
