"""The planner: what every request's plan of one engine shares and decides alike.

The strategy's order of a step's deployments, a model's next key (the strategy may prefer
the second), the key for a retry (one that has not failed in this request, else the one
that failed longest ago), the keys excluded after failures, models skipped as unable to
take the request, the earliest recovery and the backoff before a retry. And the types a
plan answers in: :class:`Candidate` (an attempt to make) and :class:`Pause` (a wait).
Pure: it reads the manager and the clock it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.errors import ProviderError, UnsupportedParameterError
from failover.policy import Backoff

if TYPE_CHECKING:
    from failover.profiles import AuthProfile, FailoverManager
    from failover.routing import RoutingView, Strategy

__all__ = [
    "AFFINITY",
    "DEPLOYMENT",
    "FALLBACK",
    "FIRST",
    "HEDGE",
    "LEAST_BAD",
    "PINNED",
    "RETRY",
    "ROTATION",
    "Candidate",
    "Moves",
    "Pause",
    "PickKey",
    "Planner",
    "Previous",
    "Steps",
    "first_call",
    "fixed_order",
    "skipped_attempt",
]

Steps = list[tuple[ModelEntry, ...]]
"""A chain as steps; a step is one model or a group of equivalent deployments."""
Previous = tuple[ModelEntry, "AuthProfile | None", ProviderError | None]
"""Where a move comes from: the model left, its last key and its last error."""
_INF = math.inf
FIRST, ROTATION, DEPLOYMENT, FALLBACK, RETRY = "first", "rotation", "deployment", "model", "retry"
LEAST_BAD, HEDGE, PINNED, AFFINITY = "least_bad", "hedge", "pinned", "affinity"


class Candidate:
    """One attempt to make: a model, a key, and why this one.

    ``reason``: ``first`` (the request's first choice for a model), ``rotation`` (another
    key of the same model), ``deployment`` / ``model`` (moved sideways / fell back, the
    model's first key), ``retry`` (after a backoff or a wait), ``least_bad`` (everything
    rests), ``hedge`` (a second attempt in parallel), ``pinned`` (a key chosen by the caller),
    ``affinity`` (where the request's conversation was last served).
    """

    __slots__ = ("model", "profile", "reason")

    def __init__(self, model: ModelEntry, profile: AuthProfile, reason: str) -> None:
        self.model = model
        self.profile = profile
        self.reason = reason

    @property
    def endpoint(self) -> str | None:
        """The key's base URL (``None``: its provider's public one)."""
        return self.profile.base_url

    def __repr__(self) -> str:
        return f"Candidate({self.model.key!r}, {self.profile.name!r}, {self.reason!r})"


class Pause:
    """A wait before the next candidate: a backoff before retrying what failed (``error``,
    ``model``, ``profile``, retry ``number``), or a wait for the earliest recovery
    (``room``: for room on a key, which a reply that used less than it reserved may give
    back sooner; else for a rest to end, which nothing cuts short)."""

    __slots__ = ("delay", "error", "model", "number", "profile", "recovery", "room")

    def __init__(
        self,
        delay: float,
        number: int = 0,
        error: ProviderError | None = None,
        model: ModelEntry | None = None,
        profile: AuthProfile | None = None,
        *,
        recovery: bool = False,
        room: bool = False,
    ) -> None:
        self.delay = delay
        self.number = number
        self.error = error
        self.model = model
        self.profile = profile
        self.recovery = recovery or room
        self.room = room

    def __repr__(self) -> str:
        kind = "recovery" if self.recovery else f"retry {self.number}"
        return f"Pause({self.delay:.3g}s, {kind})"


class PickKey(Protocol):
    """How a planner picks keys (see :attr:`Planner.pick_key`)."""

    def __call__(
        self, provider: str, *, model: str, exclude: Collection[str] = ()
    ) -> AuthProfile | None:
        """The next key of ``provider`` for the model ``model`` (its id), past the names
        ``exclude``, counted as used (``None``: none is usable)."""


class Moves(Protocol):
    """Who hears the plan's decisions (the engine: logs and events)."""

    def moved(
        self,
        kind: str,
        request_id: str,
        previous: Previous,
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        """The request moves from ``previous`` to ``model`` (``kind``: key, deployment, model)."""

    def skipped(self, request_id: str, model: str, field_name: str) -> None:
        """``model`` is skipped: it cannot take the request's ``field_name``."""


def first_call(attempts: Sequence[Attempt]) -> bool:
    """Whether no call has been made yet (models skipped as unsupported are no calls)."""
    return all(attempt.profile is None for attempt in attempts)


class Planner:
    """What every plan of one engine shares: the manager, the strategy, backoff and limits.

    Args:
        manager: The keys and their health.
        strategy: Orders the deployments of a step (and, with ``prefer``, a model's keys).
        routing: What strategies read (latency, in-flight counts, weights).
        backoff: The wait before a retry.
        moves: Hears every move and skip.
        wait_for_recovery: Whether a request waits for the earliest recovery.
        deadline: The request's deadline in seconds (``None``: ``max_recovery_wait`` bounds
            the waits instead).
        clock: Monotonic seconds, for the deadline.
    """

    __slots__ = (
        "_chain",
        "_prefer",
        "backoff",
        "clock",
        "deadline",
        "manager",
        "moves",
        "pick_key",
        "routing",
        "strategy",
        "wait_for_recovery",
    )

    def __init__(
        self,
        manager: FailoverManager,
        strategy: Strategy,
        routing: RoutingView,
        backoff: Backoff,
        moves: Moves,
        *,
        wait_for_recovery: bool,
        deadline: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.manager = manager
        self.strategy = strategy
        self.routing = routing
        self.backoff = backoff
        self.moves = moves
        self.wait_for_recovery = wait_for_recovery
        self.deadline = deadline
        self.clock = clock
        # the chain last planned, when immutable, and its steps with their fixed order (the
        # pair handed out as kept), swapped in one assignment: a thread never reads one
        # chain's steps beside another's order
        self._chain: tuple[object, tuple[Steps, list[tuple[int, ModelEntry]] | None]] = (
            None,
            ([], None),
        )
        self._prefer: Callable[[AuthProfile, AuthProfile, RoutingView], bool] | None = getattr(
            strategy, "prefer", None
        )
        self.pick_key: PickKey = (
            manager.get_next_profile if self._prefer is None else self._preferred_key
        )
        """The next key for a model (its provider, its id), past the names excluded: the
        manager's :meth:`~failover.profiles.FailoverManager.get_next_profile`, or the better
        of its next two when the strategy chooses among keys (its ``prefer``, read once)."""

    def supported(
        self,
        request_id: str,
        steps: Steps,
        unsupported: Callable[[ModelEntry], str | None],
        attempts: list[Attempt],
    ) -> Steps:
        """The models of ``steps`` that can take the request; the others are recorded.

        Raises:
            UnsupportedParameterError: No model can take it.
        """
        usable: Steps = []
        first_field: str | None = None
        for step in steps:
            kept = []
            for model in step:
                field_name = unsupported(model)
                if field_name is None:
                    kept.append(model)
                    continue
                first_field = first_field or field_name
                attempts.append(skipped_attempt(field_name, model))
                self.moves.skipped(request_id, model.key, field_name)
            if kept:
                usable.append(tuple(kept))
        if not usable and first_field is not None:
            error = UnsupportedParameterError(first_field, [m.key for step in steps for m in step])
            error.attempts = tuple(attempts)
            raise error
        return usable

    def steps_of(
        self, chain: Sequence[ModelEntry | Sequence[ModelEntry]]
    ) -> tuple[Steps, list[tuple[int, ModelEntry]] | None]:
        """``chain`` as steps (each a tuple of models) and, when no step is a group, their
        order (:func:`fixed_order`); made once for a chain that cannot change (a tuple of
        tuples and models, as :class:`~failover.chain.FallbackChain` keeps its steps).
        Callers read both, never change them."""
        seen, planned = self._chain
        if chain is seen:
            return planned
        steps = [(step,) if isinstance(step, ModelEntry) else tuple(step) for step in chain]
        planned = steps, fixed_order(steps)
        if type(chain) is tuple and all(
            type(step) is tuple or isinstance(step, ModelEntry) for step in chain
        ):
            self._chain = (chain, planned)
        return planned

    def first_key(self, model: ModelEntry, deadline_at: float) -> AuthProfile | None:
        """The key of a walk's first candidate (reason ``first``), before anything is tried
        in it: the manager's next for ``model``, the walk's first; ``None`` when none is
        usable, or the deadline (``deadline_at``, on :attr:`clock`) has passed."""
        if deadline_at == _INF or deadline_at - self.clock() > 0:
            return self.pick_key(model.provider, model=model.id)
        return None

    def order(self, steps: Steps, usage: TokenUsage) -> list[tuple[int, ModelEntry]]:
        """Every model to try, with its step's index, deployments in the strategy's order."""
        ordered = []
        for index, step in enumerate(steps):
            if len(step) == 1:  # not a group: nothing to order
                ordered.append((index, step[0]))
            else:
                ordered += [(index, m) for m in self.strategy.order(step, self.routing, usage)]
        return ordered

    def _preferred_key(
        self, provider: str, *, model: str, exclude: Collection[str] = ()
    ) -> AuthProfile | None:
        """:attr:`pick_key` with ``prefer``: the better of the manager's next two keys."""
        manager = self.manager
        prefer = self._prefer
        assert prefer is not None
        first = manager.peek_next_profile(provider, model=model, exclude=exclude)
        if first is not None:
            passed = {*exclude, first.name}
            second = manager.peek_next_profile(provider, model=model, exclude=passed)
            if second is not None and prefer(first, second, self.routing):
                exclude = passed
        return manager.get_next_profile(provider, model=model, exclude=exclude)

    def retry_key(
        self, attempts: Sequence[Attempt], model: ModelEntry, exclude: Collection[str]
    ) -> AuthProfile | None:
        """The key for a retry of ``model``: one that has not failed in this request, else
        the one whose last failure in it is the oldest."""
        failed: dict[str, int] = {}  # key -> when it last failed here (attempt index)
        for index, past in enumerate(attempts):
            if past.model == model.key and past.profile is not None and past.outcome != "ok":
                failed[past.profile] = index
        pick_key, provider, model_id = self.pick_key, model.provider, model.id
        if not failed:
            return pick_key(provider, model=model_id, exclude=exclude)
        fresh = pick_key(provider, model=model_id, exclude={*exclude, *failed})
        if fresh is not None:
            return fresh
        for name in sorted(failed, key=failed.__getitem__):
            if name not in exclude:
                others = {*exclude, *(k for k in failed if k != name)}
                profile = pick_key(provider, model=model_id, exclude=others)
                if profile is not None:
                    return profile
        return None

    def excluded(
        self, model: ModelEntry, tried: set[str], failed_endpoints: Collection[str | None]
    ) -> Collection[str]:
        """The keys not to pick: those tried, and every key at an endpoint that failed."""
        if not failed_endpoints:
            return tried
        return tried | {
            p.name
            for p in self.manager.list_profiles()
            if p.provider == model.provider and p.base_url in failed_endpoints
        }

    def earliest_recovery(self, steps: Steps) -> float | None:
        """Seconds until the earliest model of ``steps`` is usable (0: now; ``None``: never)."""
        manager = self.manager
        times = [
            at
            for step in steps
            for model in step
            if (at := manager.next_available_at(model.provider, model=model.id)) is not None
        ]
        # read the clock after the manager did: "usable now" must come out as 0, not as the
        # few microseconds between two readings
        return max(0.0, min(times) - manager.clock()) if times else None

    def backoff_delay(self, number: int, error: ProviderError, deadline_at: float) -> float | None:
        """The wait before retry ``number`` after ``error``, or ``None`` when it is longer
        than ``max_retry_delay`` or than what is left before ``deadline_at``."""
        delay = self.backoff.delay(number, error.retry_after)
        if delay <= self.manager.config.max_retry_delay and delay < deadline_at - self.clock():
            return delay
        return None


def fixed_order(steps: Steps) -> list[tuple[int, ModelEntry]] | None:
    """Every model of ``steps`` with its step's index, when no step is a group (nothing for
    a strategy to order: the same order for every request); ``None`` when one is."""
    if all(len(step) == 1 for step in steps):
        return [(index, step[0]) for index, step in enumerate(steps)]
    return None


def skipped_attempt(field_name: str, model: ModelEntry) -> Attempt:
    """The attempt recording ``model`` skipped before any call (it cannot take ``field_name``)."""
    error = UnsupportedParameterError(field_name, [model.key])
    error.provider, error.model = model.provider, model.id
    return Attempt(model.key, None, error.kind, None, None, 0.0, error)
