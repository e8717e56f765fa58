"""Hostile replies end in typed errors: whatever JSON a server sends, every adapter's reply
parser, stream parser and error reader gives a result or a FailoverError, never a raw
Python exception; odd usage never fails a good reply (usage unknown, logged)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import FailoverError, ProviderError
from failover.providers import get_adapter
from failover.providers.base import FINISH_REASONS, ChatResult, HttpRequest, StreamChunk, ToolCall

WIRES = ["openai", "azure", "anthropic", "gemini", "ollama-native"]

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["abc", "1e400", "tool_use", "STOP", "SAFETY", "text", "function"])
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(
                [
                    "choices",
                    "message",
                    "content",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                    "usage",
                    "prompt_tokens",
                    "type",
                    "text",
                    "input",
                    "id",
                    "candidates",
                    "parts",
                    "functionCall",
                    "args",
                    "finishReason",
                    "usageMetadata",
                    "done",
                    "delta",
                    "index",
                    "stop_reason",
                    "error",
                    "code",
                    "details",
                    "refusal",
                    "partial_json",
                    "content_block",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)

GOOD = {
    "openai": {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    },
    "anthropic": {
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 1},
    },
    "gemini": {
        "candidates": [
            {
                "content": {"parts": [{"text": "hi"}, {"functionCall": {"name": "f", "args": {}}}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2},
    },
    "ollama-native": {
        "message": {
            "role": "assistant",
            "content": "hi",
            "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
        },
        "done": True,
        "prompt_eval_count": 5,
        "eval_count": 2,
    },
}
GOOD["azure"] = GOOD["openai"]
USAGE_PATHS = {
    "openai": ("usage", "prompt_tokens"),
    "azure": ("usage", "completion_tokens"),
    "anthropic": ("usage", "input_tokens"),
    "gemini": ("usageMetadata", "promptTokenCount"),
    "ollama-native": (None, "eval_count"),
}


def check_result(result: ChatResult) -> None:
    assert isinstance(result.text, str)
    assert result.finish_reason is None or result.finish_reason in FINISH_REASONS
    for call in result.tool_calls:
        assert isinstance(call, ToolCall)
        assert isinstance(call.id, str) and isinstance(call.name, str)
        assert isinstance(call.arguments, str)
    json.dumps(result.message)


def parse_any(wire: str, body: bytes) -> None:
    try:
        result = get_adapter(wire).parse_response(body)
    except FailoverError:
        return
    check_result(result)


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with one subtree replaced by arbitrary JSON."""
    if isinstance(template, dict) and template and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(template)))
        return {**template, key: draw(mutated(template[key]))}
    if isinstance(template, list) and template and draw(st.booleans()):
        index = draw(st.integers(0, len(template) - 1))
        copy = list(template)
        copy[index] = draw(mutated(template[index]))
        return copy
    return draw(json_values)


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(data=st.data())
def test_any_json_reply_gives_a_result_or_a_failover_error(wire: str, data: st.DataObject) -> None:
    body = data.draw(json_values | mutated(GOOD[wire]))
    parse_any(wire, json.dumps(body).encode())


@pytest.mark.parametrize("wire", WIRES)
@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_reply_gives_a_result_or_a_failover_error(wire: str, raw: bytes) -> None:
    parse_any(wire, raw)


STREAM_EVENTS = st.sampled_from(
    [
        "",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "error",
        "ping",
    ]
)


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(events=st.lists(st.tuples(STREAM_EVENTS, json_values), max_size=6))
def test_any_stream_events_give_chunks_or_a_failover_error(
    wire: str, events: list[tuple[str, Any]]
) -> None:
    parser = get_adapter(wire).stream_parser()
    for name, data in events:
        try:
            chunk = parser.feed(name, json.dumps(data))
        except FailoverError:
            return
        assert chunk is None or isinstance(chunk, StreamChunk)


HEADER_VALUES = st.text(max_size=30) | st.sampled_from(
    ["9" * 400 + "s", "1e400", "Fri, 31 Dec 99999999999 23:59:59 GMT", "-5", "nan", "1000000000000"]
)


@pytest.mark.parametrize("wire", WIRES)
@SETTINGS
@given(
    status=st.sampled_from([400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529]),
    body=json_values
    | mutated(
        {
            "error": {
                "code": 429,
                "message": "m",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}
                ],
            }
        }
    ),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "retry-after",
                "retry-after-ms",
                "x-ratelimit-reset-requests",
                "x-ratelimit-reset-tokens",
                "anthropic-ratelimit-requests-reset",
            ]
        ),
        HEADER_VALUES,
        max_size=3,
    ),
)
def test_any_error_reply_becomes_a_provider_error(
    wire: str, status: int, body: Any, headers: dict[str, str]
) -> None:
    error = get_adapter(wire).parse_error(status, headers, json.dumps(body).encode())
    assert isinstance(error, ProviderError)


ODD_COUNTS = st.sampled_from(["abc", {"n": 1}, [1], 1e400, -3, 2.5, True, float("nan"), 10**30])


@pytest.mark.parametrize("wire", WIRES)
@settings(max_examples=30, deadline=None)
@given(odd=ODD_COUNTS)
def test_odd_usage_never_fails_a_good_reply(wire: str, odd: Any) -> None:
    body = json.loads(json.dumps(GOOD[wire]))
    parent, name = USAGE_PATHS[wire]
    (body[parent] if parent else body)[name] = odd
    result = get_adapter(wire).parse_response(json.dumps(body).encode())
    assert result.text == "hi" and [c.name for c in result.tool_calls] == ["f"]
    assert result.usage_known is False and result.usage.input_tokens == 0


def test_odd_usage_is_logged_and_prices_nothing(caplog: pytest.LogCaptureFixture) -> None:
    body = {**GOOD["anthropic"], "usage": {"input_tokens": "abc", "output_tokens": 2}}
    with caplog.at_level(logging.WARNING, logger="failover.providers"):
        result = get_adapter("anthropic").parse_response(json.dumps(body).encode())
    assert not result.usage_known
    assert "usage field 'input_tokens' not understood" in caplog.text


@pytest.mark.parametrize(
    ("wire", "body", "field"),
    [
        ("openai", {"choices": [{"message": "hi"}]}, "choices[0].message"),
        ("openai", {"choices": [{"message": {"content": 5}}]}, "content is not text"),
        ("anthropic", {"content": [{"type": "text", "text": 5}]}, "content[0].text"),
        ("gemini", {"candidates": [{"content": {"parts": "x"}}]}, "parts is not a list"),
        ("ollama-native", {"message": {"content": ["x"]}}, "message.content"),
    ],
)
def test_a_reply_the_adapter_does_not_understand_names_the_field(
    wire: str, body: Any, field: str
) -> None:
    from failover import MalformedResponseError

    with pytest.raises(MalformedResponseError, match=field.replace("[", r"\[").replace("]", r"\]")):
        get_adapter(wire).parse_response(json.dumps(body).encode())


@SETTINGS
@given(
    status=st.sampled_from([400, 403, 404, 429, 500, 503, 529]),
    body=json_values
    | mutated({"error": {"code": 429, "details": [{"violations": [{"quotaId": "PerDay"}]}]}})
    | mutated(
        {"type": "error", "error": {"type": "rate_limit_error", "details": {"error_code": "x"}}}
    ),
)
def test_the_classifier_reads_any_error_body_without_help(status: int, body: Any) -> None:
    from failover.classify import classify_http_error

    assert isinstance(classify_http_error(status, {}, json.dumps(body).encode()), ProviderError)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
def test_a_reply_body_in_any_json_encoding_is_read(encoding: str) -> None:
    from failover.providers.base import load_json

    assert load_json('{"text": "héllo"}'.encode(encoding)) == {"text": "héllo"}


def test_a_body_that_is_not_text_is_malformed() -> None:
    from failover import MalformedResponseError
    from failover.providers.base import load_json

    with pytest.raises(MalformedResponseError):
        load_json(b'"\xff\xfe\xfa"')


# -- replies that are not valid text (issue 18) --------------------------------------------

LONE = "\ud83d"  # half of an emoji, as CESU-8 (Java's "modified UTF-8") encoders write one
JSON_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]


def good_text(wire: str, text: str) -> str:
    """GOOD[wire] as JSON text, its answer ``hi`` replaced by ``text``."""
    body = json.dumps(GOOD[wire], ensure_ascii=False)
    assert body.count('"hi"') == 1
    return body.replace('"hi"', json.dumps(text, ensure_ascii=False))


@pytest.mark.parametrize("encoding", JSON_ENCODINGS)
@pytest.mark.parametrize("wire", WIRES)
def test_a_reply_that_is_not_valid_text_is_malformed(wire: str, encoding: str) -> None:
    from failover import MalformedResponseError

    adapter = get_adapter(wire)
    assert adapter.parse_response(good_text(wire, "café 😀").encode(encoding)).text == "café 😀"
    broken = good_text(wire, f"café {LONE}").encode(encoding, "surrogatepass")
    with pytest.raises(MalformedResponseError, match="not valid utf-"):
        adapter.parse_response(broken)


def test_invalid_bytes_in_a_body_are_malformed_whatever_the_encoding_looks_like() -> None:
    from failover import MalformedResponseError
    from failover.providers.base import load_json

    for body in (b'{"a": "\xff"}', b'\xef\xbb\xbf{"a": "\xc3"}', b'{"a": "\xed\xb0\x80"}'):
        with pytest.raises(MalformedResponseError, match="not valid utf-8"):
            load_json(body)


STREAM_LINES = {  # one text event per wire, with {text} for its text
    "openai": ("", '{"choices": [{"delta": {"content": {text}}}]}'),
    "anthropic": (
        "content_block_delta",
        '{"type": "content_block_delta", "index": 0, '
        '"delta": {"type": "text_delta", "text": {text}}}',
    ),
    "gemini": ("", '{"candidates": [{"content": {"parts": [{"text": {text}}]}}]}'),
    "ollama-native": ("", '{"message": {"role": "assistant", "content": {text}}, "done": false}'),
}
STREAM_LINES["azure"] = STREAM_LINES["openai"]
UNDECODED = b"caf\xc3".decode("utf-8", "surrogateescape")  # a sender that keeps every byte


@pytest.mark.parametrize("wire", WIRES)
def test_a_stream_line_that_was_not_valid_utf8_is_malformed(wire: str) -> None:
    from failover import MalformedResponseError

    event, line = STREAM_LINES[wire]
    chunk = get_adapter(wire).stream_parser().feed(event, line.replace("{text}", '"café"'))
    assert chunk is not None and chunk.text == "café"
    with pytest.raises(MalformedResponseError, match="not valid utf-8"):
        get_adapter(wire).stream_parser().feed(event, line.replace("{text}", f'"{UNDECODED}"'))


CLIENT_WIRES = {  # provider -> (model, the simulator's name for its wire)
    "openai": ("openai/gpt-4o-mini", "openai"),
    "anthropic": ("anthropic/claude-haiku-4-5", "anthropic"),
    "gemini": ("gemini/gemini-2.5-flash-lite", "gemini"),
    "ollama-native": ("ollama-native/llama3.2", "ollama"),
}
BAD_KEY, GOOD_KEY = "sk-reply-test-bad-000000001", "sk-reply-test-good-00000002"
BROKEN = b"caf\xed\xa0\xbd"  # CESU-8's half of an emoji: bytes no UTF-8 decoder accepts
BAD_THEN_GOOD = [("bad", "malformed"), ("good", "ok")]


def wire_reply(provider: str, headers: Any, *, stream: bool) -> bytes:
    """A whole reply in ``provider``'s wire format as the simulator sends it: ``café``, or
    :data:`BROKEN` when the request carries :data:`BAD_KEY`."""
    from failover.testing.wire import reply_body, stream_events

    model, wire = CLIENT_WIRES[provider]
    model = model.partition("/")[2]
    text = BROKEN if any(BAD_KEY in value for value in headers.values()) else "café".encode()
    if not stream:
        body = json.dumps(reply_body(wire, model, "TEXT", (3, 1)))
    elif wire == "ollama":
        body = "".join(f"{data}\n" for _, data in stream_events(wire, model, ["TEXT"], (3, 1)))
    else:
        body = "".join(
            (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
            for name, data in stream_events(wire, model, ["TEXT"], (3, 1))
        )
    return body.encode().replace(b"TEXT", text)


def two_keys_client(provider: str, base_url: str | None = None, **sending: Any) -> Any:
    """A client for ``provider``'s model with a key that gets broken replies, then a good one."""
    from failover import AuthProfile, FailoverConfig, ResilientClient

    profiles = [
        AuthProfile("bad", provider, BAD_KEY, base_url=base_url, priority=0),
        AuthProfile("good", provider, GOOD_KEY, base_url=base_url, priority=1),
    ]
    model = CLIENT_WIRES[provider][0]
    # both keys share the provider's endpoint: the malformed reply's retry (one, without
    # sleeping under set_testing) goes to the key that has not failed
    return ResilientClient([model], profiles, config=FailoverConfig(max_retries=1), **sending)


@pytest.mark.parametrize("provider", sorted(CLIENT_WIRES))
async def test_a_reply_that_is_not_valid_text_fails_over_to_the_next_key(provider: str) -> None:
    import httpx

    def reply(request: httpx.Request) -> httpx.Response:
        body = wire_reply(provider, request.headers, stream=False)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(reply)) as http,
        two_keys_client(provider, http_client=http) as client,
    ):
        result = await client.complete([{"role": "user", "content": "hi"}])
    assert result.text == "café"
    assert [(a.profile, a.outcome) for a in result.attempts] == BAD_THEN_GOOD
    assert "not valid utf-8 text" in str(result.attempts[0].error)


class LosslessSender:
    """A sender (see failover.http.Sender) whose replies' text keeps every byte: what is not
    UTF-8 comes as lone surrogates (``surrogateescape``), as a lossless decoder hands it on."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    @asynccontextmanager
    async def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> AsyncIterator[Any]:
        body = wire_reply(self.provider, request.headers, stream=True)
        kind = "application/x-ndjson" if self.provider.startswith("ollama") else "text/event-stream"
        yield LosslessReply(body.decode("utf-8", "surrogateescape"), kind)


class LosslessReply:
    status_code = 200

    def __init__(self, text: str, content_type: str) -> None:
        self.headers = {"content-type": content_type}
        self.text = text

    async def aread(self) -> bytes:
        return self.text.encode("utf-8", "surrogateescape")

    async def aiter_text(self) -> AsyncIterator[str]:
        yield self.text

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.text.splitlines():
            yield line


@pytest.mark.parametrize("provider", sorted(CLIENT_WIRES))
async def test_a_stream_that_is_not_valid_text_fails_over_to_the_next_key(provider: str) -> None:
    async with (
        two_keys_client(provider, sender=LosslessSender(provider)) as client,
        client.stream([{"role": "user", "content": "hi"}]) as stream,
    ):
        text = "".join([chunk.text async for chunk in stream])
    assert text == "café"
    assert [(a.profile, a.outcome) for a in stream.attempts] == BAD_THEN_GOOD
    assert "not valid utf-8 text" in str(stream.attempts[0].error)


@pytest.mark.parametrize("provider", sorted(CLIENT_WIRES))
async def test_a_stream_through_httpx_that_is_not_valid_text_fails_over(provider: str) -> None:
    import httpx

    def reply(request: httpx.Request) -> httpx.Response:
        kind = "application/x-ndjson" if provider.startswith("ollama") else "text/event-stream"
        body = wire_reply(provider, request.headers, stream=True)
        return httpx.Response(200, content=body, headers={"content-type": kind})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(reply)) as http,
        two_keys_client(provider, http_client=http) as client,
        client.stream([{"role": "user", "content": "hi"}]) as stream,
    ):
        text = "".join([chunk.text async for chunk in stream])
    assert [(a.profile, a.outcome) for a in stream.attempts] == BAD_THEN_GOOD
    assert text == "café"


@pytest.mark.parametrize("provider", sorted(CLIENT_WIRES))
async def test_a_stream_through_aiohttp_that_is_not_valid_text_fails_over(provider: str) -> None:
    pytest.importorskip("aiohttp")
    import asyncio

    from failover.aiohttp_sender import AiohttpSender

    kind = "application/x-ndjson" if provider.startswith("ollama") else "text/event-stream"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        headers = dict(
            line.lower().split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line
        )
        await reader.readexactly(int(headers["content-length"]))
        body = wire_reply(provider, headers, stream=True)
        writer.write(
            f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    sender = AiohttpSender()
    async with server, two_keys_client(provider, sender=sender, base_url=base) as client:
        async with client.stream([{"role": "user", "content": "hi"}]) as stream:
            text = "".join([chunk.text async for chunk in stream])
        await sender.aclose()
    assert [(a.profile, a.outcome) for a in stream.attempts] == BAD_THEN_GOOD
    assert text == "café"


# -- replies that carry no answer at all (issue 18) ----------------------------------------

OPENAI_ANSWERLESS = [
    {"choices": [{"message": {}, "finish_reason": "stop"}]},
    {"choices": [{"message": {"role": "assistant"}, "finish_reason": "length"}]},
]


@pytest.mark.parametrize(
    ("wire", "body"),
    [
        *(("openai", body) for body in OPENAI_ANSWERLESS),
        *(("azure", body) for body in OPENAI_ANSWERLESS),
        ("anthropic", {"role": "assistant", "stop_reason": "end_turn", "usage": {}}),
        ("gemini", {"candidates": [{"index": 0}], "usageMetadata": {}}),
        ("ollama-native", {"message": {"role": "assistant"}, "done": True}),
    ],
)
def test_a_reply_without_any_answer_is_malformed(wire: str, body: Any) -> None:
    from failover import MalformedResponseError

    with pytest.raises(MalformedResponseError, match=r"no answer|no content"):
        get_adapter(wire).parse_response(json.dumps(body).encode())


def openai_reply(finish: str, **message: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", **message}, "finish_reason": finish}]}


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
AUDIO = {"id": "a1", "data": "", "expires_at": 0, "transcript": "hi"}


@pytest.mark.parametrize(
    ("wire", "body", "finish"),
    [  # what real providers send for an empty answer, a tool call, or thinking cut short
        ("openai", openai_reply("length", content="", refusal=None), "length"),
        ("openai", openai_reply("stop", content=None), "stop"),
        ("openai", openai_reply("tool_calls", content=None, tool_calls=[CALL]), "tool_calls"),
        ("openai", openai_reply("function_call", function_call=CALL["function"]), "tool_calls"),
        ("openai", openai_reply("stop", content=None, audio=AUDIO), "stop"),
        ("openai", openai_reply("length", reasoning_content="Let me think"), "length"),
        ("openai", openai_reply("length", reasoning="Let me think"), "length"),
        ("anthropic", {"content": [], "stop_reason": "end_turn"}, "stop"),
        ("gemini", {"candidates": [{"content": {}, "finishReason": "MAX_TOKENS"}]}, "length"),
        ("gemini", {"candidates": [{"finishReason": "STOP"}]}, "stop"),
        ("ollama-native", {"message": {"role": "assistant", "content": ""}, "done": True}, "stop"),
        ("ollama-native", {"message": {"thinking": "Hm"}, "done_reason": "length"}, "length"),
    ],
)
def test_an_empty_answer_a_provider_really_sends_is_a_result(
    wire: str, body: Any, finish: str
) -> None:
    result = get_adapter(wire).parse_response(json.dumps(body).encode())
    assert (result.text, result.finish_reason) == ("", finish)


def test_an_openai_refusal_without_content_is_a_content_block_not_malformed() -> None:
    from failover import ContentFilteredError

    body = openai_reply("stop", content=None, refusal="I can't help with that.")
    with pytest.raises(ContentFilteredError, match="can't help"):
        get_adapter("openai").parse_response(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ([], "reply is not an object"),
        ("choices", "reply is not an object"),
        ({"error": {"message": "upstream down"}}, "reply has no choices: "),
        ({"choices": []}, "reply has no choices: "),
        ({"choices": "abc"}, "reply has no choices: "),
        ({"choices": [["message"]]}, "reply has no choices: "),
        ({"choices": [{"finish_reason": "stop"}]}, "choices[0].message is not an object"),
        ({"choices": [{"message": ["content"]}]}, "choices[0].message is not an object"),
        ({"choices": [{"message": "pong"}]}, "choices[0].message is not an object"),
    ],
)
def test_an_openai_reply_of_another_outline_says_which_part_is_wrong(body: Any, said: str) -> None:
    with pytest.raises(FailoverError) as caught:
        get_adapter("openai").parse_response(json.dumps(body).encode())
    assert caught.value.kind == "malformed"
    assert str(caught.value.message).startswith(said)
    if said.startswith("reply has no choices"):
        assert json.dumps(body)[:20] in caught.value.message  # the body is shown
