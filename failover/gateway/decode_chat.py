"""OpenAI Chat Completions requests (``POST /chat/completions``): already the common shape.

The messages and most parameters pass as they are. What the gateway cannot carry back in a
reply (``n`` > 1, ``logprobs``, audio output), server-side tools (``web_search_options``),
the legacy ``functions`` and shapes no other adapter can read are refused, naming the
field; OpenAI's own caching and storage hints are dropped.
"""

from __future__ import annotations

from typing import Any

from failover.gateway.types import CannotTranslateError, Decoded, invalid_request, readable
from failover.providers.base import ChatRequest

__all__ = ["decode_chat", "refuse_chat_fields"]

_OWN = frozenset({"model", "messages", "stream", "stream_options", "temperature"})
_LIMITS = ("max_completion_tokens", "max_tokens")
_HINTS = frozenset(
    {
        "prompt_cache_key",
        "prompt_cache_retention",
        "prediction",
        "store",
        "service_tier",
        "safety_identifier",
    }
)
"""OpenAI's own caching, storage and latency hints: dropped (``safety_identifier`` becomes
``user`` when there is none)."""


_REFUSABLE = frozenset(
    {
        "n",
        "logprobs",
        "top_logprobs",
        "modalities",
        "audio",
        "functions",
        "function_call",
        "web_search_options",
    }
)
"""The fields :func:`refuse_chat_fields` reads."""


def refuse_chat_fields(body: dict[str, Any]) -> None:
    """Raise for a field whose meaning another provider cannot give back."""
    if _REFUSABLE.isdisjoint(body):  # the usual body: none of them
        return
    n = body.get("n")
    if n is not None and n != 1:
        raise CannotTranslateError("n", "the gateway answers with one choice")
    for name in ("logprobs", "top_logprobs"):
        if body.get(name) not in (None, False, 0):
            raise CannotTranslateError(name, "token log probabilities are OpenAI's own")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (
        isinstance(modalities, list) and any(m != "text" for m in modalities)
    ):
        raise CannotTranslateError("modalities", "only text answers cross providers")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise CannotTranslateError(name, "the legacy functions API; use tools")
    if body.get("web_search_options") is not None:
        raise CannotTranslateError("web_search_options", "the search runs on OpenAI's servers")


def decode_chat(body: dict[str, Any]) -> Decoded:
    """Read a Chat Completions body.

    Raises:
        CannotTranslateError: A field cannot be sent to another provider.
        InvalidRequestError: The body has no model or messages.
    """
    model = body.get("model")
    messages = body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list):
        raise invalid_request("a chat completion needs 'model' and a list of 'messages'")
    limit = None
    temperature = body.get("temperature")
    if _OWN.issuperset(body):  # the usual body: no field to refuse, no limit, no parameter
        params: dict[str, Any] = {}
    else:
        refuse_chat_fields(body)
        for name in _LIMITS:  # the first given as a number, in OpenAI's precedence
            if isinstance(value := body.get(name), int):
                limit = value
                break
        params = {
            key: value
            for key, value in body.items()
            if key not in _OWN
            and key not in _HINTS
            and key not in _LIMITS
            and key not in ("n", "logprobs", "top_logprobs", "modalities", "audio")
            and value is not None
        }
        if "user" not in params and isinstance(body.get("safety_identifier"), str):
            params["user"] = body["safety_identifier"]
    request = ChatRequest(
        messages,
        max_tokens=limit,
        temperature=temperature if isinstance(temperature, (int, float)) else None,
        params=params,
        stream=body.get("stream") is True,
    )
    readable(request)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Decoded("openai", model, request, {"include_usage": include_usage})
