"""CompletionStream: a streamed completion's chunks, failing over until the first one.

What :meth:`ResilientClient.stream <failover.client.ResilientClient.stream>` returns. It
runs the request through the engine when first read, then reads the chosen provider's
chunks, charging the request's budgets at the end.

A break after the first chunk (a reset, a truncation, an idle timeout, an in-band error
event; or a reply ``accept`` rejects at the end) does what the stream's ``on_break`` says:
``"raise"`` (StreamInterrupted), ``"restart"`` (the engine runs the request again; the
caller first gets a chunk with ``restart=True``: discard what you have) or ``"continue"``
(the engine runs the request again with the text so far as an assistant prefill, over the
models whose wire can continue one, see :mod:`failover.continuation`; the caller's chunks
go on where they stopped). A tool call begun, a rejected reply, a content block, or a
chain with no model that can continue restarts instead; a break the policy raises (a
content block with ``raise_on_content_filter``) raises StreamInterrupted in every mode.
The request keeps one RequestState: its attempts are one history, its usage and cost the
sum of every attempt's.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

from failover._closing import AsyncClosing
from failover._tasks import scope_within
from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.chat_calls import DRAIN_SECONDS, ChunkReader, OpenedStream, close_opened
from failover.completion import Accept, Completion
from failover.continuation import (
    ResumedReader,
    Splice,
    combined,
    continuation_request,
    continuation_steps,
    continued_text,
    continuing,
    partial_usage,
    reported_usage,
    summed,
)
from failover.engine import Engine
from failover.errors import (
    AllAttemptsFailed,
    ContentFilteredError,
    ProviderError,
    ProviderTimeoutError,
    ReplyRejected,
    StreamInterrupted,
)
from failover.events import FailoverEvent
from failover.http import Reply
from failover.policy import Action
from failover.profiles import AuthProfile
from failover.providers.base import ChatRequest, StreamAssembler, StreamChunk, ToolCall
from failover.request import AttemptContext, RequestState

__all__ = ["CompletionStream", "StreamSource"]


@dataclass(frozen=True, slots=True)
class StreamSource:
    """Where a client's streams come from: its engine, the call that opens one on a
    candidate, and which field of a request a model cannot take."""

    engine: Engine
    open_stream: Callable[[ChatRequest, AttemptContext], Awaitable[OpenedStream]]
    unsupported: Callable[[ChatRequest], Callable[[ModelEntry], str | None] | None]


class CompletionStream(AsyncClosing):
    """The chunks of a streamed completion, with the answer's metadata once it starts.

    After a break, ``on_break`` decides (see the module's docstring): ``"continue"`` goes
    on with the next chunks of the same text; ``"restart"`` (and ``"continue"`` when it
    cannot splice) first yields a chunk with ``restart=True`` and nothing else, after
    which ``text``, ``message`` and ``tool_calls`` start over.

    Attributes:
        text: The text received so far (since the last restart).
        model: ``provider/model`` that is answering (set at the first chunk; after a
            break, the model that took over).
        profile: The auth profile's name (set at the first chunk).
        usage: Token counts (set at the end): every attempt's, summed, when the stream
            was continued or restarted (a broken attempt's as far as it reported, its
            output estimated from its text at 4 characters a token).
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``content_filter`` (at the end).
        raw_finish_reason: The provider's own stop reason (at the end).
        cost_usd: The cost from the catalog's prices (at the end, each attempt at its own
            model's price; ``None`` when unknown).
        attempts: Every attempt made so far.
    """

    def __init__(
        self,
        source: StreamSource,
        request: ChatRequest,
        state: RequestState,
        steps: Sequence[tuple[ModelEntry, ...]],
        *,
        on_break: str = "raise",
        accept: Accept | None = None,
    ) -> None:
        self._on_break = on_break
        self._accept = accept
        self._source = source
        self._request = request
        self._steps = steps
        self._engine = source.engine
        self._state = state
        self._state.release = close_opened  # a hedged stream that lost: let it go
        self._opener: AbstractAsyncContextManager[Reply] | None = None
        self._reader: ChunkReader | ResumedReader | None = None
        # a ChunkReader's ``buffered`` while the stream is read through one (not resumed)
        self._buffered: Callable[[], StreamChunk | None] | None = None
        self._spent: list[tuple[ModelEntry, TokenUsage]] = []  # broken attempts' usage
        self._attempt_start = 0  # where the answering attempt's own text begins in ``text``
        self._finished = False
        self._chosen: tuple[ModelEntry, AuthProfile] | None = None
        self.model: str | None = None
        self.profile: str | None = None
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.cost_usd: float | None = None
        self._assembled = StreamAssembler()

    @property
    def text(self) -> str:
        """The text so far, joined when read (no copy of it is made per chunk, so read it
        at the end, or after a break, rather than on every chunk)."""
        return self._assembled.text

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls assembled from the stream's deltas so far."""
        return self._assembled.tool_calls

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message in OpenAI's shape (complete once the stream has ended)."""
        return self._assembled.message

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt made so far."""
        return tuple(self._state.attempts)

    def __aiter__(self) -> CompletionStream:
        return self

    async def __anext__(self) -> StreamChunk:
        # the usual chunk: one among what the reader read already (no timer, no coroutine)
        buffered = self._buffered
        if buffered is not None:
            try:
                chunk = buffered()
            except BaseException as error:  # an error event (or worse): the loop sees it
                return await self._anext((error,))
            if chunk is not None:
                self._assembled.add_delta(chunk)  # a delta, and the reader reads on
                return chunk
        return await self._anext()

    async def _anext(self, read: tuple[BaseException] | None = None) -> StreamChunk:
        """:meth:`__anext__` beyond a chunk read already; ``read``: the error reading one
        raised, taken as the loop's first read."""
        if self._finished:
            raise StopAsyncIteration
        reader = self._reader
        try:
            if read is not None:
                chunk = await self._next_chunk(read)
            elif reader is not None and reader.done:  # its summary was the last chunk
                chunk = None
            elif reader is not None:
                try:
                    chunk = await self._read(reader)
                except (TimeoutError, ProviderError) as error:
                    chunk = await self._next_chunk((error,))
                else:
                    if chunk is not None and not reader.done:
                        # a delta: a reader's finish reason and usage come in its summary
                        self._assembled.add_delta(chunk)
                        return chunk
                    chunk = await self._next_chunk((chunk,))
            else:
                chunk = await self._next_chunk()
        except BaseException as error:
            self._engine.ended(self._state, error)
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        if chunk.restart:  # what the caller has is void: so is ours
            self._assembled = StreamAssembler()
            self.usage = self.finish_reason = self.raw_finish_reason = None
            return chunk
        self._assembled.add(chunk)
        if chunk.usage is not None or chunk.finish_reason is not None:
            self.usage, self.finish_reason = chunk.usage, chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason
        return chunk

    async def _next_chunk(
        self, read: tuple[StreamChunk | BaseException | None] | None = None
    ) -> StreamChunk | None:
        """The next chunk; ``read``: what reading the current reader once gave (a chunk,
        ``None`` or the error it raised), taken as the loop's first read."""
        if self._reader is None:
            request = self._request
            source = self._source
            attempt = partial(source.open_stream, request)
            (opener, reader, first), model, profile = await self._engine.run(
                self._state, self._steps, attempt, unsupported=source.unsupported(request)
            )
            self._opener, self._reader, self._chosen = opener, reader, (model, profile)
            self._buffered = reader.buffered if type(reader) is ChunkReader else None
            self.model, self.profile = model.key, profile.name
            self._engine.streaming(self._state)
            return first
        while True:
            assert self._chosen is not None
            model, profile = self._chosen
            try:
                if read is not None:
                    (outcome,), read = read, None
                    if isinstance(outcome, BaseException):
                        raise outcome
                    chunk = outcome
                else:
                    chunk = await self._read(self._reader)
            except TimeoutError:  # the caller's deadline: no fault of the key's
                error: ProviderError = ProviderTimeoutError(
                    f"the request's deadline of {self._engine.deadline}s passed mid-stream"
                )
                self._engine.interrupted(self._state, model, profile, error, counts=False)
                raise StreamInterrupted(error, self.text, self._state.attempts) from None
            except ProviderError as error:
                self._engine.interrupted(self._state, model, profile, error)
                if self._on_break == "raise" or self._engine.policy.decide(error).action is (
                    Action.RAISE  # e.g. a content block the client is to raise
                ):
                    raise StreamInterrupted(error, self.text, self._state.attempts) from error
                # filtered text is not handed to another model to go on with: start over
                filtered = isinstance(error, ContentFilteredError)
                marker = await self._resume(error, start_over=filtered)
                if marker is not None:
                    return marker
                continue
            if chunk is not None and self._reader.done:
                if self._spent:
                    chunk = dataclasses.replace(chunk, usage=self._total_usage(chunk.usage))
                if self._accept is not None:
                    rejection = await self._rejection(chunk)
                    if rejection is not None:
                        self._engine.interrupted(
                            self._state, model, profile, rejection, counts=False
                        )
                        if self._on_break == "raise":
                            if self._state.ticket is not None:  # it was answered: billed
                                await self._engine.settle(self._state, self._own_usage(chunk.usage))
                            raise StreamInterrupted(
                                rejection, self.text + chunk.text, self._state.attempts
                            )
                        marker = await self._resume(rejection, start_over=True, last=chunk)
                        if marker is not None:
                            return marker
                        continue
                if self._state.ticket is not None:
                    await self._engine.settle(self._state, self._own_usage(chunk.usage))
                self._succeeded(chunk.usage)
            return chunk

    async def _read(self, reader: ChunkReader | ResumedReader) -> StreamChunk | None:
        """The next chunk, within what is left of the request's deadline.

        Taken without a timer: a chunk among what was read already (it waits for
        nothing), and the end of a stream whose terminator was read, when more than
        DRAIN_SECONDS are left (it waits for no longer).
        """
        if type(reader) is ChunkReader:
            if (chunk := reader.buffered()) is not None:
                return chunk
            if reader.ending and self._state.time_left() > DRAIN_SECONDS:
                return await reader.next()
        if self._state.deadline_at == math.inf:
            return await reader.next()
        with scope_within(max(self._state.time_left(), 0.0)):
            return await reader.next()
        raise TimeoutError  # the scope's deadline passed: it caught its cancellation

    def _succeeded(self, usage: TokenUsage | None) -> None:
        if self._chosen is None or self._finished:
            return
        model, profile = self._chosen
        cost = self._cost(model, usage)
        self.cost_usd = cost
        state = self._state
        # the exchange (the answer's text joined) is built only for telemetry, which may
        # capture it
        exchange = None if state.telemetry is None else (self._request.messages, self.text)
        self._engine.succeeded(state, model, profile, cost, usage, exchange=exchange)

    def _cost(self, model: ModelEntry, usage: TokenUsage | None) -> float | None:
        """The cost of ``usage`` (every attempt's, when the stream was resumed: each at its
        own model's price); ``None`` when a price or the usage is unknown."""
        if not usage:
            return None
        if not self._spent:
            return model.calculate_cost(usage)
        own = self._own_usage(usage)
        costs = [m.calculate_cost(u) for m, u in self._spent]
        costs.append(model.calculate_cost(own) if own is not None else None)
        return None if any(c is None for c in costs) else sum(c for c in costs if c)

    # -- a break after the first chunk ------------------------------------------------------

    def _total_usage(self, last: TokenUsage | None) -> TokenUsage | None:
        """The usage of every attempt of the stream, the last one's ``last`` included."""
        if last is None:
            return None
        return summed([*(u for _, u in self._spent), last])

    def _own_usage(self, total: TokenUsage | None) -> TokenUsage | None:
        """The last attempt's share of ``total`` (what its ticket is charged)."""
        if total is None or not self._spent:
            return total
        before = summed(u for _, u in self._spent)
        return dataclasses.replace(
            total,
            **{
                f.name: max(0, getattr(total, f.name) - getattr(before, f.name))
                for f in dataclasses.fields(TokenUsage)
            },
        )

    async def _rejection(self, last: StreamChunk) -> ReplyRejected | None:
        """Run ``accept`` on the whole answer; the rejection, or ``None`` when kept."""
        assert self._accept is not None
        assert self._chosen is not None
        model, profile = self._chosen
        calls = self._assembled.tool_calls
        usage = last.usage
        completion = Completion(
            text=self.text + last.text,
            model=model.key,
            provider=model.provider,
            profile=profile.name,
            usage=usage or TokenUsage(),
            cost_usd=self._cost(model, usage),
            finish_reason=last.finish_reason,
            attempts=tuple(self._state.attempts),
            latency=time.monotonic() - self._state.started,
            raw=None,
            tool_calls=calls,
            raw_finish_reason=last.raw_finish_reason,
        )
        verdict = self._accept(completion)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict:
            return None
        return ReplyRejected(
            f"accept rejected the streamed reply of {model.key}", completion=completion
        )

    async def _resume(
        self, error: ProviderError, *, start_over: bool, last: StreamChunk | None = None
    ) -> StreamChunk | None:
        """Go on after ``error`` broke the stream: another candidate continues the text
        (``None`` returned: read on) or starts over (the restart marker returned; always
        with ``start_over``: a rejected reply, a content block).

        Raises:
            StreamInterrupted: No candidate could take over (the engine's failure chained).
        """
        assert self._chosen is not None
        assert self._reader is not None
        model, profile = self._chosen
        kept = self.text
        reported = self._own_usage(last.usage) if last is not None else None
        reported = reported or reported_usage(self._reader)
        # the broken attempt produced what came after the text it was given
        usage = partial_usage(reported, self._request, kept[self._attempt_start :])
        await self._release_broken(usage)
        self._spent.append((model, usage))
        source, state = self._source, self._state
        found = None
        if self._on_break == "continue" and not start_over and not self._assembled.tool_calls:
            found = continuing(self._steps, model, self._request)
        splice: Splice | None = None
        if found is not None:
            steps, can_continue = found
            request = continuation_request(self._request, kept)
            unsupported = combined(can_continue, source.unsupported(request))
            splice = Splice.after(continued_text(self._request, kept))
        else:
            steps = continuation_steps(self._steps, model)
            request = self._request
            unsupported = source.unsupported(request)
        try:
            opened = await self._engine.run(
                state, steps, partial(source.open_stream, request), unsupported=unsupported
            )
        except (AllAttemptsFailed, ProviderError) as failure:
            if splice is None:
                raise StreamInterrupted(error, kept, state.attempts) from failure
            splice = None  # no candidate could continue: one that can take it starts over
            try:
                opened = await self._engine.run(
                    state,
                    steps,
                    partial(source.open_stream, self._request),
                    unsupported=source.unsupported(self._request),
                )
            except (AllAttemptsFailed, ProviderError) as again:
                raise StreamInterrupted(error, kept, state.attempts) from again
        (opener, reader, first), to_model, to_profile = opened
        self._attempt_start = len(kept) if splice is not None else 0
        self._opener, self._chosen = opener, (to_model, to_profile)
        self._reader = ResumedReader(reader, first, splice)
        self._buffered = None
        self.model, self.profile = to_model.key, to_profile.name
        kind = "continue" if splice is not None else "restart"
        self._announce(kind, error, (model, profile), (to_model, to_profile), kept)
        return None if splice is not None else StreamChunk(restart=True)

    async def _release_broken(self, usage: TokenUsage) -> None:
        """Let the broken attempt's connection go, its budgets charged what it produced."""
        if self._state.ticket is not None:
            await self._engine.settle(self._state, usage)
        opened, self._opener = self._opener, None
        if opened is not None and self._reader is not None:
            await close_opened((opened, self._reader))

    def _announce(
        self,
        kind: str,
        error: ProviderError,
        broken: tuple[ModelEntry, AuthProfile],
        to: tuple[ModelEntry, AuthProfile],
        kept: str,
    ) -> None:
        """A FailoverEvent of ``kind`` ``continue`` or ``restart``: from, to, characters kept."""
        hooks = self._engine.hooks
        if not hooks.wants(FailoverEvent):
            return
        kept_chars = len(kept) if kind == "continue" else 0
        hooks.emit(
            FailoverEvent(
                request_id=self._state.id,
                kind=kind,
                from_model=broken[0].key,
                from_profile=broken[1].name,
                to_model=to[0].key,
                to_profile=to[1].name,
                reason=error.kind,
                error_message=f"{kept_chars} characters kept (of {len(kept)}): {error.message}",
            )
        )

    async def aclose(self) -> None:
        """Stop the stream and release its connection (even when cancelled meanwhile)."""
        if self._finished:
            return
        self._finished = True
        self._buffered = None
        self._engine.ended(self._state)
        if self._state.ticket is not None:  # closed or cut before its end
            await self._engine.unsettled(self._state)
        if self._opener is not None and self._reader is not None:
            await close_opened((self._opener, self._reader))
