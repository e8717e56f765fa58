"""What ResilientTransport reads of an SDK request's headers, and what it leaves in them.

The transport reads the SDK's credential headers, ``x-failover-session`` and
``x-stainless-retry-count`` in one pass over the raw header bytes, writes the attempt's key
into the SDK's own request for the time of the send, and puts the SDK's headers back after
it. These tests run the real openai and anthropic SDKs on an in-memory inner transport
(``httpx.MockTransport``: no socket) that records what the provider would have received.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from failover import AuthProfile, ResilientTransport
from failover.transport_rewrite import sdk_headers
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

SDK_KEY = "sk-the-sdks-own-key-0000000000"
PROFILE_KEY = "sk-proj-profile-key-00000000001"
ANTHROPIC_KEY = "sk-ant-profile-key-000000000002"
CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "pong"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


class Provider:
    """The inner transport: answers OpenAI chat and Anthropic messages, keeps the headers of
    each request as they were sent (the SDK's own request may be sent, then put back)."""

    def __init__(self, library: Any = httpx, *, openai_status: int = 200) -> None:
        self.seen: list[httpx.Headers] = []
        self.bodies: list[bytes] = []
        self.library = library
        self.openai_status = openai_status
        self.mock = library.MockTransport(self._answer)

    def _answer(self, request: Any) -> Any:
        self.seen.append(httpx.Headers(list(request.headers.raw)))
        self.bodies.append(request.content)
        if self.openai_status != 200 and request.url.path.endswith("/chat/completions"):
            return self.library.Response(self.openai_status, json={"error": {"message": "x"}})
        if request.url.path.endswith("/messages"):
            return self.library.Response(200, json=MESSAGE)
        return self.library.Response(200, json=CHAT)


class Keeping(httpx.AsyncBaseTransport, httpx2.AsyncBaseTransport):  # type: ignore[misc]
    """The SDK client's transport: passes each request on, and keeps it (as the SDK does)."""

    def __init__(self, inner: ResilientTransport) -> None:
        self.inner = inner
        self.sent: list[Any] = []

    async def handle_async_request(self, request: Any) -> Any:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


def _openai(transport: httpx.AsyncBaseTransport, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=SDK_KEY,
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        default_headers=headers or None,
        http_client=httpx.AsyncClient(transport=transport),
    )


def _transport(provider: Provider, **kwargs: Any) -> ResilientTransport:
    profiles = [AuthProfile("p", "openai", PROFILE_KEY, base_url="http://127.0.0.1:9/v1")]
    return ResilientTransport(profiles, provider="openai", inner=provider.mock, **kwargs)


async def test_the_provider_gets_the_profiles_key_and_the_sdks_request_keeps_its_own() -> None:
    provider = Provider()
    keeping = Keeping(_transport(provider))
    sdk = _openai(keeping)
    reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert reply.choices[0].message.content == "pong"
    (sent,) = provider.seen
    assert sent.get_list("authorization") == [f"Bearer {PROFILE_KEY}"]
    (held,) = keeping.sent
    assert held.headers.get_list("authorization") == [f"Bearer {SDK_KEY}"]
    assert PROFILE_KEY not in repr(held.headers.raw)
    assert [k.lower() for k, _ in held.headers.raw] == [k.lower() for k, _ in sent.raw]


async def test_every_credential_header_the_sdk_sent_is_replaced_by_one_and_put_back() -> None:
    provider = Provider()
    keeping = Keeping(_transport(provider))
    sdk = _openai(keeping, **{"x-api-key": "sk-a-second-sdk-key-000000000"})
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    (sent,) = provider.seen
    assert sent.get_list("authorization") == [f"Bearer {PROFILE_KEY}"]
    assert "x-api-key" not in sent
    (held,) = keeping.sent
    assert held.headers["authorization"] == f"Bearer {SDK_KEY}"
    assert held.headers["x-api-key"] == "sk-a-second-sdk-key-000000000"


async def test_the_profiles_key_goes_in_the_header_the_sdk_used() -> None:
    provider = Provider(httpx2)
    profiles = [AuthProfile("a", "anthropic", ANTHROPIC_KEY, base_url="http://127.0.0.1:9")]
    transport = ResilientTransport(profiles, provider="anthropic", inner=provider.mock)
    keeping = Keeping(transport)
    sdk = anthropic.AsyncAnthropic(
        api_key="sk-ant-sdk-own-key-00000000",
        base_url="http://127.0.0.1:9",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=keeping),
    )
    message = await sdk.messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "pong"  # type: ignore[union-attr]
    used = "x-api-key" if "x-api-key" in keeping.sent[0].headers else "authorization"
    value = ANTHROPIC_KEY if used == "x-api-key" else f"Bearer {ANTHROPIC_KEY}"
    http = httpx2.AsyncClient(transport=keeping)
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}
    reply = await http.post(
        "http://127.0.0.1:9/v1/messages", json=body, headers={"x-api-key": "sk-ant-own-00000000"}
    )
    assert reply.json()["content"][0]["text"] == "pong"
    first, second = provider.seen
    assert first.get_list(used) == [value]
    assert second.get_list("x-api-key") == [ANTHROPIC_KEY]
    assert "authorization" not in second
    assert keeping.sent[1].headers.get_list("x-api-key") == ["sk-ant-own-00000000"]


async def test_the_session_header_is_never_sent_on_to_the_provider() -> None:
    provider = Provider()
    transport = _transport(provider)
    sdk = _openai(transport, **{"X-Failover-Session": "conversation-1"})
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    (sent,) = provider.seen
    assert "x-failover-session" not in sent


async def test_a_client_numbering_its_own_retries_is_warned_of_once() -> None:
    provider = Provider()
    http = httpx.AsyncClient(transport=_transport(provider))
    url = "http://127.0.0.1:9/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for count in ("0", "2", "3"):
            headers = {"X-Stainless-Retry-Count": count, "Authorization": "Bearer sk-own"}
            (await http.post(url, json=body, headers=headers)).raise_for_status()
    retried = [str(w.message) for w in caught if "max_retries=0" in str(w.message)]
    assert len(retried) == 1 and "x-stainless-retry-count: 2" in retried[0]


async def test_a_translated_request_and_its_reply_carry_the_headers_their_bodies_need() -> None:
    provider = Provider(openai_status=503)
    profiles = [
        AuthProfile("p", "openai", PROFILE_KEY, base_url="http://127.0.0.1:9/v1"),
        AuthProfile("a", "anthropic", ANTHROPIC_KEY, base_url="http://127.0.0.1:9"),
    ]
    transport = ResilientTransport(
        profiles,
        provider="openai",
        inner=provider.mock,
        fallback_models=["anthropic/claude-haiku-4-5"],
        wait_for_recovery=False,
    )
    sdk = _openai(transport)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "pong"
    assert raw.headers["x-failover-provider"] == "anthropic"
    assert int(raw.headers["content-length"]) == len(raw.content)
    assert "content-encoding" not in raw.headers
    sent, body = provider.seen[-1], provider.bodies[-1]
    names = [name.lower() for name, _ in sent.raw]
    assert names[0] == b"host" and names[-1] == b"content-length"
    assert sent["host"] == "127.0.0.1:9"
    assert int(sent["content-length"]) == len(body)
    assert json.loads(body)["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert sent.get_list("x-api-key") == [ANTHROPIC_KEY]


@pytest.mark.parametrize("note", [b"plain", "caf\xe9".encode("latin-1")])
async def test_a_passed_through_reply_keeps_its_headers_with_who_served_it(note: bytes) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        headers = [
            (b"x-request-id", b"req_1"),
            (b"x-failover-model", b"spoofed-by-upstream"),
            (b"x-note", note),
            (b"x-echo", f"Bearer {PROFILE_KEY}".encode()),
        ]
        return httpx.Response(200, headers=headers, json=CHAT)

    profiles = [AuthProfile("p", "openai", PROFILE_KEY, base_url="http://127.0.0.1:9/v1")]
    transport = ResilientTransport(profiles, provider="openai", inner=httpx.MockTransport(answer))
    raw = await _openai(transport).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[]
    )
    assert raw.parse().choices[0].message.content == "pong"
    headers = raw.headers
    assert headers["x-request-id"] == "req_1"
    assert headers.get_list("x-failover-model") == ["gpt-4o-mini"]
    assert headers.get_list("x-failover-provider") == ["openai"]
    assert headers.raw[-2:] == [
        (b"x-failover-provider", b"openai"),
        (b"x-failover-model", b"gpt-4o-mini"),
    ]
    assert headers.get_list("x-note") == [note.decode("latin-1")]
    assert "content-length" not in headers
    assert PROFILE_KEY not in str(headers.raw)


def test_headers_read_in_one_pass_join_repeats_and_decode_as_the_library_does() -> None:
    headers = httpx.Headers(
        [
            (b"X-Api-Key", b"first"),
            (b"Authorization", b"Bearer sk-1"),
            (b"x-api-key", b"second"),
            (b"X-Failover-Session", "caf\xe9".encode("latin-1")),  # not UTF-8
            (b"X-Stainless-Retry-Count", b"0"),
        ]
    )
    read = sdk_headers(headers)
    assert read.credentials == {"authorization": "Bearer sk-1", "x-api-key": "first, second"}
    assert list(read.credentials) == ["authorization", "x-api-key"]  # the SDK's style first
    assert read.session == "café"
    assert read.retries == "0"
    assert sdk_headers(httpx.Headers({"content-type": "application/json"})).credentials == {}


def test_headers_without_any_the_transport_reads() -> None:
    body = json.dumps({"model": "gpt-4o-mini"}).encode()
    read = sdk_headers(httpx.Request("POST", "http://127.0.0.1:9/v1", content=body).headers)
    assert (read.credentials, read.session, read.retries) == ({}, None, None)


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_a_reply_built_with_its_body_read_is_the_one_the_library_builds(library: Any) -> None:
    """read_response skips the decoders, not what ``Response(content=...)`` leaves: the
    same headers (Content-Length added), the body, and a closed, consumed stream."""
    from failover.transport_guard import read_response

    request = library.Request("POST", "http://127.0.0.1/v1/chat/completions")
    body = b'{"id": "x", "choices": []}'
    ours = read_response(library, 200, [("content-type", "application/json")], body, request)
    theirs = library.Response(
        200, headers=[("content-type", "application/json")], content=body, request=request
    )
    assert list(ours.headers.raw) == list(theirs.headers.raw)
    assert (ours.content, ours.json()) == (theirs.content, theirs.json())
    assert (ours.is_closed, ours.is_stream_consumed) == (theirs.is_closed, True)


async def test_a_profile_added_later_makes_its_base_url_one_of_ours() -> None:
    provider = Provider()
    transport = _transport(provider)
    sdk = openai.AsyncOpenAI(
        api_key=SDK_KEY,
        base_url="http://127.0.0.2:9/v1",  # no profile's yet: not a host of ours
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    late_key = "sk-proj-added-later-key-000000000003"
    transport.manager.add_profile(
        AuthProfile("q", "openai", late_key, base_url="http://127.0.0.2:9/v1", priority=-1)
    )
    await sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    foreign, ours = provider.seen
    assert "authorization" not in foreign  # no key for a host no profile names
    assert ours.get_list("authorization") == [f"Bearer {late_key}"]
