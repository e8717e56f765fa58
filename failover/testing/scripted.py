"""An in-process scripted provider for users' own tests: no server, no sockets, no extras.

It answers OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, Gemini and Ollama
requests from a script, in each wire's own format (built by :mod:`failover.testing.wire`
and :mod:`failover.testing.responses`, as the simulator's are), and records what it
received. Plug it in as the client's sender or as the inner transport of an SDK's
``ResilientTransport``::

    scripted = ScriptedProvider(Script().rate_limit(retry_after=2).then_ok("hello"))
    client = ResilientClient(["openai/gpt-4o-mini"], profiles, sender=scripted.sender())
    transport = ResilientTransport(profiles, provider="openai", inner=scripted.transport())

Each request takes the next step of the most specific script that still has steps: the
one for its key and model, its key, its model, then the provider's own; once every script
is used up it is answered ``ok``. Call ``failover.set_testing()`` (the pytest fixture
does) so that backoff does not sleep.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
import httpx

from failover._secrets import mask_key
from failover.errors import ProviderConnectionError
from failover.http import library_of
from failover.providers.base import HttpRequest
from failover.testing.responses import (
    call_item,
    message_item,
    new_id,
    response_events,
    response_object,
    usage_body,
)
from failover.testing.wire import SimToolCall, error_reply, reply_body, stream_events

__all__ = [
    "DEFAULT_TEXT",
    "WIRES",
    "Call",
    "Script",
    "ScriptedProvider",
    "ScriptedSender",
    "ScriptedTransport",
    "Step",
]

WIRES = ("openai", "responses", "anthropic", "gemini", "ollama")
"""The wire formats the scripted provider answers."""

DEFAULT_TEXT = "Hello from the scripted provider."
"""What an ``ok`` step answers when it names no text."""

_ERRORS = ("rate_limit", "quota", "invalid_key", "overloaded", "server_error", "context_limit")
_KINDS = (*_ERRORS, "ok", "tool_call", "cut", "connection_error", "hang")


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted answer.

    Attributes:
        kind: ``ok``, ``tool_call``, ``cut`` (a stream that stops after ``cut_after`` chunks;
            a plain reply cut mid-JSON), ``connection_error``, ``hang`` (no reply until the
            caller's timeout; a sync transport raises ``ReadTimeout``), or an error: ``rate_limit``,
            ``quota``, ``invalid_key``, ``overloaded``, ``server_error``, ``context_limit``
            (each with its wire's own status, body and headers).
        text: The answer's text (``ok``, ``cut``); ``None``: :data:`DEFAULT_TEXT`.
        retry_after: For ``rate_limit``: the ``retry-after`` the reply carries, in seconds.
        cut_after: For ``cut``: how many chunks of text reach the caller.
        tool_calls: For ``tool_call``: ``(name, arguments)`` per call.
        latency: Seconds before the reply (its headers) comes.
    """

    kind: str
    text: str | None = None
    retry_after: float = 1.0
    cut_after: int = 3
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    latency: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown step {self.kind!r}; one of: {', '.join(_KINDS)}")

    @classmethod
    def parse(cls, spec: str) -> Step:
        """A step from its short form.

        ``"ok"``, ``"ok: some text"``, ``"429"`` / ``"rate_limit"`` (with ``retry-after=2``),
        ``"503"`` / ``"529"`` / ``"overloaded"``, ``"500"`` / ``"server_error"``, ``"401"`` /
        ``"invalid_key"``, ``"quota"``, ``"context_limit"``, ``"cut 3"`` (a stream cut after
        3 chunks), ``"connection_error"``, ``"hang"``, ``"slow 2"`` (``ok`` after 2 seconds).

        Raises:
            ValueError: ``spec`` is none of these.
        """
        head, colon, rest = spec.partition(":")
        if colon and head.strip() == "ok":
            return cls("ok", text=rest.strip())
        words = spec.split()
        if not words:
            raise ValueError("an empty step")
        name = {
            "429": "rate_limit",
            "401": "invalid_key",
            "500": "server_error",
            "503": "overloaded",
            "529": "overloaded",
            "200": "ok",
        }.get(words[0], words[0])
        retry_after, cut_after, latency = 1.0, 3, 0.0
        if name == "slow":
            name, latency = "ok", 1.0
            if len(words) == 2 and re.fullmatch(r"[0-9.]+", words[1]):
                latency = float(words.pop())
        for word in words[1:]:
            if match := re.fullmatch(r"retry[-_]after=([0-9.]+)", word):
                retry_after = float(match[1])
            elif name == "cut" and word.isdigit():
                cut_after = int(word)
            elif not (name == "cut" and word == "after"):
                raise ValueError(f"cannot read step {spec!r}")
        if name == "hang":
            latency = math.inf
        return cls(name, retry_after=retry_after, cut_after=cut_after, latency=latency)


class Script:
    """The answers to give, in order; its methods chain.

    Examples:
        >>> script = Script().rate_limit(retry_after=2).then_ok("hello")
        >>> [step.kind for step in script.steps]
        ['rate_limit', 'ok']
    """

    def __init__(self, steps: Iterable[Step | str] = ()) -> None:
        self.steps: list[Step] = [s if isinstance(s, Step) else Step.parse(s) for s in steps]
        self._lock = threading.Lock()

    def _add(self, step: Step, times: int) -> Script:
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times!r}")
        with self._lock:
            self.steps.extend([step] * times)
        return self

    def ok(self, text: str | None = None, *, latency: float = 0.0, times: int = 1) -> Script:
        """Answer with ``text`` (a stream sends it a word per chunk), after ``latency`` s."""
        return self._add(Step("ok", text=text, latency=latency), times)

    def then_ok(self, text: str | None = None, *, latency: float = 0.0, times: int = 1) -> Script:
        """Same as :meth:`ok`; reads well after a failure."""
        return self.ok(text, latency=latency, times=times)

    def slow(self, seconds: float, text: str | None = None, *, times: int = 1) -> Script:
        """Answer ``ok`` only after ``seconds`` (past the client's timeout: a timeout)."""
        return self.ok(text, latency=seconds, times=times)

    def hang(self, *, times: int = 1) -> Script:
        """Never answer: the caller's timeout fires (a sync transport raises ReadTimeout)."""
        return self._add(Step("hang", latency=math.inf), times)

    def rate_limit(self, retry_after: float = 1.0, *, times: int = 1) -> Script:
        """Answer 429 asking to retry after ``retry_after`` seconds."""
        return self._add(Step("rate_limit", retry_after=retry_after), times)

    def quota(self, *, times: int = 1) -> Script:
        """Answer 429 quota exhausted (the key's billing; no ``retry-after``)."""
        return self._add(Step("quota"), times)

    def invalid_key(self, *, times: int = 1) -> Script:
        """Answer the wire's authentication error (401; Gemini: 400)."""
        return self._add(Step("invalid_key"), times)

    def overloaded(self, *, times: int = 1) -> Script:
        """Answer overloaded (503; Anthropic: 529)."""
        return self._add(Step("overloaded"), times)

    def server_error(self, *, times: int = 1) -> Script:
        """Answer 500."""
        return self._add(Step("server_error"), times)

    def context_limit(self, *, times: int = 1) -> Script:
        """Answer 400: the prompt exceeds the model's context window."""
        return self._add(Step("context_limit"), times)

    def connection_error(self, *, times: int = 1) -> Script:
        """Fail to connect (the sender raises; a transport raises its library's ConnectError)."""
        return self._add(Step("connection_error"), times)

    def stream_cut_after(self, chunks: int, text: str | None = None, *, times: int = 1) -> Script:
        """Send ``chunks`` chunks of ``text`` and end the stream without its terminator
        (a plain reply: its JSON cut short)."""
        return self._add(Step("cut", text=text, cut_after=chunks), times)

    def tool_call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, times: int = 1
    ) -> Script:
        """Answer with a call of tool ``name`` with ``arguments``."""
        return self._add(Step("tool_call", tool_calls=((name, dict(arguments or {})),)), times)

    def take(self) -> Step | None:
        """Remove and return the next step (``None``: the script is used up)."""
        with self._lock:
            return self.steps.pop(0) if self.steps else None

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"Script({[step.kind for step in self.steps]!r})"


@dataclass(frozen=True, slots=True)
class Call:
    """One request the scripted provider received.

    Attributes:
        wire: ``openai``, ``responses``, ``anthropic``, ``gemini`` or ``ollama``.
        key: The API key it carried (shown masked in ``repr``).
        model: The model asked for.
        stream: Whether a stream was asked for.
        outcome: The step's kind that answered it.
        url: The URL it was sent to.
        body: Its JSON body.
        headers: Its headers, lower-cased (not in ``repr``: they carry the key).
    """

    wire: str
    key: str = field(repr=False)
    model: str
    stream: bool
    outcome: str
    url: str
    body: dict[str, Any] = field(repr=False, compare=False)
    headers: dict[str, str] = field(repr=False, compare=False)

    @property
    def masked_key(self) -> str:
        """The key as logs show it: ``***`` and its last four characters."""
        return mask_key(self.key)

    @property
    def messages(self) -> list[Any]:
        """The conversation sent (``messages``, Gemini's ``contents``, or Responses' input)."""
        for name in ("messages", "contents", "input"):
            value = self.body.get(name)
            if isinstance(value, list):
                return value
            if isinstance(value, str):
                return [{"role": "user", "content": value}]
        return []

    def __repr__(self) -> str:
        return (
            f"Call(wire={self.wire!r}, key={self.masked_key!r}, model={self.model!r}, "
            f"stream={self.stream!r}, outcome={self.outcome!r})"
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """A reply before it is put on a library's response: status, headers and body chunks."""

    status: int
    headers: dict[str, str]
    chunks: tuple[bytes, ...]
    connection_error: bool = False
    latency: float = 0.0


_JSON = {"content-type": "application/json"}


class ScriptedProvider:
    """A fake LLM provider answering every wire format from scripts, in process.

    Args:
        script: The provider's own script: a :class:`Script`, or steps in their short
            form (``["429 retry-after=2", "ok"]``, see :meth:`Step.parse`).
        text: What ``ok`` steps answer when they name no text, and every request once
            the scripts are used up.

    Examples:
        >>> scripted = ScriptedProvider(["429 retry-after=2", "ok: hello"])
        >>> scripted.on(model="gpt-4o").overloaded()
        Script(['overloaded'])
    """

    def __init__(
        self, script: Script | Iterable[Step | str] | None = None, *, text: str = DEFAULT_TEXT
    ) -> None:
        self.script = script if isinstance(script, Script) else Script(script or ())
        self.text = text
        self.calls: list[Call] = []
        self._scripts: dict[tuple[str | None, str | None], Script] = {}
        self._lock = threading.Lock()
        self._ids = 0

    def on(self, *, key: str | None = None, model: str | None = None) -> Script:
        """The script for requests with ``key`` and/or ``model`` (made empty when new)."""
        if key is None and model is None:
            return self.script
        return self._scripts.setdefault((key, model), Script())

    def sender(self) -> ScriptedSender:
        """A sender for ``ResilientClient(..., sender=...)``."""
        return ScriptedSender(self)

    def transport(self) -> ScriptedTransport:
        """An httpx/httpx2 transport, async and sync, for ``ResilientTransport(inner=...)``
        (or an ``httpx.AsyncClient``/``httpx.Client`` of your own)."""
        return ScriptedTransport(self)

    def calls_for(
        self,
        *,
        key: str | None = None,
        model: str | None = None,
        wire: str | None = None,
        outcome: str | None = None,
    ) -> list[Call]:
        """The calls received with this key, model, wire and outcome (each when given)."""
        return [
            call
            for call in self.calls
            if (key is None or call.key == key)
            and (model is None or call.model == model)
            and (wire is None or call.wire == wire)
            and (outcome is None or call.outcome == outcome)
        ]

    @property
    def keys(self) -> list[str]:
        """The key of each call, in order (compare to your keys; don't print them)."""
        return [call.key for call in self.calls]

    def reset(self) -> None:
        """Forget every call and every script."""
        with self._lock:
            self.calls.clear()
            self._scripts.clear()
            self.script = Script()

    def __repr__(self) -> str:
        return f"ScriptedProvider(calls={len(self.calls)}, script={self.script!r})"

    # -- answering ------------------------------------------------------------------------

    def _next_step(self, key: str, model: str) -> Step:
        for where in ((key, model), (key, None), (None, model)):
            script = self._scripts.get(where)
            if script is not None and (step := script.take()) is not None:
                return step
        return self.script.take() or Step("ok")

    def answer(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        """Record one request and build its reply (what the sender and transports share)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        route = _route(url, payload)
        if route is None:
            error = {"error": {"message": f"no such endpoint: {method} {url}", "code": 404}}
            return _Answer(404, dict(_JSON), (json.dumps(error).encode(),))
        wire, model, stream = route
        key = _key(lowered, url)
        with self._lock:
            step = self._next_step(key, model)
            self.calls.append(
                Call(wire, key, model, stream, step.kind, url, payload, dict(lowered))
            )
            self._ids += 1
            number = self._ids
        return self._build(step, wire, model, stream, payload, number)

    def _build(
        self,
        step: Step,
        wire: str,
        model: str,
        stream: bool,
        payload: dict[str, Any],
        number: int,
    ) -> _Answer:
        if step.kind == "connection_error":
            return _Answer(0, {}, (), connection_error=True)
        if step.kind == "hang":
            return _Answer(504, {}, (), latency=math.inf)
        answer = self._reply(step, wire, model, stream, payload, number)
        return replace(answer, latency=step.latency) if step.latency else answer

    def _reply(
        self,
        step: Step,
        wire: str,
        model: str,
        stream: bool,
        payload: dict[str, Any],
        number: int,
    ) -> _Answer:
        if step.kind in _ERRORS:
            status, error, extra = error_reply(wire, step.kind, step.retry_after)
            return _Answer(status, {**_JSON, **extra}, (json.dumps(error).encode(),))
        text = self.text if step.text is None else step.text
        calls: tuple[SimToolCall, ...] = tuple(
            (_call_id(wire, number, index), name, args)
            for index, (name, args) in enumerate(step.tool_calls)
        )
        words = text.split(" ")
        pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
        usage = (max(1, len(json.dumps(payload)) // 16), max(1, len(words)))
        cut = step.cut_after if step.kind == "cut" else None
        if wire == "responses":
            return _responses(model, payload, text, pieces, usage, calls, stream, cut)
        if not stream:
            reply = json.dumps(reply_body(wire, model, text, usage, tool_calls=calls))
            return _Answer(200, dict(_JSON), (reply[:40].encode() if cut else reply.encode(),))
        events = list(stream_events(wire, model, pieces, usage, tool_calls=calls))
        if cut is not None:
            events = events[: (3 if wire == "anthropic" else 0) + cut]
        return _stream(wire, events)


def _call_id(wire: str, number: int, index: int) -> str:
    prefix = "toolu_scripted" if wire == "anthropic" else "call_scripted"
    return f"{prefix}_{number}_{index}"


def _stream(wire: str, events: Sequence[tuple[str | None, str]]) -> _Answer:
    if wire == "ollama":
        chunks = tuple((data + "\n").encode() for _, data in events)
        return _Answer(200, {"content-type": "application/x-ndjson"}, chunks)
    chunks = tuple(
        ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()
        for name, data in events
    )
    return _Answer(200, {"content-type": "text/event-stream"}, chunks)


def _responses(
    model: str,
    payload: dict[str, Any],
    text: str,
    pieces: list[str],
    usage: tuple[int, int],
    calls: tuple[SimToolCall, ...],
    stream: bool,
    cut: int | None,
) -> _Answer:
    """An OpenAI Responses API reply: a ``response`` object, or its events."""
    output: list[dict[str, Any]]
    if calls:
        output = [
            call_item(new_id("fc_"), call_id, name, json.dumps(args), "completed")
            for call_id, name, args in calls
        ]
    else:
        output = [message_item(new_id("msg_"), text, "completed")]
    response = response_object(
        new_id("resp_"),
        int(time.time()),
        model,
        payload,
        status="completed",
        output=output,
        usage=usage_body(*usage),
    )
    if not stream:
        reply = json.dumps(response)
        return _Answer(200, dict(_JSON), (reply[:40].encode() if cut else reply.encode(),))
    events, first, _ = response_events(response, pieces)
    if cut is not None:
        events = events[: first + cut]
    return _stream("responses", events)


_GEMINI = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
_AZURE = re.compile(r"/openai/deployments/([^/]+)/chat/completions$")


def _route(url: str, payload: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    """(wire, model, stream) of a request to ``url``, or ``None`` for no known endpoint."""
    parts = urlsplit(url)
    path = unquote(parts.path).rstrip("/")
    model = str(payload.get("model", ""))
    stream = payload.get("stream") is True
    if match := _GEMINI.search(path):
        return "gemini", match[1], match[2] == "streamGenerateContent"
    if match := _AZURE.search(path):
        return "openai", match[1], stream
    if path.endswith("/chat/completions"):
        return "openai", model, stream
    if path.endswith("/responses"):
        return "responses", model, stream
    if path.endswith("/messages"):
        return "anthropic", model, stream
    if path.endswith("/api/chat"):
        return "ollama", model, payload.get("stream", True) is not False
    return None


def _key(headers: Mapping[str, str], url: str) -> str:
    """The API key, wherever the request's wire carries it."""
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        if headers.get(name):
            return headers[name]
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:]
    return parse_qs(urlsplit(url).query).get("key", [""])[0]


# -- the sender --------------------------------------------------------------------------------


class _Reply:
    """A scripted reply in the shape of ``failover.http.Reply``."""

    def __init__(self, answer: _Answer) -> None:
        self._answer = answer

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The reply headers."""
        return self._answer.headers

    async def aread(self) -> bytes:
        """The whole body."""
        return b"".join(self._answer.chunks)

    async def aiter_text(self) -> AsyncIterator[str]:
        """The body's chunks as text."""
        for chunk in self._answer.chunks:
            yield chunk.decode()

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body line by line (blank lines included, as httpx yields them)."""
        pending = ""
        for chunk in self._answer.chunks:
            pending += chunk.decode()
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line
        if pending:
            yield pending


class _Opened:
    """One request's context manager."""

    def __init__(self, provider: ScriptedProvider, request: HttpRequest) -> None:
        self._provider = provider
        self._request = request

    async def __aenter__(self) -> _Reply:
        request = self._request
        answer = self._provider.answer(request.method, request.url, request.headers, request.body)
        if answer.latency:
            await anyio.sleep(answer.latency)
        if answer.connection_error:
            raise ProviderConnectionError("scripted connection error")
        return _Reply(answer)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class ScriptedSender:
    """A ``failover.http.Sender`` answered by a :class:`ScriptedProvider`, without I/O."""

    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Opened:
        """Answer ``request`` from the script on entering."""
        return _Opened(self.provider, request)


# -- the transport ----------------------------------------------------------------------------


class ScriptedTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx/httpx2 transport (async and sync) answered by a :class:`ScriptedProvider`.

    It answers requests of either library with that library's ``Response``; a ``cut``
    stream simply ends early, a ``connection_error`` raises the library's ``ConnectError``.
    It is an ``httpx.AsyncBaseTransport`` and an ``httpx.BaseTransport``, so
    ``httpx.AsyncClient(transport=scripted.transport())`` type-checks too.
    """

    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider

    def _answer(self, request: Any, body: bytes) -> tuple[Any, _Answer]:
        library = library_of(request)
        answer = self.provider.answer(request.method, str(request.url), request.headers, body)
        if answer.connection_error:
            raise library.ConnectError("scripted connection error", request=request)
        return library, answer

    async def handle_async_request(self, request: Any) -> Any:
        """Answer an async client's request."""
        library, answer = self._answer(request, await request.aread())
        if answer.latency:
            await anyio.sleep(answer.latency)
        chunks = answer.chunks

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return library.Response(
            answer.status, headers=answer.headers, content=body(), request=request
        )

    def handle_request(self, request: Any) -> Any:
        """Answer a sync client's request."""
        library, answer = self._answer(request, request.read())
        if math.isinf(answer.latency):
            raise library.ReadTimeout("scripted hang", request=request)
        if answer.latency:
            time.sleep(answer.latency)
        chunks = answer.chunks

        def body() -> Iterator[bytes]:
            yield from chunks

        return library.Response(
            answer.status, headers=answer.headers, content=body(), request=request
        )
