"""Profiles and a default chain from the standard environment variables (``failover chat``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = [
    "CHAT_MODELS",
    "ENV_KEYS",
    "OLLAMA_MODEL",
    "keys_from_environment",
    "profiles_from_environment",
]

ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}
"""Provider -> the environment variable its key is read from."""
CHAT_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
    "groq": "groq/llama-3.1-8b-instant",
    "mistral": "mistral/mistral-small-latest",
    "openrouter": "openrouter/openai/gpt-4o-mini",
    "deepseek": "deepseek/deepseek-chat",
}
"""Provider -> the model ``failover chat`` asks when that provider's key is found."""
OLLAMA_MODEL = "llama3.2"


def keys_from_environment(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """Return (profile name, provider, key) for ``OPENAI_API_KEY``, ``OPENAI_API_KEY_2``, ..."""
    env = dict(os.environ if env is None else env)
    found = []
    for provider, variable in ENV_KEYS.items():
        names = [variable] + [f"{variable}_{n}" for n in range(2, 10)]
        if provider == "gemini":
            names.append("GOOGLE_API_KEY")
        for name in names:
            if env.get(name):
                found.append((name.lower(), provider, env[name]))
    return found


def profiles_from_environment(
    env: Mapping[str, str] | None = None,
) -> tuple[list[AuthProfile], list[str]]:
    """Profiles and a default chain from the standard environment variables.

    ``OPENAI_API_KEY`` (and ``OPENAI_API_KEY_2``..``_9``), ``ANTHROPIC_API_KEY``,
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``GROQ_API_KEY``, ``MISTRAL_API_KEY``,
    ``OPENROUTER_API_KEY``, ``DEEPSEEK_API_KEY``, each with an optional ``*_BASE_URL``
    (``OPENAI_BASE_URL``, ...); Ollama (no key) when ``OLLAMA_HOST``, ``OLLAMA_BASE_URL`` or
    ``OLLAMA_MODEL`` is set; vLLM when ``VLLM_BASE_URL`` and ``VLLM_MODEL`` are set
    (``VLLM_API_KEY`` optional).
    """
    from failover.profiles import AuthProfile

    env = dict(os.environ if env is None else env)
    profiles: list[AuthProfile] = []
    chain: list[str] = []
    for name, provider, key in keys_from_environment(env):
        base_url = env.get(f"{provider.upper()}_BASE_URL") or None
        profiles.append(AuthProfile(name, provider, key, base_url=base_url))
        if CHAT_MODELS[provider] not in chain:
            chain.append(CHAT_MODELS[provider])
    ollama = env.get("OLLAMA_BASE_URL") or env.get("OLLAMA_HOST")
    if ollama or env.get("OLLAMA_MODEL"):
        profiles.append(AuthProfile("ollama", "ollama", "", base_url=_ollama_url(ollama)))
        chain.append(f"ollama/{env.get('OLLAMA_MODEL') or OLLAMA_MODEL}")
    if env.get("VLLM_BASE_URL") and env.get("VLLM_MODEL"):
        profiles.append(
            AuthProfile("vllm", "vllm", env.get("VLLM_API_KEY", ""), base_url=env["VLLM_BASE_URL"])
        )
        chain.append(f"vllm/{env['VLLM_MODEL']}")
    return profiles, chain


def _ollama_url(value: str | None) -> str | None:
    """``OLLAMA_HOST`` as Ollama writes it (``host:port``) -> its OpenAI-compatible base URL."""
    if not value:
        return None
    url = value if "://" in value else f"http://{value}"
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"
