"""Golden tests of the gateway's encoders, byte for byte as each API frames its streams, and
round trips through this project's own readers of each wire (the adapters' parsers): what
the gateway writes, the adapter reading that wire reads back unchanged."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover import providers
from failover.attempts import Attempt
from failover.catalog import TokenUsage
from failover.errors import (
    AllAttemptsFailed,
    AuthenticationError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PoolExhaustedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnsupportedParameterError,
)
from failover.gateway import (
    WIRES,
    Decoded,
    decode_request,
    encode_error,
    encode_result,
    encode_stream,
    stream_encoder,
)
from failover.gateway.framing import encode_compact
from failover.gateway.usage import chat_usage, chat_usage_json
from failover.providers.base import StreamAssembler, StreamChunk, ToolCall
from tests.test_gateway_support import USAGE, chunks, result, sse_events

REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": (
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
    ),
    "responses": ("/v1/responses", {"model": "m", "input": "Hi"}),
    "anthropic": (
        "/v1/messages",
        {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]},
    ),
    "gemini": ("/v1beta/models/m:generateContent", {"contents": [{"parts": [{"text": "Hi"}]}]}),
}
READERS = {"openai": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gemini"}


def decoded(wire: str, *, stream: bool = False, **extra: Any) -> Decoded:
    url, body = REQUESTS[wire]
    if stream and wire == "gemini":
        url = url.replace(":generateContent", ":streamGenerateContent?alt=sse")
    elif stream:
        body = {**body, "stream": True}
    return decode_request(url, {**body, **extra})


async def encoded_stream(wire: str, *, include_usage: bool = False, **options: Any) -> bytes:
    parts = chunks(**options)
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = encode_stream(decoded(wire, stream=True, **extra), parts, model="srv")
    return b"".join([piece async for piece in stream])


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_bytes", lambda n: bytes(n))  # every id: "aaa..."
    monkeypatch.setattr(time, "time", lambda: 1700000000.0)


def frame(payload: Any, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return ((f"event: {event}\n" if event else "") + f"data: {data}\n\n").encode()


# -- golden streams -------------------------------------------------------------------------

SMALL = {
    "texts": ("Hi",),
    "calls": (("call_1", "f", ('{"a":', "1}")),),
    "finish": "tool_calls",
    "usage": TokenUsage(5, 2),
}


async def test_openai_chat_stream_is_framed_as_openai_sends_it(fixed_ids: None) -> None:
    head = {
        "id": "chatcmpl-" + "a" * 29,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "srv",
        "service_tier": "default",
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return frame(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    assert await encoded_stream("openai", **SMALL) == b"".join(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Hi"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":'},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            chunk({}, "tool_calls"),
            frame("[DONE]"),
        ]
    )


async def test_anthropic_stream_is_framed_as_anthropic_sends_it(fixed_ids: None) -> None:
    zero = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    message = {
        "id": "msg_01" + "a" * 22,
        "type": "message",
        "role": "assistant",
        "model": "srv",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**zero, "service_tier": "standard"},
    }
    assert await encoded_stream("anthropic", **SMALL) == b"".join(
        [
            frame({"type": "message_start", "message": message}, "message_start"),
            frame({"type": "ping"}, "ping"),
            frame(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            frame(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                },
                "content_block_delta",
            ),
            frame({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            frame(
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
                },
                "content_block_start",
            ),
            frame(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
                },
                "content_block_delta",
            ),
            frame(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "1}"},
                },
                "content_block_delta",
            ),
            frame({"type": "content_block_stop", "index": 1}, "content_block_stop"),
            frame(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {**zero, "input_tokens": 5, "output_tokens": 2},
                },
                "message_delta",
            ),
            frame({"type": "message_stop"}, "message_stop"),
        ]
    )


async def test_gemini_stream_is_framed_as_gemini_sends_it(fixed_ids: None) -> None:
    assert await encoded_stream("gemini", **SMALL) == (
        b'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}],'
        b'"modelVersion": "srv","responseId": "aaaaaaaaaaaaaaaaaaaaaa"}\r\n\r\n'
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"id": "call_1","name": "f",'
        b'"args": {"a": 1}}}],"role": "model"},"finishReason": "STOP","index": 0}],'
        b'"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 2,"totalTokenCount": 7},'
        b'"modelVersion": "srv","responseId": "aaaaaaaaaaaaaaaaaaaaaa"}\r\n\r\n'
    )


async def test_responses_stream_names_each_event_by_its_type_and_numbers_it(
    fixed_ids: None,
) -> None:
    events = list(sse_events(await encoded_stream("responses", **SMALL)))
    payloads = [json.loads(data) for _, data in events]
    assert [name for name, _ in events] == [p["type"] for p in payloads]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    by_type = {p["type"]: p for p in payloads}
    assert by_type["response.function_call_arguments.done"] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 11,
        "item_id": "fc_" + "0" * 48,
        "output_index": 1,
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert by_type["response.output_text.done"]["text"] == "Hi"
    completed = by_type["response.completed"]["response"]
    assert completed["status"] == "completed" and completed["store"] is False
    assert [item["type"] for item in completed["output"]] == ["message", "function_call"]
    assert completed["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }
    assert b"[DONE]" not in await encoded_stream("responses", **SMALL)


def test_a_responses_object_repeats_the_requests_settings() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    reply = encode_result(
        decoded(
            "responses",
            instructions="Be brief.",
            tools=tools,
            tool_choice="required",
            temperature=0.2,
            max_output_tokens=99,
            metadata={"k": "v"},
        ),
        result("ok"),
        model="srv",
    )
    body = json.loads(reply.body)
    assert (body["instructions"], body["tools"], body["tool_choice"]) == (
        "Be brief.",
        tools,
        "required",
    )
    assert (body["temperature"], body["max_output_tokens"], body["metadata"]) == (
        0.2,
        99,
        {"k": "v"},
    )
    assert reply.headers == {"content-type": "application/json"}


def test_whole_replies_are_compact_json() -> None:
    bodies = {wire: encode_result(decoded(wire), result(), model="srv").body for wire in WIRES}
    assert bodies["openai"].startswith(b'{"id":"chatcmpl-')
    assert bodies["responses"].startswith(b'{"id":"resp_')
    assert bodies["gemini"].startswith(b'{"candidates":[')
    assert bodies["anthropic"].startswith(b'{"id":"msg_01')


CALL_A = ToolCall("call_1", "get_weather", '{"city": "Paris"}')


class _Count(int):
    """A token count that is an ``int``, but not exactly one (written by the JSON encoder)."""


@pytest.mark.parametrize(
    ("text", "calls", "finish", "usage", "model"),
    [
        ("Hello there", (), "stop", USAGE, "srv"),
        ("", (), "length", TokenUsage(), "srv"),
        ("", (CALL_A,), "tool_calls", USAGE, "srv"),
        ('caf\u00e9 "quoted" \\ \n \u2028 \U0001f600', (CALL_A,), "other", USAGE, 'm\u00e9/"x"'),
        ("Hi", (), "stop", TokenUsage(_Count(4), 2, 1, _Count(3), 1), "srv"),
    ],
)
def test_a_chat_completion_is_openais_object_as_compact_json(
    fixed_ids: None,
    text: str,
    calls: tuple[ToolCall, ...],
    finish: str,
    usage: TokenUsage,
    model: str,
) -> None:
    """Byte for byte: the fields in OpenAI's order, ``content`` null beside tool calls
    alone, the finish reason normalised, the prompt counting its cached tokens."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text or (None if calls else ""),
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [call.to_openai() for call in calls]
    expected = {
        "id": "chatcmpl-" + "a" * 29,
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish if finish != "other" else "tool_calls",
            }
        ],
        "usage": {
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
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }
    reply = encode_result(decoded("openai"), result(text, finish, calls, usage), model=model)
    assert reply.body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()


# -- round trips through this project's readers of each wire ------------------------------

CALLS = (
    ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ToolCall("call_2", "get_time", '{"zone": "CET"}'),
)


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("finish", ["stop", "length", "tool_calls"])
def test_the_wires_own_adapter_reads_an_encoded_reply_back(wire: str, finish: str) -> None:
    calls = CALLS if finish == "tool_calls" else ()
    usage = TokenUsage(10, 7, cache_read_tokens=3, reasoning_tokens=0 if wire == "anthropic" else 2)
    original = result("Hello", finish, calls, usage)
    body = encode_result(decoded(wire), original, model="srv").body
    read = providers.get_adapter(READERS[wire]).parse_response(body)
    assert (read.text, read.finish_reason) == ("Hello", finish)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in read.tool_calls] == [
        (c.id, c.name, json.loads(c.arguments)) for c in calls
    ]
    assert read.usage == usage


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("finish", ["stop", "length", "tool_calls"])
async def test_the_wires_own_stream_parser_reads_an_encoded_stream_back(
    wire: str, finish: str
) -> None:
    calls = (
        (("call_1", "get_weather", ('{"ci', 'ty": "Paris"}')),) if finish == "tool_calls" else ()
    )
    data = await encoded_stream(wire, include_usage=wire == "openai", calls=calls, finish=finish)
    parser = providers.get_adapter(READERS[wire]).stream_parser()
    assembler = StreamAssembler()
    for event, payload in sse_events(data):
        chunk = parser.feed(event, payload)
        if chunk is not None:
            assembler.add(chunk)
    assert parser.complete
    assert (assembler.text, assembler.finish_reason) == ("Hello", finish)
    assert [(c.id, c.name, c.args) for c in assembler.tool_calls] == (
        [("call_1", "get_weather", {"city": "Paris"})] if calls else []
    )
    expected = USAGE if wire != "anthropic" else TokenUsage(10, 7, cache_read_tokens=3)
    assert assembler.usage == expected


ERRORS: list[ProviderError] = [
    RateLimitError("Rate limit reached for requests", status=429, retry_after=20),
    QuotaExceededError("insufficient_quota: you exceeded your quota", status=429),
    AuthenticationError("Incorrect API key provided", status=401),
    OverloadedError("Overloaded", status=529, retry_after=1.5),
    ServerError("Internal error", status=500),
    ProviderTimeoutError("no answer in time"),
    ModelNotFoundError("The model does not exist", status=404),
    ContextWindowExceededError("prompt is too long: 300000 tokens > 200000 maximum", status=400),
    ContentFilteredError("content_policy_violation: blocked", status=400),
    InvalidRequestError("messages: Field required", status=400),
]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.kind)
def test_an_encoded_error_is_classified_back_to_its_kind_and_wait(
    wire: str, error: ProviderError
) -> None:
    reply = encode_error(wire, error)  # type: ignore[arg-type]
    read = providers.get_adapter(READERS[wire]).parse_error(reply.status, reply.headers, reply.body)
    assert read.kind == error.kind and read.status == reply.status
    if error.retry_after is not None:
        assert (
            read.retry_after is not None
            and error.retry_after <= read.retry_after <= error.retry_after + 1
        )
    assert reply.status != 500 or error.kind == "server"


# -- the edges the transport meets ----------------------------------------------------------


def _attempt(error: ProviderError) -> Attempt:
    return Attempt("p/m", None, error.kind, error.status, error.retry_after, 0.1, error)


@pytest.mark.parametrize("wire", WIRES)
def test_when_everything_failed_the_last_providers_answer_is_the_sdks_error(wire: str) -> None:
    skipped = UnsupportedParameterError("seed", ["anthropic/claude"])
    failed = AllAttemptsFailed(
        "all failed",
        [_attempt(RateLimitError("slow down", status=429, retry_after=4)), _attempt(skipped)],
    )
    reply = encode_error(wire, failed)  # type: ignore[arg-type]
    assert reply.status == 429 and reply.headers["retry-after"] == "4"


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "error",
    [
        None,
        AllAttemptsFailed("every key cooling", retry_after=12.5),
        PoolExhaustedError("pool"),
        RuntimeError("a bug"),
    ],
    ids=["nothing", "cooling", "pool", "bug"],
)
def test_finding_no_server_is_a_503_overloaded_never_a_500(wire: str, error: Any) -> None:
    reply = encode_error(wire, error)  # type: ignore[arg-type]
    body = json.loads(reply.body)
    assert reply.status == 503
    assert "overloaded" in json.dumps(body).lower() or "UNAVAILABLE" in json.dumps(body)
    if isinstance(error, AllAttemptsFailed):
        assert reply.headers["retry-after"] == "13"


async def test_a_stream_failing_before_its_first_byte_raises_so_the_transport_can_fall_over() -> (
    None
):
    async def failing() -> AsyncIterator[StreamChunk]:
        raise OverloadedError("busy", status=503)
        yield StreamChunk()  # pragma: no cover

    with pytest.raises(OverloadedError):
        [
            piece
            async for piece in encode_stream(decoded("openai", stream=True), failing(), model="m")
        ]


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_an_empty_stream_still_ends_as_its_wire_ends_streams(wire: str) -> None:
    encoder = stream_encoder(decoded(wire, stream=True), model="m")
    parser = providers.get_adapter(READERS[wire]).stream_parser()
    for event, payload in sse_events(encoder.close()):
        parser.feed(event, payload)
    assert parser.complete and encoder.media_type == "text/event-stream"


def test_a_rate_limit_in_each_apis_documented_error_shape() -> None:
    error = RateLimitError("Rate limit reached", status=429, retry_after=20)
    replies = {wire: encode_error(wire, error) for wire in WIRES}  # type: ignore[arg-type]
    openai_body = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert (
        json.loads(replies["openai"].body) == json.loads(replies["responses"].body) == openai_body
    )
    assert json.loads(replies["anthropic"].body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }
    assert json.loads(replies["gemini"].body) == {
        "error": {
            "code": 429,
            "message": "Rate limit reached",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}],
        }
    }
    assert replies["openai"].headers == {
        "content-type": "application/json",
        "retry-after": "20",
        "retry-after-ms": "20000",
    }
    assert replies["gemini"].headers == {"content-type": "application/json", "retry-after": "20"}


_COUNTS = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**6).map(_Count),
    st.booleans(),
)


@given(st.tuples(_COUNTS, _COUNTS, _COUNTS, _COUNTS, _COUNTS))
def test_chat_usage_written_as_text_is_its_object_encoded(counts: tuple[int, ...]) -> None:
    """The usage a chat reply and a stream's last chunk carry, written straight from its
    counts, is the encoder's own text of :func:`chat_usage` (whatever the counts' types)."""
    usage = TokenUsage(*counts)
    assert chat_usage_json(usage) == encode_compact(chat_usage(usage))
