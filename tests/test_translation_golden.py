"""Golden wire tests: one OpenAI-shaped request, what each provider receives, and each
provider's documented replies read back into one shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from failover import ConfigError, ModelEntry, TokenUsage
from failover.providers import StreamAssembler, get_adapter
from failover.providers.base import ChatRequest, ChatResult

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state"},
        "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": WEATHER,
        },
    }
]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a weather bot."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What's the weather like in San Francisco?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"location": "San Francisco, CA"}',
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc123", "content": "15 degrees"},
    {"role": "user", "content": "And in celsius?"},
]


def built(provider: str, model: str, request: ChatRequest) -> tuple[str, dict[str, Any]]:
    http = get_adapter(provider).build_request(
        request, model=model, api_key="k", base_url="https://h"
    )
    return http.url, json.loads(http.body)


def entry(provider: str, model: str) -> ModelEntry:
    return ModelEntry(id=model, name=model, provider=provider, api=get_adapter(provider).api)


# -- requests -------------------------------------------------------------------------------


def test_anthropic_receives_blocks_tool_use_tool_result_and_its_own_parameters() -> None:
    params = {
        "tools": TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "top_p": 0.9,
        "user": "user-1",
        "metadata": {"app": "weather"},
    }
    url, body = built(
        "anthropic", "claude-sonnet-4-5", ChatRequest(CONVERSATION, 1024, params=params)
    )
    assert url == "https://h/v1/messages"
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are a weather bot."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's the weather like in San Francisco?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_abc123",
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_abc123", "content": "15 degrees"},
                    {"type": "text", "text": "And in celsius?"},
                ],
            },
        ],
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-1"},
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": WEATHER,
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


def test_anthropic_json_modes_thinking_url_images_and_foreign_tool_ids() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    json_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    _, body = built(
        "anthropic",
        "claude-sonnet-4-5",
        ChatRequest(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
                    ],
                }
            ],
            1000,
            params={"response_format": json_schema, "reasoning_effort": "low"},
        ),
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 1000 + 2048  # the answer keeps its own budget
    assert body["messages"][0]["content"][0]["source"] == {
        "type": "url",
        "url": "https://x.test/a.jpg",
    }
    _, forced = built(
        "anthropic",
        "claude-sonnet-4-5",
        ChatRequest(
            [{"role": "user", "content": "hi"}], params={"response_format": {"type": "json_object"}}
        ),
    )
    assert forced["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert forced["tools"][0]["input_schema"] == {"type": "object"}
    assert forced["max_tokens"] == 4096
    gemini_history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "fc.7/x", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        },
        {"role": "tool", "tool_call_id": "fc.7/x", "content": "ok"},
    ]
    _, body = built("anthropic", "claude-haiku-4-5", ChatRequest(gemini_history))
    assert body["messages"][1]["content"][0]["id"] == "fc_7_x"
    assert body["messages"][2]["content"][0]["tool_use_id"] == "fc_7_x"


def test_gemini_receives_parts_function_calls_responses_and_generation_config() -> None:
    params = {"tools": TOOLS, "tool_choice": "required", "stop": ["END"], "top_p": 0.9, "seed": 3}
    url, body = built("gemini", "gemini-2.5-flash", ChatRequest(CONVERSATION, 1024, params=params))
    assert url == "https://h/v1beta/models/gemini-2.5-flash:generateContent"
    assert body == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What's the weather like in San Francisco?"},
                    {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"location": "San Francisco, CA"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"output": "15 degrees"},
                        }
                    },
                    {"text": "And in celsius?"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "You are a weather bot."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Get the current weather in a given location",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "location": {"type": "string", "description": "The city and state"},
                                "unit": {
                                    "type": "string",
                                    "nullable": True,
                                    "enum": ["celsius", "fahrenheit"],
                                },
                            },
                            "required": ["location"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {
            "maxOutputTokens": 1024,
            "topP": 0.9,
            "seed": 3,
            "stopSequences": ["END"],
        },
    }


def test_gemini_json_schema_thinking_signatures_and_a_named_tool_choice() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "cat"},
            "next": {"$ref": "#"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "additionalProperties": False,
    }
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": "c2ln"}},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": '{"temp": 15}'},
        {"role": "tool", "tool_call_id": "b", "content": '{"temp": 16}'},
    ]
    params = {
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        "reasoning_effort": "high",
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    _, body = built("gemini", "gemini-2.5-pro", ChatRequest(history, params=params))
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {
            "kind": {"enum": ["cat"], "type": "string"},
            "next": {"type": "object"},
            "n": {"nullable": True, "type": "integer"},
        },
    }
    assert config["thinkingConfig"] == {"thinkingBudget": 24576}
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    calls = body["contents"][1]["parts"]
    assert calls[0]["thoughtSignature"] == "c2ln" and "thoughtSignature" not in calls[1]
    responses = body["contents"][2]["parts"]
    assert [r["functionResponse"]["response"] for r in responses] == [
        {"output": {"temp": 15}},
        {"output": {"temp": 16}},
    ]
    _, three = built("gemini", "gemini-3-pro-preview", ChatRequest(history, params=params))
    assert three["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "high"}
    second = three["contents"][1]["parts"]
    assert second[0]["thoughtSignature"] == "c2ln"


def test_ollama_receives_images_tool_calls_as_objects_format_and_options() -> None:
    params = {"tools": TOOLS, "tool_choice": "auto", "stop": ["END"], "top_p": 0.9, "seed": 3}
    request = ChatRequest(CONVERSATION, 1024, 0.2, params=params)
    url, body = built("ollama-native", "llama3.2", request)
    assert url == "https://h/api/chat"
    assert body == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {
                "role": "user",
                "content": "What's the weather like in San Francisco?",
                "images": [PIXEL],
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "function": {
                            "name": "get_weather",
                            "arguments": {"location": "San Francisco, CA"},
                        }
                    }
                ],
            },
            {"role": "tool", "content": "15 degrees", "tool_name": "get_weather"},
            {"role": "user", "content": "And in celsius?"},
        ],
        "stream": False,
        "tools": TOOLS,
        "options": {
            "num_predict": 1024,
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 3,
            "stop": ["END"],
        },
    }
    schema = {"type": "object"}
    _, shaped = built(
        "ollama-native",
        "qwen3",
        ChatRequest(
            [{"role": "user", "content": "hi"}],
            params={
                "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
                "reasoning_effort": "medium",
                "tool_choice": "none",
                "tools": TOOLS,
            },
        ),
    )
    assert shaped["format"] == schema and shaped["think"] is True and "tools" not in shaped


def test_openai_compatible_servers_get_what_each_accepts() -> None:
    request = ChatRequest(
        CONVERSATION,
        100,
        params={"tools": TOOLS, "seed": 1, "user": "u", "stop": ["END"]},
        stream=True,
    )
    _, openai = built("openai", "gpt-4o", request)
    assert openai["messages"] == CONVERSATION and openai["tools"] == TOOLS
    assert openai["max_completion_tokens"] == 100 and openai["stream_options"] == {
        "include_usage": True
    }
    assert (openai["seed"], openai["user"], openai["stop"]) == (1, "u", ["END"])
    _, mistral = built("mistral", "mistral-large-latest", request)
    assert "stream_options" not in mistral and "user" not in mistral
    assert mistral["random_seed"] == 1 and "seed" not in mistral and mistral["max_tokens"] == 100


def test_azure_names_the_deployment_in_the_url_and_sends_api_key() -> None:
    adapter = get_adapter("azure")
    request = ChatRequest([{"role": "user", "content": "hi"}], 10)
    http = adapter.build_request(
        request, model="gpt-4o-prod", api_key="az-key", base_url="https://res.openai.azure.com"
    )
    assert http.url == (
        "https://res.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert http.headers["api-key"] == "az-key" and "authorization" not in http.headers
    assert "model" not in json.loads(http.body)
    own = adapter.build_request(
        request,
        model="gpt-4o",
        api_key="k",
        base_url="https://west.openai.azure.com/openai/deployments/gpt4o-west",
    )
    assert own.url.startswith("https://west.openai.azure.com/openai/deployments/gpt4o-west/chat")
    with pytest.raises(ConfigError, match="base_url"):
        adapter.build_request(request, model="m", api_key="k", base_url="")


# -- what a model cannot take -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "params", "content", "field"),
    [
        ("anthropic", "claude-haiku-4-5", {"seed": 1}, "hi", "seed"),
        ("anthropic", "claude-haiku-4-5", {"logit_bias": {"1": 2}}, "hi", "logit_bias"),
        ("anthropic", "claude-haiku-4-5", {"n": 2}, "hi", "n"),
        (
            "anthropic",
            "claude-sonnet-4-5",
            {"reasoning_effort": "low", "top_p": 0.5},
            "hi",
            "top_p",
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            {"reasoning_effort": "low", "tool_choice": "required", "tools": TOOLS},
            "hi",
            "tool_choice",
        ),
        (
            "anthropic",
            "claude-haiku-4-5",
            {"response_format": {"type": "json_object"}, "tools": TOOLS},
            "hi",
            "response_format",
        ),
        ("gemini", "gemini-2.0-flash", {"reasoning_effort": "high"}, "hi", "reasoning_effort"),
        ("gemini", "gemini-2.5-pro", {"reasoning_effort": "none"}, "hi", "reasoning_effort"),
        ("gemini", "gemini-2.5-flash", {"logprobs": True}, "hi", "logprobs"),
        (
            "ollama-native",
            "llama3.2",
            {"tool_choice": "required", "tools": TOOLS},
            "hi",
            "tool_choice",
        ),
        (
            "ollama-native",
            "llava",
            {},
            [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
            "image_url",
        ),
        ("mistral", "mistral-large-latest", {"reasoning_effort": "high"}, "hi", "reasoning_effort"),
        ("openai", "gpt-4o", {"whatever_openai_adds_next": 1}, "hi", None),
        ("openai", "gpt-4o", {"top_k": 5}, "hi", "top_k"),
        ("azure", "gpt-4o", {"safetySettings": []}, "hi", "safetySettings"),
        ("vllm", "llama", {"top_k": 5}, "hi", None),
    ],
)
def test_unsupported_field_names_what_the_wire_cannot_express(
    provider: str, model: str, params: dict[str, Any], content: Any, field: str | None
) -> None:
    request = ChatRequest([{"role": "user", "content": content}], params=params)
    adapter = get_adapter(provider)
    assert adapter.unsupported_field(request, entry(provider, model)) == field


def test_the_catalog_decides_images_tools_and_reasoning() -> None:
    image = [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    request = ChatRequest([{"role": "user", "content": image}], params={"tools": TOOLS})
    text_only = ModelEntry(id="m", name="m", provider="openai", api="openai", input=("text",))
    no_tools = ModelEntry(id="m", name="m", provider="openai", api="openai", tools=False)
    adapter = get_adapter("openai")
    assert adapter.unsupported_field(request, text_only) == "image_url"
    assert adapter.unsupported_field(request, no_tools) == "tools"
    thinking = ChatRequest([{"role": "user", "content": "hi"}], params={"reasoning_effort": "low"})
    plain = ModelEntry(id="m", name="m", provider="openai", api="openai", reasoning=False)
    assert adapter.unsupported_field(thinking, plain) == "reasoning_effort"


@pytest.mark.parametrize(
    ("messages", "where"),
    [
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], "answers no earlier"),
        ([{"role": "user", "content": 5}], r"messages\[0\].content must be"),
        ([{"role": "user", "content": [{"type": "video"}]}], "part type 'video'"),
        ([{"role": "robot", "content": "x"}], "role must be"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}],
            "data URL",
        ),
        ([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}], "needs its 'id'"),
    ],
)
def test_a_request_not_in_openais_shape_is_a_clear_error(messages: Any, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        get_adapter("anthropic").unsupported_field(
            ChatRequest(messages), entry("anthropic", "claude-haiku-4-5")
        )


# -- replies --------------------------------------------------------------------------------


def parse(provider: str, reply: dict[str, Any]) -> ChatResult:
    return get_adapter(provider).parse_response(json.dumps(reply).encode())


def test_openai_tool_call_reply_with_cached_and_reasoning_tokens() -> None:
    result = parse(
        "openai",
        {
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_abc123",
                                "type": "function",
                                "function": {
                                    "name": "get_current_weather",
                                    "arguments": '{\n"location": "Boston, MA"\n}',
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": 82,
                "completion_tokens": 17,
                "total_tokens": 99,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 10},
            },
        },
    )
    assert (result.finish_reason, result.raw_finish_reason) == ("tool_calls", "tool_calls")
    assert result.tool_calls[0].args == {"location": "Boston, MA"}
    assert result.usage == TokenUsage(18, 17, 64, 0, 10)
    assert result.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {
                    "name": "get_current_weather",
                    "arguments": '{\n"location": "Boston, MA"\n}',
                },
            }
        ],
    }


def test_anthropic_tool_use_reply_with_cache_usage() -> None:
    result = parse(
        "anthropic",
        {
            "id": "msg_01Aq9w938a90dw8q",
            "model": "claude-sonnet-4-5",
            "stop_reason": "tool_use",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "s"},
                {"type": "text", "text": "I'll check the current weather in San Francisco."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"location": "San Francisco, CA", "unit": "celsius"},
                },
            ],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 40,
                "cache_read_input_tokens": 200,
                "cache_creation_input_tokens": 30,
            },
        },
    )
    assert result.text == "I'll check the current weather in San Francisco."
    assert (result.finish_reason, result.raw_finish_reason) == ("tool_calls", "tool_use")
    call = result.tool_calls[0]
    assert (call.id, call.name) == ("toolu_01A09q90qw90lq917835lq9", "get_weather")
    assert call.args == {"location": "San Francisco, CA", "unit": "celsius"}
    assert result.usage == TokenUsage(10, 40, 200, 30)


def test_anthropic_forced_json_tool_comes_back_as_text() -> None:
    result = parse(
        "anthropic",
        {
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "json_response", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 2},
        },
    )
    assert json.loads(result.text) == {"a": 1} and result.tool_calls == ()
    assert result.finish_reason == "stop"


def test_gemini_function_call_reply_with_thinking_tokens() -> None:
    result = parse(
        "gemini",
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {
                                "functionCall": {
                                    "name": "set_light_values",
                                    "args": {"brightness": 25, "color_temp": "warm"},
                                },
                                "thoughtSignature": "c2lnbmF0dXJl",
                            },
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 100,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 50,
                "cachedContentTokenCount": 40,
                "totalTokenCount": 170,
            },
        },
    )
    assert result.text == "" and (result.finish_reason, result.raw_finish_reason) == (
        "tool_calls",
        "STOP",
    )
    call = result.tool_calls[0]
    assert call.name == "set_light_values" and call.args == {"brightness": 25, "color_temp": "warm"}
    assert call.id.startswith("call_") and call.thought_signature == "c2lnbmF0dXJl"
    assert result.usage == TokenUsage(60, 70, 40, 0, 50)
    assert result.message["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": "c2lnbmF0dXJl"}
    }


def test_ollama_tool_call_reply() -> None:
    result = parse(
        "ollama-native",
        {
            "model": "llama3.2",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "function": {
                            "name": "get_current_weather",
                            "arguments": {"format": "celsius", "location": "Paris, FR"},
                        }
                    }
                ],
            },
            "done_reason": "stop",
            "done": True,
            "prompt_eval_count": 26,
            "eval_count": 25,
        },
    )
    assert result.finish_reason == "tool_calls" and result.raw_finish_reason == "stop"
    assert result.tool_calls[0].args == {"format": "celsius", "location": "Paris, FR"}
    assert result.usage == TokenUsage(26, 25)


@pytest.mark.parametrize(
    ("provider", "reply", "finish"),
    [
        (
            "openai",
            {"choices": [{"message": {"content": "x"}, "finish_reason": "length"}]},
            "length",
        ),
        (
            "anthropic",
            {"content": [{"type": "text", "text": "x"}], "stop_reason": "max_tokens"},
            "length",
        ),
        (
            "anthropic",
            {"content": [{"type": "text", "text": "x"}], "stop_reason": "stop_sequence"},
            "stop",
        ),
        (
            "gemini",
            {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]},
            "length",
        ),
        (
            "ollama-native",
            {"message": {"content": "x"}, "done": True, "done_reason": "length"},
            "length",
        ),
    ],
)
def test_finish_reasons_are_normalised(provider: str, reply: dict[str, Any], finish: str) -> None:
    assert parse(provider, reply).finish_reason == finish


# -- streams --------------------------------------------------------------------------------


def assemble(provider: str, events: list[tuple[str, str]]) -> StreamAssembler:
    parser = get_adapter(provider).stream_parser()
    assembler = StreamAssembler()
    for name, data in events:
        if (chunk := parser.feed(name, data)) is not None:
            assembler.add(chunk)
    assert parser.complete
    return assembler


def test_documented_streamed_tool_calls_assemble_the_same() -> None:
    openai = assemble(
        "openai",
        [
            (
                "",
                json.dumps(
                    {
                        "choices": [
                            {
                                "delta": {
                                    "role": "assistant",
                                    "content": None,
                                    "tool_calls": [
                                        {
                                            "index": 0,
                                            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                                            "type": "function",
                                            "function": {"name": "get_weather", "arguments": ""},
                                        }
                                    ],
                                },
                                "finish_reason": None,
                            }
                        ]
                    }
                ),
            ),
            (
                "",
                json.dumps(
                    {
                        "choices": [
                            {
                                "delta": {
                                    "tool_calls": [
                                        {"index": 0, "function": {"arguments": '{"location":'}}
                                    ]
                                },
                                "finish_reason": None,
                            }
                        ]
                    }
                ),
            ),
            (
                "",
                json.dumps(
                    {
                        "choices": [
                            {
                                "delta": {
                                    "tool_calls": [
                                        {"index": 0, "function": {"arguments": ' "Paris, France"}'}}
                                    ]
                                },
                                "finish_reason": None,
                            }
                        ]
                    }
                ),
            ),
            ("", json.dumps({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})),
            ("", "[DONE]"),
        ],
    )
    anthropic = assemble(
        "anthropic",
        [
            (
                "message_start",
                json.dumps(
                    {
                        "type": "message_start",
                        "message": {"usage": {"input_tokens": 472, "output_tokens": 2}},
                    }
                ),
            ),
            (
                "content_block_start",
                json.dumps(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
            ),
            (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "Okay"},
                    }
                ),
            ),
            ("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})),
            (
                "content_block_start",
                json.dumps(
                    {
                        "type": "content_block_start",
                        "index": 1,
                        "content_block": {
                            "type": "tool_use",
                            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                            "name": "get_weather",
                            "input": {},
                        },
                    }
                ),
            ),
            (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    }
                ),
            ),
            (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": '{"location":'},
                    }
                ),
            ),
            (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": ' "Paris, France"}'},
                    }
                ),
            ),
            ("content_block_stop", json.dumps({"type": "content_block_stop", "index": 1})),
            (
                "message_delta",
                json.dumps(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "tool_use"},
                        "usage": {"output_tokens": 89},
                    }
                ),
            ),
            ("message_stop", json.dumps({"type": "message_stop"})),
        ],
    )
    gemini = assemble(
        "gemini",
        [
            (
                "",
                json.dumps(
                    {
                        "candidates": [
                            {
                                "content": {
                                    "parts": [
                                        {
                                            "functionCall": {
                                                "name": "get_weather",
                                                "args": {"location": "Paris, France"},
                                            }
                                        }
                                    ]
                                },
                                "finishReason": "STOP",
                            }
                        ],
                        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3},
                    }
                ),
            ),
        ],
    )
    ollama = assemble(
        "ollama-native",
        [
            (
                "",
                json.dumps(
                    {
                        "message": {
                            "role": "assistant",
                            "content": "",
                            "tool_calls": [
                                {
                                    "function": {
                                        "name": "get_weather",
                                        "arguments": {"location": "Paris, France"},
                                    }
                                }
                            ],
                        },
                        "done": False,
                    }
                ),
            ),
            (
                "",
                json.dumps(
                    {
                        "message": {"role": "assistant", "content": ""},
                        "done": True,
                        "done_reason": "stop",
                        "prompt_eval_count": 5,
                        "eval_count": 3,
                    }
                ),
            ),
        ],
    )
    for assembled in (openai, anthropic, gemini, ollama):
        assert [(c.name, c.args) for c in assembled.tool_calls] == [
            ("get_weather", {"location": "Paris, France"})
        ]
        assert assembled.finish_reason == "tool_calls"
    assert anthropic.text == "Okay" and anthropic.usage == TokenUsage(472, 89)
    assert anthropic.tool_calls[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"


def test_a_streamed_refusal_is_a_content_filter_outcome() -> None:
    from failover import ContentFilteredError

    parser = get_adapter("openai").stream_parser()
    with pytest.raises(ContentFilteredError):
        parser.feed(
            "", json.dumps({"choices": [{"delta": {"refusal": "I can't help with that."}}]})
        )
    with pytest.raises(ContentFilteredError):
        parse(
            "openai",
            {
                "choices": [
                    {"message": {"content": None, "refusal": "No."}, "finish_reason": "stop"}
                ]
            },
        )


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "ollama-native"])
@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"reasoning_effort": "max"}, "reasoning_effort must be one of"),
        ({"tools": [{"type": "function", "function": {}}]}, r"tools\[0\]"),
        ({"tool_choice": "sometimes", "tools": TOOLS}, "tool_choice must be"),
        ({"response_format": {"type": "yaml"}}, "response_format type"),
        ({"stop": 5}, "stop must be"),
    ],
)
def test_a_parameter_not_in_openais_shape_is_a_clear_error(
    provider: str, params: dict[str, Any], where: str
) -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], params=params)
    adapter = get_adapter(provider)
    with pytest.raises(ConfigError, match=where):
        adapter.unsupported_field(request, entry(provider, "m"))
