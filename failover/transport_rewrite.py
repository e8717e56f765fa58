"""The SDK's request rewritten for one attempt: its URL, the attempt's key and model.

The SDK sent its request to its provider's URL with its own credential header; an attempt
goes to the profile's base URL with the profile's key (in the header the SDK used, or its
provider's usual one), and with the attempt's model when the chain moved to another.
"""

from __future__ import annotations

import json
import math
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from failover.request import AttemptContext

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_STYLE",
    "adjust",
    "attempt_url",
    "json_object",
    "restore",
    "rewrite",
    "with_read_timeout",
    "without_credentials",
]

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
DEFAULT_STYLE = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}
"""A provider's usual credential header, when the SDK sent none (else ``authorization``)."""


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed when it is a JSON object, else ``None``."""
    if not body or not body.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
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


def adjust(request: Any, url: Any, ctx: AttemptContext, style: str) -> None:
    """The SDK's request, in place, for this attempt: its URL, the profile's key."""
    request.url = url
    headers = request.headers
    for name in CREDENTIAL_HEADERS:
        if name in headers:
            del headers[name]
    if ctx.api_key:
        headers[style] = f"Bearer {ctx.api_key}" if style == "authorization" else ctx.api_key


def restore(request: Any, credentials: list[tuple[str, str]]) -> None:
    """The SDK's request with its own credential headers again (the attempt's key gone)."""
    headers = request.headers
    for name in CREDENTIAL_HEADERS:
        if name in headers:
            del headers[name]
    for name, value in credentials:
        headers[name] = value


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
