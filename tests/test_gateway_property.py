"""Property: any reply the adapters can produce (text, tool calls with any provider's ids and
JSON arguments, usage, finish reason), whole or streamed in any fragmentation, survives
encode -> the real SDK's parse with its text, tool calls and usage intact."""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.catalog import TokenUsage
from failover.gateway import Wire, decode_request, encode_result, stream_encoder
from failover.providers.base import ChatResult, StreamChunk, ToolCall, ToolCallDelta

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
JSON_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    TEXT,
    st.lists(st.integers(), max_size=3),
)
ARGUMENTS = st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), JSON_VALUE, max_size=4)
CALL_IDS = st.one_of(
    st.from_regex(r"call_[A-Za-z0-9]{24}", fullmatch=True),  # OpenAI
    st.from_regex(r"toolu_01[A-Za-z0-9]{22}", fullmatch=True),  # Anthropic
    st.from_regex(r"functions\.[a-z_]{1,8}:[0-9]", fullmatch=True),  # Kimi-style
    st.from_regex(r"[A-Za-z0-9]{9}", fullmatch=True),  # Mistral
)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def replies(draw: st.DrawFn) -> ChatResult:
    calls = tuple(
        ToolCall(f"{draw(CALL_IDS)}{number}", draw(NAMES), json.dumps(draw(ARGUMENTS)))
        for number in range(draw(st.integers(0, 3)))
    )
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length", "content_filter"]))
    output = draw(st.integers(0, 10**6))
    usage = TokenUsage(
        input_tokens=draw(st.integers(0, 10**6)),
        output_tokens=output,
        cache_read_tokens=draw(st.integers(0, 10**5)),
        cache_write_tokens=draw(st.integers(0, 10**5)),
        reasoning_tokens=draw(st.integers(0, output)),
    )
    return ChatResult(draw(TEXT), finish, usage, None, calls, finish)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if text[a:b]]


def stream_of(reply: ChatResult, cuts: list[int]) -> list[StreamChunk]:
    """The reply as a stream cut at ``cuts``: text pieces, then each call's first fragment
    with id and name and its argument pieces, then the finish reason and the usage."""
    chunks = [StreamChunk(piece) for piece in _split(reply.text, cuts)]
    for index, call in enumerate(reply.tool_calls):
        pieces = _split(call.arguments, cuts) or [""]
        chunks.append(
            StreamChunk(tool_calls=(ToolCallDelta(index, call.id, call.name, pieces[0]),))
        )
        chunks += [StreamChunk(tool_calls=(ToolCallDelta(index, arguments=p),)) for p in pieces[1:]]
    chunks.append(StreamChunk(finish_reason=reply.finish_reason))
    chunks.append(StreamChunk(usage=reply.usage))
    return chunks


class Server:
    """A sync mock transport answering each SDK request with ``reply`` (or its stream)."""

    def __init__(self) -> None:
        self.reply = ChatResult("", "stop", TokenUsage(), None)
        self.cuts: list[int] = []

    def serve(self, reply: ChatResult, cuts: list[int] | None) -> None:
        self.reply, self.cuts = reply, cuts or []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        decoded = decode_request(str(request.url), request.read())
        if not decoded.stream:
            encoded = encode_result(decoded, self.reply, model="srv")
            return httpx2.Response(encoded.status, headers=encoded.headers, content=encoded.body)
        encoder = stream_encoder(decoded, model="srv")
        data = b"".join(encoder.feed(c) for c in stream_of(self.reply, self.cuts)) + encoder.close()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    def http(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


SERVER = Server()


@functools.cache
def openai_client() -> openai.OpenAI:
    return openai.OpenAI(api_key="k", http_client=SERVER.http(), max_retries=0)


@functools.cache
def anthropic_client() -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", http_client=SERVER.http(), max_retries=0)


@functools.cache
def genai_client() -> genai.Client:  # made once: a client costs ~0.1 s (its SSL context)
    options = genai_types.HttpOptions(httpx_client=SERVER.http())
    return genai.Client(api_key="k", http_options=options)


def prompt(usage: TokenUsage) -> int:
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens


def calls_of(reply: ChatResult) -> list[tuple[str, str, Any]]:
    return [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls]


HI = [{"role": "user", "content": "Hi"}]


def openai_chat(reply: ChatResult, cuts: list[int] | None) -> None:
    SERVER.serve(reply, cuts)
    client = openai_client()
    if cuts is None:
        completion = client.chat.completions.create(model="m", messages=HI)  # type: ignore[arg-type]
        message, finish, usage = (
            completion.choices[0].message,
            completion.choices[0].finish_reason,
            completion.usage,
        )
        text = message.content or ""
        calls = [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or []
        ]  # type: ignore[union-attr]
    else:
        text, finish, usage, parts = "", None, None, {}
        for chunk in client.chat.completions.create(
            model="m",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        ):
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    part = parts.setdefault(delta.index, ["", "", ""])
                    part[0] = delta.id or part[0]
                    part[1] = (delta.function and delta.function.name) or part[1]
                    part[2] += (delta.function and delta.function.arguments) or ""
        calls = [(i, n, json.loads(a)) for i, n, a in (parts[k] for k in sorted(parts))]
    assert (text, finish, calls) == (reply.text, reply.finish_reason, calls_of(reply))
    assert usage is not None and usage.prompt_tokens == prompt(reply.usage)
    assert usage.completion_tokens == reply.usage.output_tokens
    assert (
        usage.prompt_tokens_details
        and usage.prompt_tokens_details.cached_tokens == reply.usage.cache_read_tokens
    )
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == reply.usage.reasoning_tokens


def openai_responses(reply: ChatResult, cuts: list[int] | None) -> None:
    SERVER.serve(reply, cuts)
    client = openai_client()
    if cuts is None:
        response = client.responses.create(model="m", input="Hi")
    else:
        with client.responses.stream(model="m", input="Hi") as stream:
            for event in stream:  # the SDK's helper finalises only a completed response
                if event.type in ("response.completed", "response.incomplete"):
                    response = event.response
    calls = [
        (o.call_id, o.name, json.loads(o.arguments))
        for o in response.output
        if o.type == "function_call"
    ]
    assert (response.output_text, calls) == (reply.text, calls_of(reply))
    expected = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
        str(reply.finish_reason)
    )
    assert (response.incomplete_details.reason if response.incomplete_details else None) == expected
    usage = response.usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (
        prompt(reply.usage),
        reply.usage.output_tokens,
    )
    assert usage.input_tokens_details.cached_tokens == reply.usage.cache_read_tokens
    assert usage.output_tokens_details.reasoning_tokens == reply.usage.reasoning_tokens


def anthropic_messages(reply: ChatResult, cuts: list[int] | None) -> None:
    SERVER.serve(reply, cuts)
    client = anthropic_client()
    if cuts is None:
        message = client.messages.create(model="m", max_tokens=9, messages=HI)  # type: ignore[arg-type]
    else:
        with client.messages.stream(model="m", max_tokens=9, messages=HI) as stream:  # type: ignore[arg-type]
            message = stream.get_final_message()
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    expected = [(re.sub(r"[^A-Za-z0-9_-]", "_", i), n, a) for i, n, a in calls_of(reply)]
    assert (text, calls) == (reply.text, expected)
    stop = {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "content_filter": "refusal",
    }
    assert message.stop_reason == stop[str(reply.finish_reason)]
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )
    assert usage.cache_read_input_tokens == reply.usage.cache_read_tokens
    assert usage.cache_creation_input_tokens == reply.usage.cache_write_tokens


def gemini_generate(reply: ChatResult, cuts: list[int] | None) -> None:
    SERVER.serve(reply, cuts)
    client = genai_client()
    if cuts is None:
        pieces = [client.models.generate_content(model="m", contents="Hi")]
    else:
        pieces = list(client.models.generate_content_stream(model="m", contents="Hi"))
    parts = [
        p
        for piece in pieces
        for c in piece.candidates or []
        for p in (c.content.parts if c.content else []) or []
    ]
    text = "".join(p.text for p in parts if p.text)
    calls = [
        (p.function_call.id, p.function_call.name, p.function_call.args)
        for p in parts
        if p.function_call
    ]
    assert (text, calls) == (reply.text, calls_of(reply))
    last = pieces[-1]
    finish = {
        "stop": "STOP",
        "tool_calls": "STOP",
        "length": "MAX_TOKENS",
        "content_filter": "SAFETY",
    }
    assert last.candidates and last.candidates[0].finish_reason == finish[str(reply.finish_reason)]
    meta = last.usage_metadata
    usage = reply.usage
    assert meta is not None and meta.prompt_token_count == prompt(usage)
    assert meta.candidates_token_count == usage.output_tokens - usage.reasoning_tokens
    assert (meta.thoughts_token_count or 0, meta.cached_content_token_count or 0) == (
        usage.reasoning_tokens,
        usage.cache_read_tokens,
    )


CHECKS = {
    "openai": openai_chat,
    "responses": openai_responses,
    "anthropic": anthropic_messages,
    "gemini": gemini_generate,
}


@pytest.mark.parametrize("wire", list(CHECKS))
@SETTINGS
@given(reply=replies())
def test_any_reply_survives_encoding_and_the_real_sdks_parse(wire: Wire, reply: ChatResult) -> None:
    CHECKS[wire](reply, None)


@pytest.mark.parametrize("wire", list(CHECKS))
@SETTINGS
@given(reply=replies(), cuts=st.lists(st.integers(0, 10**4), max_size=6))
def test_any_stream_in_any_fragmentation_survives_encoding_and_the_real_sdks_parse(
    wire: Wire, reply: ChatResult, cuts: list[int]
) -> None:
    CHECKS[wire](reply, cuts)
