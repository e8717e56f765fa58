"""A minimal, fast HTTP/1.1 upstream for benchmarks (raw asyncio, keep-alive).

Answers POST .../chat/completions with a canned OpenAI reply, or an SSE stream of 20
chunks when the body asks for ``"stream": true``: lean ones (``REPLY``, ``STREAM``: a
chunk carries ``choices`` alone), or, under the path prefix ``/full`` (a base URL
``http://127.0.0.1:PORT/full/v1``), OpenAI's documented shapes in full (``FULL_REPLY``,
``FULL_STREAM``: every field the API sends and the openai SDK's types read, with the headers
its API reference documents, ``FULL_HEADERS``); POST
.../messages (Anthropic's shape, key in ``x-api-key``) with a canned Anthropic message, or
its named-event stream of 20 text deltas; a key containing ``limited`` gets a 429
with ``retry-after: 60``, one containing ``overloaded`` a 503; a key containing ``slow`` gets
every tenth of its replies after ``SLOW_SECONDS``. Counts requests per key at
``GET /count?key=...``.

    python benchmarks/upstream.py PORT

or, from another benchmark, ``with running() as base_url: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

REPLY = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
).encode()
LIMITED = b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}'
OVERLOADED = b'{"error": {"message": "The server is overloaded", "type": "server_error"}}'
CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "tok "}}]}\n\n'
STREAM = (
    CHUNK * 20 + b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}'
    b'\n\ndata: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 20}}\n\n'
    b"data: [DONE]\n\n"
)
FULL = "/full"
"""The path prefix under which the OpenAI replies are ``FULL_REPLY`` and ``FULL_STREAM``."""
_ID, _CREATED, _MODEL = (
    "chatcmpl-Bx9fK2mQ7vLw3RtYp8sNc4HdE1aZo",
    1765100000,
    "gpt-4o-mini-2024-07-18",
)
_TIER = {"service_tier": "default", "system_fingerprint": "fp_560af6e559"}
FULL_HEADERS = (
    b"openai-organization: user-bench0123456789\r\n"
    b"openai-processing-ms: 412\r\n"
    b"openai-project: proj_bench0123456789abcdef\r\n"
    b"openai-version: 2020-10-01\r\n"
    b"x-ratelimit-limit-requests: 10000\r\n"
    b"x-ratelimit-limit-tokens: 200000\r\n"
    b"x-ratelimit-remaining-requests: 9999\r\n"
    b"x-ratelimit-remaining-tokens: 199990\r\n"
    b"x-ratelimit-reset-requests: 8.64s\r\n"
    b"x-ratelimit-reset-tokens: 3ms\r\n"
    b"x-request-id: req_0123456789abcdef0123456789abcdef\r\n"
)
"""The headers OpenAI's API reference documents on every reply (request id, organization,
project, processing time, version, rate limits), sent with ``FULL_REPLY`` and
``FULL_STREAM`` (the CDN's own, such as cookies, left out)."""
FULL_REPLY = json.dumps(
    {
        "id": _ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": _MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "pong",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 1,
            "total_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        **_TIER,
    },
    separators=(",", ":"),
).encode()
"""A ``chat.completion`` as OpenAI's API sends it (openai-python's ``ChatCompletion``)."""


def _chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    head = {"id": _ID, "object": "chat.completion.chunk", "created": _CREATED, "model": _MODEL}
    chunk = {**head, **_TIER, "choices": [choice]}
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


FULL_STREAM = (
    _chunk({"role": "assistant", "content": "", "refusal": None})
    + _chunk({"content": "tok "}) * 20
    + _chunk({}, "stop")
    + b"data: [DONE]\n\n"
)
"""20 text deltas as OpenAI's API streams them to a request without ``stream_options``
(openai-python's ``ChatCompletionChunk``): the role first, every chunk with the reply's id,
created, model, service_tier, system_fingerprint and its choice's logprobs and
finish_reason, the finish reason in a chunk of its own, then ``[DONE]``. (The API may add an
``obfuscation`` field, which the gateway does not send: left out, as the SDK would spend a
little more on it.)"""
ANTHROPIC_REPLY = json.dumps(
    {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "pong"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
).encode()


def _event(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


TEXT_DELTA = {"type": "text_delta", "text": "tok "}
ANTHROPIC_STREAM = (
    _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_x",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-haiku-4-5",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
    )
    + _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    + _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": TEXT_DELTA},
    )
    * 20
    + _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    + _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 20},
        },
    )
    + _event("message_stop", {"type": "message_stop"})
)
SLOW_SECONDS = 2.0
counts: Counter[str] = Counter()


def response(
    status: str, body: bytes, content_type: bytes = b"application/json", extra: bytes = b""
) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\n".encode()
        + b"content-type: "
        + content_type
        + b"\r\n"
        + extra
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            self.answer(lines[0].decode(), headers, body)

    def answer(self, request_line: str, headers: dict[bytes, bytes], body: bytes) -> None:
        method, target, _ = request_line.split(" ", 2)
        if method == "GET" and target.startswith("/count"):
            key = target.partition("key=")[2]
            self.transport.write(response("200 OK", str(counts[key]).encode()))  # type: ignore[attr-defined]
            return
        key = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        key = key or headers.get(b"x-api-key", b"").decode()
        counts[key] += 1
        streamed = b'"stream": true' in body or b'"stream":true' in body
        if "limited" in key:
            out = response("429 Too Many Requests", LIMITED, extra=b"retry-after: 60\r\n")
        elif "overloaded" in key:
            out = response("503 Service Unavailable", OVERLOADED)
        elif target.endswith("/messages"):  # Anthropic's Messages API
            if streamed:
                out = response("200 OK", ANTHROPIC_STREAM, b"text/event-stream")
            else:
                out = response("200 OK", ANTHROPIC_REPLY)
        elif target.startswith(FULL):  # OpenAI's replies and headers in full
            data, kind = (FULL_STREAM, b"text/event-stream") if streamed else (FULL_REPLY, None)
            out = response("200 OK", data, kind or b"application/json", FULL_HEADERS)
        elif streamed:
            out = response("200 OK", STREAM, b"text/event-stream")
        else:
            out = response("200 OK", REPLY)
        if "slow" in key and counts[key] % 10 == 0:
            asyncio.get_running_loop().call_later(SLOW_SECONDS, self.late_write, out)
            return
        self.transport.write(out)  # type: ignore[attr-defined]

    def late_write(self, out: bytes) -> None:
        if not self.transport.is_closing():  # a hedged caller may have given up on it
            self.transport.write(out)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def running() -> Iterator[str]:
    """This upstream in a process of its own on a free loopback port; yields its base URL
    (``http://127.0.0.1:PORT/v1``) once it serves, and stops it on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, __file__, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmarks/upstream.py did not start")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
