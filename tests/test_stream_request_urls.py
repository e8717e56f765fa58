"""HttpxSender parses each distinct URL once and sends every request where its URL says.

A request made with a parsed URL parses nothing (parsing is about half the work of making
an httpx request, a stream's first chunk waits for it): the sender keeps the URLs it has
parsed, a bounded number of them.
"""

from __future__ import annotations

import httpx
import pytest

from failover.http import _URLS_KEPT, HttpxSender
from failover.providers.base import HttpRequest


def _recording(params: dict[str, str] | None = None) -> tuple[HttpxSender, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"{}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), params=params)
    return HttpxSender(client), seen


async def _send(sender: HttpxSender, url: str) -> None:
    async with sender.open(HttpRequest("POST", url, {}, b"{}"), 10.0) as reply:
        assert reply.status_code == 200


async def test_each_request_goes_where_its_url_says_each_url_parsed_once() -> None:
    sender, seen = _recording()
    urls = [
        "http://a.test/v1/chat/completions",
        "http://b.test:8080/v1beta/models/m:streamGenerateContent?alt=sse",
        "http://a.test/v1/chat/completions",
    ]
    for url in urls:
        await _send(sender, url)
    assert seen == urls
    assert sorted(sender._urls) == sorted(set(urls))


async def test_a_client_s_own_params_apply_as_httpx_applies_them() -> None:
    params = {"api-version": "2024-10-21"}
    sender, seen = _recording(params)
    for _ in range(2):
        await _send(sender, "http://a.test/v1/chat?x=1")
    # what httpx itself makes of the URL's string (its params replace the query)
    expected = httpx.AsyncClient(params=params).build_request("POST", "http://a.test/v1/chat?x=1")
    assert seen == [str(expected.url)] * 2


async def test_the_parsed_urls_kept_are_bounded() -> None:
    sender, seen = _recording()
    for number in range(_URLS_KEPT + 3):
        await _send(sender, f"http://a.test/v1/{number}")
    assert len(sender._urls) <= _URLS_KEPT
    assert seen[-1] == f"http://a.test/v1/{_URLS_KEPT + 2}"


async def test_an_invalid_url_raises_as_httpx_does_and_is_not_kept() -> None:
    sender, _ = _recording()
    with pytest.raises(httpx.InvalidURL):
        await _send(sender, "http://[::1/v1")
    assert not sender._urls
