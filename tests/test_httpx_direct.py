"""HttpxSender sends through a plain client's transport directly: what the client is
configured with still applies, a client with auth, params, cookies or event hooks goes
through ``client.send``, and no cookie a reply sets links the requests of different keys."""

from __future__ import annotations

import logging
from collections.abc import Generator
from types import ModuleType
from typing import Any

import httpx
import pytest

from failover import AuthProfile, ProviderConnectionError, ResilientClient
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

ASK = [{"role": "user", "content": "hi"}]
REPLY = {
    "id": "x",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
KEYS = ["sk-direct-key-a-000000000001", "sk-direct-key-b-000000000002"]


class Upstream:
    """Answers 429 to the first key and 200 to the others, setting a cookie each time;
    keeps every request it gets."""

    def __init__(self, library: ModuleType) -> None:
        self.library = library
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        status = 429 if KEYS[0] in request.headers.get("authorization", "") else 200
        return self.library.Response(
            status,
            json=REPLY if status == 200 else {"error": {"message": "slow down"}},
            headers={"set-cookie": "session=tracking-cookie; Path=/"},
        )


def _profiles(base_url: str = "http://upstream.test/v1") -> list[AuthProfile]:
    return [
        AuthProfile(f"k{index}", "openai", key, base_url=base_url, priority=index)
        for index, key in enumerate(KEYS)
    ]


@pytest.fixture(params=["httpx", "httpx2"])
def library(request: pytest.FixtureRequest) -> ModuleType:
    """httpx, and httpx2 where it is installed (the dev extra; not the lowest versions' run)."""
    return httpx if request.param == "httpx" else pytest.importorskip(request.param)


async def test_a_plain_client_sends_no_cookie_a_reply_set(library: ModuleType) -> None:
    upstream = Upstream(library)
    http = library.AsyncClient(transport=library.MockTransport(upstream))
    client = ResilientClient(["openai/gpt-4o-mini"], _profiles(), http_client=http)
    for _ in range(2):  # the first key's 429 (it then rests), then the second key twice
        assert (await client.complete(ASK)).text == "pong"
    await client.aclose()
    await http.aclose()
    keys = [
        request.headers["authorization"].removeprefix("Bearer ") for request in upstream.requests
    ]
    assert keys == [KEYS[0], KEYS[1], KEYS[1]]
    assert all("cookie" not in request.headers for request in upstream.requests)


async def test_a_plain_clients_headers_and_mounts_apply(library: ModuleType) -> None:
    upstream = Upstream(library)
    unused = Upstream(library)
    http = library.AsyncClient(
        transport=library.MockTransport(unused),
        mounts={"http://mounted.test": library.MockTransport(upstream)},
        headers={"x-team": "search", "user-agent": "team-agent/1", "Content-Type": "text/plain"},
    )
    profiles = _profiles("http://mounted.test/v1")[1:]
    client = ResilientClient(["openai/gpt-4o-mini"], profiles, http_client=http)
    assert (await client.complete(ASK)).text == "pong"
    await client.aclose()
    await http.aclose()
    assert not unused.requests
    [request] = upstream.requests
    headers = request.headers
    assert headers["x-team"] == "search"
    assert headers["user-agent"] == "team-agent/1"
    assert headers.get_list("content-type") == ["application/json"]  # the request's own wins
    assert headers.get_list("authorization") == [f"Bearer {KEYS[1]}"]
    assert request.url == "http://mounted.test/v1/chat/completions"


class _Signed(httpx.Auth):
    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        request.headers["x-signed"] = "yes"
        yield request


def _configured(library: ModuleType, hooked: list[str]) -> dict[str, dict[str, Any]]:
    """Client settings only client.send applies, and how each shows in the request."""

    async def hook(request: Any) -> None:
        hooked.append(str(request.url))

    signed = type("Signed", (library.Auth,), {"auth_flow": _Signed.auth_flow})()
    return {
        "cookies": {"cookies": {"sticky": "node-3"}},
        "params": {"params": {"api-version": "7"}},
        "auth": {"auth": signed},
        "event_hooks": {"event_hooks": {"request": [hook]}},
    }


@pytest.mark.parametrize("setting", ["cookies", "params", "auth", "event_hooks"])
async def test_a_client_with_settings_of_its_own_sends_through_them(
    library: ModuleType, setting: str
) -> None:
    upstream = Upstream(library)
    hooked: list[str] = []
    http = library.AsyncClient(
        transport=library.MockTransport(upstream), **_configured(library, hooked)[setting]
    )
    client = ResilientClient(["openai/gpt-4o-mini"], _profiles()[1:], http_client=http)
    assert (await client.complete(ASK)).text == "pong"
    await client.aclose()
    await http.aclose()
    [request] = upstream.requests
    shown = {
        "cookies": request.headers.get("cookie") == "sticky=node-3",
        "params": request.url.params.get("api-version") == "7",
        "auth": request.headers.get("x-signed") == "yes",
        "event_hooks": hooked == ["http://upstream.test/v1/chat/completions"],
    }
    assert shown[setting]


async def test_a_plain_client_logs_and_names_its_requests_as_httpx_does(
    library: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(request: Any) -> Any:
        if KEYS[0] in request.headers["authorization"]:
            raise library.ConnectError("connection refused")
        return library.Response(200, json=REPLY)

    http = library.AsyncClient(transport=library.MockTransport(refuse))
    client = ResilientClient(["openai/gpt-4o-mini"], _profiles(), http_client=http)
    with caplog.at_level(logging.INFO, logger=library.__name__):
        result = await client.complete(ASK)
    await client.aclose()
    await http.aclose()
    refused = result.attempts[0].error
    assert isinstance(refused, ProviderConnectionError)
    assert isinstance(refused.__cause__, library.ConnectError)
    assert refused.__cause__.request.url == "http://upstream.test/v1/chat/completions"
    assert [
        record.getMessage() for record in caplog.records if record.name == library.__name__
    ] == ['HTTP Request: POST http://upstream.test/v1/chat/completions "HTTP/1.1 200 OK"']


async def test_a_closed_client_sends_nothing(library: ModuleType) -> None:
    upstream = Upstream(library)
    http = library.AsyncClient(transport=library.MockTransport(upstream))
    client = ResilientClient(["openai/gpt-4o-mini"], _profiles()[1:], http_client=http)
    await http.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.complete(ASK)
    await client.aclose()
    assert not upstream.requests
