"""A translated stream reaches the SDK in as few pieces as the upstream's reads allow.

The transport hands the SDK the first chunk of a translated stream at once, on its own;
every chunk the serving provider's reader holds already after a later read goes with
that read's, in one piece, rather than one per pull of the SDK. What the SDK gets is the
same: every text delta in order, the finish, and an error event after the text before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from failover import AuthProfile, FailoverManager, ResilientTransport

ROOT = "http://127.0.0.1:9"
TEXTS = [f"tok{i} " for i in range(8)]


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()


def _anthropic_stream(*, error: bool) -> bytes:
    events = [
        _event("message_start", {"message": {"usage": {"input_tokens": 3, "output_tokens": 0}}}),
        _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    for text in TEXTS:
        delta = {"type": "text_delta", "text": text}
        events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
    if error:
        events.append(_event("error", {"error": {"type": "api_error", "message": "broke"}}))
    else:
        events.append(_event("content_block_stop", {"index": 0}))
        usage = {"output_tokens": len(TEXTS)}
        events.append(
            _event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": usage})
        )
        events.append(_event("message_stop", {}))
    return b"".join(events)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, data: bytes, pieces: int) -> None:
        size = -(-len(data) // pieces)
        self._pieces = [data[i : i + size] for i in range(0, len(data), size)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


class _Anthropic(httpx2.AsyncBaseTransport):
    """Anthropic's stream, in ``pieces`` reads."""

    def __init__(self, *, error: bool, pieces: int) -> None:
        self.data, self.pieces = _anthropic_stream(error=error), pieces
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith("/v1/messages")
        self.keys.append(request.headers.get("x-api-key", ""))
        headers = [("content-type", "text/event-stream")]
        return httpx2.Response(200, headers=headers, stream=_Body(self.data, self.pieces))


class _Counted(httpx2.AsyncBaseTransport):
    """Counts the pieces of each reply's body the SDK reads."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner, self.pieces = inner, 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        stream = response.stream
        counter = self

        class Counting(httpx2.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for piece in stream:  # type: ignore[union-attr]
                    counter.pieces += 1
                    yield piece

            async def aclose(self) -> None:
                await stream.aclose()  # type: ignore[union-attr]

        return httpx2.Response(response.status_code, headers=response.headers, stream=Counting())


def _sdk(upstream: _Anthropic) -> tuple[openai.AsyncOpenAI, _Counted, FailoverManager]:
    manager = FailoverManager(
        profiles=[
            AuthProfile("oa", "openai", "sk-resting-000000000001", base_url=f"{ROOT}/v1"),
            AuthProfile("an", "anthropic", "sk-ant-pieces-0000000002", base_url=ROOT),
        ]
    )
    manager.mark_failure("oa", "429", is_rate_limit=True, retry_after=3600)
    transport = ResilientTransport(
        manager, provider="openai", fallback_models=["anthropic/claude-haiku-4-5"], inner=upstream
    )
    counted = _Counted(transport)
    http = httpx2.AsyncClient(transport=counted)
    sdk = openai.AsyncOpenAI(
        api_key="sk-sdk-0000000000003", base_url=f"{ROOT}/v1", max_retries=0, http_client=http
    )
    return sdk, counted, manager


@pytest.mark.parametrize("reads", [1, 3])
async def test_chunks_read_together_reach_the_sdk_together(reads: int) -> None:
    upstream = _Anthropic(error=False, pieces=reads)
    sdk, counted, _ = _sdk(upstream)
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    texts, finishes = [], []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                texts.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    await sdk.close()
    assert texts == TEXTS and finishes == ["stop"]
    # the first chunk alone, then a piece per upstream read at most, and the end
    assert counted.pieces <= reads + 2 < len(TEXTS)


async def test_an_error_among_chunks_read_together_comes_after_the_text_before_it() -> None:
    upstream = _Anthropic(error=True, pieces=1)
    sdk, _, manager = _sdk(upstream)
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    texts: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            texts.extend(c.delta.content for c in chunk.choices if c.delta.content)

    with pytest.raises(openai.APIError, match="broke"):
        await read()
    await sdk.close()
    assert texts == TEXTS
    assert upstream.keys == ["sk-ant-pieces-0000000002"]
    assert manager.get_profile("an").failure_count == 1  # the break counts against its key


@pytest.mark.parametrize("model", ["gpt-4o-mini", 'we"ird\\name\u00e9\n\u2028'])
def test_each_chunk_carries_its_head_as_json_whatever_the_models_name(model: str) -> None:
    from failover.gateway.encode_chat import ChatStream
    from failover.providers.base import StreamChunk

    encoder = ChatStream(model=model)
    for line in encoder.feed(StreamChunk("hi")).decode().split("\n\n")[:-1]:
        chunk = json.loads(line.removeprefix("data: "))
        assert chunk["model"] == model and chunk["object"] == "chat.completion.chunk"
        assert chunk["id"].startswith("chatcmpl-") and isinstance(chunk["created"], int)
        assert (chunk["service_tier"], chunk["system_fingerprint"]) == ("default", None)
