"""The engine's decisions as log records, and ``FAILOVER_LOG``.

Every decision goes to the ``failover.engine`` logger: a rotation, a fallback or a retry at
INFO, a cooldown at INFO (WARNING when a key is disabled), a recovery at INFO, a request
that failed after trying everything at WARNING, and each attempt at DEBUG. Records carry
their facts as ``extra`` fields prefixed ``failover_`` (model, profile, outcome, status,
wait, request id, ...): names and numbers only, never a key, a prompt or a request body.

The engine calls these functions only after ``logger.isEnabledFor(level)``, so a program
that does not log them pays one cached check per decision.

``FAILOVER_LOG=info`` (or ``debug``), read once when this module is first imported (the
first import of the client or transport), attaches a stderr handler at that level to the
``failover`` logger, for programs that configure no logging. Without it the library adds
no handler but a NullHandler on ``failover.engine``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.attempts import Attempt
    from failover.errors import ProviderError

__all__ = ["ENV_VAR", "configure_from_environment", "logger", "trail"]

ENV_VAR = "FAILOVER_LOG"
logger = logging.getLogger("failover.engine")
logger.addHandler(logging.NullHandler())  # no "last resort" printing of WARNINGs to stderr

DEBUG, INFO, WARNING = logging.DEBUG, logging.INFO, logging.WARNING
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``FAILOVER_LOG`` attaches (recognised so it is attached once)."""


def configure_from_environment(env: Mapping[str, str] | None = None) -> logging.Handler | None:
    """Attach a stderr handler to the ``failover`` logger if ``FAILOVER_LOG`` asks for one.

    Args:
        env: The environment to read (default: ``os.environ``).

    Returns:
        The handler attached (or already attached), or ``None`` when ``FAILOVER_LOG`` is
        unset, empty or not one of ``debug``, ``info``, ``warning``.
    """
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip().lower()
    level = _LEVELS.get(value)
    if level is None:
        return None
    root = logging.getLogger("failover")
    root.setLevel(level)
    for handler in root.handlers:
        if isinstance(handler, _StderrHandler):
            handler.setLevel(level)
            return handler
    handler = _StderrHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    return handler


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.3g}s"


def _why(error: ProviderError | None) -> str:
    """``rate_limit 429``: an error's kind and HTTP status, no message."""
    if error is None:
        return "no usable key"
    return error.kind if error.status is None else f"{error.kind} {error.status}"


def _log(level: int, message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    extra = {f"failover_{name}": value for name, value in fields.items()}
    logger.log(level, message, *args, extra=extra, stacklevel=3)  # the engine's line


def attempt(request_id: str, number: int, record: Attempt) -> None:
    """One attempt (DEBUG): model, profile, outcome, HTTP status, elapsed seconds.

    No provider error message: a 400 may quote the request back, and logs never carry
    prompt text (the attempt's ``error`` in the history has the message).
    """
    _log(
        DEBUG,
        "%s attempt %d: %s via %s: %s%s in %.3fs",
        (
            request_id,
            number,
            record.model,
            record.profile,
            record.outcome,
            "" if record.status is None else f" {record.status}",
            record.elapsed,
        ),
        {
            "decision": "attempt",
            "request_id": request_id,
            "attempt": number,
            "model": record.model,
            "profile": record.profile,
            "outcome": record.outcome,
            "status": record.status,
            "elapsed": record.elapsed,
            "retry_after": record.retry_after,
        },
    )


def moved(
    kind: str,
    request_id: str,
    from_model: str,
    from_profile: str | None,
    error: ProviderError | None,
    to_model: str,
    to_profile: str | None,
) -> None:
    """A rotation to another key, or a move to another deployment or model (INFO)."""
    decision = {"key": "rotate", "deployment": "deployment", "model": "fallback"}.get(kind, kind)
    if kind == "key":
        text = "%s %s: rotated from key %s to %s after %s"
        args: tuple[Any, ...] = (request_id, from_model, from_profile, to_profile, _why(error))
    else:
        verb = "fell back" if kind == "model" else "moved to another deployment"
        text = "%s %s from %s (via %s) to %s after %s"
        args = (request_id, verb, from_model, from_profile, to_model, _why(error))
    _log(
        INFO,
        text,
        args,
        {
            "decision": decision,
            "request_id": request_id,
            "model": from_model,
            "profile": from_profile,
            "to_model": to_model,
            "to_profile": to_profile,
            "reason": error.kind if error is not None else "no_profile_available",
            "status": error.status if error is not None else None,
        },
    )


def retry(
    request_id: str, model: str, profile: str, number: int, wait: float, error: ProviderError
) -> None:
    """A retry after a backoff of ``wait`` seconds (INFO)."""
    _log(
        INFO,
        "%s retry %d of %s in %.3gs (last: %s via %s)",
        (request_id, number, model, wait, _why(error), profile),
        {
            "decision": "retry",
            "request_id": request_id,
            "model": model,
            "profile": profile,
            "retry": number,
            "wait": wait,
            "reason": error.kind,
            "status": error.status,
        },
    )


def cooldown(
    request_id: str,
    profile: str,
    provider: str,
    status: str,
    duration: float | None,
    reason: str,
    *,
    model: str | None = None,
    http_status: int | None = None,
    capped_from: float | None = None,
) -> None:
    """A key taken out of rotation (INFO; WARNING when disabled for good)."""
    disabled = duration is not None and math.isinf(duration)
    what = f"key {profile} ({provider})"
    if model is not None:
        what += f" rests from {model}"
    else:
        what += " disabled" if disabled else f" {status}"
    if not disabled:
        what += f" for {_seconds(duration)}"
    capped = "" if capped_from is None else f" (asked {capped_from:.3g}s, capped)"
    _log(
        WARNING if disabled else INFO,
        "%s %s: %s%s",
        (request_id, what, reason, capped),
        {
            "decision": "cooldown",
            "request_id": request_id,
            "profile": profile,
            "provider": provider,
            "model": model,
            "cooldown": status,
            "duration": duration,
            "reason": reason,
            "status": http_status,
            "capped_from": capped_from,
        },
    )


def recovered(request_id: str, profile: str, provider: str, model: str) -> None:
    """A key that had been failing succeeded again (INFO)."""
    _log(
        INFO,
        "%s key %s (%s) recovered",
        (request_id, profile, provider),
        {
            "decision": "recovered",
            "request_id": request_id,
            "profile": profile,
            "provider": provider,
            "model": model,
        },
    )


def hedged(
    request_id: str, model: str, profile: str, to_model: str, to_profile: str, after: float
) -> None:
    """A second attempt started beside a slow first one (INFO)."""
    _log(
        INFO,
        "%s hedged: %s via %s silent after %.3gs, also trying %s via %s",
        (request_id, model, profile, after, to_model, to_profile),
        {
            "decision": "hedge",
            "request_id": request_id,
            "model": model,
            "profile": profile,
            "to_model": to_model,
            "to_profile": to_profile,
            "wait": after,
        },
    )


def gave_up(request_id: str, error: ProviderError, attempts: Sequence[Attempt]) -> None:
    """A failure no other key or model can fix, raised at once (INFO)."""
    _log(
        INFO,
        "%s not retried: %s cannot be fixed by another key or model",
        (request_id, _why(error)),
        {
            "decision": "raise",
            "request_id": request_id,
            "model": f"{error.provider}/{error.model}",
            "profile": error.profile,
            "reason": error.kind,
            "status": error.status,
            "attempts": len(attempts),
        },
    )


def exhausted(
    request_id: str, summary: str, attempts: Sequence[Attempt], retry_after: float | None
) -> None:
    """A request that failed after trying everything (WARNING), with its attempts."""
    _log(
        WARNING,
        "%s failed: %s (%s)",
        (request_id, summary, trail(attempts)),
        {
            "decision": "exhausted",
            "request_id": request_id,
            "attempts": len(attempts),
            "wait": retry_after,
            "reason": attempts[-1].outcome if attempts else None,
        },
    )


def skipped(request_id: str, model: str, field_name: str) -> None:
    """A model skipped before any call: it cannot take a field of the request (DEBUG)."""
    _log(
        DEBUG,
        "%s skipped %s: it cannot take %r",
        (request_id, model, field_name),
        {
            "decision": "attempt",
            "request_id": request_id,
            "model": model,
            "outcome": "unsupported",
            "field": field_name,
        },
    )


def _next_step(current: Attempt, following: Attempt | None) -> str:
    """What came of a failed attempt, read from the one after it."""
    if following is None:
        return ""
    if following.model != current.model:
        return " -> fell back"
    if following.profile != current.profile:
        return " -> rotated"
    return " -> retried"


def trail(attempts: Sequence[Attempt]) -> str:
    """``N attempts: model via profile: rate_limit 429 -> rotated; ...; model via p: ok``.

    Names, outcomes and statuses only (no error messages), for logs and the command line.
    """
    parts = []
    for index, record in enumerate(attempts):
        via = "" if record.profile is None else f" via {record.profile}"
        status = "" if record.status is None else f" {record.status}"
        after = ""
        if record.outcome == "unsupported":
            after = " -> skipped"
        elif record.outcome != "ok":
            following = attempts[index + 1] if index + 1 < len(attempts) else None
            after = _next_step(record, following)
        parts.append(f"{record.model}{via}: {record.outcome}{status}{after}")
    count = len(attempts)
    return f"{count} attempt{'' if count == 1 else 's'}: " + "; ".join(parts)


configure_from_environment()
