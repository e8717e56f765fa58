"""A stream's release runs whole in one task, whatever it enters while it waits.

A sender's release may bound itself (``asyncio.timeout``) or shield itself from
cancellation (an anyio scope, as httpcore does): both belong to the task that entered them.
A release is run in place only when its sender says leaving waits for nothing
(``exits_at_once``); every other one runs whole in a task of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import anyio
import pytest

from failover import AuthProfile, ResilientClient
from failover.providers.base import HttpRequest

URL = "http://127.0.0.1:9/v1"
MESSAGES = [{"role": "user", "content": "hi"}]
BODY = "".join(
    f"data: {item}\n\n"
    for item in (
        json.dumps({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json.dumps(
            {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}
        ),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
        "[DONE]",
    )
)


class _Exchange:
    """A stream whose release (leaving) enters ``release``'s context across an await."""

    def __init__(self, sender: _Sender) -> None:
        self._sender = sender
        self.status_code = 200
        self.headers: Mapping[str, str] = {"content-type": "text/event-stream"}

    async def __aenter__(self) -> _Exchange:
        return self

    async def aread(self) -> bytes:
        return BODY.encode()

    async def aiter_text(self) -> AsyncIterator[str]:
        yield BODY

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in BODY.splitlines():
            yield line

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._sender.release()
        self._sender.released += 1


class _Sender:
    def __init__(self, how: str) -> None:
        self.how = how
        self.released = 0
        self.timed_out = 0

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> Any:
        return _Exchange(self)

    async def release(self) -> None:
        if self.how == "its own timeout":  # a graceful close bounded by a timer of its own
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
            except TimeoutError:
                self.timed_out += 1
        else:  # shielded from cancellation, as httpcore's release is
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        return None


def _client(sender: Any) -> ResilientClient:
    profile = AuthProfile("k0", "openai", "sk-release-key-0001", base_url=URL)
    return ResilientClient(["openai/gpt-4o-mini"], [profile], sender=sender)


@pytest.mark.skipif(not hasattr(asyncio, "timeout"), reason="asyncio.timeout: Python 3.11+")
@pytest.mark.parametrize("how", ["its own timeout", "shielded"])
async def test_a_release_that_waits_inside_what_it_entered_finishes_and_the_stream_ends_well(
    how: str,
) -> None:
    sender = _Sender(how)
    client = _client(sender)
    async with client.stream(MESSAGES) as stream:
        texts = [chunk.text async for chunk in stream]
    assert "".join(texts) == "Hello"
    assert sender.released == 1
    assert sender.timed_out == (1 if how == "its own timeout" else 0)
    await client.aclose()
