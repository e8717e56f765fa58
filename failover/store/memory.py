"""MemoryStore: the manager's state in this process only (the default)."""

from __future__ import annotations

from failover.store.base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Keeps the manager's state in the process: today's behaviour at today's speed.

    The manager's own view in memory *is* the state, so nothing is copied anywhere.
    """

    shared = False

    def __repr__(self) -> str:
        return "MemoryStore()"
