"""Where a FailoverManager keeps the state it shares: in this process or on Redis.

``MemoryStore`` (the default) keeps everything in the process, at no cost. ``RedisStore``
shares cooldowns, disabled keys, breaker rests, escalation strikes and rpm windows with
every process that uses the same Redis (the ``redis`` extra)::

    manager = FailoverManager(config, profiles=profiles, store=RedisStore("redis://host:6379/0"))
    async with manager:  # starts and stops the background sync
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.store.base import BreakerKey, ProfileOp, Store
from failover.store.memory import MemoryStore

if TYPE_CHECKING:
    from failover.store.redis_store import RedisStore

__all__ = ["BreakerKey", "MemoryStore", "ProfileOp", "RedisStore", "Store"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # imported lazily: it needs the ``redis`` extra
        from failover.store.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module 'failover.store' has no attribute {name!r}")
