"""The SDK transport's translated steps: another provider serves an SDK's request.

A ``fallback_models`` entry prefixed with another provider (``anthropic/claude-haiku-4-5``
under the openai SDK) is a translated step. The SDK's request is decoded once, when the
first such step is considered, into the common ``ChatRequest`` (``failover.gateway``);
each translated attempt is made as ``ResilientClient`` makes its attempts
(``failover.chat_calls``), with the target provider's own keys and base URL; and the reply
is encoded back into the SDK's wire format, as JSON or as SSE event by event (the first
chunk read before the SDK gets the response, so failover is possible until then).

A request the gateway cannot represent (``CannotTranslateError``: state kept on the SDK
provider's servers, a server-side tool, ...) skips the translated steps as ``unsupported``
attempts naming the field. An OpenAI Responses request that continues a stored response
(``previous_response_id``) stays on the key that made that response (``Engine.run(key=...)``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from failover import providers
from failover._tasks import scope_within
from failover.attempts import Attempt
from failover.catalog import ModelCatalog, ModelEntry, canonical_provider
from failover.chat_calls import ChatCalls, ChunkReader, OpenedStream, close_opened
from failover.continuation import (
    ResumedReader,
    Splice,
    combined,
    continuation_request,
    continued_text,
    continuing,
)
from failover.engine import AttemptContext, Engine, RequestState
from failover.errors import (
    AllAttemptsFailed,
    ConfigError,
    ContentFilteredError,
    FailoverError,
    InvalidRequestError,
    NoProfileAvailable,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    UnsupportedParameterError,
)
from failover.events import FailoverEvent
from failover.gateway import (
    CannotTranslateError,
    Decoded,
    StreamEncoder,
    Wire,
    encode_error,
    encode_result,
    stream_encoder,
)
from failover.gateway.decode import decode_as
from failover.policy import Action
from failover.profiles import AuthProfile, FailoverManager
from failover.providers.base import ChatRequest, ChatResult, ProviderAdapter, StreamChunk
from failover.transport_guard import Served, read_response
from failover.transport_io import IO, closed_error
from failover.transport_rewrite import made_headers
from failover.transport_sdk import Route

__all__ = [
    "ResponseOwners",
    "StreamContinuation",
    "Translation",
    "encoded_reply",
    "error_reply",
    "failure_reply",
    "fallback_steps",
    "no_key_reply",
    "skipped_note",
]

T = TypeVar("T")
Step = str | ModelEntry
"""A fallback step: a model id of the SDK's own provider, or a model of another provider."""
_Resumed = tuple[Any, ResumedReader, StreamChunk]
"""A continuation opened: its exchange, its splicing reader, and an empty first chunk."""


def _unsupported_field(
    adapter: ProviderAdapter, request: ChatRequest, model: ModelEntry
) -> str | None:
    """The field of ``request`` that ``model`` cannot take on ``adapter``'s wire (a request
    the adapter refuses outright names its first word's field)."""
    try:
        return adapter.unsupported_field(request, model)
    except ConfigError as exc:
        return str(exc).partition(" ")[0]


def fallback_steps(
    models: Sequence[str], provider: str, manager: FailoverManager, catalog: ModelCatalog
) -> tuple[Step, ...]:
    """``fallback_models`` read: ids of ``provider``'s own models, and models of others.

    An id is the SDK's own provider's when it has no ``provider/`` prefix, or that
    provider's own (which is taken off: ``openrouter/meta-llama/llama-3.1-8b`` is
    OpenRouter's ``meta-llama/llama-3.1-8b``); any other registered provider's prefix
    makes it a step of that provider.

    Raises:
        ConfigError: An entry is not a non-empty string, its prefix names no registered
            provider, or no auth profile serves that provider.
    """
    if isinstance(models, str):
        raise ConfigError("fallback_models must be a list of model ids, not a str")
    known = set(providers.registered_providers())
    have = manager.providers()
    steps: list[Step] = []
    for entry in models:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(f"fallback_models: each entry must be a model id, got {entry!r}")
        prefix, slash, model_id = entry.partition("/")
        name = canonical_provider(prefix)
        if not slash:
            steps.append(entry)
        elif name == provider:
            steps.append(model_id)
        elif name not in known:
            raise ConfigError(
                f"fallback_models: {entry!r} names no known provider {prefix!r} "
                f"(known: {', '.join(sorted(known))}); for a model id of {provider}'s own "
                f"that has a '/', write {provider + '/' + entry!r}"
            )
        elif not model_id:
            raise ConfigError(f"fallback_models: {entry!r} names no model")
        elif name not in have:
            raise ConfigError(
                f"fallback_models: no auth profile for provider {name!r} ({entry!r}); for a "
                f"model id of {provider}'s own that has a '/', write {provider + '/' + entry!r}"
            )
        else:
            api = catalog.providers().get(name, "openai")
            steps.append(
                catalog.get(name, model_id)
                or ModelEntry(id=model_id, name=model_id, provider=name, api=api)
            )
    return tuple(steps)


class ResponseOwners:
    """Which key made each OpenAI Responses response the transport passed back, by id: a
    bounded map (the ``limit`` most recent), safe to use from several threads."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._owners: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, response_id: str, profile: AuthProfile) -> None:
        """Note that ``profile`` made the response ``response_id``."""
        with self._lock:
            self._owners[response_id] = (profile.name, profile.fingerprint)
            self._owners.move_to_end(response_id)
            if len(self._owners) > self._limit:
                self._owners.popitem(last=False)

    def owner(self, response_id: str, manager: FailoverManager) -> AuthProfile | None:
        """The profile that made ``response_id``, while the manager still has it, with the
        same key; ``None`` when unknown."""
        with self._lock:
            found = self._owners.get(response_id)
        if found is None:
            return None
        profile = manager.get_profile(found[0])
        return profile if profile is not None and profile.fingerprint == found[1] else None

    def __len__(self) -> int:
        return len(self._owners)


class Translation:
    """One SDK request's translated side: decoded once, when first asked for.

    Args:
        route: What the transport read of the SDK request's URL: its path and query
            (Gemini's name the model) and its wire format (``None``: not a chat request).
        payload: Its JSON body, parsed (``None`` when it is not a JSON object).
        calls: Makes the attempts (``ChatCalls`` over the request's own I/O).
        own: The SDK's own provider, whose models :meth:`either` sends by ``same_wire``
            and :meth:`skipped` never skips (``None``: every model is served translated).
        same_wire: An attempt of ``own``'s, passed through (the SDK request's own).
    """

    __slots__ = (
        "_calls",
        "_decoded",
        "_own",
        "_payload",
        "_same_wire",
        "_url",
        "_wire",
        "refused",
    )

    def __init__(
        self,
        route: Route,
        payload: dict[str, Any] | None,
        calls: ChatCalls,
        *,
        own: str | None = None,
        same_wire: Callable[[AttemptContext], Awaitable[Any]] | None = None,
    ) -> None:
        self._url = route.suffix
        self._wire = route.wire
        self._payload = payload
        self._calls = calls
        self._own = own
        self._same_wire = same_wire
        self._decoded: Decoded | None = None
        self.refused: InvalidRequestError | None = None
        """Why the request cannot go to another provider, once decoding failed."""

    def decoded(self) -> Decoded | None:
        """The request decoded, or ``None`` when it cannot be (see :attr:`refused`)."""
        if self._decoded is None and self.refused is None:
            try:
                if self._wire is None:
                    path = urlsplit(self._url).path
                    raise CannotTranslateError(path, "only chat requests are translated")
                if self._payload is None:
                    raise CannotTranslateError("body", "it is not a JSON object")
                self._decoded = decode_as(self._wire, self._url, self._payload)
            except InvalidRequestError as exc:  # CannotTranslateError included
                self.refused = exc
        return self._decoded

    def skipped(self, model: ModelEntry) -> str | None:
        """The field of the request ``model`` cannot take, for the engine (``None`` for the
        SDK's own provider's models, which take the request as it is)."""
        if model.provider == self._own:
            return None
        decoded = self.decoded()
        if decoded is None:
            refused = self.refused
            return refused.field if isinstance(refused, UnsupportedParameterError) else "body"
        request = decoded.request
        if request.plain:  # text alone, no parameters: every model takes it (as the client)
            return None
        return _unsupported_field(providers.get_adapter(model.provider), request, model)

    def either(self, ctx: AttemptContext) -> Awaitable[Any]:
        """An attempt of the SDK's own provider passed through (``same_wire``), or of
        another provider translated (:meth:`attempt`): the attempt's own awaitable, which
        the engine awaits (no frame of ours for each of its suspensions to pass through)."""
        if ctx.model.provider == self._own and self._same_wire is not None:
            return self._same_wire(ctx)
        return self.attempt(ctx)

    def attempt(self, ctx: AttemptContext) -> Awaitable[ChatResult | OpenedStream]:
        """One translated attempt (its ``ChatCalls`` coroutine, to await): a whole reply,
        or a stream opened with its first chunk."""
        decoded = self.decoded()
        assert decoded is not None  # the engine skips models the request cannot go to
        calls = self._calls
        return (calls.open_stream if decoded.stream else calls.complete)(decoded.request, ctx)


def skipped_note(attempts: Sequence[Attempt], refused: InvalidRequestError | None) -> str | None:
    """What the models skipped as unsupported could not take, for an error's message."""
    skipped = [a for a in attempts if a.outcome == "unsupported" and a.error is not None]
    if not skipped:
        return None
    if refused is not None:
        models = ", ".join(dict.fromkeys(a.model for a in skipped))
        return f"not tried: {models}: {refused.message}"
    return "not tried: " + "; ".join(
        f"{a.model} cannot take {getattr(a.error, 'field', None) or 'the request'}" for a in skipped
    )


# -- replies to the SDK ---------------------------------------------------------------------


def _response(library: ModuleType, request: Any, status: int, headers: Any, body: bytes) -> Any:
    if isinstance(headers, dict):
        headers = headers.items()
    return read_response(library, status, headers, body, request)


def error_reply(
    library: ModuleType, request: Any, wire: Wire, error: BaseException, note: str | None
) -> Any:
    """``error`` as ``wire``'s provider answers it, so the SDK raises its own exception."""
    reply = encode_error(wire, error, note=note)
    return _response(library, request, reply.status, reply.headers, reply.body)


def no_key_reply(
    library: ModuleType, request: Any, wire: Wire | None, error: AllAttemptsFailed
) -> Any:
    """A 429 telling the SDK that no key can be used now, and when one can: in ``wire``'s
    own shape (OpenAI's for an endpoint the gateway does not speak)."""
    message = str(error).partition("\n")[0]
    retry_after = error.retry_after
    if wire is not None:
        limited = RateLimitError(message, status=429, retry_after=retry_after)
        return error_reply(library, request, wire, limited, None)
    headers = {"retry-after": f"{math.ceil(retry_after)}"} if retry_after is not None else {}
    body = {"error": {"message": message, "type": "rate_limit_error"}}
    body["error"]["code"] = "no_profile_available"
    return library.Response(429, headers=headers, json=body, request=request)


def failure_reply(
    library: ModuleType,
    request: Any,
    wire: Wire | None,
    error: AllAttemptsFailed | ProviderError,
    held: tuple[ProviderError, Any] | None,
    translation: Translation | None,
    pinned: str | None,
) -> Any:
    """The reply to an SDK request that failed, in the SDK's own wire format.

    The error reply our own provider sent (``held``, with its error), when its error is
    the one to report: the failure no other model can fix, or the last one of a chain of
    our provider's models alone. Otherwise the error, encoded: a 429 with the wait when no
    key could be used at all (or, in a chain of our provider's models alone, when none
    answered with an error reply), else the last error, with why the request was
    ``pinned`` to one key and what was skipped, and why.

    Args:
        library: The SDK's HTTP library.
        request: The SDK's request.
        wire: The SDK's wire format (``None``: an endpoint the gateway does not speak).
        error: What failed.
        held: The last error reply of our own provider, and its error.
        translation: The request's translated side (``None``: no other provider in the
            chain).
        pinned: Why the request went to one key alone.
    """
    alone = translation is None or wire is None  # no other provider could serve it
    if held is not None:
        last, reply = held
        if last is error or (alone and isinstance(error, AllAttemptsFailed)):
            return reply
    if translation is None or wire is None or isinstance(error, NoProfileAvailable):
        if isinstance(error, AllAttemptsFailed):  # as before the gateway: a 429
            return no_key_reply(library, request, wire, error)
        return error_reply(library, request, wire or "openai", error, None)
    notes = (pinned, skipped_note(error.attempts, translation.refused))
    return error_reply(library, request, wire, error, "; ".join(filter(None, notes)))


@dataclass(slots=True)
class _Served:
    """What a translated reply needs to finish: who served it, and the request's books."""

    engine: Engine
    state: RequestState
    model: ModelEntry
    profile: AuthProfile

    def succeeded(self, usage: Any) -> None:
        """Announce the request's success, priced by the serving model."""
        cost = self.model.calculate_cost(usage) if usage is not None else None
        self.engine.succeeded(self.state, self.model, self.profile, cost, usage)


def encoded_reply(
    library: ModuleType,
    request: Any,
    decoded: Decoded,
    value: ChatResult | OpenedStream,
    chosen: tuple[Engine, RequestState, ModelEntry, AuthProfile],
    served: Served,
    io: IO,
    closed: Callable[[], bool],
    continuation: StreamContinuation | None = None,
) -> Any:
    """The SDK's reply for what a translated step produced, in the SDK's wire format.

    A whole result is JSON (and the request's success is announced); an opened stream is
    SSE, encoded event by event as the SDK reads it (its success announced at its end),
    continued by ``continuation`` if it breaks after some text.
    """
    done = _Served(*chosen)
    model_id = done.model.id
    if isinstance(value, ChatResult):
        reply = encode_result(decoded, value, model=model_id)
        done.succeeded(value.usage if value.usage_known else None)
        headers = [*reply.headers.items(), *served]
        return read_response(library, reply.status, headers, reply.body, request)
    encoder = stream_encoder(decoded, model=model_id)
    pump = _Pump(encoder, value, done, closed, continuation)
    headers = made_headers(library, [("content-type", encoder.media_type), *served])
    return library.Response(200, headers=headers, stream=_encoded_stream(library)(pump, io))


class _Pump:
    """Reads the serving provider's stream, chunk by chunk, and encodes each for the SDK.

    A failure after the first chunk (the SDK has its response) counts against the serving
    key's endpoint and ends the stream with the wire's own error event, so the SDK raises;
    with a ``continuation``, a failure after some text (no tool call begun) is continued by
    another candidate instead, its chunks encoded on as if nothing happened.
    """

    def __init__(
        self,
        encoder: StreamEncoder,
        opened: OpenedStream | _Resumed,
        done: _Served,
        closed: Callable[[], bool],
        continuation: StreamContinuation | None = None,
    ) -> None:
        self._encoder = encoder
        self._opened: OpenedStream | _Resumed | None = opened
        self._reader: ChunkReader | ResumedReader = opened[1]
        self._done = done
        self._closed = closed
        self._usage = opened[2].usage
        self._continuation = continuation
        self._kept: list[str] | None = None  # with a continuation: the text sent so far
        self._calls = False
        if continuation is not None:
            self._kept = []
            self._note(opened[2])
        self._pending = encoder.feed(opened[2])
        # what the reader has read already, taken without a read (a ChunkReader's)
        self._buffered: Callable[[], StreamChunk | None] | None = getattr(
            self._reader, "buffered", None
        )
        self._broken: ProviderError | None = None  # met among them, met after them

    def _note(self, chunk: StreamChunk) -> None:
        assert self._kept is not None
        if chunk.text:
            self._kept.append(chunk.text)
        if chunk.tool_calls:
            self._calls = True

    async def next(self) -> bytes | None:
        """The next bytes for the SDK; ``None`` once the stream has ended."""
        while True:
            if self._pending:
                out, self._pending = self._pending, b""
                return out
            if self._opened is None:
                return None
            if self._closed():
                await self.aclose()
                raise closed_error(in_flight=True)
            await self._step()

    async def _step(self) -> None:
        """Read one chunk into ``_pending``; at the end, close the stream."""
        done, reader = self._done, self._reader
        if (broken := self._broken) is not None:  # after the chunks before it went
            self._broken = None
            if not await self._continued(broken):
                await self._failed(broken, counts=True)
            return
        try:
            if reader.done:
                chunk = None
            elif done.state.deadline_at == math.inf:  # no deadline: no scope per chunk
                chunk = await reader.next()
            else:  # the next chunk, within what is left of the request's deadline
                scope = scope_within(max(done.state.time_left(), 0.0))
                with scope:
                    chunk = await reader.next()
                if scope.cancelled_caught:  # only its deadline cancels it
                    raise TimeoutError
        except ProviderError as error:
            if not await self._continued(error):
                await self._failed(error, counts=True)
            return
        except TimeoutError:  # the request's deadline: no fault of the key's
            late = ProviderTimeoutError(
                f"the request's deadline of {done.engine.deadline}s passed mid-stream"
            )
            await self._failed(late, counts=False)
            return
        except BaseException:
            await self.aclose()
            raise
        if chunk is not None:
            if self._buffered is None or reader.done:
                self._pending = self._fed(chunk)
            else:  # with the chunks the reader holds already: to the SDK in one piece
                self._pending = self._with_buffered(chunk, self._buffered)
        if self._reader.done:
            self._pending += self._encoder.close()
            done.succeeded(self._usage)
            await self._release()

    def _fed(self, chunk: StreamChunk) -> bytes:
        """``chunk`` encoded, its usage and (with a continuation) its text noted."""
        self._usage = chunk.usage or self._usage
        if self._kept is not None:
            self._note(chunk)
        return self._encoder.feed(chunk)

    def _with_buffered(
        self, chunk: StreamChunk, buffered: Callable[[], StreamChunk | None]
    ) -> bytes:
        """``chunk`` and the chunks after it that the reader holds already (taken without a
        read), encoded together (the encoder's ``feed_many``: a run of text deltas at once),
        their usage and (with a continuation) their text noted. An error among them is
        handled once those before it have gone."""
        chunks = [chunk]
        add, kept, usage = chunks.append, self._kept, chunk.usage or self._usage
        if kept is not None:
            self._note(chunk)
        try:
            # not iter(buffered, None): it would ask each chunk's __eq__ whether it is None
            while (more := buffered()) is not None:
                add(more)
                usage = more.usage or usage
                if kept is not None:
                    self._note(more)
        except ProviderError as error:
            self._broken = error
        self._usage = usage
        if len(chunks) == 1:
            return self._encoder.feed(chunk)
        return self._encoder.feed_many(chunks)

    async def _continued(self, error: ProviderError) -> bool:
        """Whether another candidate took over after ``error`` (the break recorded)."""
        continuation, kept = self._continuation, self._kept
        if continuation is None or kept is None or not kept or self._calls:
            return False
        done = self._done
        if isinstance(error, ContentFilteredError) or (
            done.engine.policy.decide(error).action is Action.RAISE
        ):
            return False  # filtered text is not handed on; the SDK gets the wire's error
        done.engine.interrupted(done.state, done.model, done.profile, error)
        text = "".join(kept)
        found = await continuation.open(text, (done.model, done.profile), error, done.state.id)
        if found is None:
            done.engine.ended(done.state, error)
            self._pending = self._encoder.fail(error)
            await self._release()
            return True
        await self._release()
        done.engine.ended(done.state, error)  # the broken request ends here; another goes on
        opened, served = found
        self._opened, self._reader, self._done = opened, opened[1], served
        self._buffered = getattr(self._reader, "buffered", None)
        self._usage = None
        return True

    async def _failed(self, error: ProviderError, *, counts: bool) -> None:
        done = self._done
        done.engine.interrupted(done.state, done.model, done.profile, error, counts=counts)
        done.engine.ended(done.state, error)
        self._pending = self._encoder.fail(error)
        await self._release()

    async def _release(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await close_opened(opened)

    async def aclose(self) -> None:
        """The SDK closed the stream early: release its connection."""
        if self._opened is not None:
            self._done.engine.ended(self._done.state)
            await self._release()


class StreamContinuation:
    """Continues an SDK's stream that broke after some text (``on_stream_break="continue"``).

    Another candidate of the request's chain whose wire takes an assistant prefill (see
    :mod:`failover.continuation`) is given the SDK's request with the text the SDK has as
    the prefill, served translated (the SDK's own provider's models too), and its chunks
    are encoded in the SDK's wire: by the translated stream's own encoder, or, after a
    stream passed through from the SDK's own provider, by an encoder that takes over mid-
    stream (OpenAI Chat, Anthropic Messages and Gemini; not OpenAI Responses). The
    continuation is a request of its own (its attempts, usage and charge), announced as a
    FailoverEvent of kind ``continue``. The SDK reads the usage the continuation reports.

    Args:
        engine: Runs the continuation.
        chain: The SDK request's chain.
        route: What the transport read of the SDK request's URL (its path and query, and
            its wire format).
        payload: Its JSON body.
        calls: Makes attempts, with an adapter for every provider of ``chain``.
        closed: Whether the transport has been closed.
    """

    def __init__(
        self,
        engine: Engine,
        chain: Sequence[ModelEntry | Sequence[ModelEntry]],
        route: Route,
        payload: dict[str, Any] | None,
        calls: ChatCalls,
        closed: Callable[[], bool],
        adapters: Callable[[str], ProviderAdapter],
    ) -> None:
        self._engine = engine
        self._steps = [(s,) if isinstance(s, ModelEntry) else tuple(s) for s in chain]
        self._translation = Translation(route, payload, calls)
        self._calls = calls
        self._closed = closed
        self._adapter = adapters

    def _unsupported(self, request: ChatRequest, model: ModelEntry) -> str | None:
        return _unsupported_field(self._adapter(model.provider), request, model)

    async def open(
        self,
        kept: str,
        broken: tuple[ModelEntry, AuthProfile],
        error: ProviderError,
        request_id: str,
    ) -> tuple[_Resumed, _Served] | None:
        """The continuation opened (its reader splices), and its books; ``None`` when no
        candidate can continue or every one failed. It is a request of its own; its event
        names the broken request's ``request_id``."""
        decoded = self._translation.decoded()
        if decoded is None or not kept.strip():
            return None
        original = decoded.request
        found = continuing(self._steps, broken[0], original)
        if found is None:
            return None
        steps, can = found
        request = continuation_request(original, kept)
        unsupported = combined(can, functools.partial(self._unsupported, request))
        engine = self._engine
        state = engine.new_request()
        try:
            opened, model, profile = await engine.run(
                state,
                steps,
                functools.partial(self._calls.open_stream, request),
                unsupported=unsupported,
            )
        except (AllAttemptsFailed, ProviderError):
            return None
        if state.ticket is not None:  # the SDK reads the usage: charged its worst case
            await engine.settle(state, None)
        reader = ResumedReader(opened[1], opened[2], Splice.after(continued_text(original, kept)))
        hooks = engine.hooks
        if hooks.wants(FailoverEvent):
            hooks.emit(
                FailoverEvent(
                    request_id=request_id,
                    kind="continue",
                    from_model=broken[0].key,
                    from_profile=broken[1].name,
                    to_model=model.key,
                    to_profile=profile.name,
                    reason=error.kind,
                    error_message=f"{len(kept)} characters kept: {error.message}",
                )
            )
        return (opened[0], reader, StreamChunk()), _Served(engine, state, model, profile)

    async def spliced(
        self,
        kept: str,
        block: int | None,
        error: ProviderError,
        broken: tuple[ModelEntry, AuthProfile],
        request_id: str,
    ) -> _Pump | None:
        """The continuation of a stream passed through from the SDK's own provider, as
        bytes that follow its own (``block``: the content block it left open)."""
        if self._closed():
            return None
        decoded = self._translation.decoded()
        if decoded is None or decoded.wire not in ("openai", "anthropic", "gemini"):
            return None
        found = await self.open(kept, broken, error, request_id)
        if found is None:
            return None
        opened, served = found
        encoder = stream_encoder(decoded, model=served.model.id)
        _take_over(encoder, block)
        return _Pump(encoder, opened, served, self._closed)


def _take_over(encoder: StreamEncoder, block: int | None) -> None:
    """Make ``encoder`` go on from the middle of a stream another wrote: no opening
    events, and (Anthropic) the text block ``block`` still open."""
    encoder_state: Any = encoder
    if hasattr(encoder_state, "_started"):
        encoder_state._started = True
    if hasattr(encoder_state, "_open"):
        encoder_state._block = 0 if block is None else block
        encoder_state._open = "text"


@functools.cache  # one class per library (httpx, httpx2), not one per stream
def _encoded_stream(library: ModuleType) -> Any:
    """A byte-stream class of ``library`` that passes on what a :class:`_Pump` encodes: read
    asynchronously (an async client's), or from a sync client's thread through ``io``."""

    class Encoded(library.SyncByteStream, library.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, pump: _Pump, io: IO) -> None:
            self._pump, self._io = pump, io

        def __iter__(self) -> Iterator[bytes]:
            while (data := self._io.call(self._pump.next)) is not None:
                yield data

        def close(self) -> None:
            with contextlib.suppress(FailoverError):  # the transport was closed meanwhile
                self._io.call(self._pump.aclose)

        def __aiter__(self) -> Encoded:
            # an iterator of its own, not an async generator: nothing to finalise (the
            # pump holds the state; ``aclose`` releases it), no loop hooks per stream
            return self

        async def __anext__(self) -> bytes:
            data = await self._pump.next()
            if data is None:
                raise StopAsyncIteration
            return data

        async def aclose(self) -> None:
            await self._pump.aclose()

    return Encoded
