"""A reply's rate-limit headroom reads the same whatever holds its headers.

Senders hand the engine their own header containers: a plain dict (in-memory senders,
tests), an ``httpx.Headers`` (the default sender), aiohttp's ``CIMultiDictProxy``, or
pyreqwest's ``HeaderMap``. Names are case-insensitive in HTTP, so every one of them must
give the same headroom, and a reply without rate-limit headers gives none.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

import httpx
import httpx2
import multidict
import pytest
from pyreqwest.http import HeaderMap

from failover.classify import Headroom, rate_limit_headroom

OTHERS = {
    "Date": "Mon, 07 Dec 2026 09:00:00 GMT",
    "Content-Type": "application/json",
    "openai-processing-ms": "120",
    "X-Request-Id": "req_123",
    "CF-RAY": "abc-LHR",
}

Containers = Callable[[dict[str, str]], Mapping[str, str]]


def cimultidict(headers: dict[str, str]) -> Mapping[str, str]:
    return multidict.CIMultiDictProxy(multidict.CIMultiDict(headers))


CONTAINERS: dict[str, Containers] = {
    "dict": dict,
    "OrderedDict": OrderedDict,
    "httpx": httpx.Headers,
    "httpx2": httpx2.Headers,
    "aiohttp": cimultidict,
    "pyreqwest": HeaderMap,
}


def headroom(headroom: Headroom | None) -> tuple[int | None, int | None, float | None] | None:
    if headroom is None:
        return None
    return headroom.requests_remaining, headroom.tokens_remaining, headroom.spent_for


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS)
def test_a_reply_without_rate_limit_headers_has_no_headroom(container: Containers) -> None:
    assert rate_limit_headroom(container(OTHERS)) is None
    assert rate_limit_headroom(container({})) is None
    assert rate_limit_headroom(container({**OTHERS, "x-ratelimit-limit-requests": "9"})) is None


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS)
@pytest.mark.parametrize(
    "spelling", [str.lower, str.title, str.upper], ids=["lower", "title", "upper"]
)
def test_openai_headroom_is_read_whatever_the_container_and_the_case_of_the_names(
    container: Containers, spelling: Callable[[str], str]
) -> None:
    limits = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": " 90000 ",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    headers = container({**OTHERS, **{spelling(name): value for name, value in limits.items()}})
    assert headroom(rate_limit_headroom(headers)) == (0, 90000, 2.0)


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS)
def test_anthropic_headroom_is_read_from_every_container(container: Containers) -> None:
    limits = {
        "Anthropic-RateLimit-Requests-Remaining": "41",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "garbage",  # unreadable: 1 s
    }
    assert headroom(rate_limit_headroom(container({**OTHERS, **limits}))) == (41, 0, 1.0)


def test_a_repeated_httpx_header_is_read_as_httpx_reads_it() -> None:
    headers = httpx.Headers(
        [("x-ratelimit-remaining-requests", "5"), ("X-RateLimit-Remaining-Requests", "5")]
    )
    assert headers["x-ratelimit-remaining-requests"] == "5, 5"  # not a number: no headroom
    assert rate_limit_headroom(headers) is None
    headers = httpx.Headers([("x-ratelimit-remaining-requests", "5"), ("x-other", "1")])
    assert headroom(rate_limit_headroom(headers)) == (5, None, None)


def test_an_httpx_value_that_is_not_ascii_is_decoded_as_httpx_decodes_it() -> None:
    twelve = "\uff11\uff12".encode()  # fullwidth digits, which int() reads as 12
    headers = httpx.Headers([(b"x-ratelimit-remaining-tokens", twelve)])
    assert headroom(rate_limit_headroom(headers)) == (None, 12, None)


class RawHeaders(Mapping[str, str]):
    """Headers of another make that offer httpx's ``raw`` pairs but keep no httpx list."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._lowered = {name.lower(): value for name, value in pairs}
        self.raw = [(name.encode(), value.encode()) for name, value in pairs]

    def __getitem__(self, name: str) -> str:
        return self._lowered[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lowered)

    def __len__(self) -> int:
        return len(self._lowered)


def test_headers_offering_raw_pairs_alone_are_read_from_them() -> None:
    pairs = [("Content-Type", "application/json"), ("X-RateLimit-Remaining-Requests", "0")]
    pairs.append(("x-ratelimit-reset-requests", "6m0s"))
    headers = RawHeaders(pairs)
    assert headroom(rate_limit_headroom(headers)) == (0, None, 360.0)
    assert rate_limit_headroom(RawHeaders([("Content-Type", "application/json")])) is None
