"""What a caller passes to ResilientClient, checked before anything is sent.

The messages and parameters of ``complete()`` / ``stream()`` become a ``ChatRequest`` (a
near miss of a known parameter is a ConfigError with a did-you-mean); a chain given as ids
becomes a FallbackChain; a request's tokens are estimated for the ``cost`` strategy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from failover.catalog import ModelCatalog, TokenUsage
from failover.chain import FallbackChain
from failover.chat_calls import check_parameter_names
from failover.errors import ConfigError, InvalidModelId
from failover.providers.base import PLAIN_ROLES, ChatRequest, check_json

__all__ = ["chain_from", "chat_request", "estimate_input_tokens", "estimate_usage"]


def chat_request(
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    temperature: float | None,
    params: Mapping[str, Any],
    *,
    stream: bool,
) -> ChatRequest:
    """Check what the caller passed, before anything is sent; return the request."""
    if type(messages) is not list and (  # a list is the common case: no ABC check
        isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence)
    ):
        raise ConfigError(
            f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}"
        )
    if not messages:
        raise ConfigError("messages must not be empty")
    plain: bool | None = not params  # ChatRequest.plain, read here with the messages
    for message in messages:
        if (
            type(message) is dict
            and type(message.get("content")) is str
            and type(role := message.get("role")) is str
        ):  # the common message: nothing more to check
            if plain and (role not in PLAIN_ROLES or len(message) != 2):
                plain = False
            continue
        _check_messages(messages)
        plain = None  # some other shape: ChatRequest.plain reads it when asked
        break
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0
    ):
        raise ConfigError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float))
    ):
        raise ConfigError(f"temperature must be a number, got {temperature!r}")
    if params:
        check_parameter_names(params)
        check_json(params)
    request = ChatRequest(list(messages), max_tokens, temperature, params, stream)
    return request if plain is None else request.known_plain(plain)


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    """Raise ConfigError naming the first message that is not in OpenAI's shape."""
    for index, message in enumerate(messages):
        if (type(message) is not dict and not isinstance(message, Mapping)) or not isinstance(
            message.get("role"), str
        ):
            raise ConfigError(f"messages[{index}] needs a 'role' string, got {message!r:.80}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            raise ConfigError(
                f"messages[{index}].content must be a str or a list of content parts, "
                f"got {type(content).__name__}"
            )
        if isinstance(content, (list, tuple)) and not all(
            isinstance(part, Mapping) for part in content
        ):
            raise ConfigError(f"messages[{index}].content parts must be dicts")


def chain_from(
    chain: FallbackChain | Iterable[Any], catalog: ModelCatalog, *, strict: bool
) -> FallbackChain:
    """The chain the caller gave, or one built from ids; a clear error naming ``chain``."""
    if isinstance(chain, FallbackChain):
        return chain
    if chain is None or isinstance(chain, (str, bytes)) or not isinstance(chain, Iterable):
        raise ConfigError(
            "chain must be a FallbackChain or a list of 'provider/model' ids, "
            f"got {type(chain).__name__}"
        )
    try:
        return FallbackChain.from_ids(
            list(cast(Iterable[Any], chain)), catalog=catalog, strict=strict
        )
    except InvalidModelId as exc:
        raise ConfigError(f"chain: {exc}") from None


def estimate_input_tokens(request: ChatRequest) -> int:
    """A rough count of a request's input tokens (4 characters a token)."""
    characters = sum(len(str(message.get("content") or "")) for message in request.messages)
    return characters // 4 + 1


def estimate_usage(request: ChatRequest) -> TokenUsage:
    """A rough token count of a request (4 characters a token), for the cost strategy."""
    return TokenUsage(estimate_input_tokens(request), output_tokens=request.max_tokens or 500)
