"""The transport reads and writes httpx's and httpx2's header lists directly; headers of
any other make go through the public ``Headers`` methods. Both ways must give the same
headers: what the transport reads of an SDK request, the key written into the attempt's
copy, and the reply's headers as the SDK sees them."""

from __future__ import annotations

import json
import uuid
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from failover import transport_guard, transport_rewrite
from failover._secrets import KeyScrubber
from failover.catalog import ModelEntry
from failover.profiles import AuthProfile
from failover.request import AttemptContext
from failover.transport_guard import BODY_HEADERS, served_headers
from failover.transport_rewrite import adjust, sdk_headers

LIBRARIES = pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
KEY = "sk-proj-items-key-0000000000001"
SDK_KEY = "sk-proj-sdk-own-key-00000000002"


def _both(monkeypatch: pytest.MonkeyPatch, run: Any) -> tuple[Any, Any]:
    """``run()`` reading the header lists, then through the public methods only."""
    direct = run()
    with monkeypatch.context() as patched:
        patched.setattr(transport_rewrite, "header_items", lambda headers: None)
        patched.setattr(transport_guard, "header_items", lambda headers: None)
        public = run()
    return direct, public


def _sdk_request(library: ModuleType, auth: list[tuple[bytes, bytes]]) -> Any:
    headers = [(b"Host", b"api.openai.com"), *auth, (b"X-Stainless-Retry-Count", b"1")]
    headers += [(b"X-Failover-Session", "caf\xe9".encode("latin-1")), (b"Accept", b"*/*")]
    return library.Request("POST", "https://api.openai.com/v1/chat/completions", headers=headers)


def _ctx() -> AttemptContext:
    profile = AuthProfile(name="a", provider="openai", api_key=KEY)
    model = ModelEntry(id="gpt-4o-mini", name="GPT-4o mini", provider="openai", api="openai")
    return AttemptContext(profile, model, "https://api.openai.com/v1", 1, "r1", 30.0)


AUTHS = {
    "bearer": [(b"Authorization", f"Bearer {SDK_KEY}".encode())],
    "repeated": [(b"Authorization", b"Bearer one"), (b"authorization", b"Bearer two")],
    "another header": [(b"X-Api-Key", SDK_KEY.encode())],
    "none": [],
}


@LIBRARIES
@pytest.mark.parametrize("auth", list(AUTHS))
def test_the_key_is_written_alike_either_way(
    library: ModuleType, auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> tuple[Any, ...]:
        request = _sdk_request(library, AUTHS[auth])
        read = sdk_headers(request.headers)
        style = next(iter(read.credentials), "authorization")
        own = adjust(request, library, request.url, _ctx(), style, read.credentials)
        sent = request.headers.raw
        return read.credentials, read.session, read.retries, sent, own.raw

    direct, public = _both(monkeypatch, run)
    assert direct == public
    _, session, retries, sent, own = direct
    assert (session, retries) == ("café", "1")
    keys = [value for name, value in sent if name.lower() in (b"authorization", b"x-api-key")]
    assert keys == [f"Bearer {KEY}".encode() if auth != "another header" else KEY.encode()]
    assert SDK_KEY.encode() not in b"".join(value for _, value in sent)
    assert KEY.encode() not in b"".join(value for _, value in own)  # the SDK's stay its own


REPLIES = {
    "plain": [(b"Content-Type", b"application/json"), (b"Content-Length", b"12")],
    "served already": [(b"x-failover-model", b"old"), (b"Content-Encoding", b"gzip")],
    "echoes the key": [(b"X-Echo", f"key={KEY}".encode()), (b"content-length", b"3")],
    "not ascii": [(b"X-Note", "caf\xe9".encode("latin-1")), (b"Content-Length", b"3")],
}


@LIBRARIES
@pytest.mark.parametrize("reply", list(REPLIES))
def test_reply_headers_are_shown_alike_either_way(
    library: ModuleType, reply: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> list[tuple[bytes, bytes]]:
        headers = library.Headers([(b"Date", b"today"), *REPLIES[reply]])
        served = served_headers("openai", "gpt-4o-mini")
        shown = transport_guard._shown(headers, KeyScrubber([KEY]), BODY_HEADERS, served)
        raw: list[tuple[bytes, bytes]] = shown.raw
        return raw

    direct, public = _both(monkeypatch, run)
    assert direct == public
    names = [name.lower() for name, _ in direct]
    assert not set(names) & {b"content-length", b"content-encoding"}
    assert names.count(b"x-failover-model") == 1
    assert (b"x-failover-model", b"gpt-4o-mini") in direct
    assert KEY.encode() not in b"".join(value for _, value in direct)


MADE = {
    "ascii": [("Host", "127.0.0.1:9"), ("x-api-key", KEY), ("Content-Length", "12")],
    "repeated": [("accept", "a"), ("Accept", "b")],
    "not ascii": [("x-note", "caf\xe9"), ("content-type", "application/json")],
    "bytes": [(b"Host", b"example.com"), ("accept", "*/*")],
    "a line break": [("x-a", "one\ntwo"), ("x-b", "three")],
}


@LIBRARIES
@pytest.mark.parametrize("pairs", list(MADE))
def test_made_headers_are_the_librarys_own(library: ModuleType, pairs: str) -> None:
    given: Any = MADE[pairs]
    if pairs == "not ascii":  # the library refuses it: so does made_headers, alike
        with pytest.raises(UnicodeEncodeError) as refused:
            library.Headers(given)
        with pytest.raises(UnicodeEncodeError) as raised:
            transport_rewrite.made_headers(library, given)
        assert str(raised.value) == str(refused.value)
        return
    expected = library.Headers(given)
    made = transport_rewrite.made_headers(library, given)
    assert type(made) is library.Headers
    assert made.raw == expected.raw
    assert made.multi_items() == expected.multi_items()
    request = library.Request("GET", "http://h/", headers=made)
    assert request.headers.raw == library.Request("GET", "http://h/", headers=expected).headers.raw


@LIBRARIES
def test_a_translated_request_is_built_as_the_library_builds_it(library: ModuleType) -> None:
    from failover.providers.base import HttpRequest
    from failover.transport_io import _built, _target

    headers = {"x-api-key": KEY, "content-type": "application/json"}
    body = b'{"model": "m"}'
    fresh = uuid.uuid4().hex  # a URL no other test built
    _target.cache_clear()  # room for what this test builds
    for url in (
        f"http://127.0.0.1:9/{fresh}/messages",
        f"http://127.0.0.1:9/{fresh}/models/claude@20250929:rawPredict",  # not credentials
        f"http://127.0.0.1:9/{fresh}?key={KEY}",
        f"http://user:{KEY}@127.0.0.1:9/{fresh}/messages",
    ):
        kept = _target.cache_info().currsize
        built = _built(library, HttpRequest("POST", url, headers, body), {"timeout": {}})
        expected = library.Request("POST", url, headers=headers, content=body)
        assert (built.method, str(built.url), built.headers.raw) == (
            expected.method,
            str(expected.url),
            expected.headers.raw,
        )
        assert built.content == body
        # an endpoint's URL is parsed once; one with a query or credentials (they may hold
        # a key) each time, never kept
        secret = "?" in url or "user:" in url
        assert _target.cache_info().currsize == kept + (0 if secret else 1)


def _as_json_loads(body: bytes) -> Any:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


BODIES = [
    b'{"model": "gpt-4o-mini", "stream": true}',
    b' \n{"a": 1} \r\n',
    '{"a": "caf\u00e9 \U0001f600"}'.encode(),
    '{"a": "caf\u00e9"}'.encode("utf-16-le"),
    '{"a": "caf\u00e9"}'.encode("utf-8-sig"),
    b'{"a": NaN, "b": Infinity}',
    b'{"a": 1} trailing',
    b'{"a": 1',
    b'{"a": "\xff"}',
    b"[1, 2]",
    b"",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_sdks_body_is_read_as_json_loads_reads_it(body: bytes) -> None:
    read = transport_rewrite.json_object(body)
    expected = _as_json_loads(body) if body.lstrip().startswith(b"{") else None
    assert repr(read) == repr(expected)  # (NaN is not equal to itself)
