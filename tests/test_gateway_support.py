"""Helpers shared by the gateway's tests: results and streams to encode, the four SDKs on a
mock transport that serves encoded bytes, and an SSE reader for our own adapters."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types as genai_types

from failover.catalog import TokenUsage
from failover.gateway import (
    Decoded,
    decode_request,
    encode_error,
    encode_result,
    encode_stream,
)
from failover.providers.base import ChatResult, StreamChunk, ToolCall, ToolCallDelta

USAGE = TokenUsage(input_tokens=10, output_tokens=7, cache_read_tokens=3, reasoning_tokens=2)
SERVED = "served-model-1"
CALL = ToolCall("call_abc123", "get_weather", '{"city": "Paris"}')


def result(
    text: str = "Hello there",
    finish: str = "stop",
    calls: tuple[ToolCall, ...] = (),
    usage: TokenUsage = USAGE,
    raw: str | None = None,
) -> ChatResult:
    return ChatResult(text, finish, usage, None, calls, raw or finish)


def chunks(
    texts: tuple[str, ...] = ("Hel", "lo"),
    calls: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
    finish: str = "stop",
    usage: TokenUsage = USAGE,
) -> list[StreamChunk]:
    """Text chunks, then each call's fragments (the first with id and name), then the
    finish reason and, in a chunk of its own (as OpenAI sends it), the usage."""
    out = [StreamChunk(text) for text in texts]
    for index, (call_id, name, fragments) in enumerate(calls):
        out.append(StreamChunk(tool_calls=(ToolCallDelta(index, call_id, name, fragments[0]),)))
        out.extend(
            StreamChunk(tool_calls=(ToolCallDelta(index, arguments=f),)) for f in fragments[1:]
        )
    out.append(StreamChunk(finish_reason=finish, raw_finish_reason=finish))
    out.append(StreamChunk(usage=usage))
    return out


def sse_events(data: bytes) -> Iterator[tuple[str, str]]:
    """(event name, data) of each server-sent event, CRLF or LF framed."""
    text = data.decode().replace("\r\n", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, lines = "", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                lines.append(line[6:])
        yield event, "\n".join(lines)


Reply = Callable[[Decoded], Awaitable[httpx2.Response]]


class Served:
    """A mock transport that decodes each SDK request and answers with ``reply``;
    ``requests`` keeps what was decoded."""

    def __init__(self) -> None:
        self.requests: list[Decoded] = []
        self.bodies: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.result: ChatResult = result()
        self.stream: list[StreamChunk] = chunks()
        self.error: BaseException | None = None
        self.failing = False

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        self.bodies.append(json.loads(body))
        self.urls.append(str(request.url))
        decoded = decode_request(str(request.url), body)
        self.requests.append(decoded)
        if self.failing:
            reply = encode_error(decoded.wire, self.error)
            return httpx2.Response(reply.status, headers=reply.headers, content=reply.body)
        if decoded.stream:
            data = b"".join([b async for b in encode_stream(decoded, self.stream, model=SERVED)])
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)
        reply = encode_result(decoded, self.result, model=SERVED)
        return httpx2.Response(reply.status, headers=reply.headers, content=reply.body)

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key="sk-test", http_client=self.http(), max_retries=0)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key="sk-test", http_client=self.http(), max_retries=0)

    def genai(self) -> genai.Client:
        options = genai_types.HttpOptions(httpx_async_client=self.http())
        return genai.Client(api_key="test-key", http_options=options)


def test_sse_events_reads_both_framings() -> None:
    data = b'event: a\ndata: {"x":1}\n\ndata: [DONE]\n\ndata: {"y": 2}\r\n\r\n'
    assert list(sse_events(data)) == [("a", '{"x":1}'), ("", "[DONE]"), ("", '{"y": 2}')]
