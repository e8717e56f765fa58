"""The in-process gateway: an SDK's request served by any provider, in the SDK's own format.

Four wire formats are read and written: OpenAI Chat Completions (``openai``), OpenAI
Responses (``responses``), Anthropic Messages (``anthropic``) and Gemini generateContent
(``gemini``). A request goes in through :func:`decode_request` (the common
:class:`~failover.providers.base.ChatRequest`, ready for any adapter's ``build_request``); the
serving provider's reply, read by its adapter (``parse_response``, ``stream_parser``),
comes back out through :func:`encode_result` or :func:`stream_encoder` /
:func:`encode_stream`, and a failure through :func:`encode_error`, so the SDK parses
either as if its own provider had answered.

What cannot cross providers (state kept on the SDK provider's servers, server-side
tools, ...) raises :class:`CannotTranslateError` naming the field, for the transport to
serve that request on the SDK's own provider only.

Example:
    >>> from failover.gateway import decode_request
    >>> decoded = decode_request(
    ...     "https://api.anthropic.com/v1/messages",
    ...     b'{"model": "claude-haiku-4-5", "max_tokens": 64,'
    ...     b' "messages": [{"role": "user", "content": "Hi"}]}',
    ... )
    >>> decoded.wire, decoded.model, decoded.request.max_tokens
    ('anthropic', 'claude-haiku-4-5', 64)
"""

from __future__ import annotations

from failover.gateway.decode import decode_request
from failover.gateway.encode import encode_result, encode_stream, stream_encoder
from failover.gateway.errors import encode_error
from failover.gateway.stream import StreamEncoder
from failover.gateway.types import (
    WIRES,
    CannotTranslateError,
    Decoded,
    Wire,
    WireResponse,
    wire_of,
)

__all__ = [
    "WIRES",
    "CannotTranslateError",
    "Decoded",
    "StreamEncoder",
    "Wire",
    "WireResponse",
    "decode_request",
    "encode_error",
    "encode_result",
    "encode_stream",
    "stream_encoder",
    "wire_of",
]
