"""Bytes on the wire: JSON bodies, SSE events and ids, each in the style its API sends.

OpenAI and Gemini pretty-print whole JSON replies (two-space indent); Anthropic sends them
compact. OpenAI's and Anthropic's stream events are compact JSON framed by ``\\n\\n``;
Gemini's are ``data: {...}`` with ``": "`` after keys, framed by ``\\r\\n\\r\\n``.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from typing import Any

from failover.gateway.types import invalid_request

__all__ = [
    "arguments_object",
    "dumps",
    "load_body",
    "new_id",
    "sse",
]

_ALPHANUMERIC = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"


def dumps(value: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes: compact, or indented by two spaces (``pretty``), non-ASCII kept as is."""
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=2).encode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def sse(data: Any, event: str | None = None, *, gemini: bool = False) -> bytes:
    """One server-sent event: ``event: NAME`` (when named) and ``data: JSON``.

    ``data`` that is a string is sent as it is (OpenAI's ``[DONE]``). Gemini's events are
    framed by CRLF and their JSON has a space after each colon, as its API sends them.
    """
    if isinstance(data, str):
        text = data
    elif gemini:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ": "))
    else:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    end = "\r\n\r\n" if gemini else "\n\n"
    return f"{head}data: {text}{end}".encode()


def new_id(prefix: str, length: int, *, hexadecimal: bool = False) -> str:
    """A random id in an API's style: ``prefix`` and ``length`` letters and digits (or hex)."""
    alphabet = _HEX if hexadecimal else _ALPHANUMERIC
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def load_body(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's JSON body as a dict.

    Raises:
        InvalidRequestError: The body is not a JSON object.
    """
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
