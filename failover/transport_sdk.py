"""One SDK request served by the transport: the attempt that passes it to a key.

A step of the SDK's own provider sends the SDK's request itself: when the model is not
rewritten and one attempt is in flight (async clients), the request is adjusted in place
(URL, credential headers) and restored once sent, so the key never stays in it; else a copy
is built for the attempt. A 2xx reply is checked (a stream is guarded as it passes, by
``guard_stream``), its rate-limit headroom recorded; an error reply is classified, and the
last one kept (scrubbed) for the SDK to see when every attempt fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from failover.classify import classify_http_error, headroom_counts
from failover.engine import Engine
from failover.errors import ProviderError
from failover.gateway import Wire, wire_of
from failover.profiles import AuthProfile
from failover.request import AttemptContext
from failover.transport_guard import Endpoint, checked_reply, endpoint_of, reread, served_headers
from failover.transport_io import IO, AsyncIO, provider_error
from failover.transport_rewrite import (
    DEFAULT_STYLE,
    adjust,
    rewrite,
    with_read_timeout,
    without_cache_markers,
)

__all__ = ["Route", "SdkRequest"]


class Route:
    """What the transport reads of an SDK request's URL, read once per URL (the transport
    keeps it while the URL comes again): its part after the SDK's base URL, its wire format
    (``None``: not one the gateway speaks) and its endpoint.

    Args:
        suffix: The URL's path and query after the base URL it was sent to.
    """

    __slots__ = ("_post", "streams", "suffix", "wire")

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.wire: Wire | None = wire_of(suffix)
        self._post = endpoint_of("POST", suffix)  # the usual request's, read once
        self.streams = ":stream" in suffix
        """Whether the URL asks for a stream (Gemini's ``:streamGenerateContent``)."""

    def endpoint(self, method: str) -> Endpoint | None:
        """:func:`~failover.transport_guard.endpoint_of` a request by ``method`` to it
        (``None``: one the transport does not know), a POST's read once."""
        return self._post if method == "POST" else endpoint_of(method, self.suffix)


class SdkRequest:
    """An SDK's request and how to send it on each attempt.

    Args:
        request: The SDK's request.
        library: httpx or httpx2, whichever the request came from.
        read: The URL's route, the body, the body as a JSON object (``None``: not one)
            and the model it asks for.
        io: Sends and reads (on the loop, or a sync client's worker thread).
        provider: The SDK's own provider.
        style_for: The SDK's wire, for its provider's usual credential header.
        stream_idle_timeout: The longest wait for the headers or a chunk of a stream.
        engine: Scrubs keys from error bodies and records headroom.
        url_for: An attempt's parsed URL (library, base URL, suffix).
        owner_of: Remembers which key made a Responses response.
        credentials: The SDK's credential headers (see ``sdk_headers``).
    """

    __slots__ = (
        "body",
        "endpoint",
        "engine",
        "extensions",
        "held",
        "in_place",
        "in_use",
        "io",
        "library",
        "owner_of",
        "payload",
        "provider",
        "request",
        "requested",
        "responses",
        "sdk_credentials",
        "streaming",
        "style",
        "suffix",
        "url_for",
    )

    def __init__(
        self,
        request: Any,
        library: ModuleType,
        read: tuple[Route, bytes, dict[str, Any] | None, str | None],
        io: IO,
        provider: str,
        *,
        style_for: str,
        stream_idle_timeout: float,
        engine: Engine,
        url_for: Callable[[ModuleType, str, str], Any],
        owner_of: Callable[[AuthProfile], Callable[[str], None]],
        credentials: dict[str, str],
    ) -> None:
        self.request, self.library, self.io, self.provider = request, library, io, provider
        route, self.body, self.payload, self.requested = read
        self.suffix = route.suffix
        self.engine, self.url_for, self.owner_of = engine, url_for, owner_of
        # how the SDK sends a key: its first credential header (in CREDENTIAL_HEADERS order)
        self.sdk_credentials = credentials
        style = next(iter(credentials), None)
        self.style = style or DEFAULT_STYLE.get(style_for, "authorization")
        payload = self.payload
        self.streaming = bool(payload and payload.get("stream")) or route.streams
        self.endpoint = route.endpoint(request.method)
        self.extensions = request.extensions
        if self.streaming:  # the wait for the headers, as each read after, is bounded too
            self.extensions = with_read_timeout(self.extensions, stream_idle_timeout)
        self.responses = self.endpoint is not None and self.endpoint.stream_wire == "responses"
        self.held: tuple[ProviderError, Any] | None = None  # our provider's last error reply
        self.in_place = type(io) is AsyncIO  # a worker thread may outlive a cancelled send
        # (bytes.find: ``in`` with a bytes needle first tries it as an integer, and raises
        # and clears a TypeError doing so)
        if style_for == "openai" and self.payload and self.body.find(b'"cache_control"') >= 0:
            self.payload = without_cache_markers(self.payload)  # meant for a Claude fallback
            self.body = json.dumps(self.payload).encode()
            self.in_place = False  # a copy carries the body without them
        self.in_use = False  # an attempt sends the SDK's own request (hedges: copies)

    async def attempt(self, ctx: AttemptContext) -> Any:
        """Send the request with ``ctx``'s key, URL and model; the checked 2xx reply."""
        request, model = self.request, ctx.model.id
        requested = self.requested
        adjusted = self.in_place and not self.in_use and not (requested and model != requested)
        if adjusted:  # the same body: only the URL and the credentials change
            self.in_use = True
            outgoing = request
            url = self.url_for(self.library, ctx.base_url, self.suffix)
            saved = (request.url, request.headers, request.extensions)
            adjust(request, self.library, url, ctx, self.style, self.sdk_credentials)
            request.extensions = self.extensions
        else:
            outgoing = rewrite(
                request,
                self.library,
                ctx,
                self.suffix,
                self.style,
                self.body,
                self.payload,
                requested,
                self.extensions,
            )
        try:
            response = await self.io.send(outgoing)
        except Exception as exc:
            error = provider_error(exc, self.provider, model)
            if error is None:
                raise
            raise error from None
        finally:
            if adjusted:  # the key never stays in the request the SDK holds: its own
                # headers back (the attempt's key went with adjust's copy)
                request.url, request.headers, request.extensions = saved
                self.in_use = False
        if response.status_code >= 400:
            raise await self._refused(ctx, response, outgoing)
        # below 400: checked whole (a stream is checked as it passes), headroom noted
        if not self.streaming:
            response = await checked_reply(
                self.library,
                response,
                outgoing,
                self.endpoint,
                self.io,
                self.engine.scrubber(),
                served_headers(self.provider, ctx.model.id),
                self.owner_of(ctx.profile) if self.responses else None,
            )
        headers = response.headers
        if (counts := headroom_counts(headers)) is not None:  # (most replies carry none)
            self.engine.note_headroom_counts(ctx.request_id, ctx.profile, headers, counts)
        return response

    async def _refused(self, ctx: AttemptContext, response: Any, outgoing: Any) -> ProviderError:
        """An error reply: its error, the reply kept (scrubbed) for the SDK."""
        content = await self.io.read_and_close(response, self.provider, ctx.model.id)
        error = classify_http_error(response.status_code, response.headers, content)
        scrub = self.engine.scrubber()  # the SDK puts the body in its exception
        text = scrub.in_json(content.decode("utf-8", "surrogateescape"))
        scrubbed = text.encode("utf-8", "surrogateescape")
        served = served_headers(self.provider, ctx.model.id)
        self.held = (error, reread(self.library, response, scrubbed, outgoing, scrub, served))
        return error
