"""Replies you reject fall over too: ``accept=`` (sync or async, on the client or per call)
and the strict JSON schema check; a rejected reply is an attempt, the key is not blamed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from failover import AllAttemptsFailed, AuthProfile, ConfigError, ResilientClient
from failover.completion import Completion
from failover.errors import ReplyRejected
from failover.profiles import ProfileStatus
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
MESSAGES = [{"role": "user", "content": "give me a city"}]
GPT, CLAUDE = "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
STRICT = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}}


def gpt(text: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
    )


def claude(text: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    )


def make(**kwargs: Any) -> ResilientClient:
    return ResilientClient(
        [GPT, CLAUDE],
        [
            AuthProfile("a", "openai", "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa1111"),
            AuthProfile("c", "anthropic", "sk-ant-cccccccccccccccccccccccc3333"),
        ],
        **kwargs,
    )


@respx.mock
async def test_a_reply_the_clients_accept_rejects_moves_to_the_next_model() -> None:
    respx.post(OPENAI).mock(return_value=gpt(""))
    respx.post(ANTHROPIC).mock(return_value=claude("Paris"))
    client = make(accept=lambda completion: bool(completion.text.strip()))
    done = await client.complete(MESSAGES)
    assert done.model == CLAUDE and done.text == "Paris"
    assert [a.outcome for a in done.attempts] == ["rejected", "ok"]
    rejected = done.attempts[0].error
    assert isinstance(rejected, ReplyRejected) and isinstance(rejected.completion, Completion)
    assert rejected.completion.model == GPT and rejected.completion.text == ""
    key = client.manager.get_profile("a")
    assert key is not None and key.status is ProfileStatus.AVAILABLE
    assert key.consecutive_failures == 0  # the key did its job: it is not blamed


@respx.mock
async def test_an_async_accept_per_call_overrides_the_clients() -> None:
    respx.post(OPENAI).mock(return_value=gpt("London"))
    respx.post(ANTHROPIC).mock(return_value=claude("Paris"))
    client = make(accept=lambda completion: False)

    async def only_paris(completion: Completion) -> bool:
        return completion.text == "Paris"

    done = await client.complete(MESSAGES, accept=only_paris)
    assert done.text == "Paris" and [a.outcome for a in done.attempts] == ["rejected", "ok"]


@respx.mock
async def test_when_every_reply_is_rejected_the_caller_gets_each_in_the_history() -> None:
    respx.post(OPENAI).mock(return_value=gpt("London"))
    respx.post(ANTHROPIC).mock(return_value=claude("Rome"))
    client = make(accept=lambda completion: False)
    with pytest.raises(AllAttemptsFailed) as caught:
        await client.complete(MESSAGES)
    attempts = caught.value.attempts
    assert [a.outcome for a in attempts] == ["rejected", "rejected"]
    texts = [a.error.completion.text for a in attempts if isinstance(a.error, ReplyRejected)]
    assert texts == ["London", "Rome"]


@respx.mock
async def test_a_strict_schema_reply_that_does_not_parse_or_validate_is_rejected() -> None:
    respx.post(OPENAI).mock(return_value=gpt('{"town": "Paris"'))  # cut short: not JSON
    respx.post(ANTHROPIC).mock(return_value=claude(json.dumps({"city": "Paris"})))
    client = make()
    done = await client.complete(MESSAGES, response_format=STRICT)
    assert done.model == CLAUDE and json.loads(done.text) == {"city": "Paris"}
    assert "not JSON" in str(done.attempts[0].error)

    respx.post(OPENAI).mock(return_value=gpt(json.dumps({"town": "Paris"})))  # wrong shape
    done = await client.complete(MESSAGES, response_format=STRICT)
    assert done.model == CLAUDE
    assert "does not match the schema" in str(done.attempts[0].error)


@respx.mock
async def test_the_schema_check_can_be_turned_off_per_call_and_skips_non_strict_formats() -> None:
    respx.post(OPENAI).mock(return_value=gpt("not json"))
    client = make()
    done = await client.complete(MESSAGES, response_format=STRICT, check_schema=False)
    assert done.model == GPT
    loose = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}
    assert (await client.complete(MESSAGES, response_format=loose)).model == GPT


async def test_bad_accept_and_bad_schemas_are_refused_before_any_call() -> None:
    with pytest.raises(ConfigError, match="accept"):
        make(accept="yes")
    broken = {"type": "json_schema", "json_schema": {"schema": {"type": 5}, "strict": True}}
    with pytest.raises(ConfigError, match="json_schema is invalid"):
        await make().complete(MESSAGES, response_format=broken)


@respx.mock
async def test_a_rejected_reply_is_charged_to_the_budget_it_was_paid_from() -> None:
    from failover.budgets import Budget

    respx.post(OPENAI).mock(return_value=gpt("London"))
    respx.post(ANTHROPIC).mock(return_value=claude("Paris"))
    budget = Budget(usd=1.0)
    client = make(budgets=[budget], accept=lambda completion: completion.text == "Paris")
    done = await client.complete(MESSAGES, max_tokens=10)
    rejected = done.attempts[0].error
    assert isinstance(rejected, ReplyRejected)
    paid = (rejected.completion.cost_usd or 0) + (done.cost_usd or 0)
    assert await client.manager.admission.ledger.used(budget) == pytest.approx(paid)


@respx.mock
async def test_a_streamed_reply_that_misses_its_strict_schema_is_rejected_at_its_end() -> None:
    from failover import StreamInterrupted

    chunks = [
        'data: {"choices":[{"delta":{"content":"not json"},"finish_reason":"stop"}]}\n\n',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
        "data: [DONE]\n\n",
    ]
    respx.post(OPENAI).mock(
        side_effect=lambda request: httpx.Response(
            200, content="".join(chunks).encode(), headers={"content-type": "text/event-stream"}
        )
    )
    client = make()

    async def read_all() -> None:
        async with client.stream(MESSAGES, response_format=STRICT) as stream:
            async for _ in stream:
                pass

    with pytest.raises(StreamInterrupted) as caught:
        await read_all()
    assert isinstance(caught.value.error, ReplyRejected)
    async with client.stream(MESSAGES, response_format=STRICT, check_schema=False) as stream:
        assert "".join([chunk.text async for chunk in stream]) == "not json"
