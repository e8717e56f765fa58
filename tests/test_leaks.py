"""The leak harness: no piece of any key reaches anything a user can see, on any path.

A hostile provider (a small starlette server on 127.0.0.1, below) echoes the key it was
sent, in several forms: whole, half of it (``KEY[:n/2] + "****" + KEY[-4:]``), URL-encoded,
and JSON-escaped (every character as ``\\uXXXX``), in error messages, error codes, error
details, unparsable 200 bodies and mid-stream error events. The harness drives every
failure path (each wire format, ``complete``/``stream``/``call``, both senders,
``ResilientTransport`` under the real openai and anthropic SDKs) with keys of several shapes
(prefixed, prefix-less, base64-like with ``+/=``) and collects everything observable:

- ``str``/``repr`` of results and exceptions, each attempt and its error (``code``
  included), formatted tracebacks with their ``__cause__``/``__context__`` chains;
- ``status()`` and the manager's status;
- every event of every hook, and the manager's failover callbacks;
- every log record of every logger at DEBUG, formatted with its traceback;
- SDK exceptions, their ``body`` and their response's text.

Each collected string is also searched after URL-decoding and JSON-unescaping, for every
8-character piece of every key (pieces lying wholly inside a public prefix such as
``sk-proj-`` are not secret and not searched for).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import string
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

import anthropic
import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from failover import (
    AuthProfile,
    ConfigError,
    CooldownEvent,
    ExhaustedEvent,
    FailoverConfig,
    FailoverEvent,
    FailoverManager,
    RecoveredEvent,
    ResilientClient,
    ResilientTransport,
    RetryEvent,
    SuccessEvent,
)
from failover.testing.wire import stream_events

# -- keys of several shapes --------------------------------------------------------------

_rng = random.Random(20261129)
_ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, size: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(size))


PUBLIC_PREFIXES = ("sk-ant-api03-", "sk-proj-", "AIzaSy", "gsk_", "sk-")
"""Key prefixes every key of a provider shares: not secret, not searched for."""

KEYS: dict[str, tuple[str, str]] = {  # provider -> (first profile's key, second's)
    "openai": ("sk-proj-" + _random(_ALNUM, 40), _random("0123456789abcdef", 32)),
    "anthropic": (
        "sk-ant-api03-" + _random(_ALNUM + "-_", 40),
        _random(_ALNUM, 10) + "+" + _random(_ALNUM, 10) + "/" + _random(_ALNUM, 10) + "==",
    ),
    "gemini": ("AIzaSy" + _random(_ALNUM + "-_", 33), _random("0123456789abcdef", 32)),
    "ollama-native": (
        _random(_ALNUM, 12) + "/" + _random(_ALNUM, 12) + "+" + _random(_ALNUM, 8),
        _random(_ALNUM, 28),
    ),
    "groq": ("gsk_" + _random(_ALNUM, 48), _random(_ALNUM + "-_", 40)),
}
CLIENT_PROVIDERS = ["openai", "anthropic", "gemini", "ollama-native"]
"""One provider per wire format, for the client's tests (groq is driven through its SDK)."""
EXTRA_SECRETS: list[str] = []
"""Secrets configured elsewhere than in ``api_key`` (in a base URL), searched for too."""

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
    "ollama-native": "ollama-native/llama3.2",
}
WIRES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "ollama-native": "ollama",
}


def _secret_pieces(key: str) -> set[str]:
    public = max((len(p) for p in PUBLIC_PREFIXES if key.startswith(p)), default=0)
    return {key[i : i + 8] for i in range(len(key) - 7) if i + 8 > public}


def _all_pieces() -> dict[str, str]:
    """Every secret 8-character piece -> a label of the key it comes from (never the key)."""
    pieces: dict[str, str] = {}
    for provider, keys in KEYS.items():
        for index, key in enumerate(keys):
            for piece in _secret_pieces(key):
                pieces[piece] = f"{provider} key #{index + 1}"
    for index, secret in enumerate(EXTRA_SECRETS):
        for piece in _secret_pieces(secret):
            pieces[piece] = f"base-URL secret #{index + 1}"
    return pieces


# -- echo forms ----------------------------------------------------------------------------


def _half(key: str) -> str:
    return key[: len(key) // 2] + "****" + key[-4:]


def _json_escaped(key: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in key)


FORMS: dict[str, Callable[[str], str]] = {
    "whole": lambda key: key,
    "half": _half,
    "url-encoded": lambda key: quote(key, safe=""),
    "json-escaped": _json_escaped,
}
"""How the hostile provider writes the key back (the text goes into raw JSON as is)."""


def _decoded_variants(text: str) -> set[str]:
    unescaped = _json_unescape(text)
    return {text, unquote(text), unquote_plus(text), unescaped, unquote(unescaped)}


def _json_unescape(text: str) -> str:
    import re

    text = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return re.sub(r"\\+/", "/", text)


# -- the hostile provider ----------------------------------------------------------------


@dataclass
class Hostile:
    """How the server answers now; the test thread sets it, the server thread reads it."""

    mode: str = "401"  # "401" | "429" | "503" | "400" | "404" | "malformed" | "midstream" | "ok"
    form: str = "whole"
    seen: list[str] = field(default_factory=list)


HOSTILE = Hostile()


def _key_of(request: Request) -> str:
    for header in ("x-api-key", "x-goog-api-key"):
        if value := request.headers.get(header):
            return value
    if value := request.query_params.get("key"):
        return value
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def _error_body(wire: str, status: int, echo: str) -> str:
    """An error body of ``wire`` that carries ``echo`` in every text field it has."""
    marker = "@@ECHO@@"
    if wire == "openai":
        body: Any = {
            "error": {
                "message": f"Incorrect API key provided: {marker}. You can find your key at ...",
                "type": "invalid_request_error",
                "param": marker,
                "code": marker,
            }
        }
    elif wire == "anthropic":
        body = {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"invalid x-api-key {marker}"},
        }
    elif wire == "gemini":
        body = {
            "error": {
                "code": status,
                "message": f"API key not valid: {marker}",
                "status": "INVALID_ARGUMENT" if status == 400 else "UNAVAILABLE",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "metadata": {"key": marker, "service": "generativelanguage"},
                    }
                ],
            }
        }
    else:
        body = {"error": f"unauthorized: key {marker} is not valid"}
    return json.dumps(body).replace(marker, echo)


def _stream_error_event(wire: str, echo: str) -> str:
    marker = "@@ECHO@@"
    if wire == "anthropic":
        data = {"type": "error", "error": {"type": "overloaded_error", "message": marker}}
        return "event: error\ndata: " + json.dumps(data).replace(marker, echo) + "\n\n"
    if wire == "ollama":
        return (
            json.dumps({"error": f"mid-stream failure for {marker}"}).replace(marker, echo) + "\n"
        )
    if wire == "gemini":
        data = {"error": {"code": 503, "message": f"overloaded {marker}", "status": "UNAVAILABLE"}}
        return "data: " + json.dumps(data).replace(marker, echo) + "\n\n"
    data = {
        "error": {"message": f"server error for {marker}", "type": "server_error", "code": marker}
    }
    return "data: " + json.dumps(data).replace(marker, echo) + "\n\n"


def _first_events(wire: str, model: str) -> list[str]:
    events = list(stream_events(wire, model, ["Hello ", "there"], (3, 2)))
    cut = 4 if wire == "anthropic" else 1
    out = []
    for name, data in events[:cut]:
        if wire == "ollama":
            out.append(data + "\n")
        else:
            out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return out


def _all_events(wire: str, model: str) -> list[str]:
    out = []
    for name, data in stream_events(wire, model, ["Hello ", "there"], (3, 2)):
        if wire == "ollama":
            out.append(data + "\n")
        else:
            out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return out


def _ok_body(wire: str, model: str) -> dict[str, Any]:
    from failover.testing.wire import reply_body

    return reply_body(wire, model, "Hello there", (3, 2))


async def _answer(request: Request, wire: str, model: str, streamed: bool) -> Response:
    key = _key_of(request)
    HOSTILE.seen.append(wire)
    echo = FORMS[HOSTILE.form](key) if HOSTILE.form in FORMS else "(a key it does not echo)"
    mode = HOSTILE.mode
    media = "application/x-ndjson" if wire == "ollama" else "text/event-stream"
    if mode.isdigit():
        status = int(mode)
        headers = {"content-type": "application/json"}
        if status == 429:
            headers["retry-after"] = "1"
        return Response(_error_body(wire, status, echo), status_code=status, headers=headers)
    if mode == "malformed":
        text = '{"choices": [{"message": "' + echo + '", "note": "truncated ' + echo
        return Response(text, media_type="application/json")
    if mode == "midstream" and streamed:

        async def body() -> AsyncIterator[bytes]:
            for event in _first_events(wire, model):
                yield event.encode()
            yield _stream_error_event(wire, echo).encode()

        return StreamingResponse(body(), media_type=media)
    if streamed:

        async def whole() -> AsyncIterator[bytes]:
            for event in _all_events(wire, model):
                yield event.encode()

        return StreamingResponse(whole(), media_type=media)
    return Response(json.dumps(_ok_body(wire, model)), media_type="application/json")


async def _openai_route(request: Request) -> Response:
    body = json.loads(await request.body() or b"{}")
    return await _answer(request, "openai", str(body.get("model", "")), bool(body.get("stream")))


async def _anthropic_route(request: Request) -> Response:
    body = json.loads(await request.body() or b"{}")
    return await _answer(request, "anthropic", str(body.get("model", "")), bool(body.get("stream")))


async def _gemini_route(request: Request) -> Response:
    model, _, action = request.path_params["target"].partition(":")
    return await _answer(request, "gemini", model, action.startswith("stream"))


async def _ollama_route(request: Request) -> Response:
    body = json.loads(await request.body() or b"{}")
    return await _answer(
        request, "ollama", str(body.get("model", "")), body.get("stream", True) is not False
    )


APP = Starlette(
    routes=[
        Route("/{provider}/v1/chat/completions", _openai_route, methods=["POST"]),
        Route("/{provider}/openai/v1/chat/completions", _openai_route, methods=["POST"]),
        Route("/{provider}/v1/messages", _anthropic_route, methods=["POST"]),
        Route("/{provider}/v1beta/models/{target:path}", _gemini_route, methods=["POST"]),
        Route("/{provider}/api/chat", _ollama_route, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def hostile_root() -> Iterator[str]:
    """Serve APP on 127.0.0.1 from a thread of its own; yield its root URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(APP, log_level="critical", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def _base_url(root: str, provider: str) -> str:
    if provider == "groq":  # the groq SDK takes the bare host and adds /openai/v1
        return f"{root}/groq"
    return f"{root}/{provider}" + ("/v1" if WIRES[provider] == "openai" else "")


# -- what is observable ----------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self, ignored: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.ignored = ("uvicorn", *ignored)  # uvicorn: the hostile provider's own logs
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in self.ignored:
            return
        where = f"log record of {record.name!r}"
        try:
            self.lines.append((where, self.format(record)))
            self.lines.append((where, repr(record.args)))
            self.lines.append((where, repr(getattr(record, "__dict__", {}))))
        except Exception as exc:  # a record that cannot even be formatted is a finding too
            self.lines.append((where, f"unformattable record: {exc!r}"))


@contextlib.contextmanager
def _all_logs_at_debug(*ignored: str) -> Iterator[_Capture]:
    """Capture every record of every logger at DEBUG (the root and each named logger).

    Records of ``ignored`` loggers are left out: the test's own server's, and where the test
    makes requests of its own (inside ``call``), the HTTP library's records of those.
    """
    capture = _Capture(ignored)
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    touched: list[tuple[logging.Logger, int, bool]] = []
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            touched.append((logger, logger.level, logger.propagate))
            logger.setLevel(logging.DEBUG)
            logger.propagate = True
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved)
        for logger, level, propagate in touched:
            logger.setLevel(level)
            logger.propagate = propagate


@dataclass
class Observed:
    """Every string a user could see, labelled by where it came from."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, value: object) -> None:
        self.items.append((where, value if isinstance(value, str) else repr(value)))

    def exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        for name in ("message", "code", "body", "partial", "text", "error", "args"):
            if hasattr(exc, name):
                with contextlib.suppress(Exception):
                    self.add(f"{where}: .{name}", getattr(exc, name))
        response = getattr(exc, "response", None)
        if response is not None:
            with contextlib.suppress(Exception):
                self.add(f"{where}: .response.text", response.text)
            with contextlib.suppress(Exception):
                self.add(f"{where}: .response.headers", dict(response.headers))
        for index, attempt in enumerate(getattr(exc, "attempts", ()) or ()):
            self.add(f"{where}: attempt {index}", attempt)
            error = getattr(attempt, "error", None)
            if isinstance(error, BaseException):
                self.add(f"{where}: attempt {index} error", str(error))
                self.add(f"{where}: attempt {index} error code", getattr(error, "code", None))
                self.add(
                    f"{where}: attempt {index} traceback",
                    "".join(traceback.format_exception(error)),
                )
        inner = getattr(exc, "error", None)
        if isinstance(inner, BaseException) and inner is not exc:
            self.add(f"{where}: .error code", getattr(inner, "code", None))
            self.add(f"{where}: .error traceback", "".join(traceback.format_exception(inner)))

    def leaks(self) -> list[str]:
        pieces = _all_pieces()
        found: list[str] = []
        for where, text in self.items:
            variants = _decoded_variants(text)
            for piece, label in pieces.items():
                if any(piece in variant for variant in variants):
                    found.append(f"{where}: 8 characters of the {label}")
                    break
        return found


def _report(leaks: list[str]) -> str:
    """The leaks, one line per place (which mode, which output), the keys' labels only."""
    places = sorted({leak.rsplit(": 8 characters", 1)[0] for leak in leaks})
    return f"{len(leaks)} leaks, in {len(places)} places:\n" + "\n".join(places[:60])


def _listen(target: Any, observed: Observed) -> None:
    for event_type, register in (
        (FailoverEvent, target.on_failover),
        (RetryEvent, target.on_retry),
        (CooldownEvent, target.on_cooldown),
        (RecoveredEvent, target.on_recovered),
        (SuccessEvent, target.on_success),
        (ExhaustedEvent, target.on_exhausted),
    ):
        register(lambda event, name=event_type.__name__: observed.add(f"event {name}", event))


def _manager(root: str, provider: str) -> FailoverManager:
    first, second = KEYS[provider]
    base = _base_url(root, provider)
    manager = FailoverManager(
        FailoverConfig(max_retries=1),
        profiles=[
            AuthProfile(f"{provider}-1", provider, first, base_url=base),
            AuthProfile(f"{provider}-2", provider, second, base_url=base),
        ],
    )
    return manager


def _watch_manager(manager: FailoverManager, observed: Observed) -> None:
    def callback(failed: Any, following: Any) -> None:
        observed.add("manager callback: failed", failed)
        observed.add("manager callback: next", following)

    manager.on_failover(callback)


async def _no_sleep(delay: float) -> None:
    return None


# -- the client: complete and stream, every wire, both senders, every echo form -----------------

CLIENT_MODES = ["401", "429", "503", "400", "404", "malformed", "midstream"]


@contextlib.asynccontextmanager
async def _client(root: str, provider: str, sender: str) -> AsyncIterator[ResilientClient]:
    manager = _manager(root, provider)
    extra: dict[str, Any] = {}
    aio = None
    if sender == "aiohttp":
        from failover.aiohttp_sender import AiohttpSender

        aio = AiohttpSender()
        extra["sender"] = aio
    client = ResilientClient([MODELS[provider]], manager, timeout=10, sleep=_no_sleep, **extra)
    try:
        yield client
    finally:
        await client.aclose()
        if aio is not None:
            await aio.aclose()


async def _drive_client(client: ResilientClient, mode: str, observed: Observed, label: str) -> None:
    ask = [{"role": "user", "content": "hi"}]
    if mode != "midstream":
        try:
            result = await client.complete(ask)
            observed.add(f"{label} complete result", result)
        except Exception as exc:
            observed.exception(f"{label} complete", exc)
            logging.getLogger("user.app").exception("the call failed")
    try:
        async with client.stream(ask) as stream:
            text = "".join([chunk.text async for chunk in stream])
        observed.add(f"{label} stream text", text)
    except Exception as exc:
        observed.exception(f"{label} stream", exc)
        logging.getLogger("user.app").exception("the stream failed")
    observed.add(f"{label} status", json.dumps(client.status(), default=str))
    observed.add(f"{label} status repr", client.status())
    observed.add(f"{label} manager status", client.manager.status())
    observed.add(f"{label} profiles", client.manager.list_profiles())
    observed.add(f"{label} client repr", client)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("sender", ["httpx", "aiohttp"])
@pytest.mark.parametrize("provider", CLIENT_PROVIDERS)
async def test_client_never_shows_an_echoed_key(
    hostile_root: str, provider: str, sender: str, form: str
) -> None:
    observed = Observed()
    HOSTILE.form = form
    with _all_logs_at_debug() as logs:
        for mode in CLIENT_MODES:
            HOSTILE.mode = mode
            async with _client(hostile_root, provider, sender) as client:
                _listen(client, observed)
                _watch_manager(client.manager, observed)
                await _drive_client(client, mode, observed, f"[{mode}]")
    for where, line in logs.lines:
        observed.add(where, line)
    assert HOSTILE.seen, "the hostile server was never reached"
    leaks = observed.leaks()
    assert not leaks, _report(leaks)


# -- call(): the user's own exceptions, and what they carry --------------------------------------


async def test_call_does_not_carry_a_gemini_key_url_in_its_chain(hostile_root: str) -> None:
    """The review's case: ``logging.exception`` printed ``?key=`` from httpx.HTTPStatusError."""
    HOSTILE.mode, HOSTILE.form = "503", "whole"
    observed = Observed()
    manager = _manager(hostile_root, "gemini")
    client = ResilientClient([MODELS["gemini"]], manager, sleep=_no_sleep)
    _listen(client, observed)

    async def fn(ctx: Any) -> str:
        url = f"{ctx.base_url}/v1beta/models/{ctx.model.id}:generateContent?key={ctx.api_key}"
        async with httpx.AsyncClient() as http:
            response = await http.post(url, json={"contents": []})
            response.raise_for_status()
        return response.text

    with _all_logs_at_debug("httpx", "httpcore") as logs:  # the user's own requests
        try:
            await client.call(fn)
        except Exception as exc:
            observed.exception("call", exc)
            logging.getLogger("user.app").exception("the call failed")
        observed.add("status", json.dumps(client.status(), default=str))
    for where, line in logs.lines:
        observed.add(where, line)
    await client.aclose()
    leaks = observed.leaks()
    assert not leaks, _report(leaks)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("mode", ["401", "429", "503", "400"])
async def test_call_with_the_openai_sdk_never_shows_an_echoed_key(
    hostile_root: str, mode: str, form: str
) -> None:
    HOSTILE.mode, HOSTILE.form = mode, form
    observed = Observed()
    client = ResilientClient([MODELS["openai"]], _manager(hostile_root, "openai"), sleep=_no_sleep)
    _listen(client, observed)

    async def fn(ctx: Any) -> Any:
        sdk = openai.AsyncOpenAI(api_key=ctx.api_key, base_url=ctx.base_url, max_retries=0)
        try:
            return await sdk.chat.completions.create(
                model=ctx.model.id, messages=[{"role": "user", "content": "hi"}]
            )
        finally:
            await sdk.close()

    with _all_logs_at_debug("httpx", "httpcore") as logs:  # the user's own requests
        try:
            await client.call(fn)
        except Exception as exc:
            observed.exception("call", exc)
            logging.getLogger("user.app").exception("the call failed")
        observed.add("status", json.dumps(client.status(), default=str))
    for where, line in logs.lines:
        observed.add(where, line)
    await client.aclose()
    leaks = observed.leaks()
    assert not leaks, _report(leaks)


# -- ResilientTransport under the real SDKs ------------------------------------------------------

TRANSPORT_MODES = ["401", "429", "503", "400", "404", "malformed", "midstream"]


async def _drive_openai_sdk(transport: ResilientTransport, root: str, observed: Observed) -> None:
    sdk = openai.AsyncOpenAI(
        api_key="sdk-placeholder",
        base_url=_base_url(root, "openai"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    ask: Any = [{"role": "user", "content": "hi"}]
    try:
        if HOSTILE.mode != "midstream":
            try:
                reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=ask)
                observed.add("openai sdk reply", reply)
            except Exception as exc:
                observed.exception(f"[{HOSTILE.mode}] openai sdk", exc)
                logging.getLogger("user.app").exception("the SDK call failed")
        try:
            stream = await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=ask, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            observed.add("openai sdk stream", "".join(parts))
        except Exception as exc:
            observed.exception(f"[{HOSTILE.mode}] openai sdk stream", exc)
            logging.getLogger("user.app").exception("the SDK stream failed")
    finally:
        await sdk.close()


async def _drive_anthropic_sdk(
    transport: ResilientTransport, root: str, observed: Observed
) -> None:
    sdk = anthropic.AsyncAnthropic(
        api_key="sdk-placeholder",
        base_url=_base_url(root, "anthropic"),
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    ask: Any = [{"role": "user", "content": "hi"}]
    try:
        if HOSTILE.mode != "midstream":
            try:
                reply = await sdk.messages.create(
                    model="claude-haiku-4-5", max_tokens=10, messages=ask
                )
                observed.add("anthropic sdk reply", reply)
            except Exception as exc:
                observed.exception(f"[{HOSTILE.mode}] anthropic sdk", exc)
                logging.getLogger("user.app").exception("the SDK call failed")
        try:
            stream = await sdk.messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=ask, stream=True
            )
            events = [event async for event in stream]
            observed.add("anthropic sdk stream", events)
        except Exception as exc:
            observed.exception(f"[{HOSTILE.mode}] anthropic sdk stream", exc)
            logging.getLogger("user.app").exception("the SDK stream failed")
    finally:
        await sdk.close()


async def _drive_groq_sdk(transport: ResilientTransport, root: str, observed: Observed) -> None:
    """The groq SDK is built on httpx (not httpx2): the transport's other library."""
    import groq

    sdk = groq.AsyncGroq(
        api_key="sdk-placeholder",
        base_url=_base_url(root, "groq"),
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    ask: Any = [{"role": "user", "content": "hi"}]
    model = "llama-3.1-8b-instant"
    try:
        if HOSTILE.mode != "midstream":
            try:
                reply = await sdk.chat.completions.create(model=model, messages=ask)
                observed.add("groq sdk reply", reply)
            except Exception as exc:
                observed.exception(f"[{HOSTILE.mode}] groq sdk", exc)
                logging.getLogger("user.app").exception("the SDK call failed")
        try:
            stream = await sdk.chat.completions.create(model=model, messages=ask, stream=True)
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            observed.add("groq sdk stream", "".join(parts))
        except Exception as exc:
            observed.exception(f"[{HOSTILE.mode}] groq sdk stream", exc)
            logging.getLogger("user.app").exception("the SDK stream failed")
    finally:
        await sdk.close()


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("provider", ["openai", "anthropic", "groq"])
async def test_transport_under_the_sdks_never_shows_an_echoed_key(
    hostile_root: str, provider: str, form: str
) -> None:
    HOSTILE.form = form
    observed = Observed()
    drive = {"openai": _drive_openai_sdk, "anthropic": _drive_anthropic_sdk}.get(
        provider, _drive_groq_sdk
    )
    with _all_logs_at_debug() as logs:
        for mode in TRANSPORT_MODES:
            HOSTILE.mode = mode
            manager = _manager(hostile_root, provider)
            _watch_manager(manager, observed)
            transport = ResilientTransport(manager, provider=provider, sleep=_no_sleep)
            _listen(transport, observed)
            await drive(transport, hostile_root, observed)
            observed.add(f"[{mode}] transport status", json.dumps(transport.status(), default=str))
            observed.add(f"[{mode}] transport repr", transport)
            await transport.aclose()
    for where, line in logs.lines:
        observed.add(where, line)
    assert HOSTILE.seen
    leaks = observed.leaks()
    assert not leaks, _report(leaks)


# -- keys no header can carry: refused at construction, without printing them -----------------

BAD_KEY_ENDINGS = ["\n", "\r\n", " ", "\t", "\x00", "\x7f", "\u200b", "\u00a0"]


@pytest.mark.parametrize("where", ["end", "middle", "start"])
@pytest.mark.parametrize("bad", BAD_KEY_ENDINGS, ids=[repr(c) for c in BAD_KEY_ENDINGS])
def test_a_key_with_whitespace_or_control_characters_is_refused_without_showing_it(
    bad: str, where: str
) -> None:
    secret = _random("0123456789abcdef", 40)
    key = {"end": secret + bad, "middle": secret[:20] + bad + secret[20:], "start": bad + secret}[
        where
    ]
    observed = Observed()
    with _all_logs_at_debug() as logs:
        with pytest.raises(ConfigError) as info:
            AuthProfile("a", "openai", key)
        observed.exception("AuthProfile", info.value)
    for where, line in logs.lines:
        observed.add(where, line)
    assert "api_key" in str(info.value)
    pieces = _secret_pieces(secret)
    found = [w for w, text in observed.items if any(p in text for p in pieces)]
    assert not found, found


def test_update_profile_refuses_a_key_with_a_newline_without_showing_it() -> None:
    secret = _random("0123456789abcdef", 40)
    manager = FailoverManager(profiles=[AuthProfile("a", "openai", KEYS["openai"][0])])
    with pytest.raises(ConfigError) as info:
        manager.update_profile("a", api_key=secret + "\n")
    text = str(info.value) + "".join(traceback.format_exception(info.value))
    assert not any(p in text for p in _secret_pieces(secret))


async def test_a_key_with_a_newline_cannot_reach_any_request(hostile_root: str) -> None:
    """The review's case: httpx's ``Illegal header value`` put the key in errors and status."""
    secret = "sk-proj-" + _random(_ALNUM, 40)
    with pytest.raises(ConfigError):
        ResilientClient(
            [MODELS["openai"]],
            [AuthProfile("a", "openai", secret + "\n", base_url=_base_url(hostile_root, "openai"))],
        )


# -- a secret inside base_url ------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", ["userinfo password", "query key", "query api-key", "userinfo user"]
)
@pytest.mark.parametrize(
    "secret_is_the_key", [True, False], ids=["same as api_key", "other secret"]
)
async def test_status_never_shows_a_secret_inside_base_url(
    hostile_root: str, shape: str, secret_is_the_key: bool
) -> None:
    key = KEYS["openai"][0]
    secret = key if secret_is_the_key else _random("0123456789abcdef", 36)
    if not secret_is_the_key:
        EXTRA_SECRETS.append(secret)
    host = hostile_root.removeprefix("http://")
    base = {
        "userinfo password": f"http://user:{secret}@{host}/openai/v1",
        "userinfo user": f"http://{secret}@{host}/openai/v1",
        "query key": f"{hostile_root}/openai/v1?key={secret}",
        "query api-key": f"{hostile_root}/openai/v1?api-version=2024-10-21&api-key={secret}",
    }[shape]
    HOSTILE.mode, HOSTILE.form = "503", "none"  # only the base URL can show the secret
    observed = Observed()
    try:
        profile = AuthProfile("a", "openai", key, base_url=base)
    except ConfigError as exc:  # refusing such a URL is fine, if the refusal does not show it
        observed.exception("AuthProfile", exc)
    else:
        observed.add("profile repr", profile)
        client = ResilientClient([MODELS["openai"]], [profile], sleep=_no_sleep)
        _listen(client, observed)
        with _all_logs_at_debug() as logs:
            try:
                await client.complete([{"role": "user", "content": "hi"}])
            except Exception as exc:
                observed.exception("complete", exc)
        for where, line in logs.lines:
            observed.add(where, line)
        observed.add("status", json.dumps(client.status(), default=str))
        observed.add("status repr", client.status())
        observed.add("manager repr", client.manager)
        await client.aclose()
    try:
        leaks = observed.leaks()
    finally:
        if not secret_is_the_key:
            EXTRA_SECRETS.remove(secret)
    assert not leaks, _report(leaks)


# -- the harness itself finds what it is meant to find --------------------------------------------


def test_the_harness_finds_every_echo_form_of_every_key() -> None:
    """A harness that cannot fail proves nothing: each form of each key must be found."""
    for provider, keys in KEYS.items():
        for key in keys:
            for form, write in FORMS.items():
                observed = Observed()
                observed.add("probe", f"error: {write(key)} (HTTP 401)")
                assert observed.leaks(), (provider, form)
                observed = Observed()
                observed.add("probe", repr({"message": write(key)}))
                assert observed.leaks(), (provider, form, "in a repr")
    masked = Observed()
    masked.add("probe", "key ***" + KEYS["openai"][0][-4:] + " and sk-proj-***")
    assert masked.leaks() == []


async def test_the_hostile_server_echoes_the_key_it_was_sent(hostile_root: str) -> None:
    key = KEYS["openai"][1]
    HOSTILE.mode, HOSTILE.form = "401", "whole"
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{_base_url(hostile_root, 'openai')}/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "m"},
        )
    assert response.status_code == 401 and key in response.text
