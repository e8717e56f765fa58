"""What an attempt's outcome does to the keys' and models' health, and how it is told.

:class:`KeyHealth` is the engine's part that records attempts (their errors filled in and
scrubbed of every key), applies a failure to the key's health through the policy (cooling
or disabling the key, or resting the model at its endpoint), reads a reply's rate-limit
headroom, and announces each change (logs, CooldownEvent, RecoveredEvent).
:class:`ModelHealth` keeps successes, failures and the last error per model.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from failover import logs
from failover._secrets import KeyScrubber
from failover.attempts import Attempt
from failover.catalog import ModelEntry
from failover.classify import UNUSUAL_HEADROOM, read_headroom_in_full
from failover.errors import ProviderError
from failover.events import CooldownEvent, Event, HookDispatcher, RecoveredEvent
from failover.policy import Decision, Policy
from failover.profiles import AuthProfile, FailoverManager, ProfileStatus, last_profile_change
from failover.request import RequestState

__all__ = ["KeyHealth", "ModelHealth"]

_log = logs.logger  # logged only after a (cached) isEnabledFor check
_DEBUG, _INFO, _WARNING = logs.DEBUG, logs.INFO, logs.WARNING
_api_key = attrgetter("api_key")


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
        models = self._models
        try:
            models.move_to_end(model)  # the most recently used goes last
        except KeyError:
            health = models[model] = {"successes": 0, "failures": 0, "last_error": None}
            if len(models) > self._limit:
                models.popitem(last=False)
            return health
        return models[model]

    def __len__(self) -> int:
        return len(self._models)


class KeyHealth:
    """The engine's bookkeeping of outcomes (a part of :class:`~failover.engine.Engine`)."""

    manager: FailoverManager
    policy: Policy
    hooks: HookDispatcher
    model_health: ModelHealth
    _scrubber: tuple[int, KeyScrubber] | None

    def emit(self, event_type: type[Event], **fields: Any) -> None:
        """Build and deliver an event, but only when a hook listens for it."""
        if self.hooks.wants(event_type):
            self.hooks.emit(event_type(**fields))

    def _recovered(self, state: RequestState, profile: AuthProfile) -> None:
        """Announce that a failing key succeeded again."""
        if _log.isEnabledFor(_INFO):
            logs.recovered(state.id, profile.name, profile.provider, state.attempts[-1].model)
        self.emit(
            RecoveredEvent, request_id=state.id, profile=profile.name, provider=profile.provider
        )

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

    def note_headroom_counts(
        self,
        request_id: str,
        profile: AuthProfile,
        headers: Mapping[str, str],
        counts: tuple[int | None, int | None],
    ) -> None:
        """Record what a reply's rate-limit headers say is left of the key's budgets, given
        their :func:`~failover.classify.headroom_counts` (``counts``), read by the caller
        and not ``None``: the usual reply, without rate-limit headers, makes no call here.

        A spent budget holds the key until it resets, announced as a CooldownEvent with
        reason ``budget_spent``.
        """
        if counts is not UNUSUAL_HEADROOM:  # no budget spent (the usual reply): the counts
            requests_left, tokens_left = counts
            self.manager.record_headroom(
                profile.name, requests_remaining=requests_left, tokens_remaining=tokens_left
            )
            return
        self._note_headroom_in_full(request_id, profile, headers)

    def _note_headroom_in_full(
        self, request_id: str, profile: AuthProfile, headers: Mapping[str, str]
    ) -> None:
        """:meth:`note_headroom_counts` of a reply whose headers must be read in full (a
        spent budget: the key is held until it resets)."""
        headroom = read_headroom_in_full(headers)
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
        """A scrubber of every key the manager holds, made again when a profile changes
        (:func:`~failover.profiles.last_profile_change`)."""
        version = last_profile_change()
        made = self._scrubber
        if made is None or made[0] != version:
            keys = tuple(map(_api_key, self.manager.list_profiles()))
            made = self._scrubber = (version, KeyScrubber(keys))
        return made[1]

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
            rested = (rest, until - now, rested_model, capped_from)
            self._announce_cooldown(state.id, profile, error, rested)
        return decision

    def _announce_cooldown(
        self,
        request_id: str,
        profile: AuthProfile,
        error: ProviderError,
        rested: tuple[str, float, str | None, float | None],
    ) -> None:
        """Announce that ``error`` rested ``profile`` (or a model at it): its status, for
        how long, which model, and the provider's wait when it was capped."""
        rest, duration, rested_model, capped_from = rested
        if _log.isEnabledFor(_WARNING if math.isinf(duration) else _INFO):
            logs.cooldown(
                request_id,
                profile.name,
                profile.provider,
                rest,
                duration,
                error.kind,
                model=rested_model,
                http_status=error.status,
                capped_from=capped_from,
            )
        self.emit(
            CooldownEvent,
            request_id=request_id,
            profile=profile.name,
            provider=profile.provider,
            status=rest,
            duration=duration,
            reason=error.kind,
            error_message=error.message,
            model=rested_model,
            capped_from=capped_from,
        )

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
