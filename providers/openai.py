"""OpenAI Chat Completions, and every server that speaks it (Groq, OpenRouter, vLLM, ...)."""

from __future__ import annotations

import json
from typing import Any, Literal

from failover.catalog import TokenUsage
from failover.classify import classify_http_error
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

__all__ = ["OpenAIAdapter"]


def _usage(data: Any) -> TokenUsage:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return TokenUsage()
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return TokenUsage(
        input_tokens=int(usage.get("prompt_tokens") or 0) - int(cached),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(cached),
    )


class OpenAIAdapter(BaseAdapter):
    """``POST {base}/chat/completions`` with ``Authorization: Bearer``.

    Args:
        default_base_url: The public base URL, ending in ``/v1`` like the SDK's.
        max_tokens_field: ``max_completion_tokens`` (OpenAI) or ``max_tokens`` (older servers).
    """

    api = "openai"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def __init__(
        self, default_base_url: str, *, max_tokens_field: str = "max_completion_tokens"
    ) -> None:
        super().__init__(default_base_url)
        self.max_tokens_field = max_tokens_field

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the chat-completions request."""
        payload: dict[str, Any] = {"model": model, "messages": list(request.messages)}
        if request.max_tokens is not None:
            payload[self.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        merge_params(payload, request.params)
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HttpRequest(
            "POST", f"{base_url}/chat/completions", headers, json.dumps(payload).encode()
        )

    def parse_response(self, body: bytes) -> ChatResult:
        """Read ``choices[0].message``; a content filter or refusal raises."""
        data = load_json(body)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise MalformedResponseError(f"reply has no choices: {str(body)[:200]}") from exc
        finish = choice.get("finish_reason")
        if finish == "content_filter" or message.get("refusal"):
            raise ContentFilteredError(
                str(message.get("refusal") or "the answer was blocked by a content filter"),
                code=finish,
            )
        return ChatResult(str(message.get("content") or ""), finish, _usage(data), data)

    def stream_parser(self) -> _OpenAIStream:
        """A parser for ``data: {chunk}`` ... ``data: [DONE]``."""
        return _OpenAIStream()


class _OpenAIStream:
    def __init__(self) -> None:
        self.complete = False

    def feed(self, event: str, data: str) -> StreamChunk | None:
        if data.strip() == "[DONE]":
            self.complete = True
            return None
        chunk = load_json(data)
        if not isinstance(chunk, dict):
            raise MalformedResponseError("stream chunk is not an object")
        if "error" in chunk:
            raise classify_http_error(int(_status(chunk)), {}, data)
        usage = _usage(chunk) if chunk.get("usage") else None
        choices = chunk.get("choices") or []
        choice = choices[0] if choices else {}
        text = str((choice.get("delta") or {}).get("content") or "")
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            raise ContentFilteredError("the answer was blocked by a content filter", code=finish)
        if not text and finish is None and usage is None:
            return None
        return StreamChunk(text, finish, usage)


def _status(chunk: dict[str, Any]) -> int:
    error = chunk.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500
