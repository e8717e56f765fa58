"""HttpxSender parses each distinct URL once, merges each set of headers once, and sends
every request where its URL says with the headers httpx would merge.

A request made with a parsed URL parses nothing (parsing is about half the work of making
an httpx request, a stream's first chunk waits for it), and merging the client's headers
with a request's normalises every one of them: the sender keeps the URLs it has parsed and
the headers it has merged (a bounded number of each), the latter only while the client's
own headers are the ones they were merged with.
"""

from __future__ import annotations

import httpx
import pytest

from failover.http import _HEADERS_KEPT, _URLS_KEPT, HttpxSender
from failover.providers.base import HttpRequest


def _recording(
    params: dict[str, str] | None = None, headers: list[httpx.Headers] | None = None
) -> tuple[HttpxSender, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if headers is not None:
            headers.append(request.headers)
        return httpx.Response(200, content=b"{}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), params=params)
    return HttpxSender(client), seen


async def _send(
    sender: HttpxSender, url: str, headers: dict[str, str] | None = None, body: bytes = b"{}"
) -> None:
    request = HttpRequest("POST", url, headers or {}, body)
    async with sender.open(request, 10.0) as reply:
        assert reply.status_code == 200


def _as_httpx_sends(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> object:
    """The headers httpx itself sends for ``headers`` on ``client`` (in order)."""
    request = client.build_request("POST", "http://a.test/v1", headers=headers, content=body)
    return request.headers.multi_items()


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


async def test_the_headers_sent_are_httpx_s_merge_every_time() -> None:
    sent: list[httpx.Headers] = []
    sender, _ = _recording(headers=sent)
    client = sender.client
    assert isinstance(client, httpx.AsyncClient)
    first = {"authorization": "Bearer sk-one", "content-type": "application/json"}
    second = {"authorization": "Bearer sk-two", "user-agent": "mine"}  # overrides the client's
    calls = [(first, b"{}"), (second, b'{"a": 1}'), (first, b'{"much": "longer"}')]
    for headers, body in calls:
        await _send(sender, "http://a.test/v1", headers, body)
    assert [h.multi_items() for h in sent] == [
        _as_httpx_sends(client, headers, body) for headers, body in calls
    ]
    assert sent[1]["user-agent"] == "mine"
    assert sent[2]["content-length"] == str(len(b'{"much": "longer"}'))


async def test_a_change_to_the_client_s_own_headers_applies_at_once() -> None:
    sent: list[httpx.Headers] = []
    sender, _ = _recording(headers=sent)
    client = sender.client
    assert isinstance(client, httpx.AsyncClient)
    headers = {"authorization": "Bearer sk-one"}
    await _send(sender, "http://a.test/v1", headers)
    client.headers["x-team"] = "blue"  # changed in place
    await _send(sender, "http://a.test/v1", headers)
    client.headers = {"x-team": "red"}  # replaced
    await _send(sender, "http://a.test/v1", headers)
    assert "x-team" not in sent[0]
    assert sent[1]["x-team"] == "blue"
    assert sent[2]["x-team"] == "red"
    assert all(h["authorization"] == "Bearer sk-one" for h in sent)


async def test_the_merged_headers_kept_are_bounded() -> None:
    sent: list[httpx.Headers] = []
    sender, _ = _recording(headers=sent)
    for number in range(_HEADERS_KEPT + 3):
        await _send(sender, "http://a.test/v1", {"authorization": f"Bearer sk-{number}"})
    assert len(sender._merged) <= _HEADERS_KEPT
    assert sent[-1]["authorization"] == f"Bearer sk-{_HEADERS_KEPT + 2}"
