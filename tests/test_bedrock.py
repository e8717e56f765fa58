"""Amazon Bedrock: Converse's wire (golden bodies from the documented shapes), SigV4 signing
against botocore and AWS's own test vector, ConverseStream's frames, Bedrock's errors, the
simulator's signature check, and the AWS credential chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import httpx
import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.errors import (
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    FailoverError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from failover.providers import get_adapter
from failover.providers._aws import AwsCredentials, sign_v4
from failover.providers.base import ChatRequest, StreamAssembler
from failover.providers.bedrock import BedrockAdapter, BedrockStream
from failover.testing import Behavior, Simulator
from failover.testing.cloud_sim import (
    SIM_ACCESS_KEY_ID,
    SIM_SECRET_ACCESS_KEY,
    encode_frame,
    exception_frame,
    verify_sigv4,
)

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIM_KEY = f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
US_EAST = "https://bedrock-runtime.us-east-1.amazonaws.com"


def adapter() -> BedrockAdapter:
    found = get_adapter("bedrock")
    assert isinstance(found, BedrockAdapter)
    return found


def body_of(request: ChatRequest, *, model: str = MODEL) -> dict[str, Any]:
    built = adapter().build_request(request, model=model, api_key=SIM_KEY, base_url=US_EAST)
    return json.loads(built.body)


# -- the request: golden bodies --------------------------------------------------------------


def test_a_tool_round_with_an_image_becomes_the_documented_converse_body() -> None:
    request = ChatRequest(
        [
            {"role": "system", "content": "You are a weather bot."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the weather where this was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                        "type": "function",
                        "function": {"name": "top_song", "arguments": '{"sign": "WZPZ"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                "content": '{"song": "Elemental Hotel"}',
            },
        ],
        max_tokens=512,
        temperature=0.5,
        params={
            "top_p": 0.9,
            "stop": ["\n\nHuman:"],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "top_song",
                        "description": "Get the most popular song played on a radio station.",
                        "parameters": {
                            "type": "object",
                            "properties": {"sign": {"type": "string"}},
                            "required": ["sign"],
                        },
                    },
                }
            ],
            "tool_choice": "auto",
        },
    )
    assert body_of(request) == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is the weather where this was taken?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "name": "top_song",
                            "input": {"sign": "WZPZ"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "content": [{"text": '{"song": "Elemental Hotel"}'}],
                        }
                    }
                ],
            },
        ],
        "system": [{"text": "You are a weather bot."}],
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["\n\nHuman:"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "top_song",
                        "description": "Get the most popular song played on a radio station.",
                        "inputSchema": {
                            "json": {
                                "type": "object",
                                "properties": {"sign": {"type": "string"}},
                                "required": ["sign"],
                            }
                        },
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    }


def test_the_request_goes_to_the_model_path_signed_for_the_host_region() -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], stream=True)
    built = adapter().build_request(
        request,
        model=MODEL,
        api_key=SIM_KEY,
        base_url="https://bedrock-runtime.eu-west-1.amazonaws.com",
    )
    assert built.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream"
    )
    assert built.headers["accept"] == "application/vnd.amazon.eventstream"
    assert "/eu-west-1/bedrock/aws4_request" in built.headers["Authorization"]


def test_credentials_for_one_region_are_never_sent_to_another_regions_host() -> None:
    resolved = f"sigv4 us-east-1 {SIM_ACCESS_KEY_ID} {SIM_SECRET_ACCESS_KEY}"
    with pytest.raises(ConfigError, match="own region"):
        adapter().build_request(
            ChatRequest([{"role": "user", "content": "hi"}]),
            model=MODEL,
            api_key=resolved,
            base_url="https://bedrock-runtime.eu-west-1.amazonaws.com",
        )


def test_reasoning_effort_asks_claude_for_a_thinking_budget_on_top_of_max_tokens() -> None:
    request = ChatRequest(
        [{"role": "user", "content": "think"}], max_tokens=100, params={"reasoning_effort": "low"}
    )
    body = body_of(request)
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert body["inferenceConfig"]["maxTokens"] == 2148


def test_json_mode_is_a_forced_tool_whose_input_is_the_answer() -> None:
    request = ChatRequest(
        [{"role": "user", "content": "json please"}],
        params={"response_format": {"type": "json_object"}},
    )
    body = body_of(request)
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "json_response"}}
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "t1", "name": "json_response", "input": {"a": 1}}}
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
    }
    result = adapter().parse_response(json.dumps(reply).encode())
    assert json.loads(result.text) == {"a": 1}
    assert result.finish_reason == "stop"
    assert result.tool_calls == ()


def test_fields_converse_cannot_express_make_the_model_skipped() -> None:
    entry = mock.Mock(id=MODEL, input=None, tools=None, reasoning=None)
    https_image = ChatRequest(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
            }
        ]
    )
    assert adapter().unsupported_field(https_image, entry) == "image_url"
    seeded = ChatRequest([{"role": "user", "content": "hi"}], params={"seed": 3})
    assert adapter().unsupported_field(seeded, entry) == "seed"
    nova = mock.Mock(id="amazon.nova-pro-v1:0", input=None, tools=None, reasoning=None)
    thinking = ChatRequest([{"role": "user", "content": "hi"}], params={"reasoning_effort": "high"})
    assert adapter().unsupported_field(thinking, nova) == "reasoning_effort"
    assert adapter().unsupported_field(thinking, entry) is None


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("temperature", "params", "refused"),
    [
        (0.2, {"reasoning_effort": "high"}, "temperature"),
        (None, {"reasoning_effort": "high", "top_p": 0.5}, "top_p"),
        (None, {"reasoning_effort": "low", "tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        (None, {"reasoning_effort": "low", "response_format": {"type": "json_object"}}, "response_format"),
        (None, {"response_format": {"type": "json_object"}, "tools": TOOLS}, "response_format"),
        (1.0, {"reasoning_effort": "high", "tools": TOOLS, "tool_choice": "auto"}, None),
    ],
)  # fmt: skip
def test_claude_thinking_on_bedrock_refuses_what_anthropic_refuses(
    temperature: float | None, params: dict[str, Any], refused: str | None
) -> None:
    request = ChatRequest(
        [{"role": "user", "content": "hi"}], temperature=temperature, params=params
    )
    entry = mock.Mock(id=MODEL, input=None, tools=None, reasoning=None)
    assert adapter().unsupported_field(request, entry) == refused
    anthropic_entry = mock.Mock(id="claude-sonnet-4-5", input=None, tools=None, reasoning=None)
    assert get_adapter("anthropic").unsupported_field(request, anthropic_entry) == refused


def test_thinking_without_max_tokens_still_leaves_room_for_the_answer() -> None:
    from failover.providers._claude import DEFAULT_MAX_TOKENS

    request = ChatRequest(
        [{"role": "user", "content": "think"}], params={"reasoning_effort": "low"}
    )
    # no limit given and none in the catalog for this id: 4096 for the answer, plus the budget
    assert body_of(request)["inferenceConfig"]["maxTokens"] == DEFAULT_MAX_TOKENS + 2048
    anthropic = get_adapter("anthropic").build_request(
        request, model="claude-sonnet-4-5", api_key="sk-ant-x", base_url="https://a"
    )
    assert json.loads(anthropic.body)["max_tokens"] == DEFAULT_MAX_TOKENS + 2048


# -- the reply ---------------------------------------------------------------------------


def test_the_documented_converse_reply_is_read_with_tool_calls_and_cache_usage() -> None:
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "I'll look that up."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "name": "top_song",
                            "input": {"sign": "WZPZ"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 375,
            "outputTokens": 36,
            "totalTokens": 411,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
        },
        "metrics": {"latencyMs": 2270},
    }
    result = adapter().parse_response(json.dumps(reply).encode())
    assert result.text == "I'll look that up."
    assert result.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.args) for c in result.tool_calls] == [
        ("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", {"sign": "WZPZ"})
    ]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (375, 36)
    assert (result.usage.cache_read_tokens, result.usage.cache_write_tokens) == (100, 20)
    assert result.message["tool_calls"][0]["function"]["name"] == "top_song"


def test_a_guardrail_stop_is_content_filtered_and_a_broken_reply_is_malformed() -> None:
    blocked = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Sorry."}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    }
    with pytest.raises(ContentFilteredError):
        adapter().parse_response(json.dumps(blocked).encode())
    with pytest.raises(MalformedResponseError):
        adapter().parse_response(b'{"output": {"message": ')


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_a_malformed_output_stop_is_a_malformed_reply_not_an_answer(stop: str) -> None:
    reply = {
        "output": {"message": {"role": "assistant", "content": [{"text": '{"broken'}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    }
    with pytest.raises(MalformedResponseError) as caught:
        adapter().parse_response(json.dumps(reply).encode())
    assert caught.value.code == stop
    frames = [
        frame("messageStart", {"role": "assistant"}),
        frame("contentBlockDelta", {"delta": {"text": '{"broken'}, "contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": stop}),
    ]
    with pytest.raises(MalformedResponseError):
        read_stream(b"".join(frames), 1000)


# -- ConverseStream ------------------------------------------------------------------------


def frame(event: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload).encode())


def stream_of_text_and_tool(*, metadata: bool = True) -> bytes:
    frames = [
        frame("messageStart", {"role": "assistant"}),
        frame("contentBlockDelta", {"delta": {"text": "Let me "}, "contentBlockIndex": 0}),
        frame("contentBlockDelta", {"delta": {"text": "check."}, "contentBlockIndex": 0}),
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame(
            "contentBlockStart",
            {
                "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song"}},
                "contentBlockIndex": 1,
            },
        ),
        frame(
            "contentBlockDelta",
            {"delta": {"toolUse": {"input": '{"sign": '}}, "contentBlockIndex": 1},
        ),
        frame(
            "contentBlockDelta",
            {"delta": {"toolUse": {"input": '"WZPZ"}'}}, "contentBlockIndex": 1},
        ),
        frame("contentBlockStop", {"contentBlockIndex": 1}),
        frame("messageStop", {"stopReason": "tool_use"}),
    ]
    usage = {"inputTokens": 10, "outputTokens": 7, "totalTokens": 17}
    if metadata:
        frames.append(frame("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
    return b"".join(frames)


def read_stream(data: bytes, piece: int) -> tuple[StreamAssembler, BedrockStream]:
    parser = adapter().stream_parser()
    assembler = StreamAssembler()
    for start in range(0, len(data), piece):
        for chunk in parser.feed_bytes(data[start : start + piece]):
            assembler.add(chunk)
    return assembler, parser


@pytest.mark.parametrize("piece", [1, 7, 100_000])
def test_a_stream_split_anywhere_reads_as_text_then_a_tool_call_then_usage(piece: int) -> None:
    assembler, parser = read_stream(stream_of_text_and_tool(), piece)
    assert parser.complete
    assert assembler.text == "Let me check."
    assert [(c.id, c.name, c.args) for c in assembler.tool_calls] == [
        ("tooluse_1", "top_song", {"sign": "WZPZ"})
    ]
    assert assembler.finish_reason == "tool_calls"
    assert assembler.usage is not None and assembler.usage.output_tokens == 7


def test_a_stream_without_metadata_is_not_complete() -> None:
    assembler, parser = read_stream(stream_of_text_and_tool(metadata=False), 1000)
    assert not parser.complete
    assert assembler.finish_reason == "tool_calls"  # read, but the terminator is missing


def test_an_exception_frame_mid_stream_is_the_error_it_names() -> None:
    parser = adapter().stream_parser()
    data = frame("messageStart", {"role": "assistant"}) + exception_frame(
        "throttlingException", "Too many requests"
    )
    with pytest.raises(RateLimitError):
        list(parser.feed_bytes(data))
    broken = bytearray(frame("messageStart", {"role": "assistant"}))
    broken[-1] ^= 0xFF  # the message CRC no longer matches
    with pytest.raises(MalformedResponseError):
        list(adapter().stream_parser().feed_bytes(bytes(broken)))


# -- errors --------------------------------------------------------------------------------


def bedrock_error(status: int, name: str, message: str) -> Exception:
    headers = {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return adapter().parse_error(status, headers, json.dumps({"message": message}).encode())


def anthropic_error(status: int, kind: str, message: str) -> Exception:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return get_adapter("anthropic").parse_error(status, {}, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "name", "message", "expected", "equivalent"),
    [
        (429, "ThrottlingException", "Too many requests", RateLimitError, (429, "rate_limit_error")),
        # "You can resubmit your request later": a per-minute quota, so Anthropic's 429.
        (400, "ServiceQuotaExceededException", "exceeds the service quota", RateLimitError, (429, "rate_limit_error")),
        (503, "ServiceUnavailableException", "unable to process", OverloadedError, (529, "overloaded_error")),
        (429, "ModelNotReadyException", "model is not ready", OverloadedError, (529, "overloaded_error")),
        # Bedrock's access denied is "model access not granted": Anthropic's 404 for a
        # model the key cannot see (skip the model, the credentials are fine).
        (403, "AccessDeniedException", "no access to the model", ModelNotFoundError, (404, "not_found_error")),
        (404, "ResourceNotFoundException", "model not found", ModelNotFoundError, (404, "not_found_error")),
        (500, "InternalServerException", "internal error", ServerError, (500, "api_error")),
        (400, "ValidationException", "Input is too long for requested model.", ContextWindowExceededError, (400, "invalid_request_error")),
        (400, "ValidationException", "messages.0.content is empty", InvalidRequestError, (400, "invalid_request_error")),
    ],
)  # fmt: skip
def test_bedrock_errors_get_the_action_of_the_other_providers_equivalents(
    status: int, name: str, message: str, expected: type, equivalent: tuple[int, str]
) -> None:
    error = bedrock_error(status, name, message)
    assert type(error) is expected
    other_message = "prompt is too long" if expected is ContextWindowExceededError else message
    assert type(anthropic_error(*equivalent, other_message)) is expected
    assert error.code == name  # type: ignore[attr-defined]


def test_bedrock_errors_that_a_wait_or_another_model_fixes_never_disable_the_profile() -> None:
    from failover.policy import Action, decide

    denied = decide(bedrock_error(403, "AccessDeniedException", "no access to the model"))
    assert denied == decide(anthropic_error(404, "not_found_error", "model: x"))
    assert denied.action is Action.NEXT_MODEL and denied.failure is None
    expired = bedrock_error(403, "ExpiredTokenException", "The security token is expired")
    assert decide(expired).action is Action.ROTATE
    assert decide(expired).failure == "rate_limit"  # a short cooldown, not "auth" (disabled)
    assert expired.retry_after is not None and 0 < expired.retry_after <= 5  # type: ignore[attr-defined]
    quota = bedrock_error(400, "ServiceQuotaExceededException", "resubmit your request later")
    assert decide(quota).failure == "rate_limit"


def test_throttling_keeps_the_wait_bedrock_asks_for() -> None:
    error = adapter().parse_error(
        429, {"x-amzn-ErrorType": "ThrottlingException", "Retry-After": "7"}, b'{"message": "x"}'
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7


# -- SigV4 ---------------------------------------------------------------------------------

AWS_TEST_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_TEST_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)


def test_signing_matches_the_aws_sigv4_test_suites_get_vanilla_vector() -> None:
    # aws-sig-v4-test-suite/get-vanilla (also in botocore's tests/unit/auth/aws4_testsuite)
    headers = sign_v4(
        "GET",
        "https://example.amazonaws.com/",
        {},
        b"",
        AwsCredentials("AKIDEXAMPLE", AWS_TEST_SECRET),
        "us-east-1",
        service="service",
        now=AWS_TEST_TIME,
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLESESSIONTOKEN=="])
def test_signing_matches_botocores_own_add_auth(token: str | None) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    url = f"{US_EAST}/model/{MODEL}/converse"
    body = b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}'
    headers = {"content-type": "application/json", "accept": "application/json"}
    ours = sign_v4(
        "POST",
        url,
        headers,
        body,
        AwsCredentials("AKIDEXAMPLE", AWS_TEST_SECRET, token),
        "us-east-1",
        now=AWS_TEST_TIME,
    )
    theirs = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=headers)
    auth = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("AKIDEXAMPLE", AWS_TEST_SECRET, token),
        "bedrock",
        "us-east-1",
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=AWS_TEST_TIME):
        auth.add_auth(theirs)
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.headers.get("X-Amz-Security-Token")


def test_a_signature_never_reaches_botocores_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="botocore")
    headers = sign_v4(
        "POST", US_EAST, {}, b"{}", AwsCredentials("AKIDEXAMPLE", AWS_TEST_SECRET), "us-east-1"
    )
    signature = headers["Authorization"].rpartition("Signature=")[2]
    assert signature not in caplog.text


def test_the_simulator_refuses_a_wrong_signature_as_bedrock_does() -> None:
    url = "http://127.0.0.1:9/bedrock/model/m/converse"
    body = b"{}"
    secrets = {SIM_ACCESS_KEY_ID: SIM_SECRET_ACCESS_KEY}
    host = {"host": "127.0.0.1:9"}  # as httpx sends it
    good = host | sign_v4(
        "POST", url, {}, body, AwsCredentials(SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY), "us-east-1"
    )
    assert verify_sigv4("POST", url, good, body, secrets) == (SIM_ACCESS_KEY_ID, None)
    wrong = host | sign_v4(
        "POST", url, {}, body, AwsCredentials(SIM_ACCESS_KEY_ID, "not-the-secret"), "us-east-1"
    )
    key, refusal = verify_sigv4("POST", url, wrong, body, secrets)
    assert key is None and refusal is not None
    status, error, headers = refusal
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert "signature we calculated does not match" in error["message"]
    tampered = verify_sigv4("POST", url, good, b'{"messages": []}', secrets)
    assert tampered[0] is None  # the body is signed too
    unknown = host | sign_v4(
        "POST", url, {}, body, AwsCredentials("AKIDUNKNOWN000", "x"), "us-east-1"
    )
    assert verify_sigv4("POST", url, unknown, body, secrets)[1][0] == 403  # type: ignore[index]


# -- through the client, on the simulator ----------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def manager_for(sim: Simulator, api_key: str = SIM_KEY, **options: Any) -> FailoverManager:
    manager = FailoverManager()
    manager.add_profile(
        AuthProfile("aws", "bedrock", api_key, base_url=sim.base_url("bedrock"), **options)
    )
    return manager


async def test_a_signed_request_is_answered_whole_and_streamed(sim: Simulator) -> None:
    manager = manager_for(sim, region="us-east-1")
    async with ResilientClient([f"bedrock/{MODEL}"], manager) as client:
        result = await client.complete([{"role": "user", "content": "hello"}], max_tokens=50)
        assert result.text.startswith(f"Simulated answer from bedrock/{MODEL}")
        assert result.cost_usd is not None and result.cost_usd > 0  # priced from the catalog
        text = [chunk.text async for chunk in client.stream([{"role": "user", "content": "hi"}])]
    assert "".join(text).startswith("Simulated answer")
    assert [r.key for r in sim.requests] == [SIM_ACCESS_KEY_ID, SIM_ACCESS_KEY_ID]
    assert all(r.outcome == "healthy" for r in sim.requests)


async def test_a_wrong_secret_is_refused_and_disables_the_key(sim: Simulator) -> None:
    manager = manager_for(sim, f"{SIM_ACCESS_KEY_ID}:wrongSecretKeyEXAMPLE0000000000000000000")
    async with ResilientClient([f"bedrock/{MODEL}"], manager, wait_for_recovery=False) as client:
        with pytest.raises(FailoverError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
    assert sim.requests[-1].outcome == "invalid_signature"
    assert manager.get_profile("aws").status.value == "disabled"  # type: ignore[union-attr]
    assert "wrongSecret" not in str(caught.value) and "wrongSecret" not in repr(manager.status())


async def test_a_throttled_stream_fails_over_before_its_first_chunk(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), provider="bedrock")
    manager = manager_for(sim, region="us-east-1")
    manager.add_profile(
        AuthProfile("g", "gemini", "AIza-test-key-0000000000000", base_url=sim.base_url("gemini"))
    )
    async with ResilientClient([f"bedrock/{MODEL}", "gemini/gemini-2.5-flash"], manager) as client:
        text = [c.text async for c in client.stream([{"role": "user", "content": "hi"}])]
    assert "gemini" in "".join(text)
    assert manager.get_profile("aws").status.value == "rate_limited"  # type: ignore[union-attr]


async def test_credentials_come_from_the_aws_environment_when_the_profile_has_none(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SIM_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN0000000000")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    manager = manager_for(sim, "", region="us-east-1")
    async with ResilientClient([f"bedrock/{MODEL}"], manager) as client:
        await client.complete([{"role": "user", "content": "hi"}])
    assert sim.requests[-1].key == SIM_ACCESS_KEY_ID
    assert sim.requests[-1].outcome == "healthy"


async def test_expiring_credentials_are_refreshed_before_they_are_used(sim: Simulator) -> None:
    from botocore.credentials import RefreshableCredentials

    sim.aws_credentials["ASIASECONDKEY0000000"] = "secondSecretEXAMPLE0000000000000000000000"
    issued = iter(
        [
            ("ASIAFIRSTKEY00000000", "firstSecretEXAMPLE00000000000000000000000", 10),
            ("ASIASECONDKEY0000000", "secondSecretEXAMPLE0000000000000000000000", 3600),
        ]
    )
    sim.aws_credentials["ASIAFIRSTKEY00000000"] = "firstSecretEXAMPLE00000000000000000000000"

    def refresh() -> dict[str, str]:
        key, secret, lifetime = next(issued)
        expiry = datetime.now(timezone.utc).timestamp() + lifetime
        return {
            "access_key": key,
            "secret_key": secret,
            "token": "session-token-" + key,
            "expiry_time": datetime.fromtimestamp(expiry, timezone.utc).isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    manager = manager_for(sim, "", region="us-east-1", credentials=credentials)
    async with ResilientClient([f"bedrock/{MODEL}"], manager) as client:
        await client.complete([{"role": "user", "content": "hi"}])
    # 10 s left is inside botocore's refresh window: the second key signed the request
    assert [r.key for r in sim.requests] == ["ASIASECONDKEY0000000"]


def test_a_profile_takes_its_base_url_from_its_region() -> None:
    profile = AuthProfile("aws", "bedrock", "", region="eu-central-1")
    assert profile.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    with pytest.raises(ConfigError, match="region"):
        AuthProfile("aws", "bedrock", "", region="not a region")


async def test_a_bedrock_api_key_is_sent_as_a_bearer_token(sim: Simulator) -> None:
    key = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlMDAwMDAwMDAwMDAwMDAw"
    async with ResilientClient([f"bedrock/{MODEL}"], manager_for(sim, key)) as client:
        await client.complete([{"role": "user", "content": "hi"}])
    assert sim.requests[-1].key == key


def test_the_model_path_is_sent_as_signed_by_httpx_and_aiohttp() -> None:
    # the canonical path is signed as sent: the ':' of an id stays as it is (as Anthropic's
    # Bedrock client sends it), which neither HTTP library rewrites
    import yarl

    url = f"http://127.0.0.1:1/model/{MODEL}/converse"
    assert httpx.URL(url).raw_path == f"/model/{MODEL}/converse".encode()
    assert yarl.URL(url).raw_path == f"/model/{MODEL}/converse"


def test_a_boto3_client_error_is_classified_by_its_bedrock_exception_name() -> None:
    from botocore.exceptions import ClientError

    from failover.classify import classify_exception

    throttled = ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Too many requests"},
            "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {"retry-after": "3"}},
        },
        "Converse",
    )
    error = classify_exception(throttled, provider="bedrock")
    assert isinstance(error, RateLimitError) and error.retry_after == 3
    too_long = ClientError(
        {
            "Error": {
                "Code": "ValidationException",
                "Message": "Input is too long for requested model.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "Converse",
    )
    assert isinstance(classify_exception(too_long), ContextWindowExceededError)


async def test_a_named_aws_profile_is_read_from_the_shared_config_once(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile simulated]\n"
        f"aws_access_key_id = {SIM_ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {SIM_SECRET_ACCESS_KEY}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    manager = manager_for(sim, "", region="us-east-1", credentials="simulated")
    resolved = 0
    import failover.providers._aws as aws

    real = aws._resolve

    def counting(profile: Any) -> Any:
        nonlocal resolved
        resolved += 1
        return real(profile)

    monkeypatch.setattr(aws, "_resolve", counting)
    async with ResilientClient([f"bedrock/{MODEL}"], manager) as client:
        import anyio

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(client.complete, [{"role": "user", "content": "hi"}])
    assert [r.outcome for r in sim.requests] == ["healthy"] * 5
    assert resolved == 1


def test_a_tool_history_without_tools_still_declares_them_as_converse_requires() -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    body = body_of(ChatRequest(history))
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get", "inputSchema": {"json": {"type": "object"}}}}]
    }
    from failover.testing.cloud_sim import check_converse

    assert check_converse(body) is None
    del body["toolConfig"]
    assert check_converse(body) is not None  # as Bedrock refuses it


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("midstream_error", "StreamInterrupted"),
        ("truncate", "StreamInterrupted"),
        ("content_block", "AllAttemptsFailed"),
    ],
)
async def test_a_converse_stream_that_fails_is_never_a_silent_success(
    sim: Simulator, kind: str, error: str
) -> None:
    sim.script(Behavior(kind), provider="bedrock")
    manager = manager_for(sim, region="us-east-1")
    async with ResilientClient([f"bedrock/{MODEL}"], manager, wait_for_recovery=False) as client:
        with pytest.raises(FailoverError) as caught:
            await read_everything(client)
    assert type(caught.value).__name__ == error
    if kind == "content_block":
        assert caught.value.attempts[-1].outcome == "content_filter"  # type: ignore[attr-defined]


async def read_everything(client: ResilientClient) -> str:
    return "".join([c.text async for c in client.stream([{"role": "user", "content": "hi"}])])


def expiring_credentials(refresh: Any) -> Any:
    from botocore.credentials import RefreshableCredentials

    soon = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + 5, timezone.utc)
    metadata = {
        "access_key": "ASIAFIRSTKEY00000000",
        "secret_key": "firstSecretEXAMPLE00000000000000000000000",
        "token": "session-token-first",
        "expiry_time": soon.isoformat(),
    }
    return RefreshableCredentials.create_from_metadata(metadata, refresh, "test")


@pytest.mark.parametrize("transient", [True, False])
async def test_an_unreachable_credentials_endpoint_goes_sideways_a_refusal_disables(
    transient: bool,
) -> None:
    from botocore.exceptions import ClientError, ConnectTimeoutError

    from failover.errors import AuthenticationError, ProviderConnectionError
    from failover.policy import Action, decide
    from failover.providers._aws import BedrockCredentials

    def refresh() -> dict[str, str]:
        if transient:
            raise ConnectTimeoutError(endpoint_url="https://sts.amazonaws.com")
        error = {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}
        raise ClientError(error, "AssumeRole")

    profile = AuthProfile(
        "aws", "bedrock", "", region="us-east-1", credentials=expiring_credentials(refresh)
    )
    with pytest.raises((AuthenticationError, ProviderConnectionError)) as caught:
        await BedrockCredentials().key_for(profile, US_EAST)
    decision = decide(caught.value)
    if transient:
        assert isinstance(caught.value, ProviderConnectionError)
        assert decision.action is Action.RETRY and decision.failure == "error"
    else:
        assert isinstance(caught.value, AuthenticationError) and decision.failure == "auth"


def test_aws_credentials_shared_by_two_event_loops_refresh_without_hanging() -> None:
    import threading
    import time

    import anyio

    from failover.providers._aws import BedrockCredentials

    refreshes: list[int] = []

    def refresh() -> dict[str, str]:
        time.sleep(0.02)
        refreshes.append(1)
        soon = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + 5, timezone.utc)
        return {
            "access_key": "ASIASECONDKEY0000000",
            "secret_key": "secondSecretEXAMPLE0000000000000000000000",
            "token": f"session-token-{len(refreshes)}",
            "expiry_time": soon.isoformat(),  # inside the refresh window: every use refreshes
        }

    profile = AuthProfile(
        "aws", "bedrock", "", region="us-east-1", credentials=expiring_credentials(refresh)
    )
    shared = BedrockCredentials()
    outcomes: list[str] = []

    def client_on_its_own_loop() -> None:
        async def three_calls() -> None:
            with anyio.fail_after(20):
                for _ in range(3):
                    assert (await shared.key_for(profile, US_EAST)).startswith("sigv4 ")

        try:
            anyio.run(three_calls)
            outcomes.append("ok")
        except BaseException as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=client_on_its_own_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["ok", "ok"]
    assert refreshes  # refreshed in the worker threads, one at a time
