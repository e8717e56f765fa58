"""RedisStore: the manager's state shared through Redis (or Valkey) by many processes.

Every pick is served from the manager's own view in memory; this store only carries
changes. A change (a cooldown, a disable, an ``enable``, a breaker opening or closing, a
use of an rpm-limited key) is queued without waiting and sent by a background task as a
Lua script that merges it atomically into what Redis holds (cooldowns only grow, a strike
escalates once per event) and publishes the merged result on one channel. Every process
applies what it hears to its own view. Redis down, slow or restarted empty costs no
request: the view keeps serving, one warning says so, and on reconnect the queued
changes and everything still resting are sent again.

Redis holds only profile names, providers, routing fields and a key fingerprint (a keyed
BLAKE2b digest of the whole key), never a key or part of one; every Redis key starts with
the prefix and expires once its content is stale. A profile's record is kept per name, key
fingerprint *and* base URL: a key rotated under the same name starts with a clean record,
and two processes with other keys, or the same key at other base URLs, under one name never
mix their states (the same key at two base URLs is reported to every process that has it).
The same key at the same base URL with other routing fields (models, priority, rpm) is
reported and not merged.

A new process takes in what the others stored before it serves its first requests: the
store is not :attr:`~RedisStore.ready` until that first load is done, for at most
``ready_timeout`` seconds after :meth:`~RedisStore.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import anyio

from failover.errors import ConfigError
from failover.store.base import Store
from failover.store.redis_changes import Op, RedisChanges
from failover.store.redis_scripts import FOREVER, SCRIPTS, rpm_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from failover.profiles import FailoverManager

__all__ = ["FOREVER", "RedisStore", "rpm_key"]

logger = logging.getLogger("failover.store")

_UNREACHABLE: tuple[type[BaseException], ...] = (OSError,)  # and redis-py's, once imported


async def _close(resource: Redis | PubSub) -> None:
    """Close a redis-py client or pub/sub: ``aclose()`` since redis-py 5.0.1, ``close()``
    in 5.0.0."""
    close: Callable[[], Awaitable[object]] = getattr(resource, "aclose", None) or resource.close
    await close()


class RedisStore(RedisChanges, Store):
    """Shares a manager's state with every process that uses the same Redis.

    Args:
        url_or_client: A ``redis://`` URL, or a ``redis.asyncio.Redis`` client (its
            connection settings are used as they are).
        prefix: Every Redis key and the channel start with ``prefix:``; managers sharing
            state use the same prefix.
        timeout: Seconds one Redis operation may take before the store counts Redis as
            unreachable (no request ever waits for it: picks are served from memory).
        grace: Seconds a profile's record outlives its last change or its rest.
        ready_timeout: Seconds after :meth:`start` that requests wait, at most, for the
            first load of what other processes stored (see :meth:`wait_ready`); past it
            they go ahead on this process's own view and one warning says so. ``0``: never
            wait.
        on_warning: Called with a message when Redis becomes unreachable (once per
            outage), when it is back, when the first load is late, and when profiles
            disagree between processes.

    Example:
        >>> store = RedisStore("redis://localhost:6379/0", prefix="myapp")
        >>> manager = FailoverManager(profiles=profiles, store=store)  # doctest: +SKIP
        >>> async with manager:  # doctest: +SKIP
        ...     ...
    """

    shared = True

    def __init__(
        self,
        url_or_client: str | Redis,
        *,
        prefix: str = "failover",
        timeout: float = 1.0,
        grace: float = 3600.0,
        ready_timeout: float = 1.0,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        global _UNREACHABLE
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "RedisStore needs redis-py: pip install 'llm-failover[redis]'"
            ) from exc
        _UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ConfigError(f"RedisStore prefix must be a non-empty word, got {prefix!r}")
        if not timeout > 0 or math.isinf(timeout):
            raise ConfigError(f"RedisStore timeout must be > 0 and finite, got {timeout!r}")
        if not ready_timeout >= 0 or math.isinf(ready_timeout):
            raise ConfigError(
                f"RedisStore ready_timeout must be >= 0 and finite, got {ready_timeout!r}"
            )
        if isinstance(url_or_client, str):
            if not url_or_client.startswith(("redis://", "rediss://", "unix://", "valkey://")):
                raise ConfigError(
                    "RedisStore needs a redis:// (or rediss://, unix://) URL or a "
                    f"redis.asyncio.Redis client, got {url_or_client.split('@')[-1]!r}"
                )
            url = url_or_client.replace("valkey://", "redis://", 1)
            self._client: Redis = aioredis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        self._url = url_or_client if isinstance(url_or_client, str) else None
        self.prefix = prefix
        self.channel = f"{prefix}:events"
        self.timeout = timeout
        self.grace = grace
        self.ready_timeout = ready_timeout
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._warning_callbacks: list[Callable[[str], None]] = []
        if on_warning is not None:
            self._warning_callbacks.append(on_warning)
        self._manager: FailoverManager | None = None
        self._queue: deque[Op] = deque()
        self._wakeup: asyncio.Event | None = None
        self._pending: Counter[str] = Counter()  # changes of ours not yet heard back
        self._sequence = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._stop: anyio.CancelScope | None = None  # the background task's, for aclose
        self._sending: asyncio.Lock | None = None
        self._connected = False
        self._down_since: float | None = None
        self._ready = True  # nothing to wait for before start()
        self._loaded: asyncio.Event | None = None  # set once ready, on the store's loop
        self._ready_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self.conflicts: dict[str, str] = {}
        """Profile name -> why its state is kept apart from another process's: ``"routing"``
        (same key and base URL, other models, priority or rpm: not shared until they agree)
        or ``"base_url"`` (the same key at another base URL: each keeps a state of its own)."""
        self.propagation: deque[float] = deque(maxlen=100_000)
        """Seconds between another process's change and this one taking it in."""
        self.sent = 0
        """Changes sent to Redis."""
        self.applied = 0
        """Changes of other processes taken in."""
        self.dropped = 0
        """Changes dropped because the queue overflowed during a long outage."""

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, connected={self._connected})"

    @property
    def redis(self) -> Redis:
        """The ``redis.asyncio`` client this store talks through (budgets and token
        windows run their own scripts on it, under :attr:`prefix`)."""
        return self._client

    @property
    def connected(self) -> bool:
        """Whether the store is talking to Redis now."""
        return self._connected

    @property
    def running(self) -> bool:
        """Whether the background sync runs (from :meth:`start` until :meth:`aclose`)."""
        return self._task is not None and not self._task.done()

    @property
    def ready(self) -> bool:
        """Whether what other processes stored is in the manager's view.

        ``False`` from :meth:`start` until the first load is done, Redis turned out
        unreachable, or ``ready_timeout`` passed (whichever comes first).
        """
        return self._ready

    def on_warning(self, callback: Callable[[str], None]) -> Callable[[str], None]:
        """Register ``callback(message)`` for outages, recoveries and disagreements."""
        self._warning_callbacks.append(callback)
        return callback

    def attach(self, manager: FailoverManager) -> None:
        """Bind the store to ``manager`` (one manager per store)."""
        if self._manager is not None and self._manager is not manager:
            raise ConfigError("a RedisStore serves one FailoverManager; create one per manager")
        self._manager = manager

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sync; returns at once, even when Redis is unreachable.

        The first load of what other processes stored starts with it: until it is done
        (for at most ``ready_timeout``), the store is not :attr:`ready`.

        Raises:
            ConfigError: Called under trio: redis-py's client runs on asyncio only.
        """
        from failover._tasks import running_on_trio

        if running_on_trio():
            raise ConfigError(
                "RedisStore runs on asyncio (redis-py's asyncio client); under trio, use "
                "MemoryStore or run the client on asyncio"
            )
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._loaded = asyncio.Event()
        self._ready = self.ready_timeout == 0
        if not self._ready:
            self._ready_timer = self._loop.call_later(self.ready_timeout, self._load_is_late)
        self._stop = anyio.CancelScope()
        self._task = self._loop.create_task(self._run(self._stop), name="failover-store")

    async def wait_ready(self) -> None:
        """Wait until :attr:`ready`: the first load after :meth:`start` is done.

        Waits at most ``ready_timeout`` (counted from :meth:`start`); past it, requests go
        ahead on this process's own view, one warning says so (on the ``failover.store``
        logger and to the ``on_warning`` callbacks), and what was stored is taken in when
        it arrives. Returns at once before :meth:`start` and after :meth:`aclose`.
        """
        if self._ready:
            return
        with anyio.move_on_after(self.ready_timeout):  # the timer of start() ends it sooner
            if self._loaded is not None and self._on_own_loop():
                await self._loaded.wait()
            else:  # another thread's event loop (a sync transport's) shares no event
                while not self._ready:  # noqa: ASYNC110 - so look now and then
                    await anyio.sleep(0.005)

    async def aclose(self) -> None:
        """Send what is queued (for up to ``timeout``), stop syncing, close connections.

        Runs to its end, in bounded time, even when the caller is being cancelled.
        """
        task, self._task = self._task, None
        self._set_ready()
        with anyio.CancelScope(shield=True):
            if task is not None:
                if self._connected and self._queue:
                    with anyio.move_on_after(self.timeout), contextlib.suppress(Exception):
                        await self._flush()
                if self._stop is not None:
                    self._stop.cancel()  # anyio cancels again until the task has left
                with anyio.move_on_after(self.timeout * 2), contextlib.suppress(Exception):
                    await task
            self._connected = False
            if self._owns_client:
                with anyio.move_on_after(self.timeout), contextlib.suppress(Exception):
                    await _close(self._client)

    async def settle(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 - a public name
        """Wait until every change of ours was sent and heard back; return whether it was.

        For tests and benchmarks: production code never needs to wait for the store.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._connected and not self._queue and not +self._pending:
                return True
            await asyncio.sleep(0.002)
        return False

    # -- being ready ----------------------------------------------------------------------

    def _set_ready(self) -> None:
        self._ready = True
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None
        if self._loaded is not None and self._on_own_loop():
            self._loaded.set()

    def _load_is_late(self) -> None:
        """``ready_timeout`` passed before the first load was done: fail open, say so."""
        self._ready_timer = None
        if not self._ready:
            self._set_ready()
            self._warn(
                f"shared failover state not loaded within {self.ready_timeout:g} s of start; "
                "requests go ahead on this process's own view until it arrives"
            )

    def _on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no asyncio loop here (trio)
            return False

    # -- the background task ----------------------------------------------------------

    async def _run(self, stop: anyio.CancelScope) -> None:
        delay = 0.05
        with stop:
            while True:
                pubsub = self._client.pubsub()
                try:
                    with anyio.fail_after(self.timeout):
                        await pubsub.subscribe(self.channel)
                    await self._resync()
                    self._set_connected(True)
                    self._set_ready()
                    delay = 0.05
                    await self._serve(pubsub)
                except Exception as error:  # Redis unreachable, dropped, slow: keep serving
                    self._set_connected(False, error)
                    self._set_ready()  # nothing to wait for: the view is all there is
                finally:
                    with anyio.move_on_after(self.timeout, shield=True):
                        with contextlib.suppress(Exception):
                            await _close(pubsub)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _serve(self, pubsub: PubSub) -> None:
        """Take in what others publish and send what is queued, until either fails."""
        failures: list[Exception] = []
        async with anyio.create_task_group() as parts:

            async def part(work: Callable[[], Awaitable[None]]) -> None:
                try:
                    await work()
                except Exception as error:
                    failures.append(error)
                    parts.cancel_scope.cancel()

            parts.start_soon(part, lambda: self._read(pubsub))
            parts.start_soon(part, self._write)
        if failures:
            raise failures[0]

    def _set_connected(self, connected: bool, error: BaseException | None = None) -> None:
        if connected:
            if self._down_since is not None:
                self._warn("Redis is reachable again; shared failover state re-published")
            self._connected, self._down_since = True, None
            return
        self._connected = False
        # what is still queued is sent again after the reconnect; nothing is heard back
        self._pending = Counter(op.target for op in self._queue if op.target and op.pending)
        if self._down_since is None:
            self._down_since = time.monotonic()
            what = type(error).__name__ if error is not None else "no answer"
            self._warn(
                f"Redis unreachable ({what}); failover state is kept in this process and "
                "re-published when Redis is back"
            )

    def _warn(self, message: str) -> None:
        logger.warning("failover store %s: %s", self.prefix, message)
        for callback in self._warning_callbacks:
            try:
                callback(message)
            except Exception:
                logger.exception("store warning callback %r raised", callback)

    async def _resync(self) -> None:
        """After (re)connecting: send what waited, re-publish what rests, read the rest."""
        manager = self._require_manager()
        for profile in manager.list_profiles():
            self.register(profile)
        for profile in manager.shared_profiles():
            self.profile_changed(profile, "cool", struck=False)
        for key, until, strikes in manager.shared_breakers():
            self.breaker_changed(key, until, strikes)
        with anyio.fail_after(self.timeout * 4):
            await self._flush()
        with anyio.fail_after(self.timeout * 4):
            await self._load()

    async def _load(self) -> None:
        """Take in the state other processes left in Redis."""
        manager = self._require_manager()
        profiles = manager.list_profiles()
        async with self._client.pipeline(transaction=False) as pipe:
            for profile in profiles:
                pipe.hgetall(self.profile_key(profile))
            records = await pipe.execute()
        for profile, record in zip(profiles, records, strict=True):
            if record and "status" in record:
                self._apply_profile(
                    {**record, "name": profile.name, "id": self.identity(profile), "at": None}
                )
        async for key in self._client.scan_iter(match=f"{self.prefix}:breaker:*", count=500):
            record = await cast("Awaitable[dict[str, str]]", self._client.hgetall(key))
            provider, base_url, model = key[len(self.prefix) + 9 :].split("|", 2)
            if record:
                self._apply_breaker(
                    {
                        "provider": provider,
                        "base_url": base_url,
                        "model": model,
                        "until": record.get("until", 0),
                        "strikes": record.get("strikes", 0),
                        "force": "0",
                        "origin": "",
                        "at": None,
                    }
                )

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            kind = event.get("k")
            if kind == "p":
                self._apply_profile(event)
            elif kind == "b":
                self._apply_breaker(event)
            elif kind == "u":
                self._apply_use(event)
            elif kind == "c":
                self._apply_conflict(event)

    async def _write(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            with anyio.fail_after(self.timeout * 4):
                await self._flush()

    async def _flush(self) -> None:
        """Send every queued change in pipelines; keep them queued if Redis fails."""
        if self._sending is None:
            self._sending = asyncio.Lock()
        async with self._sending:  # one sender at a time: aclose's last flush, the writer
            await self._send_queued()

    async def _send_queued(self) -> None:
        while self._queue:
            batch = list(itertools.islice(self._queue, 0, 512))
            async with self._client.pipeline(transaction=False) as pipe:
                now = time.time()
                for op in batch:
                    args = list(op.args)
                    if op.script == "profile":
                        args[6], args[10] = now, next(self._sequence)
                    elif op.script == "breaker":
                        args[3], args[5] = now, next(self._sequence)
                    elif op.script == "use":
                        args[1] = f"{self.origin}:{next(self._sequence)}"
                    await self._script(op.script)(keys=list(op.keys), args=args, client=pipe)
                with anyio.fail_after(self.timeout):
                    results = await pipe.execute(raise_on_error=False)
            for _ in batch:
                self._queue.popleft()
            self.sent += len(batch)
            for op, result in zip(batch, results, strict=True):
                if isinstance(result, _UNREACHABLE):
                    raise result
                if isinstance(result, Exception):  # a refused change: say so, do not retry
                    if op.target and op.pending and self._pending[op.target] > 0:
                        self._pending[op.target] -= 1
                    logger.error(
                        "failover store %s: Redis refused a change: %s", self.prefix, result
                    )
                elif op.script == "register" and result != "ok":
                    self._note_conflict(op.target, str(result))  # its target: the name
                elif op.script == "register":
                    self.conflicts.pop(op.target, None)  # they agree (again)

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(SCRIPTS[name])
        return script
