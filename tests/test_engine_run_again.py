"""A request's state run again (a stream restarted) is exhausted at its deadline through the
plan of that run, never the plan a run before left on it."""

from __future__ import annotations

import anyio
import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.catalog import default_catalog
from failover.engine import AttemptContext
from failover.errors import AllAttemptsFailed, RateLimitError


async def test_a_run_cut_by_the_deadline_is_exhausted_through_its_own_plan() -> None:
    manager = FailoverManager(
        profiles=[
            AuthProfile("openai-1", "openai", "sk-first-0001", base_url="http://a.test/v1"),
            AuthProfile("openai-2", "openai", "sk-second-0002", base_url="http://a.test/v1"),
            AuthProfile("groq-1", "groq", "gsk-third-0003", base_url="http://b.test/v1"),
        ]
    )
    client = ResilientClient(["openai/gpt-4o-mini"], manager, deadline=0.5)
    engine = client.engine
    state = engine.new_request()

    async def first_key_limited(ctx: AttemptContext) -> str:
        if ctx.profile.name == "openai-1":
            raise RateLimitError("slow down", retry_after=1.0)
        return "answer"

    # the first run's plan is made when its first key fails; its second key answers
    answer, _, profile = await engine.run(state, client.chain.steps, first_key_limited)
    assert (answer, profile.name) == ("answer", "openai-2")

    async def rested_then_slow(ctx: AttemptContext) -> str:
        manager.mark_failure("groq-1", "rate limit reached", kind="rate_limit", retry_after=30)
        await anyio.sleep(5)
        return "late"

    groq = default_catalog.get("groq", "llama-3.1-8b-instant")
    assert groq is not None
    with pytest.raises(AllAttemptsFailed) as raised:
        await engine.run(state, [groq], rested_then_slow)
    # this run's chain (groq's key rests) says when to come back; the first run's plan
    # (OpenAI's second key is usable) would say now
    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    await client.aclose()
