"""The failover loop shared by ResilientClient and ResilientTransport.

plan (chain x keys) -> attempt -> classify -> act. It knows nothing of HTTP: an attempt is
any coroutine taking an AttemptContext, and failures arrive as ProviderErrors.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

from failover import logs
from failover._secrets import KeyScrubber
from failover._tasks import ASYNCIO_TIMEOUT_WORKS, AsyncioTimeout
from failover.attempts import Attempt
from failover.catalog import ModelEntry, TokenUsage
from failover.classify import rate_limit_headroom
from failover.errors import (
    AllAttemptsFailed,
    NoProfileAvailable,
    PoolExhaustedError,
    ProviderError,
    ProviderTimeoutError,
    UnsupportedParameterError,
)
from failover.events import (
    CooldownEvent,
    Event,
    ExhaustedEvent,
    FailoverEvent,
    HedgeEvent,
    HookDispatcher,
    RecoveredEvent,
    RetryEvent,
    SuccessEvent,
)
from failover.policy import Action, Backoff, Decision, Policy
from failover.profiles import AuthProfile, FailoverManager, ProfileStatus
from failover.recovery import RecoveryLine
from failover.routing import (
    STRATEGIES,
    Hedging,
    LatencyTracker,
    RoutingView,
    Strategy,
    strategy_named,
)

if TYPE_CHECKING:
    from failover.telemetry import RequestTelemetry, Telemetry

__all__ = ["AttemptContext", "Engine", "HookMethods", "ModelHealth", "RequestState"]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])

_request_ids = itertools.count(1)
_TYPICAL_USAGE = TokenUsage(input_tokens=1000, output_tokens=500)
Chain = Sequence[ModelEntry | Sequence[ModelEntry]]
"""Models in order; an item may be a group of equivalent deployments (one chain step)."""
_MAX_RECOVERY_WAITS = 20  # waits for the earliest recovery, per request (time bounds them too)
_log = logs.logger  # every decision is logged only after a (cached) isEnabledFor check
_DEBUG, _INFO, _WARNING = logs.DEBUG, logs.INFO, logs.WARNING


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What one attempt gets: the key to use, where to send it, and for which model.

    Attributes:
        profile: The auth profile (its ``api_key`` may only go to ``base_url``).
        model: The model entry.
        base_url: The profile's base URL, or the provider's public one.
        attempt: 1 for the first attempt of the request, 2 for the next, ...
        request_id: The request's id, as in events.
        timeout: Seconds this attempt may take (bounded by the request's deadline).
    """

    profile: AuthProfile
    model: ModelEntry
    base_url: str
    attempt: int
    request_id: str
    timeout: float

    @property
    def api_key(self) -> str:
        """The profile's key."""
        return self.profile.api_key.get_secret_value()


@dataclass(slots=True)
class RequestState:
    """The bookkeeping of one request: its id, clock and every attempt so far."""

    id: str
    started: float
    deadline_at: float
    attempts: list[Attempt] = field(default_factory=list)
    release: Callable[[Any], Awaitable[None]] | None = None
    """Frees what a losing hedged attempt produced (e.g. closes an opened stream)."""
    estimated_usage: TokenUsage = _TYPICAL_USAGE
    """The request's expected tokens, for the ``cost`` strategy."""
    telemetry: RequestTelemetry | None = None
    asyncio_cancel_safe: bool = False
    """Whether asyncio's own cancellation may interrupt the attempts anywhere (aiohttp):
    they are then bounded by asyncio's cheaper timer, not by anyio's cancel scope."""

    def time_left(self) -> float:
        """Seconds until the request's deadline (``inf`` without one)."""
        return self.deadline_at - time.monotonic()


class ModelHealth:
    """Successes, failures and the last error per model, for the most recent models only.

    Model ids can come from callers (the SDK transport serves whatever model an SDK asks
    for), so the map keeps the ``limit`` most recently used and forgets the rest.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._models: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def of(self, model: str) -> dict[str, Any]:
        """The counters of ``model`` (``provider/model``), created at zero when new."""
        health = self._models.get(model)
        if health is None:
            health = self._models[model] = {"successes": 0, "failures": 0, "last_error": None}
            if len(self._models) > self._limit:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(model)
        return health

    def __len__(self) -> int:
        return len(self._models)


@dataclass(slots=True)
class _Pass:
    """What one walk over the chain learned when nothing succeeded."""

    attempted: bool = False
    retryable: ProviderError | None = None
    """The first transient failure that the provider allows to be retried, if any."""
    retry_model: ModelEntry | None = None
    retry_profile: AuthProfile | None = None

    def note(self, error: ProviderError, model: ModelEntry, profile: AuthProfile) -> None:
        """Keep the walk's first transient failure that the provider lets be retried."""
        if self.retryable is None and error.should_retry is not False:
            self.retryable, self.retry_model, self.retry_profile = error, model, profile


def _first_call(state: RequestState) -> bool:
    """Whether no call has been made yet (models skipped as unsupported are no calls)."""
    return all(attempt.profile is None for attempt in state.attempts)


class Engine:
    """Runs attempts over a chain of models and the manager's keys, with the policy.

    One request is a few walks over the chain. A walk tries each model in order: its keys
    (rotating past rate-limited, dead or out-of-quota ones), and after a transient failure
    another endpoint (base URL) of the same model, then the next model, all without
    sleeping. Only when a walk ends with nothing left does the engine back off and walk
    again (``max_retries`` times), so a retry lands on the least recently used key.
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
        telemetry: Telemetry | None = None,
    ) -> None:
        self.manager = manager
        self.hedging = hedging
        self.strategy = strategy_named(strategy)
        self.latency = LatencyTracker()
        self.routing = RoutingView(self.latency, self._weight_of)
        # the per-attempt bookkeeping only what needs it pays for (a strategy of your own
        # may read anything)
        own = type(self.strategy) not in STRATEGIES.values()  # the values are the classes
        self._count_in_flight = own or self.strategy.name == "least_busy"
        self._record_latency = (
            own
            or self.strategy.name == "latency"
            or (hedging is not None and hedging.after == "p95")
        )
        self._prefer = getattr(self.strategy, "prefer", None)  # chooses among a model's keys
        self._weights: dict[str, tuple[float, float]] = {}
        self.hooks = HookDispatcher()
        self.telemetry = telemetry
        if telemetry is not None:
            telemetry.attach(self.hooks, manager)
        self.base_url_for = base_url_for
        self.timeout = timeout
        self.deadline = deadline
        self.wait_for_recovery = wait_for_recovery
        self.policy = policy
        self.sleep = sleep
        self.backoff = Backoff(manager.config)
        self._scrubber: tuple[tuple[int, ...], KeyScrubber] | None = None
        self.model_health = ModelHealth()
        self.recovery = RecoveryLine()

    def emit(self, event_type: type[Event], **fields: Any) -> None:
        """Build and deliver an event, but only when a hook listens for it."""
        if self.hooks.wants(event_type):
            self.hooks.emit(event_type(**fields))

    def new_request(self, *, asyncio_cancel_safe: bool = False) -> RequestState:
        """Start the bookkeeping of a request (see RequestState.asyncio_cancel_safe)."""
        now = time.monotonic()
        deadline_at = now + self.deadline if self.deadline is not None else math.inf
        return RequestState(
            f"req-{next(_request_ids)}",
            now,
            deadline_at,
            asyncio_cancel_safe=asyncio_cancel_safe and ASYNCIO_TIMEOUT_WORKS,
        )

    def succeeded(
        self,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        cost_usd: float | None,
        usage: TokenUsage | None = None,
    ) -> None:
        """Announce a request's success."""
        if state.telemetry is not None:
            state.telemetry.finished(model, usage, cost_usd, profile=profile.name)
        self.emit(
            SuccessEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            attempts=len(state.attempts),
            latency=time.monotonic() - state.started,
            cost_usd=cost_usd,
        )

    async def run(
        self,
        state: RequestState,
        chain: Chain,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        *,
        unsupported: Callable[[ModelEntry], str | None] | None = None,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """Walk ``chain`` and the keys until ``attempt`` succeeds; raise when all fail.

        The request's deadline bounds everything, attempts in flight included.

        Args:
            state: The request's bookkeeping (from :meth:`new_request`).
            chain: The models to try, in order.
            attempt: Makes one call with the context it is given.
            unsupported: Names a request field a model cannot take (or ``None``); such
                models are skipped before any call, recorded as ``unsupported`` attempts.

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
            return await self._run_request(state, chain, attempt, unsupported)
        except BaseException as error:
            self.ended(state, error)
            raise

    def ended(self, state: RequestState, error: BaseException | None = None) -> None:
        """Close a request that did not succeed (failed, or a stream closed early)."""
        if state.telemetry is not None:
            state.telemetry.finished(error=error)

    async def _run_request(
        self,
        state: RequestState,
        chain: Chain,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        unsupported: Callable[[ModelEntry], str | None] | None,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """:meth:`run`, within the request's deadline."""
        steps = [(step,) if isinstance(step, ModelEntry) else tuple(step) for step in chain]
        if unsupported is not None:
            steps = self._supported(state, steps, unsupported)
        if self.hedging is not None:
            self.hedging.budget.earn()
        if math.isinf(state.deadline_at):
            return await self._run(state, steps, attempt)
        with anyio.move_on_after(state.time_left()) as scope:
            return await self._run(state, steps, attempt)
        if scope.cancelled_caught:
            self._mark_deadline(state)
        raise self._exhausted(state, len(steps), self._retry_after(steps))

    def _supported(
        self,
        state: RequestState,
        steps: list[tuple[ModelEntry, ...]],
        unsupported: Callable[[ModelEntry], str | None],
    ) -> list[tuple[ModelEntry, ...]]:
        """The models of ``steps`` that can take the request; the others are recorded."""
        usable: list[tuple[ModelEntry, ...]] = []
        first_field: str | None = None
        for step in steps:
            kept = []
            for model in step:
                field_name = unsupported(model)
                if field_name is None:
                    kept.append(model)
                    continue
                first_field = first_field or field_name
                error = UnsupportedParameterError(field_name, [model.key])
                error.provider, error.model = model.provider, model.id
                state.attempts.append(Attempt(model.key, None, error.kind, None, None, 0.0, error))
                if _log.isEnabledFor(_DEBUG):
                    logs.skipped(state.id, model.key, field_name)
            if kept:
                usable.append(tuple(kept))
        if not usable and first_field is not None:
            error = UnsupportedParameterError(first_field, [m.key for step in steps for m in step])
            error.attempts = tuple(state.attempts)
            raise error
        return usable

    def _mark_deadline(self, state: RequestState) -> None:
        """Relabel the attempt the deadline cut short as a timeout."""
        if state.attempts and state.attempts[-1].outcome == "cancelled":
            cut = state.attempts[-1]
            error = ProviderTimeoutError(f"the request's deadline of {self.deadline}s passed")
            state.attempts[-1] = Attempt(
                cut.model, cut.profile, error.kind, None, None, cut.elapsed, error
            )

    async def _run(
        self,
        state: RequestState,
        steps: list[tuple[ModelEntry, ...]],
        attempt: Callable[[AttemptContext], Awaitable[T]],
    ) -> tuple[T, ModelEntry, AuthProfile]:
        if not self.manager.ready:  # a new process: first take in what the others stored
            await self.manager.wait_ready()
        config = self.manager.config
        retries = waits = 0
        waited = 0.0
        while True:
            outcome = await self._walk(state, steps, attempt, again=retries + waits > 0)
            if isinstance(outcome, tuple):
                return outcome
            error = outcome.retryable
            if error is not None and retries < config.max_retries:
                delay = self.backoff.delay(retries + 1, error.retry_after)
                if delay <= config.max_retry_delay and delay < state.time_left():
                    retries += 1
                    failed = (outcome.retryable, outcome.retry_model, outcome.retry_profile)
                    self._announce_retry(state, failed, retries, delay)
                    await self.sleep(delay)
                    continue
            retry_after = self._retry_after(steps)
            if self._may_wait(state, retry_after, waits, waited):
                assert retry_after is not None
                waits += 1
                waited += retry_after
                await self.recovery.wait(retry_after, self.sleep)
                continue
            # a request that fails without a call still lets other tasks run (a caller's
            # retry loop must not starve the hooks or the store's sync)
            await anyio.lowlevel.checkpoint()
            raise self._exhausted(state, len(steps), retry_after)

    def _may_wait(
        self, state: RequestState, retry_after: float | None, waits: int, waited: float
    ) -> bool:
        """Whether to wait ``retry_after`` for the earliest recovery, and walk again.

        With a deadline, while the recovery comes before it; without one, while the waits
        add up to no more than ``max_recovery_wait``. ``retry_after`` of 0 means something
        is usable now and failed: that is backoff's domain (``max_retries``), not a wait's.
        """
        if not self.wait_for_recovery or not retry_after or waits >= _MAX_RECOVERY_WAITS:
            return False
        if self.deadline is not None:
            return retry_after < state.time_left()
        return waited + retry_after <= self.manager.config.max_recovery_wait

    def _announce_retry(
        self,
        state: RequestState,
        failed: tuple[ProviderError | None, ModelEntry | None, AuthProfile | None],
        number: int,
        delay: float,
    ) -> None:
        """Announce a retry of what ``failed`` (its error, model and key) after ``delay``."""
        error, model, profile = failed
        if error is None or model is None or profile is None:
            return
        if _log.isEnabledFor(_INFO):
            logs.retry(state.id, model.key, profile.name, number, delay, error)
        self.emit(
            RetryEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            attempt=number,
            delay=delay,
            reason=error.kind,
            error_message=error.message,
        )

    def _exhausted(
        self, state: RequestState, models: int, retry_after: float | None
    ) -> AllAttemptsFailed:
        if _first_call(state):
            error: AllAttemptsFailed = NoProfileAvailable(
                "no auth profile is available for any model in the chain",
                state.attempts,
                retry_after=retry_after,
            )
        elif state.time_left() <= 0:
            error = AllAttemptsFailed(
                f"deadline of {self.deadline}s exceeded", state.attempts, retry_after=retry_after
            )
        else:
            error = AllAttemptsFailed(
                f"all {models} steps of the chain failed", state.attempts, retry_after=retry_after
            )
        if _log.isEnabledFor(_WARNING) or self.hooks.wants(ExhaustedEvent):
            summary = str(error).partition("\n")[0]
            if _log.isEnabledFor(_WARNING):
                logs.exhausted(state.id, summary, state.attempts, retry_after)
            self.emit(
                ExhaustedEvent,
                request_id=state.id,
                attempts=len(state.attempts),
                retry_after=retry_after,
                error_message=summary,
            )
        return error

    def _retry_after(self, steps: list[tuple[ModelEntry, ...]]) -> float | None:
        """Seconds until the earliest model of ``steps`` is usable (0: now; ``None``: never)."""
        times = [
            at
            for step in steps
            for model in step
            if (at := self.manager.next_available_at(model.provider, model=model.id)) is not None
        ]
        # read the clock after the manager did: "usable now" must come out as 0, not as the
        # few microseconds between two readings
        return max(0.0, min(times) - self.manager.clock()) if times else None

    async def _walk(
        self,
        state: RequestState,
        steps: list[tuple[ModelEntry, ...]],
        attempt: Callable[[AttemptContext], Awaitable[T]],
        *,
        again: bool = False,
    ) -> tuple[T, ModelEntry, AuthProfile] | _Pass:
        """One walk over the chain, without sleeping (unless ``retry_before_fallback``).

        The deployments of a step come in the strategy's order; moving between them is
        sideways (no model-fallback budget), moving to the next step is a fallback. A walk
        made ``again`` (after a backoff or a wait) spreads its retries: it prefers, per
        model, the keys that have not failed in this request, then the one that failed
        longest ago.
        """
        config = self.manager.config
        walk = _Pass()
        min_context: int | None = None
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None] | None = None
        fallbacks = 0
        order = self._order(steps, state)
        previous_step = 0
        for position, (step, model) in enumerate(order):
            if min_context is not None and (model.context_window or math.inf) <= min_context:
                continue
            if previous is not None and step == previous_step:
                self._announce("deployment", state, previous, model, None)
            elif previous is not None:
                fallbacks += 1
                if (
                    config.max_model_fallbacks is not None
                    and fallbacks > config.max_model_fallbacks
                ):
                    break
                self._announce("model", state, previous, model, None)
            previous_step = step
            tried: set[str] = set()
            failed_endpoints: set[str | None] = set()
            last_profile: AuthProfile | None = None
            last_error: ProviderError | None = None
            rotations_left = (
                math.inf if config.max_key_rotations is None else config.max_key_rotations
            )
            same_model_retries = 0
            retrying = again
            while state.time_left() > 0:
                if tried and rotations_left <= 0:
                    break
                excluded = self._excluded(model, tried, failed_endpoints)
                if retrying:
                    profile = self._retry_key(state, model, excluded)
                else:
                    profile = self._pick_key(model, excluded)
                if profile is None:
                    break
                if tried:
                    rotations_left -= 1
                    self._announce("key", state, (model, last_profile, last_error), model, profile)
                tried.add(profile.name)
                last_profile = profile
                walk.attempted = True
                try:
                    if self.hedging is not None and _first_call(state):
                        later = [model for _, model in order[position + 1 :]]
                        return await self._hedged(state, attempt, later, profile, model)
                    return await self._attempt(state, attempt, model, profile)
                except ProviderError as error:
                    last_error = error
                    action = self.record_failure(state, model, profile, error).action
                if action is Action.RAISE:
                    last_error.attempts = tuple(state.attempts)
                    if _log.isEnabledFor(_INFO):
                        logs.gave_up(state.id, last_error, state.attempts)
                    raise last_error
                if action is Action.ROTATE:
                    continue
                if action is Action.LARGER_MODEL:
                    min_context = model.context_window or 0
                if action is not Action.RETRY:
                    break
                walk.note(last_error, model, profile)
                retry_allowed = last_error.should_retry is not False
                if (
                    config.retry_before_fallback
                    and retry_allowed
                    and same_model_retries < config.max_retries
                ):
                    delay = self.backoff.delay(same_model_retries + 1, last_error.retry_after)
                    if delay <= config.max_retry_delay and delay < state.time_left():
                        same_model_retries += 1
                        failed = (last_error, model, profile)
                        self._announce_retry(state, failed, same_model_retries, delay)
                        await self.sleep(delay)
                        tried.clear()
                        retrying = True  # the next retry goes to the least recently failed key
                        continue
                failed_endpoints.add(profile.base_url)  # sideways: another base URL, at once
            previous = (model, last_profile, last_error)
        if not walk.attempted:
            return await self._least_bad(state, [model for _, model in order], attempt, walk)
        return walk

    def _pick_key(self, model: ModelEntry, exclude: Collection[str]) -> AuthProfile | None:
        """The next key for ``model``: the manager's, or the better of its next two when
        the strategy chooses among keys (``prefer``)."""
        manager = self.manager
        prefer = self._prefer
        if prefer is not None:
            first = manager.peek_next_profile(model.provider, model=model.id, exclude=exclude)
            if first is not None:
                passed = {*exclude, first.name}
                second = manager.peek_next_profile(model.provider, model=model.id, exclude=passed)
                if second is not None and prefer(first, second, self.routing):
                    exclude = passed
        return manager.get_next_profile(model.provider, model=model.id, exclude=exclude)

    def _retry_key(
        self, state: RequestState, model: ModelEntry, exclude: Collection[str]
    ) -> AuthProfile | None:
        """The key for a retry of ``model``: one that has not failed in this request, else
        the one whose last failure in it is the oldest."""
        failed: dict[str, int] = {}  # key -> when it last failed here (attempt index)
        for index, past in enumerate(state.attempts):
            if past.model == model.key and past.profile is not None and past.outcome != "ok":
                failed[past.profile] = index
        if not failed:
            return self._pick_key(model, exclude)
        fresh = self._pick_key(model, {*exclude, *failed})
        if fresh is not None:
            return fresh
        for name in sorted(failed, key=failed.__getitem__):
            if name not in exclude:
                profile = self._pick_key(model, {*exclude, *(k for k in failed if k != name)})
                if profile is not None:
                    return profile
        return None

    def _order(
        self, steps: list[tuple[ModelEntry, ...]], state: RequestState
    ) -> list[tuple[int, ModelEntry]]:
        """Every model to try, with its step's index, deployments in the strategy's order."""
        if all(len(step) == 1 for step in steps):  # no groups: nothing to order
            return [(index, step[0]) for index, step in enumerate(steps)]
        strategy, view, usage = self.strategy, self.routing, state.estimated_usage
        return [
            (index, model)
            for index, step in enumerate(steps)
            for model in (step if len(step) == 1 else strategy.order(step, view, usage))
        ]

    def _weight_of(self, model: ModelEntry) -> float:
        """The summed ``weight`` of the profiles that serve ``model`` (recounted each second)."""
        now = time.monotonic()
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
        attempt: Callable[[AttemptContext], Awaitable[T]],
        rest: Sequence[ModelEntry],
        profile: AuthProfile,
        model: ModelEntry,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """The first attempt, and a second one if the first is slow; the first success wins.

        The loser is cancelled (recorded as ``cancelled``, its key's health untouched) and
        whatever it produced is released. When both fail, the hedge's failure is recorded
        here and the first attempt's error is raised for the walk to handle.
        """
        assert self.hedging is not None
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
            if not first_done.is_set() and self.hedging.budget.spend():
                target = self._hedge_target(model, profile, rest)
                if target is not None:
                    if _log.isEnabledFor(_INFO):
                        logs.hedged(
                            state.id, model.key, profile.name, target[0].key, target[1].name, delay
                        )
                    self.emit(
                        HedgeEvent,
                        request_id=state.id,
                        model=model.key,
                        profile=profile.name,
                        to_model=target[0].key,
                        to_profile=target[1].name,
                        after=delay,
                    )
                    group.start_soon(functools.partial(run, *target, first=False))
        if winners:
            return winners[0]
        raise errors[0]

    def _hedge_target(
        self, model: ModelEntry, profile: AuthProfile, rest: Sequence[ModelEntry]
    ) -> tuple[ModelEntry, AuthProfile] | None:
        """Where a hedge goes: another endpoint of ``model``, else the next usable model."""
        manager = self.manager
        exclude = self._excluded(model, {profile.name}, {profile.base_url})
        other = manager.get_next_profile(model.provider, model=model.id, exclude=exclude)
        if other is not None:
            return model, other
        for following in rest:
            found = manager.get_next_profile(following.provider, model=following.id)
            if found is not None:
                return following, found
        return None

    async def _least_bad(
        self,
        state: RequestState,
        chain: Sequence[ModelEntry],
        attempt: Callable[[AttemptContext], Awaitable[T]],
        walk: _Pass,
    ) -> tuple[T, ModelEntry, AuthProfile] | _Pass:
        """When every option rests after transient failures, try the least recently failed.

        A circuit breaker must not turn a partial outage into a total one: rate-limited,
        out-of-quota and dead keys stay out, but a model resting after errors is tried.
        """
        for model in chain:
            profile = self.manager.least_recently_failed(model.provider, model=model.id)
            if profile is None:
                continue
            try:
                return await self._attempt(state, attempt, model, profile)
            except ProviderError as error:
                decision = self.record_failure(state, model, profile, error)
                if decision.action is Action.RAISE:
                    error.attempts = tuple(state.attempts)
                    if _log.isEnabledFor(_INFO):
                        logs.gave_up(state.id, error, state.attempts)
                    raise
                if decision.action is Action.RETRY:
                    walk.note(error, model, profile)
            break
        return walk

    def _excluded(
        self, model: ModelEntry, tried: set[str], failed_endpoints: set[str | None]
    ) -> Collection[str]:
        """The keys not to pick: those tried, and every key at an endpoint that failed."""
        if not failed_endpoints:
            return tried
        return tried | {
            p.name
            for p in self.manager.list_profiles()
            if p.provider == model.provider and p.base_url in failed_endpoints
        }

    def _announce(
        self,
        kind: str,
        state: RequestState,
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None],
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        wanted = self.hooks.wants(FailoverEvent)
        logged = _log.isEnabledFor(_INFO)
        if not (wanted or logged):
            return
        from_model, from_profile, error = previous
        if logged:
            logs.moved(
                kind,
                state.id,
                from_model.key,
                from_profile.name if from_profile else None,
                error,
                model.key,
                profile.name if profile else None,
            )
        if not wanted:
            return
        self.hooks.emit(
            FailoverEvent(
                request_id=state.id,
                kind=kind,
                from_model=from_model.key,
                from_profile=from_profile.name if from_profile else None,
                to_model=model.key,
                to_profile=profile.name if profile else None,
                reason=error.kind if error else "no_profile_available",
                error_message=error.message if error else "no usable key for this model",
            )
        )

    async def _attempt(
        self,
        state: RequestState,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        model: ModelEntry,
        profile: AuthProfile,
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """One call, bounded by the attempt's timeout as a total; recorded either way."""
        timeout = self.timeout
        if state.deadline_at != math.inf:
            timeout = min(timeout, state.time_left())
            if timeout <= 0:
                raise ProviderTimeoutError("the request's deadline passed")
        ctx = AttemptContext(
            profile,
            model,
            profile.base_url or self.base_url_for(model.provider),
            len(state.attempts) + 1,
            state.id,
            timeout,
        )
        started = time.monotonic()
        if self._count_in_flight:
            self.routing.started(model, profile)
        telemetry = state.telemetry
        if telemetry is not None:
            telemetry.attempt_started(ctx)
        try:
            if math.isinf(timeout):
                value = await attempt(ctx)
            elif state.asyncio_cancel_safe:
                with AsyncioTimeout(timeout):
                    value = await attempt(ctx)
            else:
                # fail_after's own scope, without its two generator wrappers (~1/3 of its
                # cost per attempt on asyncio, which under load is as much as an HTTP call's)
                with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
                    value = await attempt(ctx)
                if scope.cancelled_caught:
                    raise TimeoutError
        except ProviderError as error:
            self.record_attempt(state, model, profile, error, started)
            if telemetry is not None:
                telemetry.attempt_ended(ctx, error.kind, error)
            raise
        except PoolExhaustedError as error:
            error.attempts = tuple(state.attempts)
            raise
        except TimeoutError:
            timed_out = ProviderTimeoutError(f"no complete reply within {timeout:.3g}s")
            self.record_attempt(state, model, profile, timed_out, started)
            if telemetry is not None:
                telemetry.attempt_ended(ctx, timed_out.kind, timed_out)
            raise timed_out from None
        except anyio.get_cancelled_exc_class():
            elapsed = time.monotonic() - started
            state.attempts.append(
                Attempt(model.key, profile.name, "cancelled", None, None, elapsed)
            )
            if _log.isEnabledFor(_DEBUG):
                logs.attempt(state.id, len(state.attempts), state.attempts[-1])
            if telemetry is not None:
                telemetry.attempt_ended(ctx, "cancelled")
            raise
        finally:
            if self._count_in_flight:
                self.routing.ended(model, profile)
        if telemetry is not None:
            telemetry.attempt_ended(ctx, "ok")
        elapsed = time.monotonic() - started
        state.attempts.append(Attempt(model.key, profile.name, "ok", None, None, elapsed))
        if _log.isEnabledFor(_DEBUG):
            logs.attempt(state.id, len(state.attempts), state.attempts[-1])
        if self._record_latency:
            self.latency.record(model.key, profile.base_url, elapsed)
        if self.manager.mark_success(profile.name, model=model.id):
            if _log.isEnabledFor(_INFO):
                logs.recovered(state.id, profile.name, profile.provider, model.key)
            self.emit(
                RecoveredEvent, request_id=state.id, profile=profile.name, provider=profile.provider
            )
        self.model_health.of(model.key)["successes"] += 1
        return value, model, profile

    def _capped(
        self, wait: float | None, *, first: bool = False
    ) -> tuple[float | None, float | None]:
        """A provider's wait cut to ``max_provider_wait`` (``max_first_wait`` for a key's
        ``first`` failure), and what it was when it was cut."""
        config = self.manager.config
        cap = config.max_provider_wait
        if first:
            cap = min(cap, config.max_first_wait)
        if wait is not None and wait > cap:
            return cap, wait
        return wait, None

    def note_headroom(
        self, request_id: str, profile: AuthProfile, headers: Mapping[str, str]
    ) -> None:
        """Record what a reply's rate-limit headers say is left of the key's budgets.

        A spent budget holds the key until it resets, announced as a CooldownEvent with
        reason ``budget_spent``.
        """
        headroom = rate_limit_headroom(headers)
        if headroom is None:
            return
        was_available = profile.status is ProfileStatus.AVAILABLE
        spent_for, capped_from = self._capped(headroom.spent_for)
        self.manager.record_headroom(
            profile.name,
            requests_remaining=headroom.requests_remaining,
            tokens_remaining=headroom.tokens_remaining,
            spent_for=spent_for,
        )
        if was_available and profile.status is not ProfileStatus.AVAILABLE:
            if _log.isEnabledFor(_INFO):
                logs.cooldown(
                    request_id,
                    profile.name,
                    profile.provider,
                    profile.status.value,
                    spent_for,
                    "budget_spent",
                    capped_from=capped_from,
                )
            self.emit(
                CooldownEvent,
                request_id=request_id,
                profile=profile.name,
                provider=profile.provider,
                status=profile.status.value,
                duration=spent_for,
                reason="budget_spent",
                error_message="the key's rate-limit budget is spent until it resets",
                capped_from=capped_from,
            )

    def record_attempt(
        self,
        state: RequestState,
        model: ModelEntry,
        profile: AuthProfile,
        error: ProviderError,
        started: float,
    ) -> None:
        """Fill in the error's context, scrub the key from it, and add it to the history."""
        error.provider, error.model, error.profile = model.provider, model.id, profile.name
        error.redact(self.scrubber())
        state.attempts.append(
            Attempt(
                model.key,
                profile.name,
                error.kind,
                error.status,
                error.retry_after,
                time.monotonic() - started,
                error,
            )
        )
        if _log.isEnabledFor(_DEBUG):
            logs.attempt(state.id, len(state.attempts), state.attempts[-1])

    def scrubber(self) -> KeyScrubber:
        """A scrubber of every key the manager holds, rebuilt when the keys change."""
        keys = tuple(profile.api_key for profile in self.manager.list_profiles())
        signature = tuple(map(id, keys))
        if self._scrubber is None or self._scrubber[0] != signature:
            self._scrubber = (signature, KeyScrubber(keys))
        return self._scrubber[1]

    def record_failure(
        self, state: RequestState, model: ModelEntry, profile: AuthProfile, error: ProviderError
    ) -> Decision:
        """Apply a failure to the profile's health; return what to do next.

        A transient failure counts against the model at the key's endpoint (the circuit
        breaker), not against the key; the others cool or disable the key itself.
        """
        decision = self.policy.decide(error)
        health = self.model_health.of(model.key)
        health["failures"] += 1
        health["last_error"] = f"{error.kind}: {error.message}"[:300]
        if decision.failure is None:
            return decision
        manager = self.manager
        now = manager.clock()
        transient = decision.failure == "error"
        first = (
            decision.failure == "rate_limit"
            and not profile.consecutive_failures
            and not profile.cooldown_strikes
        )
        error.retry_after, capped_from = self._capped(error.retry_after, first=first)
        was_resting = profile.status is not ProfileStatus.AVAILABLE or (
            transient and manager.model_rest_until(profile.name, model.id) > now
        )
        status = manager.mark_failure(
            profile.name,
            error.message,
            kind=decision.failure,
            retry_after=None if transient else error.retry_after,
            model=model.id if transient else None,
        )
        if status is not ProfileStatus.AVAILABLE:  # the key itself is resting
            until, rest, rested_model = profile.cooldown_until, status.value, None
        elif transient and (until := manager.model_rest_until(profile.name, model.id)) > now:
            rest, rested_model = "model_resting", model.key
        else:
            return decision
        if not was_resting:
            if _log.isEnabledFor(_WARNING if math.isinf(until) else _INFO):
                logs.cooldown(
                    state.id,
                    profile.name,
                    profile.provider,
                    rest,
                    until - now,
                    error.kind,
                    model=rested_model,
                    http_status=error.status,
                    capped_from=capped_from,
                )
            self.emit(
                CooldownEvent,
                request_id=state.id,
                profile=profile.name,
                provider=profile.provider,
                status=rest,
                duration=until - now,
                reason=error.kind,
                error_message=error.message,
                model=rested_model,
                capped_from=capped_from,
            )
        return decision

    def status(self, chain: Sequence[ModelEntry]) -> dict[str, Any]:
        """The manager's status (keys masked) and the health of each model of ``chain``."""
        status = self.manager.status()
        available = {s.name for s in status.profiles if s.status is ProfileStatus.AVAILABLE}
        models = [
            {
                "model": model.key,
                **self.model_health.of(model.key),
                "available_profiles": sum(
                    1
                    for p in self.manager.list_profiles()
                    if p.name in available and p.provider == model.provider and p.allows(model.id)
                ),
            }
            for model in chain
        ]
        return {**status.to_dict(), "models": models}

    async def aclose(self) -> None:
        """Wait for pending async hooks and manager callbacks."""
        await self.hooks.drain()
        await self.manager.drain_callbacks()


class HookMethods:
    """``on_failover``, ``on_retry``, ... for any class holding an ``_engine``."""

    _engine: Engine

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

    def on_exhausted(self, hook: H) -> H:
        """Call ``hook(ExhaustedEvent)`` when a request fails after trying everything."""
        return self._engine.hooks.add(ExhaustedEvent, hook)
