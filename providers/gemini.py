"""Google Gemini ``generateContent`` (key in ``x-goog-api-key``, never in the URL)."""

from __future__ import annotations

import json
from typing import Any, Literal

from failover.catalog import TokenUsage
from failover.errors import ContentFilteredError, MalformedResponseError
from providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    HttpRequest,
    StreamChunk,
    load_json,
    merge_params,
)

__all__ = ["GeminiAdapter"]

_BLOCKED = {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}


def _usage(data: dict[str, Any]) -> TokenUsage | None:
    meta = data.get("usageMetadata")
    if not isinstance(meta, dict):
        return None
    cached = int(meta.get("cachedContentTokenCount") or 0)
    return TokenUsage(
        input_tokens=int(meta.get("promptTokenCount") or 0) - cached,
        output_tokens=int(meta.get("candidatesTokenCount") or 0),
        cache_read_tokens=cached,
    )


def _read(data: Any) -> tuple[str, str | None]:
    """Return (text, finishReason) of one response object; raise on blocks."""
    if not isinstance(data, dict):
        raise MalformedResponseError("reply is not an object")
    feedback = data.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        raise ContentFilteredError(
            f"prompt blocked: {feedback['blockReason']}", code=str(feedback["blockReason"])
        )
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise MalformedResponseError(f"reply has no candidates: {json.dumps(data)[:200]}")
    candidate = candidates[0]
    finish = candidate.get("finishReason")
    if finish in _BLOCKED:
        raise ContentFilteredError(f"answer blocked: {finish}", code=str(finish))
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(
        str(p.get("text", "")) for p in parts if isinstance(p, dict) and not p.get("thought")
    )
    return text, finish


class GeminiAdapter(BaseAdapter):
    """Translates roles (assistant -> model) and system messages (-> ``systemInstruction``)."""

    api = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the generateContent (or streamGenerateContent) request."""
        system, rest = request.split_system()
        contents = [
            {
                "role": "model" if m.get("role") == "assistant" else "user",
                "parts": [{"text": str(m.get("content", ""))}],
            }
            for m in rest
        ]
        payload: dict[str, Any] = {"contents": contents}
        if system is not None:
            payload["systemInstruction"] = {"parts": [{"text": system}]}
        generation: dict[str, Any] = {}
        if request.max_tokens is not None:
            generation["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        if generation:
            payload["generationConfig"] = generation
        merge_params(payload, request.params)
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        headers = {"content-type": "application/json", "x-goog-api-key": api_key}
        url = f"{base_url}/v1beta/models/{model}:{method}"
        return HttpRequest("POST", url, headers, json.dumps(payload).encode())

    def parse_response(self, body: bytes) -> ChatResult:
        """Read the first candidate; a prompt or answer block raises."""
        data = load_json(body)
        text, finish = _read(data)
        return ChatResult(text, finish, _usage(data) or TokenUsage(), data)

    def stream_parser(self) -> _GeminiStream:
        """A parser for SSE events that are each a whole response; the last has finishReason."""
        return _GeminiStream()


class _GeminiStream:
    def __init__(self) -> None:
        self.complete = False

    def feed(self, event: str, data: str) -> StreamChunk | None:
        payload = load_json(data)
        if isinstance(payload, dict) and "error" in payload:
            from failover.classify import classify_http_error

            code = (payload.get("error") or {}).get("code")
            raise classify_http_error(code if isinstance(code, int) else 500, {}, data)
        text, finish = _read(payload)
        if finish:
            self.complete = True
        return StreamChunk(text, finish, _usage(payload) if finish else None)
