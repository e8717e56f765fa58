"""Token usage in each wire's own fields, from the common :class:`TokenUsage`.

``TokenUsage.input_tokens`` counts the prompt's uncached tokens (cache reads and writes
apart, as Anthropic counts them); OpenAI and Gemini count the whole prompt, cached tokens
included, and reasoning inside output (OpenAI) or beside it (Gemini's thoughts).
"""

from __future__ import annotations

from typing import Any

from failover.catalog import TokenUsage
from failover.gateway.framing import encode_compact

__all__ = [
    "anthropic_usage",
    "chat_usage",
    "chat_usage_json",
    "gemini_usage",
    "prompt_tokens",
    "responses_usage",
]


def prompt_tokens(usage: TokenUsage) -> int:
    """Every prompt token: uncached, read from cache and written to it."""
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens


def chat_usage(usage: TokenUsage) -> dict[str, Any]:
    """Chat Completions' ``usage``."""
    prompt = prompt_tokens(usage)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_usage_json(usage: TokenUsage) -> str:
    """:func:`chat_usage` as compact JSON text (``encode_compact``'s), written straight
    when every count is an ``int`` (what the adapters read), else encoded."""
    output, cached, reasoning = usage.output_tokens, usage.cache_read_tokens, usage.reasoning_tokens
    counts = (usage.input_tokens, output, cached, usage.cache_write_tokens, reasoning)
    if set(map(type, counts)) != {int}:
        return encode_compact(chat_usage(usage))
    prompt = prompt_tokens(usage)
    return (
        f'{{"prompt_tokens":{prompt},"completion_tokens":{output},'
        f'"total_tokens":{prompt + output},'
        f'"prompt_tokens_details":{{"cached_tokens":{cached},"audio_tokens":0}},'
        f'"completion_tokens_details":{{"reasoning_tokens":{reasoning},"audio_tokens":0,'
        '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
    )


def responses_usage(usage: TokenUsage) -> dict[str, Any]:
    """The Responses object's ``usage``."""
    prompt = prompt_tokens(usage)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.output_tokens,
    }


def anthropic_usage(usage: TokenUsage) -> dict[str, Any]:
    """A Message's ``usage`` (and a stream's ``message_delta`` usage)."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def gemini_usage(usage: TokenUsage) -> dict[str, Any]:
    """A response's ``usageMetadata`` (thoughts beside the candidates' tokens)."""
    prompt = prompt_tokens(usage)
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, usage.output_tokens - usage.reasoning_tokens),
        "totalTokenCount": prompt + max(usage.output_tokens, usage.reasoning_tokens),
    }
    if usage.cache_read_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    return meta
