"""Turning an HTTP error reply (or an exception carrying one) into the right ProviderError.

Pure functions over status, headers and body: the adapters, ``ResilientClient.call`` and
``ResilientTransport`` all classify through here, so every path agrees.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from operator import itemgetter
from typing import Any, cast

from failover.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "AWS_ERRORS",
    "UNUSUAL_HEADROOM",
    "Headroom",
    "classify_aws_error",
    "classify_exception",
    "classify_http_error",
    "headroom_counts",
    "parse_duration",
    "rate_limit_headroom",
    "read_headroom_in_full",
    "retry_after_from_headers",
    "should_retry_header",
]

_CONTEXT_PHRASES = (
    "maximum context length",
    "context length exceeded",
    "context_length_exceeded",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "exceeds the available context size",
    "input tokens exceed the configured limit",
    "context window",
    "model_context_window_exceeded",
)
_QUOTA_MARKERS = (
    "insufficient_quota",
    "billing",
    "spend_limit",
    "spend limit",
    "credit balance",
    "out of credits",
    "perday",
    "per day",
    "quota exceeded for metric",
)
_CONTENT_MARKERS = ("content_policy_violation", "invalid_prompt", "content_filter", "safety")
_AUTH_MARKERS = ("api key not valid", "invalid api key", "incorrect api key", "invalid x-api-key")
_MODEL_MARKERS = ("model_not_found", "does not exist", "unknown model", "no such model")


def _finder(markers: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """A search for any of ``markers`` in a text (a match where ``marker in text`` holds for
    one), done in C in one pass rather than one ``in`` per marker."""
    return re.compile("|".join(map(re.escape, markers))).search


_HAS_CONTEXT = _finder(_CONTEXT_PHRASES)
_HAS_QUOTA = _finder(_QUOTA_MARKERS)
_HAS_CONTENT = _finder(_CONTENT_MARKERS)
_HAS_AUTH = _finder(_AUTH_MARKERS)
_HAS_MODEL = _finder(_MODEL_MARKERS)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_first = itemgetter(0)
_second = itemgetter(1)


def parse_duration(text: str) -> float | None:
    """Parse a Go-style duration (``6m0s``, ``1.5s``, ``12ms``) or Gemini's ``"53s"``."""
    text = text.strip()
    if not text:
        return None
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(value + unit for value, unit in parts) != text:
        try:
            return _finite(float(text))
        except ValueError:
            return None
    return _finite(sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def _seconds_until_date(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            from datetime import datetime

            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError):
            return None
    if when.tzinfo is None:
        return None
    try:
        return _finite(max(0.0, when.timestamp() - time.time()))
    except (OverflowError, ValueError, OSError):
        return None


def _case_insensitive(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Headers whose lookups ignore case: httpx's and aiohttp's already do; a dict is lowered."""
    if isinstance(headers, dict):
        return {key.lower(): value for key, value in headers.items()}
    return headers


def retry_after_from_headers(
    headers: Mapping[str, str], body: Any = None, *, use_reset: bool = False
) -> float | None:
    """The wait the provider asked for, in seconds, or ``None``.

    In order: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date), Gemini's
    ``RetryInfo.retryDelay`` in ``body``, then (with ``use_reset``) the rate-limit reset
    headers of OpenAI/Groq and Anthropic.
    """
    headers = _case_insensitive(headers)
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            if (seconds := _finite(float(value) / 1000)) is not None:
                return seconds
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            if (seconds := _finite(float(value))) is not None:
                return seconds
        except ValueError:
            if (seconds := _seconds_until_date(value)) is not None:
                return seconds
    if (delay := _gemini_retry_delay(body)) is not None:
        return delay
    if use_reset:
        return _reset_of_spent_budget(headers)
    return None


@dataclass(frozen=True, slots=True)
class Headroom:
    """What a reply's rate-limit headers say is left of the key's budgets.

    Attributes:
        requests_remaining: Requests left in the current window, when reported.
        tokens_remaining: Tokens left in the current window, when reported.
        spent_for: Seconds until a spent budget (0 remaining) resets; ``None`` if none is.
    """

    requests_remaining: int | None
    tokens_remaining: int | None
    spent_for: float | None


# (remaining header, reset header) for requests, then tokens: OpenAI/Groq, then Anthropic.
_BUDGETS = (
    (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ),
    (
        ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
        ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ),
)


HeaderItems = list[tuple[bytes, bytes, bytes]]
"""httpx's and httpx2's own items of a ``Headers``: (name as sent, name lowered, value)."""


def header_items(headers: Any) -> HeaderItems | None:
    """The list a ``Headers`` of httpx or httpx2 keeps its items in (both keep one, of
    (name as sent, name lowered, value) bytes), to read or change at C speed rather than
    through methods that loop in Python over every header; ``None`` for headers of
    another make (their public methods are used then)."""
    items = getattr(headers, "_list", None)
    return items if type(items) is list else None


def _httpx_rate_limits(headers: Mapping[str, str], items: HeaderItems) -> Mapping[str, str] | None:
    """The rate-limit headers of an httpx.Headers by lowercase name, or ``None`` when it
    has none, read from its ``items`` (:func:`header_items`: names lowered already): its
    names in one pass first, since each of its lookups scans every header. (The ones naming
    a rate limit are picked by a comprehension: ``compress`` over ``bytes.__contains__``
    runs fewer opcodes but costs more CPU, each call going through the slot wrapper. They
    are found with ``bytes.find``: ``in`` with a bytes needle first tries it as an integer,
    raising and clearing a TypeError each time.)"""
    try:
        if b" ".join(map(_second, items)).find(b"ratelimit") < 0:
            return None
        picked = [item for item in items if item[1].find(b"ratelimit") >= 0]
        found: dict[str, str] = {}
        for _, name, value in picked:
            key, text = name.decode("ascii"), value.decode("ascii")
            found[key] = f"{found[key]}, {text}" if key in found else text  # as httpx joins
    except (TypeError, ValueError):  # not ASCII (UnicodeDecodeError): httpx decodes it
        return headers
    return found


_REMAINING = tuple((requests[0], tokens[0]) for requests, tokens in _BUDGETS)
"""The remaining-count headers of each family, all a usual reply's headroom is read from."""
_REMAINING_BYTES = tuple((r.encode(), t.encode()) for r, t in _REMAINING)
_REMAINING_NAMES = frozenset(name for names in _REMAINING_BYTES for name in names)
UNUSUAL_HEADROOM: tuple[None, None] = (None, None)
"""What :func:`headroom_counts` gives for a reply :func:`rate_limit_headroom` must read."""


def headroom_counts(headers: Mapping[str, str]) -> tuple[int | None, int | None] | None:
    """The (requests, tokens) left that a usual reply's rate-limit headers report, read from
    the remaining counts alone; ``None`` when it reports none (as :func:`rate_limit_headroom`).

    :data:`UNUSUAL_HEADROOM` (the very object) for a reply to read with
    :func:`read_headroom_in_full`: a spent budget (0 left: its reset is read), a count
    ``int`` does not take as it is (bytes that are not ASCII, text it refuses), a name httpx
    holds twice.
    """
    if isinstance(headers, dict):  # its names read in one pass, in C
        try:
            joined = " ".join(headers)
        except TypeError:  # names that are not text
            values: Mapping[Any, Any] = _case_insensitive(headers)
        else:
            lowered = joined.lower()
            if "ratelimit" not in lowered:  # none names a rate limit (most replies)
                return None
            values = headers if lowered == joined else _case_insensitive(headers)
        names: tuple[tuple[Any, Any], ...] = _REMAINING
    elif (items := header_items(headers)) is not None:  # an httpx.Headers: names lowered
        found: dict[bytes, bytes] = {}
        for _, name, value in items:
            if name in _REMAINING_NAMES:
                if name in found:  # httpx would join the two
                    return UNUSUAL_HEADROOM
                found[name] = value
        values, names = found, _REMAINING_BYTES
    elif type(getattr(headers, "raw", None)) is list:  # httpx's raw pairs alone
        return UNUSUAL_HEADROOM
    else:  # aiohttp's, pyreqwest's: their lookups ignore case and are done in C
        values, names = headers, _REMAINING
    for requests_name, tokens_name in names:
        requests = values.get(requests_name)
        tokens = values.get(tokens_name)
        if requests is None and tokens is None:
            continue
        try:
            requests_left = None if requests is None else int(requests)
            tokens_left = None if tokens is None else int(tokens)
        except (TypeError, ValueError):
            return UNUSUAL_HEADROOM
        if requests_left == 0 or tokens_left == 0:
            return UNUSUAL_HEADROOM
        return requests_left, tokens_left
    return None


def rate_limit_headroom(headers: Mapping[str, str]) -> Headroom | None:
    """Read a reply's rate-limit headers; ``None`` when it has none (most replies)."""
    counts = headroom_counts(headers)
    if counts is None:
        return None
    if counts is not UNUSUAL_HEADROOM:
        return Headroom(counts[0], counts[1], None)
    return read_headroom_in_full(headers)


def read_headroom_in_full(headers: Mapping[str, str]) -> Headroom | None:
    """:func:`rate_limit_headroom` of any reply, every header it may need read in full."""
    if isinstance(headers, dict):  # (none naming a rate limit: no budget below is found)
        headers = _case_insensitive(headers)
    elif (items := header_items(headers)) is not None or type(
        raw := getattr(headers, "raw", None)
    ) is list:  # an httpx.Headers
        if items is None:  # its raw pairs alone: as its items would hold them
            pairs = cast("list[tuple[bytes, bytes]]", raw)
            items = [(name, name.lower(), value) for name, value in pairs]
        found = _httpx_rate_limits(headers, items)
        if found is None:
            return None
        headers = found
    # else aiohttp's, pyreqwest's: their lookups ignore case and are done in C
    for requests, tokens in _BUDGETS:
        if requests[0] not in headers and tokens[0] not in headers:
            continue
        requests_left = _int_header(headers, requests[0])
        tokens_left = _int_header(headers, tokens[0])
        if requests_left is None and tokens_left is None:
            continue
        spent = [
            _reset_seconds(headers.get(reset) or "")
            for left, (_, reset) in ((requests_left, requests), (tokens_left, tokens))
            if left == 0
        ]
        return Headroom(requests_left, tokens_left, max(spent) if spent else None)
    return None


_RESET_HEADERS = (  # (remaining header, reset header) of every budget a 429 may be about
    *(pair for budgets in _BUDGETS for pair in budgets),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
)


def _reset_of_spent_budget(headers: Mapping[str, str]) -> float | None:
    """The wait until the budget a 429 is about resets.

    That is the reset of the budget whose remaining count is 0 (the longest, when several
    are spent); when none says 0, the soonest reset, since any of them may be the one.
    """
    spent: list[float] = []
    others: list[float] = []
    for remaining_header, reset_header in _RESET_HEADERS:
        value = headers.get(reset_header)
        if value is None:
            continue
        seconds = _reset_wait(value)
        if seconds is None:
            continue
        (spent if _int_header(headers, remaining_header) == 0 else others).append(seconds)
    if spent:
        return max(spent)
    return min(others) if others else None


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """The provider's ``x-should-retry`` verdict (OpenAI, Anthropic), or ``None``."""
    value = _case_insensitive(headers).get("x-should-retry")
    if value is None:
        return None
    value = value.strip().lower()
    return True if value == "true" else False if value == "false" else None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _reset_wait(value: str) -> float | None:
    """A reset header's wait: a Go duration, seconds or an RFC 3339 time; None if unreadable."""
    return parse_duration(value) or _seconds_until_date(value)


def _reset_seconds(value: str) -> float:
    """A reset header's wait, 1 s if unreadable."""
    return _reset_wait(value) or 1.0


def _gemini_retry_delay(body: Any) -> float | None:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            return parse_duration(str(detail.get("retryDelay", "")))
    return None


def _decode(body: bytes | str | Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _describe(body: Any) -> tuple[str, str]:
    """Return (message, searchable text of codes and types) from any error body shape."""
    if isinstance(body, str):
        return body.strip()[:500] or "(empty body)", ""
    if not isinstance(body, dict):
        return "(no error body)", ""
    error = body.get("error", body)
    if isinstance(error, str):
        return error, ""
    if not isinstance(error, dict):
        return json.dumps(body)[:500], ""
    message = str(error.get("message") or error.get("detail") or body.get("message") or "")
    codes = [
        str(value)
        for value in (
            error.get("code"),
            error.get("type"),
            error.get("status"),
            body.get("code"),
            (error.get("details") or {}).get("error_code")
            if isinstance(error.get("details"), dict)
            else None,
        )
        if value is not None
    ]
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict):
            violations = detail.get("violations")
            for violation in violations if isinstance(violations, list) else []:
                if isinstance(violation, dict):
                    codes.append(str(violation.get("quotaId", "")))
            codes.append(str(detail.get("reason", "")))
    return message or "(no message)", " ".join(codes)


def _code(body: Any) -> str | None:
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        for key in ("code", "type", "status"):
            if isinstance(error.get(key), str):
                return str(error[key])
    return None


def classify_http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | Any,
    *,
    provider: str | None = None,
    model: str | None = None,
) -> ProviderError:
    """Return the ProviderError an HTTP error reply stands for (never raises on odd bodies)."""
    if 300 <= status < 400:
        return InvalidRequestError(
            f"redirected to {headers.get('location', '(no location)')!r} and not followed: a key "
            "never leaves its profile's base URL; check that base_url",
            provider=provider,
            model=model,
            status=status,
        )
    data = _decode(body)
    message, codes = _describe(data)
    text = f"{message} {codes}".lower()
    error_type: type[ProviderError]
    use_reset = False
    if _HAS_CONTEXT(text):
        error_type = ContextWindowExceededError
    elif status == 402 or _HAS_QUOTA(text):
        error_type = QuotaExceededError
    elif status == 429 or "rate_limit" in text or "resource_exhausted" in text:
        error_type, use_reset = RateLimitError, True
    elif status in (401, 403) or _HAS_AUTH(text):
        error_type = AuthenticationError
    elif status == 404 or (status in (400, 422) and _HAS_MODEL(text)):
        error_type = ModelNotFoundError
    elif _HAS_CONTENT(text):
        error_type = ContentFilteredError
    elif status in (529, 503) or "overloaded" in text or "unavailable" in text:
        error_type = OverloadedError
    elif status in (408, 504):
        error_type = ProviderTimeoutError
    elif status == 413:
        error_type = ContextWindowExceededError
    elif status >= 500 or status == 409:
        error_type = ServerError
    else:
        error_type = InvalidRequestError
    return error_type(
        message,
        provider=provider,
        model=model,
        status=status,
        retry_after=retry_after_from_headers(headers, data, use_reset=use_reset),
        code=_code(data),
        should_retry=should_retry_header(headers),
    )


AWS_ERRORS: Mapping[str, type[ProviderError]] = {
    "ThrottlingException": RateLimitError,
    "TooManyRequestsException": RateLimitError,
    # "You can resubmit your request later" (HTTP 400): a per-minute service quota, not
    # spent credit, so a rate limit's short cooldown rather than a quota's long disable.
    "ServiceQuotaExceededException": RateLimitError,
    "ServiceUnavailableException": OverloadedError,
    "ModelNotReadyException": OverloadedError,
    "InternalServerException": ServerError,
    "ModelErrorException": ServerError,
    "ModelStreamErrorException": ServerError,
    "ModelTimeoutException": ProviderTimeoutError,
    # Bedrock's usual meaning: model access is not granted to the account (per model, per
    # region): skip the model as a 404 would; the credentials serve other models.
    "AccessDeniedException": ModelNotFoundError,
    "UnrecognizedClientException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "IncompleteSignatureException": AuthenticationError,
    # Temporary credentials ran out: the next attempt signs with refreshed ones, so the
    # profile cools briefly (see _EXPIRED_TOKEN_COOLDOWN) and the key rotates, no disable.
    "ExpiredTokenException": RateLimitError,
    "ResourceNotFoundException": ModelNotFoundError,
    "ValidationException": InvalidRequestError,
}
"""Amazon Bedrock's exception names -> the error (and so the action) other providers'
equivalents get: throttling and a service quota rotate the key with a short cooldown,
unavailable and not-ready go sideways, access denied (model access not granted) skips the
model, an expired session token cools the profile briefly until its refresh, bad
credentials or signatures disable the key, a validation error raises (or, about the
context window, skips to a larger model)."""
_EXPIRED_TOKEN_COOLDOWN = 1.0
"""Seconds an ``ExpiredTokenException`` cools its profile: time to refresh credentials."""
_AWS_CONTEXT_PHRASES = ("input is too long", "too many input tokens", *_CONTEXT_PHRASES)


def classify_aws_error(
    status: int,
    name: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str | None = None,
    model: str | None = None,
) -> ProviderError:
    """The ProviderError an AWS (Bedrock) error stands for, from its exception name (as in
    ``x-amzn-ErrorType``, botocore's ``ClientError`` or a stream's exception frame)."""
    name = (name or "").split(":")[0].strip()
    name = name[:1].upper() + name[1:]
    found = AWS_ERRORS.get(name)
    if found is None:
        return classify_http_error(
            status, dict(headers or {}), {"message": message}, provider=provider, model=model
        )
    if found is InvalidRequestError and any(p in message.lower() for p in _AWS_CONTEXT_PHRASES):
        found = ContextWindowExceededError
    retry_after = retry_after_from_headers(headers) if headers else None
    if name == "ExpiredTokenException" and retry_after is None:
        retry_after = _EXPIRED_TOKEN_COOLDOWN
    return found(
        message or name,
        provider=provider,
        model=model,
        status=status,
        code=name,
        retry_after=retry_after,
    )


def classify_exception(
    exc: BaseException, *, provider: str | None = None, model: str | None = None
) -> ProviderError | None:
    """Classify an exception from any SDK or HTTP library, or return ``None`` if it is not one.

    Reads ``status_code``/``status``/``code`` and ``response`` (status, headers, body) or
    ``body`` from whatever the exception carries; recognises timeouts and connection
    errors by their class names (``APITimeoutError``, ``ConnectError``, ...).
    """
    if isinstance(exc, ProviderError):
        return exc
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):  # botocore's
        meta = response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        error = classify_aws_error(
            status if isinstance(status, int) else 400,
            str(response["Error"].get("Code") or ""),
            str(response["Error"].get("Message") or ""),
            meta.get("HTTPHeaders") if isinstance(meta, dict) else None,
            provider=provider,
            model=model,
        )
        error.__cause__ = exc
        return error
    status = _status_of(exc) or _status_of(response)
    if status is not None and status >= 400:
        headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
        body = getattr(exc, "body", None)
        details = getattr(exc, "details", None)
        if body is None and isinstance(details, (dict, list)):
            body = details  # google-genai's APIError
        if body is None and response is not None:
            body = _response_body(response)
        if body is None:
            body = getattr(exc, "message", None) or str(exc)
        error = classify_http_error(
            status, dict(headers.items()), body, provider=provider, model=model
        )
        error.__cause__ = exc
        return error
    names = " ".join(cls.__name__ for cls in type(exc).__mro__).lower()
    if isinstance(exc, TimeoutError) or "timeout" in names:
        return ProviderTimeoutError(str(exc) or type(exc).__name__, provider=provider, model=model)
    if isinstance(exc, ConnectionError) or any(
        word in names
        for word in (
            "connecterror",
            "connectionerror",
            "networkerror",
            "remoteprotocolerror",
            "readerror",
        )
    ):
        return ProviderConnectionError(
            str(exc) or type(exc).__name__, provider=provider, model=model
        )
    return None


def _status_of(obj: Any) -> int | None:
    for attribute in ("status_code", "status", "code"):
        value = getattr(obj, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
            return value
    return None


def _response_body(response: Any) -> Any:
    try:
        content = response.content
    except Exception:  # a streamed response that was never read
        return None
    return content if isinstance(content, (bytes, str)) else None
