"""FallbackChain: the ordered list of models to try, first to last."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from failover.catalog import ModelCatalog, ModelEntry, canonical_provider, default_catalog
from failover.errors import DuplicateModel, InvalidModelId, ModelNotFound, ModelNotInChain

__all__ = ["DEFAULT_CHAIN_IDS", "FallbackChain"]

DEFAULT_CHAIN_IDS = (
    "openai/gpt-5-nano",
    "gemini/gemini-2.5-flash-lite",
    "anthropic/claude-haiku-4-5",
)
"""The models of :meth:`FallbackChain.default`: cheap, fast, large context, three providers."""


class FallbackChain:
    """An ordered, duplicate-free chain of models; the first has the highest priority.

    Example:
        >>> chain = FallbackChain.from_ids(["openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite"])
        >>> chain.next("openai/gpt-4o-mini").key
        'gemini/gemini-2.5-flash-lite'
    """

    __slots__ = ("_index", "_models", "_names")

    def __init__(self, models: Iterable[ModelEntry] = ()) -> None:
        self._models: tuple[ModelEntry, ...] = tuple(models)
        self._names: tuple[str, ...] = tuple(model.key for model in self._models)
        self._index: dict[str, int] = {}
        for position, name in enumerate(self._names):
            if name in self._index:
                raise DuplicateModel(name)
            self._index[name] = position

    @classmethod
    def from_ids(cls, ids: Iterable[str], *, catalog: ModelCatalog | None = None) -> FallbackChain:
        """Build a chain from ``"provider/model"`` ids (split at the first ``/``).

        Raises:
            InvalidModelId: An id is not of the form ``provider/model``.
            ModelNotFound: The catalog does not know an id.
            DuplicateModel: An id appears twice.
        """
        if isinstance(ids, str):
            raise InvalidModelId(ids) from TypeError("ids must be a list of strings, not a str")
        catalog = catalog or default_catalog
        entries = []
        for model_id in ids:
            entry = catalog.resolve(model_id)
            if entry is None:
                raise ModelNotFound(model_id)
            entries.append(entry)
        return cls(entries)

    @classmethod
    def default(cls) -> FallbackChain:
        """A multi-provider chain of cheap, reliable models that exist in the catalog."""
        return cls.from_ids(DEFAULT_CHAIN_IDS)

    def next(self, current: str) -> ModelEntry | None:
        """Return the model after ``current``, or ``None`` when ``current`` is the last.

        Raises:
            ModelNotInChain: ``current`` is not in the chain (a ``LookupError``).
        """
        position = self._position(current) + 1
        return self._models[position] if position < len(self._models) else None

    def index_of(self, model_id: str) -> int | None:
        """Return the zero-based position of ``model_id``, or ``None`` when absent."""
        return self._index.get(_canonical_id(model_id))

    def contains(self, model_id: str) -> bool:
        """Return whether ``model_id`` (``provider/model``, aliases allowed) is in the chain."""
        return _canonical_id(model_id) in self._index

    def from_inclusive(self, model_id: str) -> FallbackChain | None:
        """Return the chain from ``model_id`` on, or ``None`` when it is not in the chain."""
        position = self.index_of(model_id)
        return None if position is None else FallbackChain(self._models[position:])

    def from_after(self, model_id: str) -> FallbackChain | None:
        """Return the chain after ``model_id``, or ``None`` when absent or last."""
        position = self.index_of(model_id)
        if position is None or position + 1 >= len(self._models):
            return None
        return FallbackChain(self._models[position + 1 :])

    @property
    def models(self) -> Sequence[ModelEntry]:
        """The model entries, in order."""
        return self._models

    @property
    def names(self) -> Sequence[str]:
        """The ``provider/model`` ids, in order."""
        return self._names

    def first(self) -> ModelEntry | None:
        """Return the first model, or ``None`` for an empty chain."""
        return self._models[0] if self._models else None

    def last(self) -> ModelEntry | None:
        """Return the last model, or ``None`` for an empty chain."""
        return self._models[-1] if self._models else None

    def is_empty(self) -> bool:
        """Return whether the chain has no models."""
        return not self._models

    def _position(self, model_id: str) -> int:
        position = self.index_of(model_id)
        if position is None:
            raise ModelNotInChain(model_id)
        return position

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.contains(model_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FallbackChain):
            return NotImplemented
        return self._models == other._models

    def __hash__(self) -> int:
        return hash(self._models)

    def __repr__(self) -> str:
        return f"FallbackChain({list(self._names)!r})"


def _canonical_id(model_id: str) -> str:
    """``provider/model`` with the provider's alias resolved, as ``from_ids`` reads it."""
    provider, slash, model = model_id.partition("/")
    return f"{canonical_provider(provider)}/{model}" if slash else model_id
