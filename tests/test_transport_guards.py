"""ResilientTransport guards every reply it hands an SDK.

Each test runs the real openai SDK (or a bare httpx/httpx2 client where the wire is not
OpenAI's) through the transport against a real HTTP server on 127.0.0.1 (``upstream``,
below) that answers the way a test scripts it: compressed streams, OpenAI Responses
streams, wrongly shaped 2xx bodies, headers that echo the key, servers that hang or drip.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import json
import logging
import random
import re
import socket
import string
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from failover import AuthProfile, ConfigError, ResilientTransport
from failover._secrets import KeyScrubber
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

KEY_A = "sk-proj-guards-key-a-0000000001"
KEY_B = "sk-proj-guards-key-b-0000000002"
KEYS = (KEY_A, KEY_B)
HI: Any = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"

Handler = Callable[[Request], Awaitable[Response]]


# -- the upstream: a real HTTP server on 127.0.0.1 ------------------------------------------


class Upstream:
    """A starlette server in a thread of its own; each test mounts its handler under a
    root of its own, and sees which key each request carried."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.handlers: dict[str, Handler] = {}
        self.keys: dict[str, list[str]] = {}

    def mount(self, handler: Handler) -> str:
        """Serve ``handler`` under a new root; return that root's URL."""
        tag = uuid.uuid4().hex[:12]
        self.handlers[tag], self.keys[tag] = handler, []
        return f"{self.url}/{tag}"

    def keys_seen(self, root: str) -> list[str]:
        """The key each request to ``root`` carried, in order."""
        return self.keys[root.rsplit("/", 1)[1]]

    async def dispatch(self, request: Request) -> Response:
        tag = request.path_params["tag"]
        auth = request.headers.get("authorization", "") or request.headers.get("x-goog-api-key", "")
        self.keys[tag].append(auth.removeprefix("Bearer "))
        return await self.handlers[tag](request)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_upstream() as served:
        yield served


@contextlib.contextmanager
def running_upstream() -> Iterator[Upstream]:
    """An :class:`Upstream` serving on 127.0.0.1 until the block ends."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    served = Upstream(f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = Starlette(routes=[Route("/{tag}/{path:path}", served.dispatch, methods=["GET", "POST"])])
    config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def sse(*events: dict[str, Any] | str, named: bool = False) -> bytes:
    """Server-sent events: each dict as ``data: <json>`` (after ``event: <type>`` when
    ``named``), each str as a ``data:`` line of its own."""
    out = []
    for event in events:
        if isinstance(event, str):
            out.append(f"data: {event}\n\n")
            continue
        head = f"event: {event['type']}\n" if named else ""
        out.append(f"{head}data: {json.dumps(event)}\n\n")
    return "".join(out).encode()


def chat_chunk(text: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


def chat_reply(text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def streamed(
    body: bytes, *, encoding: str | None = None, media: str = "text/event-stream"
) -> Response:
    headers = {"content-encoding": encoding} if encoding else {}
    return Response(body, media_type=media, headers=headers)


async def until_disconnected(request: Request, most: float = 3.0) -> None:
    """Wait until the client goes away (at most ``most`` seconds)."""
    for _ in range(int(most / 0.02)):
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.02)


def profiles(root: str, provider: str = "openai", suffix: str = "/v1") -> list[AuthProfile]:
    return [
        AuthProfile(f"{provider}-a", provider, KEY_A, base_url=root + suffix),
        AuthProfile(f"{provider}-b", provider, KEY_B, base_url=root + suffix),
    ]


def openai_sdk(root: str, transport: ResilientTransport) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sdk-key-is-replaced",
        base_url=root + "/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )


def failures(transport: ResilientTransport) -> dict[str, str]:
    """The last error of each profile that has failed, by profile name."""
    return {
        p["name"]: p["last_error"] for p in transport.status()["profiles"] if p["failure_count"]
    }


def _base64_decodings(text: str) -> Iterator[str]:
    """What each base64-looking run of ``text`` decodes to, from every alignment."""
    for run in re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        standard = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            chunk = standard[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            with contextlib.suppress(binascii.Error, ValueError):
                yield base64.b64decode(chunk).decode("latin-1")


def shows_a_key(text: str) -> bool:
    """Whether ``text`` shows 8 characters of a key, as they are or base64-encoded."""
    texts = [text, *_base64_decodings(text)]
    pieces = {key[i : i + 8] for key in KEYS for i in range(len(key) - 7)}
    return any(piece in candidate for candidate in texts for piece in pieces)


# -- 1. a compressed stream is guarded like any other -----------------------------------------

_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "none": lambda body: body,  # a bogus value, identity bytes
}


@pytest.mark.parametrize("encoding", list(_ENCODERS))
async def test_a_compressed_stream_cut_before_its_terminator_raises_in_the_sdk(
    upstream: Upstream, encoding: str
) -> None:
    async def cut(request: Request) -> Response:
        body = sse(chat_chunk("Hello"), chat_chunk(" there"))  # no [DONE]
        return streamed(_ENCODERS[encoding](body), encoding=encoding)

    root = upstream.mount(cut)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APIConnectionError) as caught:
            async for _ in stream:
                pass
    assert "terminator" in str(caught.value.__cause__)
    assert list(failures(transport)) == ["openai-a"]


@pytest.mark.parametrize("encoding", list(_ENCODERS))
def test_a_compressed_stream_cut_before_its_terminator_raises_in_a_sync_sdk(
    upstream: Upstream, encoding: str
) -> None:
    async def cut(request: Request) -> Response:
        body = sse(chat_chunk("Hello"), chat_chunk(" there"))  # no [DONE]
        return streamed(_ENCODERS[encoding](body), encoding=encoding)

    root = upstream.mount(cut)
    transport = ResilientTransport(profiles(root), provider="openai")
    with httpx2.Client(transport=transport) as http:
        sdk = openai.OpenAI(api_key="x", base_url=root + "/v1", max_retries=0, http_client=http)
        stream = sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APIConnectionError) as caught:
            for _ in stream:
                pass
    assert "terminator" in str(caught.value.__cause__)
    assert list(failures(transport)) == ["openai-a"]


@pytest.mark.parametrize("encoding", list(_ENCODERS))
async def test_a_compressed_stream_reaches_the_sdk_whole_and_decoded(
    upstream: Upstream, encoding: str
) -> None:
    async def whole(request: Request) -> Response:
        body = sse(chat_chunk("Hello"), chat_chunk(" there"), "[DONE]")
        return streamed(_ENCODERS[encoding](body), encoding=encoding)

    root = upstream.mount(whole)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Hello there" and not failures(transport)


async def test_an_error_event_in_a_gzip_stream_reaches_the_sdk_scrubbed(upstream: Upstream) -> None:
    async def echoing(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        error = {"error": {"message": f"bad key {key}", "type": "server_error", "code": key}}
        return streamed(gzip.compress(sse(chat_chunk("Hi"), error)), encoding="gzip")

    root = upstream.mount(echoing)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
    error = caught.value
    assert "bad key" in str(error)
    assert not shows_a_key(f"{error} {error.body!r} {error!r}")


async def test_an_encoding_that_cannot_be_decoded_is_never_a_silent_success(
    upstream: Upstream,
) -> None:
    async def unknown(request: Request) -> Response:
        body = gzip.compress(sse(chat_chunk("Hello"), "[DONE]"))
        return streamed(body, encoding="x-proprietary")  # no library decodes it

    root = upstream.mount(unknown)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in stream:
                pass
    assert list(failures(transport)) == ["openai-a"]


# -- 2. each endpoint's stream ends its own way -------------------------------------------------


def _response_event(kind: str, status: str, sequence: int) -> dict[str, Any]:
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": MODEL,
        "status": status,
        "output": [],
    }
    return {"type": kind, "sequence_number": sequence, "response": response}


def _responses_events(ending: str | None) -> bytes:
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello",
        "logprobs": [],
    }
    events = [_response_event("response.created", "in_progress", 0), delta]
    if ending == "response.failed":
        failed = _response_event(ending, "failed", 2)
        failed["response"]["error"] = {"code": "server_error", "message": "the model failed"}
        events.append(failed)
    elif ending is not None:
        events.append(_response_event(ending, ending.removeprefix("response."), 2))
    return sse(*events, named=True)


@pytest.mark.parametrize("ending", ["response.completed", "response.incomplete", "response.failed"])
async def test_a_responses_stream_that_ends_with_its_final_event_passes_through(
    upstream: Upstream, ending: str
) -> None:
    async def responses(request: Request) -> Response:
        return streamed(_responses_events(ending))

    root = upstream.mount(responses)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
        kinds = [event.type async for event in stream]
    assert kinds == ["response.created", "response.output_text.delta", ending]
    assert not failures(transport)  # a healthy model is never rested as malformed


async def test_a_responses_stream_cut_before_its_final_event_raises_and_counts_against_its_key(
    upstream: Upstream,
) -> None:
    async def responses(request: Request) -> Response:
        if len(upstream.keys_seen(root)) == 1:
            return streamed(_responses_events(None))  # no response.completed
        return streamed(_responses_events("response.completed"))

    root = upstream.mount(responses)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
        with pytest.raises(openai.APIConnectionError) as caught:
            async for _ in stream:
                pass
        assert "terminator" in str(caught.value.__cause__)
        assert list(failures(transport)) == ["openai-a"]
        stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    assert upstream.keys_seen(root) == [KEY_A, KEY_B]


async def test_a_stream_of_an_endpoint_the_transport_does_not_know_passes_unguarded(
    upstream: Upstream,
) -> None:
    async def novel(request: Request) -> Response:
        return streamed(b"event: thing\ndata: {}\n\nevent: done\ndata: {}\n\n")

    root = upstream.mount(novel)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with httpx2.AsyncClient(transport=transport) as http:
        reply = await http.post(f"{root}/v1/novel/things", json={"model": MODEL, "stream": True})
    assert reply.status_code == 200 and "event: done" in reply.text
    assert not failures(transport)


_GEMINI_CHUNK = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]}
_GEMINI_LAST = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2},
}
_ANTHROPIC_START = {
    "type": "message_start",
    "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "usage": {}},
}
_OLLAMA_LINE = {"model": "llama3", "message": {"role": "assistant", "content": "Hi"}, "done": False}
_OLLAMA_LAST = {"model": "llama3", "message": {"role": "assistant", "content": ""}, "done": True}

# provider, base URL suffix, request path, whole stream, the same cut before its end
_WIRES = {
    "anthropic": (
        "anthropic",
        "",
        "/v1/messages",
        sse(_ANTHROPIC_START, {"type": "message_stop"}, named=True),
        sse(_ANTHROPIC_START, named=True),
    ),
    "gemini": (
        "gemini",
        "",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        sse(_GEMINI_CHUNK, _GEMINI_LAST),
        sse(_GEMINI_CHUNK),
    ),
    "ollama": (
        "ollama-native",
        "",
        "/api/chat",
        f"{json.dumps(_OLLAMA_LINE)}\n{json.dumps(_OLLAMA_LAST)}\n".encode(),
        f"{json.dumps(_OLLAMA_LINE)}\n".encode(),
    ),
}


@pytest.mark.parametrize("wire", list(_WIRES))
@pytest.mark.parametrize("whole", [True, False], ids=["whole", "cut"])
async def test_each_wire_stream_is_complete_only_at_its_own_terminator(
    upstream: Upstream, wire: str, whole: bool
) -> None:
    provider, suffix, path, body, cut = _WIRES[wire]

    async def stream(request: Request) -> Response:
        return streamed(gzip.compress(body if whole else cut), encoding="gzip")

    root = upstream.mount(stream)
    transport = ResilientTransport(profiles(root, provider, suffix), provider=provider)
    async with httpx2.AsyncClient(transport=transport) as http:
        request = http.build_request(
            "POST", root + suffix + path, json={"model": "m", "stream": True}
        )
        reply = await http.send(request, stream=True)
        try:
            if whole:
                assert (await reply.aread()) == body
            else:
                with pytest.raises(httpx2.RemoteProtocolError, match="terminator"):
                    await reply.aread()
        finally:
            await reply.aclose()
    assert bool(failures(transport)) is not whole


# -- 3. a 2xx reply of the wrong shape is a failure of that attempt -----------------------------

_BAD_REPLIES = {
    "a list": (b"[]", "application/json"),
    "null": (b"null", "application/json"),
    "an empty object": (b"{}", "application/json"),
    "an html page": (b"<html>Sign in to the proxy</html>", "text/html"),
}


@pytest.mark.parametrize("reply", list(_BAD_REPLIES))
async def test_a_2xx_reply_of_the_wrong_shape_fails_over_before_the_sdk_sees_it(
    upstream: Upstream, reply: str
) -> None:
    async def answer(request: Request) -> Response:
        if request.headers["authorization"] == f"Bearer {KEY_A}":
            body, media = _BAD_REPLIES[reply]
            return Response(body, media_type=media)
        return JSONResponse(chat_reply("from b"))

    root = upstream.mount(answer)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with openai_sdk(root, transport) as sdk:
        completion = await sdk.chat.completions.create(model=MODEL, messages=HI)
    assert completion.choices[0].message.content == "from b"
    assert upstream.keys_seen(root) == [KEY_A, KEY_B]
    assert list(failures(transport)) == ["openai-a"]


async def test_a_json_reply_of_an_endpoint_the_transport_does_not_know_passes_as_it_is(
    upstream: Upstream,
) -> None:
    async def answer(request: Request) -> Response:
        return JSONResponse([])

    root = upstream.mount(answer)
    transport = ResilientTransport(profiles(root), provider="openai")
    async with httpx2.AsyncClient(transport=transport) as http:
        reply = await http.post(f"{root}/v1/novel/things", json={"model": MODEL})
    assert reply.json() == [] and not failures(transport)


@pytest.mark.parametrize("library", [httpx, httpx2])
async def test_a_checked_reply_parses_as_its_body_each_time_it_is_asked(
    upstream: Upstream, library: Any
) -> None:
    # the guard parsed the body to check its shape and hands that value to the first json()
    # (the SDK's): each call still gets a value of its own, and arguments are honoured
    async def answer(request: Request) -> Response:
        return JSONResponse({**chat_reply("Hi"), "score": 1.5})

    root = upstream.mount(answer)
    transport = ResilientTransport(profiles(root)[:1], provider="openai")
    async with library.AsyncClient(transport=transport) as http:
        reply = await http.post(f"{root}/v1/chat/completions", json={"model": MODEL})
    body = json.loads(reply.content)
    first = reply.json()
    assert first == body and first["choices"][0]["message"]["content"] == "Hi"
    first["choices"].clear()  # the caller's own value: the next call never sees this
    assert reply.json() == body
    assert reply.json(parse_float=str)["score"] == "1.5"


# -- 4. no key in reply headers, base64 forms, or the HTTP libraries' logs ----------------------


def _echo_headers(key: str) -> dict[str, str]:
    encoded = base64.b64encode(key.encode()).decode()
    return {
        "x-echo": key,
        "x-echo-base64": encoded,
        "x-echo-base64url": base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        "x-echo-basic": "Basic " + base64.b64encode(f"user:{key}".encode()).decode(),
    }


@pytest.mark.parametrize("status", [200, 401])
async def test_reply_headers_that_echo_a_key_reach_the_sdk_scrubbed(
    upstream: Upstream, status: int
) -> None:
    async def echoing(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        body = chat_reply("Hi") if status == 200 else {"error": {"message": "no", "type": "auth"}}
        return JSONResponse(body, status_code=status, headers=_echo_headers(key))

    root = upstream.mount(echoing)
    transport = ResilientTransport(profiles(root)[:1], provider="openai")
    async with httpx2.AsyncClient(transport=transport) as http:
        reply = await http.post(f"{root}/v1/chat/completions", json={"model": MODEL})
    assert reply.status_code == status and reply.headers["x-echo"] == "***"
    assert not shows_a_key(repr(reply.headers.multi_items()))


async def test_a_key_echoed_in_a_reply_after_replies_without_one_is_scrubbed(
    upstream: Upstream,
) -> None:
    # headers seen in earlier replies are not looked at again; a new one always is
    served = 0

    async def answer(request: Request) -> Response:
        nonlocal served
        served += 1
        key = request.headers["authorization"].removeprefix("Bearer ")
        headers = {"openai-organization": "org-guards", "x-request-id": f"req-{served}"}
        if served == 3:
            headers["x-echo"] = f"{key[:4]}{key[8:]}"
        return JSONResponse(chat_reply("Hi"), headers=headers)

    root = upstream.mount(answer)
    transport = ResilientTransport(profiles(root)[:1], provider="openai")
    async with httpx2.AsyncClient(transport=transport) as http:
        replies = [
            await http.post(f"{root}/v1/chat/completions", json={"model": MODEL}) for _ in "123"
        ]
    assert [reply.headers["x-request-id"] for reply in replies] == ["req-1", "req-2", "req-3"]
    assert replies[0].headers["openai-organization"] == "org-guards"
    assert replies[2].headers["x-echo"] == "sk-p***"
    assert not shows_a_key(repr(replies[2].headers.multi_items()))


async def test_a_redirect_location_that_echoes_a_key_is_scrubbed(upstream: Upstream) -> None:
    async def redirect(request: Request) -> Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return Response(status_code=302, headers={"location": f"https://elsewhere.test/?key={key}"})

    root = upstream.mount(redirect)
    transport = ResilientTransport(profiles(root)[:1], provider="openai")
    async with httpx2.AsyncClient(transport=transport) as http:
        reply = await http.post(f"{root}/v1/chat/completions", json={"model": MODEL})
    assert reply.status_code == 302 and reply.headers["location"].startswith("https://elsewhere")
    assert not shows_a_key(reply.headers["location"])


@pytest.mark.parametrize(
    "form",
    [
        lambda k: base64.b64encode(k.encode()).decode(),
        lambda k: base64.b64encode(k.encode()).decode().rstrip("="),
        lambda k: base64.urlsafe_b64encode(k.encode()).decode(),
        lambda k: base64.urlsafe_b64encode(b"\xfb\xff" + k.encode()).decode().rstrip("="),
        lambda k: "Basic " + base64.b64encode(f"user:{k}".encode()).decode(),
        lambda k: "Basic " + base64.b64encode(f"{k}:".encode()).decode(),
        lambda k: base64.b64encode(f'{{"key": "{k}"}}'.encode()).decode(),
    ],
    ids=["std", "std-unpadded", "urlsafe", "urlsafe-offset", "basic", "basic-user", "in-json"],
)
@pytest.mark.parametrize("key", [KEY_A, "Zm9v+/Ym9vcXV4eHl6emFiY2RlZmdoaWpr==", "0123abcdef"])
def test_a_key_in_base64_is_scrubbed_at_any_alignment(form: Callable[[str], str], key: str) -> None:
    encoded = form(key)
    scrubbed = KeyScrubber([key])(f"echo: {encoded}.")
    assert "***" in scrubbed
    decoded = "".join(_base64_decodings(scrubbed))
    assert not any(key[i : i + 8] in decoded for i in range(len(key) - 7))


def test_any_8_characters_of_a_key_are_scrubbed_at_any_offset_among_any_characters() -> None:
    rng = random.Random(7)  # the scrubber's fast test must never miss a piece
    for _ in range(2000):
        alphabet = string.ascii_letters + string.digits + "+/=-_é"
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40)))
        start = rng.randint(0, len(key) - 8)
        echo = key[start : rng.randint(start + 8, len(key))]
        around = [
            "".join(rng.choice("ab€\u4e2d\n ") for _ in range(rng.randint(0, 9))) for _ in "lr"
        ]
        text = around[0] + echo + around[1]
        assert echo[:8] not in KeyScrubber([key])(text), (key, text)


def test_text_without_a_key_is_left_alone_by_the_base64_forms() -> None:
    text = "Basic dXNlcjpwYXNzd29yZA== and a long ordinary sentence about API keys"
    assert KeyScrubber([KEY_A, KEY_B])(text) == text


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_http_library_logs_at_debug_never_show_a_key(
    upstream: Upstream, library: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def gemini(request: Request) -> Response:
        key = request.headers["x-goog-api-key"]
        body = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]}
        return JSONResponse(body, headers=_echo_headers(key))

    root = upstream.mount(gemini)
    transport = ResilientTransport(profiles(root, "gemini", "")[:1], provider="gemini")
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with library.AsyncClient(transport=transport) as http:  # the key in the URL, as
        reply = await http.post(  # some SDKs and users write it
            f"{root}/v1beta/models/gemini-2.0-flash:generateContent?key={KEY_A}",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
    assert reply.status_code == 200
    logged = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert any("receive_response_headers" in r.getMessage() for r in logged)
    assert any("HTTP Request" in r.getMessage() for r in logged)
    assert not shows_a_key(caplog.text)
    assert not shows_a_key("\n".join(r.getMessage() for r in caplog.records))


# -- 5. closing ends every request with a typed error ---------------------------------------


async def _hang(request: Request) -> Response:
    await until_disconnected(request)
    return JSONResponse(chat_reply("too late"))


async def test_calls_after_aclose_end_with_a_typed_error(upstream: Upstream) -> None:
    root = upstream.mount(_hang)
    transport = ResilientTransport(profiles(root), provider="openai")
    await transport.aclose()
    async with httpx2.AsyncClient(transport=transport) as http:
        with pytest.raises(ConfigError, match="closed"):
            await http.post(f"{root}/v1/chat/completions", json={"model": MODEL})

    def sync_call() -> None:
        with httpx2.Client(transport=transport) as http:
            http.post(f"{root}/v1/chat/completions", json={"model": MODEL})

    with pytest.raises(ConfigError, match="closed"):
        await anyio.to_thread.run_sync(sync_call)
    assert upstream.keys_seen(root) == []


async def _in_flight(
    transport: ResilientTransport, arrived: threading.Event, call: Callable[[], Awaitable[Any]]
) -> BaseException:
    """What ``call`` ends with when the transport is closed once ``arrived`` is set."""
    outcome: list[BaseException] = []

    async def run() -> None:
        try:
            await call()
        except Exception as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        assert await anyio.to_thread.run_sync(arrived.wait, 5)
        await transport.aclose()
    assert outcome, "the request succeeded after aclose()"
    return outcome[0]


def _hanging(arrived: threading.Event) -> Handler:
    async def hang(request: Request) -> Response:
        arrived.set()
        return await _hang(request)

    return hang


async def test_aclose_ends_requests_in_flight_with_a_typed_error(upstream: Upstream) -> None:
    arrived = threading.Event()
    root = upstream.mount(_hanging(arrived))
    transport = ResilientTransport(profiles(root), provider="openai")

    async def call() -> None:
        async with httpx2.AsyncClient(transport=transport) as http:
            await http.post(f"{root}/v1/chat/completions", json={"model": MODEL})

    error = await _in_flight(transport, arrived, call)
    assert isinstance(error, ConfigError) and "closed" in str(error)


async def test_aclose_ends_sync_requests_in_flight_with_a_typed_error(upstream: Upstream) -> None:
    arrived = threading.Event()
    root = upstream.mount(_hanging(arrived))
    transport = ResilientTransport(profiles(root), provider="openai")

    def sync_call() -> Any:
        with httpx2.Client(transport=transport) as http:
            return http.post(f"{root}/v1/chat/completions", json={"model": MODEL})

    error = await _in_flight(transport, arrived, lambda: anyio.to_thread.run_sync(sync_call))
    assert isinstance(error, ConfigError) and "closed" in str(error)


async def test_aclose_ends_a_stream_being_read_with_a_typed_error(upstream: Upstream) -> None:
    async def first_chunk_then_hang(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse(chat_chunk("Hi"))
            await until_disconnected(request)

        return StreamingResponse(body(), media_type="text/event-stream")

    root = upstream.mount(first_chunk_then_hang)
    transport = ResilientTransport(profiles(root), provider="openai")
    reading = threading.Event()

    async def read() -> None:
        async with httpx2.AsyncClient(transport=transport) as http:
            body = {"model": MODEL, "stream": True}
            async with http.stream("POST", f"{root}/v1/chat/completions", json=body) as reply:
                async for _ in reply.aiter_lines():
                    reading.set()

    error = await _in_flight(transport, reading, read)
    assert isinstance(error, ConfigError) and "closed" in str(error)


# -- 6. a stream that goes quiet ends with an error the SDK raises ------------------------------


def _quiet_after_one_chunk(drip: bool) -> Handler:
    async def answer(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse(chat_chunk("Hi"))
            if not drip:
                await until_disconnected(request)
                return
            yield b'data: {"choices": [{"delta": {"content": "'  # a line never finished
            for _ in range(60):
                if await request.is_disconnected():
                    return
                yield b"a"
                await asyncio.sleep(0.05)

        return StreamingResponse(body(), media_type="text/event-stream")

    return answer


@pytest.mark.parametrize("drip", [False, True], ids=["silent", "dripping"])
async def test_a_stream_idle_past_stream_idle_timeout_ends_with_a_timeout_in_the_sdk(
    upstream: Upstream, drip: bool
) -> None:
    root = upstream.mount(_quiet_after_one_chunk(drip))
    transport = ResilientTransport(profiles(root), provider="openai", stream_idle_timeout=0.3)
    async with openai_sdk(root, transport) as sdk:
        stream = await sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APITimeoutError):
            async for _ in stream:
                pass
    assert list(failures(transport)) == ["openai-a"]
    assert "idle" in failures(transport)["openai-a"]


@pytest.mark.parametrize("drip", [False, True], ids=["silent", "dripping"])
def test_a_sync_stream_idle_past_stream_idle_timeout_ends_with_a_timeout_in_the_sdk(
    upstream: Upstream, drip: bool
) -> None:
    root = upstream.mount(_quiet_after_one_chunk(drip))
    transport = ResilientTransport(profiles(root), provider="openai", stream_idle_timeout=0.3)
    with httpx2.Client(transport=transport) as http:
        sdk = openai.OpenAI(api_key="x", base_url=root + "/v1", max_retries=0, http_client=http)
        stream = sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
        with pytest.raises(openai.APITimeoutError):
            for _ in stream:
                pass
    assert "idle" in failures(transport)["openai-a"]


@pytest.mark.parametrize("value", [0, -1, float("inf"), "30"])
def test_stream_idle_timeout_must_be_a_positive_number_of_seconds(value: Any) -> None:
    with pytest.raises(ConfigError, match="stream_idle_timeout"):
        ResilientTransport(
            [AuthProfile("a", "openai", KEY_A)], provider="openai", stream_idle_timeout=value
        )
