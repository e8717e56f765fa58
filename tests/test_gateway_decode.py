"""SDK requests read into the common request: what each SDK really sends decodes to the
expected ChatRequest, every adapter builds from it a request the simulator (which rejects
what the real APIs reject) accepts, and what cannot cross providers is refused by name."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from typing import Any

import httpx
import pytest
from google.genai import types as gt

from failover import providers
from failover.catalog import ModelEntry
from failover.errors import InvalidRequestError
from failover.gateway import CannotTranslateError, Decoded, decode_request, wire_of
from failover.testing import Simulator
from failover.testing.rejects import check_request
from tests.test_gateway_support import Served

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n-one-pixel").decode()
DATA_URL = f"data:image/png;base64,{PIXEL}"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": SCHEMA,
    },
}
TARGETS = {
    "openai": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-haiku-4-5"),
    "gemini": ("gemini", "gemini-2.5-flash"),
    "ollama-native": ("ollama", "llama3.2"),
}


async def sdk_request(wire: str, served: Served | None = None) -> Decoded:
    """What the wire's real SDK sends for a tool-calling conversation, decoded."""
    served = served or Served()
    if wire == "openai":
        await served.openai().chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "developer", "content": "Use the tools."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather in Paris?"},
                        {"type": "image_url", "image_url": {"url": DATA_URL}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
            ],
            tools=[TOOL],  # type: ignore[list-item]
            tool_choice="auto",
            max_completion_tokens=300,
            stop=["END"],
            stream=True,
            stream_options={"include_usage": True},
        )
    elif wire == "responses":
        await served.openai().responses.create(
            model="gpt-4o",
            instructions="Use the tools.",
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Weather in Paris?"},
                        {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city": "Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 18}'},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "It is 18C.", "annotations": []}],
                },
                {"role": "user", "content": "And tomorrow?"},
            ],
            tools=[
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": SCHEMA,
                    "strict": True,
                }
            ],
            tool_choice={"type": "function", "name": "get_weather"},
            max_output_tokens=300,
            store=True,
            text={
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": SCHEMA,
                    "strict": True,
                }
            },
        )
    elif wire == "anthropic":
        await served.anthropic().messages.create(
            model="claude-haiku-4-5",
            max_tokens=300,
            system=[
                {"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}}
            ],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather in Paris?"},
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
                            "type": "thinking",
                            "thinking": "The user wants weather.",
                            "signature": "c2ln",
                        },
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_01",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "is_error": True,
                            "content": [{"type": "text", "text": "timeout"}],
                        },
                        {"type": "text", "text": "Try again?"},
                    ],
                },
            ],
            tools=[
                {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "input_schema": SCHEMA,
                }
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            metadata={"user_id": "user-1"},
            stream=True,
        )
    else:
        await served.genai().aio.models.generate_content(
            model="gemini-2.5-flash",
            contents=[
                gt.Content(
                    role="user",
                    parts=[
                        gt.Part(text="Weather in Paris?"),
                        gt.Part.from_bytes(
                            data=b"\x89PNG\r\n\x1a\n-one-pixel", mime_type="image/png"
                        ),
                    ],
                ),
                gt.Content(
                    role="model",
                    parts=[
                        gt.Part(
                            function_call=gt.FunctionCall(
                                name="get_weather", args={"city": "Paris"}
                            ),
                            thought_signature=b"sig",
                        ),
                    ],
                ),
                gt.Content(
                    role="user",
                    parts=[
                        gt.Part.from_function_response(
                            name="get_weather", response={"output": {"temp": 18}}
                        ),
                    ],
                ),
            ],
            config=gt.GenerateContentConfig(
                system_instruction="Use the tools.",
                tools=[
                    gt.Tool(
                        function_declarations=[
                            gt.FunctionDeclaration(
                                name="get_weather",
                                description="The weather in a city.",
                                parameters=gt.Schema(
                                    type=gt.Type.OBJECT,
                                    properties={"city": gt.Schema(type=gt.Type.STRING)},
                                    required=["city"],
                                ),
                            )
                        ]
                    )
                ],
                tool_config=gt.ToolConfig(
                    function_calling_config=gt.FunctionCallingConfig(
                        mode=gt.FunctionCallingConfigMode.ANY,
                        allowed_function_names=["get_weather"],
                    )
                ),
                max_output_tokens=300,
                temperature=0.3,
                stop_sequences=["END"],
                automatic_function_calling=gt.AutomaticFunctionCallingConfig(disable=True),
            ),
        )
    return served.requests[0]


CALLED = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
IMAGE = {"type": "image_url", "image_url": {"url": DATA_URL}}
ASK = [{"type": "text", "text": "Weather in Paris?"}, IMAGE]
EXPECTED: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = {
    "openai": (
        "gpt-4o",
        [
            {"role": "developer", "content": "Use the tools."},
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": None, "tool_calls": [CALLED]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
        ],
        {"tools": [TOOL], "tool_choice": "auto", "stop": ["END"]},
    ),
    "responses": (
        "gpt-4o",
        [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": None, "tool_calls": [CALLED]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
            {"role": "assistant", "content": "It is 18C."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        {
            "tools": [{"type": "function", "function": {**TOOL["function"], "strict": True}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
            },
        },
    ),
    "anthropic": (
        "claude-haiku-4-5",
        [
            {
                "role": "system",
                "content": [
                    # the prompt-cache marker stays, for Claude's wires to send on
                    {
                        "type": "text",
                        "text": "Use the tools.",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
            {"role": "user", "content": ASK},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "Error: timeout"},
            {"role": "user", "content": [{"type": "text", "text": "Try again?"}]},
        ],
        {
            "tools": [TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "stop": ["END"],
            "user": "user-1",
        },
    ),
    "gemini": (
        "gemini-2.5-flash",
        [
            {"role": "system", "content": [{"type": "text", "text": "Use the tools."}]},
            {"role": "user", "content": ASK},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1_0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        "extra_content": {
                            "google": {"thought_signature": base64.b64encode(b"sig").decode()}
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1_0", "content": '{"temp": 18}'},
        ],
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "The weather in a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "stop": ["END"],
        },
    ),
}


@pytest.mark.parametrize("wire", list(EXPECTED))
async def test_what_each_sdk_sends_decodes_to_the_common_request(wire: str) -> None:
    decoded = await sdk_request(wire)
    model, messages, params = EXPECTED[wire]
    assert decoded.wire == wire and decoded.model == model
    assert list(decoded.request.messages) == messages
    assert dict(decoded.request.params) == params
    assert decoded.request.max_tokens == 300
    assert decoded.stream == (wire in ("openai", "anthropic"))
    if wire == "openai":
        assert decoded.echo == {"include_usage": True}
    if wire == "gemini":
        assert decoded.request.temperature == 0.3


@pytest.mark.parametrize("wire", list(EXPECTED))
async def test_decoding_a_parsed_body_leaves_it_as_it_was(wire: str) -> None:
    """The SDK transport hands the decoders the body it parsed, and reads it again after
    them (rewritten for the SDK's own provider, admission, a later attempt)."""
    served = Served()
    await sdk_request(wire, served)
    body = served.bodies[0]
    kept = copy.deepcopy(body)
    decode_request(served.urls[0], body)
    assert body == kept


def _entry(provider: str) -> ModelEntry:
    api, model = TARGETS[provider]
    return ModelEntry(id=model, name=model, provider=provider, api=api)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("wire", list(EXPECTED))
async def test_every_adapter_builds_a_request_the_real_api_would_take(
    wire: str, target: str
) -> None:
    decoded = await sdk_request(wire)
    adapter = providers.get_adapter(target)
    field = adapter.unsupported_field(decoded.request, _entry(target))
    if field is not None:  # the engine skips this model, naming the field
        assert (wire, target, field) in {
            ("anthropic", "ollama-native", "tool_choice"),
            ("gemini", "ollama-native", "tool_choice"),
            ("responses", "ollama-native", "tool_choice"),
        }
        return
    model = TARGETS[target][1]
    built = adapter.build_request(decoded.request, model=model, api_key="k", base_url="http://h")
    body = json.loads(built.body)
    assert check_request(adapter.api, target, body, model) is None, body


async def test_the_simulator_answers_what_a_decoded_anthropic_request_becomes() -> None:
    decoded = await sdk_request("anthropic")
    async with Simulator() as sim, httpx.AsyncClient() as http:
        for target in ("openai", "gemini", "anthropic"):
            adapter = providers.get_adapter(target)
            request = dataclasses.replace(decoded.request, stream=False)
            built = adapter.build_request(
                request, model=TARGETS[target][1], api_key="k", base_url=sim.base_url(target)
            )
            reply = await http.post(built.url, headers=built.headers, content=built.body)
            assert reply.status_code == 200, reply.text
            assert adapter.parse_response(reply.content).text


# -- documented examples ------------------------------------------------------------------


def test_a_responses_string_input_with_function_tools_and_reasoning() -> None:
    decoded = decode_request(
        "https://api.openai.com/v1/responses",
        {
            "model": "gpt-5",
            "input": "What is the weather like in Boston today?",
            "tools": [
                {
                    "type": "function",
                    "name": "get_current_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                    },
                }
            ],
            "tool_choice": "required",
            "reasoning": {"effort": "low", "summary": "auto"},
            "temperature": 0.7,
            "top_p": 0.9,
            "parallel_tool_calls": False,
            "stream": True,
            "include": ["reasoning.encrypted_content"],
            "truncation": "auto",
        },
    )
    assert decoded.request.messages == [
        {"role": "user", "content": "What is the weather like in Boston today?"}
    ]
    assert dict(decoded.request.params) == {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_current_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                    },
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
        "top_p": 0.9,
    }
    assert decoded.request.temperature == 0.7 and decoded.stream
    assert decoded.echo["tool_choice"] == "required" and decoded.echo["truncation"] == "auto"


def test_responses_allowed_tools_narrow_the_tools_offered() -> None:
    tools = [{"type": "function", "name": name} for name in ("a", "b", "c")]
    decoded = decode_request(
        "/v1/responses",
        {
            "model": "gpt-5",
            "input": "x",
            "tools": tools,
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "b"}],
            },
            "text": {"format": {"type": "json_object"}},
        },
    )
    params = decoded.request.params
    assert [t["function"]["name"] for t in params["tools"]] == ["b"]
    assert params["tool_choice"] == "required"
    assert params["response_format"] == {"type": "json_object"}


def test_an_anthropic_string_system_thinking_and_structured_output() -> None:
    decoded = decode_request(
        "https://api.anthropic.com/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Hello, Claude"}],
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
            "temperature": 1,
            "top_p": 0.99,
            "top_k": 5,
            "service_tier": "auto",
        },
    )
    assert decoded.request.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hello, Claude"},
    ]
    assert dict(decoded.request.params) == {
        "reasoning_effort": "high",
        "top_p": 0.99,
        "top_k": 5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
        },
    }


def test_gemini_snake_case_json_mode_thinking_and_a_response_matched_by_name() -> None:
    decoded = decode_request(
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        {
            "system_instruction": {"parts": [{"text": "Be terse."}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "Weather?"},
                        {
                            "file_data": {
                                "mime_type": "image/jpeg",
                                "file_uri": "https://example.com/a.jpg",
                            }
                        },
                    ],
                },
                {
                    "role": "model",
                    "parts": [
                        {"thought": True, "text": "thinking..."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"temp": -3}}}
                    ],
                },
            ],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {
                    "type": "OBJECT",
                    "properties": {"t": {"type": "NUMBER", "nullable": True}},
                    "propertyOrdering": ["t"],
                },
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
                "topK": 20,
                "seed": 7,
                "candidateCount": 1,
            },
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        },
    )
    assert decoded.model == "gemini-2.5-pro" and decoded.stream
    assert decoded.request.messages[1:] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_1", "content": '{"temp": -3}'},
    ]
    assert dict(decoded.request.params) == {
        "top_k": 20,
        "seed": 7,
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": {"type": "object", "properties": {"t": {"type": ["number", "null"]}}},
            },
        },
    }


# -- refused, naming the field ------------------------------------------------------------

CHAT = "https://api.openai.com/v1/chat/completions"
RESPONSES = "https://api.openai.com/v1/responses"
MESSAGES = "https://api.anthropic.com/v1/messages"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
USER = [{"role": "user", "content": "Hi"}]
GEMINI_USER = [{"role": "user", "parts": [{"text": "Hi"}]}]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (RESPONSES, {"previous_response_id": "resp_1"}, "previous_response_id"),
        (RESPONSES, {"conversation": "conv_1"}, "conversation"),
        (RESPONSES, {"prompt": {"id": "pmpt_1"}}, "prompt"),
        (RESPONSES, {"background": True}, "background"),
        (
            RESPONSES,
            {"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]},
            "tools[1]",
        ),
        (RESPONSES, {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]"),
        (RESPONSES, {"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0]"),
        (RESPONSES, {"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            RESPONSES,
            {
                "input": [
                    {"role": "user", "content": "x"},
                    {"type": "web_search_call", "id": "ws_1"},
                ]
            },
            "input[1]",
        ),
        (
            RESPONSES,
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ]
            },
            "input[0].content[0].file_id",
        ),
        (
            RESPONSES,
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
            "input[0].content[0]",
        ),
        (
            RESPONSES,
            {"tool_choice": {"type": "file_search"}, "tools": [{"type": "function", "name": "f"}]},
            "tool_choice",
        ),
        (RESPONSES, {"top_logprobs": 3}, "top_logprobs"),
        (RESPONSES, {"frobnicate": 1}, "frobnicate"),
        (CHAT, {"n": 2}, "n"),
        (CHAT, {"logprobs": True}, "logprobs"),
        (
            CHAT,
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            "modalities",
        ),
        (CHAT, {"web_search_options": {}}, "web_search_options"),
        (CHAT, {"functions": [{"name": "f"}]}, "functions"),
        (
            CHAT,
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (MESSAGES, {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        (MESSAGES, {"container": "container_1"}, "container"),
        (
            MESSAGES,
            {"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]},
            "mcp_servers",
        ),
        (MESSAGES, {"inference_geo": "us"}, "inference_geo"),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x/a.pdf"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t1",
                                "content": [
                                    {
                                        "type": "image",
                                        "source": {
                                            "type": "base64",
                                            "media_type": "image/png",
                                            "data": PIXEL,
                                        },
                                    }
                                ],
                            }
                        ],
                    },
                ]
            },
            "messages[1].content[0].content[0]",
        ),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
        (GEMINI, {"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
        (GEMINI, {"tools": [{"code_execution": {}}]}, "tools[0].codeExecution"),
        (GEMINI, {"cachedContent": "cachedContents/abc"}, "cachedContent"),
        (GEMINI, {"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
        (
            GEMINI,
            {"generationConfig": {"responseLogprobs": True}},
            "generationConfig.responseLogprobs",
        ),
        (
            GEMINI,
            {"generationConfig": {"responseModalities": ["IMAGE"]}},
            "generationConfig.responseModalities",
        ),
        (
            GEMINI,
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "fileData": {
                                    "mimeType": "application/pdf",
                                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                }
                            }
                        ],
                    }
                ]
            },
            "contents[0].parts[0].fileData",
        ),
        (GEMINI.replace(":generateContent", ":streamGenerateContent"), {}, "alt"),
    ],
)
def test_what_only_the_sdks_own_provider_can_honour_is_refused_by_name(
    url: str, body: dict[str, Any], field: str
) -> None:
    base: dict[str, Any]
    if url == GEMINI or "streamGenerateContent" in url:
        base = {"contents": GEMINI_USER}
    elif url == RESPONSES:
        base = {"model": "gpt-5", "input": "Hi"}
    elif url == MESSAGES:
        base = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": USER}
    else:
        base = {"model": "gpt-4o", "messages": USER}
    with pytest.raises(CannotTranslateError) as raised:
        decode_request(url, {**base, **body})
    assert raised.value.field == field
    assert field in str(raised.value) and raised.value.status == 400


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (CHAT, b"not json"),
        (CHAT, b"[1, 2]"),
        (CHAT, {"messages": USER}),
        (MESSAGES, {"model": "m", "messages": [{"role": "system", "content": "x"}]}),
        ("https://api.openai.com/v1/embeddings", {"model": "m", "input": "x"}),
    ],
)
def test_a_body_not_in_its_wires_shape_is_an_invalid_request(url: str, body: Any) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        decode_request(url, body)
    assert not isinstance(raised.value, CannotTranslateError) and raised.value.status == 400


@pytest.mark.parametrize(
    ("url", "wire"),
    [
        ("https://api.openai.com/v1/chat/completions", "openai"),
        ("http://127.0.0.1:8900/groq/openai/v1/chat/completions", "openai"),
        ("https://api.openai.com/v1/responses", "responses"),
        ("https://api.anthropic.com/v1/messages?beta=true", "anthropic"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
        ("/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini"),
        ("https://api.anthropic.com/v1/messages/count_tokens", None),
        ("/v1beta/models/gemini-2.5-flash:countTokens", None),
    ],
)
def test_the_wire_is_known_from_the_url(url: str, wire: str | None) -> None:
    assert wire_of(url) == wire
