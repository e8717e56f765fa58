"""FallbackChain: the ordered list of models to try, first to last."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from failover.catalog import ModelCatalog, ModelEntry, canonical_provider, default_catalog
from failover.errors import (
    DuplicateModel,
    InvalidModelId,
    ModelNotFound,
    ModelNotInChain,
    UnknownModelWarning,
    did_you_mean,
)

__all__ = ["DEFAULT_CHAIN_IDS", "FallbackChain", "unknown_model"]

DEFAULT_CHAIN_IDS = (
    "openai/gpt-5-nano",
    "gemini/gemini-2.5-flash-lite",
    "anthropic/claude-haiku-4-5",
)
"""The models of :meth:`FallbackChain.default`: cheap, fast, large context, three providers."""


class FallbackChain:
    """An ordered, duplicate-free chain of models; the first has the highest priority.

    A step of the chain may be a group of equivalent deployments (the same model from two
    providers or regions): the step serves when any of them does, in the order the
    client's routing strategy picks, and the next step is tried only when none can.

    Examples:
        >>> chain = FallbackChain.from_ids(["openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite"])
        >>> chain.next("openai/gpt-4o-mini").key
        'gemini/gemini-2.5-flash-lite'
        >>> grouped = FallbackChain.from_ids([["openai/gpt-4o-mini", "azure/gpt-4o-mini"]])
        >>> [len(step) for step in grouped.steps]
        [2]
    """

    __slots__ = ("_groups", "_index", "_models", "_names", "_steps")

    def __init__(
        self,
        models: Iterable[ModelEntry | Sequence[ModelEntry]] = (),
        *,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self._groups: Mapping[str, str] = dict(groups or {})
        self._steps: tuple[tuple[ModelEntry, ...], ...] = tuple(
            (step,) if isinstance(step, ModelEntry) else tuple(step) for step in models
        )
        if any(not step for step in self._steps):
            raise InvalidModelId("[]") from ValueError("a group of deployments is empty")
        self._models: tuple[ModelEntry, ...] = tuple(m for step in self._steps for m in step)
        self._names: tuple[str, ...] = tuple(model.key for model in self._models)
        self._index: dict[str, int] = {}
        for position, name in enumerate(self._names):
            if name in self._index:
                raise DuplicateModel(name)
            self._index[name] = position

    @classmethod
    def from_ids(
        cls,
        ids: Iterable[str | Sequence[str] | Mapping[str, Any]],
        *,
        catalog: ModelCatalog | None = None,
        strict: bool = False,
    ) -> FallbackChain:
        """Build a chain from ``"provider/model"`` ids (split at the first ``/``).

        An item may also be a group of equivalent deployments: a list of ids, or a named
        group ``{"name": "mini", "deployments": [ids]}`` (a budget's ``group:mini`` scope
        names it),
        or the same model on several clouds, ``{"model": "claude-sonnet-4-5", "on":
        ["anthropic", "bedrock", "vertex_anthropic"]}``, each cloud's id found through the
        catalog (see :mod:`failover.clouds`).

        A model of a known provider that the catalog does not know (one released
        yesterday) is accepted unpriced with an :class:`UnknownModelWarning`, unless
        ``strict``.

        Args:
            ids: The ids, first to last.
            catalog: Where the ids are looked up (default: the process-wide catalog).
            strict: Refuse ids the catalog does not know (``ModelNotFound``).

        Raises:
            InvalidModelId: An id is not of the form ``provider/model`` (or not a str).
            ModelNotFound: An id's provider is unknown, or (``strict``) the catalog does
                not know the id.
            DuplicateModel: An id appears twice.
            ConfigError: A ``{model, on}`` step is malformed, or a cloud's id is unknown.
        """
        if isinstance(ids, str):
            raise InvalidModelId(ids) from TypeError("ids must be a list of strings, not a str")
        catalog = catalog or default_catalog

        def entry(model_id: object) -> ModelEntry:
            if not isinstance(model_id, str):
                raise InvalidModelId(repr(model_id))
            found = catalog.resolve(model_id)
            if found is None:
                provider, _, model = model_id.partition("/")
                return unknown_model(catalog, provider, model, strict=strict)
            return found

        steps: list[ModelEntry | tuple[ModelEntry, ...]] = []
        groups: dict[str, str] = {}
        for item in ids:
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(item, Mapping) and "on" in item:
                from failover.clouds import same_model_ids

                item = same_model_ids(item)
            elif isinstance(item, Mapping):
                item = item.get("deployments", ())
            if isinstance(item, str) or not isinstance(item, Sequence):
                steps.append(entry(item))
            else:
                steps.append(tuple(entry(model_id) for model_id in item))
            if isinstance(name, str) and name:
                step = steps[-1]
                for model in (step,) if isinstance(step, ModelEntry) else step:
                    groups[model.key] = name
        return cls(steps, groups=groups)

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
        """The model entries, in order (a group's deployments one after the other)."""
        return self._models

    @property
    def steps(self) -> Sequence[tuple[ModelEntry, ...]]:
        """The chain's steps: one model, or a group of equivalent deployments, each."""
        return self._steps

    @property
    def groups(self) -> Mapping[str, str]:
        """Each model of a named step (``{"name": ..., "deployments": [...]}``) -> the
        step's name."""
        return self._groups

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
        steps = [
            step[0].key if len(step) == 1 else [model.key for model in step] for step in self._steps
        ]
        return f"FallbackChain({steps!r})"


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def unknown_model(catalog: ModelCatalog, provider: str, model: str, *, strict: bool) -> ModelEntry:
    """The entry of a model ``catalog`` does not know: made up unpriced, with a warning.

    Args:
        catalog: The catalog that did not know it.
        provider: The provider's name, as written.
        model: The model's id at that provider.
        strict: Refuse it instead.

    Raises:
        InvalidModelId: The id is malformed (empty parts, whitespace or control characters).
        ModelNotFound: The provider is unknown, or ``strict``.
    """
    model_id = f"{provider}/{model}"
    if (
        not provider.strip()
        or not model.strip()
        or any(char.isspace() or not char.isprintable() for char in model_id)
    ):
        raise InvalidModelId(model_id)
    known = catalog.providers()
    name = canonical_provider(provider)
    if name not in known:
        hint = did_you_mean(name, known)
        raise ModelNotFound(
            model_id, f"no provider {provider!r}{hint} (known: {', '.join(sorted(known))})"
        )
    if strict:
        raise ModelNotFound(
            model_id,
            "register it with catalog.register(ModelEntry(...)) to give its price and "
            "context window, or drop strict (strict=False, strict_models=False) to accept "
            "it unpriced",
        )
    message = (
        f"model {model_id!r} is not in the catalog: accepted, but its price and context "
        "window are unknown (cost None); register it with catalog.register(ModelEntry(...)) "
        "or pass strict=True to refuse unknown ids"
    )
    if sys.version_info >= (3, 12):
        warnings.warn(message, UnknownModelWarning, skip_file_prefixes=(_PACKAGE,))
    else:  # pragma: no cover - Python 3.10 and 3.11
        warnings.warn(message, UnknownModelWarning, stacklevel=4)
    return ModelEntry(id=model, name=model, provider=name, api=known[name])


def _canonical_id(model_id: str) -> str:
    """``provider/model`` with the provider's alias resolved, as ``from_ids`` reads it."""
    provider, slash, model = model_id.partition("/")
    return f"{canonical_provider(provider)}/{model}" if slash else model_id
