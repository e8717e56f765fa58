"""The simulator's replies in each provider's own wire format: success bodies, stream
events and error bodies. Pure functions; the server in ``simulator.py`` sends them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "SimToolCall",
    "anthropic_usage",
    "azure_error",
    "embedding_body",
    "embedding_vector",
    "error_reply",
    "reply_body",
    "stream_events",
]

SimToolCall = tuple[str, str, dict[str, Any]]
"""A scripted tool call: (id, function name, arguments)."""

# behaviour -> (openai, anthropic, gemini, ollama) statuses
_STATUS = {
    "rate_limit": (429, 429, 429, 429),
    "quota": (429, 429, 429, 429),
    "invalid_key": (401, 401, 400, 401),
    "overloaded": (503, 529, 503, 503),
    "server_error": (500, 500, 500, 500),
    "context_limit": (400, 400, 400, 400),
}
_WIRES = ("openai", "anthropic", "gemini", "ollama")


def _openai_error(behaviour: str, retry_after: float) -> dict[str, Any]:
    message, kind, code = {
        "rate_limit": (
            "Rate limit reached for requests (simulated)",
            "requests",
            "rate_limit_exceeded",
        ),
        "quota": (
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        "invalid_key": ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        "overloaded": ("The server is overloaded (simulated)", "server_error", None),
        "server_error": (
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
        "context_limit": (
            "This model's maximum context length is exceeded (simulated).",
            "invalid_request_error",
            "context_length_exceeded",
        ),
    }[behaviour]
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _anthropic_error(behaviour: str, retry_after: float) -> dict[str, Any]:
    kind, message = {
        "rate_limit": (
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit.",
        ),
        "quota": (
            "rate_limit_error",
            "You have reached your specified workspace API usage limits.",
        ),
        "invalid_key": ("authentication_error", "invalid x-api-key"),
        "overloaded": ("overloaded_error", "Overloaded"),
        "server_error": ("api_error", "Internal server error"),
        "context_limit": (
            "invalid_request_error",
            "prompt is too long: 250000 tokens > 200000 maximum",
        ),
    }[behaviour]
    error: dict[str, Any] = {"type": kind, "message": message}
    if behaviour == "quota":
        error["details"] = {"error_code": "enforced_spend_limit_reached"}
    return {"type": "error", "error": error}


def _gemini_error(behaviour: str, retry_after: float) -> dict[str, Any]:
    status, message = {
        "rate_limit": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        "quota": ("RESOURCE_EXHAUSTED", "You exceeded your current quota."),
        "invalid_key": ("INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
        "overloaded": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        "server_error": ("INTERNAL", "An internal error has occurred."),
        "context_limit": (
            "INVALID_ARGUMENT",
            "The input token count exceeds the maximum number of tokens allowed.",
        ),
    }[behaviour]
    code = _STATUS[behaviour][2]
    details: list[dict[str, Any]] = []
    if behaviour == "rate_limit":
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        )
    if behaviour == "quota":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
            }
        )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _ollama_error(behaviour: str, retry_after: float) -> dict[str, Any]:
    return {"error": f"simulated {behaviour.replace('_', ' ')}"}


_ERROR_BODIES = {
    "openai": _openai_error,
    "anthropic": _anthropic_error,
    "gemini": _gemini_error,
    "ollama": _ollama_error,
}


def error_reply(
    wire: str, behaviour: str, retry_after: float
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Return (status, body, headers) of the error ``behaviour`` in ``wire``'s format
    (``responses``, OpenAI's Responses API, answers with OpenAI's errors)."""
    if wire == "responses":
        reply = error_reply("openai", behaviour, retry_after)
        if behaviour == "context_limit":
            reply[1]["error"].update(
                message="Your input exceeds the context window of this model. Please adjust "
                "your input and try again.",
                param="input",
            )
        return reply
    status = _STATUS[behaviour][_WIRES.index(wire)]
    headers: dict[str, str] = {}
    if behaviour == "rate_limit" and wire != "gemini":
        headers["retry-after"] = f"{retry_after:g}"
        if wire == "openai":
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = f"{retry_after:g}s"
    return status, _ERROR_BODIES[wire](behaviour, retry_after), headers


def azure_error(behaviour: str, retry_after: float) -> tuple[int, dict[str, Any]] | None:
    """Azure OpenAI's own error body for ``behaviour``, where it differs from OpenAI's."""
    if behaviour == "content_block":
        return 400, {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure "
                "OpenAI's content management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": {"filtered": True, "severity": "high"},
                        "self_harm": {"filtered": False, "severity": "safe"},
                        "sexual": {"filtered": False, "severity": "safe"},
                        "violence": {"filtered": False, "severity": "safe"},
                    },
                },
            }
        }
    if behaviour == "rate_limit":
        return 429, {
            "error": {
                "code": "429",
                "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
                "API version 2024-10-21 have exceeded token rate limit of your current OpenAI "
                f"S0 pricing tier. Please retry after {retry_after:g} seconds.",
            }
        }
    return None


def embedding_vector(model: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` under ``model`` (another model, another
    vector: like real models, their spaces differ)."""
    import hashlib
    import math
    import random

    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def embedding_body(
    wire: str, model: str, vectors: list[list[float]], tokens: int, *, single: bool = False
) -> dict[str, Any]:
    """An embeddings success reply: OpenAI's ``data`` list, Gemini's ``embedding`` (one
    input, ``single``) or ``embeddings`` (a batch; no token counts), Ollama's
    ``embeddings`` with ``prompt_eval_count``."""
    if wire == "gemini":
        if single:
            return {"embedding": {"values": vectors[0]}}
        return {"embeddings": [{"values": vector} for vector in vectors]}
    if wire == "ollama":
        return {
            "model": model,
            "embeddings": vectors,
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": tokens,
        }
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def reply_body(
    wire: str,
    model: str,
    text: str,
    usage: tuple[int, int],
    *,
    blocked: bool = False,
    tool_calls: tuple[SimToolCall, ...] = (),
    stopped: bool = False,
    cache: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A complete (non-streamed) success reply; ``blocked`` makes it a content block,
    ``tool_calls`` a tool-calling answer, ``stopped`` one cut by a stop sequence.

    ``cache``: prompt tokens (read from, written to) a prompt cache, reported in the
    wire's own usage fields (``None``: the usage without them, as before caching)."""
    prompt, completion = usage
    if tool_calls and not blocked:
        return _tool_reply(wire, model, text, usage, tool_calls, cache)
    if wire == "openai":
        message: dict[str, Any] = {"role": "assistant", "content": None if blocked else text}
        return {
            "id": "chatcmpl-sim",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "content_filter" if blocked else "stop",
                }
            ],
            "usage": _chat_usage(prompt, completion, cache),
        }
    if wire == "anthropic":
        return {
            "id": "msg_sim",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [] if blocked else [{"type": "text", "text": text}],
            "stop_reason": "refusal" if blocked else ("stop_sequence" if stopped else "end_turn"),
            "usage": anthropic_usage(prompt, completion, cache),
        }
    if wire == "gemini":
        if blocked:
            return {"promptFeedback": {"blockReason": "SAFETY"}}
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": _gemini_usage(prompt, completion, cache),
        }
    return {
        "model": model,
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": prompt,
        "eval_count": completion,
    }


def _tool_reply(
    wire: str,
    model: str,
    text: str,
    usage: tuple[int, int],
    calls: tuple[SimToolCall, ...],
    cache: tuple[int, int] | None = None,
) -> dict[str, Any]:
    prompt, completion = usage
    if wire == "openai":
        return {
            "id": "chatcmpl-sim",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text or None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": json.dumps(args)},
                            }
                            for call_id, name, args in calls
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": _chat_usage(prompt, completion, cache),
        }
    if wire == "anthropic":
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [
            {"type": "tool_use", "id": call_id, "name": name, "input": args}
            for call_id, name, args in calls
        ]
        return {
            "id": "msg_sim",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": "tool_use",
            "usage": anthropic_usage(prompt, completion, cache),
        }
    if wire == "gemini":
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        parts += [_gemini_call(number, name, args) for number, (_, name, args) in enumerate(calls)]
        return {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": _gemini_usage(prompt, completion, cache),
        }
    return {
        "model": model,
        "message": {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {"function": {"name": name, "arguments": args}} for _, name, args in calls
            ],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": prompt,
        "eval_count": completion,
    }


def _chat_usage(
    prompt: int, completion: int, cache: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Chat Completions' ``usage``: ``prompt_tokens`` includes the cached part."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cache is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cache[0], "audio_tokens": 0}
    return usage


def anthropic_usage(
    prompt: int, completion: int, cache: tuple[int, int] | None = None
) -> dict[str, int]:
    """Anthropic's ``usage``: ``input_tokens`` excludes what was read from or written to
    the prompt cache (``cache``: tokens (read, written); ``None``: no cache fields)."""
    if cache is None:
        return {"input_tokens": prompt, "output_tokens": completion}
    read, written = cache
    return {
        "input_tokens": max(0, prompt - read - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": completion,
    }


def _gemini_usage(
    prompt: int, completion: int, cache: tuple[int, int] | None = None
) -> dict[str, int]:
    """Gemini's ``usageMetadata``: ``promptTokenCount`` includes ``cachedContentTokenCount``
    (sent only when some was cached, as Gemini does)."""
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": completion}
    if cache is not None and cache[0]:
        meta["cachedContentTokenCount"] = cache[0]
    return meta


def _chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> str:
    """A Chat Completions stream chunk with the members the API always sends."""
    return json.dumps(
        {
            "id": "chatcmpl-sim",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            **extra,
        }
    )


def _gemini_call(number: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    if number == 0:
        part["thoughtSignature"] = "c2ltdWxhdGVkLXNpZ25hdHVyZQ=="
    return part


def _tool_stream(
    wire: str,
    model: str,
    usage: tuple[int, int],
    calls: tuple[SimToolCall, ...],
    cache: tuple[int, int] | None = None,
) -> Iterator[tuple[str | None, str]]:
    """A stream whose answer is tool calls, each wire's way: OpenAI's indexed fragments,
    Anthropic's ``input_json_delta``, Gemini's whole ``functionCall`` parts, Ollama's whole
    calls in a line."""
    prompt, completion = usage
    if wire == "openai":
        for index, (call_id, name, args) in enumerate(calls):
            text = json.dumps(args)
            half = len(text) // 2
            first = {"index": index, "id": call_id, "type": "function"}
            fragments = [
                {**first, "function": {"name": name, "arguments": ""}},
                {"index": index, "function": {"arguments": text[:half]}},
                {"index": index, "function": {"arguments": text[half:]}},
            ]
            for fragment in fragments:
                choice = {"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None}
                yield None, _chunk(model, [choice])
        done = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
        yield None, _chunk(model, [done])
        yield None, _chunk(model, [], usage=_chat_usage(prompt, completion, cache))
        yield None, "[DONE]"
    elif wire == "anthropic":
        yield (
            "message_start",
            json.dumps(
                {"type": "message_start", "message": _anthropic_start(model, prompt, cache)}
            ),
        )
        for index, (call_id, name, args) in enumerate(calls):
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            yield (
                "content_block_start",
                json.dumps({"type": "content_block_start", "index": index, "content_block": block}),
            )
            text = json.dumps(args)
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield (
                    "content_block_delta",
                    json.dumps({"type": "content_block_delta", "index": index, "delta": delta}),
                )
            yield "content_block_stop", json.dumps({"type": "content_block_stop", "index": index})
        yield (
            "message_delta",
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": completion},
                }
            ),
        )
        yield "message_stop", json.dumps({"type": "message_stop"})
    elif wire == "gemini":
        parts = [_gemini_call(number, name, args) for number, (_, name, args) in enumerate(calls)]
        yield (
            None,
            json.dumps(
                {
                    "candidates": [
                        {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
                    ],
                    "usageMetadata": _gemini_usage(prompt, completion, cache),
                }
            ),
        )
    else:
        message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": name, "arguments": args}} for _, name, args in calls
            ],
        }
        yield None, json.dumps({"model": model, "message": message, "done": False})
        yield (
            None,
            json.dumps(
                {
                    "model": model,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": prompt,
                    "eval_count": completion,
                }
            ),
        )


def stream_events(
    wire: str,
    model: str,
    pieces: list[str],
    usage: tuple[int, int],
    *,
    tool_calls: tuple[SimToolCall, ...] = (),
    stopped: bool = False,
    cache: tuple[int, int] | None = None,
) -> Iterator[tuple[str | None, str]]:
    """Yield (event name, data) for a healthy stream, the terminator last (``cache``: as
    :func:`reply_body`'s, in the usage the stream reports)."""
    prompt, completion = usage
    if tool_calls:
        yield from _tool_stream(wire, model, usage, tool_calls, cache)
        return
    if wire == "openai":
        for piece in pieces:
            delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            yield None, _chunk(model, [delta])
        yield None, _chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
        yield None, _chunk(model, [], usage=_chat_usage(prompt, completion, cache))
        yield None, "[DONE]"
    elif wire == "anthropic":
        yield (
            "message_start",
            json.dumps(
                {
                    "type": "message_start",
                    "message": _anthropic_start(model, prompt, cache),
                }
            ),
        )
        yield (
            "content_block_start",
            json.dumps(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
        )
        yield "ping", json.dumps({"type": "ping"})
        for piece in pieces:
            yield (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                ),
            )
        yield "content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})
        yield (
            "message_delta",
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "stop_sequence" if stopped else "end_turn"},
                    "usage": {"output_tokens": completion},
                }
            ),
        )
        yield "message_stop", json.dumps({"type": "message_stop"})
    elif wire == "gemini":
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}}
            event: dict[str, Any] = {"candidates": [candidate]}
            if last:
                candidate["finishReason"] = "STOP"
                event["usageMetadata"] = _gemini_usage(prompt, completion, cache)
            yield None, json.dumps(event)
    else:
        for piece in pieces:
            yield (
                None,
                json.dumps(
                    {
                        "model": model,
                        "message": {"role": "assistant", "content": piece},
                        "done": False,
                    }
                ),
            )
        yield (
            None,
            json.dumps(
                {
                    "model": model,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": prompt,
                    "eval_count": completion,
                }
            ),
        )


def stream_error(wire: str) -> tuple[str | None, str]:
    """A mid-stream error event in ``wire``'s format (the status is already 200)."""
    if wire == "anthropic":
        return "error", json.dumps(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    if wire == "ollama":
        return None, json.dumps({"error": "simulated mid-stream failure"})
    if wire == "gemini":
        return None, json.dumps(
            {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
        )
    return None, json.dumps(
        {"error": {"message": "The server is overloaded", "type": "server_error", "code": 503}}
    )


def _anthropic_start(
    model: str, prompt: int, cache: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The message of Anthropic's ``message_start`` event, as the API sends it."""
    return {
        "id": "msg_sim",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": anthropic_usage(prompt, 1, cache),
    }
