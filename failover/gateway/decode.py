"""One entry point for every SDK request: find its wire format, then read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.gateway.decode_anthropic import decode_anthropic
from failover.gateway.decode_chat import decode_chat
from failover.gateway.decode_gemini import decode_gemini
from failover.gateway.decode_responses import decode_responses
from failover.gateway.framing import load_body
from failover.gateway.types import Decoded, Wire, invalid_request, wire_of

__all__ = ["decode_as", "decode_request"]


def decode_request(url: str, body: bytes | str | Mapping[str, Any]) -> Decoded:
    """Read an SDK's request into the common request, ready for any provider's adapter.

    Args:
        url: The request's URL (or path with its query): it tells the wire format, and
            Gemini's names the model and whether to stream.
        body: The request's JSON body, as bytes or already parsed.

    Raises:
        CannotTranslateError: A field only the SDK's own provider can honour (its
            ``field`` names it); send this request to that provider only.
        InvalidRequestError: Not a request of a wire format the gateway speaks, or not
            in that format's shape.
    """
    wire = wire_of(url)
    if wire is None:
        raise invalid_request(f"no wire format the gateway speaks is served at {url!r}")
    return decode_as(wire, url, body)


def decode_as(wire: Wire, url: str, body: bytes | str | Mapping[str, Any]) -> Decoded:
    """:func:`decode_request` of a request whose wire format the caller read already from
    its ``url`` (``wire_of(url)``: the SDK transport reads it once per URL)."""
    data = load_body(body)
    if wire == "openai":
        return decode_chat(data)
    if wire == "responses":
        return decode_responses(data)
    if wire == "anthropic":
        return decode_anthropic(data)
    return decode_gemini(data, url)
