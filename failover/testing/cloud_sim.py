"""The simulator's Amazon Bedrock and Google Vertex AI: SigV4 checked with fixed test
credentials, Converse JSON and ConverseStream event-stream frames, Bedrock's and Vertex's
error bodies. Pure functions (and the frame encoder); ``simulator.py`` serves them.

The event-stream frame (AWS's ``application/vnd.amazon.eventstream``) is: a prelude of the
total length, the headers' length (big-endian u32 each) and the prelude's CRC32; the
headers (name length u8, name, type 7 = string, value length u16, value); the payload; and
the CRC32 of everything before it. botocore only parses frames, so they are encoded here.
"""

from __future__ import annotations

import hmac
import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.testing.rejects import Reject
from failover.testing.wire import SimToolCall

__all__ = [
    "SIM_ACCESS_KEY_ID",
    "SIM_REGION",
    "SIM_SECRET_ACCESS_KEY",
    "SIM_VERTEX_TOKEN",
    "check_converse",
    "converse_body",
    "converse_error",
    "converse_frames",
    "converse_usage",
    "encode_frame",
    "exception_frame",
    "verify_sigv4",
    "vertex_error",
]

SIM_ACCESS_KEY_ID = "AKIDSIMULATOREXAMPLE"
"""The simulator's fixed AWS access key id (not a real AWS key)."""
SIM_SECRET_ACCESS_KEY = "simulatorSecretAccessKey/EXAMPLE+0000000"
"""The secret of :data:`SIM_ACCESS_KEY_ID`: requests signed with anything else get a 403."""
SIM_REGION = "us-east-1"
"""The region the simulator's Bedrock profiles sign for."""
SIM_VERTEX_TOKEN = "ya29.simulator-access-token"
"""A Google access token the simulator accepts when no tokens are listed."""

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


def _aws_error(status: int, name: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        status,
        {"message": message},
        {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def verify_sigv4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> tuple[str, None] | tuple[None, tuple[int, dict[str, Any], dict[str, str]]]:
    """Check a request's SigV4 signature as Bedrock would: recompute it with botocore from
    the headers it names and the secret of its access key.

    Returns:
        ``(access key id, None)`` for a good signature, else ``(None, (status, body,
        headers))``: Bedrock's 403 (``UnrecognizedClientException``,
        ``InvalidSignatureException``) or 400 for a request that is not signed.
    """
    import botocore.auth  # type: ignore[import-untyped]
    import botocore.awsrequest  # type: ignore[import-untyped]
    import botocore.credentials  # type: ignore[import-untyped]

    lowered = {k.lower(): v for k, v in headers.items()}
    found = _AUTH.match(lowered.get("authorization", ""))
    if found is None:
        return None, _aws_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        )
    key = found["key"]
    secret = secrets.get(key)
    if secret is None:
        return None, _aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    stamp = lowered.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None, _aws_error(
            403, "IncompleteSignatureException", "X-Amz-Date is missing or malformed."
        )
    if abs((now or datetime.now(timezone.utc)) - when) > timedelta(minutes=5):
        return None, _aws_error(
            403,
            "InvalidSignatureException",
            "Signature expired: the request's time is more than 5 minutes from now.",
        )
    signed = found["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return None, _aws_error(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers={name: lowered.get(name, "") for name in signed}
    )
    request.context["timestamp"] = stamp
    credentials = botocore.credentials.Credentials(key, secret, lowered.get("x-amz-security-token"))
    auth = botocore.auth.SigV4Auth(credentials, found["service"], found["region"])
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    if found["date"] != stamp[:8] or not hmac.compare_digest(expected, found["signature"]):
        return None, _aws_error(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)
    return key, None


# -- event-stream frames --------------------------------------------------------------------


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream frame: string headers and a payload, with both CRCs."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload).encode())


def exception_frame(name: str, message: str) -> bytes:
    """A mid-stream exception frame (``throttlingException``, ``modelStreamErrorException``,
    ...), as ConverseStream sends once its status is already 200."""
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, json.dumps({"message": message}).encode())


def converse_frames(
    pieces: list[str],
    usage: tuple[int, int],
    *,
    tool_calls: tuple[SimToolCall, ...] = (),
    stopped: bool = False,
    cache: tuple[int, int] | None = None,
) -> Iterator[bytes]:
    """A healthy ConverseStream: messageStart, blocks, messageStop, then metadata
    (``cache``: prompt tokens (read, written), as :func:`converse_usage` reports them)."""
    prompt, completion = usage
    yield _event("messageStart", {"role": "assistant"})
    if tool_calls:
        for index, (call_id, name, args) in enumerate(tool_calls):
            start = {"toolUse": {"toolUseId": call_id, "name": name}}
            yield _event("contentBlockStart", {"start": start, "contentBlockIndex": index})
            text = json.dumps(args)
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                delta = {"toolUse": {"input": piece}}
                yield _event("contentBlockDelta", {"delta": delta, "contentBlockIndex": index})
            yield _event("contentBlockStop", {"contentBlockIndex": index})
        stop = "tool_use"
    else:
        for piece in pieces:
            yield _event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0})
        yield _event("contentBlockStop", {"contentBlockIndex": 0})
        stop = "stop_sequence" if stopped else "end_turn"
    yield _event("messageStop", {"stopReason": stop})
    yield _event(
        "metadata",
        {"usage": converse_usage(prompt, completion, cache), "metrics": {"latencyMs": 42}},
    )


def converse_usage(
    prompt: int, completion: int, cache: tuple[int, int] | None = None
) -> dict[str, int]:
    """Converse's ``usage``: ``inputTokens`` excludes the cached reads and writes
    (``cache``: tokens (read, written); ``None``: no cache fields)."""
    usage = {
        "inputTokens": prompt,
        "outputTokens": completion,
        "totalTokens": prompt + completion,
    }
    if cache is not None:
        read, written = cache
        usage["inputTokens"] = max(0, prompt - read - written)
        usage["cacheReadInputTokens"] = read
        usage["cacheWriteInputTokens"] = written
    return usage


def converse_body(
    text: str,
    usage: tuple[int, int],
    *,
    blocked: bool = False,
    tool_calls: tuple[SimToolCall, ...] = (),
    stopped: bool = False,
    cache: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A Converse reply, as the API documents it (``cache``: as :func:`converse_frames`)."""
    prompt, completion = usage
    content: list[dict[str, Any]] = [{"text": text}] if text and not blocked else []
    content += [
        {"toolUse": {"toolUseId": call_id, "name": name, "input": args}}
        for call_id, name, args in tool_calls
    ]
    if blocked:
        stop = "guardrail_intervened"
        content = [{"text": "Sorry, the model cannot answer this question."}]
    elif tool_calls:
        stop = "tool_use"
    else:
        stop = "stop_sequence" if stopped else "end_turn"
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": converse_usage(prompt, completion, cache),
        "metrics": {"latencyMs": 42},
    }


def converse_error(kind: str, retry_after: float) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of a scripted failure, Bedrock's way."""
    status, name, message = {
        "rate_limit": (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        "quota": (
            400,
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account. You can view your quotas "
            "at Viewing service quotas.",
        ),
        "invalid_key": (  # what Bedrock says of a key it does not know (AccessDenied is
            403,  # "model access not granted": a skipped model, not a refused key)
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        "overloaded": (
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        "server_error": (
            500,
            "InternalServerException",
            "The server encountered an internal error.",
        ),
        "context_limit": (400, "ValidationException", "Input is too long for requested model."),
    }[kind]
    return _aws_error(status, name, message)


def stream_exception(kind: str = "overloaded") -> bytes:
    """The exception frame a stream fails with mid-way."""
    if kind == "rate_limit":
        return exception_frame(
            "throttlingException", "Too many requests, please wait before trying again."
        )
    return exception_frame(
        "serviceUnavailableException", "Bedrock is unable to process your request."
    )


_CONVERSE_FIELDS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
    }
)
_BLOCKS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "toolUse",
        "toolResult",
        "guardContent",
        "reasoningContent",
        "cachePoint",
    }
)
_INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _invalid(message: str) -> Reject:
    return 400, {"message": message}


def check_converse(body: dict[str, Any]) -> Reject:
    """The ValidationException Converse would answer ``body`` with, or ``None``."""
    for key in body:
        if key not in _CONVERSE_FIELDS:
            return _invalid(
                f"Malformed input request: extraneous key [{key}] is not permitted, please "
                "reformat your input and try again."
            )
    for key in body.get("inferenceConfig") or {}:
        if key not in _INFERENCE:
            return _invalid(
                f"Malformed input request: extraneous key [inferenceConfig.{key}] is not permitted."
            )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid(
            "A conversation must start with a user message. Try again with a conversation that "
            "starts with a user message."
        )
    tools = (body.get("toolConfig") or {}).get("tools") or []
    names = set()
    for tool in tools:
        if isinstance(tool, dict) and set(tool) == {"cachePoint"}:
            continue  # a Tool is a union: toolSpec, systemTool or a cachePoint
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(
            (spec.get("inputSchema") or {}).get("json"), dict
        ):
            return _invalid(
                "The value at toolConfig.tools.0.toolSpec.inputSchema.json must be an object."
            )
        names.add(spec.get("name"))
    choice = (body.get("toolConfig") or {}).get("toolChoice")
    if isinstance(choice, dict) and "tool" in choice and choice["tool"].get("name") not in names:
        return _invalid("The tool named in toolChoice is not in toolConfig.tools.")
    used: set[str] = set()
    previous = None
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return _invalid(f"The value at messages.{index}.role must be 'user' or 'assistant'.")
        if index == 0 and role != "user":
            return _invalid(
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message."
            )
        if role == previous:
            return _invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return _invalid(
                f"The content field in the Message object at messages.{index} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        for block in content:
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _BLOCKS:
                return _invalid(
                    f"messages.{index}.content: each block must hold exactly one known member."
                )
            if "text" in block and (
                not isinstance(block["text"], str) or not block["text"].strip()
            ):
                return _invalid(
                    "The text field in the ContentBlock object is blank. Add text to the text "
                    "field, and try again."
                )
            if "toolUse" in block:
                use = block["toolUse"]
                if role != "assistant" or not _TOOL_ID.fullmatch(str(use.get("toolUseId"))):
                    return _invalid(
                        f"messages.{index}: toolUse must be in an assistant turn, with a valid "
                        "toolUseId."
                    )
                if not isinstance(use.get("input"), dict):
                    return _invalid(f"messages.{index}: toolUse.input must be an object.")
                used.add(use["toolUseId"])
            if "toolResult" in block:
                result = block["toolResult"]
                if result.get("toolUseId") not in used:
                    return _invalid(
                        "The toolUseId in a toolResult block does not match any toolUse block "
                        "in the previous turn."
                    )
                if not tools:
                    return _invalid(
                        "The toolConfig field must be defined when using toolUse and "
                        "toolResult content blocks."
                    )
            if "image" in block:
                image = block["image"]
                if image.get("format") not in ("png", "jpeg", "gif", "webp") or not isinstance(
                    (image.get("source") or {}).get("bytes"), str
                ):
                    return _invalid(f"messages.{index}: image needs a format and source.bytes.")
    return None


def converse_view(body: dict[str, Any]) -> tuple[int, str | None, list[str]]:
    """(tool results in the history, the forced tool, the stop sequences) of a request."""
    results = sum(
        1
        for m in body.get("messages") or []
        if isinstance(m, dict)
        for block in m.get("content") or []
        if isinstance(block, dict) and "toolResult" in block
    )
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    forced = choice.get("tool", {}).get("name") if isinstance(choice, dict) else None
    stops = (body.get("inferenceConfig") or {}).get("stopSequences") or []
    return results, forced, [s for s in stops if isinstance(s, str)]


def converse_chars(body: dict[str, Any]) -> int:
    """The prompt's length in characters (for usage and context limits)."""
    total = sum(
        len(str(b.get("text", ""))) for b in body.get("system") or [] if isinstance(b, dict)
    )
    for message in body.get("messages") or []:
        for block in message.get("content") or [] if isinstance(message, dict) else []:
            if isinstance(block, dict):
                total += len(str(block.get("text", "")))
                if "toolResult" in block:
                    total += len(json.dumps(block["toolResult"]))
    return total


def vertex_error(
    kind: str, retry_after: float
) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """A failure Vertex AI's front end answers itself (Google's error shape), or ``None``
    for one the model's own wire answers."""
    if kind == "invalid_key":
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential."
        )
        return 401, {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}}, {}
    if kind == "rate_limit":
        message = (
            "Quota exceeded for "
            "aiplatform.googleapis.com/online_prediction_requests_per_base_model "
            "with base model: simulated. Please submit a quota increase request."
        )
        return 429, {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}, {}
    return None


def guardrail_frames(usage: tuple[int, int]) -> Iterator[bytes]:
    """A stream a guardrail stopped: messageStop ``guardrail_intervened``, then metadata."""
    prompt = usage[0]
    yield _event("messageStop", {"stopReason": "guardrail_intervened"})
    yield _event(
        "metadata", {"usage": {"inputTokens": prompt, "outputTokens": 0, "totalTokens": prompt}}
    )


def google_error(code: int, message: str) -> dict[str, Any]:
    """Google's error body."""
    status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}.get(
        code, "UNKNOWN"
    )
    return {"error": {"code": code, "message": message, "status": status}}
