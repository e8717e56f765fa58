"""In-flight caps: how many requests one profile (key) or one deployment may have out at once.

A request enters before it is sent (:meth:`InFlight.enter` hands back a :class:`Slot`, or
None when the profile's or the deployment's cap is full, taking nothing) and leaves when
its attempt is over, whatever the outcome: leave in a ``finally`` (or use the slot as a
context manager) so a cancelled request never keeps its place.

The counts are local to the process: ``max_in_flight`` caps what this process sends, not
what every process sharing a store sends together (that is the token windows' job).
Thread-safe; nothing here suspends.
"""

from __future__ import annotations

import threading
from types import TracebackType

__all__ = ["InFlight", "Slot"]


def _check_cap(name: str, cap: int | None) -> None:
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"{name} cap must be a whole number of 1 or more, or None, got {cap!r}")


class Slot:
    """One request's place among those in flight; :meth:`leave` gives it back."""

    __slots__ = ("_owner", "deployment", "profile")

    def __init__(self, owner: InFlight, profile: str, deployment: str) -> None:
        self._owner: InFlight | None = owner
        self.profile = profile
        """The profile the request holds a place on."""
        self.deployment = deployment
        """The deployment the request holds a place on."""

    def __repr__(self) -> str:
        state = "held" if self._owner is not None else "left"
        return f"Slot(profile={self.profile!r}, deployment={self.deployment!r}, {state})"

    @property
    def held(self) -> bool:
        """Whether the slot has not been left yet."""
        return self._owner is not None

    def leave(self) -> None:
        """Give the place back; a second call does nothing."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._leave(self.profile, self.deployment)

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()


class InFlight:
    """Requests in flight per profile and per deployment, in this process, under caps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[str, int] = {}
        self._deployments: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"InFlight(profiles={self._profiles!r}, deployments={self._deployments!r})"

    def enter(
        self, profile: str, profile_cap: int | None, deployment: str, deployment_cap: int | None
    ) -> Slot | None:
        """Take a place on ``profile`` and on ``deployment`` if neither cap is full.

        Args:
            profile: The profile (key) name.
            profile_cap: Its ``max_in_flight`` (None: no cap, still counted).
            deployment: The deployment (its ``provider/model`` id).
            deployment_cap: Its ``max_in_flight`` (None: no cap, still counted).

        Returns:
            A slot to :meth:`~Slot.leave` when the attempt is over, or None (nothing taken)
            when either cap is full.

        Raises:
            ValueError: A cap is not a whole number of 1 or more.
        """
        if profile_cap is not None and (type(profile_cap) is not int or profile_cap < 1):
            _check_cap("profile", profile_cap)  # raises (an int subclass passes)
        if deployment_cap is not None and (type(deployment_cap) is not int or deployment_cap < 1):
            _check_cap("deployment", deployment_cap)  # raises (an int subclass passes)
        with self._lock:
            on_profile = self._profiles.get(profile, 0)
            on_deployment = self._deployments.get(deployment, 0)
            if profile_cap is not None and on_profile >= profile_cap:
                return None
            if deployment_cap is not None and on_deployment >= deployment_cap:
                return None
            self._profiles[profile] = on_profile + 1
            self._deployments[deployment] = on_deployment + 1
        return Slot(self, profile, deployment)

    def _leave(self, profile: str, deployment: str) -> None:
        profiles, deployments = self._profiles, self._deployments
        with self._lock:  # a name with nothing in flight is forgotten: the maps stay bounded
            left = profiles[profile] - 1
            if left:
                profiles[profile] = left
            else:
                del profiles[profile]
            left = deployments[deployment] - 1
            if left:
                deployments[deployment] = left
            else:
                del deployments[deployment]

    def count(self, key: str) -> int:
        """Requests in flight on ``key``, a profile name or a deployment (if a profile and a
        deployment share one name, both counts are added)."""
        with self._lock:
            return self._profiles.get(key, 0) + self._deployments.get(key, 0)

    def counts(self) -> dict[str, dict[str, int]]:
        """Everything in flight now, for status: ``{"profiles": {...}, "deployments": {...}}``."""
        with self._lock:
            return {"profiles": dict(self._profiles), "deployments": dict(self._deployments)}
