"""Provider adapters, one module per wire protocol, behind one registry.

A new provider is one call: :func:`add_provider` registers its adapter and teaches the
catalog its name, wire protocol and prices together.
"""

from __future__ import annotations

from failover.catalog import ModelCatalog, canonical_provider, default_catalog
from failover.errors import ConfigError
from failover.providers.anthropic import AnthropicAdapter
from failover.providers.azure import AzureOpenAIAdapter
from failover.providers.base import (
    ChatRequest,
    ChatResult,
    HttpRequest,
    ProviderAdapter,
    StreamAssembler,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
)
from failover.providers.bedrock import BedrockAdapter
from failover.providers.gemini import GeminiAdapter
from failover.providers.ollama import OllamaAdapter
from failover.providers.openai import OTHER_WIRES_FIELDS, OpenAIAdapter
from failover.providers.vertex import VertexAnthropicAdapter, VertexGeminiAdapter

__all__ = [
    "AnthropicAdapter",
    "AzureOpenAIAdapter",
    "BedrockAdapter",
    "ChatRequest",
    "ChatResult",
    "GeminiAdapter",
    "HttpRequest",
    "OllamaAdapter",
    "OpenAIAdapter",
    "ProviderAdapter",
    "StreamAssembler",
    "StreamChunk",
    "ToolCall",
    "ToolCallDelta",
    "VertexAnthropicAdapter",
    "VertexGeminiAdapter",
    "add_provider",
    "get_adapter",
    "register_adapter",
    "registered_providers",
]

_HINTS = frozenset({"user", "metadata", "store", "service_tier"})
"""Harmless OpenAI hints that stricter OpenAI-compatible servers reject: not sent there."""

_ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAIAdapter("https://api.openai.com/v1", rejects=OTHER_WIRES_FIELDS),
    "azure": AzureOpenAIAdapter(),
    "groq": OpenAIAdapter(
        "https://api.groq.com/openai/v1",
        max_tokens_field="max_tokens",
        omit=frozenset({"metadata", "store", "service_tier"}),
        rejects=frozenset({"logit_bias", "logprobs", "top_logprobs", "audio", "modalities"}),
    ),
    "openrouter": OpenAIAdapter("https://openrouter.ai/api/v1", max_tokens_field="max_tokens"),
    "mistral": OpenAIAdapter(
        "https://api.mistral.ai/v1",
        max_tokens_field="max_tokens",
        omit=frozenset({"stream_options"}) | _HINTS,
        rejects=frozenset(
            {"logit_bias", "logprobs", "top_logprobs", "audio", "modalities", "reasoning_effort"}
        ),
        rename={"seed": "random_seed"},
    ),
    "deepseek": OpenAIAdapter(
        "https://api.deepseek.com",
        max_tokens_field="max_tokens",
        omit=_HINTS,
        rejects=frozenset({"seed", "audio", "modalities", "reasoning_effort"}),
    ),
    "together": OpenAIAdapter("https://api.together.xyz/v1", max_tokens_field="max_tokens"),
    "vllm": OpenAIAdapter("http://localhost:8000/v1", max_tokens_field="max_tokens"),
    "llamacpp": OpenAIAdapter("http://localhost:8080/v1", max_tokens_field="max_tokens"),
    "ollama": OpenAIAdapter("http://localhost:11434/v1", max_tokens_field="max_tokens"),
    "ollama-native": OllamaAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
    "bedrock": BedrockAdapter(),
    "vertex_anthropic": VertexAnthropicAdapter(),
    "vertex_gemini": VertexGeminiAdapter(),
}


def add_provider(
    name: str,
    adapter: ProviderAdapter,
    *,
    prices_id: str | None = None,
    any_model_id: bool = False,
    catalog: ModelCatalog | None = None,
) -> None:
    """Add (or replace) a provider: its adapter, and its catalog entry, in one call.

    Args:
        name: The provider's name, as used in ``"name/model"`` ids and auth profiles.
        adapter: Speaks its wire protocol (e.g. ``OpenAIAdapter("https://host/v1")``).
        prices_id: The provider's id in genai-prices, so its models are found and priced;
            ``None`` for a local provider that serves any model id unpriced.
        any_model_id: With ``prices_id``, also accept ids genai-prices does not know.
        catalog: The catalog to teach (default: the process-wide one).

    Example:
        >>> add_provider("my-vllm", OpenAIAdapter("http://gpu-box:8000/v1"))  # doctest: +SKIP
        >>> ResilientClient(["my-vllm/llama-3.1-8b"], profiles)  # doctest: +SKIP
    """
    if not name or "/" in name:
        raise ConfigError(f"provider name must be non-empty and have no '/': {name!r}")
    _ADAPTERS[canonical_provider(name)] = adapter
    (catalog or default_catalog).register_provider(
        name, api=adapter.api, prices_id=prices_id, any_model_id=any_model_id
    )


def register_adapter(name: str, adapter: ProviderAdapter) -> None:
    """Register (or replace) the adapter for provider ``name``.

    A provider the default catalog does not know yet is added to it as a local provider
    (any model id, unpriced); use :func:`add_provider` to give it prices.
    """
    if not name or "/" in name:
        raise ConfigError(f"provider name must be non-empty and have no '/': {name!r}")
    _ADAPTERS[canonical_provider(name)] = adapter
    if not default_catalog.knows_provider(name):
        default_catalog.register_provider(name, api=adapter.api)


def get_adapter(name: str) -> ProviderAdapter:
    """Return the adapter for provider ``name`` (aliases such as ``google`` resolve).

    Raises:
        ConfigError: No adapter is registered under that name.
    """
    try:
        return _ADAPTERS[canonical_provider(name)]
    except KeyError:
        known = ", ".join(sorted(_ADAPTERS))
        raise ConfigError(f"no adapter for provider {name!r}; known: {known}") from None


def registered_providers() -> list[str]:
    """Return the names of every registered provider, sorted."""
    return sorted(_ADAPTERS)
