"""A lone surrogate in a translated reply's text is written as JSON's ASCII escape.

An upstream may send the JSON escape ``"\\ud800"`` in a text field; ``json.loads`` turns it
into a lone surrogate, which UTF-8 cannot hold. Every translated reply and stream encoder
writes it as the escape the upstream sent (what ``json.dumps`` with ``ensure_ascii`` writes
for it), so the SDK reads the same text, instead of raising ``UnicodeEncodeError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from starlette.requests import Request
from starlette.responses import Response

from failover import AuthProfile, ResilientTransport
from failover.catalog import TokenUsage
from failover.errors import ServerError
from failover.gateway import Wire, decode_request, encode_result, stream_encoder
from failover.providers.base import ChatResult, StreamChunk, ToolCall, ToolCallDelta
from tests.conftest import BOTH_BACKENDS
from tests.test_gateway_feed_many import REQUESTS
from tests.test_transport_guards import Upstream, running_upstream

anyio_backend = BOTH_BACKENDS
WIRES: list[Wire] = ["openai", "responses", "anthropic", "gemini"]
LONE = "a\ud800b"  # what json.loads makes of the upstream's "a\ud800b"
HIGH_THEN_TEXT = "\udbff!"  # a high surrogate with no low one after it
ESCAPE = b"\\ud800"


def _payloads(body: bytes) -> Iterator[Any]:
    """The JSON values of a reply's body, or of each ``data:`` line of a stream's."""
    text = body.decode("utf-8")  # strict: the bytes are UTF-8
    if not text.startswith(("data:", "event:")):
        yield json.loads(text)
        return
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line.removeprefix("data: "))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _all_strings(body: bytes) -> list[str]:
    return [s for payload in _payloads(body) for s in _strings(payload)]


def _decoded(wire: Wire, *, stream: bool) -> Any:
    url, payload = REQUESTS[wire]
    if wire == "gemini" and not stream:
        url = "/v1beta/models/m:generateContent"
    return decode_request(url, {**payload, "stream": stream} if wire != "gemini" else payload)


@pytest.mark.parametrize("wire", WIRES)
def test_a_reply_with_a_lone_surrogate_is_written_with_its_escape(wire: Wire) -> None:
    call = ToolCall("call_1", "look", '{"q": "x\ud800"}')
    result = ChatResult(LONE, "tool_calls", TokenUsage(input_tokens=1), None, (call,))
    body = encode_result(_decoded(wire, stream=False), result, model="m\udc00").body
    assert ESCAPE in body
    strings = _all_strings(body)
    assert LONE in strings
    assert "m\udc00" in strings
    assert any("x\ud800" in s for s in strings)  # in the arguments, however the wire holds them


@pytest.mark.parametrize("wire", WIRES)
def test_a_stream_with_lone_surrogates_is_written_with_their_escapes(wire: Wire) -> None:
    encoder = stream_encoder(_decoded(wire, stream=True), model="m\udc00")
    texts = [LONE, "plain", HIGH_THEN_TEXT, LONE]
    out = [
        encoder.feed(StreamChunk(texts[0])),  # the opening, with the first text
        encoder.feed(StreamChunk(texts[1])),  # a text delta alone
        encoder.feed(StreamChunk(texts[2])),
        encoder.feed_many([StreamChunk(texts[3]), StreamChunk("c")]),  # read together
        encoder.feed(StreamChunk(tool_calls=(ToolCallDelta(0, "call_1", "look", '{"q":"\ud800'),))),
        encoder.feed(StreamChunk(tool_calls=(ToolCallDelta(0, arguments='"}'),))),
        encoder.feed(StreamChunk(finish_reason="tool_calls")),
        encoder.close(),
    ]
    body = b"".join(out)
    assert ESCAPE in body and b"\\udbff" in body
    strings = _all_strings(body)
    for text in (*texts, "c", "m\udc00"):  # the model's name too
        assert text in strings
    # the call's arguments, as text or (Gemini) an object
    assert [s for s in strings if "\ud800" in s and s not in texts]


@pytest.mark.parametrize("wire", WIRES)
def test_a_broken_stream_with_a_lone_surrogate_in_its_error_is_written(wire: Wire) -> None:
    encoder = stream_encoder(_decoded(wire, stream=True), model="m")
    encoder.feed(StreamChunk("x"))
    body = encoder.fail(ServerError("went \ud800 wrong", status=500))
    assert any("\ud800" in s for s in _all_strings(body))


# -- end to end: the openai SDK, answered by Anthropic --------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_upstream() as served:
        yield served


_MESSAGE = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",'
    b'"content":[{"type":"text","text":"a\\ud800b"}],"stop_reason":"end_turn",'
    b'"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}'
)
_EVENTS = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":0}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\\ud800b"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\\udbff!"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":2}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)


async def test_the_openai_sdk_reads_the_lone_surrogate_anthropic_sent(upstream: Upstream) -> None:
    async def answer(request: Request) -> Response:
        if json.loads(await request.body()).get("stream"):
            return Response(_EVENTS, media_type="text/event-stream")
        return Response(_MESSAGE, media_type="application/json")

    root = upstream.mount(answer)
    profiles = [
        AuthProfile("openai", "openai", "sk-proj-surrogate-key-01", base_url="http://127.0.0.1:9"),
        AuthProfile("anthropic", "anthropic", "sk-ant-surrogate-key-02", base_url=root),
    ]
    transport = ResilientTransport(
        profiles, provider="openai", fallback_models=["anthropic/claude-haiku-4-5"]
    )
    http = httpx2.AsyncClient(transport=transport)
    async with openai.AsyncOpenAI(
        api_key="sdk", base_url="http://127.0.0.1:9/v1", max_retries=0, http_client=http
    ) as sdk:
        messages: Any = [{"role": "user", "content": "Hi"}]
        reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        texts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert reply.choices[0].message.content == LONE
    assert "".join(texts) == LONE + HIGH_THEN_TEXT
