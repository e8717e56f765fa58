"""A caller that reads a reply's headroom counts first records what ``note_headroom`` records.

The SDK transport reads :func:`~failover.classify.headroom_counts` itself and calls
``note_headroom_counts`` only when they are not ``None`` (the usual reply without rate-limit
headers makes no call); the key it leaves must be the key ``note_headroom`` leaves, over
generated headers in every container the senders hand over.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from failover import AuthProfile, ResilientClient
from failover.classify import headroom_counts
from tests.test_headroom_fast_path import CONTAINERS, HEADERS


def _key_after(pairs: list[tuple[str, str]], kind: str, *, counts_first: bool) -> tuple[Any, ...]:
    client = ResilientClient(["openai/gpt-4o-mini"], [AuthProfile("k0", "openai", "sk-t-0001")])
    engine = client._engine
    profile = engine.manager._profiles["k0"]
    profile.requests_remaining, profile.tokens_remaining = 3, 4
    headers = CONTAINERS[kind](pairs)
    if counts_first:
        if (counts := headroom_counts(headers)) is not None:
            engine.note_headroom_counts("req", profile, headers, counts)
    else:
        engine.note_headroom("req", profile, headers)
    return (
        profile.requests_remaining,
        profile.tokens_remaining,
        profile.status,
        profile.cooldown_until > 0,
    )


@settings(max_examples=200, deadline=None)
@given(pairs=HEADERS, kind=st.sampled_from(sorted(CONTAINERS)))
def test_counts_read_first_leave_the_key_as_note_headroom_does(
    pairs: list[tuple[str, str]], kind: str
) -> None:
    assume(kind != "pyreqwest" or all(value.isascii() for _, value in pairs))  # it refuses
    assert _key_after(pairs, kind, counts_first=True) == _key_after(pairs, kind, counts_first=False)


def test_a_spent_budget_read_first_holds_the_key() -> None:
    pairs = [("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "20s")]
    held = _key_after(pairs, "dict", counts_first=True)
    assert held[0] == 0 and held[3]
    assert held == _key_after(pairs, "dict", counts_first=False)
