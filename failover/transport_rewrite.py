"""The SDK's request rewritten for one attempt: its URL, the attempt's key and model.

The SDK sent its request to its provider's URL with its own credential header; an attempt
goes to the profile's base URL with the profile's key (in the header the SDK used, or its
provider's usual one), and with the attempt's model when the chain moved to another.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from failover.classify import HeaderItems, header_items
from failover.errors import MalformedResponseError
from failover.providers.base import load_json
from failover.request import AttemptContext

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_STYLE",
    "RETRY_HEADER",
    "SESSION_HEADER",
    "SdkHeaders",
    "adjust",
    "attempt_url",
    "json_object",
    "made_headers",
    "rewrite",
    "sdk_headers",
    "with_read_timeout",
    "without_credentials",
]

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
DEFAULT_STYLE = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}
"""A provider's usual credential header, when the SDK sent none (else ``authorization``)."""
SESSION_HEADER = "x-failover-session"
"""The header naming an SDK request's conversation (see ``affinity``); never sent on."""
RETRY_HEADER = "x-stainless-retry-count"
"""The header in which the openai and anthropic SDKs number their own retries."""
_READ = tuple((name.encode(), name) for name in (*CREDENTIAL_HEADERS, SESSION_HEADER, RETRY_HEADER))
_WANTED = frozenset(name for name, _ in _READ)
_ORDER = {name: (at, text) for at, (name, text) in enumerate(_READ)}
_SESSION_AT = len(CREDENTIAL_HEADERS)  # where the session header is in _READ (retries after)
_NAME = operator.itemgetter(0)
_LOWERED = operator.itemgetter(1)


@dataclass(slots=True)
class SdkHeaders:
    """What the transport reads of an SDK request's headers.

    Attributes:
        credentials: The SDK's credential headers (name: value), in ``CREDENTIAL_HEADERS``
            order; repeated ones joined by ``", "``.
        session: The ``x-failover-session`` header, or ``None``.
        retries: The ``x-stainless-retry-count`` header, or ``None``.
    """

    credentials: dict[str, str]
    session: str | None = None
    retries: str | None = None


def made_headers(library: ModuleType, pairs: Sequence[tuple[str, str]]) -> Any:
    """``library.Headers(pairs)``, made straight into its list when every name and value is
    ASCII text (as the library encodes them): each encoded and its name lowered in C, one
    comprehension, without the library's calls per header. Other pairs go to the library,
    which encodes (or refuses) them its own way."""
    headers = library.Headers()
    items = header_items(headers)
    if items is None:
        return library.Headers(pairs)
    try:
        items.extend(
            [
                (raw := name.encode("ascii"), raw.lower(), value.encode("ascii"))
                for name, value in pairs
            ]
        )
    except (AttributeError, UnicodeEncodeError):  # bytes, or not ASCII
        return library.Headers(pairs)
    return headers


def sdk_headers(headers: Any) -> SdkHeaders:
    """The headers the transport reads, from ``headers``' raw bytes.

    The names are matched in C (httpx's lowered names, or one join and one lower; a set's
    intersection) and only those present are read: a dict of every header, a tuple made
    for each, would cost several times as much. The headers' text encoding is worked out
    (a pass decoding every header) only for a value that is not UTF-8, as ``headers``
    decodes it.
    """
    items = header_items(headers)
    raw: list[tuple[bytes, bytes]] | HeaderItems
    if items is not None:  # (name, lowered, value): the names lowered already
        raw, names, at = items, list(map(_LOWERED, items)), 2
    else:
        raw = headers.raw
        names = b"\n".join(map(_NAME, raw)).lower().split(b"\n")
        at = 1
    present = _WANTED.intersection(names)
    read = SdkHeaders({})
    for name in sorted(present, key=_ORDER.__getitem__) if len(present) > 1 else present:
        if names.count(name) == 1:
            value = raw[names.index(name)][at]
        else:
            value = b", ".join(
                [item[at] for item, key in zip(raw, names, strict=True) if key == name]
            )
        place, text = _ORDER[name]
        try:
            decoded = value.decode()
        except UnicodeDecodeError:  # as the library decodes it
            decoded = headers[text]
        if place < _SESSION_AT:
            read.credentials[text] = decoded
        elif place == _SESSION_AT:
            read.session = decoded
        else:
            read.retries = decoded
    return read


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed when it is a JSON object, else ``None``."""
    if not body or (body[:1] != b"{" and not body.lstrip().startswith(b"{")):
        return None  # (a body that starts with "{", the usual one, is not copied to see)
    try:  # json.loads' value, without its wrappers (UTF-8, else the encoding it detects)
        value = load_json(body)
    except MalformedResponseError:
        return None
    return value if isinstance(value, dict) else None


def rewrite(
    request: Any,
    library: ModuleType,
    ctx: AttemptContext,
    suffix: str,
    style: str,
    body: bytes,
    payload: dict[str, Any] | None,
    requested: str | None,
    extensions: dict[str, Any],
) -> Any:
    """The request for this attempt: the profile's base URL and key, and the attempt's model."""
    model = ctx.model.id
    if requested and model != requested:
        if payload is not None and "model" in payload:
            body = json.dumps({**payload, "model": model}).encode()
        suffix = suffix.replace(f"/models/{requested}:", f"/models/{model}:", 1)
    url = attempt_url(ctx.base_url, suffix)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in CREDENTIAL_HEADERS]
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    if ctx.api_key:
        value = f"Bearer {ctx.api_key}" if style == "authorization" else ctx.api_key
        headers.append((style, value))
    return library.Request(
        request.method, url, headers=headers, content=body, extensions=extensions
    )


def without_cache_markers(payload: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-wire body without Anthropic-style ``cache_control`` markers (on the body,
    its messages and their content parts, its tools): OpenAI caches by itself and may
    refuse them; they were meant for a fallback to Claude, which the gateway serves."""

    def clean(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        kept = {k: v for k, v in item.items() if k != "cache_control"}
        if isinstance(kept.get("content"), list):
            kept["content"] = [clean(part) for part in kept["content"]]
        return kept

    body = clean(payload)
    for field in ("messages", "tools", "input"):
        if isinstance(body.get(field), list):
            body[field] = [clean(item) for item in body[field]]
    return dict(body)


def attempt_url(base_url: str, suffix: str) -> str:
    """``base_url`` and the suffix's path and query, without any ``key`` parameter."""
    parts = urlsplit(suffix)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key"]
    return base_url + parts.path + (f"?{urlencode(query)}" if query else "")


def adjust(
    request: Any,
    library: ModuleType,
    url: Any,
    ctx: AttemptContext,
    style: str,
    sdk: dict[str, str],
) -> Any:
    """The SDK's request, in place, for this attempt: its URL, and headers of its own (a
    copy of the SDK's: a list copied at C speed) with the profile's key in the ``style``
    header and the SDK's ``sdk`` credential headers gone. Returns the SDK's own headers,
    which the caller sets back once the attempt is sent (the key goes with the copy)."""
    own = request.headers
    headers = library.Headers(own)
    key = ctx.api_key
    for name in sdk:
        if name != style or not key:
            del headers[name]
    if key:  # in place of the SDK's own, when it sent one in this header
        value = f"Bearer {key}" if style == "authorization" else key
        items = header_items(headers)
        if items is None or sdk.get(style) is None or "," in sdk[style]:
            headers[style] = value
        else:  # sent once (a repeated one was read joined by ", "): set as headers[style] sets it
            raw_name = style.encode()
            at = list(map(_LOWERED, items)).index(raw_name)
            encoding = getattr(headers, "_encoding", None) or "utf-8"
            items[at] = (raw_name, raw_name, value.encode(encoding))
    request.url, request.headers = url, headers
    return own


def with_read_timeout(extensions: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``extensions`` with the ``timeout`` of each read at most ``seconds``."""
    timeout = dict(extensions.get("timeout") or {})
    timeout["read"] = min(timeout.get("read") or math.inf, seconds)
    return {**extensions, "timeout": timeout}


def without_credentials(request: Any, library: ModuleType) -> Any:
    """A copy of ``request`` without the SDK's credential headers."""
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in CREDENTIAL_HEADERS]
    return library.Request(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions=request.extensions,
    )
