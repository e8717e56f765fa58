"""A usual reply's headroom, read from its remaining counts alone, is what a full reading gives.

The engine reads every successful reply's rate-limit headers. ``headroom_counts`` reads only
the remaining counts and hands anything else (a spent budget, a value ``int`` does not take
as it stands, a name httpx holds twice) to the full reading; these properties hold it to the
full reading over generated headers in every container the senders hand over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import multidict
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyreqwest.http import HeaderMap

from failover import AuthProfile, ProfileStatus, ResilientClient
from failover.classify import (
    UNUSUAL_HEADROOM,
    Headroom,
    headroom_counts,
    rate_limit_headroom,
    read_headroom_in_full,
)

NAMES = [
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-limit-requests",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "x-request-id",
    "content-type",
]
VALUES = st.one_of(
    st.integers(-5, 10**7).map(str),
    st.sampled_from(["0", " 12 ", "00", "+7", "1_000", "-0", "\uff11\uff12", "", "1.5", "ab"]),
    st.sampled_from(["2s", "6m0s", "3ms", "8.64s", "garbage", "2026-12-07T09:00:00Z"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
)
SPELLINGS = st.sampled_from([str.lower, str.upper, str.title])
HEADERS = st.lists(st.tuples(st.sampled_from(NAMES), SPELLINGS, VALUES), max_size=8).map(
    lambda picks: [(spell(name), value) for name, spell, value in picks]
)

Containers = Callable[[list[tuple[str, str]]], Mapping[str, str]]
CONTAINERS: dict[str, Containers] = {
    "dict": dict,
    "httpx": lambda pairs: httpx.Headers([(n.encode(), v.encode()) for n, v in pairs]),
    "aiohttp": lambda pairs: multidict.CIMultiDictProxy(multidict.CIMultiDict(pairs)),
    "pyreqwest": lambda pairs: HeaderMap(dict(pairs)),
}


def fields(headroom: Headroom | None) -> tuple[int | None, int | None, float | None] | None:
    if headroom is None:
        return None
    return headroom.requests_remaining, headroom.tokens_remaining, headroom.spent_for


@settings(max_examples=400, deadline=None)
@given(pairs=HEADERS, kind=st.sampled_from(sorted(CONTAINERS)))
def test_the_usual_reading_agrees_with_the_full_one(
    pairs: list[tuple[str, str]], kind: str
) -> None:
    assume(kind != "pyreqwest" or all(value.isascii() for _, value in pairs))  # it refuses
    headers = CONTAINERS[kind](pairs)
    full = read_headroom_in_full(headers)
    assert fields(rate_limit_headroom(headers)) == fields(full)
    counts = headroom_counts(headers)
    if counts is None:
        assert full is None
    elif counts is not UNUSUAL_HEADROOM:  # usual: no budget spent, the counts as read in full
        assert full is not None and full.spent_for is None
        assert counts == (full.requests_remaining, full.tokens_remaining)


@settings(max_examples=200, deadline=None)
@given(pairs=HEADERS)
def test_a_reply_records_on_its_key_what_the_full_reading_says(
    pairs: list[tuple[str, str]],
) -> None:
    client = ResilientClient(["openai/gpt-4o-mini"], [AuthProfile("k0", "openai", "sk-t-0001")])
    engine = client._engine
    profile = engine.manager._profiles["k0"]
    profile.requests_remaining, profile.tokens_remaining = 3, 4
    headers = CONTAINERS["httpx"](pairs)
    full = read_headroom_in_full(headers)
    if (counts := headroom_counts(headers)) is not None:  # as every reply's reader does
        engine.note_headroom_counts("req", profile, headers, counts)
    if full is None:
        assert (profile.requests_remaining, profile.tokens_remaining) == (3, 4)
    else:
        assert (profile.requests_remaining, profile.tokens_remaining) == (
            full.requests_remaining,
            full.tokens_remaining,
        )
    spent = full is not None and full.spent_for is not None and full.spent_for > 0
    assert (profile.status is ProfileStatus.RATE_LIMITED) == spent


def test_a_usual_openai_reply_is_read_from_its_counts_alone() -> None:
    headers = httpx.Headers(
        [
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", "199990"),
            ("x-ratelimit-reset-requests", "8.64s"),
        ]
    )
    assert headroom_counts(headers) == (9999, 199990)
    spent = httpx.Headers([("x-ratelimit-remaining-requests", "0"), ("x-request-id", "r")])
    assert headroom_counts(spent) is UNUSUAL_HEADROOM
    assert fields(rate_limit_headroom(spent)) == (0, None, 1.0)  # unreadable reset: 1 s
