"""CompletionStream: a streamed completion's chunks, failing over until the first one.

What :meth:`ResilientClient.stream <failover.client.ResilientClient.stream>` returns. It
runs the request through the engine when first read, then reads the chosen provider's
chunks, charging the request's budgets at the end.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from failover._closing import AsyncClosing
from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.chat_calls import ChunkReader, OpenedStream, close_opened
from failover.completion import Accept
from failover.engine import Engine
from failover.errors import ProviderError, ProviderTimeoutError, StreamInterrupted
from failover.http import Reply
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

    Attributes:
        text: The text received so far.
        model: ``provider/model`` that is answering (set at the first chunk).
        profile: The auth profile's name (set at the first chunk).
        usage: Token counts (set at the end).
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``content_filter`` (at the end).
        raw_finish_reason: The provider's own stop reason (at the end).
        cost_usd: The cost from the catalog's prices (at the end; ``None`` when unknown).
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
        self._reader: ChunkReader | None = None
        self._finished = False
        self._chosen: tuple[ModelEntry, AuthProfile] | None = None
        self.text = ""
        self.model: str | None = None
        self.profile: str | None = None
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.cost_usd: float | None = None
        self._assembled = StreamAssembler()

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
        if self._finished:
            raise StopAsyncIteration
        try:
            chunk = await self._next_chunk()
        except BaseException as error:
            self._engine.ended(self._state, error)
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        self.text += chunk.text
        self._assembled.add(chunk)
        if chunk.usage is not None or chunk.finish_reason is not None:
            self.usage, self.finish_reason = chunk.usage, chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason
        return chunk

    async def _next_chunk(self) -> StreamChunk | None:
        if self._reader is None:
            request = self._request
            source = self._source
            attempt = partial(source.open_stream, request)
            (opener, reader, first), model, profile = await self._engine.run(
                self._state, self._steps, attempt, unsupported=source.unsupported(request)
            )
            self._opener, self._reader, self._chosen = opener, reader, (model, profile)
            self.model, self.profile = model.key, profile.name
            self._engine.streaming(self._state)
            return first
        assert self._chosen is not None
        model, profile = self._chosen
        try:
            chunk = await self._read(self._reader)
        except TimeoutError:  # the caller's deadline: no fault of the key's
            error: ProviderError = ProviderTimeoutError(
                f"the request's deadline of {self._engine.deadline}s passed mid-stream"
            )
            self._engine.interrupted(self._state, model, profile, error, counts=False)
            raise StreamInterrupted(error, self.text, self._state.attempts) from None
        except ProviderError as error:
            self._engine.interrupted(self._state, model, profile, error)
            raise StreamInterrupted(error, self.text, self._state.attempts) from error
        if chunk is not None and self._reader.done:
            if self._state.ticket is not None:
                await self._engine.settle(self._state, chunk.usage)
            self._succeeded(chunk.usage)
        return chunk

    async def _read(self, reader: ChunkReader) -> StreamChunk | None:
        """The next chunk, within what is left of the request's deadline."""
        time_left = self._state.time_left()
        if math.isinf(time_left):
            return await reader.next()
        with anyio.fail_after(max(time_left, 0.0)):
            return await reader.next()

    def _succeeded(self, usage: TokenUsage | None) -> None:
        if self._chosen is None or self._finished:
            return
        model, profile = self._chosen
        cost = model.calculate_cost(usage) if usage else None
        self.cost_usd = cost
        exchange = (self._request.messages, self.text)
        self._engine.succeeded(self._state, model, profile, cost, usage, exchange=exchange)

    async def aclose(self) -> None:
        """Stop the stream and release its connection (even when cancelled meanwhile)."""
        if self._finished:
            return
        self._finished = True
        self._engine.ended(self._state)
        if self._state.ticket is not None:  # closed or cut before its end
            await self._engine.unsettled(self._state)
        if self._opener is not None and self._reader is not None:
            await close_opened((self._opener, self._reader))
