"""The transport's stream guard reads only the events that can tell it something.

On OpenAI Chat, Anthropic Messages and OpenAI Responses streams, the guard hands its
endpoint's reader only the events whose bytes could end the stream, fail it or name its
response; the rest (text and tool-call deltas) pass unread. Its verdict must be the one
of reading every line: these tests feed the same streams, cut at every kind of place,
to the guard with and without that shortcut and compare what each passes on and decides.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

from failover import AuthProfile, ResilientTransport
from failover._secrets import KeyScrubber
from failover.errors import MalformedResponseError
from failover.transport_guard import _TerminatorWatch, endpoint_of
from tests.conftest import BOTH_BACKENDS

KEY = "sk-proj-watch-key-000000000001"


def _data(payload: Any) -> str:
    return "data: " + (payload if isinstance(payload, str) else json.dumps(payload))


def _chat(text: str, **choice: Any) -> str:
    return _data({"choices": [{"index": 0, "delta": {"content": text}, **choice}]})


_CHAT_TEXT = [_chat(f"tok{i} ") for i in range(6)]
_CHAT_STREAMS: dict[str, list[str]] = {
    "whole": [*_CHAT_TEXT, _chat("", finish_reason="stop"), "data: [DONE]"],
    "cut": _CHAT_TEXT,
    "content filter, no DONE": [*_CHAT_TEXT, _chat("", finish_reason="content_filter")],
    "refusal": [_data({"choices": [{"delta": {"refusal": "no"}}]})],
    "error event": [*_CHAT_TEXT, _data({"error": {"message": f"bad key {KEY}"}})],
    "escaped error": [_data('{"choices": [], "\\u0065rror": {"message": "x"}}')],
    "DONE after a data line of its event": [_CHAT_TEXT[0] + "\ndata: [DONE]"],
    "DONE in an event of its own": [_CHAT_TEXT[0] + "\n\ndata: [DONE]"],
    "comments and ids": [": keepalive", "id: 7\n" + _CHAT_TEXT[0], "data: [DONE]"],
    "text that says error": [_chat("an error, a refusal"), "data: [DONE]"],
    "text that says it in capitals": [_chat("AN ERROR, A Refusal"), "data: [DONE]"],
    # OpenAI's own opening chunk carries "refusal": null (nothing to read), a later one may
    # carry a refusal indeed, written with or without spaces
    "opening with a null refusal": [
        _data({"choices": [{"index": 0, "delta": {"role": "assistant", "refusal": None}}]}),
        *_CHAT_TEXT,
        "data: [DONE]",
    ],
    "null refusal, then a refusal": [
        'data: {"choices":[{"index":0,"delta":{"role":"assistant","refusal":null}}]}',
        'data: {"choices":[{"index":0,"delta":{"refusal": "I cannot help"}}]}',
    ],
    "a null refusal, cut": [
        'data: {"choices":[{"index":0,"delta":{"role":"assistant","refusal" : null}}]}',
        *_CHAT_TEXT,
    ],
}


def _anthropic(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\n" + _data({"type": name, **payload})


_ANTHROPIC_TEXT = [
    _anthropic("message_start", {"message": {"usage": {"input_tokens": 3}}}),
    _anthropic("content_block_start", {"index": 0, "content_block": {"type": "text"}}),
    *(
        _anthropic("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
        for t in ("a", "b", "c")
    ),
    _anthropic("ping", {}),
]
_STOP = _anthropic("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {}})
_ANTHROPIC_STREAMS: dict[str, list[str]] = {
    "whole": [*_ANTHROPIC_TEXT, _STOP, _anthropic("message_stop", {})],
    "cut": _ANTHROPIC_TEXT,
    "refusal": [
        *_ANTHROPIC_TEXT,
        _anthropic("message_delta", {"delta": {"stop_reason": "refusal"}}),
    ],
    "error event": [*_ANTHROPIC_TEXT, _anthropic("error", {"error": {"type": "overloaded_error"}})],
}

_RESPONSES_STREAMS: dict[str, list[str]] = {
    "whole": [
        _data({"type": "response.created", "response": {"id": "resp_1"}}),
        *(_data({"type": "response.output_text.delta", "delta": t}) for t in "abc"),
        _data({"type": "response.completed", "response": {"id": "resp_1"}}),
    ],
    "cut": [
        _data({"type": "response.created", "response": {"id": "resp_2"}}),
        *(_data({"type": "response.output_text.delta", "delta": t}) for t in "abc"),
    ],
    "named end": ["event: response.output_text.delta\n" + _data({"delta": "x"}), "event: error"],
}

CASES = [
    *(("/v1/chat/completions", name, events) for name, events in _CHAT_STREAMS.items()),
    *(("/v1/messages", name, events) for name, events in _ANTHROPIC_STREAMS.items()),
    *(("/v1/responses", name, events) for name, events in _RESPONSES_STREAMS.items()),
]


def _body(events: list[str], newline: str) -> bytes:
    return "".join(event.replace("\n", newline) + newline * 2 for event in events).encode()


def _cuts(body: bytes, rng: random.Random) -> list[list[bytes]]:
    """The body whole, byte by byte, line by line, and cut at random places."""
    cuttings = [[body], [body[i : i + 1] for i in range(len(body))]]
    cuttings.append([line + b"\n" for line in body.split(b"\n")])
    for _ in range(20):
        points = sorted(rng.sample(range(1, len(body)), min(4, len(body) - 1)))
        cuttings.append(
            [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
        )
    return cuttings


def _watch(suffix: str, ids: list[str], *, shortcut: bool) -> _TerminatorWatch:
    endpoint = endpoint_of("POST", suffix)
    assert endpoint is not None and endpoint.telling is not None
    reader = endpoint.stream_reader(ids.append)
    assert reader is not None
    telling = endpoint.telling if shortcut else None
    return _TerminatorWatch(reader, lambda: KeyScrubber([KEY]), telling=telling)


def _run(watch: _TerminatorWatch, chunks: list[bytes]) -> tuple[bytes, bool]:
    passed = b"".join(watch.feed(chunk) for chunk in chunks) + watch.rest()
    return passed, watch.complete


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("suffix", "name", "events"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_the_guard_decides_as_if_it_read_every_line(
    suffix: str, name: str, events: list[str], newline: str
) -> None:
    body = _body(events, newline)
    for chunks in _cuts(body, random.Random(name)):
        full_ids: list[str] = []
        quick_ids: list[str] = []
        full = _run(_watch(suffix, full_ids, shortcut=False), chunks)
        quick = _run(_watch(suffix, quick_ids, shortcut=True), chunks)
        assert quick == full
        assert quick_ids == full_ids
        assert KEY not in quick[0].decode()


@pytest.mark.parametrize(
    ("suffix", "events", "complete"),
    [
        ("/v1/chat/completions", _CHAT_STREAMS["whole"], True),
        ("/v1/chat/completions", _CHAT_STREAMS["cut"], False),
        ("/v1/chat/completions", _CHAT_STREAMS["DONE after a data line of its event"], False),
        ("/v1/chat/completions", _CHAT_STREAMS["content filter, no DONE"], True),
        ("/v1/chat/completions", _CHAT_STREAMS["opening with a null refusal"], True),
        ("/v1/chat/completions", _CHAT_STREAMS["null refusal, then a refusal"], True),
        ("/v1/chat/completions", _CHAT_STREAMS["a null refusal, cut"], False),
        ("/v1/messages", _ANTHROPIC_STREAMS["whole"], True),
        ("/v1/messages", _ANTHROPIC_STREAMS["cut"], False),
        ("/v1/responses", _RESPONSES_STREAMS["whole"], True),
        ("/v1/responses", _RESPONSES_STREAMS["cut"], False),
    ],
)
def test_a_stream_is_complete_only_at_its_terminator_or_a_providers_end(
    suffix: str, events: list[str], complete: bool
) -> None:
    ids: list[str] = []
    watch = _watch(suffix, ids, shortcut=True)
    body = _body(events, "\n")
    assert _run(watch, [body]) == (body, complete)
    if suffix == "/v1/responses":
        assert ids == (["resp_1", "resp_1"] if complete else ["resp_2"])


def test_an_error_event_is_passed_on_with_the_key_scrubbed() -> None:
    watch = _watch("/v1/chat/completions", [], shortcut=True)
    passed, complete = _run(watch, [_body(_CHAT_STREAMS["error event"], "\n")])
    assert complete  # the SDK raises the error itself
    assert KEY not in passed.decode() and b"bad key" in passed


def test_bytes_that_are_not_utf8_fail_the_stream() -> None:
    watch = _watch("/v1/chat/completions", [], shortcut=True)
    with pytest.raises(MalformedResponseError, match="not UTF-8"):
        watch.feed(b'data: {"choices": [{"delta": {"content": "\xff"}}]}\n\n')


# -- a stream read in many pieces, each within the idle timeout --------------------------

anyio_backend = BOTH_BACKENDS


class _Spaced(httpx2.AsyncByteStream):
    """An OpenAI stream whose events come one read each, the fourth ``gap`` seconds after
    the third (the others at once, or as far apart if closer)."""

    def __init__(self, gap: float) -> None:
        self.gap = gap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for number, event in enumerate(_CHAT_STREAMS["whole"]):
            await anyio.sleep(self.gap if number == 3 else min(self.gap, 0.01))
            yield (event + "\n\n").encode()


class _Upstream(httpx2.AsyncBaseTransport):
    def __init__(self, gap: float) -> None:
        self.gap = gap

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = [("content-type", "text/event-stream")]
        return httpx2.Response(200, headers=headers, stream=_Spaced(self.gap))


@pytest.mark.anyio
@pytest.mark.parametrize(("gap", "idle", "passes"), [(0.05, 2.0, True), (0.4, 0.15, False)])
async def test_each_read_is_bounded_by_the_idle_time_left_and_no_less(
    gap: float, idle: float, passes: bool
) -> None:
    profiles = [AuthProfile("a", "openai", KEY, base_url="http://127.0.0.1:9/v1")]
    transport = ResilientTransport(
        profiles, provider="openai", inner=_Upstream(gap), stream_idle_timeout=idle
    )
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    async with httpx2.AsyncClient(transport=transport) as client:
        request = client.build_request("POST", "http://127.0.0.1:9/v1/chat/completions", json=body)
        response = await client.send(request, stream=True)
        if passes:  # every read within the time left: no timeout
            read = b"".join([piece async for piece in response.aiter_bytes()])
            assert read == _body(_CHAT_STREAMS["whole"], "\n")
        else:  # the fourth read, past it
            with pytest.raises(httpx2.ReadTimeout):
                await response.aread()
        await response.aclose()
    await transport.aclose()
