"""RedisSessionPins: session pins shared through Redis by every worker of an application.

One key per session, ``{prefix}:session:{digest}``, where the digest is BLAKE2b of the
session (never the session's own text: a caller's session may hold user data). Its value
is ``"{model}\\n{profile}"`` and it expires ``ttl`` seconds (to the millisecond, ``PX``)
after its last use, so Redis forgets cold conversations by itself. It needs no more than a
``redis.asyncio.Redis`` client (``RedisStore.redis`` is one)::

    pins = RedisSessionPins(store.redis, store.prefix, ttl=300.0)

``set`` swaps the pin and reads the one it replaces in one command (``SET ... GET``, Redis
6.2 and later; on an older server, ``GETSET`` and ``PEXPIRE`` in one transaction).

While Redis is unreachable, pins are kept in this process (a :class:`SessionPins`), with
one warning per outage on the ``failover.affinity`` logger and one when Redis is back; the
pins made meanwhile stay in this process and are dropped once Redis answers again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from failover.affinity import DEFAULT_SESSION_TTL, Pin, SessionPins, check_session, check_ttl
from failover.errors import ConfigError
from failover.store.outage import Outage

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisSessionPins", "session_key"]

_log = logging.getLogger("failover.affinity")
_T = TypeVar("_T")


def session_key(prefix: str, session: str) -> str:
    """The Redis key holding ``session``'s pin (named by a digest, never the session)."""
    digest = hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{prefix}:session:{digest}"


def _encode(pin: Pin) -> str:
    return f"{pin.model}\n{pin.profile}"


def _decode(value: Any) -> Pin | None:
    """A stored value as a pin; ``None`` for nothing or a value that is not one."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    model, newline, profile = str(value).partition("\n")
    if not newline or not model or not profile:
        return None
    return Pin(model, profile)


def _old_server(error: BaseException) -> bool:
    """Whether ``error`` is a server older than 6.2 refusing ``SET ... GET``."""
    kind = type(error)
    message = str(error).lower()
    return (
        kind.__module__.startswith("redis")
        and kind.__name__ == "ResponseError"
        and ("syntax" in message or "wrong number" in message)
    )


class RedisSessionPins:
    """Session pins on Redis: every process using the same Redis and prefix shares them.

    Args:
        redis: A ``redis.asyncio.Redis`` client (with or without ``decode_responses``).
        prefix: Prepended to every key (``RedisStore.prefix`` to sit beside its state).
        ttl: Seconds a pin lasts after its last use (``set`` or ``touch``).

    Raises:
        ConfigError: ``prefix`` is empty or has spaces, or ``ttl`` is not a finite number > 0.
    """

    def __init__(self, redis: Redis, prefix: str, ttl: float = DEFAULT_SESSION_TTL) -> None:
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ConfigError(f"RedisSessionPins prefix must be a non-empty word, got {prefix!r}")
        self.ttl = check_ttl("RedisSessionPins", ttl)
        self.prefix = prefix
        self._redis = redis
        self._px = max(1, round(self.ttl * 1000))
        self._set_get = True  # SET ... GET (Redis >= 6.2) until the server refuses it
        self._local: SessionPins | None = None
        self._outage = Outage(_log, "failover affinity", "session pins are kept in this process")

    def __repr__(self) -> str:
        return f"RedisSessionPins(prefix={self.prefix!r}, ttl={self.ttl!r})"

    async def _shared(
        self, work: Callable[[], Awaitable[_T]], local: Callable[[SessionPins], Awaitable[_T]]
    ) -> _T:
        """Run ``work`` on Redis; while it is unreachable, ``local`` on this process's pins."""
        try:
            result = await work()
        except Exception as error:
            if not self._outage.failed(error):
                raise
            if self._local is None:
                self._local = SessionPins(self.ttl)
            return await local(self._local)
        if self._outage.answered():
            self._local = None  # shared again
        return result

    async def get(self, session: str) -> Pin | None:
        """The session's pin; ``None`` when unknown or unused for ``ttl`` seconds."""
        key = self._key(session)

        async def work() -> Pin | None:
            return _decode(await self._redis.get(key))

        return await self._shared(work, lambda pins: pins.get(session))

    async def set(self, session: str, pin: Pin) -> Pin | None:
        """Pin the session (its ttl starts again); return the live pin it replaces, if any."""
        if not isinstance(pin, Pin):
            raise TypeError(f"a pin must be a Pin, got {type(pin).__name__}")
        key, value = self._key(session), _encode(pin)

        async def work() -> Pin | None:
            if self._set_get:
                try:
                    return _decode(await self._redis.set(key, value, px=self._px, get=True))
                except Exception as error:
                    if not _old_server(error):
                        raise
                    self._set_get = False
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.getset(key, value)
                pipe.pexpire(key, self._px)
                previous, _ = await pipe.execute()
            return _decode(previous)

        return await self._shared(work, lambda pins: pins.set(session, pin))

    async def touch(self, session: str) -> None:
        """The session was served on its pin again: its ttl starts again (no-op if unknown)."""
        key = self._key(session)

        async def work() -> None:
            await self._redis.pexpire(key, self._px)

        await self._shared(work, lambda pins: pins.touch(session))

    async def forget(self, session: str) -> None:
        """Drop the session's pin."""
        key = self._key(session)

        async def work() -> None:
            await self._redis.delete(key)

        await self._shared(work, lambda pins: pins.forget(session))

    def _key(self, session: str) -> str:
        return session_key(self.prefix, check_session(session))
