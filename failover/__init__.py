"""failover: keep LLM calls working when providers fail.

Rotates API keys, backs off the way the provider asked, falls over along a chain of
models, and reports every decision to async hooks, without ever leaking a key.

``ResilientClient``, ``SyncResilientClient`` and ``ResilientTransport`` (and their httpx
dependency) are imported on first use, so ``import failover`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.affinity import Pin
from failover.attempts import Attempt
from failover.budgets import Budget
from failover.catalog import ModelCatalog, ModelEntry, TokenUsage, get_model_entry
from failover.chain import FallbackChain
from failover.config import FailoverConfig
from failover.errors import (
    AllAttemptsFailed,
    AtCapacity,
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    DuplicateModel,
    FailoverError,
    FallbackChainError,
    InvalidModelId,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFound,
    ModelNotFoundError,
    ModelNotInChain,
    NoProfileAvailable,
    OverBudget,
    OverloadedError,
    OverTokenRate,
    PoolExhaustedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    Refused,
    ReplyRejected,
    ServerError,
    StreamInterrupted,
    UnknownModelWarning,
    UnsupportedParameterError,
)
from failover.events import (
    CooldownEvent,
    Event,
    ExhaustedEvent,
    FailoverEvent,
    RecoveredEvent,
    RepinnedEvent,
    RetryEvent,
    SuccessEvent,
)
from failover.profiles import (
    AuthProfile,
    FailoverManager,
    FailoverStatus,
    ProfileSnapshot,
    ProfileStatus,
)

if TYPE_CHECKING:
    from failover.client import AttemptContext, Completion, CompletionStream, ResilientClient
    from failover.config_file import load_config
    from failover.embeddings import EmbeddingChain, Embeddings
    from failover.policy import Action, set_testing
    from failover.sync_client import ClientClosedError, SyncCompletionStream, SyncResilientClient
    from failover.transport import ResilientTransport

__version__ = "0.1.0"
"""The installed release (the package's version in its metadata is read from here)."""

__all__ = [
    "Accept",
    "Action",
    "AllAttemptsFailed",
    "AtCapacity",
    "Attempt",
    "AttemptContext",
    "AuthProfile",
    "AuthenticationError",
    "Budget",
    "BudgetExceededError",
    "ClientClosedError",
    "Completion",
    "CompletionStream",
    "ConfigError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "CooldownEvent",
    "DuplicateModel",
    "EmbeddingChain",
    "Embeddings",
    "Event",
    "ExhaustedEvent",
    "FailoverConfig",
    "FailoverError",
    "FailoverEvent",
    "FailoverManager",
    "FailoverStatus",
    "FallbackChain",
    "FallbackChainError",
    "InvalidModelId",
    "InvalidRequestError",
    "MalformedResponseError",
    "ModelCatalog",
    "ModelEntry",
    "ModelNotFound",
    "ModelNotFoundError",
    "ModelNotInChain",
    "NoProfileAvailable",
    "OverBudget",
    "OverTokenRate",
    "OverloadedError",
    "Pin",
    "PoolExhaustedError",
    "ProfileSnapshot",
    "ProfileStatus",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "RecoveredEvent",
    "Refused",
    "RepinnedEvent",
    "ReplyRejected",
    "ResilientClient",
    "ResilientTransport",
    "RetryEvent",
    "ServerError",
    "StreamInterrupted",
    "SuccessEvent",
    "SyncCompletionStream",
    "SyncResilientClient",
    "TokenUsage",
    "UnknownModelWarning",
    "UnsupportedParameterError",
    "get_model_entry",
    "load_config",
    "set_testing",
]

_LAZY = {
    "Accept": "failover.completion",
    "Action": "failover.policy",
    "AttemptContext": "failover.client",
    "ClientClosedError": "failover.sync_client",
    "Completion": "failover.client",
    "CompletionStream": "failover.client",
    "EmbeddingChain": "failover.embeddings",
    "Embeddings": "failover.embeddings",
    "ResilientClient": "failover.client",
    "ResilientTransport": "failover.transport",
    "SyncCompletionStream": "failover.sync_client",
    "SyncResilientClient": "failover.sync_client",
    "load_config": "failover.config_file",
    "set_testing": "failover.policy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'failover' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
