"""The engine's gates: admission before each attempt, sessions around a request, and what
an answered or failed attempt gives back.

A part of :class:`~failover.engine.Engine` (as its announcements are): it asks the
manager's :class:`~failover.admission.Admission` whether a candidate may be tried now
(recording a refusal as an attempt, nothing blamed), charges an answer's real cost and
corrects its token window, gives back what a failure held, wakes the line when room comes
back, and reads and writes where each conversation was last served.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from failover import logs
from failover.admission import Admission, Ticket, worst_output
from failover.affinity import Pin
from failover.catalog import ModelEntry, TokenUsage
from failover.errors import OverTokenRate, ProviderError, Refused, ReplyRejected
from failover.events import RepinnedEvent
from failover.plan import Candidate, PinnedPlan, Plan
from failover.request import RequestState

if TYPE_CHECKING:
    from failover.events import Event
    from failover.profiles import AuthProfile, FailoverManager
    from failover.recovery import RecoveryLine

__all__ = ["Gates"]

T = TypeVar("T")
_log = logs.logger
_INFO = logs.INFO


class Gates:
    """Admission and sessions, for the engine (see the module docstring)."""

    manager: FailoverManager
    recovery: RecoveryLine
    _waiting_for: Counter[str]
    _shared: bool  # whether the store is shared: its bookkeeping waits on Redis

    if TYPE_CHECKING:  # the engine's own, from its health and announcements

        def record_attempt(
            self,
            state: RequestState,
            model: ModelEntry,
            profile: AuthProfile,
            error: ProviderError,
            started: float,
        ) -> None:
            """Add a failed attempt to the request's history."""

        def emit(self, event_type: type[Event], **fields: Any) -> None:
            """Deliver an event to the hooks that listen."""

    async def _surely(self, work: Awaitable[T]) -> T:
        """Finish ``work`` (admission's and sessions' bookkeeping) even when the request is
        being cancelled, or it leaks: a shared store's waits on Redis are shielded, an
        in-process one's never suspend, so nothing can cut them."""
        if not self._shared:
            return await work
        with anyio.CancelScope(shield=True):
            done = await work
        return done

    async def _admit(
        self, state: RequestState, admission: Admission, candidate: Candidate
    ) -> Ticket | Refused:
        """Ask admission for ``candidate``; a refusal is recorded as an attempt (no call was
        made, nothing is blamed) and the plan moves on from it."""
        model, profile = candidate.model, candidate.profile
        if state.estimate is not None:
            state.input_tokens, state.estimate = state.estimate(), None
        admitted: Ticket | Refused
        if not state.queued and self._waiting_for.get(profile.name):
            admitted = OverTokenRate(
                f"requests wait in line for room on {profile.name!r}: this one goes behind them"
            )  # first come, first served: a newcomer never takes the room they wait for
        else:
            input_tokens = state.input_tokens
            if input_tokens is None:
                input_tokens = state.estimated_usage.input_tokens
            output_tokens = worst_output(state.max_tokens, model)
            admitted = await admission.admit(
                profile, model, input_tokens, output_tokens, groups=state.groups, tags=state.tags
            )
        if not isinstance(admitted, Ticket):
            self.manager.give_back_use(profile.name)  # nothing was sent: no rpm place taken
            self.record_attempt(state, model, profile, admitted, time.monotonic())
        return admitted

    async def _give_back(self, admission: Admission, ticket: Ticket, error: BaseException) -> None:
        """What a failed (or cancelled) attempt held: a rejected reply was answered (and
        billed); the rest give back what the provider did not count (see
        :meth:`Admission.release`). Room that comes back wakes the line."""
        if isinstance(error, ReplyRejected):
            usage = getattr(error.completion, "usage", None)
            await admission.settle(ticket, usage if isinstance(usage, TokenUsage) else None)
        else:
            await admission.release(ticket, error)
        if self.recovery:
            self.recovery.wake()

    async def _pin_of(self, session: str) -> Pin | None:
        """Where ``session`` was last served (``None`` also when its store fails: a
        conversation served elsewhere costs a cache, never the request)."""
        try:
            return await self._surely(self.manager.sessions.get(session))
        except Exception as error:
            _log.warning("session pins could not be read: %s", type(error).__name__)
            return None

    async def _pin(
        self, state: RequestState, plan: Plan | PinnedPlan, model: ModelEntry, profile: AuthProfile
    ) -> None:
        """Pin the request's conversation where it was served; say so when it moved."""
        assert state.session is not None
        sessions = self.manager.sessions
        pin = Pin(model.key, profile.name)
        try:
            if isinstance(plan, Plan) and plan.pin == pin:
                await self._surely(sessions.touch(state.session))
                return
            previous = await self._surely(sessions.set(state.session, pin))
        except Exception as error:
            _log.warning("session pins could not be written: %s", type(error).__name__)
            return
        if previous is not None and previous != pin:
            if _log.isEnabledFor(_INFO):
                _log.info(
                    "%s session moved from %s via %s to %s via %s",
                    state.id,
                    previous.model,
                    previous.profile,
                    pin.model,
                    pin.profile,
                )
            self.emit(
                RepinnedEvent,
                request_id=state.id,
                session=state.session,
                from_model=previous.model,
                from_profile=previous.profile,
                to_model=pin.model,
                to_profile=pin.profile,
            )

    async def settle(self, state: RequestState, usage: TokenUsage | None) -> float | None:
        """Charge the answered request's real cost to its budgets and correct its token
        windows (the worst case when ``usage`` is unknown); the dollars charged."""
        ticket = state.ticket
        if ticket is None:
            return None
        state.ticket = None
        admission = self.manager.admission
        charged = await self._surely(admission.settle(ticket, usage))
        if self.recovery:  # what the reply did not use is room for those waiting
            self.recovery.wake()
        if charged is not None and state.telemetry is not None and ticket.reservation is not None:
            state.telemetry.charged(charged, [b.scope for b in ticket.reservation.budgets])
        profile = ticket.profile  # what its reply's rate-limit headers said is left
        if profile.tokens_remaining is not None:
            await self._surely(
                admission.observe(profile, profile.tokens_remaining, profile.requests_remaining)
            )
        return charged

    async def unsettled(self, state: RequestState) -> None:
        """Give back what an answer that was never delivered held (a stream closed before
        its end is charged its worst case: what it produced is billed)."""
        ticket = state.ticket
        if ticket is not None:
            state.ticket = None
            await self._surely(self.manager.admission.settle(ticket, None))
            if self.recovery:
                self.recovery.wake()
