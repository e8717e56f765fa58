"""A stream ends at its terminator: what follows it is drained, never read as the answer.

The review's case: Gemini's last chunk carries text and ``finishReason`` at once; the reader
must stop there, as it did before it read lines itself, whatever comes after it (more text,
garbage, an error event).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from failover import providers
from failover.chat_calls import ChunkReader


class _Reply:
    """An event stream's reply, as the senders hand it to the reader."""

    status_code = 200
    headers = {"content-type": "text/event-stream"}  # noqa: RUF012 - read only

    def __init__(self, body: str) -> None:
        self._body = body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        yield self._body.encode()

    async def aiter_text(self) -> AsyncIterator[str]:
        yield self._body

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self._body.splitlines():
            yield line

    async def aread(self) -> bytes:
        return self._body.encode()


def _gemini(text: str, *, last: bool = False) -> str:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": [{"text": text}]}}
    payload: dict[str, object] = {"candidates": [candidate]}
    if last:
        candidate["finishReason"] = "STOP"
        payload["usageMetadata"] = {"promptTokenCount": 3, "candidatesTokenCount": 2}
    return f"data: {json.dumps(payload)}\r\n\r\n"


AFTER_THE_END = {
    "more text": _gemini("EXTRA"),
    "garbage": "data: {not json\r\n\r\n",
    "an error event": 'data: {"error": {"code": 500, "message": "late"}}\r\n\r\n',
}


@pytest.mark.anyio
@pytest.mark.parametrize("after", list(AFTER_THE_END), ids=list(AFTER_THE_END))
async def test_what_follows_the_terminator_is_never_read_as_the_answer(after: str) -> None:
    body = _gemini("A") + _gemini("B", last=True) + AFTER_THE_END[after]
    reader = ChunkReader(providers.get_adapter("gemini"), _Reply(body))
    chunks = []
    while (chunk := await reader.next()) is not None:
        chunks.append((chunk.text, chunk.finish_reason))
    assert chunks == [("A", None), ("B", None), ("", "stop")]
