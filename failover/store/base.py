"""The seam between a FailoverManager and where its shared state lives."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from failover.profiles import AuthProfile, FailoverManager

__all__ = ["BreakerKey", "ProfileOp", "Store"]

BreakerKey = tuple[str, "str | None", str]
"""A circuit breaker's identity: ``(provider, base_url, model)``."""

ProfileOp = Literal["cool", "heal", "recover"]
"""How a profile's shared state changes.

``cool``: a cooldown or disable was set (it only ever lengthens what is stored);
``heal``: :meth:`~FailoverManager.enable` or :meth:`~FailoverManager.reset_all` cleared it;
``recover``: a success returned a key cooling after errors to rotation (a rate limit or
a disable stored by anyone stays).
"""


class Store:
    """Keeps a manager's state, and shares it when the store is shared.

    The manager always decides from its own view in memory; a store only hears what
    changed (``register``, ``profile_changed``, ``breaker_changed``, ``used``) and, when
    shared, feeds what other processes changed back through the manager's
    ``apply_shared_*`` methods. Every method called by the manager is synchronous and
    must never wait on I/O.
    """

    shared: bool = False
    """Whether other processes see this store's changes (the manager skips the calls
    otherwise)."""

    conflicts: Mapping[str, str] = MappingProxyType({})
    """Profile name -> why its state is kept apart from what another process shares under
    that name (``"routing"``, ``"base_url"``); empty for a store that shares nothing."""

    @property
    def running(self) -> bool:
        """Whether :meth:`start` started a background sync that :meth:`aclose` has not stopped."""
        return False

    @property
    def ready(self) -> bool:
        """Whether the state shared by other processes is in the manager's view.

        ``False`` only from :meth:`start` until the first load of that state finished
        (or gave up); always ``True`` for a store that shares nothing.
        """
        return True

    def attach(self, manager: FailoverManager) -> None:
        """Bind the store to ``manager`` (one manager per store)."""

    def register(self, profile: AuthProfile) -> None:
        """Announce ``profile`` (its name, provider, routing and key fingerprint)."""

    def profile_changed(self, profile: AuthProfile, op: ProfileOp, *, struck: bool) -> None:
        """Share the profile's new status and cooldown; ``struck``: its strikes escalated."""

    def breaker_changed(
        self, key: BreakerKey, open_until: float, strikes: int, *, force: bool = False
    ) -> None:
        """Share a breaker opening (``open_until`` on the manager's clock) or closing (0).

        A close closes the shared breaker only once its rest is over (a probe succeeded),
        unless ``force`` (``enable``/``reset_all``).
        """

    def used(self, profile: AuthProfile, at: float) -> None:
        """Share one use of an rpm-limited profile at clock time ``at``."""

    async def start(self) -> None:
        """Start sharing (a background task for shared stores)."""

    async def wait_ready(self) -> None:
        """Wait until :attr:`ready`, for at most the store's own bound (returns at once here)."""

    async def aclose(self) -> None:
        """Stop sharing and release connections."""
