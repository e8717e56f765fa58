"""SyncResilientClient: ResilientClient for sync code, as ``OpenAI`` is to ``AsyncOpenAI``.

It runs the same async engine, not a copy: on an event loop thread the client owns (an
anyio blocking portal, started at the first call and stopped by ``close()``), the way
``ResilientTransport`` serves sync SDK clients (``failover.transport``). Each call is a
task on that loop, so callers in many threads are served at once; the calling thread
waits for its own result, and a ``KeyboardInterrupt`` (or any exception) raised in it while
it waits cancels that request on the loop.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from failover.client import Completion, CompletionStream, ResilientClient
from failover.engine import AttemptContext, HookMethods
from failover.errors import ConfigError
from failover.transport_io import widen_worker_threads

if TYPE_CHECKING:
    from failover.attempts import Attempt
    from failover.catalog import TokenUsage
    from failover.chain import FallbackChain
    from failover.embeddings import EmbeddingChain, Embeddings
    from failover.profiles import AuthProfile, FailoverManager
    from failover.providers.base import StreamChunk, ToolCall

__all__ = ["ClientClosedError", "SyncCompletionStream", "SyncResilientClient"]

T = TypeVar("T")

_THREAD_PREFIX = "failover-sync-client"


class ClientClosedError(ConfigError):
    """The SyncResilientClient was closed: before this call, or while it was in flight."""


class _LoopThread:
    """One event loop thread (an anyio blocking portal): started on first use, stopped once.

    Every call runs as a task on the loop inside a cancel scope of its own, so that
    :meth:`stop` can end the calls still in flight.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._scopes: set[anyio.CancelScope] = set()  # touched on the loop only
        self._ident: int | None = None  # the loop thread's
        self.closed = False

    def run(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function`` on the loop and wait for its result in this thread.

        Whatever interrupts the wait (``KeyboardInterrupt``) cancels the call on the loop.

        Raises:
            ClientClosedError: The thread was stopped before or during the call.
        """
        portal = self._start()
        self._not_on_loop()
        try:
            future = portal.start_task_soon(self._serve, function)
        except RuntimeError:  # the portal stopped meanwhile
            raise _closed(in_flight=True) from None
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: end the request on the loop as well
            raise

    def call_soon_on_loop(self, function: Callable[[], T]) -> T:
        """Run the plain ``function`` on the loop (it may create loop-bound objects)."""
        portal = self._start()
        self._not_on_loop()
        try:
            return portal.call(function)
        except RuntimeError:
            raise _closed(in_flight=True) from None

    def _not_on_loop(self) -> None:
        """Refuse a blocking call from the loop's own thread (a hook): it would wait forever."""
        if threading.get_ident() == self._ident:
            raise ConfigError(
                "a SyncResilientClient was called from its own event loop thread (in a hook?); "
                "a hook must not wait for the client"
            )

    async def _serve(self, function: Callable[[], Awaitable[T]]) -> T:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                return await function()
        finally:
            self._scopes.discard(scope)
        raise _closed(in_flight=True)  # stop() cancelled it

    def _start(self) -> BlockingPortal:
        with self._lock:
            if self.closed:
                raise _closed(in_flight=False)
            if self._portal is None:
                context = start_blocking_portal(name=self._name)
                portal = context.__enter__()
                try:
                    portal.call(widen_worker_threads)
                    self._ident = portal.call(threading.get_ident)
                except BaseException:
                    context.__exit__(None, None, None)
                    raise
                self._context, self._portal = context, portal
            return self._portal

    @property
    def started(self) -> bool:
        """Whether the loop thread is running."""
        return self._portal is not None

    def stop(self, last: Callable[[], Awaitable[None]]) -> None:
        """End the calls in flight, run ``last`` on the loop, stop the thread; once only."""
        self._not_on_loop()
        with self._lock:
            if self.closed:
                return
            self.closed = True
            context, portal = self._context, self._portal
            self._context = self._portal = None
        if context is None or portal is None:
            return
        try:
            portal.call(self._cancel_all)
            portal.call(last)
        finally:
            context.__exit__(None, None, None)  # joins the thread

    def _cancel_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()


def _closed(*, in_flight: bool) -> ClientClosedError:
    if in_flight:
        return ClientClosedError("the SyncResilientClient was closed while this call was in flight")
    return ClientClosedError(
        "the SyncResilientClient is closed (close() was called); build a new one"
    )


class SyncResilientClient(HookMethods):
    """A ResilientClient for sync code: same arguments, same results, same engine.

    The client owns one event loop thread (started at the first call, stopped by
    :meth:`close`) on which a ResilientClient built from the same arguments runs. It is
    safe to share between threads: calls made at once from many threads are in flight
    together. A ``KeyboardInterrupt`` in a waiting thread cancels that thread's request;
    ``deadline`` bounds each request, retries and fallbacks included.

    State is shared through the FailoverManager: pass the same manager as ``profiles`` to
    a SyncResilientClient and an async ResilientClient, and a key one of them found
    rate-limited is skipped by the other. Each client has its own hooks and HTTP client
    (an async client's connections belong to its own event loop, so an existing
    ResilientClient is not wrapped).

    Hooks (``on_failover``, ``on_retry``, ...) may be sync or async callables; they run on
    the client's event loop thread (async ones as tasks there), so a sync hook should be
    quick. :meth:`close` waits (up to 5 s) for the async hooks still running.

    Args:
        chain: A FallbackChain, or ``"provider/model"`` ids in priority order.
        profiles: A FailoverManager (shared with whoever else uses it), or AuthProfiles.
        **options: Any keyword argument of :class:`~failover.ResilientClient` (``config``,
            ``timeout``, ``deadline``, ``wait_for_recovery``, ``fallback_on``, ...). An
            ``http_client`` or ``sender`` given here is used on the client's loop thread
            and is not closed by :meth:`close`; an async ``sleep`` runs there too.

    Examples:
        >>> with SyncResilientClient(["openai/gpt-4o-mini"], profiles) as client:  # doctest: +SKIP
        ...     print(client.complete([{"role": "user", "content": "hi"}]).text)
    """

    def __init__(
        self,
        chain: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]],
        profiles: FailoverManager | Iterable[AuthProfile],
        **options: Any,
    ) -> None:
        self._over(ResilientClient(chain, profiles, **options))

    def _over(self, client: ResilientClient) -> None:
        self._async = client  # used on the loop thread only (its HTTP client is bound there)
        self._engine = client.engine
        self._loop = _LoopThread(f"{_THREAD_PREFIX}-{id(self):x}")
        self._streams: set[SyncCompletionStream] = set()
        self._streams_lock = threading.Lock()

    @property
    def chain(self) -> FallbackChain:
        """The models tried, in order."""
        return self._async.chain

    @property
    def manager(self) -> FailoverManager:
        """The profile manager this client draws keys from (shared state)."""
        return self._async.manager

    # -- public calls -------------------------------------------------------------------

    def complete(
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
            ProviderError: A failure that no other model can fix, with ``attempts`` set.
            ClientClosedError: The client was closed.
        """
        client = self._async
        return self._loop.run(
            lambda: client.complete(
                messages, max_tokens=max_tokens, temperature=temperature, **params
            )
        )

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        on_stream_break: str | None = None,
        accept: Callable[[Completion], Any] | None = None,
        **params: Any,
    ) -> SyncCompletionStream:
        """Stream a completion: an iterator of the chunks ``ResilientClient.stream`` gives.

        Failover happens until the first chunk; a later failure raises StreamInterrupted
        with the partial text, unless ``on_stream_break`` is ``"continue"`` or
        ``"restart"`` (a chunk with ``restart=True`` then says to discard what came
        before), as for ``ResilientClient.stream``; ``accept`` checks the whole answer at
        its end. Use as ``with client.stream(...) as s: for chunk in s`` so
        that leaving the block early (``break``, an exception) releases the connection.

        Raises:
            ConfigError: Bad messages or parameters (before anything is sent).
            ClientClosedError: The client was closed.
        """
        client = self._async

        def open_stream() -> tuple[CompletionStream, anyio.Lock]:
            return client.stream(
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                on_stream_break=on_stream_break,  # type: ignore[arg-type]  # checked there
                accept=accept,
                **params,
            ), anyio.Lock()

        astream, lock = self._loop.call_soon_on_loop(open_stream)
        stream = SyncCompletionStream(self, astream, lock)
        with self._streams_lock:
            self._streams.add(stream)
        return stream

    def call(self, fn: Callable[[AttemptContext], T]) -> T:
        """Run the sync function ``fn`` with failover: it gets an AttemptContext (key, base
        URL, model) and runs in a worker thread.

        Exceptions it raises are classified as ``ResilientClient.call`` does (status code,
        headers, body; SDK timeout and connection errors by type), then handled like any
        other. A cancelled attempt (deadline, Ctrl-C) abandons its worker thread, which
        finishes ``fn`` on its own; its result is dropped.

        Raises:
            ConfigError: ``fn`` is a coroutine function (use ``ResilientClient.call``).
            ClientClosedError: The client was closed.
        """
        if inspect.iscoroutinefunction(fn):
            raise ConfigError(
                "SyncResilientClient.call takes a sync function; "
                "await ResilientClient.call(fn) for a coroutine function"
            )

        async def attempt(ctx: AttemptContext) -> T:
            return await anyio.to_thread.run_sync(fn, ctx, abandon_on_cancel=True)

        client = self._async
        return self._loop.run(lambda: client.call(attempt))

    def embed(
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

        Takes the arguments of ``ResilientClient.embed``.

        Raises:
            ConfigError: Bad inputs, or a chain that mixes vector lengths.
            AllAttemptsFailed: Every model and key failed.
            ClientClosedError: The client was closed.
        """
        client = self._async
        return self._loop.run(
            lambda: client.embed(
                inputs,
                model_chain=model_chain,
                dimensions=dimensions,
                task_type=task_type,
                mixed_dimensions=mixed_dimensions,
                **params,
            )
        )

    def status(self) -> dict[str, Any]:
        """The manager's status (keys masked) and each chain model's health."""
        return self._async.status()

    def close(self) -> None:
        """Close the client for good; later calls raise ClientClosedError.

        Ends the calls still in flight (they raise ClientClosedError) and the open streams,
        waits for pending async hooks, stops the store's sync if ``with`` started it,
        closes the HTTP client the client made, and stops the event loop thread. Safe to
        call more than once, from any thread but the client's own loop thread.

        Raises:
            ConfigError: Called from the client's own loop thread (in a hook).
        """
        with self._streams_lock:
            streams = list(self._streams)
            self._streams.clear()
        for stream in streams:
            stream._closed = True  # ended below, on the loop

        async def shut() -> None:
            # the calls in flight were cancelled first, so no stream step holds its lock
            for stream in streams:
                with suppress(Exception):
                    await stream._aclose()
            await self._async.aclose()

        self._loop.stop(shut)

    def __enter__(self) -> SyncResilientClient:
        # a shared store's sync (nothing for MemoryStore) runs on the client's loop
        self._loop.run(self._async.__aenter__)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SyncResilientClient(chain={list(self.chain.names)!r}, profiles={len(self.manager)})"
        )

    def _forget(self, stream: SyncCompletionStream) -> None:
        with self._streams_lock:
            self._streams.discard(stream)


class SyncCompletionStream:
    """The chunks of a streamed completion, for sync code; close it or use ``with``.

    Its attributes (``text``, ``model``, ``profile``, ``usage``, ``finish_reason``,
    ``raw_finish_reason``, ``cost_usd``, ``attempts``, ``tool_calls``, ``message``) are those
    of :class:`~failover.CompletionStream`.
    """

    def __init__(
        self, client: SyncResilientClient, stream: CompletionStream, lock: anyio.Lock
    ) -> None:
        self._client = client
        self._stream = stream
        self._lock = lock  # one step of the stream at a time on the loop, close included
        self._closed = False

    def __iter__(self) -> SyncCompletionStream:
        return self

    def __next__(self) -> StreamChunk:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._client._loop.run(self._next)
        except BaseException:
            self._release()
            raise
        if chunk is None:
            self._release()
            raise StopIteration
        return chunk

    async def _next(self) -> StreamChunk | None:
        async with self._lock:
            try:
                return await self._stream.__anext__()
            except StopAsyncIteration:
                return None

    async def _aclose(self) -> None:
        async with self._lock:
            await self._stream.aclose()

    def close(self) -> None:
        """Stop the stream and release its connection (nothing once it has ended)."""
        if self._closed:
            return
        self._closed = True
        self._client._forget(self)
        self._client._loop.run(self._aclose)

    def _release(self) -> None:
        """Close after a failure or the end, whatever the loop's state."""
        with suppress(Exception):
            self.close()
        self._closed = True

    def __enter__(self) -> SyncCompletionStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self._release()

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._stream.text

    @property
    def model(self) -> str | None:
        """``provider/model`` that is answering (set at the first chunk)."""
        return self._stream.model

    @property
    def profile(self) -> str | None:
        """The auth profile's name (set at the first chunk)."""
        return self._stream.profile

    @property
    def usage(self) -> TokenUsage | None:
        """Token counts (set at the end)."""
        return self._stream.usage

    @property
    def finish_reason(self) -> str | None:
        """``stop``, ``length``, ``tool_calls`` or ``content_filter`` (at the end)."""
        return self._stream.finish_reason

    @property
    def raw_finish_reason(self) -> str | None:
        """The provider's own stop reason (at the end)."""
        return self._stream.raw_finish_reason

    @property
    def cost_usd(self) -> float | None:
        """The cost from the catalog's prices (at the end; ``None`` when unknown)."""
        return self._stream.cost_usd

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt made so far."""
        return self._stream.attempts

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls assembled from the stream's deltas so far."""
        return self._stream.tool_calls

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape (complete once the stream has ended)."""
        return self._stream.message
