"""Spend budgets: how many dollars a scope may spend per window, and the ledger that counts.

A :class:`Budget` says "this scope may spend ``usd`` per window": the whole client, one
profile, one model, one deployment group, or a tag that callers pass per request (a tenant,
say). Windows are calendar hours, days or months in UTC, or a number of seconds aligned to
the epoch. Before an attempt its worst-case cost is reserved in every budget that applies,
all or nothing; after the reply the reservation is settled to the real cost (or released
when nothing was spent)::

    ledger = BudgetLedger()
    budgets = [Budget(usd=50, per="day"), Budget(usd=5, per="hour", scope="tag:tenant-a")]
    held = await ledger.reserve(budgets, 0.12)
    if isinstance(held, Refusal):
        ...  # held.budget would overrun; it resets at held.resets_at
    else:
        await ledger.settle(held, 0.03)

:class:`BudgetLedger` counts in this process; ``RedisBudgetLedger``
(:mod:`failover.store.redis_budgets`) counts on Redis, atomically across processes, and what
was spent survives a restart for the rest of its window.
"""

from __future__ import annotations

import calendar
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from failover.errors import ConfigError

__all__ = [
    "EPSILON",
    "Budget",
    "BudgetLedger",
    "Ledger",
    "Refusal",
    "Reservation",
    "budget_snapshot",
    "check_dollars",
    "plan_reservation",
]

EPSILON = 1e-9
"""Dollars of float rounding a reservation may go over a budget by (a billionth of a dollar)."""

_CALENDAR = ("hour", "day", "month")
_KINDS = ("profile", "model", "group", "tag")
_SCOPES = "'client', 'profile:<name>', 'model:<provider/model>', 'group:<name>' or 'tag:<tag>'"

# per -> the last window computed for it: most calls fall in the same window as the last one
_last_window: dict[str | float, tuple[str, float, float]] = {}


@dataclass(frozen=True, slots=True)
class Budget:
    """How many dollars a scope may spend per window.

    Args:
        usd: The most the scope may spend in one window (> 0).
        per: ``"hour"``, ``"day"`` or ``"month"`` (calendar windows in UTC) or a number of
            seconds (windows aligned to the epoch: the n-th window starts at ``n * per``).
        scope: What it limits: ``"client"`` (everything the client sends),
            ``"profile:<name>"``, ``"model:<provider/model>"``, ``"group:<name>"`` (a
            deployment group) or ``"tag:<tag>"`` (requests that callers tag so).

    Raises:
        ConfigError: a value is out of range; the message names the field.
    """

    usd: float
    per: str | float = "day"
    scope: str = "client"
    _id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        usd = self.usd
        if (
            isinstance(usd, bool)
            or not isinstance(usd, (int, float))
            or not usd > 0
            or math.isinf(usd)
        ):
            raise ConfigError(f"Budget usd must be a number > 0 and finite, got {usd!r}")
        per = self.per
        if isinstance(per, str):
            if per not in _CALENDAR:
                raise ConfigError(
                    f"Budget per must be 'hour', 'day', 'month' or seconds > 0, got {per!r}"
                )
        elif isinstance(per, bool) or not isinstance(per, (int, float)):
            raise ConfigError(
                f"Budget per must be 'hour', 'day', 'month' or seconds > 0, got {per!r}"
            )
        elif not per > 0 or math.isinf(per):
            raise ConfigError(f"Budget per (seconds) must be > 0 and finite, got {per!r}")
        else:
            object.__setattr__(self, "per", float(per))  # 60 and 60.0: one identity
        object.__setattr__(self, "usd", float(usd))
        scope = self.scope
        if not isinstance(scope, str):
            raise ConfigError(f"Budget scope must be {_SCOPES}, got {scope!r}")
        if scope != "client":
            kind, colon, target = scope.partition(":")
            if kind not in _KINDS or not colon or not target.strip():
                raise ConfigError(f"Budget scope must be {_SCOPES}, got {scope!r}")
            if kind == "model":
                provider, slash, model = target.partition("/")
                if not (provider.strip() and slash and model.strip()):
                    raise ConfigError(
                        f"Budget scope 'model:' needs a provider/model id, got {scope!r}"
                    )
        object.__setattr__(self, "_id", f"{scope}|{self.per}")

    @property
    def kind(self) -> str:
        """What the budget limits: ``client``, ``profile``, ``model``, ``group`` or ``tag``."""
        return self.scope.partition(":")[0]

    @property
    def target(self) -> str | None:
        """The profile name, model id, group name or tag after the colon; None for ``client``."""
        kind, _, target = self.scope.partition(":")
        return None if kind == "client" else target

    @property
    def id(self) -> str:
        """A stable identity across processes and restarts: scope and window, not the limit.

        Raising ``usd`` keeps what was spent in the window so far.
        """
        return self._id

    def window(self, now: float) -> tuple[str, float, float]:
        """The window ``now`` falls in: ``(window id, starts_at, resets_at)``.

        Args:
            now: Wall-clock time, in seconds since the epoch (``time.time()``).
        """
        per = self.per
        last = _last_window.get(per)
        if last is not None and last[1] <= now < last[2]:
            return last
        window = _seconds_window(per, now) if isinstance(per, float) else _calendar_window(per, now)
        _last_window[per] = window
        return window

    def applies(
        self, *, profile: str, model: str, groups: Collection[str], tags: Collection[str]
    ) -> bool:
        """Whether an attempt with this profile, model, groups and request tags counts here."""
        kind, _, target = self.scope.partition(":")
        if kind == "client":
            return True
        if kind == "profile":
            return target == profile
        if kind == "model":
            return target == model
        if kind == "group":
            return target in groups
        return target in tags

    def __str__(self) -> str:
        usd = self.usd
        dollars = f"${usd:,.2f}" if round(usd, 2) == usd else f"${usd:,.6g}"
        per = self.per
        window = per if isinstance(per, str) else f"{per:g} s"
        return f"{dollars} per {window} for {self.scope}"


def _calendar_window(per: str, now: float) -> tuple[str, float, float]:
    # POSIX time has no leap seconds: hours and days are exact multiples from the epoch,
    # so whole-second arithmetic avoids datetime's microsecond rounding at the edges
    if per == "hour":
        start = math.floor(now / 3600) * 3600
        label = datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m-%dT%H")
        return label, float(start), float(start + 3600)
    day = math.floor(now / 86400) * 86400
    if per == "day":
        label = datetime.fromtimestamp(day, tz=timezone.utc).strftime("%Y-%m-%d")
        return label, float(day), float(day + 86400)
    date = datetime.fromtimestamp(day, tz=timezone.utc)
    year, month = date.year, date.month
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    end = calendar.timegm(
        (year + 1, 1, 1, 0, 0, 0) if month == 12 else (year, month + 1, 1, 0, 0, 0)
    )
    return f"{year:04d}-{month:02d}", float(start), float(end)


def _seconds_window(per: float, now: float) -> tuple[str, float, float]:
    index = math.floor(now / per)
    if (index + 1) * per <= now:  # float rounding just below a boundary
        index += 1
    elif index * per > now:
        index -= 1
    return str(index), index * per, (index + 1) * per


def check_dollars(value: float, name: str) -> float:
    """``value`` as a float of dollars; ValueError unless it is >= 0 and finite."""
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of dollars, got {value!r}")
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be >= 0 and finite dollars, got {value!r}")
    return float(value)


def _distinct(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    """One budget per identity (the strictest), in the order given."""
    if len(budgets) < 2 or len({budget._id for budget in budgets}) == len(budgets):
        return tuple(budgets)
    chosen: dict[str, Budget] = {}
    for budget in budgets:
        seen = chosen.get(budget._id)
        if seen is None or budget.usd < seen.usd:
            chosen[budget._id] = budget
    return tuple(chosen.values())


_closing = threading.Lock()


class Reservation:
    """Dollars held in some budgets until :meth:`BudgetLedger.settle` or ``release``.

    Settle or release it exactly once; a second call is a no-op. It remembers the window it
    was made in, so settling after a window rolled over corrects that window, never the new
    one.
    """

    __slots__ = ("_done", "_windows", "amount", "budgets")

    def __init__(
        self,
        budgets: tuple[Budget, ...],
        amount: float,
        windows: tuple[tuple[str, float, float], ...],
    ) -> None:
        self.budgets = budgets
        """The budgets it holds dollars in (one per identity)."""
        self.amount = amount
        """The dollars held in each."""
        self._windows = windows  # per budget: Budget.window() when it was made
        self._done = False

    @property
    def done(self) -> bool:
        """Whether it has been settled or released."""
        return self._done

    def _finish(self) -> bool:
        """Mark it done; False when it already was (the caller then does nothing)."""
        with _closing:
            if self._done:
                return False
            self._done = True
            return True

    def __repr__(self) -> str:
        scopes = ", ".join(str(budget) for budget in self.budgets)
        return f"Reservation(${self.amount:.6g} in [{scopes}], done={self._done})"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: the first budget it would overrun."""

    budget: Budget
    """The budget that would overrun."""
    spent: float
    """Dollars used in its current window, reservations in flight included."""
    resets_at: float
    """Wall-clock time (epoch seconds) its window ends and the spend starts again from 0."""
    amount: float = 0.0
    """The dollars that were asked for."""


class Ledger(Protocol):
    """What a budget ledger offers: :class:`BudgetLedger` and ``RedisBudgetLedger``."""

    async def reserve(self, budgets: Sequence[Budget], amount: float) -> Reservation | Refusal:
        """Hold ``amount`` dollars in every budget, or in none."""
        ...

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace what was held by the real cost."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back everything that was held."""
        ...

    async def used(self, budget: Budget) -> float:
        """Dollars spent and held in the budget's current window."""
        ...

    async def snapshot(self, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
        """Each budget's spend and what is left, for status and telemetry."""
        ...


def budget_snapshot(budget: Budget, used: float, now: float) -> dict[str, Any]:
    """One budget's line for ``failover status`` and telemetry."""
    resets_at = budget.window(now)[2]
    return {
        "scope": budget.scope,
        "per": budget.per,
        "usd": budget.usd,
        "used": used,
        "remaining": max(0.0, budget.usd - used),
        "resets_in": max(0.0, resets_at - now),
    }


def plan_reservation(
    budgets: Sequence[Budget], amount: float, now: float
) -> tuple[tuple[Budget, ...], tuple[tuple[str, float, float], ...], float]:
    """The checked amount, the distinct budgets and their windows at ``now`` (for ledgers)."""
    amount = check_dollars(amount, "amount")
    chosen = _distinct(budgets)
    windows = tuple([budget.window(now) for budget in chosen])
    return chosen, windows, amount


class BudgetLedger:
    """Counts spend per budget and window in this process; thread-safe.

    Its methods are coroutines for one shape with the Redis ledger, but they never suspend:
    a reservation is checked and held in one step.

    Args:
        clock: Wall-clock time in epoch seconds (windows are calendar windows).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (budget id, window id) -> [dollars used, resets_at]
        self._used: dict[tuple[str, str], list[float]] = {}
        self._prune_at = math.inf  # the earliest resets_at held

    def __repr__(self) -> str:
        return f"BudgetLedger(windows={len(self._used)})"

    async def reserve(self, budgets: Sequence[Budget], amount: float) -> Reservation | Refusal:
        """Hold ``amount`` dollars in every budget, or in none.

        Every budget must have room (``used + amount <= usd``); then ``amount`` is added to
        each. A zero amount (an unpriced model) always passes.

        Returns:
            The reservation to settle or release later, or the first budget's refusal.

        Raises:
            ValueError: ``amount`` is negative, NaN or infinite.
        """
        now = self._clock()
        chosen, windows, amount = plan_reservation(budgets, amount, now)
        reservation = Reservation(chosen, amount, windows)
        if amount == 0 or not chosen:
            return reservation
        with self._lock:
            if now >= self._prune_at:
                self._prune(now)
            used = self._used
            slots = []
            for budget, (window, _, resets_at) in zip(chosen, windows, strict=True):
                slot = used.get((budget._id, window))
                spent = 0.0 if slot is None else max(0.0, slot[0])
                if spent + amount > budget.usd + EPSILON:
                    return Refusal(budget, spent, resets_at, amount)
                slots.append(slot)
            for budget, (window, _, resets_at), slot in zip(chosen, windows, slots, strict=True):
                if slot is None:
                    used[(budget._id, window)] = [amount, resets_at]
                    self._prune_at = min(self._prune_at, resets_at)
                else:
                    slot[0] += amount
        return reservation

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace what ``reservation`` holds by the real cost, in the window it was made in.

        Raises:
            ValueError: ``actual`` is negative, NaN or infinite.
        """
        actual = check_dollars(actual, "actual")
        self._finish(reservation, actual - reservation.amount)

    async def release(self, reservation: Reservation) -> None:
        """Give back everything ``reservation`` holds (nothing was spent)."""
        self._finish(reservation, -reservation.amount)

    async def used(self, budget: Budget) -> float:
        """Dollars spent and held in ``budget``'s current window."""
        return self._used_now(budget, self._clock())

    async def snapshot(self, budgets: Sequence[Budget]) -> list[dict[str, Any]]:
        """Per budget: scope, per, usd, used, remaining and resets_in (seconds)."""
        now = self._clock()
        return [budget_snapshot(b, self._used_now(b, now), now) for b in budgets]

    def _used_now(self, budget: Budget, now: float) -> float:
        slot = self._used.get((budget._id, budget.window(now)[0]))
        return 0.0 if slot is None else max(0.0, slot[0])

    def _finish(self, reservation: Reservation, delta: float) -> None:
        if not reservation._finish() or delta == 0:
            return
        now = self._clock()
        with self._lock:
            for budget, (window, _, resets_at) in zip(
                reservation.budgets, reservation._windows, strict=True
            ):
                slot = self._used.get((budget._id, window))
                if slot is not None:
                    slot[0] = max(0.0, slot[0] + delta)
                elif delta > 0 and resets_at > now:  # e.g. a zero reservation that cost
                    self._used[(budget._id, window)] = [delta, resets_at]
                    self._prune_at = min(self._prune_at, resets_at)
                # else: its window is over (and forgotten): nothing reads it again

    def _prune(self, now: float) -> None:
        self._used = {key: slot for key, slot in self._used.items() if slot[1] > now}
        self._prune_at = min((slot[1] for slot in self._used.values()), default=math.inf)
