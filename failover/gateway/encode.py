"""One entry point per direction out: a reply, a stream, in the SDK's wire format."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

from failover.gateway.encode_anthropic import AnthropicStream, encode_anthropic_result
from failover.gateway.encode_chat import ChatStream, encode_chat_result
from failover.gateway.encode_gemini import GeminiStream, encode_gemini_result
from failover.gateway.encode_responses import ResponsesStream, encode_responses_result
from failover.gateway.stream import StreamEncoder
from failover.gateway.types import Decoded, WireResponse
from failover.providers.base import ChatResult, StreamChunk

__all__ = ["encode_result", "encode_stream", "stream_encoder"]


def encode_result(decoded: Decoded, result: ChatResult, *, model: str) -> WireResponse:
    """The whole reply to ``decoded``'s SDK for ``result``, as its own provider sends it.

    Args:
        decoded: The SDK's request, as :func:`~failover.gateway.decode_request` read it.
        result: What the serving provider answered (any adapter's ``parse_response``).
        model: The serving model's id, reported in the reply's ``model``.
    """
    if decoded.wire == "openai":
        return encode_chat_result(result, model=model)
    if decoded.wire == "responses":
        return encode_responses_result(result, model=model, echo=decoded.echo)
    if decoded.wire == "anthropic":
        return encode_anthropic_result(result, model=model)
    return encode_gemini_result(result, model=model)


def stream_encoder(decoded: Decoded, *, model: str) -> StreamEncoder:
    """A fresh encoder of one stream's chunks into ``decoded``'s SSE format.

    Feed it the serving provider's :class:`~failover.providers.base.StreamChunk` s (from its
    adapter's ``stream_parser``) and send each call's bytes as they come; ``close()`` ends
    the stream, ``fail(error)`` breaks it the way that provider does.
    """
    if decoded.wire == "openai":
        return ChatStream(model=model, include_usage=bool(decoded.echo.get("include_usage")))
    if decoded.wire == "responses":
        return ResponsesStream(model=model, echo=decoded.echo)
    if decoded.wire == "anthropic":
        return AnthropicStream(model=model)
    return GeminiStream(model=model)


async def encode_stream(
    decoded: Decoded,
    chunks: AsyncIterable[StreamChunk] | Iterable[StreamChunk],
    *,
    model: str,
) -> AsyncIterator[bytes]:
    """The SSE bytes of a whole stream, event group by event group, terminator last.

    A failure of ``chunks`` after the stream started ends it with the wire's own error
    event (so the SDK raises); before any byte was sent, it propagates instead (the
    transport can still fall over, or answer with :func:`~failover.gateway.encode_error`).
    """
    encoder = stream_encoder(decoded, model=model)
    sent = False
    try:
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                if data := encoder.feed(chunk):
                    sent = True
                    yield data
        else:
            for chunk in chunks:
                if data := encoder.feed(chunk):
                    sent = True
                    yield data
    except Exception as exc:
        if not sent:
            raise
        yield encoder.fail(exc)
        return
    yield encoder.close()
