"""Replication: what a manager tells a shared store, decided in one place.

The manager's parts report each change that other processes should see (a profile
registered, cooled or healed, a breaker opened or closed, a use of an rpm-limited key) to
one :class:`Replica`. A manager whose store shares nothing gets :data:`LOCAL`, whose
methods do nothing; a shared store gets a :class:`StoreReplica`, which forwards to it.
Whether state is shared is decided once, when the manager is built, never per call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.auth_profile import AuthProfile
    from failover.store.base import BreakerKey, ProfileOp, Store

__all__ = ["LOCAL", "Replica", "StoreReplica", "replica_for"]


class Replica:
    """Where a manager's changes go; this base sends them nowhere (nothing is shared)."""

    __slots__ = ()

    shared = False
    """Whether the changes reach other processes."""

    def registered(self, profile: AuthProfile) -> None:
        """``profile`` was added, or its routing fields changed."""

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        """``profile``'s status or cooldown changed (``struck``: its strikes escalated)."""

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """A breaker opened (``open_until`` on the manager's clock) or closed (``0.0``)."""

    def breakers_cleared(self, keys: Iterable[BreakerKey]) -> None:
        """Every one of ``keys`` was closed by hand (``enable`` or ``reset_all``)."""

    def used(self, profile: AuthProfile, at: float) -> None:
        """rpm-limited ``profile`` was handed out at clock time ``at``."""


LOCAL = Replica()
"""The replica of a manager whose store shares nothing."""


class StoreReplica(Replica):
    """Forwards every change to a shared :class:`~failover.store.base.Store`.

    The store's methods are synchronous and never wait on I/O (a shared store queues
    the change for its background task), so forwarding keeps the manager's calls fast.
    """

    __slots__ = ("store",)

    shared = True

    def __init__(self, store: Store) -> None:
        self.store = store

    def registered(self, profile: AuthProfile) -> None:
        """Announce ``profile`` (name, provider, routing, key fingerprint) to the store."""
        self.store.register(profile)

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        """Share ``profile``'s new status and cooldown."""
        self.store.profile_changed(profile, op, struck=struck)

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """Share a breaker's opening or closing."""
        self.store.breaker_changed(key, open_until, strikes, force=force)

    def breakers_cleared(self, keys: Iterable[BreakerKey]) -> None:
        """Close each of ``keys`` in every process, whatever their rest (``force``)."""
        for key in keys:
            self.store.breaker_changed(key, 0.0, 0, force=True)

    def used(self, profile: AuthProfile, at: float) -> None:
        """Share one use of rpm-limited ``profile``."""
        self.store.used(profile, at)

    def __repr__(self) -> str:
        return f"StoreReplica({self.store!r})"


def replica_for(store: Store) -> Replica:
    """The replica for a manager over ``store``: :data:`LOCAL` unless ``store.shared``."""
    return StoreReplica(store) if store.shared else LOCAL
