"""One chat attempt through a provider's adapter, as both faces make it.

``ResilientClient`` makes every attempt this way; ``ResilientTransport`` makes its
translated steps (a fallback model of another provider serving an SDK's request) this way.
An attempt builds the adapter's HTTP request for its key and model, sends it through a
``Sender``, raises the provider's error for an error reply (a good reply's rate-limit
headers are noted on the key), and then parses the reply whole (:meth:`ChatCalls.complete`)
or opens its stream and reads the first chunk before anything is handed on
(:meth:`ChatCalls.open_stream`), so that failover is possible until that chunk.
"""

from __future__ import annotations

import math
import operator
import re
import types
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import AbstractAsyncContextManager
from functools import partial
from itertools import starmap
from typing import TYPE_CHECKING, Any, cast

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from failover._tasks import cancel_scope, finish_even_if_cancelled, loop_time
from failover.catalog import TokenUsage
from failover.classify import headroom_counts
from failover.errors import ConfigError, MalformedResponseError, did_you_mean
from failover.providers.base import (
    ChatRequest,
    ChatResult,
    EmbeddingAdapter,
    HttpRequest,
    ProviderAdapter,
    StreamChunk,
)
from failover.providers.openai import OTHER_WIRES_FIELDS
from failover.providers.reading import check_event_stream

if TYPE_CHECKING:
    from failover.engine import AttemptContext, Engine
    from failover.http import Reply, Sender

__all__ = [
    "DRAIN_SECONDS",
    "KNOWN_PARAMETERS",
    "ChatCalls",
    "ChunkReader",
    "OpenedStream",
    "check_parameter_names",
    "close_opened",
]

KNOWN_PARAMETERS = (
    frozenset(
        {
            # OpenAI Chat Completions, the request shape of ChatRequest
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "n",
            "stop",
            "stream_options",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "user",
            "seed",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "reasoning_effort",
            "metadata",
            "store",
            "service_tier",
            "modalities",
            "audio",
        }
    )
    | OTHER_WIRES_FIELDS  # other wires' own fields, passed through to their provider
)
"""The parameters ``ResilientClient.complete``/``stream`` know: a near miss of one is a
typo (:func:`check_parameter_names`); other names pass through to the provider."""

_OTHER_SPELLINGS = {
    "stop_sequences": "stop",
    "max_output_tokens": "max_tokens",
}
"""Other APIs' names of known parameters: a near miss of one suggests ours."""

_NEAR_MISS = 0.85
"""How close (``difflib`` ratio) a name must be to a known one to be a typo: catches
``max_token``, ``temprature``, ``tool``, ``respone_format`` (0.88 and up) and lets plausible
new parameters (``verbosity``-like names, far from every known one) through."""


def _normalised(name: str) -> str:
    """``name`` in snake case: ``topP``, ``top-p`` and ``Top_P`` all read ``top_p``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").replace(" ", "_").lower()


_BY_NORMALISED = {_normalised(name): name for name in KNOWN_PARAMETERS} | {
    _normalised(name): ours for name, ours in _OTHER_SPELLINGS.items()
}


def check_parameter_names(params: Mapping[str, Any]) -> None:
    """Refuse a parameter name that is a near miss of a known one, before any call.

    A known name, and a name far from every known one (a parameter a provider shipped
    today), pass.

    Raises:
        ConfigError: A name is a near miss; the message says which name was meant.
    """
    for name in params:
        if not isinstance(name, str) or name in KNOWN_PARAMETERS or name in _OTHER_SPELLINGS:
            continue
        normalised = _normalised(name)
        meant = _BY_NORMALISED.get(normalised)
        if meant is None:
            hint = did_you_mean(normalised, _BY_NORMALISED, cutoff=_NEAR_MISS)
            if not hint:
                continue
            meant = _BY_NORMALISED[hint.split("'")[1]]
        raise ConfigError(
            f"unknown parameter {name!r}; did you mean {meant!r}? (names far from every known "
            "parameter pass through to the provider unchanged)"
        )


OpenedStream = tuple[AbstractAsyncContextManager["Reply"], "ChunkReader", StreamChunk]
"""A stream opened by :meth:`ChatCalls.open_stream`: its exchange (exit it to release the
connection), its reader, and its first chunk."""


class ChatCalls:
    """Makes one chat attempt with the key, base URL and model an AttemptContext names.

    Args:
        engine: Notes each good reply's rate-limit headers on its key.
        sender: Sends the requests.
        adapters: Provider name -> its adapter, for every provider attempts may go to.
        stream_idle_timeout: Seconds a stream may go without a chunk (each read's bound).
    """

    __slots__ = ("_adapters", "_engine", "sender", "stream_idle_timeout")

    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        adapters: Mapping[str, ProviderAdapter],
        *,
        stream_idle_timeout: float,
    ) -> None:
        self._engine = engine
        self.sender = sender
        self._adapters = adapters
        self.stream_idle_timeout = stream_idle_timeout

    def http_request(
        self,
        adapter: ProviderAdapter,
        request: ChatRequest,
        ctx: AttemptContext,
        api_key: str | None = None,
    ) -> HttpRequest:
        """The HTTP request the attempt's adapter builds for its key (or ``api_key``: a
        cloud's credentials, :meth:`signed_request`) and model."""
        return adapter.build_request(
            request,
            model=ctx.model.id,
            api_key=api_key if api_key is not None else ctx.api_key,
            base_url=ctx.base_url,
        )

    async def signed_request(
        self, adapter: ProviderAdapter, request: ChatRequest, ctx: AttemptContext
    ) -> HttpRequest:
        """:meth:`http_request`, with a cloud provider's credentials (Bedrock's AWS chain,
        Vertex AI's Google tokens) found and refreshed first by its adapter (one with a
        ``credentials_for``)."""
        credentials = await adapter.credentials_for(ctx.profile, ctx.base_url)  # type: ignore[attr-defined]
        return self.http_request(adapter, request, ctx, credentials)

    def check_reply(
        self,
        adapter: ProviderAdapter | EmbeddingAdapter,
        ctx: AttemptContext,
        reply: Reply,
        body: bytes,
    ) -> None:
        """Raise the provider's error for an error reply; note a good one's rate-limit headers."""
        if reply.status_code >= 300:
            raise adapter.parse_error(reply.status_code, reply.headers, body)
        headers = reply.headers
        if (counts := headroom_counts(headers)) is not None:  # (most replies carry none)
            self._engine.note_headroom_counts(ctx.request_id, ctx.profile, headers, counts)

    async def complete(self, request: ChatRequest, ctx: AttemptContext) -> ChatResult:
        """One attempt at a whole reply: the provider's answer, parsed by its adapter."""
        adapter = self._adapters[ctx.model.provider]
        if hasattr(adapter, "credentials_for"):  # a cloud's
            http_request = await self.signed_request(adapter, request, ctx)
        else:  # no credentials to find: no coroutine to await for them
            http_request = self.http_request(adapter, request, ctx)
        async with self.sender.open(http_request, ctx.timeout) as reply:
            body = await reply.aread()
            self.check_reply(adapter, ctx, reply, body)
        return adapter.parse_response(body)

    async def open_stream(self, request: ChatRequest, ctx: AttemptContext) -> OpenedStream:
        """One attempt at a stream: opened, checked, and its first chunk read.

        Raises:
            ProviderError: The provider answered with an error, or the stream failed (or
                ended) before its first chunk; the connection is released.
        """
        adapter = self._adapters[ctx.model.provider]
        if hasattr(adapter, "credentials_for"):  # a cloud's
            http_request = await self.signed_request(adapter, request, ctx)
        else:  # no credentials to find: no coroutine to await for them
            http_request = self.http_request(adapter, request, ctx)
        opener = self.sender.open(
            http_request, ctx.timeout, read_timeout=min(self.stream_idle_timeout, ctx.timeout)
        )
        reply = await opener.__aenter__()
        try:
            body = await reply.aread() if reply.status_code >= 300 else b""
            self.check_reply(adapter, ctx, reply, body)
            reader = ChunkReader(adapter, reply)
            first = await reader.next()
            if first is None:
                raise MalformedResponseError("the stream ended without any chunk")
        except BaseException as exc:
            await opener.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return opener, reader, first


class ChunkReader:
    """Reads one stream's chunks: text deltas, then one summary chunk with usage.

    An event stream's body is cut into lines and events by httpx-sse's decoders as
    :meth:`next` pulls them (what ``httpx_sse.EventSource`` runs, and
    :class:`~failover.providers.reading.StreamReader`): each piece of the body read becomes
    a lazy chain of C iterators (its lines, each decoded, the events among them, each
    parsed) that :meth:`buffered` pulls one chunk at a time, so that nothing after the
    terminator is decoded or parsed. NDJSON and Bedrock's frames go through a generator.
    """

    __slots__ = (
        "_chunks",
        "_ended",
        "_finish",
        "_format",
        "_lines_of",
        "_other",
        "_parse",
        "_parser",
        "_raw_finish",
        "_reply",
        "_sse",
        "_texts",
        "_usage",
        "done",
    )

    def __init__(self, adapter: ProviderAdapter, reply: Reply) -> None:
        self._parser = adapter.stream_parser()
        self._reply = reply
        self._format = adapter.stream_format
        self._sse = self._format == "sse"
        self._texts: AsyncIterator[str] | None = None  # an event stream's body, as read
        # the parser's answers to the events of the lines read so far, made as pulled
        self._chunks: Iterator[StreamChunk | None] = iter(())
        self._lines_of = SSELineDecoder()
        self._parse: Callable[[Iterable[str]], Iterator[StreamChunk | None]] = partial(
            _parsed, SSEDecoder().decode, self._parser.feed
        )
        self._ended = False  # the body was read to its end
        self._other: AsyncIterator[StreamChunk] | None = None
        self._finish: str | None = None
        self._raw_finish: str | None = None
        self._usage: TokenUsage | None = None
        self.done = False

    async def next(self) -> StreamChunk | None:
        """Return the next text chunk, then the summary chunk, then ``None``.

        Raises:
            MalformedResponseError: The stream ended before its terminator, or is not an
                event stream.
            ProviderError: An error event, or one that cannot be read.
        """
        if self.done:
            return None
        if not self._sse:
            return await self._next_other()
        while True:  # the sender's read timeout bounds the idle time between reads
            if (chunk := self.buffered()) is not None:
                return chunk
            if self._parser.complete:
                self.done = True
                assert self._texts is not None
                self._ended = await _drain(self._texts)
                return self._summary()
            if not await self._read_lines():
                raise MalformedResponseError("the stream ended before its terminator")

    @property
    def ending(self) -> bool:
        """Whether the stream's terminator has been read: what :meth:`next` has left to
        do waits for no more than :data:`DRAIN_SECONDS` (reading the body's end)."""
        return self._parser.complete

    def buffered(self) -> StreamChunk | None:
        """The next text chunk among the lines already read, reading nothing more
        (``None``: there is none; :meth:`next` reads on, or ends the stream).

        Raises:
            ProviderError: An error event, or one that cannot be read.
        """
        parser = self._parser
        for chunk in self._chunks:  # empty but for an event stream
            if parser.complete:
                self._chunks = iter(())  # nothing after the terminator is read
                return None if chunk is None else self._took(chunk)
            if chunk is not None:
                if (  # a delta alone (the usual chunk): the parser's own. Read field by
                    # field: each a slot read in the interpreter, cheaper than one C call
                    # building a tuple of them to compare
                    chunk.usage is None
                    and chunk.finish_reason is None
                    and chunk.raw_finish_reason is None
                    and not chunk.restart
                    and (chunk.text or chunk.tool_calls)
                ):
                    return chunk
                if (kept := self._took(chunk)) is not None:
                    return kept
        return None

    def _took(self, chunk: StreamChunk) -> StreamChunk | None:
        """Note ``chunk``'s finish reason and usage; the chunk to hand on, if any."""
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
            self._raw_finish = chunk.raw_finish_reason or chunk.finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.text or chunk.tool_calls:  # its delta alone (the summary comes last)
            return StreamChunk(chunk.text, tool_calls=chunk.tool_calls)
        return None

    def _summary(self) -> StreamChunk:
        return StreamChunk("", self._finish, self._usage, (), self._raw_finish)

    async def _read_lines(self) -> bool:
        """Read on in an event stream's body: its next lines; False at its end.

        Raises:
            MalformedResponseError: The reply is not an event stream (read first).
        """
        texts = self._texts
        if texts is None:
            check_event_stream(self._reply.headers)
            texts = self._texts = self._reply.aiter_text()
        try:
            text = await texts.__anext__()
        except StopAsyncIteration:
            if self._ended:
                return False
            self._ended = True
            self._chunks = self._parse(self._lines_of.flush())
            return True
        self._chunks = self._parse(self._lines_of.decode(text))
        return True

    async def _next_other(self) -> StreamChunk | None:
        """:meth:`next` for NDJSON and Bedrock's frames."""
        if self._other is None:
            self._other = self._iterate(self._reply)
        while True:
            try:  # the sender's read timeout bounds the idle time between chunks
                chunk = await self._other.__anext__()
            except StopAsyncIteration:
                self.done = True
                return self._summary()
            if (kept := self._took(chunk)) is not None:
                return kept

    async def _iterate(self, reply: Reply) -> AsyncIterator[StreamChunk]:
        parser = self._parser
        rest: AsyncIterator[Any]
        if self._format == "eventstream":  # Bedrock's binary frames
            rest = cast(Any, reply).aiter_bytes()  # httpx's and the aiohttp sender's
            frames = cast(Any, parser)
            async for data in rest:
                for chunk in frames.feed_bytes(data):
                    yield chunk
                if parser.complete:
                    break
        else:
            rest = reply.aiter_lines()
            async for line in rest:
                if line.strip() and (chunk := parser.feed("", line)) is not None:
                    yield chunk
                if parser.complete:
                    break
        if not parser.complete:
            self._ended = True
            raise MalformedResponseError("the stream ended before its terminator")
        self._ended = await _drain(rest)

    async def aclose(self) -> None:
        """Stop reading."""
        for body in (self._texts, self._other):
            if body is not None and (close := getattr(body, "aclose", None)) is not None:
                await close()


async def _drain(rest: AsyncIterator[Any]) -> bool:
    """Read what follows a stream's terminator (the body's end, at once) for a moment;
    whether the body's end came within it.

    A reply closed before its body's end is read closes its connection instead of going
    back to the pool: every stream would pay a new connection (a TLS handshake). The end
    is usually there already: each read is run at once, and the moment's timer is set only
    when one has to wait (inside the scope entered first, so that scopes the read enters
    nest in it).
    """
    with cancel_scope() as scope:  # no deadline, no timer, until a read waits
        try:
            while True:
                step = rest.__anext__().__await__()
                try:
                    waiting = step.send(None)
                except StopIteration:  # a piece, read at once: read on
                    continue
                if scope.deadline == math.inf:
                    scope.deadline = loop_time() + DRAIN_SECONDS
                await _resumed(step, waiting)
        except StopAsyncIteration:  # the body's end
            return True
    return False


DRAIN_SECONDS = 0.05
"""How long a stream's reader reads on after its terminator for the body's end."""


_IS_EVENT = partial(operator.is_not, None)  # ``event is not None``, in C


def _event_fields() -> Callable[[Any], tuple[str, str]]:
    """What reads an httpx-sse event's name and data in C: the attributes its properties
    return (httpx-sse 0.4 keeps them as ``_event`` and ``_data``: no Python frame per read)
    when they hold what the properties give, else the properties themselves."""
    public = operator.attrgetter("event", "data")
    fields = operator.attrgetter("_event", "_data")
    probe = ServerSentEvent(event="", data="probe")  # the name defaults to "message"
    try:
        if fields(probe) == public(probe) == ("message", "probe"):
            return fields
    except AttributeError:
        pass
    return public


_NAME_AND_DATA = _event_fields()


def _parsed(
    decode: Callable[[str], ServerSentEvent | None],
    feed: Callable[[str, str], StreamChunk | None],
    lines: Iterable[str],
) -> Iterator[StreamChunk | None]:
    """The parser's answer (``feed``'s) to each event that ``lines`` end, as httpx-sse's
    ``decode`` cuts them: a lazy chain of C iterators, each line decoded, and each event
    parsed, only as the chunks are pulled."""
    return starmap(feed, map(_NAME_AND_DATA, filter(_IS_EVENT, map(decode, lines))))


async def close_opened(opened: Any) -> None:
    """Stop reading an opened stream and release its connection, even when cancelled.

    A stream read to its body's end (the usual one) often has nothing left to wait for
    (httpx has closed the reply as its body ended): when its sender says so
    (``exits_at_once``, see :class:`~failover.http.Sender`) it is closed in place; any
    other release runs whole in a task of its own, which the caller's cancellation cannot
    cut short (a release is never moved between tasks: what it enters, a timeout or a
    shielded scope, belongs to the task that entered it).
    """
    opener, reader = opened[0], opened[1]

    async def close() -> None:
        await reader.aclose()
        await opener.__aexit__(None, None, None)

    if type(reader) is ChunkReader and reader._ended and getattr(opener, "exits_at_once", False):
        await close()  # nothing in it waits: no task, no shield
        return
    await finish_even_if_cancelled(close)


@types.coroutine
def _resumed(
    coroutine: Coroutine[Any, Any, Any] | Generator[Any, Any, Any], yielded: Any
) -> Generator[Any, Any, None]:
    """Await the rest of ``coroutine`` (or an awaitable's ``__await__``), which yielded
    ``yielded`` when its caller sent it its first ``None`` itself: ``yield from`` by hand
    (what is sent or thrown in goes on to it)."""
    try:
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as thrown:
                yielded = coroutine.throw(thrown)
            else:
                yielded = coroutine.send(sent)
    except StopIteration:
        return
