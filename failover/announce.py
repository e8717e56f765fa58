"""How the engine tells what a request's plan decided: logs and events.

:class:`Announcements` is the engine's part that hears the plan (a move to another key,
deployment or model; a model skipped) and announces the engine's own steps (a retry after
a backoff, a hedge, an exhausted request). Every log line waits for a (cached)
``isEnabledFor`` and every event for a listener, so a request nobody watches pays little.
"""

from __future__ import annotations

from failover import logs
from failover.catalog import ModelEntry
from failover.errors import AllAttemptsFailed
from failover.events import ExhaustedEvent, FailoverEvent, HedgeEvent, RetryEvent
from failover.health import KeyHealth
from failover.plan import Candidate, Pause, PinnedPlan, Plan, Previous
from failover.profiles import AuthProfile
from failover.request import RequestState

__all__ = ["Announcements"]

_log = logs.logger
_DEBUG, _INFO, _WARNING = logs.DEBUG, logs.INFO, logs.WARNING


class Announcements(KeyHealth):
    """The engine's announcements (a part of :class:`~failover.engine.Engine`); it is the
    :class:`~failover.plan.Moves` its plans tell."""

    def skipped(self, request_id: str, model: str, field_name: str) -> None:
        """Log that ``model`` is skipped: it cannot take the request's ``field_name``."""
        if _log.isEnabledFor(_DEBUG):
            logs.skipped(request_id, model, field_name)

    def moved(
        self,
        kind: str,
        request_id: str,
        previous: Previous,
        model: ModelEntry,
        profile: AuthProfile | None,
    ) -> None:
        """Announce a move to another key (``key``), deployment or model (a FailoverEvent)."""
        wanted = self.hooks.wants(FailoverEvent)
        logged = _log.isEnabledFor(_INFO)
        if not (wanted or logged):
            return
        from_model, from_profile, error = previous
        if logged:
            logs.moved(
                kind,
                request_id,
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
                request_id=request_id,
                kind=kind,
                from_model=from_model.key,
                from_profile=from_profile.name if from_profile else None,
                to_model=model.key,
                to_profile=profile.name if profile else None,
                reason=error.kind if error else "no_profile_available",
                error_message=error.message if error else "no usable key for this model",
            )
        )

    def _announce_retry(self, state: RequestState, pause: Pause) -> None:
        """Announce a retry of what failed (the pause's error, model and key)."""
        error, model, profile = pause.error, pause.model, pause.profile
        if error is None or model is None or profile is None:
            return
        if _log.isEnabledFor(_INFO):
            logs.retry(state.id, model.key, profile.name, pause.number, pause.delay, error)
        self.emit(
            RetryEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            attempt=pause.number,
            delay=pause.delay,
            reason=error.kind,
            error_message=error.message,
        )

    def _announce_hedge(
        self, state: RequestState, candidate: Candidate, target: Candidate, delay: float
    ) -> None:
        """Announce a hedge of ``candidate`` on ``target`` after ``delay`` seconds."""
        model, profile = candidate.model, candidate.profile
        if _log.isEnabledFor(_INFO):
            logs.hedged(
                state.id, model.key, profile.name, target.model.key, target.profile.name, delay
            )
        self.emit(
            HedgeEvent,
            request_id=state.id,
            model=model.key,
            profile=profile.name,
            to_model=target.model.key,
            to_profile=target.profile.name,
            after=delay,
        )

    def _exhausted(
        self, state: RequestState, plan: Plan | PinnedPlan, retry_after: float | None
    ) -> AllAttemptsFailed:
        """The plan's exhaustion error, announced."""
        error = plan.exhausted(retry_after)
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
