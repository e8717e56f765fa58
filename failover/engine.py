"""The engine: runs a request's attempts and owns its whole life.

A face (ResilientClient, ResilientTransport) builds a request (a RequestState, a chain and
an attempt: any coroutine taking an AttemptContext) and hands it to :meth:`Engine.run`. The
engine asks the request's :class:`~failover.plan.Plan` for candidates and runs them (its
first one the planner's, the plan made only when that fails: see :meth:`Engine._run`)::

    while (candidate := plan.next()) is not None:
        try: the attempt -> success: mark it, return
        except ProviderError: record it, decide (policy), plan.failed(...)
    pause = plan.wait()  # a backoff or a wait for recovery, or None: exhausted

Every decision (logs and events) is announced here; telemetry listens: to the events, and
to each request's life (a RequestListener the engine alone calls). It knows nothing of
HTTP: failures arrive as ProviderErrors.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from failover import logs
from failover._secrets import KeyScrubber
from failover._tasks import (
    ASYNCIO_TIMEOUT_WORKS,
    AsyncioTimeout,
    scope_within,
)
from failover.admission import Admission, Ticket
from failover.announce import Announcements
from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.errors import (
    AtCapacity,
    OverTokenRate,
    PoolExhaustedError,
    ProviderError,
    ProviderTimeoutError,
)
from failover.events import (
    CooldownEvent,
    ExhaustedEvent,
    FailoverEvent,
    HedgeEvent,
    HookDispatcher,
    RecoveredEvent,
    RepinnedEvent,
    RetryEvent,
    SuccessEvent,
)
from failover.gates import Gates
from failover.health import ModelHealth
from failover.plan import FIRST, Candidate, Pause, PinnedPlan, Plan, Planner, Steps
from failover.policy import Action, Backoff, Policy
from failover.profiles import AuthProfile, FailoverManager
from failover.recovery import RecoveryLine
from failover.request import AttemptContext, RequestState, RequestWatcher
from failover.routing import (
    STRATEGIES,
    Hedging,
    LatencyTracker,
    RoutingView,
    Strategy,
    strategy_named,
)
from failover.store.base import Store

__all__ = ["AttemptContext", "Engine", "HookMethods", "ModelHealth", "RequestState"]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])

_request_ids = itertools.count(1)
Chain = Sequence[ModelEntry | Sequence[ModelEntry]]
"""Models in order; an item may be a group of equivalent deployments (one chain step)."""
_INF = math.inf
_log = logs.logger  # every decision is logged only after a (cached) isEnabledFor check
_DEBUG, _INFO, _WARNING = logs.DEBUG, logs.INFO, logs.WARNING


def _admitted(admission: Admission, profile: AuthProfile) -> bool:
    """Whether an attempt on ``profile`` must go through admission first."""
    return (
        admission.always or profile.rate_limit_tpm is not None or profile.max_in_flight is not None
    )


def _bookkeeping(strategy: Strategy, hedging: Hedging | None) -> tuple[bool, bool]:
    """Whether attempts must count in-flight requests, and record latencies: the
    per-attempt bookkeeping only what needs it pays for (a strategy of your own may read
    anything)."""
    own = type(strategy) not in STRATEGIES.values()  # the values are the classes
    in_flight = own or strategy.name == "least_busy"
    latency = own or strategy.name == "latency" or (hedging is not None and hedging.after == "p95")
    return in_flight, latency


class Engine(Gates, Announcements):
    """Runs a request's attempts over a chain of models and the manager's keys.

    A request's :class:`~failover.plan.Plan` says which model and key come next and how
    long to wait between walks over the chain; the engine makes the attempts, applies the
    policy to each failure, and announces every decision (logs, events).
    """

    def __init__(
        self,
        manager: FailoverManager,
        *,
        base_url_for: Callable[[str], str],
        timeout: float,
        deadline: float | None,
        wait_for_recovery: bool,
        policy: Policy,
        sleep: Callable[[float], Awaitable[None]],
        hedging: Hedging | None = None,
        strategy: str | Strategy = "priority",
        telemetry: RequestWatcher | None = None,
        admission: bool = True,
    ) -> None:
        self.manager = manager
        self.admission: Admission | None = manager.admission if admission else None
        """The manager's gates (budgets, token windows, caps), or ``None``: not held to them."""
        self.hedging = hedging
        self.strategy = strategy_named(strategy)
        self.latency = LatencyTracker()
        self.routing = RoutingView(self.latency, self._weight_of)
        self._count_in_flight, self._record_latency = _bookkeeping(self.strategy, hedging)
        self._weights: dict[str, tuple[float, float]] = {}
        self.hooks = HookDispatcher()
        self.telemetry = telemetry
        self.recovery = RecoveryLine()
        """Requests waiting for a key to recover or for room (higher priority first)."""
        self._waiting_for: Counter[str] = Counter()  # key -> requests in line for its room
        if telemetry is not None:
            telemetry.attach(self.hooks, manager, self.recovery)
        self.base_url_for = base_url_for
        self.timeout = timeout
        self.policy = policy
        self.sleep = sleep
        self.backoff = Backoff(manager.config)
        self.planner = Planner(
            manager,
            self.strategy,
            self.routing,
            self.backoff,
            self,
            wait_for_recovery=wait_for_recovery,
            deadline=None,
        )
        self.deadline = deadline  # the planner's, and each request's time (_time_allowed)
        self._scrubber: tuple[int, KeyScrubber] | None = None
        self.model_health = ModelHealth()
        # admission's and sessions' bookkeeping must finish even under cancellation: a
        # shared store's waits on Redis are shielded; an in-process one's never suspend
        self._shared = manager.store.shared
        # a store that keeps Store's own ``ready`` (always True) needs no question per request
        self._always_ready = type(manager.store).ready is Store.ready

    @property
    def deadline(self) -> float | None:
        """Seconds a request may take in all (``None``: no bound); the planner's too."""
        return self.planner.deadline

    @deadline.setter
    def deadline(self, seconds: float | None) -> None:
        self.planner.deadline = seconds
        self._time_allowed = _INF if seconds is None else seconds  # (inf: no bound)

    @property
    def wait_for_recovery(self) -> bool:
        """Whether an exhausted walk waits for the earliest recovery (the planner's)."""
        return self.planner.wait_for_recovery

    @wait_for_recovery.setter
    def wait_for_recovery(self, wait: bool) -> None:
        self.planner.wait_for_recovery = wait

    def new_request(self, *, asyncio_cancel_safe: bool = False) -> RequestState:
        """Start the bookkeeping of a request (see RequestState.asyncio_cancel_safe)."""
        now = monotonic()
        return RequestState(
            f"req-{next(_request_ids)}",
            now,
            now + self._time_allowed,
            asyncio_cancel_safe=asyncio_cancel_safe and ASYNCIO_TIMEOUT_WORKS,
        )

    def succeeded(
        self,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        cost_usd: float | None,
        usage: TokenUsage | None = None,
        *,
        exchange: tuple[Sequence[Mapping[str, Any]], str] | None = None,
    ) -> None:
        """Announce a request's success (``exchange``: the messages and the answer's text,
        which telemetry may capture)."""
        if state.telemetry is not None:
            if exchange is not None:
                state.telemetry.capture(*exchange)
            state.telemetry.finished(model, usage, cost_usd, profile=profile.name)
        if self.hooks.wants(SuccessEvent):  # built only when a hook listens
            self.hooks.emit(
                SuccessEvent(
                    request_id=state.id,
                    model=model.key,
                    profile=profile.name,
                    attempts=len(state.attempts),
                    latency=monotonic() - state.started,
                    cost_usd=cost_usd,
                )
            )

    async def run(
        self,
        state: RequestState,
        chain: Chain,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        *,
        unsupported: Callable[[ModelEntry], str | None] | None = None,
        key: AuthProfile | None = None,
        why: str = "",
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """Try the chain's models and the keys until ``attempt`` succeeds; raise when all fail.

        The request's deadline bounds everything, attempts in flight included.

        Args:
            state: The request's bookkeeping (from :meth:`new_request`).
            chain: The models to try, in order.
            attempt: Makes one call with the context it is given.
            unsupported: Names a request field a model cannot take (or ``None``); such
                models are skipped before any call, recorded as ``unsupported`` attempts.
            key: Pins the request to this key alone (a response continued where it was
                made): models of other providers are skipped, and no other key stands in.
            why: With ``key``, why no other key can help (the exhaustion's message).

        Raises:
            AllAttemptsFailed: Everything was tried (``retry_after``: earliest recovery),
                or the deadline passed.
            NoProfileAvailable: No key could be tried at all.
            UnsupportedParameterError: No model of the chain can take the request.
            ProviderError: A failure no other model can fix, with ``attempts`` set.
        """
        if self.telemetry is not None and state.telemetry is None:
            state.telemetry = self.telemetry.start_request("chat", state.id, chain)
        try:
            plan: Plan | PinnedPlan | None
            if key is not None:
                steps = self.planner.steps_of(chain)[0]
                models = [m for step in steps for m in step]
                plan = PinnedPlan(self.planner, state, models, key, why, unsupported)
                order = None
            else:
                steps, order = self.planner.steps_of(chain)
                if unsupported is not None:  # models it cannot take recorded as skipped
                    steps = self.planner.supported(state.id, steps, unsupported, state.attempts)
                    order = None  # (the planner orders the steps it can take)
                if self.hedging is not None:
                    self.hedging.budget.earn()
                    plan = Plan(self.planner, state, steps, order)
                elif order and state.session is None:  # a fixed order, nothing else with a
                    # say: the planner's first candidate goes first, the plan made when it
                    # fails (_run: _plan_from)
                    plan = None
                else:
                    plan = Plan(self.planner, state, steps, order)
            if state.deadline_at == _INF:
                return await self._run(state, plan, attempt, steps, order)
            state.plan = None  # read below (none of a run before: a stream restarted)
            with scope_within(state.time_left()) as scope:
                return await self._run(state, plan, attempt, steps, order)
            if scope.cancelled_caught:
                self._mark_deadline(state)
            if plan is None:  # made when the first attempt failed, else none was
                plan = state.plan or Plan(self.planner, state, steps, order)
            raise self._exhausted(state, plan, plan.earliest_recovery())
        except BaseException as error:
            self.ended(state, error)
            raise

    def streaming(self, state: RequestState) -> None:
        """Note that a streamed answer's first chunk is out: failover is over."""
        if state.telemetry is not None:
            state.telemetry.first_chunk()

    def interrupted(
        self,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        error: ProviderError,
        *,
        counts: bool = True,
    ) -> None:
        """Record a failure after the answer began (mid-stream); it counts against the key
        and model unless it is no fault of theirs (``counts``: the caller's deadline)."""
        self.record_attempt(state, model, profile, error, state.started)
        if counts:
            self.record_failure(state, model, profile, error)

    def ended(self, state: RequestState, error: BaseException | None = None) -> None:
        """Close a request that did not succeed (failed, or a stream closed early)."""
        if state.telemetry is not None:
            state.telemetry.finished(error=error)

    async def _run(
        self,
        state: RequestState,
        plan: Plan | PinnedPlan | None,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        steps: Steps,
        order: list[tuple[int, ModelEntry]] | None,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """The loop: each candidate in turn, then a pause, until one succeeds or none is left.

        Without a ``plan`` (``order``, the chain's, is fixed and no session nor hedging
        has a say) the first candidate is the planner's (:meth:`Planner.first_key`), and the
        plan of ``steps`` is made only when that one fails or is not there: a request
        whose first attempt succeeds needs none.
        """
        if not self._always_ready and not self.manager.ready:  # a new process: first take
            # in what the others stored
            await self.manager.wait_ready()
        admission = self.admission
        if plan is not None:
            if state.session is not None and isinstance(plan, Plan):
                plan.pin = await self._pin_of(state.session)
            candidate = plan.next()
        else:  # (order is not empty: an empty chain has a plan)
            model = order[0][1]  # type: ignore[index]
            profile = self.planner.first_key(model, state.deadline_at)
            if profile is None:  # the plan goes on from the next model (asked no more)
                plan = self._plan_from(state, steps, order, passed=model)
                candidate = plan.next()
            else:  # the plan is made if this one fails or is refused (below)
                candidate = Candidate(model, profile, FIRST)
        short: list[str] = []  # keys refused for room in this walk (the line waits for them)
        while True:
            while candidate is not None:
                ticket = None
                if admission is not None and _admitted(admission, candidate.profile):
                    admitted = await self._admit(state, admission, candidate)
                    if not isinstance(admitted, Ticket):
                        if isinstance(admitted, (OverTokenRate, AtCapacity)):
                            short.append(candidate.profile.name)
                        action = Action.ROTATE if admitted.rotates else Action.NEXT_MODEL
                        if plan is None:  # the planner's first was refused: on from there
                            plan = self._plan_from(state, steps, order, candidate)
                        plan.failed(candidate, admitted, action)
                        candidate = plan.next()
                        continue
                    ticket = admitted
                try:
                    if (
                        self.hedging is not None
                        and ticket is None
                        and plan is not None  # (a request that hedges has one)
                        and plan.may_hedge(candidate)
                    ):
                        done = await self._hedged(state, plan, candidate, attempt)
                    else:
                        done = await self._attempt(
                            state, attempt, candidate.model, candidate.profile
                        )
                except BaseException as error:
                    if ticket is not None and admission is not None:
                        await self._surely(self._give_back(admission, ticket, error))
                    if not isinstance(error, ProviderError):
                        raise
                    failure = error
                else:
                    if ticket is not None:
                        state.ticket = ticket
                    if state.session is not None:
                        assert plan is not None  # (a request with a session has one)
                        try:
                            await self._pin(state, plan, done[1], done[2])
                        except BaseException:  # cancelled meanwhile: the answer is lost
                            await self.unsettled(state)
                            raise
                    return done
                if plan is None:  # the planner's first failed: on from there
                    plan = self._plan_from(state, steps, order, candidate)
                pause = plan.failed(candidate, failure, self._decide(state, candidate, failure))
                if pause is not None:
                    await self._pause(state, pause)
                candidate = plan.next()
            assert plan is not None  # (a walk that ends was the plan's)
            pause = plan.wait()
            if pause is None:
                break
            await self._pause(state, pause, short)
            short = []
            candidate = plan.next()
        # a request that fails without a call still lets other tasks run (a caller's retry
        # loop must not starve the hooks or the store's sync)
        await anyio.lowlevel.checkpoint()
        raise self._exhausted(state, plan, plan.retry_after)

    def _plan_from(
        self,
        state: RequestState,
        steps: Steps,
        order: list[tuple[int, ModelEntry]] | None,
        first: Candidate | None = None,
        *,
        passed: ModelEntry | None = None,
    ) -> Plan:
        """The plan of a run begun with the planner's first candidate (``first``, tried or
        refused; or ``passed``: the first model, none of whose keys was usable), kept on
        ``state`` for the deadline's exhaustion (:meth:`run`)."""
        plan = state.plan = Plan(self.planner, state, steps, order, first, passed=passed)
        return plan

    def _decide(self, state: RequestState, candidate: Candidate, error: ProviderError) -> Action:
        """Record ``error`` against the candidate's key and model; raise it when no other
        candidate can fix it, else return the policy's action."""
        action = self.record_failure(state, candidate.model, candidate.profile, error).action
        if action is Action.RAISE:
            error.attempts = tuple(state.attempts)
            if _log.isEnabledFor(_INFO):
                logs.gave_up(state.id, error, state.attempts)
            raise error
        return action

    async def _pause(self, state: RequestState, pause: Pause, short: Sequence[str] = ()) -> None:
        """Sleep the plan's pause: a backoff (announced as a retry), or a wait in the
        recovery line (for a key, or for room on the keys ``short`` of it: newcomers go
        behind; higher ``priority`` first)."""
        if pause.recovery:
            started = monotonic()
            waiting = self._waiting_for
            for name in short:
                waiting[name] += 1
            try:
                state.place = await self.recovery.wait(
                    pause.delay,
                    self.sleep,
                    priority=state.priority,
                    place=state.place,
                    wakeable=pause.room,
                )
            finally:
                for name in short:
                    waiting[name] -= 1
                    if not waiting[name]:
                        del waiting[name]
            if short:
                state.queued = True  # it had its turn: it may take room from now on
            if state.telemetry is not None:
                state.telemetry.queued(monotonic() - started)
            return
        self._announce_retry(state, pause)
        await self.sleep(pause.delay)

    def _mark_deadline(self, state: RequestState) -> None:
        """Relabel the attempt the deadline cut short as a timeout."""
        if state.attempts and state.attempts[-1].outcome == "cancelled":
            cut = state.attempts[-1]
            error = ProviderTimeoutError(f"the request's deadline of {self.deadline}s passed")
            state.attempts[-1] = Attempt(
                cut.model, cut.profile, error.kind, None, None, cut.elapsed, error
            )

    def _weight_of(self, model: ModelEntry) -> float:
        """The summed ``weight`` of the profiles that serve ``model`` (recounted each second)."""
        now = monotonic()
        cached = self._weights.get(model.key)
        if cached is not None and now - cached[1] < 1.0:
            return cached[0]
        weight = sum(
            profile.weight
            for profile in self.manager.list_profiles()
            if profile.provider == model.provider and profile.allows(model.id)
        )
        if len(self._weights) > 1024:
            self._weights.clear()
        self._weights[model.key] = (weight, now)
        return weight

    async def _hedged(
        self,
        state: RequestState,
        plan: Plan | PinnedPlan,
        candidate: Candidate,
        attempt: Callable[[AttemptContext], Awaitable[T]],
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """The first attempt, and a second one if the first is slow; the first success wins.

        The loser is cancelled (recorded as ``cancelled``, its key's health untouched) and
        whatever it produced is released. When both fail, the hedge's failure is recorded
        here and the first attempt's error is raised for the plan to learn from.
        """
        assert self.hedging is not None
        model, profile = candidate.model, candidate.profile
        delay = self.hedging.delay(model.key, profile.base_url, self.latency)
        if delay is None:
            return await self._attempt(state, attempt, model, profile)
        winners: list[tuple[T, ModelEntry, AuthProfile]] = []
        errors: list[ProviderError] = []
        first_done = anyio.Event()

        async def run(model: ModelEntry, profile: AuthProfile, *, first: bool) -> None:
            try:
                outcome = await self._attempt(state, attempt, model, profile)
            except ProviderError as error:
                if first:
                    errors.append(error)
                else:
                    self.record_failure(state, model, profile, error)
                return
            finally:
                if first:
                    first_done.set()
            if winners:  # both answered at once: free the slower one's reply
                if state.release is not None:
                    await state.release(outcome[0])
                return
            winners.append(outcome)
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(run, model, profile, first=True))
            with anyio.move_on_after(delay):
                await first_done.wait()
            if not first_done.is_set() and (target := self._hedge(state, plan, candidate, delay)):
                group.start_soon(functools.partial(run, target.model, target.profile, first=False))
        if winners:
            return winners[0]
        raise errors[0]

    def _hedge(
        self, state: RequestState, plan: Plan | PinnedPlan, candidate: Candidate, delay: float
    ) -> Candidate | None:
        """Where a slow ``candidate`` is hedged (announced), or ``None``: the hedge budget is
        spent, or the plan has nowhere else."""
        assert self.hedging is not None
        if not self.hedging.budget.spend():
            return None
        target = plan.hedge_target(candidate)
        if (
            target is not None
            and self.admission is not None
            and _admitted(self.admission, target.profile)
        ):
            return None  # a hedge is a second attempt nothing admitted: not on a gated key
        if target is not None:
            self._announce_hedge(state, candidate, target, delay)
        return target

    async def _attempt(
        self,
        state: RequestState,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        model: ModelEntry,
        profile: AuthProfile,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """One call, bounded by the attempt's timeout as a total; recorded either way.

        Its context: its key, URL, number and timeout (bounded by the request's deadline,
        which must not have passed). When the deadline comes first, the request's own
        bound (:meth:`run`'s scope) ends the attempt then, with no timer of its own: the
        attempt is cut as the deadline's, not timed out as the key's.
        """
        timeout = own = self.timeout  # own: the attempt's own bound (inf: none)
        if state.deadline_at != _INF:
            left = state.time_left()
            if left <= 0:
                raise ProviderTimeoutError("the request's deadline passed")
            if left <= timeout:
                timeout, own = left, _INF
        ctx = AttemptContext(
            profile,
            model,
            profile.base_url or self.base_url_for(model.provider),
            len(state.attempts) + 1,
            state.id,
            timeout,
        )
        started = monotonic()
        if self._count_in_flight:
            self.routing.started(model, profile)
        if state.telemetry is not None:
            state.telemetry.attempt_started(ctx)
        try:
            if state.asyncio_cancel_safe and own != _INF:
                with AsyncioTimeout(own):
                    value = await attempt(ctx)
            elif own == _INF:
                value = await attempt(ctx)
            else:
                # under load the cost of an attempt's bound is as much as an HTTP call's
                with scope_within(own) as scope:
                    value = await attempt(ctx)
                if scope.cancelled_caught:
                    raise TimeoutError
        except ProviderError as error:
            self._attempt_failed(state, ctx, error, started)
            raise
        except PoolExhaustedError as error:
            error.attempts = tuple(state.attempts)
            raise
        except TimeoutError:
            timed_out = ProviderTimeoutError(f"no complete reply within {own:.3g}s")
            self._attempt_failed(state, ctx, timed_out, started)
            raise timed_out from None
        except anyio.get_cancelled_exc_class():
            self._attempt_cancelled(state, ctx, started)
            raise
        finally:
            if self._count_in_flight:
                self.routing.ended(model, profile)
        if state.telemetry is not None:
            state.telemetry.attempt_ended(ctx, "ok")
        elapsed = monotonic() - started
        state.attempts.append(Attempt(model.key, profile.name, "ok", None, None, elapsed))
        if _log.isEnabledFor(_DEBUG):
            logs.attempt(state.id, len(state.attempts), state.attempts[-1])
        if self._record_latency:
            self.latency.record(model.key, profile.base_url, elapsed)
        if self.manager.mark_success(profile.name, model=model.id):
            self._recovered(state, profile)
        self.model_health.of(model.key)["successes"] += 1
        return value, model, profile

    def _attempt_failed(
        self, state: RequestState, ctx: AttemptContext, error: ProviderError, started: float
    ) -> None:
        """Record a failed attempt (its error filled in and scrubbed)."""
        self.record_attempt(state, ctx.model, ctx.profile, error, started)
        if state.telemetry is not None:
            state.telemetry.attempt_ended(ctx, error.kind, error)

    def _attempt_cancelled(self, state: RequestState, ctx: AttemptContext, started: float) -> None:
        """Record an attempt cancelled from outside (a hedge lost, the deadline, the caller)."""
        elapsed = monotonic() - started
        state.attempts.append(
            Attempt(ctx.model.key, ctx.profile.name, "cancelled", None, None, elapsed)
        )
        if _log.isEnabledFor(_DEBUG):
            logs.attempt(state.id, len(state.attempts), state.attempts[-1])
        if state.telemetry is not None:
            state.telemetry.attempt_ended(ctx, "cancelled")

    async def aclose(self) -> None:
        """Wait for pending async hooks and manager callbacks."""
        await self.hooks.drain()
        await self.manager.drain_callbacks()


class HookMethods:
    """``on_failover``, ``on_retry``, ... for any class holding an ``_engine``."""

    _engine: Engine

    @property
    def engine(self) -> Engine:
        """The engine that runs this face's requests (a face built over this one shares it:
        its keys, hooks and health)."""
        return self._engine

    def on_failover(self, hook: H) -> H:
        """Call ``hook(FailoverEvent)`` when a request moves to another key or model."""
        return self._engine.hooks.add(FailoverEvent, hook)

    def on_retry(self, hook: H) -> H:
        """Call ``hook(RetryEvent)`` before a same-key retry."""
        return self._engine.hooks.add(RetryEvent, hook)

    def on_cooldown(self, hook: H) -> H:
        """Call ``hook(CooldownEvent)`` when a profile is cooled down or disabled."""
        return self._engine.hooks.add(CooldownEvent, hook)

    def on_recovered(self, hook: H) -> H:
        """Call ``hook(RecoveredEvent)`` when a failing profile succeeds again."""
        return self._engine.hooks.add(RecoveredEvent, hook)

    def on_success(self, hook: H) -> H:
        """Call ``hook(SuccessEvent)`` when a request succeeds."""
        return self._engine.hooks.add(SuccessEvent, hook)

    def on_hedge(self, hook: H) -> H:
        """Call ``hook(HedgeEvent)`` when a slow first attempt gets a second in parallel."""
        return self._engine.hooks.add(HedgeEvent, hook)

    def on_repinned(self, hook: H) -> H:
        """Call ``hook(RepinnedEvent)`` when a conversation is served somewhere new."""
        return self._engine.hooks.add(RepinnedEvent, hook)

    def on_exhausted(self, hook: H) -> H:
        """Call ``hook(ExhaustedEvent)`` when a request fails after trying everything."""
        return self._engine.hooks.add(ExhaustedEvent, hook)
