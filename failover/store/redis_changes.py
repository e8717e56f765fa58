"""What ``RedisStore`` sends and takes in: one change of the manager's state at a time.

The manager's calls (:meth:`~RedisChanges.register`, :meth:`~RedisChanges.profile_changed`,
:meth:`~RedisChanges.breaker_changed`, :meth:`~RedisChanges.used`) become queued
:class:`Op` s, never waiting; what other processes published is applied to the manager's
view (``_apply_*``), on the manager's clock. The connection, the queue's sending and the
store's life are ``RedisStore``'s (:mod:`failover.store.redis_store`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.errors import ConfigError
from failover.store.base import BreakerKey, ProfileOp
from failover.store.redis_scripts import FOREVER, rpm_key

if TYPE_CHECKING:
    from failover.auth_profile import AuthProfile
    from failover.profiles import FailoverManager

__all__ = ["Op", "RedisChanges"]

_QUEUE_LIMIT = 50_000
_ERROR_CHARS = 200


@dataclass(slots=True)
class Op:
    """One change waiting to be sent."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    target: str  # what it changes, for the count of changes still on the way
    pending: bool = True  # whether an echo is expected (registrations are not echoed)


def _endpoint(profile: AuthProfile) -> str:
    """A digest of where ``profile``'s key is sent (its base URL; the provider's when none)."""
    url = (profile.base_url or "").encode()
    return hashlib.blake2b(url, digest_size=4, person=b"failover-url").hexdigest()


class RedisChanges:
    """The changes part of ``RedisStore``: the Redis keys of each record, the queue of
    changes to send, and the taking in of other processes' changes."""

    prefix: str
    channel: str
    grace: float
    origin: str
    conflicts: dict[str, str]
    propagation: deque[float]
    applied: int
    dropped: int
    _manager: FailoverManager | None
    _queue: deque[Op]
    _pending: Counter[str]
    _wakeup: asyncio.Event | None

    def _warn(self, message: str) -> None:
        raise NotImplementedError  # RedisStore's: logged and told to the callbacks

    def identity(self, profile: AuthProfile) -> str:
        """What tells ``profile``'s shared record apart: its key's fingerprint and a digest
        of its base URL, so the same key at two base URLs keeps two records."""
        return f"{profile.fingerprint}@{_endpoint(profile)}"

    def profile_key(self, profile: AuthProfile) -> str:
        """The Redis key of ``profile``'s state (its name, key fingerprint and base URL)."""
        return f"{self.prefix}:profile:{profile.name}:{self.identity(profile)}"

    def breaker_key(self, key: BreakerKey) -> str:
        """The Redis key of one breaker's rest."""
        provider, base_url, model = key
        return f"{self.prefix}:breaker:{provider}|{base_url or ''}|{model}"

    def rpm_key(self, profile: AuthProfile) -> str:
        """The Redis key of ``profile``'s uses in the last minute."""
        return rpm_key(self.prefix, profile.name, self.identity(profile))

    def register(self, profile: AuthProfile) -> None:
        """Announce ``profile``'s routing fields and key fingerprint."""
        routing = json.dumps(
            [
                profile.provider,
                profile.base_url,
                sorted(profile.models) if profile.models is not None else None,
                profile.priority,
                profile.rate_limit_rpm,
            ]
        )
        self._enqueue(
            Op(
                "register",
                (
                    self.profile_key(profile),
                    f"{self.prefix}:endpoints:{profile.name}:{profile.fingerprint}",
                    self.channel,
                ),
                (
                    profile.fingerprint,
                    profile.provider,
                    routing,
                    self.grace,
                    self.origin,
                    _endpoint(profile),
                    profile.name,
                ),
                profile.name,
                pending=False,
            )
        )

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        """Queue ``profile``'s new state for every process."""
        if self._kept_apart(profile.name):
            return
        until = profile.cooldown_until if op == "cool" else 0.0
        error = (profile.last_error or "")[:_ERROR_CHARS] if op == "cool" else ""
        self._enqueue(
            Op(
                "profile",
                (self.profile_key(profile), self.channel),
                (
                    op,
                    profile.status.value,
                    self._to_wall(until),
                    profile.cooldown_strikes,
                    int(struck),
                    error,
                    None,  # now: filled in when sent
                    profile.fingerprint,
                    profile.provider,
                    self.origin,
                    None,  # seq
                    time.time(),
                    self.grace,
                    profile.name,
                    self.identity(profile),
                ),
                f"p:{profile.name}",
            )
        )

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """Queue a breaker's opening or closing for every process."""
        provider, base_url, model = key
        self._enqueue(
            Op(
                "breaker",
                (self.breaker_key(key), self.channel),
                (
                    self._to_wall(open_until) if open_until else 0,
                    strikes,
                    int(force),
                    None,
                    self.origin,
                    None,
                    time.time(),
                    provider,
                    base_url or "",
                    model,
                ),
                f"b:{self.breaker_key(key)}",
            )
        )

    def used(self, profile: AuthProfile, at: float) -> None:
        """Queue one use of an rpm-limited profile."""
        if self._kept_apart(profile.name):
            return
        self._enqueue(
            Op(
                "use",
                (self.rpm_key(profile), self.channel),
                (
                    self._to_wall(at),
                    None,
                    profile.name,
                    self.origin,
                    time.time(),
                    profile.fingerprint,
                    self.identity(profile),
                ),
                "",
            )
        )

    def _enqueue(self, op: Op) -> None:
        if len(self._queue) >= _QUEUE_LIMIT:
            dropped = self._queue.popleft()
            self.dropped += 1
            if dropped.target and dropped.pending:
                self._pending[dropped.target] -= 1
        self._queue.append(op)
        if op.target and op.pending:
            self._pending[op.target] += 1
        if self._wakeup is not None:
            self._wakeup.set()

    def _note_conflict(self, name: str, verdict: str) -> None:
        """Record and report (once) that ``name`` disagrees with another process."""
        if self.conflicts.get(name) == verdict:
            return
        self.conflicts[name] = verdict
        if verdict == "base_url":
            self._warn(
                f"profile {name!r} has the same key with another base URL in another "
                f"process sharing prefix {self.prefix!r}; each base URL keeps a state of "
                "its own"
            )
        else:
            self._warn(
                f"profile {name!r} has the same key and base URL but other routing fields "
                f"(models, priority or rpm) in another process sharing prefix "
                f"{self.prefix!r}; its state is not shared until they agree"
            )

    def _kept_apart(self, name: str) -> bool:
        """Whether ``name``'s state is not shared: its routing disagrees with another's."""
        return self.conflicts.get(name) == "routing"

    def _require_manager(self) -> FailoverManager:
        if self._manager is None:
            raise ConfigError("this RedisStore is not attached to a FailoverManager")
        return self._manager

    def _heard(self, event: dict[str, Any], target: str) -> bool:
        """Note an event; return whether it is authoritative for ``target`` here."""
        if event.get("origin") == self.origin:
            if self._pending[target] > 0:
                self._pending[target] -= 1
        elif event.get("at"):
            self.propagation.append(max(0.0, time.time() - float(event["at"])))
            self.applied += 1
        return self._pending[target] <= 0

    def _local(self, event: dict[str, Any]) -> AuthProfile | None:
        """This process's profile an event is about: same name, key and base URL."""
        profile = self._require_manager().get_profile(str(event.get("name", "")))
        if profile is None or event.get("id") != self.identity(profile):
            return None
        return profile

    def _apply_profile(self, event: dict[str, Any]) -> None:
        from failover.auth_profile import ProfileStatus

        name = str(event["name"])
        authoritative = self._heard(event, f"p:{name}")
        profile = self._local(event)
        if profile is None or self._kept_apart(name):
            return
        try:
            status = ProfileStatus(event["status"])
        except ValueError:
            return
        self._require_manager().apply_shared_profile(
            name,
            profile.fingerprint,
            status,
            self._to_local(float(event.get("until") or 0)),
            int(float(event.get("strikes") or 0)),
            error=str(event.get("error") or "") or None,
            authoritative=authoritative,
        )

    def _apply_breaker(self, event: dict[str, Any]) -> None:
        key: BreakerKey = (
            str(event["provider"]),
            str(event["base_url"]) or None,
            str(event["model"]),
        )
        self._heard(event, f"b:{self.breaker_key(key)}")
        until = float(event.get("until") or 0)
        self._require_manager().apply_shared_breaker(
            key,
            self._to_local(until) if until else 0.0,
            int(float(event.get("strikes") or 0)),
            force=str(event.get("force")) == "1",
        )

    def _apply_use(self, event: dict[str, Any]) -> None:
        if event.get("origin") == self.origin:
            return
        self._heard(event, "")
        profile = self._local(event)
        if profile is not None and not self._kept_apart(profile.name):
            self._require_manager().apply_shared_use(
                profile.name, profile.fingerprint, self._to_local(float(event["t"]))
            )

    def _apply_conflict(self, event: dict[str, Any]) -> None:
        """Another process registered a name and key of ours at another base URL."""
        profile = self._require_manager().get_profile(str(event.get("name", "")))
        if (
            event.get("origin") != self.origin
            and profile is not None
            and profile.fingerprint == event.get("fp")
            and profile.name not in self.conflicts
        ):
            self._note_conflict(profile.name, "base_url")

    def _to_wall(self, at: float) -> float:
        """A time on the manager's clock as wall-clock seconds (what Redis holds)."""
        if math.isinf(at):
            return FOREVER
        manager = self._require_manager()
        return time.time() + (at - manager.clock())

    def _to_local(self, wall: float) -> float:
        """Wall-clock seconds from Redis as a time on the manager's clock."""
        if wall >= FOREVER / 10:
            return math.inf
        if wall <= 0:
            return 0.0
        manager = self._require_manager()
        return manager.clock() + (wall - time.time())
