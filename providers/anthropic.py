"""Anthropic Messages API (``POST {base}/v1/messages``), pinned to version 2023-06-01."""

from __future__ import annotations

import json
from typing import Any, Literal

from failover.catalog import TokenUsage
from failover.classify import classify_http_error
from failover.errors import ContentFilteredError, ContextWindowExceededError, MalformedResponseError
from providers.base import (
    BaseAdapter,
    ChatRequest,
    ChatResult,
    HttpRequest,
    StreamChunk,
    load_json,
    merge_params,
)

__all__ = ["AnthropicAdapter"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def _usage(usage: Any) -> TokenUsage:
    if not isinstance(usage, dict):
        return TokenUsage()
    return TokenUsage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
    )


def _check_stop(stop_reason: Any) -> None:
    if stop_reason == "refusal":
        raise ContentFilteredError("the model refused to answer", code="refusal")
    if stop_reason == "model_context_window_exceeded":
        raise ContextWindowExceededError(
            "the model's context window was exceeded", code="model_context_window_exceeded"
        )


class AnthropicAdapter(BaseAdapter):
    """Translates OpenAI-shaped messages: system messages go top-level, ``max_tokens`` is set."""

    api = "anthropic"
    default_base_url = "https://api.anthropic.com"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def build_request(
        self, request: ChatRequest, *, model: str, api_key: str, base_url: str
    ) -> HttpRequest:
        """Build the Messages request."""
        system, rest = request.split_system()
        messages = [{"role": m.get("role"), "content": m.get("content")} for m in rest]
        payload: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system is not None:
            payload["system"] = system
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.stream:
            payload["stream"] = True
        merge_params(payload, request.params)
        headers = {
            "content-type": "application/json",
            "x-api-key": api_key,
            "anthropic-version": API_VERSION,
        }
        return HttpRequest("POST", f"{base_url}/v1/messages", headers, json.dumps(payload).encode())

    def parse_response(self, body: bytes) -> ChatResult:
        """Join the text blocks; a refusal or context overflow raises."""
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise MalformedResponseError(f"reply has no content list: {str(body)[:200]}")
        _check_stop(data.get("stop_reason"))
        text = "".join(
            str(block.get("text", ""))
            for block in data["content"]
            if isinstance(block, dict) and block.get("type") == "text"
        )
        return ChatResult(text, data.get("stop_reason"), _usage(data.get("usage")), data)

    def stream_parser(self) -> _AnthropicStream:
        """A parser for the named Messages stream events."""
        return _AnthropicStream()


class _AnthropicStream:
    def __init__(self) -> None:
        self.complete = False
        self._input = TokenUsage()

    def feed(self, event: str, data: str) -> StreamChunk | None:
        if event in ("ping", ""):
            return None
        payload = load_json(data)
        if not isinstance(payload, dict):
            raise MalformedResponseError("stream event is not an object")
        if event == "error":
            raise classify_http_error(_error_status(payload), {}, data)
        if event == "message_start":
            self._input = _usage((payload.get("message") or {}).get("usage"))
        elif event == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return StreamChunk(str(delta["text"]))
        elif event == "message_delta":
            stop = (payload.get("delta") or {}).get("stop_reason")
            _check_stop(stop)
            output = _usage(payload.get("usage"))
            usage = TokenUsage(
                input_tokens=self._input.input_tokens or output.input_tokens,
                output_tokens=output.output_tokens,
                cache_read_tokens=self._input.cache_read_tokens,
                cache_write_tokens=self._input.cache_write_tokens,
            )
            return StreamChunk("", stop, usage)
        elif event == "message_stop":
            self.complete = True
        return None


_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "authentication_error": 401,
    "permission_error": 403,
    "billing_error": 402,
    "not_found_error": 404,
    "request_too_large": 413,
    "invalid_request_error": 400,
}


def _error_status(payload: dict[str, Any]) -> int:
    error = payload.get("error") or {}
    return _ERROR_STATUS.get(str(error.get("type")), 500) if isinstance(error, dict) else 500
