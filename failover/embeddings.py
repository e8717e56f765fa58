"""Embeddings: the chain of embedding models, the checks before a call, and the result.

An :class:`EmbeddingChain` is a fallback chain whose models return vectors of one length,
checked when it is built, so a failover never puts a 768-long vector into a 1536-long
index. ``ResilientClient.embed`` runs it with the same failover as ``complete``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from failover.attempts import Attempt
from failover.catalog import ModelCatalog, ModelEntry, TokenUsage
from failover.chain import FallbackChain
from failover.errors import ConfigError, MalformedResponseError

if TYPE_CHECKING:
    from failover.providers.base import EmbeddingAdapter, EmbeddingRequest, EmbeddingResult

__all__ = ["TASK_TYPES", "EmbeddingChain", "Embeddings", "embedding_request"]

TASK_TYPES = (
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)
"""Gemini's ``taskType`` values (``task_type=``, any case); other wires ignore it."""

_RESERVED = {"input": "inputs", "model": "model_chain", "dimensions": "dimensions"}


@dataclass(frozen=True, slots=True, repr=False)
class Embeddings:
    """The vectors of one ``embed`` call and how they were obtained.

    Attributes:
        vectors: One vector per input, in the inputs' order.
        model: ``provider/model`` that answered (vectors of different models are not
            comparable, even when their lengths match: keep it with the vectors).
        provider: The provider that answered.
        profile: The name of the auth profile used.
        usage: Input tokens (zero when the provider does not report them, e.g. Gemini).
        cost_usd: Cost from the catalog's prices; ``None`` when a price or the usage is
            unknown.
        attempts: Every attempt, the successful one last.
        latency: Seconds from the call to the answer.
    """

    vectors: list[list[float]]
    model: str
    provider: str
    profile: str
    usage: TokenUsage
    cost_usd: float | None
    attempts: tuple[Attempt, ...]
    latency: float

    @property
    def dimensions(self) -> int:
        """The length of the vectors."""
        return len(self.vectors[0]) if self.vectors else 0

    def __len__(self) -> int:
        return len(self.vectors)

    def __iter__(self) -> Iterator[list[float]]:
        return iter(self.vectors)

    def __getitem__(self, index: int) -> list[float]:
        return self.vectors[index]

    def __repr__(self) -> str:
        return (
            f"Embeddings({len(self.vectors)} vectors x {self.dimensions}, model={self.model!r}, "
            f"profile={self.profile!r}, usage={self.usage.input_tokens} tokens, "
            f"cost_usd={self.cost_usd!r}, attempts={len(self.attempts)})"
        )


class EmbeddingChain:
    """A fallback chain of embedding models whose vectors have one length.

    Built from ``provider/model`` ids (a nested list is a group of equivalent
    deployments, as in :class:`~failover.FallbackChain`). Each model's vector length comes
    from the catalog: :data:`~failover.catalog.EMBEDDING_MODELS` for well-known models,
    :meth:`~failover.ModelCatalog.declare_embedding` for yours.

    Args:
        models: The models, first to last, or a FallbackChain.
        dimensions: Ask every model for vectors of this length (models that can shorten
            theirs are sent it; a model whose own length is this is sent nothing).
        mixed_dimensions: Allow models whose vectors differ in length (your index must
            cope: ``Embeddings.model`` tells which model answered).
        catalog: Where ids are looked up (default: the process-wide catalog).

    Raises:
        ConfigError: The models' vector lengths differ (each named with its length), a
            length is unknown in a chain of several models, a model cannot return
            ``dimensions``-long vectors, or a provider has no embeddings API.

    Examples:
        >>> chain = EmbeddingChain(
        ...     ["openai/text-embedding-3-small", "azure/text-embedding-3-small"]
        ... )
        >>> chain.vector_dimensions
        1536
    """

    __slots__ = (
        "_adapters",
        "_send",
        "chain",
        "dimensions",
        "mixed_dimensions",
        "vector_dimensions",
    )

    def __init__(
        self,
        models: FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]],
        *,
        dimensions: int | None = None,
        mixed_dimensions: bool = False,
        catalog: ModelCatalog | None = None,
    ) -> None:
        from failover import providers

        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions <= 0
        ):
            raise ConfigError(f"dimensions must be a positive int, got {dimensions!r}")
        self.chain = (
            models
            if isinstance(models, FallbackChain)
            else FallbackChain.from_ids(models, catalog=catalog)
        )
        if self.chain.is_empty():
            raise ConfigError("an embedding chain needs at least one model")
        self.dimensions = dimensions
        self.mixed_dimensions = bool(mixed_dimensions)
        self._adapters: dict[str, EmbeddingAdapter] = {}
        self._send: dict[str, int | None] = {}
        lengths: dict[str, int | None] = {}
        for model in self.chain:
            adapter = providers.get_adapter(model.provider)
            if not hasattr(adapter, "build_embedding_request"):
                raise ConfigError(
                    f"{model.key}: provider {model.provider!r} has no embeddings API here"
                )
            self._adapters[model.provider] = adapter  # type: ignore[assignment]
            lengths[model.key] = self._length_of(model)
        self.vector_dimensions = self._common_length(lengths)

    @classmethod
    def of(
        cls,
        models: EmbeddingChain | FallbackChain | Iterable[str | Sequence[str] | Mapping[str, Any]],
        *,
        dimensions: int | None = None,
        mixed_dimensions: bool = False,
    ) -> EmbeddingChain:
        """``models`` as an EmbeddingChain (one given is kept unless ``dimensions`` or
        ``mixed_dimensions`` ask for something else)."""
        if isinstance(models, EmbeddingChain):
            if (dimensions is None or dimensions == models.dimensions) and (
                not mixed_dimensions or models.mixed_dimensions
            ):
                return models
            return cls(
                models.chain,
                dimensions=dimensions if dimensions is not None else models.dimensions,
                mixed_dimensions=mixed_dimensions or models.mixed_dimensions,
            )
        return cls(models, dimensions=dimensions, mixed_dimensions=mixed_dimensions)

    def _length_of(self, model: ModelEntry) -> int | None:
        """The length of ``model``'s vectors in this chain; notes what to send it."""
        native, wanted = model.embedding_dimensions, self.dimensions
        self._send[model.key] = None
        if wanted is None or native == wanted:
            return native
        if native is not None and (model.adjustable_dimensions is False or native < wanted):
            if self.mixed_dimensions:
                return native
            raise ConfigError(
                f"{model.key} returns {native}-dimensional vectors and cannot return {wanted}"
            )
        self._send[model.key] = wanted
        return wanted

    def _common_length(self, lengths: dict[str, int | None]) -> int | None:
        known = {length for length in lengths.values() if length is not None}
        if self.mixed_dimensions:
            return known.pop() if len(known) == 1 and None not in lengths.values() else None
        unknown = [key for key, length in lengths.items() if length is None]
        if unknown and len(lengths) > 1:
            raise ConfigError(
                "the vector length of "
                + ", ".join(unknown)
                + " is unknown, so the chain cannot check its models agree; declare it "
                "(catalog.declare_embedding('provider/model', dimensions=N)), pass "
                "dimensions=N, or mixed_dimensions=True"
            )
        if len(known) > 1:
            listed = ", ".join(f"{key} ({length})" for key, length in lengths.items())
            raise ConfigError(
                f"an embedding chain must not mix vector lengths: {listed}; pass "
                "dimensions=N to ask every model for N, or mixed_dimensions=True"
            )
        return known.pop() if known else None

    @property
    def steps(self) -> Sequence[tuple[ModelEntry, ...]]:
        """The chain's steps (a model, or a group of equivalent deployments, each)."""
        return self.chain.steps

    @property
    def models(self) -> Sequence[ModelEntry]:
        """The models, in order."""
        return self.chain.models

    def adapter(self, model: ModelEntry) -> EmbeddingAdapter:
        """The embeddings adapter of ``model``'s provider."""
        return self._adapters[model.provider]

    def request_for(self, request: EmbeddingRequest, model: ModelEntry) -> EmbeddingRequest:
        """``request`` as ``model`` gets it (with the ``dimensions`` to send it, if any)."""
        send = self._send.get(model.key)
        return request if send == request.dimensions else replace(request, dimensions=send)

    def check(self, model: ModelEntry, result: EmbeddingResult) -> EmbeddingResult:
        """Raise MalformedResponseError when ``model``'s vectors are not the length the
        chain promised (a wrong declaration, or a server that ignored ``dimensions``)."""
        expected = self._send.get(model.key) or (
            self.vector_dimensions if not self.mixed_dimensions else model.embedding_dimensions
        )
        got = len(result.vectors[0]) if result.vectors else None
        if expected is not None and got is not None and got != expected:
            raise MalformedResponseError(
                f"{model.key} returned {got}-dimensional vectors, expected {expected}"
            )
        return result

    def __repr__(self) -> str:
        return (
            f"EmbeddingChain({list(self.chain.names)!r}, vector_dimensions="
            f"{self.vector_dimensions!r})"
        )


def embedding_request(
    inputs: str | Sequence[str],
    *,
    task_type: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> EmbeddingRequest:
    """Check what the caller passed, before anything is sent; return the request.

    Raises:
        ConfigError: ``inputs`` is not a non-empty str or a non-empty list of non-empty
            strs, ``task_type`` is not one of :data:`TASK_TYPES`, or a parameter is
            reserved or cannot be sent as JSON.
    """
    from failover.providers.base import EmbeddingRequest, check_json

    if isinstance(inputs, str):
        texts: tuple[str, ...] = (inputs,)
    elif isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, Sequence):
        raise ConfigError(f"inputs must be a str or a list of strs, got {type(inputs).__name__}")
    else:
        texts = tuple(inputs)
    if not texts:
        raise ConfigError("inputs must not be empty")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"inputs[{index}] must be a str, got {type(text).__name__}")
        if not text:
            raise ConfigError(f"inputs[{index}] is an empty string (providers reject those)")
    kind: str | None = None
    if task_type is not None:
        kind = str(task_type).upper()
        if kind not in TASK_TYPES:
            raise ConfigError(
                f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}"
            )
    params = dict(params or {})
    for name, value in params.items():
        if name in _RESERVED:
            raise ConfigError(f"pass {name!r} as embed()'s {_RESERVED[name]}=, not as a parameter")
        check_json({name: value})
    return EmbeddingRequest(texts, None, kind, params)
