"""The model catalog: prices, context windows and the wire protocol of each model.

Prices and context windows come from the ``genai-prices`` package, which is imported on
the first lookup only, so ``import failover`` stays fast.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from failover._records import built_at_once
from failover.errors import ConfigError, InvalidModelId

__all__ = [
    "EMBEDDING_MODELS",
    "ModelCatalog",
    "ModelEntry",
    "TokenUsage",
    "canonical_provider",
    "default_catalog",
    "get_model_entry",
]


@built_at_once
@dataclass(frozen=True)
class TokenUsage:
    """Tokens used by one call, the same on every wire.

    The prompt is ``input_tokens + cache_read_tokens + cache_write_tokens``: the three are
    apart, as Anthropic and Bedrock count them. OpenAI's ``prompt_tokens`` (Responses:
    ``input_tokens``) and Gemini's ``promptTokenCount`` include their cached part; the
    adapters subtract it, so a reply's cost is ``input_tokens`` at the input price plus
    each cache count at its own price (:meth:`ModelEntry.calculate_cost`).
    """

    input_tokens: int = 0
    """Prompt tokens neither read from nor written to a prompt cache."""
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """Prompt tokens read from a prompt cache (OpenAI ``cached_tokens``, Anthropic
    ``cache_read_input_tokens``, Gemini ``cachedContentTokenCount``, Bedrock
    ``cacheReadInputTokens``)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to a prompt cache (Anthropic ``cache_creation_input_tokens``,
    Bedrock ``cacheWriteInputTokens``); OpenAI and Gemini report none."""
    reasoning_tokens: int = 0
    """Reasoning ("thinking") tokens; already counted in ``output_tokens``."""


@dataclass(frozen=True)
class ModelEntry:
    """What the library knows about one model.

    Costs are USD per million tokens and ``None`` when unknown (never a made-up 0.0).

    Attributes:
        id: The model id as sent to the provider.
        name: A human-readable name.
        provider: The provider name used for auth profiles and adapters.
        api: The wire protocol (``openai``, ``anthropic``, ``gemini``, ``ollama``).
        reasoning: Whether the model takes a reasoning effort / thinking budget, when known.
        input: Input modalities, e.g. ``("text", "image")``; ``None`` when unknown (then
            images and audio are sent and the provider decides).
        tools: Whether the model can call tools, when known.
        context_window: Maximum input tokens, when known.
        max_tokens: Maximum output tokens, when known.
        embedding_dimensions: For an embedding model, the length of its vectors, when
            known (from :data:`EMBEDDING_MODELS`, or declared with
            :meth:`ModelCatalog.declare_embedding`).
        adjustable_dimensions: For an embedding model, whether it can return shorter
            vectors on request (``dimensions=``), when known.
    """

    id: str
    name: str
    provider: str
    api: str
    reasoning: bool | None = None
    input: tuple[str, ...] | None = None
    tools: bool | None = None
    cost_input: float | None = None
    cost_output: float | None = None
    cost_cache_read: float | None = None
    cost_cache_write: float | None = None
    context_window: int | None = None
    max_tokens: int | None = None
    embedding_dimensions: int | None = None
    adjustable_dimensions: bool | None = None

    @cached_property
    def key(self) -> str:
        """The ``provider/model`` id of this entry (kept in its dictionary on first use: a
        plain attribute from then on, never compared nor shown)."""
        return f"{self.provider}/{self.id}"

    def calculate_cost(self, usage: TokenUsage) -> float | None:
        """Return the cost of ``usage`` in USD, or ``None`` when a needed price is unknown.

        Cached tokens are priced at the cache prices: reads at ``cost_cache_read``, writes
        at ``cost_cache_write``. A cache price the catalog lacks falls back to the input
        price: for reads an upper bound (no provider bills a cached token above an uncached
        one), so budgets are never under-charged; for writes what OpenAI and Gemini bill
        (their implicit caching charges a write as plain input; Claude's entries carry
        their own write price). Only an unknown input or output price makes it ``None``.
        """
        # unrolled: this runs once per successful request
        cost_input, cost_output = self.cost_input, self.cost_output
        if (
            cost_input is not None
            and cost_output is not None
            and not usage.cache_read_tokens
            and not usage.cache_write_tokens
        ):  # the usual case: both prices known, nothing cached
            return (usage.input_tokens * cost_input + usage.output_tokens * cost_output) / 1e6
        total = 0.0
        if tokens := usage.input_tokens:
            if (price := self.cost_input) is None:
                return None
            total += tokens * price
        if tokens := usage.output_tokens:
            if (price := self.cost_output) is None:
                return None
            total += tokens * price
        if tokens := usage.cache_read_tokens:
            if (price := self.cost_cache_read) is None and (price := self.cost_input) is None:
                return None
            total += tokens * price
        if tokens := usage.cache_write_tokens:
            if (price := self.cost_cache_write) is None and (price := self.cost_input) is None:
                return None
            total += tokens * price
        return total / 1_000_000


EMBEDDING_MODELS: Mapping[str, tuple[int, bool]] = {
    # OpenAI (also Azure deployments named after the model)
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
    # Google Gemini
    "gemini-embedding-001": (3072, True),
    "text-embedding-004": (768, True),
    "embedding-001": (768, False),
    # Mistral
    "mistral-embed": (1024, False),
    # Ollama library (a ``:tag`` suffix is ignored)
    "nomic-embed-text": (768, False),
    "mxbai-embed-large": (1024, False),
    "all-minilm": (384, False),
    "snowflake-arctic-embed": (1024, False),
    "bge-m3": (1024, False),
    "embeddinggemma": (768, True),
    # Hugging Face ids as vLLM, llama.cpp and Together serve them
    "BAAI/bge-large-en-v1.5": (1024, False),
    "BAAI/bge-base-en-v1.5": (768, False),
    "BAAI/bge-small-en-v1.5": (384, False),
    "BAAI/bge-m3": (1024, False),
    "nomic-ai/nomic-embed-text-v1.5": (768, False),
    "sentence-transformers/all-MiniLM-L6-v2": (384, False),
}
"""Well-known embedding models: model id -> (vector length, whether ``dimensions=`` can
shorten it). Looked up by model id whatever the provider; declare others with
:meth:`ModelCatalog.declare_embedding`."""


def embedding_shape(model_id: str) -> tuple[int, bool] | None:
    """The (dimensions, adjustable) of a well-known embedding model, or ``None``."""
    found = EMBEDDING_MODELS.get(model_id)
    if found is None and ":" in model_id:  # Ollama tags: nomic-embed-text:v1.5
        found = EMBEDDING_MODELS.get(model_id.partition(":")[0])
    return found


# provider name -> (wire protocol, the provider's id in genai-prices or None for local ones)
_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "azure": ("openai", "azure"),
    "openai": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "gemini": ("gemini", "google"),
    "groq": ("openai", "groq"),
    "openrouter": ("openai", "openrouter"),
    "mistral": ("openai", "mistral"),
    "deepseek": ("openai", "deepseek"),
    "together": ("openai", "together"),
    "vllm": ("openai", None),
    "llamacpp": ("openai", None),
    "ollama": ("openai", None),
    "ollama-native": ("ollama", None),
    "bedrock": ("bedrock", "aws"),  # Converse; genai-prices knows Bedrock's ids under aws
    "vertex_anthropic": ("anthropic", "google"),  # Claude on Vertex AI (claude-...@date)
    "vertex_gemini": ("gemini", "google"),
}
_PROVIDER_ALIASES = {
    "google": "gemini",
    "claude": "anthropic",
    "llama.cpp": "llamacpp",
    "azure-openai": "azure",
    "aws-bedrock": "bedrock",
    "amazon-bedrock": "bedrock",
    "vertex-anthropic": "vertex_anthropic",
    "vertex-gemini": "vertex_gemini",
}
# Providers whose model ids are the user's own names (Azure deployments): any id is
# accepted, priced when it matches a model genai-prices knows.
_ANY_MODEL_ID = {"azure"}


def canonical_provider(provider: str) -> str:
    """Return a provider's canonical name: lower case, aliases resolved (google -> gemini)."""
    name = provider.strip().lower()
    return _PROVIDER_ALIASES.get(name, name)


def _price(value: Any) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered prices: the base tier
    return float(base)


_CACHE_LIMIT = 1024
"""Look-ups a catalog remembers (the oldest are forgotten, then looked up again)."""


class ModelCatalog:
    """Looks up models by provider and id, with custom entries for self-hosted models.

    Local providers (``ollama``, ``vllm``, ``llamacpp`` and any provider registered with
    :meth:`register_provider` as local) accept any model id.
    """

    def __init__(self) -> None:
        self._providers = dict(_PROVIDERS)
        self._any_model_id = set(_ANY_MODEL_ID)
        self._custom: dict[tuple[str, str], ModelEntry] = {}
        self._cache: dict[tuple[str, str], ModelEntry | None] = {}
        self._lock = threading.Lock()

    def register_provider(
        self, name: str, *, api: str, prices_id: str | None = None, any_model_id: bool = False
    ) -> None:
        """Teach the catalog a provider: its wire protocol and its genai-prices id.

        A provider registered without ``prices_id`` is local: it accepts any model id.
        With ``any_model_id`` a priced provider also accepts ids genai-prices does not know
        (deployment names), unpriced.
        """
        if not name or "/" in name:
            raise ConfigError(f"provider name must be non-empty and have no '/': {name!r}")
        with self._lock:
            self._providers[canonical_provider(name)] = (api, prices_id)
            if any_model_id:
                self._any_model_id.add(canonical_provider(name))
            self._cache.clear()

    def knows_provider(self, name: str) -> bool:
        """Whether ``name`` (or its alias) is a provider this catalog knows."""
        return canonical_provider(name) in self._providers

    def is_local(self, name: str) -> bool:
        """Whether ``name`` is a local provider (registered without prices: no key needed)."""
        known = self._providers.get(canonical_provider(name))
        return known is not None and known[1] is None

    def register(self, entry: ModelEntry) -> None:
        """Add or replace a custom entry, e.g. for a self-hosted or fine-tuned model."""
        provider = canonical_provider(entry.provider)
        with self._lock:
            self._custom[(provider, entry.id)] = replace(entry, provider=provider)
            self._cache.pop((provider, entry.id), None)

    def declare_embedding(
        self, model_id: str, dimensions: int, *, adjustable: bool = False
    ) -> ModelEntry:
        """Declare that ``model_id`` (``provider/model``) is an embedding model.

        Its catalog entry (prices kept) gains the vector length, so embedding chains can
        check that their models fit the same index.

        Args:
            model_id: ``provider/model``.
            dimensions: The length of the model's vectors.
            adjustable: Whether the model can return shorter vectors on request.

        Raises:
            ConfigError: ``dimensions`` is not a positive int.
            InvalidModelId: ``model_id`` is not of the form ``provider/model``.
        """
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0:
            raise ConfigError(f"dimensions must be a positive int, got {dimensions!r}")
        provider, _, model = model_id.partition("/")
        if not provider or not model:
            raise InvalidModelId(model_id)
        known = self.providers().get(canonical_provider(provider))
        entry = self.get(provider, model) or ModelEntry(
            id=model, name=model, provider=provider, api=known or "openai"
        )
        declared = replace(entry, embedding_dimensions=dimensions, adjustable_dimensions=adjustable)
        self.register(declared)
        return replace(declared, provider=canonical_provider(provider))

    def providers(self) -> Mapping[str, str]:
        """Return every known provider name mapped to its wire protocol."""
        return {name: api for name, (api, _) in self._providers.items()}

    def get(self, provider: str, model_id: str) -> ModelEntry | None:
        """Return the entry for ``provider``/``model_id``, or ``None`` when it is unknown."""
        provider = canonical_provider(provider)
        key = (provider, model_id)
        try:
            return self._cache[key]
        except KeyError:
            pass
        entry = self._lookup(provider, model_id)
        with self._lock:
            self._cache[key] = entry
            if len(self._cache) > _CACHE_LIMIT:  # ids can come from callers: stay bounded
                del self._cache[next(iter(self._cache))]
        return entry

    def resolve(self, model_id: str) -> ModelEntry | None:
        """Return the entry for a ``provider/model`` id, or ``None`` when unknown.

        Raises:
            InvalidModelId: ``model_id`` is not of the form ``provider/model``.
        """
        provider, _, model = model_id.partition("/")
        if not provider or not model:
            raise InvalidModelId(model_id)
        return self.get(provider, model)

    def _lookup(self, provider: str, model_id: str) -> ModelEntry | None:
        if (custom := self._custom.get((provider, model_id))) is not None:
            return custom
        entry = self._lookup_known(provider, model_id)
        shape = embedding_shape(model_id)
        if shape is None:
            return entry
        if entry is None:  # a well-known embedding model genai-prices does not price
            known = self._providers.get(provider)
            if known is None:
                return None
            entry = ModelEntry(id=model_id, name=model_id, provider=provider, api=known[0])
        return replace(entry, embedding_dimensions=shape[0], adjustable_dimensions=shape[1])

    def _lookup_known(self, provider: str, model_id: str) -> ModelEntry | None:
        known = self._providers.get(provider)
        if known is None:
            return None
        api, prices_id = known
        if prices_id is None:
            return ModelEntry(id=model_id, name=model_id, provider=provider, api=api)
        entry = _from_genai_prices(provider, api, prices_id, model_id)
        if entry is None and provider in self._any_model_id:
            return ModelEntry(id=model_id, name=model_id, provider=provider, api=api)
        return entry


def _from_genai_prices(provider: str, api: str, prices_id: str, model_id: str) -> ModelEntry | None:
    from genai_prices import data_snapshot  # lazy: a large data module

    snapshot = data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(model_id, None, prices_id, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(timezone.utc))
    return ModelEntry(
        id=model_id,
        name=info.name or info.id,
        provider=provider,
        api=api,
        cost_input=_price(getattr(prices, "input_mtok", None)),
        cost_output=_price(getattr(prices, "output_mtok", None)),
        cost_cache_read=_price(getattr(prices, "cache_read_mtok", None)),
        cost_cache_write=_price(getattr(prices, "cache_write_mtok", None)),
        context_window=info.context_window,
    )


default_catalog = ModelCatalog()
"""The process-wide catalog used when none is given."""


def get_model_entry(provider: str, model_id: str) -> ModelEntry | None:
    """Return the default catalog's entry for ``provider``/``model_id``, or ``None``."""
    return default_catalog.get(provider, model_id)
