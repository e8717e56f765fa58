"""The models the SDK transport tries for a request: the one the SDK asked for, then the
fallbacks in their order.

A fallback step is a model id of the SDK's own provider, or a model of another provider
(served translated). Chains are kept per requested model (a bounded number: model names
come from callers) and made again when the catalog's entry of one of them changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from failover.catalog import ModelCatalog, ModelEntry
from failover.chain import unknown_model

__all__ = ["SdkChains"]

_CHAINS_KEPT = 256  # requested models whose chain is kept


class SdkChains:
    """The chain of each request of one SDK transport.

    Args:
        provider: The SDK's own provider.
        wire: Its wire format (``gemini`` names the model in the URL).
        steps: The fallback steps: model ids of ``provider``, or models of others.
        catalog: Where models are looked up.
    """

    def __init__(
        self,
        provider: str,
        wire: str,
        steps: Sequence[str | ModelEntry],
        catalog: ModelCatalog,
    ) -> None:
        self.provider = provider
        self.wire = wire
        self.steps = steps
        self.catalog = catalog
        # per requested model: its chain, and what the catalog said of our own models in it
        self._chains: dict[
            str | None, tuple[tuple[ModelEntry, ...], list[tuple[str, ModelEntry | None]]]
        ] = {}

    def check_known(self, *, strict: bool) -> None:
        """Warn about (or, ``strict``, refuse) fallback models the catalog does not know."""
        for step in self.steps:
            provider, model = (
                (self.provider, step) if isinstance(step, str) else (step.provider, step.id)
            )
            if self.catalog.get(provider, model) is None:
                unknown_model(self.catalog, provider, model, strict=strict)

    def requested(self, payload: dict[str, Any] | None, suffix: str) -> str | None:
        """The model the SDK asks for: in the body, or (Gemini) in the URL."""
        if payload is not None and isinstance(payload.get("model"), str):
            return str(payload["model"])
        if self.wire == "gemini" and "/models/" in suffix:
            return suffix.split("/models/", 1)[1].split(":", 1)[0]
        return None

    def chain(self, requested: str | None) -> tuple[ModelEntry, ...]:
        """The models to try for a request: the one the SDK asked for, then the fallbacks
        in their order (a model of our own provider once). Kept per requested model (a
        bounded number), made again when the catalog's entry of one of them changed: the
        same tuple meanwhile (the engine reads a chain it saw last without reading it
        again)."""
        kept = self._chains.get(requested)
        if kept is not None:
            get, provider = self.catalog.get, self.provider
            for model_id, entry in kept[1]:
                if get(provider, model_id) is not entry:
                    break
            else:
                return kept[0]
        own = [step for step in self.steps if isinstance(step, str)]
        looked = [(m, self.catalog.get(self.provider, m)) for m in {requested or "", *own}]
        chain = tuple(self._new_chain(requested))
        if len(self._chains) >= _CHAINS_KEPT:  # model names come from callers: stay bounded
            with contextlib.suppress(StopIteration, RuntimeError):
                self._chains.pop(next(iter(self._chains)), None)
        self._chains[requested] = (chain, looked)
        return chain

    def __len__(self) -> int:
        """Chains kept."""
        return len(self._chains)

    def _new_chain(self, requested: str | None) -> list[ModelEntry]:
        seen = {requested} if requested else set()
        chain = [self.own(requested)] if requested else []
        for step in self.steps:
            if isinstance(step, ModelEntry):
                chain.append(step)
            elif step not in seen:
                seen.add(step)
                chain.append(self.own(step))
        return chain or [self.own("")]  # a request with no model: one pass over the keys

    def own(self, model_id: str) -> ModelEntry:
        """The entry of ``model_id`` of our own provider (made up when the catalog has none)."""
        return self.catalog.get(self.provider, model_id) or ModelEntry(
            id=model_id, name=model_id, provider=self.provider, api=self.wire
        )
