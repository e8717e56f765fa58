"""Prompt caching on every wire: ``cache_control`` markers given in OpenAI's shape become
Claude's breakpoints (Anthropic and Vertex ``cache_control`` blocks, Bedrock ``cachePoint``
blocks) and are dropped where caching is implicit (OpenAI, Gemini, Ollama); cached input
tokens are read from each wire's usage, in replies and streams, and priced at the cache
prices."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import respx

from failover import AuthProfile, ResilientClient, TokenUsage, get_model_entry
from failover.errors import ConfigError
from failover.gateway.decode_anthropic import decode_anthropic
from failover.gateway.decode_chat import decode_chat
from failover.providers import get_adapter
from failover.providers.base import ChatRequest
from failover.providers.openai import OpenAIAdapter, openai_usage
from failover.providers.vertex import VertexAnthropicAdapter
from failover.testing.cloud_sim import check_converse, encode_frame
from failover.testing.rejects import check_request

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
BOOK = "A long book. " * 50
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        "cache_control": EPHEMERAL,
    }
]
MARKED = [
    {
        "role": "system",
        "content": [
            {"type": "text", "text": "You answer questions about the book."},
            {"type": "text", "text": BOOK, "cache_control": HOUR},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "What is in the picture?", "cache_control": EPHEMERAL},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat", "cache_control": EPHEMERAL},
    {"role": "user", "content": "And the title?"},
]
"""Three markers in messages (a system part, a user text part, a tool message) and one
on a tool: four breakpoints, Claude's limit."""


def body(provider: str, request: ChatRequest, model: str, key: str = "k") -> dict[str, Any]:
    adapter = get_adapter(provider)
    built = adapter.build_request(request, model=model, api_key=key, base_url="https://h")
    return dict(json.loads(built.body))


def marks(value: Any, key: str = "cache_control") -> list[Any]:
    """Every ``key`` found anywhere in ``value``, in document order."""
    found: list[Any] = []
    if isinstance(value, dict):
        for name, item in value.items():
            if name == key:
                found.append(item)
            else:
                found.extend(marks(item, key))
    elif isinstance(value, list):
        for item in value:
            found.extend(marks(item, key))
    return found


# -- Claude's wires: markers become breakpoints ----------------------------------------------


def test_anthropic_puts_each_marker_on_the_matching_block_and_tool() -> None:
    sent = body("anthropic", ChatRequest(MARKED, params={"tools": TOOLS}), "claude-haiku-4-5")
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    assert sent["system"] == [
        {"type": "text", "text": "You answer questions about the book."},
        {"type": "text", "text": BOOK, "cache_control": HOUR},  # the ttl goes along
    ]
    first, _, results = sent["messages"][:3]
    assert [block["type"] for block in first["content"]] == ["image", "text"]
    assert "cache_control" not in first["content"][0]
    assert first["content"][1]["cache_control"] == EPHEMERAL
    assert results["content"][0]["type"] == "tool_result"
    assert results["content"][0]["cache_control"] == EPHEMERAL  # from the message itself
    assert len(marks(sent)) == 4
    assert check_request("anthropic", "anthropic", sent) is None  # what the API accepts


def test_a_marker_on_a_message_with_string_content_marks_its_text_block() -> None:
    messages = [
        {"role": "system", "content": BOOK, "cache_control": EPHEMERAL},
        {"role": "user", "content": "Summarise it.", "cache_control": EPHEMERAL},
        {"role": "assistant", "content": "It is long.", "cache_control": EPHEMERAL},
        {"role": "user", "content": "Shorter?"},
    ]
    sent = body("anthropic", ChatRequest(messages), "claude-haiku-4-5")
    assert sent["system"] == [{"type": "text", "text": BOOK, "cache_control": EPHEMERAL}]
    user, assistant, last = sent["messages"]
    assert user["content"] == [
        {"type": "text", "text": "Summarise it.", "cache_control": EPHEMERAL}
    ]
    assert assistant["content"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in last["content"][0]


def test_an_image_a_tool_call_and_a_tool_results_part_can_be_marked() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG}"},
                    "cache_control": EPHEMERAL,
                }
            ],
        },
        MARKED[2] | {"cache_control": EPHEMERAL},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "a cat", "cache_control": HOUR}],
        },
    ]
    sent = body("anthropic", ChatRequest(messages, params={"tools": TOOLS[:0]}), "claude-haiku-4-5")
    image, call = sent["messages"][0]["content"][0], sent["messages"][1]["content"][0]
    assert image["type"] == "image" and image["cache_control"] == EPHEMERAL
    assert call["type"] == "tool_use" and call["cache_control"] == EPHEMERAL
    result = sent["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["cache_control"] == HOUR


def test_past_four_markers_the_last_four_are_kept_tools_first_to_go() -> None:
    messages = [*MARKED[:-1], {"role": "user", "content": "And?", "cache_control": HOUR}]
    sent = body("anthropic", ChatRequest(messages, params={"tools": TOOLS}), "claude-haiku-4-5")
    assert "cache_control" not in sent["tools"][0]  # the earliest breakpoint went
    assert sent["system"][1]["cache_control"] == HOUR
    assert sent["messages"][-1]["content"][-1]["cache_control"] == HOUR  # the latest stays
    assert len(marks(sent)) == 4

    many = [{"role": "user", "content": f"turn {n}", "cache_control": EPHEMERAL} for n in range(7)]
    sent = body("anthropic", ChatRequest(many), "claude-haiku-4-5")
    kept = [b["text"] for b in sent["messages"][0]["content"] if "cache_control" in b]
    assert kept == ["turn 3", "turn 4", "turn 5", "turn 6"]


def test_the_callers_messages_and_tools_are_not_changed() -> None:
    messages, tools = copy.deepcopy(MARKED), copy.deepcopy(TOOLS)
    for provider, model in [
        ("anthropic", "claude-haiku-4-5"),
        ("bedrock", "anthropic.claude-haiku-4-5"),
        ("openai", "gpt-4o-mini"),
    ]:
        body(provider, ChatRequest(messages, params={"tools": tools}), model)
    assert messages == MARKED and tools == TOOLS


def test_claude_on_vertex_carries_the_same_markers() -> None:
    adapter = get_adapter("vertex_anthropic")
    assert isinstance(adapter, VertexAnthropicAdapter)
    built = adapter.build_request(
        ChatRequest(MARKED, params={"tools": TOOLS}),
        model="claude-haiku-4-5",
        api_key="token",
        base_url="https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5",
    )
    sent = json.loads(built.body)
    anthropic = body("anthropic", ChatRequest(MARKED, params={"tools": TOOLS}), "x")
    assert marks(sent) == marks(anthropic) and len(marks(sent)) == 4
    assert (
        sent["tools"] == anthropic["tools"]
        and sent["system"] == anthropic["system"]
        and sent["messages"] == anthropic["messages"]
    )


BEDROCK_CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_bedrock_claude_gets_a_cache_point_after_each_marked_block() -> None:
    sent = body("bedrock", ChatRequest(MARKED, params={"tools": TOOLS}), BEDROCK_CLAUDE)
    assert sent["toolConfig"]["tools"][1] == {"cachePoint": {"type": "default"}}
    assert sent["system"] == [
        {"text": "You answer questions about the book."},
        {"text": BOOK},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
    first = sent["messages"][0]["content"]
    assert [next(iter(block)) for block in first] == ["image", "text", "cachePoint"]
    results = sent["messages"][2]["content"]
    assert [next(iter(block)) for block in results] == ["toolResult", "cachePoint", "text"]
    assert len(marks(sent, "cachePoint")) == 4
    assert marks(sent) == []  # no Anthropic-style key reaches Converse
    assert check_converse(sent) is None


def test_bedrock_keeps_the_last_four_cache_points() -> None:
    many = [{"role": "user", "content": f"turn {n}", "cache_control": EPHEMERAL} for n in range(6)]
    sent = body("bedrock", ChatRequest(many, params={"tools": TOOLS}), BEDROCK_CLAUDE)
    assert sent["toolConfig"]["tools"] == [
        {
            "toolSpec": {
                "name": "lookup",
                "inputSchema": {"json": {"type": "object", "properties": {}}},
            }
        }
    ]
    content = sent["messages"][0]["content"]
    texts = [content[at - 1]["text"] for at, block in enumerate(content) if "cachePoint" in block]
    assert texts == ["turn 2", "turn 3", "turn 4", "turn 5"]


def test_bedrock_nova_caches_system_and_messages_not_tools_older_models_nothing() -> None:
    nova = body("bedrock", ChatRequest(MARKED, params={"tools": TOOLS}), "us.amazon.nova-pro-v1:0")
    assert len(marks(nova["system"], "cachePoint")) == 1
    assert len(marks(nova["messages"], "cachePoint")) == 2
    assert marks(nova["toolConfig"], "cachePoint") == []
    for model in ("meta.llama3-70b", "anthropic.claude-3-haiku-20240307-v1:0"):
        other = body("bedrock", ChatRequest(MARKED, params={"tools": TOOLS}), model)
        assert marks(other, "cachePoint") == [] and marks(other) == []
    haiku = body("bedrock", ChatRequest(MARKED), "us.anthropic.claude-3-5-haiku-20241022-v1:0")
    assert len(marks(haiku, "cachePoint")) == 3


def test_bedrock_asks_for_a_one_hour_cache_only_where_the_model_takes_it() -> None:
    for model, point in [
        (BEDROCK_CLAUDE, {"type": "default", "ttl": "1h"}),  # Claude 4.5 on
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", {"type": "default"}),  # 5 minutes
        ("us.amazon.nova-pro-v1:0", {"type": "default"}),
    ]:
        sent = body("bedrock", ChatRequest(MARKED, params={"tools": TOOLS}), model)
        assert sent["system"][-1] == {"cachePoint": point}


# -- Implicit caching: markers dropped, the model never skipped ------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("azure", "gpt-4o-mini"),
        ("groq", "llama-3.3-70b-versatile"),
        ("gemini", "gemini-2.5-flash"),
        ("vertex_gemini", "gemini-2.5-flash"),
        ("ollama-native", "llama3.2"),
        ("anthropic", "claude-haiku-4-5"),
        ("bedrock", BEDROCK_CLAUDE),
    ],
)
def test_markers_never_make_a_model_skipped(provider: str, model: str) -> None:
    adapter = get_adapter(provider)
    entry = get_model_entry(provider, model)
    assert entry is not None
    request = ChatRequest(MARKED, params={"tools": TOOLS})
    assert adapter.unsupported_field(request, entry) is None


@pytest.mark.parametrize("provider", ["openai", "azure", "groq", "mistral"])
def test_the_openai_wire_drops_every_marker_and_keeps_the_rest(provider: str) -> None:
    sent = body(provider, ChatRequest(MARKED, params={"tools": TOOLS}), "gpt-4o-mini")
    assert marks(sent) == []
    assert sent["messages"][0]["content"][1] == {"type": "text", "text": BOOK}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
    assert sent["messages"][4] == MARKED[4]
    assert sent["tools"] == [{k: v for k, v in TOOLS[0].items() if k != "cache_control"}]
    assert check_request("openai", provider, sent) is None


def test_a_server_that_takes_markers_can_be_told_to_keep_them() -> None:
    adapter = OpenAIAdapter("https://openrouter.ai/api/v1", cache_markers=True)
    built = adapter.build_request(
        ChatRequest(MARKED, params={"tools": TOOLS}), model="m", api_key="k", base_url="https://h"
    )
    sent = json.loads(built.body)
    assert sent["messages"] == MARKED and sent["tools"] == TOOLS


@pytest.mark.parametrize("provider", ["gemini", "vertex_gemini", "ollama-native"])
def test_gemini_and_ollama_bodies_carry_no_marker(provider: str) -> None:
    sent = body(provider, ChatRequest(MARKED), "gemini-2.5-flash")
    assert marks(sent) == [] and "cachePoint" not in json.dumps(sent)
    if provider != "ollama-native":
        assert check_request("gemini", "gemini", sent, "gemini-2.5-flash") is None


def test_a_marker_that_is_not_an_object_is_a_config_error_naming_where() -> None:
    bad = [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}]
    with pytest.raises(ConfigError, match=r"messages\[0\]\.content\[0\]\.cache_control"):
        ChatRequest(bad).turns()
    tools = [TOOLS[0] | {"cache_control": ["ephemeral"]}]
    with pytest.raises(ConfigError, match=r"tools\[0\]\.cache_control"):
        get_adapter("anthropic").unsupported_field(
            ChatRequest([{"role": "user", "content": "x"}], params={"tools": tools}),
            get_model_entry("anthropic", "claude-haiku-4-5"),  # type: ignore[arg-type]
        )


def test_an_sdk_request_through_the_gateway_keeps_its_markers_for_claude() -> None:
    decoded = decode_chat({"model": "gpt-4o-mini", "messages": MARKED, "tools": TOOLS})
    sent = body("anthropic", decoded.request, "claude-haiku-4-5")
    direct = body("anthropic", ChatRequest(MARKED, params={"tools": TOOLS}), "claude-haiku-4-5")
    assert sent == direct and len(marks(sent)) == 4


def test_an_anthropic_sdk_request_keeps_its_markers_for_bedrock_and_drops_them_for_openai() -> None:
    messages_body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "cache_control": EPHEMERAL,
        "system": [{"type": "text", "text": BOOK, "cache_control": HOUR}],
        "tools": [
            {"name": "lookup", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look it up."}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"},
                    {"type": "text", "text": "Thanks.", "cache_control": EPHEMERAL},
                ],
            },
        ],
    }
    request = decode_anthropic(messages_body).request
    converse = body("bedrock", request, BEDROCK_CLAUDE)
    assert converse["system"][-1] == {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert converse["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    last = converse["messages"][-1]["content"]
    assert [next(iter(block)) for block in last] == ["toolResult", "text", "cachePoint"]
    assert len(marks(converse, "cachePoint")) == 3  # the user text's and the top-level one meet
    assert check_converse(converse) is None
    chat = body("openai", request, "gpt-4o-mini")
    assert marks(chat) == [] and check_request("openai", "openai", chat) is None


# -- Cached tokens in usage, and their price -------------------------------------------------


def price(provider: str, model: str, usage: TokenUsage) -> float:
    entry = get_model_entry(provider, model)
    assert entry is not None and entry.cost_cache_read is not None
    cost = entry.calculate_cost(usage)
    assert cost is not None
    return cost


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = b""
    for name, data in events:
        if name:
            out += f"event: {name}\n".encode()
        text = data if isinstance(data, str) else json.dumps(data)
        out += f"data: {text}\n\n".encode()
    return out


ASK = [{"role": "system", "content": BOOK}, {"role": "user", "content": "Hi"}]
OPENAI_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 5,
    "total_tokens": 1005,
    "prompt_tokens_details": {"cached_tokens": 800},
}
OPENAI_EXPECTED = TokenUsage(input_tokens=200, output_tokens=5, cache_read_tokens=800)


@respx.mock
async def test_openai_cached_tokens_are_apart_from_input_and_priced_as_cached() -> None:
    reply = {
        "choices": [
            {"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}
        ],
        "usage": OPENAI_USAGE,
    }
    chunks = [
        (None, {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]}),
        (None, {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        (None, {"choices": [], "usage": OPENAI_USAGE}),
        (None, "[DONE]"),
    ]
    route = respx.post("https://api.openai.com/v1/chat/completions")
    route.side_effect = [
        httpx.Response(200, json=reply),
        httpx.Response(200, content=sse(chunks), headers={"content-type": "text/event-stream"}),
    ]
    profile = AuthProfile("o", "openai", "sk-test-000000000000000001")
    async with ResilientClient(["openai/gpt-4o-mini"], [profile]) as client:
        result = await client.complete(ASK, cache_control=EPHEMERAL)
        async with client.stream(ASK) as stream:
            text = "".join([chunk.text async for chunk in stream])
    sent = json.loads(route.calls[0].request.content)
    assert marks(sent) == [] and "cache_control" not in sent  # OpenAI caches implicitly
    expected = price("openai", "gpt-4o-mini", OPENAI_EXPECTED)
    assert result.usage == OPENAI_EXPECTED and result.cost_usd == pytest.approx(expected)
    assert text == "Hello" and stream.usage == OPENAI_EXPECTED
    assert stream.cost_usd == pytest.approx(expected)
    # 200 uncached at $0.15/M, 800 cached at $0.075/M, 5 out at $0.60/M
    assert expected == pytest.approx((200 * 0.15 + 800 * 0.075 + 5 * 0.6) / 1e6)
    assert expected < price("openai", "gpt-4o-mini", TokenUsage(1000, 5))


@respx.mock
async def test_anthropic_cache_reads_and_writes_in_reply_and_stream() -> None:
    usage = {
        "input_tokens": 20,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 100,
        "output_tokens": 5,
    }
    reply = {
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "usage": usage,
    }
    events = [
        (
            "message_start",
            {"type": "message_start", "message": {"usage": usage | {"output_tokens": 1}}},
        ),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    route = respx.post("https://api.anthropic.com/v1/messages")
    route.side_effect = [
        httpx.Response(200, json=reply),
        httpx.Response(200, content=sse(events), headers={"content-type": "text/event-stream"}),
    ]
    profile = AuthProfile("c", "anthropic", "sk-ant-test-0000000000001")
    async with ResilientClient(["anthropic/claude-haiku-4-5"], [profile]) as client:
        result = await client.complete(ASK, cache_control=EPHEMERAL)
        sent = json.loads(route.calls[0].request.content)
        assert sent["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL
        async with client.stream(ASK) as stream:
            text = "".join([chunk.text async for chunk in stream])
    expected_usage = TokenUsage(20, 5, cache_read_tokens=900, cache_write_tokens=100)
    expected = price("anthropic", "claude-haiku-4-5", expected_usage)
    assert result.usage == expected_usage and result.cost_usd == pytest.approx(expected)
    assert text == "Hello" and stream.usage == expected_usage
    assert stream.cost_usd == pytest.approx(expected)
    # $1/M input, $0.10/M cache read, $1.25/M cache write, $5/M output
    assert expected == pytest.approx((20 * 1 + 900 * 0.1 + 100 * 1.25 + 5 * 5) / 1e6)


@respx.mock
async def test_gemini_cached_content_tokens_in_reply_and_stream() -> None:
    meta = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 750,
        "candidatesTokenCount": 5,
        "totalTokenCount": 1005,
    }
    answer = {"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP"}
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
    respx.post(f"{base}:generateContent").mock(
        return_value=httpx.Response(200, json={"candidates": [answer], "usageMetadata": meta})
    )
    events = [
        (None, {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
        (
            None,
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "lo"}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": meta,
            },
        ),
    ]
    respx.post(f"{base}:streamGenerateContent").mock(
        return_value=httpx.Response(
            200, content=sse(events), headers={"content-type": "text/event-stream"}
        )
    )
    profile = AuthProfile("g", "gemini", "AIza-test-key-0000000000000")
    async with ResilientClient(["gemini/gemini-2.5-flash"], [profile]) as client:
        result = await client.complete(ASK)
        async with client.stream(ASK) as stream:
            text = "".join([chunk.text async for chunk in stream])
    expected_usage = TokenUsage(250, 5, cache_read_tokens=750)
    expected = price("gemini", "gemini-2.5-flash", expected_usage)
    assert result.usage == expected_usage and result.cost_usd == pytest.approx(expected)
    assert text == "Hello" and stream.usage == expected_usage
    assert stream.cost_usd == pytest.approx(expected)


def frame(event: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload).encode())


@respx.mock
async def test_bedrock_cache_read_and_write_tokens_in_reply_and_stream() -> None:
    usage = {
        "inputTokens": 30,
        "outputTokens": 5,
        "totalTokens": 1035,
        "cacheReadInputTokens": 800,
        "cacheWriteInputTokens": 200,
    }
    reply = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
        "stopReason": "end_turn",
        "usage": usage,
    }
    frames = b"".join(
        [
            frame("messageStart", {"role": "assistant"}),
            frame("contentBlockDelta", {"delta": {"text": "Hello"}, "contentBlockIndex": 0}),
            frame("contentBlockStop", {"contentBlockIndex": 0}),
            frame("messageStop", {"stopReason": "end_turn"}),
            frame("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}),
        ]
    )
    base = (
        f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{quote(BEDROCK_CLAUDE, safe=':')}"
    )
    sent = respx.post(f"{base}/converse").mock(return_value=httpx.Response(200, json=reply))
    respx.post(f"{base}/converse-stream").mock(
        return_value=httpx.Response(
            200, content=frames, headers={"content-type": "application/vnd.amazon.eventstream"}
        )
    )
    profile = AuthProfile("b", "bedrock", "bedrock-api-key-000000000001", region="us-east-1")
    marked = [{"role": "system", "content": BOOK, "cache_control": EPHEMERAL}, ASK[1]]
    async with ResilientClient([f"bedrock/{BEDROCK_CLAUDE}"], [profile]) as client:
        result = await client.complete(marked)
        async with client.stream(marked) as stream:
            text = "".join([chunk.text async for chunk in stream])
    assert json.loads(sent.calls.last.request.content)["system"] == [
        {"text": BOOK},
        {"cachePoint": {"type": "default"}},
    ]
    expected_usage = TokenUsage(30, 5, cache_read_tokens=800, cache_write_tokens=200)
    expected = price("bedrock", BEDROCK_CLAUDE, expected_usage)
    assert result.usage == expected_usage and result.cost_usd == pytest.approx(expected)
    assert text == "Hello" and stream.usage == expected_usage
    assert stream.cost_usd == pytest.approx(expected)


def test_vertex_claude_reads_anthropics_cache_usage() -> None:
    reply = {
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 50},
    }
    result = get_adapter("vertex_anthropic").parse_response(json.dumps(reply).encode())
    assert result.usage == TokenUsage(3, 1, cache_read_tokens=50)


def test_responses_and_deepseek_usage_shapes_are_read_the_same_way() -> None:
    responses = {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 600},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 1009,
    }
    assert openai_usage(responses) == TokenUsage(400, 9, cache_read_tokens=600, reasoning_tokens=4)
    deepseek = {
        "prompt_tokens": 100,
        "completion_tokens": 2,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    assert openai_usage(deepseek) == TokenUsage(36, 2, cache_read_tokens=64)
    written = OPENAI_USAGE | {
        "prompt_tokens_details": {"cached_tokens": 800, "cache_write_tokens": 150}
    }
    assert openai_usage(written) == TokenUsage(50, 5, cache_read_tokens=800, cache_write_tokens=150)


def test_a_missing_cache_price_falls_back_to_the_input_price_never_to_unknown() -> None:
    entry = get_model_entry("openai", "gpt-4o-mini")
    assert entry is not None and entry.cost_cache_write is None
    usage = TokenUsage(100, 0, cache_read_tokens=50, cache_write_tokens=10)
    assert entry.calculate_cost(usage) == pytest.approx((100 * 0.15 + 50 * 0.075 + 10 * 0.15) / 1e6)
    unpriced = get_model_entry("vllm", "my/finetune")
    assert unpriced is not None
    assert unpriced.calculate_cost(TokenUsage(0, 0, cache_read_tokens=5)) is None


# -- The request's own cache_control (Anthropic's top-level form) ----------------------------

CONVERSATION = [
    {"role": "system", "content": BOOK},
    {"role": "user", "content": "Who wrote it?"},
    {"role": "assistant", "content": "Nobody knows."},
    {"role": "user", "content": "Why not?"},
]


def test_the_requests_own_marker_caches_the_whole_conversation_on_claude() -> None:
    request = ChatRequest(CONVERSATION, params={"cache_control": EPHEMERAL})
    sent = body("anthropic", request, "claude-haiku-4-5")
    assert "cache_control" not in sent  # translated, not sent as a top-level field
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "Why not?", "cache_control": EPHEMERAL}
    ]
    assert len(marks(sent)) == 1 and check_request("anthropic", "anthropic", sent) is None
    converse = body("bedrock", request, BEDROCK_CLAUDE)
    assert converse["messages"][-1]["content"] == [
        {"text": "Why not?"},
        {"cachePoint": {"type": "default"}},
    ]
    assert "cache_control" not in converse and check_converse(converse) is None


def test_the_requests_own_marker_is_the_last_breakpoint_and_always_kept() -> None:
    request = ChatRequest(MARKED, params={"tools": TOOLS, "cache_control": HOUR})
    sent = body("anthropic", request, "claude-haiku-4-5")
    assert sent["messages"][-1]["content"][-1] == {
        "type": "text",
        "text": "And the title?",
        "cache_control": HOUR,
    }
    assert "cache_control" not in sent["tools"][0] and len(marks(sent)) == 4
    # a block marked twice (its part, then the request) keeps its first marker, on both wires
    twice = ChatRequest(MARKED[:2], params={"cache_control": HOUR})
    assert body("anthropic", twice, "x")["messages"][0]["content"][-1]["cache_control"] == EPHEMERAL
    converse = body("bedrock", twice, BEDROCK_CLAUDE)["messages"][0]["content"]
    assert converse[-1] == {"cachePoint": {"type": "default"}} and "cachePoint" not in converse[-2]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("gemini", "gemini-2.5-flash"),
        ("ollama-native", "llama3.2"),
        ("anthropic", "claude-haiku-4-5"),
        ("bedrock", BEDROCK_CLAUDE),
    ],
)
def test_the_requests_own_marker_is_taken_by_every_wire_and_sent_only_to_claude(
    provider: str, model: str
) -> None:
    request = ChatRequest(CONVERSATION, params={"cache_control": EPHEMERAL})
    entry = get_model_entry(provider, model)
    assert entry is not None
    assert get_adapter(provider).unsupported_field(request, entry) is None
    sent = body(provider, request, model)
    assert "cache_control" not in sent
    if provider in ("openai", "gemini", "ollama-native"):
        assert marks(sent) == [] and "cachePoint" not in json.dumps(sent)


def test_a_top_level_marker_that_is_not_an_object_is_a_config_error() -> None:
    request = ChatRequest(CONVERSATION, params={"cache_control": True})
    with pytest.raises(ConfigError, match="cache_control must be"):
        get_adapter("gemini").unsupported_field(
            request,
            get_model_entry("gemini", "gemini-2.5-flash"),  # type: ignore[arg-type]
        )


@respx.mock
async def test_telemetry_counts_cached_input_inside_input_tokens_and_apart() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from failover.telemetry import Telemetry

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    usage = {
        "input_tokens": 20,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 100,
        "output_tokens": 5,
    }
    reply = {"content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "usage": usage}
    respx.post("https://api.anthropic.com/v1/messages").mock(
        return_value=httpx.Response(200, json=reply)
    )
    profile = AuthProfile("c", "anthropic", "sk-ant-test-0000000000001")
    async with ResilientClient(
        ["anthropic/claude-haiku-4-5"], [profile], telemetry=telemetry
    ) as client:
        await client.complete(ASK)
    (span,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert span.attributes is not None
    assert span.attributes["gen_ai.usage.input_tokens"] == 1020  # the whole prompt
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 900
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 100
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.token.usage"
        for point in metric.data.data_points
    ]
    inputs = [p for p in points if p.attributes["gen_ai.token.type"] == "input"]
    assert [p.sum for p in inputs] == [1020]


async def test_an_openai_sdk_request_passed_through_to_openai_loses_its_cache_markers() -> None:
    import json as _json

    import httpx
    import openai

    from failover import AuthProfile, FailoverManager, ResilientTransport

    bodies: list[dict[str, object]] = []

    def provider(request: httpx.Request) -> httpx.Response:
        bodies.append(_json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        )

    manager = FailoverManager(profiles=[AuthProfile("a", "openai", "sk-proj-aaaaaaaaaaaa1111")])
    transport = ResilientTransport(manager, provider="openai", inner=httpx.MockTransport(provider))
    sdk = openai.AsyncOpenAI(
        api_key="sdk-key", max_retries=0, http_client=httpx.AsyncClient(transport=transport)
    )
    marked = {
        "type": "text",
        "text": "a long system prompt",
        "cache_control": {"type": "ephemeral"},
    }
    await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": [marked]}, {"role": "user", "content": "hi"}],
    )
    await sdk.close()
    assert "cache_control" not in _json.dumps(bodies[0])  # OpenAI caches by itself
    assert bodies[0]["messages"][0]["content"][0]["text"] == "a long system prompt"
