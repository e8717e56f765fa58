"""Failures as each SDK's provider reports them: status, headers and body in its own shape.

So the SDK raises its own exception (``openai.RateLimitError``,
``anthropic.OverloadedError``, ``google.genai.errors.ServerError``, ...) as if its provider
had answered, with ``retry-after`` (and ``retry-after-ms``) when the wait is known. The
status follows the error's kind on that wire (Anthropic's overload is 529, OpenAI's and
Gemini's 503); when the library found no server at all it is never 500: the last
provider error's, else 503 with an overloaded body.
"""

from __future__ import annotations

import math
from typing import Any

from failover.errors import (
    AllAttemptsFailed,
    FailoverError,
    InvalidRequestError,
    OverloadedError,
    PoolExhaustedError,
    ProviderError,
    StreamInterrupted,
    UnsupportedParameterError,
)
from failover.gateway.framing import dumps
from failover.gateway.types import Wire, WireResponse

__all__ = ["encode_error", "error_payload", "provider_error_of"]

_NO_SERVER = "Overloaded: no provider could serve the request; try again later."

# kind -> (status, OpenAI type, OpenAI code); status None keeps the error's own 4xx/5xx
_OPENAI: dict[str, tuple[int | None, str, str | None]] = {
    "rate_limit": (429, "requests", "rate_limit_exceeded"),
    "quota": (429, "insufficient_quota", "insufficient_quota"),
    "auth": (401, "invalid_request_error", "invalid_api_key"),
    "overloaded": (503, "server_error", None),
    "server": (None, "server_error", None),
    "timeout": (504, "server_error", "timeout"),
    "connection": (502, "server_error", None),
    "malformed": (502, "server_error", None),
    "model_not_found": (404, "invalid_request_error", "model_not_found"),
    "context_window": (400, "invalid_request_error", "context_length_exceeded"),
    "content_filter": (400, "invalid_request_error", "content_policy_violation"),
    "invalid_request": (None, "invalid_request_error", None),
    "unsupported": (400, "invalid_request_error", "unsupported_parameter"),
}
# kind -> (status, Anthropic error type)
_ANTHROPIC: dict[str, tuple[int | None, str]] = {
    "rate_limit": (429, "rate_limit_error"),
    "quota": (402, "billing_error"),
    "auth": (401, "authentication_error"),
    "overloaded": (529, "overloaded_error"),
    "server": (None, "api_error"),
    "timeout": (504, "timeout_error"),
    "connection": (502, "api_error"),
    "malformed": (502, "api_error"),
    "model_not_found": (404, "not_found_error"),
    "context_window": (400, "invalid_request_error"),
    "content_filter": (400, "invalid_request_error"),
    "invalid_request": (None, "invalid_request_error"),
    "unsupported": (400, "invalid_request_error"),
}
# kind -> (status, google.rpc status)
_GEMINI: dict[str, tuple[int | None, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED"),
    "quota": (429, "RESOURCE_EXHAUSTED"),
    "auth": (401, "UNAUTHENTICATED"),
    "overloaded": (503, "UNAVAILABLE"),
    "server": (None, "INTERNAL"),
    "timeout": (504, "DEADLINE_EXCEEDED"),
    "connection": (502, "INTERNAL"),
    "malformed": (502, "INTERNAL"),
    "model_not_found": (404, "NOT_FOUND"),
    "context_window": (400, "INVALID_ARGUMENT"),
    "content_filter": (400, "INVALID_ARGUMENT"),
    "invalid_request": (None, "INVALID_ARGUMENT"),
    "unsupported": (400, "INVALID_ARGUMENT"),
}
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 422: "INVALID_ARGUMENT"}
_ANTHROPIC_STATUS = {403: "permission_error", 413: "request_too_large"}


def provider_error_of(error: BaseException | None) -> ProviderError | None:
    """The provider error a failure stands for: itself, or the last one an
    :class:`AllAttemptsFailed` collected (a provider's answer before a model skipped as
    unsupported); ``None`` when no provider answered."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, AllAttemptsFailed):
        errors = error.errors
        answered = [e for e in errors if not isinstance(e, UnsupportedParameterError)]
        return (answered or list(errors))[-1] if errors else None
    if isinstance(error, StreamInterrupted):
        return error.error
    if isinstance(error, FailoverError) and not isinstance(error, PoolExhaustedError):
        return InvalidRequestError(str(error), status=400)
    return None


def _status(error: ProviderError, table_status: int | None) -> int:
    if table_status is not None:
        if error.kind == "auth" and error.status == 403:
            return 403
        return table_status
    status = error.status or 0
    if error.kind == "server":
        return status if 500 <= status < 600 else 500
    return status if 400 <= status < 500 else 400


def error_payload(
    wire: Wire, error: BaseException | None, note: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body ``wire``'s provider would answer ``error`` with.

    ``None``, or a failure no provider answered (every key cooling, say), is a 503 with an
    overloaded body. A ``note`` is added to the message, in brackets.
    """
    found = provider_error_of(error)
    if found is None:
        found = OverloadedError(_NO_SERVER, status=503)
        fixed: int | None = 503
    else:
        fixed = None
    kind = found.kind
    message = found.message or kind
    if note:
        message = f"{message} ({note})"
    if wire in ("openai", "responses"):
        status, kind_type, code = _OPENAI.get(kind, _OPENAI["server"])
        status = fixed or _status(found, status)
        param = found.field if isinstance(found, UnsupportedParameterError) else None
        if kind == "context_window":
            param = "messages" if wire == "openai" else "input"
        body = {"message": message, "type": kind_type, "param": param, "code": code or found.code}
        return status, {"error": body}
    if wire == "anthropic":
        status, kind_type = _ANTHROPIC.get(kind, _ANTHROPIC["server"])
        status = fixed or _status(found, status)
        kind_type = _ANTHROPIC_STATUS.get(status, kind_type)
        return status, {"type": "error", "error": {"type": kind_type, "message": message}}
    status, state = _GEMINI.get(kind, _GEMINI["server"])
    status = fixed or _status(found, status)
    if kind in ("auth", "invalid_request"):
        state = _GEMINI_STATUS.get(status, state)
    error_body: dict[str, Any] = {"code": status, "message": message, "status": state}
    details = _gemini_details(found, error)
    if details:
        error_body["details"] = details
    return status, {"error": error_body}


def _gemini_details(found: ProviderError, error: BaseException | None) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    if found.kind == "quota":
        violation = {"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}
        details.append(
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}
        )
    wait = _retry_after(found, error)
    if wait is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:g}s"}
        )
    return details


def _retry_after(found: ProviderError, error: BaseException | None) -> float | None:
    wait = found.retry_after
    if isinstance(error, AllAttemptsFailed) and error.retry_after is not None:
        wait = error.retry_after if wait is None else max(wait, error.retry_after)
    if wait is None or not math.isfinite(wait) or wait < 0:
        return None
    return wait


def encode_error(
    wire: Wire, error: BaseException | None, *, note: str | None = None
) -> WireResponse:
    """The whole error reply, headers included, that ``wire``'s SDK reads as its own.

    Args:
        wire: The SDK's wire format.
        error: What failed: a ``ProviderError``, an ``AllAttemptsFailed`` (its last
            provider error answers), any other ``FailoverError`` (a 400), or ``None`` for
            no server found at all (503, overloaded).
        note: Added to the message, in brackets (what else was tried, say).

    Returns:
        The status, headers (``content-type``; ``retry-after`` in whole seconds and
        ``retry-after-ms`` when the wait is known; ``x-should-retry`` when the provider
        said) and body.
    """
    status, body = error_payload(wire, error, note)
    headers = {"content-type": "application/json"}
    found = provider_error_of(error)
    wait = _retry_after(found, error) if found is not None else None
    if wait is None and found is None and isinstance(error, AllAttemptsFailed):
        wait = error.retry_after
    if wait is not None:
        headers["retry-after"] = str(max(0, math.ceil(wait)))
        if wire != "gemini":
            headers["retry-after-ms"] = str(max(0, round(wait * 1000)))
    if found is not None and found.should_retry is not None:
        headers["x-should-retry"] = "true" if found.should_retry else "false"
    return WireResponse(status, headers, dumps(body))
