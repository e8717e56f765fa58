"""Provider adapters, one module per wire protocol, behind one registry.

A new provider is one new adapter module and one :func:`register_adapter` call.
"""

from __future__ import annotations

from failover.catalog import canonical_provider
from failover.errors import ConfigError
from providers.anthropic import AnthropicAdapter
from providers.base import ChatRequest, ChatResult, HttpRequest, ProviderAdapter, StreamChunk
from providers.gemini import GeminiAdapter
from providers.ollama import OllamaAdapter
from providers.openai import OpenAIAdapter

__all__ = [
    "AnthropicAdapter",
    "ChatRequest",
    "ChatResult",
    "GeminiAdapter",
    "HttpRequest",
    "OllamaAdapter",
    "OpenAIAdapter",
    "ProviderAdapter",
    "StreamChunk",
    "get_adapter",
    "register_adapter",
    "registered_providers",
]

_ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAIAdapter("https://api.openai.com/v1"),
    "groq": OpenAIAdapter("https://api.groq.com/openai/v1", max_tokens_field="max_tokens"),
    "openrouter": OpenAIAdapter("https://openrouter.ai/api/v1", max_tokens_field="max_tokens"),
    "mistral": OpenAIAdapter("https://api.mistral.ai/v1", max_tokens_field="max_tokens"),
    "deepseek": OpenAIAdapter("https://api.deepseek.com", max_tokens_field="max_tokens"),
    "together": OpenAIAdapter("https://api.together.xyz/v1", max_tokens_field="max_tokens"),
    "vllm": OpenAIAdapter("http://localhost:8000/v1", max_tokens_field="max_tokens"),
    "llamacpp": OpenAIAdapter("http://localhost:8080/v1", max_tokens_field="max_tokens"),
    "ollama": OpenAIAdapter("http://localhost:11434/v1", max_tokens_field="max_tokens"),
    "ollama-native": OllamaAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def register_adapter(name: str, adapter: ProviderAdapter) -> None:
    """Register (or replace) the adapter for provider ``name``."""
    if not name or "/" in name:
        raise ConfigError(f"provider name must be non-empty and have no '/': {name!r}")
    _ADAPTERS[canonical_provider(name)] = adapter


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
