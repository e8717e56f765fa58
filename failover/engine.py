"""The failover loop shared by ResilientClient and ResilientTransport.

plan (chain x keys) -> attempt -> classify -> act. It knows nothing of HTTP: an attempt is
any coroutine taking an AttemptContext, and failures arrive as ProviderErrors.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from failover.attempts import Attempt
from failover.catalog import ModelEntry
from failover.classify import rate_limit_headroom
from failover.errors import (
    AllAttemptsFailed,
    NoProfileAvailable,
    ProviderError,
    ProviderTimeoutError,
)
from failover.events import (
    CooldownEvent,
    Event,
    ExhaustedEvent,
    FailoverEvent,
    HookDispatcher,
    RecoveredEvent,
    RetryEvent,
    SuccessEvent,
)
from failover.policy import Action, Decision, decide, retry_same_key
from failover.profiles import AuthProfile, FailoverManager, ProfileStatus

if TYPE_CHECKING:
    from failover.catalog import TokenUsage
    from failover.telemetry import RequestTelemetry, Telemetry

__all__ = ["AttemptContext", "Engine", "HookMethods", "RequestState"]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])

_request_ids = itertools.count(1)
_MAX_RECOVERY_WAITS = 3  # waits for the earliest recovery, per request


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
        return self.profile.api_key


@dataclass(slots=True)
class RequestState:
    """The bookkeeping of one request: its id, clock and every attempt so far."""

    id: str
    started: float
    deadline_at: float
    attempts: list[Attempt] = field(default_factory=list)
    telemetry: RequestTelemetry | None = None

    def time_left(self) -> float:
        """Seconds until the request's deadline (``inf`` without one)."""
        return self.deadline_at - time.monotonic()


class Engine:
    """Runs attempts over a chain of models and the manager's keys, with the policy."""

    def __init__(
        self,
        manager: FailoverManager,
        *,
        base_url_for: Callable[[str], str],
        timeout: float,
        deadline: float | None,
        wait_for_recovery: bool,
        raise_on_content_filter: bool,
        sleep: Callable[[float], Awaitable[None]],
        telemetry: Telemetry | None = None,
    ) -> None:
        self.manager = manager
        self.hooks = HookDispatcher()
        self.telemetry = telemetry
        if telemetry is not None:
            telemetry.attach(self.hooks, manager)
        self.base_url_for = base_url_for
        self.timeout = timeout
        self.deadline = deadline
        self.wait_for_recovery = wait_for_recovery
        self.raise_on_content_filter = raise_on_content_filter
        self.sleep = sleep
        self.model_health: defaultdict[str, dict[str, Any]] = defaultdict(
            lambda: {"successes": 0, "failures": 0, "last_error": None}
        )

    def emit(self, event_type: type[Event], **fields: Any) -> None:
        """Build and deliver an event, but only when a hook listens for it."""
        if self.hooks.wants(event_type):
            self.hooks.emit(event_type(**fields))

    def new_request(self) -> RequestState:
        """Start the bookkeeping of a request."""
        now = time.monotonic()
        deadline_at = now + self.deadline if self.deadline is not None else math.inf
        return RequestState(f"req-{next(_request_ids)}", now, deadline_at)

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

    def ended(self, state: RequestState, error: BaseException | None = None) -> None:
        """Close a request that did not succeed (failed, or a stream closed early)."""
        if state.telemetry is not None:
            state.telemetry.finished(error=error)

    async def run(
        self,
        state: RequestState,
        chain: Sequence[ModelEntry],
        attempt: Callable[[AttemptContext], Awaitable[T]],
    ) -> tuple[T, ModelEntry, AuthProfile]:
        """Walk ``chain`` and the keys until ``attempt`` succeeds; raise when all fail.

        Raises:
            AllAttemptsFailed: Everything was tried (``retry_after``: earliest recovery).
            NoProfileAvailable: No key could be tried at all.
            ProviderError: A failure no other model can fix, with ``attempts`` set.
        """
        if self.telemetry is None:
            return await self._run(state, chain, attempt)
        if state.telemetry is None:
            state.telemetry = self.telemetry.start_request("chat", state.id, chain)
        try:
            return await self._run(state, chain, attempt)
        except BaseException as error:
            state.telemetry.finished(error=error)
            raise

    async def _run(
        self,
        state: RequestState,
        chain: Sequence[ModelEntry],
        attempt: Callable[[AttemptContext], Awaitable[T]],
    ) -> tuple[T, ModelEntry, AuthProfile]:
        waits = 0
        while True:
            outcome = await self._walk(state, chain, attempt)
            if outcome is not None:
                return outcome
            retry_after = self._retry_after(chain)
            if (
                self.wait_for_recovery
                and retry_after is not None
                and waits < _MAX_RECOVERY_WAITS
                and retry_after < state.time_left()
                and (
                    self.deadline is not None or retry_after <= self.manager.config.max_retry_delay
                )
            ):
                waits += 1
                await self.sleep(retry_after)
                continue
            raise self._exhausted(state, len(chain), retry_after)

    def _exhausted(
        self, state: RequestState, models: int, retry_after: float | None
    ) -> AllAttemptsFailed:
        if not state.attempts:
            error: AllAttemptsFailed = NoProfileAvailable(
                "no auth profile is available for any model in the chain", retry_after=retry_after
            )
        elif state.time_left() <= 0:
            error = AllAttemptsFailed(
                f"deadline of {self.deadline}s exceeded", state.attempts, retry_after=retry_after
            )
        else:
            error = AllAttemptsFailed(
                f"all {models} models failed", state.attempts, retry_after=retry_after
            )
        self.emit(
            ExhaustedEvent,
            request_id=state.id,
            attempts=len(state.attempts),
            retry_after=retry_after,
            error_message=str(error).partition("\n")[0],
        )
        return error

    def _retry_after(self, chain: Sequence[ModelEntry]) -> float | None:
        now = self.manager.clock()
        times = [
            at
            for model in chain
            if (at := self.manager.next_available_at(model.provider, model=model.id)) is not None
        ]
        return max(0.0, min(times) - now) if times else None

    async def _walk(
        self,
        state: RequestState,
        chain: Sequence[ModelEntry],
        attempt: Callable[[AttemptContext], Awaitable[T]],
    ) -> tuple[T, ModelEntry, AuthProfile] | None:
        config = self.manager.config
        min_context: int | None = None
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None] | None = None
        fallbacks = 0
        for model in chain:
            if min_context is not None and (model.context_window or math.inf) <= min_context:
                continue
            if previous is not None:
                fallbacks += 1
                if (
                    config.max_model_fallbacks is not None
                    and fallbacks > config.max_model_fallbacks
                ):
                    return None
                self._announce("model", state, previous, model, None)
            tried: set[str] = set()
            last_profile: AuthProfile | None = None
            last_error: ProviderError | None = None
            rotations_left = (
                math.inf if config.max_key_rotations is None else config.max_key_rotations
            )
            while state.time_left() > 0:
                if tried and rotations_left <= 0:
                    break
                profile = self.manager.get_next_profile(
                    model.provider, model=model.id, exclude=tried
                )
                if profile is None:
                    break
                if tried:
                    rotations_left -= 1
                    self._announce("key", state, (model, last_profile, last_error), model, profile)
                tried.add(profile.name)
                last_profile = profile
                try:
                    value = await self._with_retries(state, attempt, model, profile)
                except ProviderError as error:
                    last_error = error
                    action = decide(
                        error, raise_on_content_filter=self.raise_on_content_filter
                    ).action
                    if action is Action.RAISE:
                        error.attempts = tuple(state.attempts)
                        raise
                    if action is Action.ROTATE:
                        continue
                    if action is Action.LARGER_MODEL:
                        min_context = model.context_window or 0
                    break
                if self.manager.mark_success(profile.name):
                    self.emit(
                        RecoveredEvent,
                        request_id=state.id,
                        profile=profile.name,
                        provider=profile.provider,
                    )
                self.model_health[model.key]["successes"] += 1
                return value, model, profile
            previous = (model, last_profile, last_error)
        return None

    def _announce(
        self,
        kind: str,
        state: RequestState,
        previous: tuple[ModelEntry, AuthProfile | None, ProviderError | None],
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        if not self.hooks.wants(FailoverEvent):
            return
        from_model, from_profile, error = previous
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

    async def _with_retries(
        self,
        state: RequestState,
        attempt: Callable[[AttemptContext], Awaitable[T]],
        model: ModelEntry,
        profile: AuthProfile,
    ) -> T:
        base_url = profile.base_url or self.base_url_for(model.provider)

        async def once() -> T:
            time_left = state.time_left()
            if time_left <= 0:
                raise ProviderTimeoutError("the request's deadline passed")
            ctx = AttemptContext(
                profile,
                model,
                base_url,
                len(state.attempts) + 1,
                state.id,
                min(self.timeout, time_left),
            )
            started = time.monotonic()
            if state.telemetry is not None:
                state.telemetry.attempt_started(ctx)
            try:
                value = await attempt(ctx)
            except ProviderError as error:
                self.record_attempt(state, model, profile, error, started)
                if state.telemetry is not None:
                    state.telemetry.attempt_ended(ctx, error.kind, error)
                raise
            if state.telemetry is not None:
                state.telemetry.attempt_ended(ctx, "ok")
            state.attempts.append(
                Attempt(model.key, profile.name, "ok", None, None, time.monotonic() - started)
            )
            return value

        def on_retry(error: ProviderError, number: int, delay: float) -> None:
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

        return await retry_same_key(
            once,
            config=self.manager.config,
            sleep=self.sleep,
            time_left=state.time_left,
            on_failure=lambda error: self.record_failure(state, model, profile, error),
            on_retry=on_retry,
        )

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
        self.manager.record_headroom(
            profile.name,
            requests_remaining=headroom.requests_remaining,
            tokens_remaining=headroom.tokens_remaining,
            spent_for=headroom.spent_for,
        )
        if was_available and profile.status is not ProfileStatus.AVAILABLE:
            self.emit(
                CooldownEvent,
                request_id=request_id,
                profile=profile.name,
                provider=profile.provider,
                status=profile.status.value,
                duration=headroom.spent_for,
                reason="budget_spent",
                error_message="the key's rate-limit budget is spent until it resets",
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
        error.redact(profile.api_key)
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

    def record_failure(
        self, state: RequestState, model: ModelEntry, profile: AuthProfile, error: ProviderError
    ) -> Decision:
        """Apply a failure to the profile's health; return what to do next."""
        decision = decide(error, raise_on_content_filter=self.raise_on_content_filter)
        health = self.model_health[model.key]
        health["failures"] += 1
        health["last_error"] = f"{error.kind}: {error.message}"[:300]
        if decision.failure is None:
            return decision
        manager = self.manager
        now = manager.clock()
        was_resting = profile.status is not ProfileStatus.AVAILABLE or profile.resting_from(
            model.id, now
        )
        transient = decision.failure == "error"
        status = manager.mark_failure(
            profile.name,
            error.message,
            kind=decision.failure,
            retry_after=None if transient else error.retry_after,
            model=model.id if transient else None,
        )
        model_rest = profile.model_cooldowns.get(model.id, 0.0) if transient else 0.0
        if status is not ProfileStatus.AVAILABLE:  # the key itself is resting
            until, rest, rested_model = profile.cooldown_until, status.value, None
        elif model_rest > now:  # the key rests from this model only
            until, rest, rested_model = model_rest, "model_resting", model.key
        else:
            return decision
        if not was_resting:
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
            )
        if decision.action is Action.RETRY:
            return Decision(Action.NEXT_MODEL, decision.failure)  # the key is resting now
        return decision

    def status(self, chain: Sequence[ModelEntry]) -> dict[str, Any]:
        """The manager's status (keys masked) and the health of each model of ``chain``."""
        status = self.manager.status()
        available = {s.name for s in status.profiles if s.status is ProfileStatus.AVAILABLE}
        models = [
            {
                "model": model.key,
                **self.model_health[model.key],
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

    def on_exhausted(self, hook: H) -> H:
        """Call ``hook(ExhaustedEvent)`` when a request fails after trying everything."""
        return self._engine.hooks.add(ExhaustedEvent, hook)
