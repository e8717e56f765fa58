"""A request's first model is asked for a key once: when none is usable, the plan then
made goes on from the next model instead of asking again."""

from __future__ import annotations

from typing import Any

import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.errors import FailoverError
from tests.test_success_path import MESSAGES, AnsweringSender


def _counted_asks(client: ResilientClient) -> list[str]:
    """The models the client's planner asks the manager a key for, as it asks (its first
    key of a walk, :meth:`Planner.first_key`, is one such ask)."""
    planner = client.engine.planner
    asked: list[str] = []
    pick_key = planner.pick_key

    def counted(provider: str, *, model: str, exclude: Any = ()) -> Any:
        asked.append(f"{provider}/{model}")
        return pick_key(provider, model=model, exclude=exclude)

    planner.pick_key = counted
    return asked


def _cooled(manager: FailoverManager, name: str) -> None:
    """Hold ``name`` out for ten minutes as rate limited (never the least bad choice)."""
    manager.mark_failure(name, "rate limit reached", kind="rate_limit", retry_after=600.0)


async def test_the_first_model_is_asked_once_when_none_of_its_keys_is_usable() -> None:
    manager = FailoverManager(
        profiles=[
            AuthProfile("openai-key", "openai", "sk-first-0001", base_url="http://a.test/v1"),
            AuthProfile("groq-key", "groq", "gsk-second-0002", base_url="http://b.test/v1"),
        ]
    )
    _cooled(manager, "openai-key")
    sender = AnsweringSender()
    client = ResilientClient(
        ["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"], manager, sender=sender
    )
    asked = _counted_asks(client)
    answer = await client.complete(MESSAGES)
    # once: the plan made then did not ask again
    assert asked == ["openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"]
    assert answer.model == "groq/llama-3.1-8b-instant"
    assert sender.urls == ["http://b.test/v1/chat/completions"]
    assert [a.model for a in answer.attempts] == ["groq/llama-3.1-8b-instant"]


async def test_no_usable_key_anywhere_still_fails_after_one_ask_of_the_first_model() -> None:
    manager = FailoverManager(
        profiles=[AuthProfile("k0", "openai", "sk-only-0001", base_url="http://a.test/v1")]
    )
    _cooled(manager, "k0")
    sender = AnsweringSender()
    client = ResilientClient(
        ["openai/gpt-4o-mini"], manager, sender=sender, wait_for_recovery=False
    )
    asked = _counted_asks(client)
    with pytest.raises(FailoverError):
        await client.complete(MESSAGES)
    assert asked == ["openai/gpt-4o-mini"]
    assert sender.urls == []
