"""Admission: whether a candidate may be tried now, and what it holds while it runs.

Before each attempt the engine asks :meth:`Admission.admit`. Three gates, each idle until
configured:

- **Spend budgets** (:class:`~failover.budgets.Budget`): the attempt's worst-case cost
  (its input tokens estimated from the request, plus ``max_tokens``, priced from the
  catalog) is reserved in every budget that applies to it; over any of them, the candidate
  is refused (:class:`~failover.errors.OverBudget`). After the reply the reservation is
  settled at the real cost (a stream's at its end).
- **Token rate**: a key's ``rate_limit_tpm`` is a token bucket (refilled continuously, as
  providers do); the request's estimated tokens are taken from it and corrected from the
  reply's usage and the provider's ``x-ratelimit-remaining-tokens``. No room: refused
  (:class:`~failover.errors.OverTokenRate`, with the seconds until room). Requests per
  minute (``rate_limit_rpm``) are held by the key pools, which pass a full key by.
- **Concurrency caps**: a key's ``max_in_flight``, and a deployment's (``provider/model``)
  from ``max_in_flight=`` on the manager (:class:`~failover.errors.AtCapacity`). Counted
  in this process.

Budgets and token windows live in the manager's store: with ``RedisStore``, every process
shares them atomically (and spend survives a restart within its window).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from failover.budgets import Budget, BudgetLedger, Ledger, Refusal, Reservation
from failover.catalog import ModelEntry, TokenUsage
from failover.errors import (
    AtCapacity,
    ConfigError,
    OverBudget,
    OverTokenRate,
    PoolExhaustedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
)
from failover.in_flight import InFlight, Slot
from failover.rate_windows import RateTicket, RateWindows
from failover.store.outage import Outage, unreachable

if TYPE_CHECKING:
    from failover.profiles import AuthProfile
    from failover.store.base import Store

__all__ = [
    "DEFAULT_OUTPUT_RESERVE",
    "Admission",
    "Ticket",
    "checked_tags",
    "payload_input_tokens",
    "payload_max_tokens",
    "worst_output",
]
_log = logging.getLogger("failover.admission")
_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_INPUT_FIELDS = ("messages", "input", "contents", "system", "instructions", "systemInstruction")

DEFAULT_OUTPUT_RESERVE = 4096
"""Output tokens reserved for a request that sets no ``max_tokens`` (or the model's own
maximum when that is lower)."""


def worst_output(max_tokens: int | None, model: ModelEntry) -> int:
    """The most output a request may produce on ``model``: its ``max_tokens`` (``None``: the
    model's maximum, at most :data:`DEFAULT_OUTPUT_RESERVE`; 0 for embeddings)."""
    if max_tokens is not None:
        return max_tokens
    return min(model.max_tokens or DEFAULT_OUTPUT_RESERVE, DEFAULT_OUTPUT_RESERVE)


def _counted(usage: TokenUsage) -> int:
    """The tokens a provider counts against a key's minute: cached ones too."""
    return (
        usage.input_tokens + usage.output_tokens + usage.cache_read_tokens
        + usage.cache_write_tokens
    )  # fmt: skip


def payload_input_tokens(payload: Mapping[str, Any]) -> int:
    """A rough count of an SDK's request body's input tokens (4 characters a token)."""
    characters = sum(
        len(json.dumps(payload[f], default=str)) for f in _INPUT_FIELDS if f in payload
    )
    return characters // 4 + 1


def payload_max_tokens(payload: Mapping[str, Any]) -> int | None:
    """The most output an SDK's request body asks for (any wire's field), if it says."""
    config = payload.get("generationConfig")
    if isinstance(config, Mapping) and isinstance(config.get("maxOutputTokens"), int):
        return int(config["maxOutputTokens"])
    for name in _OUTPUT_FIELDS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def checked_tags(tags: str | Sequence[str]) -> tuple[str, ...]:
    """A request's ``tags`` as a tuple (one tag may be given as a str).

    Raises:
        ConfigError: A tag is not a non-empty str.
    """
    found = (tags,) if isinstance(tags, str) else tuple(tags)
    for tag in found:
        if not isinstance(tag, str) or not tag:
            raise ConfigError(f"tags must be non-empty strings, got {tag!r}")
    return found


class Ticket:
    """What an admitted attempt holds: a budget reservation, token-window room and an
    in-flight place, each given back once (:meth:`Admission.settle` / ``release``)."""

    __slots__ = (
        "input_tokens",
        "ledger",
        "model",
        "output_tokens",
        "profile",
        "rate",
        "reservation",
        "slot",
    )

    def __init__(
        self,
        profile: AuthProfile,
        model: ModelEntry,
        input_tokens: int,
        output_tokens: int,
        reservation: Reservation | None,
        rate: RateTicket | None,
        slot: Slot | None,
        ledger: Ledger | None = None,
    ) -> None:
        self.profile = profile
        self.model = model
        self.input_tokens = input_tokens
        """The attempt's estimated input tokens."""
        self.output_tokens = output_tokens
        """The most output it may produce (its worst case with the input)."""
        self.reservation = reservation
        self.rate = rate
        self.slot = slot
        self.ledger = ledger
        """The ledger that holds the reservation (this process's own while Redis is down)."""

    def __repr__(self) -> str:
        held = [
            name
            for name, part in (("budget", self.reservation), ("tokens", self.rate))
            if part is not None
        ]
        if self.slot is not None:
            held.append("slot")
        return f"Ticket({self.model.key!r}, holds={held})"


def _check_caps(caps: Mapping[str, int] | None) -> dict[str, int]:
    checked: dict[str, int] = {}
    for deployment, cap in (caps or {}).items():
        if not isinstance(deployment, str) or "/" not in deployment:
            raise ConfigError(f"max_in_flight keys are 'provider/model' ids, got {deployment!r}")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(
                f"max_in_flight[{deployment!r}] must be a whole number of 1 or more, got {cap!r}"
            )
        checked[deployment] = cap
    return checked


def _check_budgets(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    if isinstance(budgets, (str, bytes, Budget)) or not isinstance(budgets, Sequence):
        raise ConfigError(f"budgets must be a list of failover.Budget, got {budgets!r}")
    for budget in budgets:
        if not isinstance(budget, Budget):
            raise ConfigError(f"budgets must hold failover.Budget objects, got {budget!r}")
    return tuple(budgets)


class Admission:
    """The gates before every attempt of the manager's requests (see the module docstring).

    Args:
        budgets: Spend budgets, checked before and charged after every attempt.
        max_in_flight: Deployment (``provider/model``) -> requests it may run at once.
        store: Where budgets and token windows are kept (``store.shared``: in Redis).
    """

    def __init__(
        self,
        budgets: Sequence[Budget] = (),
        *,
        max_in_flight: Mapping[str, int] | None = None,
        store: Store | None = None,
    ) -> None:
        self.budgets = _check_budgets(budgets)
        self.caps = _check_caps(max_in_flight)
        self.always = bool(self.budgets or self.caps)
        """Whether every attempt is admitted (budgets or deployment caps are set); else
        only those on a key with ``rate_limit_tpm`` or ``max_in_flight``."""
        self.in_flight = InFlight()
        self._store = store
        self._ledger: Ledger | None = None
        self._local_ledger: BudgetLedger | None = None  # while a shared ledger is unreachable
        self._outage = Outage(_log, "failover budgets", "spend is counted in this process")
        self._windows: RateWindows | Any = None

    @property
    def ledger(self) -> Ledger:
        """Where spend is kept (in Redis with a shared store)."""
        if self._ledger is None:
            store = self._store
            if store is not None and getattr(store, "shared", False):
                from failover.store.redis_budgets import RedisBudgetLedger

                self._ledger = RedisBudgetLedger(store.redis, store.prefix)  # type: ignore[attr-defined]
            else:
                self._ledger = BudgetLedger()
        return self._ledger

    @property
    def windows(self) -> RateWindows | Any:
        """The keys' token buckets (in Redis with a shared store)."""
        if self._windows is None:
            store = self._store
            if store is not None and getattr(store, "shared", False):
                from failover.store.redis_rates import RedisRateWindows

                self._windows = RedisRateWindows(store.redis, store.prefix)  # type: ignore[attr-defined]
            else:
                self._windows = RateWindows()
        return self._windows

    def applying(
        self,
        profile: AuthProfile,
        model: ModelEntry,
        groups: Mapping[str, str] | None,
        tags: Collection[str],
    ) -> list[Budget]:
        """The budgets that apply to an attempt of ``model`` on ``profile``."""
        group = groups.get(model.key) if groups else None
        return [
            budget
            for budget in self.budgets
            if budget.applies(
                profile=profile.name,
                model=model.key,
                groups=(group,) if group else (),
                tags=tags,
            )
        ]

    async def admit(
        self,
        profile: AuthProfile,
        model: ModelEntry,
        input_tokens: int,
        output_tokens: int,
        *,
        groups: Mapping[str, str] | None,
        tags: Collection[str],
    ) -> Ticket | OverBudget | OverTokenRate | AtCapacity:
        """Admit an attempt of ``model`` on ``profile`` that may use up to ``input_tokens``
        and ``output_tokens`` (its worst case), or say why not (nothing is held then)."""
        slot: Slot | None = None
        if profile.max_in_flight is not None or model.key in self.caps:
            slot = self.in_flight.enter(
                profile.name, profile.max_in_flight, model.key, self.caps.get(model.key)
            )
            if slot is None:
                return AtCapacity(
                    f"{profile.name!r} or {model.key} has its most requests in flight"
                )
        reservation: Reservation | None = None
        ledger: Ledger | None = None
        try:
            budgets = self.applying(profile, model, groups, tags) if self.budgets else ()
            if budgets:
                worst = TokenUsage(input_tokens, output_tokens)
                cost = model.calculate_cost(worst) or 0.0  # an unpriced model costs nothing known
                ledger, reserved = await self._reserve(budgets, cost)
                if isinstance(reserved, Refusal):
                    if slot is not None:
                        slot.leave()
                    return _over_budget(reserved, budgets, profile)
                reservation = reserved
            rate: RateTicket | None = None
            if profile.rate_limit_tpm is not None:
                tokens = input_tokens + output_tokens
                taken = await self.windows.take(
                    profile.name, profile.fingerprint, profile.rate_limit_tpm, None, tokens
                )
                if not isinstance(taken, RateTicket):
                    if reservation is not None and ledger is not None:
                        await _quietly(ledger.release(reservation))
                    if slot is not None:
                        slot.leave()
                    return OverTokenRate(
                        f"{profile.name!r} has no room for ~{tokens} tokens in its "
                        f"{profile.rate_limit_tpm} tokens a minute",
                        retry_after=taken,
                    )
                rate = taken
        except BaseException:  # cancelled or failed midway: nothing stays held
            if slot is not None:
                slot.leave()
            if reservation is not None and ledger is not None:
                with anyio.CancelScope(shield=True):
                    await _quietly(ledger.release(reservation))
            raise
        return Ticket(profile, model, input_tokens, output_tokens, reservation, rate, slot, ledger)

    async def _reserve(
        self, budgets: Sequence[Budget], cost: float
    ) -> tuple[Ledger, Reservation | Refusal]:
        """Reserve in the shared ledger; while it is unreachable, in this process's own
        (counted from 0: the spend others made is unknown until it is back), with one
        warning per outage."""
        ledger = self.ledger
        if not isinstance(ledger, BudgetLedger):
            try:
                reserved = await ledger.reserve(budgets, cost)
            except Exception as error:
                if not self._outage.failed(error):
                    raise
                local = self._local_ledger = self._local_ledger or BudgetLedger()
                return local, await local.reserve(budgets, cost)
            self._outage.answered()
            return ledger, reserved
        return ledger, await ledger.reserve(budgets, cost)

    async def settle(self, ticket: Ticket, usage: TokenUsage | None) -> float | None:
        """The attempt answered: charge its real cost (the worst case when its usage is
        unknown) and correct its token-window room; return the dollars charged."""
        if ticket.slot is not None:
            ticket.slot.leave()
        charged = None
        if ticket.reservation is not None and ticket.ledger is not None:
            cost = ticket.model.calculate_cost(usage) if usage is not None else None
            charged = cost if cost is not None else ticket.reservation.amount
            await _quietly(ticket.ledger.settle(ticket.reservation, charged))
        if ticket.rate is not None and usage is not None:  # unknown: the worst case stays
            await self.windows.correct(ticket.rate, _counted(usage))
        return charged

    async def release(self, ticket: Ticket, error: BaseException) -> None:
        """The attempt failed with ``error``: give back what the provider did not count.

        A request cut short (a timeout, a cancellation) may have been served and billed:
        it is charged its worst case. Otherwise its reservation is given back, and its
        tokens as the provider counts them: none after a rate limit, all but the input
        after another error reply, all (the request too) when it never connected or this
        process had no connection to send it on.
        """
        unsent = isinstance(error, PoolExhaustedError) or (
            isinstance(error, ProviderConnectionError) and error.status is None
        )
        if not unsent and (
            isinstance(error, ProviderTimeoutError) or not isinstance(error, ProviderError)
        ):
            await self.settle(ticket, None)
            return
        if ticket.slot is not None:
            ticket.slot.leave()
        if ticket.reservation is not None and ticket.ledger is not None:
            await _quietly(ticket.ledger.release(ticket.reservation))
        rate = ticket.rate
        if rate is not None:
            if unsent:
                await self.windows.refund(rate)
            elif isinstance(error, (RateLimitError, QuotaExceededError)):
                await self.windows.correct(rate, 0)
            else:
                await self.windows.correct(rate, ticket.input_tokens)

    async def observe(
        self, profile: AuthProfile, remaining_tokens: int | None, remaining_requests: int | None
    ) -> None:
        """What the provider said is left of the key's minute (its rate-limit headers)."""
        if profile.rate_limit_tpm is None or remaining_tokens is None:
            return
        await self.windows.observe(
            profile.name,
            profile.fingerprint,
            profile.rate_limit_tpm,
            None,
            remaining_tokens=remaining_tokens,
            remaining_requests=remaining_requests,
        )

    async def status(self, profiles: Sequence[AuthProfile]) -> dict[str, Any]:
        """Spend and what is left per budget, each limited key's token window, and what
        is in flight (for ``failover status`` and telemetry)."""
        keys = {}
        for profile in profiles:
            if profile.rate_limit_tpm is not None:
                keys[profile.name] = await self.windows.snapshot(
                    profile.name, profile.fingerprint, profile.rate_limit_tpm, None
                )
        return {
            "budgets": await self.ledger.snapshot(self.budgets) if self.budgets else [],
            "token_windows": keys,
            "in_flight": self.in_flight.counts(),
        }


async def _quietly(work: Awaitable[None]) -> None:
    """Settle or release in a shared ledger that may be unreachable: what it held then
    stays held until its window ends (spend over-counted, never under-counted)."""
    try:
        await work
    except Exception as error:
        if not unreachable(error):
            raise
        _log.warning("failover budgets: could not settle a reservation (%s)", type(error).__name__)


def _over_budget(refusal: Refusal, budgets: Sequence[Budget], profile: AuthProfile) -> OverBudget:
    """The refusal as the error the plan reads: another key helps only when the budget
    that refused is that key's own."""
    budget = refusal.budget
    left = max(0.0, budget.usd - refusal.spent)
    resets_in = max(0.0, refusal.resets_at - time.time())
    return OverBudget(
        f"{budget}: ${left:.4f} left, this attempt may cost ${refusal.amount:.4f}; "
        f"resets in {_duration(resets_in)}",
        budget=budget,
        resets_at=refusal.resets_at,
        rotates=budget.kind == "profile",
    )


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
