"""A chain per call: ``complete``, ``stream`` and ``call`` take ``chain=`` instead of the
client's, checked the same way, over the same keys, health and budgets."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from failover import AuthProfile, ConfigError, ResilientClient
from failover.budgets import Budget
from failover.request import AttemptContext
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
MESSAGES = [{"role": "user", "content": "hello"}]
GPT, CLAUDE = "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"


def ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": "gpt"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
    )


def claude_ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": [{"type": "text", "text": "claude"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    )


def claude_stream() -> httpx.Response:
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m", "type": "message",
         "role": "assistant", "content": [], "model": "claude-haiku-4-5",
         "usage": {"input_tokens": 3, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "claude"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def claude(request: httpx.Request) -> httpx.Response:
    return claude_stream() if json.loads(request.content).get("stream") else claude_ok()


def make(**kwargs: object) -> ResilientClient:
    return ResilientClient(
        [GPT],
        [
            AuthProfile("a", "openai", "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa1111"),
            AuthProfile("c", "anthropic", "sk-ant-cccccccccccccccccccccccc3333"),
        ],
        **kwargs,  # type: ignore[arg-type]
    )


@respx.mock
async def test_a_call_may_bring_its_own_chain() -> None:
    respx.post(OPENAI).mock(return_value=ok())
    respx.post(ANTHROPIC).mock(side_effect=claude)
    client = make()
    assert (await client.complete(MESSAGES)).model == GPT
    assert (await client.complete(MESSAGES, chain=[CLAUDE, GPT])).model == CLAUDE
    async with client.stream(MESSAGES, chain=[CLAUDE]) as stream:
        assert "".join([chunk.text async for chunk in stream]) == "claude"

    async def which(ctx: AttemptContext) -> str:
        return ctx.model.key

    assert await client.call(which, chain=[CLAUDE]) == CLAUDE
    assert client.chain.names == (GPT,)  # the client's own is untouched


def test_the_clients_chain_is_fixed_a_call_brings_its_own() -> None:
    client = make()
    with pytest.raises(AttributeError):
        client.chain = make().chain  # type: ignore[misc]
    assert client.chain.names == (GPT,)


async def test_a_calls_chain_is_checked_as_the_clients_is() -> None:
    client = make()
    with pytest.raises(ConfigError, match="no auth profile for provider 'gemini'"):
        await client.complete(MESSAGES, chain=["gemini/gemini-2.5-flash"])
    with pytest.raises(ConfigError, match="no-slash"):
        await client.complete(MESSAGES, chain=["no-slash"])
    with pytest.raises(ConfigError, match="at least one model"):
        await client.complete(MESSAGES, chain=[])


@respx.mock
async def test_a_calls_chain_shares_the_clients_key_health_and_budgets() -> None:
    respx.post(ANTHROPIC).mock(
        return_value=httpx.Response(
            429, json={"error": {"message": "slow"}}, headers={"retry-after": "30"}
        )
    )
    respx.post(OPENAI).mock(return_value=ok())
    budget = Budget(usd=1.0, per="day")
    client = make(budgets=[budget])
    first = await client.complete(MESSAGES, chain=[CLAUDE, GPT])  # claude's key now rests
    assert [a.outcome for a in first.attempts] == ["rate_limit", "ok"]
    second = await client.complete(MESSAGES, chain=[CLAUDE, GPT])
    assert [a.outcome for a in second.attempts] == ["ok"] and second.model == GPT
    used = await client.manager.admission.ledger.used(budget)
    assert used == pytest.approx((first.cost_usd or 0) + (second.cost_usd or 0))
