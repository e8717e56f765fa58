"""The simulator's OpenAI Responses API, driven by the real openai SDK (no keys, 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam

from failover.testing import Behavior, Simulator
from failover.testing.responses import ResponseStore
from tests.conftest import simulator_in_thread

KEY = "sk-resp-key-00000001"
OTHER = "sk-resp-key-00000002"
MODEL = "gpt-4o-mini"
TEXT = "Simulated answer from openai/gpt-4o-mini: all systems nominal."
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(keys={"openai": [KEY, OTHER], "azure": [KEY]}) as simulator:
        yield simulator


@pytest.fixture
async def sdk(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key=KEY, base_url=sim.base_url("openai"), max_retries=0
    ) as client:
        yield client


def other_client(sim: Simulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=OTHER, base_url=sim.base_url("openai"), max_retries=0)


async def events_of(stream: Any) -> list[Any]:
    return [event async for event in stream]


async def read_into(stream: Any, seen: list[str]) -> None:
    async for event in stream:
        seen.append(event.type)


def squeezed(types: list[str]) -> list[str]:
    """The event types with runs of deltas written once."""
    out: list[str] = []
    for kind in types:
        if not (out and kind == out[-1] and kind.endswith(".delta")):
            out.append(kind)
    return out


# -- replies --------------------------------------------------------------------------------


async def test_json_reply_parses_with_the_sdk(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}],
        instructions="Be brief.",
        metadata={"run": "1"},
        temperature=0.5,
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == TEXT
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens == 7
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.instructions == "Be brief." and response.metadata == {"run": "1"}
    assert response.temperature == 0.5 and response.error is None
    received = sim.requests[-1]
    assert (received.provider, received.wire, received.key, received.model) == (
        "openai",
        "responses",
        KEY,
        MODEL,
    )
    assert received.outcome == "healthy" and received.body["instructions"] == "Be brief."


async def test_stream_sends_the_documented_events_in_order(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model=MODEL, input="Hello", stream=True)
    events = await events_of(stream)
    assert squeezed([event.type for event in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == TEXT
    done = next(event for event in events if event.type == "response.output_text.done")
    assert done.text == TEXT
    created, completed = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == []
    assert completed.id == created.id and completed.status == "completed"
    assert completed.output_text == TEXT and completed.usage is not None
    item_ids = {getattr(event, "item_id", None) for event in events[3:-2]}
    assert item_ids == {completed.output[0].id}


async def test_stream_is_sse_with_event_lines_and_no_done_marker(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sim.base_url('openai')}/responses",
            json={"model": MODEL, "input": "hi", "stream": True},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert reply.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in reply.text.split("\n\n") if block]
    for block in blocks:
        name, data = block.split("\n")
        assert name.removeprefix("event: ") == json.loads(data.removeprefix("data: "))["type"]
    assert "[DONE]" not in reply.text and blocks[-1].startswith("event: response.completed")


async def test_the_sdks_stream_helper_assembles_the_final_response(
    sdk: openai.AsyncOpenAI,
) -> None:
    async with sdk.responses.stream(model=MODEL, input="Hello") as stream:
        final = await stream.get_final_response()
    assert final.output_text == TEXT and final.status == "completed"


def test_the_sync_client_reads_json_and_streams() -> None:
    with (
        simulator_in_thread(keys={"openai": [KEY]}) as simulator,
        openai.OpenAI(api_key=KEY, base_url=simulator.base_url("openai"), max_retries=0) as sdk,
    ):
        assert sdk.responses.create(model=MODEL, input="hi").output_text == TEXT
        events = list(sdk.responses.create(model=MODEL, input="hi", stream=True))
        assert events[-1].type == "response.completed" and events[-1].response.output_text == TEXT


async def test_json_mode_reasoning_and_max_output_tokens(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"answer": {"type": "string"}}}
    response = await sdk.responses.create(
        model=MODEL,
        input="hi",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema}},
        reasoning={"effort": "low"},
    )
    assert json.loads(response.output_text) == {"answer": TEXT}
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens
    assert response.reasoning is not None and response.reasoning.effort == "low"
    sim.script(Behavior(reply=" ".join(["word"] * 40)), key=KEY)
    cut = await sdk.responses.create(model=MODEL, input="hi", max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == " ".join(["word"] * 16)


async def test_azure_v1_path_speaks_responses_too(sim: Simulator) -> None:
    base = f"{sim.base_url('azure')}/openai/v1"
    async with openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0) as sdk:
        response = await sdk.responses.create(model="my-deployment", input="hi")
    assert response.status == "completed"
    assert (sim.requests[-1].provider, sim.requests[-1].wire) == ("azure", "responses")


# -- tools ----------------------------------------------------------------------------------


async def test_tool_call_round_trip_replaying_the_output(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script(
        Behavior(
            tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
        ),
        key=KEY,
    )
    items: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    asked: list[dict[str, Any]] = []
    while True:
        response = await sdk.responses.create(model=MODEL, input=items, tools=[WEATHER])
        items += response.output
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            break
        for call in calls:
            assert call.name == "get_weather" and call.call_id and call.id
            asked.append(json.loads(call.arguments))
            items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sun"})
    assert asked == [{"city": "Paris"}, {"city": "Rome"}]
    assert response.output_text.endswith("after 2 tool results: all systems nominal.")
    assert len(sim.requests) == 3 and response.tools[0].name == "get_weather"  # type: ignore[union-attr]


async def test_streamed_tool_call_events(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    sim.script(Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), key=KEY)
    stream = await sdk.responses.create(model=MODEL, input="Weather?", tools=[WEATHER], stream=True)
    events = await events_of(stream)
    assert squeezed([event.type for event in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"city": "Paris"}
    call = events[-1].response.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert events[2].item.id == call.id and events[2].item.arguments == ""
    async with sdk.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER]) as helper:
        final = await helper.get_final_response()
    assert final.output[0].type == "function_call"


async def test_a_forced_function_is_called(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model=MODEL,
        input="hi",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather"


# -- previous_response_id -------------------------------------------------------------------


async def test_previous_response_id_is_honoured_for_its_key_only(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script(Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), model=MODEL)
    first = await sdk.responses.create(model=MODEL, input="Weather?", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call"
    answer = [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    second = await sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=answer,  # type: ignore[arg-type]
    )
    assert second.previous_response_id == first.id
    assert second.output_text.endswith("after 1 tool results: all systems nominal.")
    third = await sdk.responses.create(model=MODEL, previous_response_id=second.id, input="More?")
    assert third.status == "completed"
    async with other_client(sim) as other:
        with pytest.raises(openai.BadRequestError) as refused:
            await other.responses.create(model=MODEL, previous_response_id=first.id, input="x")
    assert refused.value.status_code == 400
    assert refused.value.body == {
        "message": f"Previous response with id '{first.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    assert sim.requests[-1].key == OTHER and sim.requests[-1].outcome == "invalid_request"


async def test_unknown_and_unstored_previous_responses_are_not_found(
    sdk: openai.AsyncOpenAI,
) -> None:
    unstored = await sdk.responses.create(model=MODEL, input="hi", store=False)
    for previous in ("resp_never_created", unstored.id):
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model=MODEL, previous_response_id=previous, input="x")
        assert refused.value.code == "previous_response_not_found"


async def test_a_pending_call_needs_its_output(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    sim.script(Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), key=KEY)
    first = await sdk.responses.create(model=MODEL, input="Weather?", tools=[WEATHER])
    call_id = first.output[0].call_id  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, previous_response_id=first.id, input="And?")
    assert refused.value.message.endswith(f"No tool output found for function call {call_id}.")
    orphan = [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, input=orphan)  # type: ignore[arg-type]
    assert "No tool call found for function call output with call_id call_nope." in str(
        refused.value
    )


def test_the_store_is_bounded_per_key() -> None:
    store = ResponseStore(per_key=2, keys=2)
    for number in range(3):
        store.remember("a", f"resp_{number}", [{"n": number}])
    assert store.recall("a", "resp_0") is None and store.recall("a", "resp_2") == ({"n": 2},)
    assert store.recall("b", "resp_2") is None
    store.remember("b", "resp_b", [])
    store.remember("c", "resp_c", [])
    assert store.recall("a", "resp_2") is None and store.recall("c", "resp_c") == ()
    assert len(store) == 2


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "status", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("invalid_key", openai.AuthenticationError, 401, "invalid_api_key"),
        ("overloaded", openai.InternalServerError, 503, None),
        ("server_error", openai.InternalServerError, 500, None),
        ("context_limit", openai.BadRequestError, 400, "context_length_exceeded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_error_kinds_raise_the_sdks_own_exceptions(
    sim: Simulator,
    sdk: openai.AsyncOpenAI,
    kind: str,
    error: type[openai.APIStatusError],
    status: int,
    code: str | None,
    stream: bool,
) -> None:
    sim.script(Behavior(kind, retry_after=3), key=KEY)
    with pytest.raises(error) as raised:
        await sdk.responses.create(model=MODEL, input="hi", stream=stream)
    assert raised.value.status_code == status and raised.value.code == code
    assert raised.value.type is not None
    if kind == "rate_limit":
        assert raised.value.response.headers["retry-after"] == "3"
        assert raised.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert sim.requests[-1].outcome == kind


async def test_a_wrong_key_is_refused_before_anything_else(sim: Simulator) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-wrong-0000", base_url=sim.base_url("openai"), max_retries=0
    ) as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.responses.create(model=MODEL, input="hi", previous_response_id="resp_x")


async def test_context_limit_only_above_the_prompt_size(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script(Behavior("context_limit", max_prompt_chars=100), key=KEY)
    assert (await sdk.responses.create(model=MODEL, input="short")).status == "completed"
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.responses.create(model=MODEL, input="x" * 200)
    assert raised.value.param == "input"


async def test_a_truncated_stream_raises_a_connection_error(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script("truncate", key=KEY)
    seen: list[str] = []
    stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
    with pytest.raises(openai.APIConnectionError) as raised:
        await read_into(stream, seen)
    assert not isinstance(raised.value, openai.APITimeoutError)
    assert "response.output_text.delta" in seen and "response.completed" not in seen
    assert sim.requests[-1].outcome == "truncate"
    with pytest.raises(json.JSONDecodeError):  # a cut JSON body: the SDK's json() fails
        await sdk.responses.create(model=MODEL, input="hi")


async def test_a_truncated_tool_stream_also_ends_early(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script(Behavior("truncate", tool_calls=[("get_weather", {"city": "Paris"})]), key=KEY)
    seen: list[str] = []
    stream = await sdk.responses.create(model=MODEL, input="hi", stream=True)
    with pytest.raises(openai.APIConnectionError):
        await read_into(stream, seen)
    assert seen[-1] == "response.function_call_arguments.delta"


async def test_a_midstream_error_is_a_response_failed_event(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script("midstream_error", key=KEY)
    events = await events_of(await sdk.responses.create(model=MODEL, input="hi", stream=True))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[-2].type == "response.output_text.delta"
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.id == events[0].response.id
    assert failed.response.status == "failed" and failed.response.error.code == "server_error"
    message = failed.response.output[0]
    assert message.status == "incomplete" and TEXT.startswith(message.content[0].text)
    assert failed.response.usage is None
    async with sdk.responses.stream(model=MODEL, input="hi") as helper:
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await helper.get_final_response()


async def test_content_block_is_an_incomplete_response(
    sim: Simulator, sdk: openai.AsyncOpenAI
) -> None:
    sim.script("content_block", key=KEY)
    response = await sdk.responses.create(model=MODEL, input="hi")
    assert response.status == "incomplete" and response.output_text == ""
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    events = await events_of(await sdk.responses.create(model=MODEL, input="hi", stream=True))
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.incomplete",
    ]
    assert events[-1].response.incomplete_details.reason == "content_filter"


async def test_malformed_reset_and_hang(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    sim.script("malformed", key=KEY)
    with pytest.raises(json.JSONDecodeError):
        await sdk.responses.create(model=MODEL, input="hi")
    sim.script("reset", key=KEY)
    with pytest.raises(openai.APIConnectionError):
        await sdk.responses.create(model=MODEL, input="hi")
    sim.script("hang", key=KEY)
    with pytest.raises(openai.APITimeoutError):
        await sdk.responses.create(model=MODEL, input="hi", timeout=0.3)
    assert [r.outcome for r in sim.requests] == ["malformed", "reset", "hang"]


async def test_sim_calls_lists_responses_requests(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    await sdk.responses.create(model=MODEL, input="hi", stream=True)
    async with httpx.AsyncClient() as http:
        calls = (await http.get(f"{sim.root_url}/_sim/calls")).json()["calls"]
    assert [(c["wire"], c["stream"], c["key"]) for c in calls] == [("responses", True, "...0001")]


# -- what OpenAI rejects --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param", "code", "message"),
    [
        ({"stop": ["x"]}, "stop", "unknown_parameter", "Unknown parameter: 'stop'."),
        ({"max_tokens": 20}, "max_tokens", "unknown_parameter", "Unknown parameter"),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            None,
            "unsupported_parameter",
            "this parameter has moved to 'input'",
        ),
        (
            {"response_format": {"type": "json_object"}},
            "response_format",
            "unsupported_parameter",
            "moved to 'text.format'",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "input[0].content[0].type",
            "invalid_value",
            "Invalid value: 'text'.",
        ),
        (
            {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
            "input[0].content[0]",
            "invalid_value",
            "Supported values are: 'output_text' and 'refusal'.",
        ),
        (
            {"input": [{"role": "tool", "content": "x"}]},
            "input[0]",
            "invalid_value",
            "Invalid value: 'tool'.",
        ),
        (
            {"input": [{"role": "user"}]},
            "input[0].content",
            "missing_required_parameter",
            "Missing required parameter: 'input[0].content'.",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input[0].arguments",
            "invalid_type",
            "expected a string, but got an object instead.",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": {"url": "https://x"}}],
                    }
                ]
            },
            "input[0].content[0].image_url",
            "invalid_type",
            "expected a string",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            "tools[0].name",
            "missing_required_parameter",
            "Missing required parameter: 'tools[0].name'.",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice.name",
            "missing_required_parameter",
            "Missing required parameter: 'tool_choice.name'.",
        ),
        (
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "missing_required_parameter",
            "'text.format.name'",
        ),
        (
            {"reasoning": {"effort": "extreme"}},
            "reasoning.effort",
            "invalid_value",
            "Invalid value: 'extreme'.",
        ),
        (
            {"max_output_tokens": 8},
            "max_output_tokens",
            "integer_below_min_value",
            "Expected a value >= 16, but got 8 instead.",
        ),
        ({"temperature": "hot"}, "temperature", "invalid_type", "expected a decimal"),
        ({"input": {"text": "hi"}}, "input", "invalid_type", "expected one of a string"),
        (
            {"input": []},
            None,
            "missing_required_parameter",
            'One of "input" or "previous_response_id"',
        ),
        ({"model": None}, "model", "invalid_type", "Invalid type for 'model'"),
    ],
)
async def test_what_openai_rejects_gets_its_own_400(
    sim: Simulator, extra: dict[str, Any], param: str | None, code: str, message: str
) -> None:
    body = {"model": MODEL, "input": "hi", **extra}
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{sim.base_url('openai')}/responses",
            json=body,
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert message in error["message"]
    assert sim.requests[-1].outcome == "invalid_request" and sim.requests[-1].wire == "responses"


async def test_the_sdk_raises_bad_request_for_an_unknown_field(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.responses.create(model=MODEL, input="hi", extra_body={"seed": 1})
    assert raised.value.body == {
        "message": "Unknown parameter: 'seed'.",
        "type": "invalid_request_error",
        "param": "seed",
        "code": "unknown_parameter",
    }


async def test_state_the_simulator_does_not_hold(sim: Simulator, sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match=r"Conversation with id 'conv_x' not found\."):
        await sdk.responses.create(model=MODEL, input="hi", conversation="conv_x")
    with pytest.raises(openai.NotFoundError, match=r"Prompt with id 'pmpt_x' not found\."):
        await sdk.responses.create(model=MODEL, input="hi", prompt={"id": "pmpt_x"})
