"""Streams that continue (issue 21): on_stream_break="continue" / "restart", accept at a
stream's end, and the transport splicing a continuation into an SDK's own stream.

Breaks are real: the client reads over httpx (a MockTransport whose body stops, raises a
reset or a read timeout, or sends the wire's in-band error event after some chunks), and
the answers are the scripted provider's, in each wire's own format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from failover import AuthProfile, ResilientClient, StreamInterrupted
from failover.catalog import TokenUsage, default_catalog
from failover.continuation import (
    PREFILL,
    Splice,
    continuation_request,
    continuation_steps,
    prefill_unsupported,
    summed,
)
from failover.errors import ReplyRejected
from failover.events import FailoverEvent
from failover.providers.base import ChatRequest, StreamChunk
from failover.testing import ScriptedProvider
from failover.testing.wire import stream_error

pytest_plugins = ["failover.testing.pytest_plugin"]

HI = [{"role": "user", "content": "count to six"}]
FULL = "one two three four five six"
KEPT = "one two three "  # three chunks of FULL, a word each
REST = " four five six"  # what the continuing model says after the prefill "one two three"
BREAKS = ("truncate", "reset", "idle", "error_event")
# provider -> two models of it, and the wire its scripted answers speak
CONTINUING = {
    "anthropic": (("claude-haiku-4-5", "claude-sonnet-4-5"), "anthropic"),
    "gemini": (("gemini-2.5-flash-lite", "gemini-2.5-flash"), "gemini"),
    "ollama-native": (("llama3.2", "qwen3"), "ollama"),
}


@dataclass
class Breaker:
    """Breaks the first ``len(plan)`` streams after ``after`` text chunks, as ``plan`` says."""

    scripted: ScriptedProvider
    plan: list[str] = field(default_factory=list)
    after: int = 3

    def client(self, chain: list[str], **kwargs: Any) -> ResilientClient:
        providers = {model.partition("/")[0] for model in chain}
        profiles = [AuthProfile(f"{p}-key", p, f"sk-{p}-test-key-0001") for p in providers]
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return ResilientClient(chain, profiles, http_client=http, **kwargs)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        answer = self.scripted.answer(request.method, str(request.url), request.headers, body)
        chunks = list(answer.chunks)
        wire = self.scripted.calls[-1].wire
        breaking = self.plan and self.scripted.calls[-1].stream and answer.status == 200
        kind = self.plan.pop(0) if breaking else None
        if kind is not None:
            chunks = chunks[: (3 if wire == "anthropic" else 0) + self.after]
            if kind == "filter":  # Gemini blocks the rest of the answer
                blocked = {"candidates": [{"content": {"parts": [], "role": "model"}}]}
                blocked["candidates"][0]["finishReason"] = "SAFETY"
                chunks.append(f"data: {json.dumps(blocked)}\n\n".encode())
            if kind == "error_event":
                name, data = stream_error(wire)
                if wire == "ollama":
                    chunks.append((data + "\n").encode())
                else:
                    chunks.append(
                        ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()
                    )

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            if kind == "reset":
                raise httpx.ReadError("connection reset by peer")
            if kind == "idle":
                raise httpx.ReadTimeout("no chunk within the idle timeout")

        return httpx.Response(answer.status, headers=answer.headers, content=stream())


def _prefill(call_body: dict[str, Any], wire: str) -> str | None:
    """The text of the request's last turn when it is the assistant's (the prefill)."""
    if wire == "gemini":
        last = call_body["contents"][-1]
        return "".join(p["text"] for p in last["parts"]) if last["role"] == "model" else None
    last = call_body["messages"][-1]
    if last["role"] != "assistant":
        return None
    content = last["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content)


async def _read(stream: Any) -> list[StreamChunk]:
    async with stream:
        return [chunk async for chunk in stream]


# -- continue, on every wire that can, after every kind of break ----------------------------------


@pytest.mark.parametrize("kind", BREAKS)
@pytest.mark.parametrize("provider", list(CONTINUING))
async def test_a_stream_cut_half_way_is_continued_by_the_next_model_without_a_character_repeated_or_lost(
    provider: str, kind: str, scripted_provider: ScriptedProvider
) -> None:
    (first, second), wire = CONTINUING[provider]
    scripted_provider.on(model=first).ok(FULL)
    scripted_provider.on(model=second).ok(REST)
    breaker = Breaker(scripted_provider, [kind])
    client = breaker.client([f"{provider}/{first}", f"{provider}/{second}"])
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()

    texts = [c.text for c in chunks]
    assert "".join(texts) == FULL
    assert stream.text == FULL
    assert stream.message == {"role": "assistant", "content": FULL}
    assert not any(c.restart for c in chunks)
    assert stream.model == f"{provider}/{second}" and stream.finish_reason == "stop"
    assert [c.model for c in scripted_provider.calls] == [first, second]
    continued = scripted_provider.calls[1].body
    assert (
        _prefill(continued, wire) == KEPT.rstrip()
    )  # no trailing whitespace (Anthropic refuses it)
    outcomes = [(a.model, a.outcome) for a in stream.attempts]
    assert outcomes[0] == (f"{provider}/{first}", "ok")
    assert outcomes[1][0] == f"{provider}/{first}" and outcomes[1][1] not in ("ok", "cancelled")
    assert outcomes[-1] == (f"{provider}/{second}", "ok")


@pytest.mark.parametrize(
    ("continuation", "expected"),
    [
        (REST, FULL),  # the space the caller has, said again: dropped
        ("four five six", FULL),  # no space: none added
        ("  four five six", KEPT + " four five six"),  # a second space is the model's own
    ],
)
async def test_the_continuations_leading_whitespace_is_joined_to_the_kept_text_exactly(
    continuation: str, expected: str, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(continuation)
    client = Breaker(scripted_provider, ["truncate"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert stream.text == expected == "".join(c.text for c in chunks)


async def test_an_openai_stream_is_continued_by_a_model_that_can_and_openai_models_are_passed_over(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="claude-haiku-4-5").ok(REST)
    client = Breaker(scripted_provider, ["reset"]).client(
        ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-haiku-4-5"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert "".join(c.text for c in chunks) == FULL and stream.text == FULL
    assert [c.model for c in scripted_provider.calls] == ["gpt-4o-mini", "claude-haiku-4-5"]
    skipped = [a for a in stream.attempts if a.outcome == "unsupported"]
    assert {a.model for a in skipped} == {"openai/gpt-4o", "openai/gpt-4o-mini"}
    assert all(getattr(a.error, "field", None) == PREFILL for a in skipped)


async def test_usage_is_both_attempts_summed_and_cost_each_at_its_own_models_price(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)
    client = Breaker(scripted_provider, ["truncate"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    # the scripted provider reports input = len(body)//16 (message_start) and one output
    # token a word; the cut stream reported its input, its output is estimated from the text
    first_body, second_body = (c.body for c in scripted_provider.calls)
    first = TokenUsage(
        input_tokens=max(1, len(json.dumps(first_body)) // 16), output_tokens=(len(KEPT) + 3) // 4
    )
    second = TokenUsage(
        input_tokens=max(1, len(json.dumps(second_body)) // 16), output_tokens=len(REST.split(" "))
    )
    assert stream.usage == summed([first, second])
    assert chunks[-1].usage == stream.usage
    haiku = default_catalog.get("anthropic", "claude-haiku-4-5")
    sonnet = default_catalog.get("anthropic", "claude-sonnet-4-5")
    assert haiku is not None and sonnet is not None
    expected = haiku.calculate_cost(first) + sonnet.calculate_cost(second)  # type: ignore[operator]
    assert stream.cost_usd == pytest.approx(expected)


async def test_a_continuation_that_breaks_too_is_continued_again(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)  # cut after " ", "four ", "five "
    scripted_provider.on(model="claude-opus-4-1").ok(" six")
    client = Breaker(scripted_provider, ["truncate", "reset"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-1"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert "".join(c.text for c in chunks) == stream.text == FULL
    assert [c.model for c in scripted_provider.calls] == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
    ]
    assert _prefill(scripted_provider.calls[2].body, "anthropic") == "one two three four five"
    assert stream.model == "anthropic/claude-opus-4-1"
    assert stream.usage is not None and stream.cost_usd is not None


def test_a_sync_clients_stream_continues(scripted_provider: ScriptedProvider) -> None:
    from failover import SyncResilientClient

    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)
    breaker = Breaker(scripted_provider, ["reset"])
    profiles = [AuthProfile("anthropic-key", "anthropic", "sk-anthropic-test-key-0001")]
    with (
        SyncResilientClient(
            ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"],
            profiles,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(breaker.handle)),
            on_stream_break="continue",
        ) as client,
        client.stream(HI) as stream,
    ):
        texts = [chunk.text for chunk in stream]
    assert "".join(texts) == stream.text == FULL
    assert stream.model == "anthropic/claude-sonnet-4-5"


async def test_a_budget_is_charged_what_each_attempt_of_a_continued_stream_cost(
    scripted_provider: ScriptedProvider,
) -> None:
    from failover.budgets import Budget

    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)
    client = Breaker(scripted_provider, ["truncate"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"], budgets=[Budget(5.0)]
    )
    stream = client.stream(HI, on_stream_break="continue")
    await _read(stream)
    status = await client.manager.admission.status(client.manager.list_profiles())
    await client.aclose()
    (budget,) = status["budgets"]
    assert stream.cost_usd is not None
    assert budget["used"] == pytest.approx(stream.cost_usd)


# -- restart ------------------------------------------------------------------------------------


async def test_restart_sends_a_marker_then_the_next_models_whole_answer(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="gpt-4o").ok("a fresh answer")
    events: list[FailoverEvent] = []
    client = Breaker(scripted_provider, ["reset"]).client(
        ["openai/gpt-4o-mini", "openai/gpt-4o"], on_stream_break="restart"
    )
    client.on_failover(events.append)
    stream = client.stream(HI)
    chunks = await _read(stream)
    await client.aclose()
    markers = [i for i, c in enumerate(chunks) if c.restart]
    assert markers == [3]  # after the three chunks the caller got, before anything new
    assert "".join(c.text for c in chunks[:3]) == KEPT
    assert "".join(c.text for c in chunks[4:]) == "a fresh answer"
    assert stream.text == "a fresh answer"
    assert stream.message["content"] == "a fresh answer"
    assert _prefill(scripted_provider.calls[1].body, "openai") is None  # started over
    restarts = [e for e in events if e.kind == "restart"]
    assert len(restarts) == 1
    assert (restarts[0].from_model, restarts[0].to_model) == ("openai/gpt-4o-mini", "openai/gpt-4o")
    assert restarts[0].reason == "connection"


async def test_a_break_inside_a_tool_calls_arguments_restarts_even_in_continue_mode(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").tool_call("get_weather", {"city": "Paris"})
    scripted_provider.on(model="claude-sonnet-4-5").tool_call("get_weather", {"city": "Paris"})
    client = Breaker(scripted_provider, ["truncate"], after=1).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert any(c.tool_calls for c in chunks[: chunks.index(StreamChunk(restart=True))])
    assert sum(c.restart for c in chunks) == 1
    assert _prefill(scripted_provider.calls[1].body, "anthropic") is None
    assert [(c.name, c.args) for c in stream.tool_calls] == [("get_weather", {"city": "Paris"})]


async def test_a_content_block_mid_stream_restarts_rather_than_handing_the_text_on(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gemini-2.5-flash-lite").ok(FULL)
    scripted_provider.on(model="gemini-2.5-flash").ok("a fresh answer")
    client = Breaker(scripted_provider, ["filter"]).client(
        ["gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-flash"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert sum(c.restart for c in chunks) == 1 and stream.text == "a fresh answer"
    assert _prefill(scripted_provider.calls[1].body, "gemini") is None


async def test_a_content_block_the_client_raises_is_not_continued(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gemini-2.5-flash-lite").ok(FULL)
    client = Breaker(scripted_provider, ["filter"]).client(
        ["gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-flash"], raise_on_content_filter=True
    )
    with pytest.raises(StreamInterrupted) as raised:
        await _read(client.stream(HI, on_stream_break="continue"))
    await client.aclose()
    assert raised.value.error.kind == "content_filter"
    assert len(scripted_provider.calls) == 1


async def test_continue_restarts_when_no_model_of_the_chain_can_continue(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="gpt-4o").ok(FULL)
    client = Breaker(scripted_provider, ["idle"]).client(["openai/gpt-4o-mini", "openai/gpt-4o"])
    stream = client.stream(HI, on_stream_break="continue")
    chunks = await _read(stream)
    await client.aclose()
    assert sum(c.restart for c in chunks) == 1 and stream.text == FULL
    assert not [a for a in stream.attempts if a.outcome == "unsupported"]


async def test_raise_is_the_default_and_keeps_stream_interrupted(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    client = Breaker(scripted_provider, ["reset"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"]
    )
    received: list[str] = []

    async def read() -> None:
        async with client.stream(HI) as stream:
            async for chunk in stream:
                received.append(chunk.text)

    with pytest.raises(StreamInterrupted) as raised:
        await read()
    await client.aclose()
    assert raised.value.partial_text == KEPT == "".join(received)
    assert len(scripted_provider.calls) == 1


async def test_a_continuation_that_fails_everywhere_raises_stream_interrupted_with_the_history(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").server_error(times=10)
    scripted_provider.on(model="claude-haiku-4-5").server_error(times=10)
    client = Breaker(scripted_provider, ["truncate"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"], wait_for_recovery=False
    )
    with pytest.raises(StreamInterrupted) as raised:
        await _read(client.stream(HI, on_stream_break="continue"))
    await client.aclose()
    assert raised.value.partial_text == KEPT
    assert any(a.outcome == "server" for a in raised.value.attempts)


async def test_the_event_records_the_break_and_the_resumption_with_the_characters_kept(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gemini-2.5-flash-lite").ok(FULL)
    scripted_provider.on(model="gemini-2.5-flash").ok(REST)
    events: list[FailoverEvent] = []
    client = Breaker(scripted_provider, ["error_event"]).client(
        ["gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-flash"]
    )
    client.on_failover(events.append)
    await _read(client.stream(HI, on_stream_break="continue"))
    await client.aclose()
    (event,) = [e for e in events if e.kind == "continue"]
    assert (event.from_model, event.to_model) == (
        "gemini/gemini-2.5-flash-lite",
        "gemini/gemini-2.5-flash",
    )
    assert event.from_profile == event.to_profile == "gemini-key"
    assert event.reason == "overloaded"
    assert event.error_message.startswith(f"{len(KEPT)} characters kept")


# -- accept at a stream's end -------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_accept_runs_at_the_end_and_a_rejection_restarts_on_the_next_model(
    asynchronous: bool, scripted_provider: ScriptedProvider
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok("no good")
    scripted_provider.on(model="claude-sonnet-4-5").ok("a good answer")
    seen: list[str] = []

    def check(completion: Any) -> bool:
        seen.append(completion.text)
        return "good answer" in completion.text

    async def acheck(completion: Any) -> bool:
        return check(completion)

    client = Breaker(scripted_provider).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"]
    )
    stream = client.stream(HI, on_stream_break="continue", accept=acheck if asynchronous else check)
    chunks = await _read(stream)
    await client.aclose()
    assert seen == ["no good", "a good answer"]
    assert sum(c.restart for c in chunks) == 1
    assert stream.text == "a good answer" and stream.model == "anthropic/claude-sonnet-4-5"
    rejected = [a for a in stream.attempts if a.outcome == "rejected"]
    assert [a.model for a in rejected] == ["anthropic/claude-haiku-4-5"]
    assert client.manager.get_profile("anthropic-key").consecutive_failures == 0  # type: ignore[union-attr]


async def test_accept_rejecting_a_stream_in_raise_mode_raises_stream_interrupted(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok("no good")
    client = Breaker(scripted_provider).client(["anthropic/claude-haiku-4-5"])
    with pytest.raises(StreamInterrupted) as raised:
        await _read(client.stream(HI, accept=lambda completion: False))
    await client.aclose()
    assert isinstance(raised.value.error, ReplyRejected)
    assert raised.value.error.completion.text == "no good"  # type: ignore[attr-defined]


async def test_a_stream_accept_keeps_is_unchanged(scripted_provider: ScriptedProvider) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    client = Breaker(scripted_provider).client(["anthropic/claude-haiku-4-5"])
    stream = client.stream(HI, on_stream_break="continue", accept=lambda completion: True)
    chunks = await _read(stream)
    await client.aclose()
    assert "".join(c.text for c in chunks) == FULL and len(scripted_provider.calls) == 1
    assert [a.outcome for a in stream.attempts] == ["ok"]


# -- the pure parts -----------------------------------------------------------------------------


def test_splice_drops_only_the_whitespace_the_caller_already_has() -> None:
    splice = Splice.after("one two ")
    assert splice.text(" ") == ""
    assert splice.text("three") == "three"
    assert splice.text(" four") == " four"  # past the start: nothing is touched
    splice = Splice.after("one\n\n")
    assert [splice.text("\n"), splice.text("\nx")] == ["", "x"]
    assert Splice.after("one").text(" two") == " two"
    assert Splice.after("a ").text("\tb") == "\tb"


def test_which_models_can_continue() -> None:
    plain = ChatRequest(HI, stream=True)
    thinking = ChatRequest(HI, stream=True, params={"reasoning_effort": "high"})
    get = default_catalog.get
    claude = get("anthropic", "claude-haiku-4-5")
    gemini = get("gemini", "gemini-2.5-flash")
    gpt = get("openai", "gpt-4o")
    assert claude is not None and gemini is not None and gpt is not None
    assert prefill_unsupported(claude, plain) is None
    assert prefill_unsupported(claude, thinking) == PREFILL
    assert prefill_unsupported(gemini, thinking) is None
    assert prefill_unsupported(gpt, plain) == PREFILL
    json_mode = ChatRequest(HI, stream=True, params={"response_format": {"type": "json_object"}})
    assert (
        prefill_unsupported(claude, json_mode) == prefill_unsupported(gemini, json_mode) == PREFILL
    )
    from failover.catalog import ModelEntry

    bedrock_claude = ModelEntry(
        id="anthropic.claude-3-5-haiku-20241022-v1:0", name="c", provider="bedrock", api="bedrock"
    )
    bedrock_llama = ModelEntry(
        id="meta.llama3-8b-instruct-v1:0", name="l", provider="bedrock", api="bedrock"
    )
    assert prefill_unsupported(bedrock_claude, plain) is None
    assert prefill_unsupported(bedrock_llama, plain) == PREFILL


def test_the_continuation_request_and_the_order_of_its_candidates() -> None:
    request = ChatRequest(HI, stream=True, params={"temperature": 0})
    continued = continuation_request(request, KEPT)
    assert list(continued.messages) == [*HI, {"role": "assistant", "content": "one two three"}]
    assert continued.params == request.params and continued.stream
    assert continuation_request(request, " \n") is request
    prefilled = ChatRequest([*HI, {"role": "assistant", "content": "Sure: "}], stream=True)
    assert list(continuation_request(prefilled, "one two ").messages) == [
        *HI,
        {"role": "assistant", "content": "Sure: one two"},
    ]
    a, b, c = (
        default_catalog.get("anthropic", m)
        for m in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1")
    )
    assert a is not None and b is not None and c is not None
    assert continuation_steps([(a,), (b,), (c,)], b) == [(c,), (a,), (b,)]
    assert continuation_steps([(a, b), (c,)], a) == [(c,), (b, a)]


# -- through ResilientTransport: the continuation spliced into the SDK's own stream -------------


class BreakingTransport:
    """An httpx/httpx2 transport (async and sync) answered by a ScriptedProvider, breaking
    streams as a :class:`Breaker` plans."""

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker

    def _chunks(self, request: Any, body: bytes) -> tuple[Any, Any, list[bytes], str | None]:
        from failover.http import library_of

        scripted = self.breaker.scripted
        answer = scripted.answer(request.method, str(request.url), request.headers, body)
        chunks = list(answer.chunks)
        call = scripted.calls[-1] if scripted.calls else None
        kind = None
        if call is not None and call.stream and self.breaker.plan and answer.status == 200:
            kind = self.breaker.plan.pop(0)
            head = 3 if call.wire == "anthropic" else 0
            chunks = chunks[: head + self.breaker.after]
            if kind == "error_event":
                name, data = stream_error(call.wire)
                chunks.append(((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode())
        return library_of(request), answer, chunks, kind

    async def handle_async_request(self, request: Any) -> Any:
        library, answer, chunks, kind = self._chunks(request, await request.aread())

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            if kind == "reset":
                raise library.ReadError("connection reset by peer", request=request)
            if kind == "idle":
                raise library.ReadTimeout("no chunk in time", request=request)

        return library.Response(
            answer.status, headers=answer.headers, content=body(), request=request
        )

    def handle_request(self, request: Any) -> Any:
        library, answer, chunks, kind = self._chunks(request, request.read())

        def body() -> Any:
            yield from chunks
            if kind == "reset":
                raise library.ReadError("connection reset by peer", request=request)
            if kind == "idle":
                raise library.ReadTimeout("no chunk in time", request=request)

        return library.Response(
            answer.status, headers=answer.headers, content=body(), request=request
        )

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        return None


def _sdk_transport(
    breaker: Breaker, provider: str, fallback_models: list[str], **kwargs: Any
) -> Any:
    from failover import ResilientTransport

    providers = {provider, *(m.partition("/")[0] for m in fallback_models if "/" in m)}
    profiles = [AuthProfile(f"{p}-key", p, f"sk-{p}-test-key-0001") for p in providers]
    return ResilientTransport(
        profiles,
        provider=provider,
        inner=BreakingTransport(breaker),  # type: ignore[arg-type]
        fallback_models=fallback_models,
        on_stream_break="continue",
        **kwargs,
    )


@pytest.mark.parametrize("kind", BREAKS)
async def test_an_openai_sdk_stream_cut_half_way_is_finished_by_claude_without_the_sdk_noticing(
    kind: str, scripted_provider: ScriptedProvider
) -> None:
    import httpx2
    import openai

    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="claude-haiku-4-5").ok(REST)
    events: list[FailoverEvent] = []
    transport = _sdk_transport(
        Breaker(scripted_provider, [kind]), "openai", ["anthropic/claude-haiku-4-5"]
    )
    transport.on_failover(events.append)
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(api_key="sdk-key", max_retries=0, http_client=http)
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    await transport.aclose()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FULL
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None  # the continuation's usage, as include_usage asks
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert len(roles) <= 1  # one message: the continuation opens nothing anew
    assert [c.model for c in scripted_provider.calls] == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert _prefill(scripted_provider.calls[1].body, "anthropic") == KEPT.rstrip()
    (event,) = [e for e in events if e.kind == "continue"]
    assert (event.from_model, event.to_model) == (
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    )


@pytest.mark.parametrize("kind", BREAKS)
async def test_an_anthropic_sdk_stream_is_continued_in_its_own_text_block(
    kind: str, scripted_provider: ScriptedProvider
) -> None:
    import anthropic
    import httpx2

    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)
    transport = _sdk_transport(
        Breaker(scripted_provider, [kind]), "anthropic", ["claude-sonnet-4-5"]
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = anthropic.AsyncAnthropic(api_key="sdk-key", max_retries=0, http_client=http)
        async with sdk.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=HI,  # type: ignore[arg-type]
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            message = await stream.get_final_message()
    await transport.aclose()
    assert "".join(pieces) == FULL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == FULL  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert [c.model for c in scripted_provider.calls] == ["claude-haiku-4-5", "claude-sonnet-4-5"]


@pytest.mark.parametrize("kind", ["truncate", "error_event"])
async def test_a_genai_sdk_stream_is_continued(
    kind: str, scripted_provider: ScriptedProvider
) -> None:
    import httpx2
    from google import genai
    from google.genai import types as genai_types

    scripted_provider.on(model="gemini-2.5-flash-lite").ok(FULL)
    scripted_provider.on(model="gemini-2.5-flash").ok(REST)
    transport = _sdk_transport(Breaker(scripted_provider, [kind]), "gemini", ["gemini-2.5-flash"])
    options = genai_types.HttpOptions(
        httpx_async_client=httpx2.AsyncClient(transport=transport),
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    client = genai.Client(api_key="sdk-key", http_options=options)
    pieces = [
        chunk
        async for chunk in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash-lite", contents="count to six"
        )
    ]
    await transport.aclose()
    assert "".join(chunk.text or "" for chunk in pieces) == FULL
    last = pieces[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert [c.model for c in scripted_provider.calls] == [
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash",
    ]


async def test_an_sdk_stream_cut_inside_a_tool_call_still_raises(
    scripted_provider: ScriptedProvider,
) -> None:
    import httpx2
    import openai

    scripted_provider.on(model="gpt-4o-mini").tool_call("get_weather", {"city": "Paris"})
    transport = _sdk_transport(
        Breaker(scripted_provider, ["truncate"], after=1), "openai", ["anthropic/claude-haiku-4-5"]
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(api_key="sdk-key", max_retries=0, http_client=http)
        stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIConnectionError):
            _ = [c async for c in stream]
    await transport.aclose()
    assert [c.model for c in scripted_provider.calls] == ["gpt-4o-mini"]


async def test_a_translated_stream_that_breaks_is_continued_by_the_next_translated_model(
    scripted_provider: ScriptedProvider,
) -> None:
    import httpx2
    import openai

    scripted_provider.on(model="gpt-4o-mini").server_error(times=3)
    scripted_provider.on(model="gemini-2.5-flash-lite").ok(FULL)
    scripted_provider.on(model="gemini-2.5-flash").ok(REST)
    breaker = Breaker(scripted_provider, ["reset"])
    transport = _sdk_transport(
        breaker,
        "openai",
        ["gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-flash"],
        wait_for_recovery=False,
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(api_key="sdk-key", max_retries=0, http_client=http)
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=HI,
            stream=True,  # type: ignore[arg-type]
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await transport.aclose()
    assert text == FULL
    served = [c.model for c in scripted_provider.calls if c.outcome == "ok"]
    assert served == ["gemini-2.5-flash-lite", "gemini-2.5-flash"]


def test_a_sync_openai_sdk_stream_is_continued_too(scripted_provider: ScriptedProvider) -> None:
    import httpx2
    import openai

    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="claude-haiku-4-5").ok(REST)
    transport = _sdk_transport(
        Breaker(scripted_provider, ["reset"]), "openai", ["anthropic/claude-haiku-4-5"]
    )
    with httpx2.Client(transport=transport) as http:
        sdk = openai.OpenAI(api_key="sdk-key", max_retries=0, http_client=http)
        stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    transport.close()
    assert text == FULL


async def test_without_continue_the_sdk_still_raises_on_a_cut_stream(
    scripted_provider: ScriptedProvider,
) -> None:
    import httpx2
    import openai

    from failover import ResilientTransport

    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    profiles = [
        AuthProfile("o", "openai", "sk-openai-test-key-0001"),
        AuthProfile("a", "anthropic", "sk-ant-test-key-0001"),
    ]
    transport = ResilientTransport(
        profiles,
        provider="openai",
        inner=BreakingTransport(Breaker(scripted_provider, ["truncate"])),  # type: ignore[arg-type]
        fallback_models=["anthropic/claude-haiku-4-5"],
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(api_key="sdk-key", max_retries=0, http_client=http)
        stream = await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIConnectionError):
            _ = [c async for c in stream]
    await transport.aclose()
    assert len(scripted_provider.calls) == 1


def test_the_transport_refuses_restart() -> None:
    from failover import ResilientTransport
    from failover.errors import ConfigError

    with pytest.raises(ConfigError, match="restart"):
        ResilientTransport(
            [AuthProfile("o", "openai", "sk-openai-test-key-0001")],
            provider="openai",
            on_stream_break="restart",
        )


# -- over real HTTP: the simulator's own breaks ------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["truncate", "midstream_error"]
)  # its "reset" comes before any text
@pytest.mark.parametrize(
    ("provider", "first", "second"),
    [
        ("anthropic", "claude-haiku-4-5", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash-lite", "gemini-2.5-flash"),
        ("ollama-native", "llama3.2", "qwen3"),
    ],
)
def test_the_simulators_broken_streams_are_continued_over_http(
    provider: str, first: str, second: str, kind: str
) -> None:
    import anyio

    from failover import FailoverManager
    from tests.conftest import simulator_in_thread

    with simulator_in_thread() as sim:
        sim.script(kind, model=first)
        profile = AuthProfile(
            "key", provider, "sk-sim-test-key-000001", base_url=sim.base_url(provider)
        )

        async def run() -> tuple[Any, list[StreamChunk]]:
            async with ResilientClient(
                [f"{provider}/{first}", f"{provider}/{second}"], FailoverManager(profiles=[profile])
            ) as client:
                stream = client.stream(HI, on_stream_break="continue")
                return stream, await _read(stream)

        stream, chunks = anyio.run(run)
        received = [r for r in sim.requests if r.stream]
    assert [r.model for r in received] == [first, second]
    wire = {"gemini": "gemini", "anthropic": "anthropic"}.get(provider, "ollama")
    prefill = _prefill(received[1].body, wire)
    assert prefill  # the continuation was asked to go on from the text the caller has
    assert stream.text.startswith(prefill) and not any(c.restart for c in chunks)
    assert stream.finish_reason == "stop" and stream.model == f"{provider}/{second}"


async def test_a_stream_broken_twice_counts_each_attempts_own_output_once(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    scripted_provider.on(model="claude-sonnet-4-5").ok(REST)
    scripted_provider.on(model="claude-opus-4-1").ok(" six")
    client = Breaker(scripted_provider, ["truncate", "reset"]).client(
        ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-1"]
    )
    stream = client.stream(HI, on_stream_break="continue")
    await _read(stream)
    await client.aclose()
    assert stream.text == FULL
    assert stream.usage is not None
    # "one two three " (4 tokens), " four five" (3), " six" (2): the first attempt's text
    # is not counted again in the second's
    assert stream.usage.output_tokens == 9


async def test_a_streamed_reply_rejected_in_raise_mode_is_charged_what_it_cost(
    scripted_provider: ScriptedProvider,
) -> None:
    from failover.budgets import Budget

    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    budget = Budget(usd=5.0)
    client = Breaker(scripted_provider, []).client(["anthropic/claude-haiku-4-5"], budgets=[budget])
    stream = client.stream(HI, accept=lambda completion: False, max_tokens=4_000)
    with pytest.raises(StreamInterrupted):
        await _read(stream)
    used = await client.manager.admission.ledger.used(budget)
    await client.aclose()
    haiku = default_catalog.resolve("anthropic/claude-haiku-4-5")
    assert haiku is not None
    worst = haiku.calculate_cost(TokenUsage(10, 4_000))
    assert worst is not None and 0 < used < worst / 10  # its real cost, not its worst case


async def test_continue_starts_over_when_no_model_that_could_continue_can_take_it(
    scripted_provider: ScriptedProvider,
) -> None:
    scripted_provider.on(model="gpt-4o-mini").ok(FULL)
    scripted_provider.on(model="claude-haiku-4-5").ok(FULL)
    client = Breaker(scripted_provider, ["reset"]).client(
        ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
    )
    # seed: Claude cannot take it, and OpenAI cannot continue: gpt-4o-mini starts over
    stream = client.stream(HI, on_stream_break="continue", seed=1)
    chunks = await _read(stream)
    await client.aclose()
    assert any(chunk.restart for chunk in chunks)  # not a StreamInterrupted
    assert stream.model == "openai/gpt-4o-mini"
    after = chunks[[chunk.restart for chunk in chunks].index(True) + 1 :]
    assert stream.text == "".join(chunk.text for chunk in after)  # only the new answer
