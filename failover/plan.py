"""Plan: one request's candidates in order, its budgets, its deadline and its waits.

A request is a few walks over its chain. A walk takes the chain's steps in order (the
deployments of a step in the strategy's order) and, per model, its keys: the manager's
next one, past those tried in this request and every key at an endpoint (base URL) that
failed; after a backoff or a wait for recovery the next walk prefers, per model, the keys
that have not failed in this request, then the one that failed longest ago. When a walk
tried nothing (everything rests), it offers the least recently failed key once (the
least-bad fallback). Between walks the plan answers how long to wait, if at all: a backoff
(``max_retries``), else the earliest recovery (``wait_for_recovery``, within the deadline
or ``max_recovery_wait``).

It is pure: it reads the manager's state and its own clock, and it tells what it decides
(a move to another key or model, a model skipped) to the ``Moves`` it was given, which logs
and emits events. The engine runs the attempts::

    while (candidate := plan.next()) is not None:
        try: return await attempt(candidate)
        except ProviderError: pause = plan.failed(candidate, error, action)
    pause = plan.wait()  # None: exhausted

:class:`PinnedPlan` walks the models of one key alone (a response continued on the key
that made it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from failover.attempts import Attempt
from failover.catalog import ModelEntry
from failover.errors import (
    AllAttemptsFailed,
    AtCapacity,
    BudgetExceededError,
    NoProfileAvailable,
    OverBudget,
    OverTokenRate,
    ProviderError,
)
from failover.planner import (
    AFFINITY,
    DEPLOYMENT,
    FALLBACK,
    FIRST,
    HEDGE,
    LEAST_BAD,
    PINNED,
    RETRY,
    ROTATION,
    Candidate,
    Moves,
    Pause,
    Planner,
    Previous,
    Steps,
    first_call,
    skipped_attempt,
)
from failover.policy import Action

if TYPE_CHECKING:
    from failover.affinity import Pin
    from failover.profiles import AuthProfile
    from failover.request import RequestState

__all__ = [
    "FIRST",
    "MAX_RECOVERY_WAITS",
    "Candidate",
    "Moves",
    "Pause",
    "PinnedPlan",
    "Plan",
    "Planner",
    "Previous",
    "Steps",
    "first_call",
]

MAX_RECOVERY_WAITS = 20  # waits for the earliest recovery, per request (time bounds them too)
_FIRST_LOOK, _LONGEST_LOOK = 0.05, 1.0  # pauses before walking again to a model usable now
_FRESH, _WALK, _LEAST_BAD, _DONE = 0, 1, 2, 3


class Plan:
    """One request's candidates, in order, with its budgets and deadline.

    Args:
        planner: The engine's planner.
        state: The request: its id (in moves), deadline (on ``planner.clock``), expected
            usage, and attempts (read: a retry avoids the keys that failed).
        steps: The chain, models it cannot take already left out.
        order: Its models in order with their steps' indexes, when that order is fixed
            (:func:`~failover.planner.fixed_order`, made once for a chain): else the
            planner orders them when they are walked.
        first: The walk's first candidate, when it was handed out already
            (:meth:`Planner.first_key`): the plan goes on from there.
        passed: The walk's first model, when its first key was asked already and none
            was usable (or it was too late): the plan goes on from the next model.
    """

    # What a request's first candidate leaves as it was is read from the class: the
    # success path sets only what it changes (the per-request cost is watched).
    _phase = _FRESH
    _again = _attempted = _retrying = False
    _fallbacks = _previous_step = _rotations = _same_model_retries = 0
    _position = -1
    _retries = _waits = _looks = _walk_start = 0
    _passed: list[ModelEntry] | tuple[()] = ()  # models the walk passed by: no key usable
    _room_at: float | None = None  # when the earliest candidate refused for room has it
    _room_paused_at: float | None = None  # when the last wait for room began
    _spent: dict[str, float] | None = None  # model -> when its spent budget resets (wall)
    _waited = 0.0
    _reason = FIRST
    _order: list[tuple[int, ModelEntry]] | None = None
    _fixed: list[tuple[int, ModelEntry]] | None  # the chain's order when fixed, for each walk
    _previous: Previous | None = None
    _min_context: int | None = None
    _retry: tuple[ProviderError, ModelEntry, AuthProfile] | None = None
    _model: ModelEntry | None = None
    _last_profile: AuthProfile | None = None
    _last_error: ProviderError | None = None
    _failed_endpoints: set[str | None] | tuple[()] = ()
    _tried: set[str]  # the keys tried on the current model (set when a model is entered)
    retry_after: float | None = None
    """The earliest recovery when :meth:`wait` last answered ``None``."""
    pin: Pin | None = None
    """Where the request's conversation was last served: its model goes first, on its key
    while that key is usable (else the walk goes on as without it)."""

    def __init__(
        self,
        planner: Planner,
        state: RequestState,
        steps: Steps,
        order: list[tuple[int, ModelEntry]] | None = None,
        first: Candidate | None = None,
        *,
        passed: ModelEntry | None = None,
    ) -> None:
        self.planner = planner
        self.state = state
        self.steps = steps
        self._order = self._fixed = order
        if first is not None:  # its first candidate handed out already: on from there
            self._began(first)
        elif passed is not None:  # its first model asked for a key already: none was usable
            self._passed_first(passed)

    @property
    def attempts(self) -> list[Attempt]:
        """The request's attempts so far."""
        return self.state.attempts

    def time_left(self) -> float:
        """Seconds until the deadline (``inf`` without one)."""
        return self.state.deadline_at - self.planner.clock()

    def _walk(self, *, again: bool) -> None:
        """Start another walk over the chain (``again``: after a backoff or a wait)."""
        self._again = again
        self._walk_start = len(self.state.attempts)
        self._passed = ()
        self._room_at = None
        self._order = self._fixed  # (else ordered when walked)
        self._position = -1
        self._phase = _WALK
        self._fallbacks = self._previous_step = 0
        self._previous = None
        self._min_context = None
        self._attempted = False
        self._retry = None
        self._model = None

    def next(self) -> Candidate | None:
        """The next candidate of this walk, or ``None`` when the walk is over (then ask
        :meth:`wait`)."""
        if self._phase == _FRESH:
            self._phase = _WALK
            if self.pin is not None:
                self._order = self._pinned_first(self.pin)
            else:  # the first model's first key: nothing is tried, failed or being
                # retried yet, and its state is the class's (:meth:`_next_key`, made short)
                order = self._order = self._walk_order()
                if order:
                    first = order[0][1]
                    profile = self.planner.first_key(first, self.state.deadline_at)
                    if profile is not None:
                        began = Candidate(first, profile, FIRST)
                        self._began(began)
                        return began
                    self._passed_first(first)
        if self._phase == _WALK:
            while True:
                model = self._model
                if model is None:
                    model = self._enter_next_model()
                    if model is None:
                        self._phase = _DONE if self._attempted else _LEAST_BAD
                        break
                candidate = self._next_key(model)
                if candidate is not None:
                    return candidate
                self._leave_model(model)
        if self._phase == _LEAST_BAD:
            self._phase = _DONE
            return self._least_bad()
        return None

    def _began(self, first: Candidate) -> None:
        """Note that ``first``, the walk's first candidate (:meth:`Planner.first_key`), was
        handed out."""
        profile = first.profile
        self._phase = _WALK
        self._position = 0
        self._model = first.model
        self._tried = {profile.name}
        self._last_profile = profile
        self._attempted = True

    def _passed_first(self, first: ModelEntry) -> None:
        """Note that none of the walk's first model's keys was usable (or it was too late,
        :meth:`Planner.first_key`): the walk goes on from the next model."""
        self._phase = _WALK
        self._position = 0
        self._tried = set()
        self._pass_by(first)
        self._leave_model(first)

    def _enter_next_model(self) -> ModelEntry | None:
        """Move to the next model of the walk (``None``: none, or the fallback budget is
        spent), announcing the move."""
        order = self._order
        if order is None:
            order = self._order = self._walk_order()
        planner = self.planner
        while True:
            self._position += 1
            if self._position >= len(order):
                return None
            step, model = order[self._position]
            if self._min_context is not None and (model.context_window or math.inf) <= (
                self._min_context
            ):
                continue
            previous = self._previous
            if previous is not None and step == self._previous_step:
                planner.moves.moved(DEPLOYMENT, self.state.id, previous, model, None)
                self._reason = DEPLOYMENT
            elif previous is not None:
                self._fallbacks += 1
                limit = planner.manager.config.max_model_fallbacks
                if limit is not None and self._fallbacks > limit:
                    self._position = len(order)
                    return None
                planner.moves.moved(FALLBACK, self.state.id, previous, model, None)
                self._reason = FALLBACK
            else:
                self._reason = FIRST
            self._previous_step = step
            self._enter(model)
            return model

    def _enter(self, model: ModelEntry) -> None:
        """Start on ``model``: its own rotation and same-model retry budgets."""
        self._model = model
        self._tried = set()
        self._failed_endpoints = ()
        self._last_profile = None
        self._last_error = None
        self._rotations = self._same_model_retries = 0
        self._retrying = self._again

    def _next_key(self, model: ModelEntry) -> Candidate | None:
        """The next key of ``model`` (the current one), or ``None`` when it has none left."""
        planner = self.planner
        if self.state.deadline_at - planner.clock() <= 0:
            return None
        tried = self._tried
        if tried:
            limit = planner.manager.config.max_key_rotations
            if limit is not None and self._rotations >= limit:
                return None
        failed_endpoints = self._failed_endpoints
        excluded = planner.excluded(model, tried, failed_endpoints) if failed_endpoints else tried
        pin = self.pin
        profile = None
        if pin is not None and not tried and pin.model == model.key and not self._again:
            profile = self._pinned_key(model, pin.profile, excluded)
        if profile is not None:
            self._reason = AFFINITY
        elif self._retrying:
            profile = planner.retry_key(self.state.attempts, model, excluded)
        else:
            profile = planner.pick_key(model.provider, model=model.id, exclude=excluded)
        if profile is None:
            if not tried:
                self._pass_by(model)
            return None
        if tried:
            self._rotations += 1
            previous = (model, self._last_profile, self._last_error)
            planner.moves.moved("key", self.state.id, previous, model, profile)
            reason = ROTATION
        else:
            reason = RETRY if self._retrying else self._reason
        tried.add(profile.name)
        self._last_profile = profile
        self._attempted = True
        return Candidate(model, profile, reason)

    def _walk_order(self) -> list[tuple[int, ModelEntry]]:
        """A walk's order: the chain's fixed one, else the planner's of the steps now."""
        if self._fixed is not None:
            return self._fixed
        return self.planner.order(self.steps, self.state.estimated_usage)

    def _pinned_first(self, pin: Pin) -> list[tuple[int, ModelEntry]]:
        """The walk's order with the pinned model first (as it was when it is not in it)."""
        order = self._walk_order()
        for index, (_, model) in enumerate(order):
            if model.key == pin.model:
                return [order[index], *order[:index], *order[index + 1 :]]
        return order

    def _pinned_key(
        self, model: ModelEntry, name: str, excluded: Collection[str]
    ) -> AuthProfile | None:
        """The pinned key for ``model``, when it is usable now."""
        if name in excluded:
            return None
        manager = self.planner.manager
        others = [p.name for p in manager.list_profiles() if p.name != name]
        return manager.get_next_profile(model.provider, model=model.id, exclude=others)

    def _leave_model(self, model: ModelEntry) -> None:
        """Done with ``model`` (the current one): the next move comes from it."""
        self._previous = (model, self._last_profile, self._last_error)
        self._model = None

    def _least_bad(self) -> Candidate | None:
        """When every option rests after transient failures, the least recently failed.

        A circuit breaker must not turn a partial outage into a total one: rate-limited,
        out-of-quota and dead keys stay out, but a model resting after errors is tried.
        """
        manager = self.planner.manager
        for _, model in self._order or ():
            profile = manager.least_recently_failed(model.provider, model=model.id)
            if profile is not None:
                return Candidate(model, profile, LEAST_BAD)
        return None

    def failed(self, candidate: Candidate, error: ProviderError, action: Action) -> Pause | None:
        """Learn that ``candidate`` failed with ``error`` (the policy said ``action``, which
        is not ``RAISE``); a :class:`Pause` is a backoff to sleep before the next candidate."""
        if isinstance(error, (OverTokenRate, AtCapacity)):
            self._wait_for_room(error)
        elif isinstance(error, OverBudget) and not error.rotates:
            spent = self._spent = self._spent or {}
            spent[candidate.model.key] = error.resets_at
        if candidate.reason == LEAST_BAD:
            if action is Action.RETRY:
                self._note(error, candidate)
            return None
        self._last_error = error
        if action is Action.ROTATE:
            return None
        if action is Action.LARGER_MODEL:
            self._min_context = candidate.model.context_window or 0
        if action is not Action.RETRY:
            self._leave_model(candidate.model)
            return None
        self._note(error, candidate)
        config = self.planner.manager.config
        if (
            config.retry_before_fallback
            and error.should_retry is not False
            and self._same_model_retries < config.max_retries
        ):
            number = self._same_model_retries + 1
            delay = self.planner.backoff_delay(number, error, self.state.deadline_at)
            if delay is not None:
                self._same_model_retries = number
                self._tried.clear()
                self._retrying = True  # the next retry goes to the least recently failed key
                return Pause(delay, number, error, candidate.model, candidate.profile)
        endpoints = self._failed_endpoints
        if not isinstance(endpoints, set):
            endpoints = self._failed_endpoints = set()
        endpoints.add(candidate.profile.base_url)  # sideways: another endpoint, at once
        return None

    def _wait_for_room(self, error: OverTokenRate | AtCapacity) -> None:
        """Note when a candidate refused for room may have it: the token window says; a
        full cap is looked at again shortly."""
        wait = error.retry_after
        if wait is None:  # a full cap: looked at again sooner, then later (a release wakes it)
            wait = self._next_look()
        at = self.planner.clock() + wait
        if self._room_at is None or at < self._room_at:
            self._room_at = at

    def _note(self, error: ProviderError, candidate: Candidate) -> None:
        """Keep the walk's first transient failure that the provider lets be retried."""
        if self._retry is None and error.should_retry is not False:
            self._retry = (error, candidate.model, candidate.profile)

    def wait(self) -> Pause | None:
        """After a walk: how long to wait before the next one, or ``None`` (exhausted).

        A backoff when the walk met a transient failure (``max_retries``); else the
        earliest recovery, with a deadline while it comes before it, without one while the
        waits add up to no more than ``max_recovery_wait``. A recovery of 0 means something
        is usable now: when the walk tried it and it failed, that is backoff's domain, not a
        wait's; when the walk passed it by as resting (its rest ended since, or its breaker's
        probe is in flight), a short look again, counted as a wait.
        """
        planner = self.planner
        config = planner.manager.config
        retry = self._retry
        if retry is not None and self._retries < config.max_retries:
            delay = planner.backoff_delay(self._retries + 1, retry[0], self.state.deadline_at)
            if delay is not None:
                self._retries += 1
                self._walk(again=True)
                return Pause(delay, self._retries, *retry)
        if self._room_paused_at is not None:  # a wait for room ends when room comes back
            self._waited += planner.clock() - self._room_paused_at
            self._room_paused_at = None
        recovery, budget = self._earliest_recovery()
        self.retry_after = recovery
        if self._room_at is not None:  # a key with room soon: wait in the line for it
            room = max(self._room_at - planner.clock(), 0.001)
            self.retry_after = room if not recovery else min(recovery, room)
            return self._room_pause(self.retry_after) if planner.wait_for_recovery else None
        if recovery == 0 and planner.wait_for_recovery and self._passed_by_usable():
            recovery = self._next_look()
        if not planner.wait_for_recovery or not recovery or self._waits >= MAX_RECOVERY_WAITS:
            return None
        if planner.deadline is not None:
            if recovery >= self.time_left():
                return None
        elif self._waited + recovery > config.max_recovery_wait:
            return None
        self._waits += 1
        self._waited += recovery
        self._walk(again=True)
        return Pause(recovery, recovery=True, room=budget)

    def _next_look(self) -> float:
        """The pause before the next look at something that may be usable soon: 0.05 s,
        then twice as long each time, at most 1 s."""
        delay: float = min(_FIRST_LOOK * 2**self._looks, _LONGEST_LOOK)
        self._looks += 1
        return delay

    def _room_pause(self, room: float) -> Pause | None:
        """A wait in the line for room, for ``room`` seconds at most: room may come back
        sooner (a reply used less than it reserved), so it lasts while the deadline (or
        ``max_recovery_wait``) allows, and counts by the time it takes."""
        planner = self.planner
        if planner.deadline is not None:
            allowed = self.time_left()
        else:
            allowed = planner.manager.config.max_recovery_wait - self._waited
        if allowed <= _FIRST_LOOK:
            return None
        self._room_paused_at = planner.clock()
        self._walk(again=True)
        return Pause(min(room, allowed - _FIRST_LOOK / 2), room=True)

    def _earliest_recovery(self) -> tuple[float | None, bool]:
        """Seconds until a model of the chain is usable, and whether that is a spent
        budget's reset: a model whose budget is spent counts from then, unless a reply
        gives back sooner what its reservation held (room, not a rest)."""
        spent = self._spent
        if not spent:
            return self.planner.earliest_recovery(self.steps), False
        steps = [
            kept for step in self.steps if (kept := tuple(m for m in step if m.key not in spent))
        ]
        recovery = self.planner.earliest_recovery(steps) if steps else None
        reset = max(min(spent.values()) - time.time(), 0.001)
        if recovery is None or reset <= recovery:
            return reset, True
        return recovery, False

    def _pass_by(self, model: ModelEntry) -> None:
        """Note that the walk passed ``model`` by: none of its keys was usable."""
        passed = self._passed
        if not isinstance(passed, list):
            passed = self._passed = []
        passed.append(model)

    def _passed_by_usable(self) -> bool:
        """Whether a model the walk passed by as resting, and did not try, is usable now
        (its rest ended since, or its breaker's probe is in flight)."""
        tried = {a.model for a in self.attempts[self._walk_start :] if a.profile is not None}
        manager = self.planner.manager
        for model in self._passed:
            if model.key not in tried:
                at = manager.next_available_at(model.provider, model=model.id)
                if at is not None and at <= manager.clock():
                    return True
        return False

    def earliest_recovery(self) -> float | None:
        """Seconds until the chain's earliest model is usable (0: now; ``None``: never)."""
        return self.planner.earliest_recovery(self.steps)

    def may_hedge(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` may be hedged: the request's first call, in a walk."""
        return candidate.reason != LEAST_BAD and first_call(self.attempts)

    def hedge_target(self, candidate: Candidate) -> Candidate | None:
        """Where a hedge of ``candidate`` goes: another endpoint of its model, else the
        next usable model of the walk."""
        manager = self.planner.manager
        model, profile = candidate.model, candidate.profile
        exclude = self.planner.excluded(model, {profile.name}, {profile.base_url})
        other = manager.get_next_profile(model.provider, model=model.id, exclude=exclude)
        if other is not None:
            return Candidate(model, other, HEDGE)
        for _, following in (self._order or [])[self._position + 1 :]:
            found = manager.get_next_profile(following.provider, model=following.id)
            if found is not None:
                return Candidate(following, found, HEDGE)
        return None

    def exhausted(self, retry_after: float | None) -> AllAttemptsFailed:
        """The error of a request that found nothing to succeed (``retry_after``: the
        earliest recovery)."""
        attempts = self.attempts
        over = [a.error for a in attempts[self._walk_start :] if isinstance(a.error, OverBudget)]
        if over:
            refusal = over[0]
            return BudgetExceededError(
                f"no candidate within budget: {refusal.message}",
                attempts,
                budget=refusal.budget,
                resets_at=refusal.resets_at,
                retry_after=max(0.0, refusal.resets_at - time.time()),
            )
        if first_call(attempts):
            return NoProfileAvailable(
                "no auth profile is available for any model in the chain",
                attempts,
                retry_after=retry_after,
            )
        if self.time_left() <= 0:
            message = f"deadline of {self.planner.deadline}s exceeded"
        else:
            message = f"all {len(self.steps)} steps of the chain failed"
        return AllAttemptsFailed(message, attempts, retry_after=retry_after)


class PinnedPlan:
    """The models of ``owner``'s provider on the key ``owner`` alone, walked again after a
    backoff while a transient failure allows (``max_retries``).

    Models of other providers are recorded as skipped (the field ``unsupported`` names, or
    ``key``). A failure that rests the key ends a walk: no other key may stand in.

    Args:
        planner: The engine's planner.
        state: The request (its attempts and deadline).
        chain: The models, in order.
        owner: The one key to use.
        why: Why no other key can help (the exhaustion's message).
        unsupported: Names a field a model of another provider cannot take.
    """

    __slots__ = (
        "_called",
        "_index",
        "_models",
        "_others",
        "_retries",
        "_transient",
        "owner",
        "planner",
        "retry_after",
        "state",
        "why",
    )

    def __init__(
        self,
        planner: Planner,
        state: RequestState,
        chain: Sequence[ModelEntry],
        owner: AuthProfile,
        why: str,
        unsupported: Callable[[ModelEntry], str | None] | None = None,
    ) -> None:
        self.planner = planner
        self.state = state
        self.owner = owner
        self.why = why
        self._models = []
        for model in chain:
            if model.provider == owner.provider:
                self._models.append(model)
                continue
            field_name = (unsupported(model) if unsupported is not None else None) or "key"
            state.attempts.append(skipped_attempt(field_name, model))
        self._others = [p.name for p in planner.manager.list_profiles() if p.name != owner.name]
        self._called = False
        self._retries = 0
        self._index = 0
        self._transient: ProviderError | None = None
        self.retry_after: float | None = None
        """When the owner's key recovers, once :meth:`wait` answered ``None``."""

    def next(self) -> Candidate | None:
        """The next model on the owner's key, or ``None`` when this walk is over."""
        manager = self.planner.manager
        owner = self.owner
        while self._index < len(self._models):
            model = self._models[self._index]
            self._index += 1
            profile = manager.get_next_profile(owner.provider, model=model.id, exclude=self._others)
            if profile is None or self.state.deadline_at - self.planner.clock() <= 0:
                continue
            self._called = True
            return Candidate(model, profile, PINNED)
        return None

    def failed(self, candidate: Candidate, error: ProviderError, action: Action) -> Pause | None:
        """Learn that ``candidate`` failed (``action`` is not ``RAISE``)."""
        if action is Action.RETRY:
            self._transient = self._transient or error
        elif action is Action.ROTATE:
            self._index = len(self._models)  # the key itself rests now
        return None

    def wait(self) -> Pause | None:
        """A backoff before the next walk, or ``None`` (exhausted)."""
        transient = self._transient
        delay = None
        if transient is not None and self._retries < self.planner.manager.config.max_retries:
            delay = self.planner.backoff_delay(self._retries + 1, transient, self.state.deadline_at)
        if delay is None:
            self.retry_after = self.earliest_recovery()
            return None
        self._retries += 1
        self._index = 0
        self._transient = None
        return Pause(delay)  # no error given: a pinned retry is not announced

    def earliest_recovery(self) -> float | None:
        """Seconds until the owner's key recovers (``None``: it is not resting)."""
        now = self.planner.manager.clock()
        until = self.owner.cooldown_until
        return until - now if until > now else None

    def may_hedge(self, candidate: Candidate) -> bool:
        """Never: a pinned request has one key."""
        return False

    def hedge_target(self, candidate: Candidate) -> Candidate | None:
        """None: a pinned request has one key."""
        return None

    def exhausted(self, retry_after: float | None) -> AllAttemptsFailed:
        """The error when nothing succeeded on the owner's key (``why`` says why no other
        could help)."""
        kind = AllAttemptsFailed if self._called else NoProfileAvailable
        return kind(self.why, self.state.attempts, retry_after=retry_after)
