"""The real SDKs parse what the gateway encodes as their own provider's replies: objects,
streams and errors, over a mock transport (no network)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from failover import providers
from failover.catalog import TokenUsage
from failover.errors import (
    AllAttemptsFailed,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from failover.gateway import decode_request, encode_stream
from failover.providers.base import StreamChunk, ToolCall
from failover.testing.rejects import check_request
from tests.test_gateway_support import CALL, SERVED, Served, chunks, result

HI = [{"role": "user", "content": "Hi"}]
SECOND = ToolCall("call_def456", "get_time", '{"zone": "CET"}')
TWO_CALLS = (
    ("call_1", "get_weather", ('{"ci', 'ty": "Pa', 'ris"}')),
    ("call_2", "get_time", ('{"zone":', ' "CET"}')),
)


@pytest.fixture
def served() -> Served:
    return Served()


# -- OpenAI Chat Completions ---------------------------------------------------------------


@pytest.mark.parametrize("finish", ["stop", "length", "tool_calls", "content_filter"])
async def test_openai_sdk_reads_a_chat_completion_with_each_finish_reason(
    served: Served, finish: str
) -> None:
    calls = (CALL, SECOND) if finish == "tool_calls" else ()
    served.result = result("Hello there", finish, calls)
    reply = await served.openai().chat.completions.create(model="gpt-4o", messages=HI)
    choice = reply.choices[0]
    assert reply.model == SERVED and reply.id.startswith("chatcmpl-")
    assert choice.finish_reason == finish and choice.message.content == "Hello there"
    assert [
        (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
    ] == [(c.id, c.name, c.arguments) for c in calls]
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (13, 7, 20)
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 2


async def test_openai_sdk_streams_text_and_tool_call_fragments_then_usage(served: Served) -> None:
    served.stream = chunks(calls=TWO_CALLS, finish="tool_calls")
    stream = await served.openai().chat.completions.create(
        model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    text, arguments, names, finish, usage = "", {0: "", 1: ""}, {}, None, None
    async for chunk in stream:
        assert chunk.model == SERVED
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                arguments[call.index] += call.function.arguments or "" if call.function else ""
                if call.id:
                    names[call.index] = (call.id, call.function and call.function.name)
    assert text == "Hello" and finish == "tool_calls"
    assert names == {0: ("call_1", "get_weather"), 1: ("call_2", "get_time")}
    assert json.loads(arguments[0]) == {"city": "Paris"} and json.loads(arguments[1]) == {
        "zone": "CET"
    }
    assert usage is not None and usage.prompt_tokens == 13 and usage.completion_tokens == 7


async def test_openai_chat_stream_has_no_usage_chunk_unless_asked(served: Served) -> None:
    stream = await served.openai().chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    seen = [chunk async for chunk in stream]
    assert all(chunk.choices and chunk.usage is None for chunk in seen)
    assert seen[-1].choices[0].finish_reason == "stop"


# -- OpenAI Responses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
async def test_openai_sdk_reads_a_response_with_each_finish_reason(
    served: Served, finish: str, status: str, reason: str | None
) -> None:
    calls = (CALL, SECOND) if finish == "tool_calls" else ()
    served.result = result("Hello there", finish, calls)
    reply = await served.openai().responses.create(
        model="gpt-4o", input="Hi", instructions="Be brief.", max_output_tokens=50
    )
    assert reply.id.startswith("resp_") and reply.model == SERVED and reply.status == status
    assert (reply.incomplete_details.reason if reply.incomplete_details else None) == reason
    assert reply.output_text == "Hello there"
    assert reply.instructions == "Be brief." and reply.max_output_tokens == 50
    assert [
        (o.call_id, o.name, o.arguments) for o in reply.output if o.type == "function_call"
    ] == [(c.id, c.name, c.arguments) for c in calls]
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (13, 7)
    assert reply.usage.input_tokens_details.cached_tokens == 3
    assert reply.usage.output_tokens_details.reasoning_tokens == 2


async def test_openai_sdk_streams_a_response_event_by_event(served: Served) -> None:
    served.stream = chunks(calls=TWO_CALLS, finish="tool_calls")
    async with served.openai().responses.stream(model="gpt-4o", input="Hi") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [event.type for event in events]
    message = [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]

    def call(fragments: int) -> list[str]:
        return [
            "response.output_item.added",
            *["response.function_call_arguments.delta"] * fragments,
            "response.function_call_arguments.done",
            "response.output_item.done",
        ]

    assert kinds == [
        "response.created",
        "response.in_progress",
        *message,
        *call(3),
        *call(2),
        "response.completed",
    ]
    assert [e.sequence_number for e in events if hasattr(e, "sequence_number")] == list(
        range(len(events))
    )
    assert final.output_text == "Hello" and final.model == SERVED and final.status == "completed"
    assert [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in final.output
        if o.type == "function_call"
    ] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {"zone": "CET"}),
    ]
    assert final.usage is not None and final.usage.total_tokens == 20


async def test_a_response_stream_cut_by_length_ends_incomplete(served: Served) -> None:
    served.stream = chunks(finish="length")
    stream = await served.openai().responses.create(model="gpt-4o", input="Hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details is not None
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


# -- Anthropic Messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "raw", "stop_reason"),
    [
        ("stop", "end_turn", "end_turn"),
        ("stop", "stop_sequence", "stop_sequence"),
        ("stop", "STOP", "end_turn"),
        ("length", "length", "max_tokens"),
        ("tool_calls", "tool_calls", "tool_use"),
        ("content_filter", "content_filter", "refusal"),
    ],
)
async def test_anthropic_sdk_reads_a_message_with_each_stop_reason(
    served: Served, finish: str, raw: str, stop_reason: str
) -> None:
    odd = ToolCall("functions.get_time:1", "get_time", "")
    calls = (CALL, odd) if finish == "tool_calls" else ()
    served.result = result("Hello there", finish, calls, raw=raw)
    usage = TokenUsage(10, 7, cache_read_tokens=3, cache_write_tokens=4)
    served.result = result("Hello there", finish, calls, usage, raw=raw)
    message = await served.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=HI
    )
    assert message.model == SERVED and message.id.startswith("msg_01")
    assert message.stop_reason == stop_reason
    assert message.content[0].type == "text" and message.content[0].text == "Hello there"
    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    if calls:
        assert uses == [
            ("call_abc123", "get_weather", {"city": "Paris"}),
            ("functions_get_time_1", "get_time", {}),
        ]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 7)
    assert message.usage.cache_read_input_tokens == 3
    assert message.usage.cache_creation_input_tokens == 4


async def test_anthropic_sdk_streams_blocks_and_the_final_message(served: Served) -> None:
    served.stream = chunks(calls=TWO_CALLS, finish="tool_calls")
    async with served.anthropic().messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=HI
    ) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == "Hello" and message.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {"zone": "CET"}),
    ]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 7)
    assert message.usage.cache_read_input_tokens == 3


# -- Gemini ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "STOP"),
        ("tool_calls", "STOP"),
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
    ],
)
async def test_genai_sdk_reads_a_response_with_each_finish_reason(
    served: Served, finish: str, reason: str
) -> None:
    signed = ToolCall("call_def456", "get_time", '{"zone": "CET"}', "c2lnbmF0dXJl")
    calls = (CALL, signed) if finish == "tool_calls" else ()
    served.result = result("Hello there", finish, calls)
    reply = await served.genai().aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="Hi",
        config=genai_types.GenerateContentConfig(
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True)
        ),
    )
    candidate = (reply.candidates or [])[0]
    assert candidate.finish_reason == reason and reply.model_version == SERVED
    texts = [p.text for p in (candidate.content.parts if candidate.content else []) or [] if p.text]
    assert texts == ["Hello there"]
    assert [(f.id, f.name, f.args) for f in reply.function_calls or []] == [
        (c.id, c.name, json.loads(c.arguments)) for c in calls
    ]
    if calls:
        parts = candidate.content.parts if candidate.content else None
        assert parts is not None and parts[2].thought_signature == b"signature"
    meta = reply.usage_metadata
    assert meta is not None
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count) == (
        13,
        5,
        2,
    )
    assert (meta.cached_content_token_count, meta.total_token_count) == (3, 20)


async def test_genai_sdk_streams_text_then_whole_calls_with_usage_last(served: Served) -> None:
    served.stream = chunks(calls=TWO_CALLS, finish="tool_calls")
    pieces = [
        piece
        async for piece in await served.genai().aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hi"
        )
    ]
    assert [p.text for p in pieces[:2]] == ["Hel", "lo"]
    last = pieces[-1]
    assert last.candidates and last.candidates[0].finish_reason == "STOP"
    assert [(f.id, f.name, f.args) for f in last.function_calls or []] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {"zone": "CET"}),
    ]
    assert all(p.usage_metadata is None for p in pieces[:-1])
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 20


# -- Errors ---------------------------------------------------------------------------------

RATE_LIMITED = RateLimitError("Rate limit reached", status=429, retry_after=7.2)
OVERLOADED = OverloadedError("Overloaded", status=529, retry_after=2)


@pytest.mark.parametrize(
    ("error", "exception", "status"),
    [
        (RATE_LIMITED, openai.RateLimitError, 429),
        (
            QuotaExceededError("You exceeded your current quota", status=429),
            openai.RateLimitError,
            429,
        ),
        (OVERLOADED, openai.InternalServerError, 503),
        (ServerError("Bad gateway", status=502), openai.InternalServerError, 502),
        (None, openai.InternalServerError, 503),
        (
            AllAttemptsFailed("every key is cooling", retry_after=30),
            openai.InternalServerError,
            503,
        ),
    ],
)
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_openai_sdk_raises_its_own_error_with_status_and_retry_after(
    served: Served, error: Any, exception: type[Exception], status: int, api: str
) -> None:
    served.failing, served.error = True, error
    client = served.openai()
    call = (
        client.chat.completions.create(model="gpt-4o", messages=HI)
        if api == "chat"
        else client.responses.create(model="gpt-4o", input="Hi")
    )
    with pytest.raises(exception) as raised:
        await call
    assert isinstance(raised.value, openai.APIStatusError)
    assert raised.value.status_code == status
    wait = getattr(error, "retry_after", None)
    headers = raised.value.response.headers
    assert headers.get("retry-after") == (str(-(-wait // 1)).removesuffix(".0") if wait else None)


@pytest.mark.parametrize(
    ("error", "exception", "status"),
    [
        (RATE_LIMITED, anthropic.RateLimitError, 429),
        (OVERLOADED, anthropic.OverloadedError, 529),
        (OverloadedError("busy", status=503), anthropic.OverloadedError, 529),
        (None, anthropic.APIStatusError, 503),
    ],
)
async def test_anthropic_sdk_raises_its_own_error(
    served: Served, error: Any, exception: type[Exception], status: int
) -> None:
    served.failing, served.error = True, error
    with pytest.raises(exception) as raised:
        await served.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=HI
        )
    assert isinstance(raised.value, anthropic.APIStatusError)
    assert raised.value.status_code == status
    if error is RATE_LIMITED:
        assert raised.value.response.headers["retry-after"] == "8"
        assert raised.value.response.headers["retry-after-ms"] == "7200"
    if error is None:
        assert raised.value.body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": raised.value.body["error"]["message"]},
        }


@pytest.mark.parametrize(
    ("error", "exception", "status", "state"),
    [
        (RATE_LIMITED, genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        (OVERLOADED, genai_errors.ServerError, 503, "UNAVAILABLE"),
        (None, genai_errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
async def test_genai_sdk_raises_its_own_error(
    served: Served, error: Any, exception: type[Exception], status: int, state: str
) -> None:
    served.failing, served.error = True, error
    with pytest.raises(exception) as raised:
        await served.genai().aio.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert isinstance(raised.value, genai_errors.APIError)
    assert (raised.value.code, raised.value.status) == (status, state)
    if error is RATE_LIMITED:
        details = raised.value.details["error"]["details"]
        assert {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "7.2s",
        } in details


# -- A stream that breaks after it started ----------------------------------------------------


async def _breaking() -> AsyncIterator[StreamChunk]:
    yield StreamChunk("Hel")
    raise OverloadedError("Overloaded", status=529)


class _Broken(Served):
    async def __call__(self, request: Any) -> Any:
        import httpx2

        decoded = decode_request(str(request.url), await request.aread())
        data = b"".join([b async for b in encode_stream(decoded, _breaking(), model=SERVED)])
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)


async def _drain_anthropic(served: Served) -> None:
    async with served.anthropic().messages.stream(
        model="claude-haiku-4-5", max_tokens=10, messages=HI
    ) as messages:
        async for _ in messages:
            pass


async def test_each_sdk_raises_when_the_stream_breaks_midway() -> None:
    broken = _Broken()
    stream = await broken.openai().chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for _ in stream:
            pass
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        await _drain_anthropic(broken)
    with pytest.raises(genai_errors.APIError, match="Overloaded"):
        async for _ in await broken.genai().aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hi"
        ):
            pass
    events = [
        e
        async for e in await broken.openai().responses.create(
            model="gpt-4o", input="Hi", stream=True
        )
    ]
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert events[-1].response.error.message == "Overloaded"


async def test_a_gemini_calls_thought_signature_survives_a_turn_through_the_openai_sdk(
    served: Served,
) -> None:
    signed = ToolCall("call_1", "get_weather", '{"city": "Paris"}', "c2lnbmF0dXJl")
    served.result = result("", "tool_calls", (signed,))
    client = served.openai()
    reply = await client.chat.completions.create(model="gpt-4o", messages=HI)
    answer = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    history = [*HI, reply.choices[0].message.model_dump(exclude_none=True), answer]
    await client.chat.completions.create(model="gpt-4o", messages=history)  # type: ignore[arg-type]
    model = "gemini-3-pro-preview"
    built = providers.get_adapter("gemini").build_request(
        served.requests[-1].request, model=model, api_key="k", base_url="http://h"
    )
    body = json.loads(built.body)
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJl"
    assert check_request("gemini", "gemini", body, model) is None
