"""The success path's short ways behave as the long ones: a store of your own that is not
ready yet is waited for, a strategy that chooses among keys still chooses the first one,
and the usual usage is priced as every other."""

from __future__ import annotations

import itertools
from typing import Any

import anyio.lowlevel
import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.catalog import ModelEntry, TokenUsage
from failover.providers.base import HttpRequest
from failover.store import MemoryStore

MESSAGES = [{"role": "user", "content": "ping"}]
REPLY = (
    b'{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)


class _Reply:
    def __init__(self) -> None:
        self.status_code = 200
        self.headers = {"content-type": "application/json"}

    async def aread(self) -> bytes:
        return REPLY


class _Exchange:
    async def __aenter__(self) -> _Reply:
        return _Reply()

    async def __aexit__(self, *exc: object) -> None:
        return None


class AnsweringSender:
    """Answers every request at once; remembers the key each used and the URL it went to."""

    asyncio_cancel_safe = True

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.urls: list[str] = []

    def open(
        self, request: HttpRequest, timeout: float, *, read_timeout: float | None = None
    ) -> _Exchange:
        self.keys.append(request.headers["authorization"])
        self.urls.append(request.url)
        return _Exchange()

    async def aclose(self) -> None:
        return None


class _LateStore(MemoryStore):
    """A store of your own that is not ready until its first load is done."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False
        self.waited = 0

    @property
    def ready(self) -> bool:
        return self.loaded

    async def wait_ready(self) -> None:
        self.waited += 1
        await anyio.lowlevel.checkpoint()
        self.loaded = True


def _profile(name: str, key: str, priority: int = 0) -> AuthProfile:
    return AuthProfile(name, "openai", key, base_url="http://127.0.0.1:9/v1", priority=priority)


async def test_a_request_waits_for_a_store_of_your_own_that_is_not_ready_yet() -> None:
    store = _LateStore()
    manager = FailoverManager(profiles=[_profile("a", "sk-late-aaaa0001")], store=store)
    client = ResilientClient(["openai/gpt-4o-mini"], manager, sender=AnsweringSender())
    done = await client.complete(MESSAGES)
    assert done.text == "pong" and store.waited == 1
    await client.complete(MESSAGES)
    assert store.waited == 1  # ready from then on: not waited for again
    await client.aclose()


async def test_a_strategy_choosing_among_keys_chooses_the_first_key_too() -> None:
    # least_busy prefers the key with fewer requests in flight; with none in flight, the
    # manager's order stands (priority first), the same as with the default strategy
    sender = AnsweringSender()
    client = ResilientClient(
        ["openai/gpt-4o-mini"],
        [_profile("b", "sk-second-bbbb0002", priority=1), _profile("a", "sk-first-aaaa0001")],
        sender=sender,
        strategy="least_busy",
    )
    done = await client.complete(MESSAGES)
    assert done.profile == "a" and sender.keys == ["Bearer sk-first-aaaa0001"]
    assert [(a.profile, a.outcome) for a in done.attempts] == [("a", "ok")]
    await client.aclose()


def _either(price: float | None, otherwise: float | None) -> float | None:
    return otherwise if price is None else price


def _priced_long_way(entry: ModelEntry, usage: TokenUsage) -> float | None:
    """calculate_cost as it reads every count, one at a time."""
    total = 0.0
    for tokens, price in (
        (usage.input_tokens, entry.cost_input),
        (usage.output_tokens, entry.cost_output),
        (usage.cache_read_tokens, _either(entry.cost_cache_read, entry.cost_input)),
        (usage.cache_write_tokens, _either(entry.cost_cache_write, entry.cost_input)),
    ):
        if tokens:
            if price is None:
                return None
            total += tokens * price
    return total / 1_000_000


@pytest.mark.parametrize("prices", [(0.15, 0.6), (None, 0.6), (0.15, None), (2.5, 10.0)])
def test_every_usage_is_priced_as_each_count_one_at_a_time(prices: Any) -> None:
    entry = ModelEntry(
        "m",
        "m",
        "openai",
        "openai",
        cost_input=prices[0],
        cost_output=prices[1],
        cost_cache_read=0.075,
    )
    for inputs, outputs, read, write in itertools.product(
        (0, 1, 7, 1234567), (0, 3, 999), (0, 5), (0, 11)
    ):
        usage = TokenUsage(inputs, outputs, cache_read_tokens=read, cache_write_tokens=write)
        assert entry.calculate_cost(usage) == _priced_long_way(entry, usage), usage
