"""Ollama's native ``POST {base}/api/chat`` with its NDJSON stream."""

from __future__ import annotations

import json
from typing import Any, Literal

from failover.catalog import TokenUsage
from failover.classify import classify_http_error
from failover.errors import MalformedResponseError
from providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    HttpRequest,
    StreamChunk,
    load_json,
)

__all__ = ["OllamaAdapter"]


def _usage(data: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input_tokens=int(data.get("prompt_eval_count") or 0),
        output_tokens=int(data.get("eval_count") or 0),
    )


class OllamaAdapter(BaseAdapter):
    """Options go under ``options`` (``num_predict``, ``temperature``)."""

    api = "ollama"
    default_base_url = "http://localhost:11434"
    stream_format: Literal["sse", "ndjson"] = "ndjson"

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the /api/chat request."""
        options: dict[str, Any] = dict(request.params.get("options") or {})
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        payload: dict[str, Any] = {
            "model": model,
            "messages": list(request.messages),
            "stream": request.stream,
        }
        payload.update({k: v for k, v in request.params.items() if k != "options"})
        if options:
            payload["options"] = options
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HttpRequest("POST", f"{base_url}/api/chat", headers, json.dumps(payload).encode())

    def parse_response(self, body: bytes) -> ChatResult:
        """Read ``message.content``."""
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise MalformedResponseError(f"reply has no message: {str(body)[:200]}")
        return ChatResult(
            str(data["message"].get("content") or ""), data.get("done_reason"), _usage(data), data
        )

    def stream_parser(self) -> _OllamaStream:
        """A parser for NDJSON lines ending with ``done: true``."""
        return _OllamaStream()


class _OllamaStream:
    def __init__(self) -> None:
        self.complete = False

    def feed(self, event: str, data: str) -> StreamChunk | None:
        line = load_json(data)
        if not isinstance(line, dict):
            raise MalformedResponseError("stream line is not an object")
        if "error" in line:
            raise classify_http_error(500, {}, data)
        text = str((line.get("message") or {}).get("content") or "")
        if line.get("done"):
            self.complete = True
            return StreamChunk(text, line.get("done_reason") or "stop", _usage(line))
        return StreamChunk(text) if text else None
