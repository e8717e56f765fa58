"""The exception tree of failover.

Every exception the library raises derives from ``FailoverError``::

    FailoverError
    ├── ConfigError (also ValueError)            bad configuration, raised at construction
    ├── FallbackChainError
    │   ├── InvalidModelId (also ValueError)     an id that is not "provider/model"
    │   ├── ModelNotFound (also LookupError)     an id the catalog does not know
    │   ├── DuplicateModel (also ValueError)     the same model twice in one chain
    │   └── ModelNotInChain (also LookupError)   next()/from_*() about a model not in the chain
    ├── ProviderError                            one failed call to a provider
    │   ├── RateLimitError                       429: too many requests
    │   ├── QuotaExceededError                   out of credit, spend cap, per-day quota
    │   ├── AuthenticationError                  401/403: the key is invalid or not allowed
    │   ├── OverloadedError                      529/503: the provider is overloaded
    │   ├── ServerError                          other 5xx
    │   ├── ProviderTimeoutError                 no answer in time
    │   ├── ProviderConnectionError              could not connect, or the connection dropped
    │   ├── ModelNotFoundError                   404: the provider does not serve the model
    │   ├── ContextWindowExceededError           the prompt does not fit the model
    │   ├── ContentFilteredError                 blocked by a content filter, or refused
    │   ├── InvalidRequestError                  other 400/422: the request itself is wrong
    │   │   └── UnsupportedParameterError        no model in the chain can take a field
    │   ├── MalformedResponseError               an unparsable reply, or a truncated stream
    │   ├── ReplyRejected                        a 200 reply that accept= (or its schema) refused
    │   └── Refused                              not sent: admission said no (no call made)
    │       ├── OverBudget                       the attempt's worst case would overrun a Budget
    │       ├── OverTokenRate                    the key's tokens-per-minute window has no room
    │       └── AtCapacity                       the key or deployment has max_in_flight running
    ├── AllAttemptsFailed                        every model and key was tried; carries attempts
    │   ├── NoProfileAvailable                   no key could be tried (all cooling or disabled)
    │   └── BudgetExceededError                  nothing within budget could serve the request
    ├── StreamInterrupted                        a stream failed after its first chunk
    └── PoolExhaustedError                       this client's own HTTP pool had no connection

One warning class, not an exception (a ``UserWarning``, filterable with ``warnings``)::

    UnknownModelWarning                          a model id the catalog does not know,
                                                 accepted unpriced (``strict=True`` refuses)

No ``str`` or ``repr`` of these errors contains an API key: provider messages are scrubbed
when the error is built.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from failover._secrets import scrub

if TYPE_CHECKING:
    from failover.attempts import Attempt

__all__ = [
    "AllAttemptsFailed",
    "AtCapacity",
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "DuplicateModel",
    "FailoverError",
    "FallbackChainError",
    "InvalidModelId",
    "InvalidRequestError",
    "MalformedResponseError",
    "ModelNotFound",
    "ModelNotFoundError",
    "ModelNotInChain",
    "NoProfileAvailable",
    "OverBudget",
    "OverTokenRate",
    "OverloadedError",
    "PoolExhaustedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "Refused",
    "ReplyRejected",
    "ServerError",
    "StreamInterrupted",
    "UnknownModelWarning",
    "UnsupportedParameterError",
    "did_you_mean",
]


class FailoverError(Exception):
    """Base class of every exception raised by failover."""


class ConfigError(FailoverError, ValueError):
    """A configuration value is invalid; the message names the field."""


class FallbackChainError(FailoverError):
    """A fallback chain could not be built or queried."""


class InvalidModelId(FallbackChainError, ValueError):
    """A model id is not of the form ``provider/model``."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"invalid model id {model_id!r}: expected 'provider/model'")
        self.model_id = model_id


class ModelNotFound(FallbackChainError, LookupError):
    """The model catalog has no entry for a ``provider/model`` id.

    Raised for an unknown provider, and, when strictness is asked for (``strict=True``,
    ``strict_models=True``), for a model of a known provider the catalog does not know.
    """

    def __init__(self, model_id: str, hint: str = "") -> None:
        message = f"model not found in the catalog: {model_id!r}"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.model_id = model_id


class UnknownModelWarning(UserWarning):
    """A model id of a known provider that the catalog does not know (e.g. one released
    yesterday) was accepted: its price and context window are unknown, its cost ``None``.

    Register it (``catalog.register(ModelEntry(...))``) to price it, silence this warning
    with ``warnings.filterwarnings("ignore", category=UnknownModelWarning)``, or refuse such
    ids with ``strict=True`` (``strict_models=True`` on the client and transport).
    """


class DuplicateModel(FallbackChainError, ValueError):
    """The same model appears twice in one fallback chain."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id!r} appears more than once in the fallback chain")
        self.model_id = model_id


class ModelNotInChain(FallbackChainError, LookupError):
    """A model asked about is not part of the chain."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id!r} is not in the fallback chain")
        self.model_id = model_id


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """A hint for a misspelt ``word``: ``"; did you mean 'x'?"``, or ``""`` when none is close.

    Args:
        word: What was written.
        choices: The names it should have been one of.
        cutoff: How close (0 to 1, as ``difflib.get_close_matches``) a choice must be.
    """
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


class ProviderError(FailoverError):
    """One call to a provider failed.

    Attributes:
        message: The provider's own explanation, with keys scrubbed out.
        provider: The provider's name (``openai``, ``anthropic``, ...), when known.
        model: The model id the call was for, when known.
        profile: The name of the auth profile used, when known.
        status: The HTTP status code, when there was one.
        retry_after: Seconds the provider asked us to wait, when it said.
        code: The provider's machine-readable error code or type, when given.
        should_retry: The provider's ``x-should-retry`` header: ``False`` means do not
            retry this request at this endpoint, ``True`` means do, whatever the status.
    """

    kind: ClassVar[str] = "error"
    attempts: tuple[Attempt, ...] = ()
    """Every attempt of the request, set when the client raises this error to the caller."""
    cause_type: str | None = None
    """The class name of the SDK exception this error was classified from (``call()``); the
    exception itself is not chained, since it may carry the key."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        profile: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.message = scrub(message)
        super().__init__(self.message)
        self.provider = provider
        self.model = model
        self.profile = profile
        self.status = status
        self.retry_after = retry_after
        self.code = scrub(code) if code else code
        self.should_retry = should_retry

    def redact(self, scrubber: Callable[[str], str]) -> None:
        """Pass the message and code through ``scrubber`` (e.g. a ``KeyScrubber``)."""
        self.message = scrubber(self.message)
        if self.code:
            self.code = scrubber(self.code)
        self.args = (self.message,)

    def __str__(self) -> str:
        where = "/".join(part for part in (self.provider, self.model) if part)
        parts = [f"{self.kind}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if where:
            parts.append(where)
        if self.profile:
            parts.append(f"profile {self.profile!r}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class RateLimitError(ProviderError):
    """The provider refused the call because of a rate limit."""

    kind = "rate_limit"


class QuotaExceededError(ProviderError):
    """The key is out of credit, past its spend cap, or out of its daily quota."""

    kind = "quota"


class AuthenticationError(ProviderError):
    """The key is invalid, revoked, or not allowed to do this."""

    kind = "auth"


class OverloadedError(ProviderError):
    """The provider is overloaded and asked us to come back later."""

    kind = "overloaded"


class ServerError(ProviderError):
    """The provider failed with a server error."""

    kind = "server"


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""

    kind = "timeout"


class ProviderConnectionError(ProviderError):
    """The connection to the provider could not be made or was dropped."""

    kind = "connection"


class ModelNotFoundError(ProviderError):
    """The provider does not serve the model asked for."""

    kind = "model_not_found"


class ContextWindowExceededError(ProviderError):
    """The prompt is larger than the model's context window."""

    kind = "context_window"


class ContentFilteredError(ProviderError):
    """The provider blocked the prompt or the answer, or the model refused."""

    kind = "content_filter"


class InvalidRequestError(ProviderError):
    """The request itself is malformed; another model will not fix it."""

    kind = "invalid_request"


class UnsupportedParameterError(InvalidRequestError):
    """No model in the chain can take a field of the request (each was skipped, none called).

    Attributes:
        field: The request field that could not be honoured.
        models: The ``provider/model`` ids that were skipped for it.
    """

    kind = "unsupported"

    def __init__(self, field: str, models: Sequence[str]) -> None:
        super().__init__(f"no model in the chain supports {field!r} (skipped: {', '.join(models)})")
        self.field = field
        self.models = tuple(models)


class MalformedResponseError(ProviderError):
    """The reply could not be parsed, or a stream ended without its terminator."""

    kind = "malformed"


class ReplyRejected(ProviderError):
    """A reply came back but was rejected: ``accept=`` said no, or it does not match the
    request's strict JSON schema. The next model is tried; no key is blamed.

    Attributes:
        completion: The rejected reply (a :class:`~failover.completion.Completion`).
    """

    kind = "rejected"

    def __init__(self, message: str, *, completion: object = None) -> None:
        super().__init__(message)
        self.completion = completion


class Refused(ProviderError):
    """Admission refused a candidate before any call: no key, model or breaker is blamed.

    The request moves on (see each subclass) and the refusal is in its attempt history.
    """

    kind = "refused"
    rotates = True
    """Whether another key of the same model may do (else the model is left)."""


class OverBudget(Refused):
    """The attempt's worst-case cost would overrun a spend budget.

    Attributes:
        budget: The budget (a ``failover.Budget``) that would overrun.
        resets_at: Wall-clock time (epoch seconds) its window ends.
    """

    kind = "over_budget"

    def __init__(self, message: str, *, budget: object, resets_at: float, rotates: bool) -> None:
        super().__init__(message)
        self.budget = budget
        self.resets_at = resets_at
        self.rotates = rotates


class OverTokenRate(Refused):
    """The key's tokens-per-minute window has no room for the request now
    (``retry_after``: seconds until it has)."""

    kind = "over_rate"


class AtCapacity(Refused):
    """The key or the deployment already has ``max_in_flight`` requests running."""

    kind = "at_capacity"


class AllAttemptsFailed(FailoverError):
    """Every model and key that could be tried failed.

    Attributes:
        attempts: Every attempt made, in order, each with its error.
        retry_after: Seconds until the earliest profile recovers, when known.
    """

    def __init__(
        self,
        message: str,
        attempts: Sequence[Attempt] = (),
        *,
        retry_after: float | None = None,
    ) -> None:
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.retry_after = retry_after
        summary = message
        if retry_after is not None:
            summary += f"; try again in {retry_after:.1f}s"
        if self.attempts:
            lines = "\n".join(f"  {attempt.describe()}" for attempt in self.attempts)
            summary += f"\n{lines}"
        super().__init__(summary)

    @property
    def errors(self) -> tuple[ProviderError, ...]:
        """The error of each failed attempt, in order."""
        return tuple(a.error for a in self.attempts if a.error is not None)


class NoProfileAvailable(AllAttemptsFailed):
    """No auth profile could be used: every candidate is cooling down or disabled."""


class BudgetExceededError(AllAttemptsFailed):
    """No candidate within budget could serve the request.

    Attributes:
        budget: The budget (a ``failover.Budget``) that refused it.
        resets_at: Wall-clock time (epoch seconds) that budget's window ends.
        retry_after: Seconds until then.
    """

    def __init__(
        self,
        message: str,
        attempts: Sequence[Attempt],
        *,
        budget: object,
        resets_at: float,
        retry_after: float,
    ) -> None:
        self.budget = budget
        self.resets_at = resets_at
        super().__init__(message, attempts, retry_after=retry_after)


class StreamInterrupted(FailoverError):
    """A stream failed after its first chunk reached the caller.

    Attributes:
        partial_text: The text received before the failure.
        attempts: Every attempt made, the failing one last.
        error: The error that interrupted the stream.
    """

    def __init__(
        self, error: ProviderError, partial_text: str, attempts: Sequence[Attempt]
    ) -> None:
        self.error = error
        self.partial_text = partial_text
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        super().__init__(f"stream interrupted after {len(partial_text)} characters: {error}")


class PoolExhaustedError(FailoverError):
    """This client's own HTTP connection pool had no free connection in time.

    A local condition (often streams left open without ``aclose()``), so no key or model
    is blamed for it.

    Attributes:
        attempts: The request's attempts before it, set when the client raises it.
    """

    attempts: tuple[Attempt, ...] = ()
