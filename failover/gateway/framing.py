"""Bytes on the wire: JSON bodies, SSE events and ids, each in the style its API sends.

Whole JSON replies go to the SDK compact (the APIs' own two-space indent would force
Python's pure-Python JSON encoder; every SDK parses either). OpenAI's and Anthropic's stream
events are compact JSON framed by ``\\n\\n``; Gemini's are ``data: {...}`` with ``": "``
after keys, framed by ``\\r\\n\\r\\n``.

Text is kept as is, but a lone surrogate (an upstream's JSON escape ``"\\ud800"``, which
``json.loads`` reads into one) cannot be UTF-8: every JSON text here is encoded with
``encode("utf-8", ESCAPING)`` (``"backslashreplace"``), which writes it as ``\\ud800``,
the very escape ``json.dumps`` (``ensure_ascii``) writes and the upstream sent (a surrogate
can stand only in a JSON string, where that escape means it), and everything else as plain
UTF-8.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from failover.gateway.types import invalid_request

__all__ = [
    "ESCAPING",
    "arguments_object",
    "dumps",
    "encode_compact",
    "encode_gemini",
    "encode_string",
    "load_body",
    "new_id",
    "sse",
]

_ALPHANUMERIC = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
# Random bytes mapped onto an alphabet by one ``bytes.translate``: a hex digit per byte; a
# letter or digit per byte below 248 (4 x 62, so each is equally likely), the rest dropped.
_HEX_TABLE = bytes(ord(_HEX[byte % 16]) for byte in range(256))
_FAIR = len(_ALPHANUMERIC) * (256 // len(_ALPHANUMERIC))
_ALPHANUMERIC_TABLE = bytes(ord(_ALPHANUMERIC[byte % len(_ALPHANUMERIC)]) for byte in range(256))
_UNFAIR = bytes(range(_FAIR, 256))


encode_string: Callable[[str], str] = json.encoder.encode_basestring
"""A string as JSON text, non-ASCII kept as is: json's own (C) function, which the encoders
below use for strings too (a stream's text delta is encoded with it, no encoder made)."""


def _encoder(key_separator: str) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, separators=(",", key_separator)).encode``:
    its C encoder called straight (as ``encode`` calls it, circular references checked),
    without ``encode``'s and ``iterencode``'s Python frames; that ``encode`` itself where
    json has no C encoder."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", key_separator))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    default, text = encoder.default, encode_string

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return text(value)
        scan = make({}, default, text, None, key_separator, ",", False, False, True)
        return "".join(scan(value, 0))

    return encode


ESCAPING = "backslashreplace"
"""The error handler every JSON text here is encoded to UTF-8 with: a lone surrogate written
as its JSON escape (see the module's docstring)."""

encode_compact = _encoder(":")
"""JSON text, compact, non-ASCII kept as is: json's C encoder called straight
(:func:`_encoder`), not ``json.dumps``, whose options build a whole encoder per call."""
encode_gemini = _encoder(": ")
"""JSON text as Gemini's stream events carry it: ``": "`` after keys."""


def dumps(value: Any) -> bytes:
    """JSON bytes: compact, non-ASCII kept as is (a lone surrogate escaped)."""
    return encode_compact(value).encode("utf-8", ESCAPING)


def sse(data: Any, event: str | None = None, *, gemini: bool = False) -> bytes:
    """One server-sent event: ``event: NAME`` (when named) and ``data: JSON``.

    ``data`` that is a string is sent as it is (OpenAI's ``[DONE]``). Gemini's events are
    framed by CRLF and their JSON has a space after each colon, as its API sends them.
    """
    if isinstance(data, str):
        text = data
    elif gemini:
        text = encode_gemini(data)
    else:
        text = encode_compact(data)
    head = f"event: {event}\n" if event else ""
    end = "\r\n\r\n" if gemini else "\n\n"
    return f"{head}data: {text}{end}".encode("utf-8", ESCAPING)


def new_id(prefix: str, length: int, *, hexadecimal: bool = False) -> str:
    """A random id in an API's style: ``prefix`` and ``length`` letters and digits (or hex)."""
    if hexadecimal:
        return prefix + secrets.token_bytes(length).translate(_HEX_TABLE).decode("ascii")
    drawn = b""
    while len(drawn) < length:  # 1 in 32 bytes is dropped: rarely a second draw
        drawn += secrets.token_bytes(length + 8).translate(_ALPHANUMERIC_TABLE, _UNFAIR)
    return prefix + drawn[:length].decode("ascii")


def load_body(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's JSON body as a dict.

    Raises:
        InvalidRequestError: The body is not a JSON object.
    """
    if type(body) is dict:  # parsed already (the SDK transport's): the decoders only read it
        return body
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid_request("the request body is not a JSON object")
    return data


def arguments_object(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object, for wires that carry objects.

    Blank arguments are ``{}``; JSON that is not an object is kept under ``"value"``, text
    that is not JSON under ``"arguments"``, so nothing the model said is lost.
    """
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}
