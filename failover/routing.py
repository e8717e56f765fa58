"""Routing: strategies that order the deployments of a chain step, and hedged requests.

A chain step may be a group of equivalent deployments (the same model from OpenAI and
Azure, or in two regions). A strategy orders them for each request; the engine tries them
in that order, going sideways to the next on a failure, and reaches the next step only
when none can serve. Keys of one deployment are the manager's (priority, then least
recently used, which is round robin among equals).

A hedged request starts a second attempt on another deployment (another endpoint of the
same model, or the next model) when the first has not answered after ``hedge_after``
seconds, or after the recent 95th percentile of that deployment's latency; the first to
succeed wins and the other is cancelled. A budget keeps the extra load bounded.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from failover.catalog import ModelEntry, TokenUsage
from failover.errors import ConfigError

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = [
    "STRATEGIES",
    "CostStrategy",
    "HedgeBudget",
    "Hedging",
    "LatencyStrategy",
    "LatencyTracker",
    "LeastBusyStrategy",
    "PriorityStrategy",
    "RoundRobinStrategy",
    "RoutingView",
    "Strategy",
    "WeightedStrategy",
    "strategy_named",
]

HedgeAfter = float | Literal["p95"]


class LatencyTracker:
    """The latest latencies (seconds to a reply, or to a stream's first chunk) per deployment.

    Args:
        window: Latencies kept per deployment.
        limit: Deployments remembered (the least recently used are forgotten).
        clock: A monotonic clock in seconds, which dates the averages; inject a fake one
            in tests.
    """

    def __init__(
        self, window: int = 64, limit: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._limit = limit
        self.clock = clock
        self._samples: OrderedDict[tuple[str, str | None], deque[float]] = OrderedDict()

        self._averages: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def record(self, model: str, endpoint: str | None, seconds: float) -> None:
        """Note that ``model`` at ``endpoint`` answered in ``seconds``."""
        key = (model, endpoint)
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=self._window)
            if len(self._samples) > self._limit:
                self._samples.popitem(last=False)
        else:
            self._samples.move_to_end(key)
        samples.append(seconds)
        average, _ = self._averages.pop(model, (seconds, 0.0))
        self._averages[model] = (0.8 * average + 0.2 * seconds, self.clock())
        if len(self._averages) > self._limit:
            self._averages.popitem(last=False)

    def average(self, model: str, *, max_age: float = 60.0) -> float | None:
        """The model's exponentially weighted average latency (over every endpoint), or
        ``None`` when it has none younger than ``max_age`` seconds."""
        found = self._averages.get(model)
        if found is None or self.clock() - found[1] > max_age:
            return None
        return found[0]

    def quantile(
        self, model: str, endpoint: str | None, q: float, *, minimum: int = 16
    ) -> float | None:
        """The ``q`` quantile of the recent latencies, or ``None`` with fewer than ``minimum``."""
        samples = self._samples.get((model, endpoint))
        if samples is None or len(samples) < minimum:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class HedgeBudget:
    """At most ``ratio`` extra requests on average, with ``initial`` credit to start with.

    Every request earns ``ratio`` of a hedge, banked up to what 100 requests earn (so a
    burst of slow replies can all be hedged); a hedge spends one. A cold client can hedge
    at once, a busy one hedges about one request in ten.
    """

    def __init__(self, ratio: float = 0.1, initial: float = 2.0) -> None:
        if not 0 <= ratio <= 1:
            raise ConfigError(f"hedge_budget must be within [0, 1], got {ratio!r}")
        self.ratio = ratio
        self._cap = initial + max(1.0, 100 * ratio)
        self._credit = initial

    def earn(self) -> None:
        """Credit one request."""
        self._credit = min(self._cap, self._credit + self.ratio)

    def spend(self) -> bool:
        """Take one hedge from the budget; ``False`` when there is not enough credit."""
        if self._credit < 1:
            return False
        self._credit -= 1
        return True


class Hedging:
    """When to hedge a request, and whether the budget allows it.

    Args:
        after: Seconds without a reply before hedging, or ``"p95"``: the deployment's
            recent 95th-percentile latency (no hedge until 16 replies are known).
        budget: Extra requests allowed, as a share of all requests.

    Raises:
        ConfigError: ``after`` is neither a positive number nor ``"p95"``.
    """

    def __init__(self, after: HedgeAfter, *, budget: float = 0.1) -> None:
        if after != "p95" and (
            isinstance(after, bool)
            or not isinstance(after, (int, float))
            or not 0 < after < math.inf
        ):
            raise ConfigError(
                f"hedge_after must be a positive number of seconds or 'p95', got {after!r}"
            )
        self.after = after
        self.budget = HedgeBudget(budget)

    def delay(self, model: str, endpoint: str | None, latency: LatencyTracker) -> float | None:
        """Seconds to wait for the first attempt before hedging (``None``: do not hedge)."""
        if isinstance(self.after, str):
            return latency.quantile(model, endpoint, 0.95)
        return float(self.after)


class RoutingView:
    """What strategies may look at: requests in flight, recent latency, weights, prices.

    Args:
        latency: The latency tracker the engine feeds.
        weight_of: A deployment's weight (the sum of its usable profiles' weights).
    """

    def __init__(self, latency: LatencyTracker, weight_of: Callable[[ModelEntry], float]) -> None:
        self.latency = latency
        self.weight_of = weight_of
        self._in_flight: dict[str, int] = {}  # per model key, and per profile name

    def in_flight(self, model: ModelEntry) -> int:
        """Requests now in flight to ``model`` (every endpoint)."""
        return self._in_flight.get(model.key, 0)

    def in_flight_on(self, profile: AuthProfile) -> int:
        """Requests now in flight on ``profile``'s key."""
        return self._in_flight.get("\x00" + profile.name, 0)

    def started(self, model: ModelEntry, profile: AuthProfile) -> None:
        """Count a request to ``model`` on ``profile`` in flight."""
        for key in (model.key, "\x00" + profile.name):
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def ended(self, model: ModelEntry, profile: AuthProfile) -> None:
        """Count a request to ``model`` on ``profile`` as done."""
        for key in (model.key, "\x00" + profile.name):
            left = self._in_flight.get(key, 1) - 1
            if left:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)


class Strategy(Protocol):
    """Orders the deployments of one chain step for one request.

    A strategy may also choose among a deployment's keys with a method
    ``prefer(first, second, view) -> bool``: the engine offers the two keys the manager
    would hand out next (power of two choices, O(1) whatever the number of keys) and uses
    ``second`` when it returns True. Without it, keys come in the manager's order
    (priority, then least recently used).
    """

    name: ClassVar[str]

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` in the order to try them (``usage``: the request's estimate)."""
        ...


class PriorityStrategy:
    """As listed: the first deployment while it serves, the next when it cannot."""

    name: ClassVar[str] = "priority"

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` as they are."""
        return deployments


class RoundRobinStrategy:
    """Each request starts at the next deployment of the step."""

    name: ClassVar[str] = "round_robin"

    def __init__(self) -> None:
        self._turns: dict[tuple[str, ...], itertools.count[int]] = {}

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` rotated by one more than last time."""
        key = tuple(model.key for model in deployments)
        turn = next(self._turns.setdefault(key, itertools.count())) % len(deployments)
        return [*deployments[turn:], *deployments[:turn]]


class WeightedStrategy:
    """Random order, each deployment first in proportion to its weight.

    A deployment's weight is the sum of the ``weight`` of the profiles that serve it, so
    two keys of weight 1 on OpenAI and one of weight 2 on Azure split evenly.
    """

    name: ClassVar[str] = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return a weighted random permutation (Efraimidis-Spirakis keys)."""
        draw = self._random.random

        def key(model: ModelEntry) -> float:
            weight = view.weight_of(model)
            return draw() ** (1.0 / weight) if weight > 0 else -1.0

        return sorted(deployments, key=key, reverse=True)

    def prefer(self, first: AuthProfile, second: AuthProfile, view: RoutingView) -> bool:
        """Take ``second`` with probability proportional to its weight."""
        total = first.weight + second.weight
        return total > 0 and self._random.random() * total < second.weight


class LeastBusyStrategy:
    """Fewest requests in flight first (ties: as listed)."""

    name: ClassVar[str] = "least_busy"

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` by requests in flight."""
        return sorted(deployments, key=view.in_flight)

    def prefer(self, first: AuthProfile, second: AuthProfile, view: RoutingView) -> bool:
        """Take ``second`` when fewer requests are in flight on it."""
        return view.in_flight_on(second) < view.in_flight_on(first)


class LatencyStrategy:
    """Lowest recent latency first, exploring so a recovered deployment is tried again.

    A deployment with no latency younger than ``max_age`` seconds (never tried, or not
    chosen for a while) goes first, and with probability ``explore`` a random one does.

    Args:
        explore: The share of requests that try a random deployment first.
        max_age: Seconds after which a deployment's latency counts as unknown.
    """

    name: ClassVar[str] = "latency"

    def __init__(
        self, explore: float = 0.05, max_age: float = 60.0, rng: random.Random | None = None
    ) -> None:
        self.explore = explore
        self.max_age = max_age
        self._random = rng or random.Random()

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` by recent latency, unknown first."""
        if self._random.random() < self.explore:
            chosen = self._random.choice(deployments)
            return [chosen, *(model for model in deployments if model is not chosen)]

        def key(model: ModelEntry) -> float:
            average = view.latency.average(model.key, max_age=self.max_age)
            return -1.0 if average is None else average

        return sorted(deployments, key=key)


class CostStrategy:
    """Cheapest first for the request's estimated tokens (unknown prices last)."""

    name: ClassVar[str] = "cost"

    def order(
        self, deployments: Sequence[ModelEntry], view: RoutingView, usage: TokenUsage
    ) -> Sequence[ModelEntry]:
        """Return ``deployments`` by the catalog's price of ``usage``."""

        def key(model: ModelEntry) -> float:
            cost = model.calculate_cost(usage)
            return math.inf if cost is None else cost

        return sorted(deployments, key=key)


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "priority": PriorityStrategy,
    "round_robin": RoundRobinStrategy,
    "weighted": WeightedStrategy,
    "least_busy": LeastBusyStrategy,
    "latency": LatencyStrategy,
    "cost": CostStrategy,
}
"""Every built-in strategy by name."""


def strategy_named(strategy: str | Strategy) -> Strategy:
    """The strategy called ``strategy`` (or ``strategy`` itself when it is one).

    Raises:
        ConfigError: No strategy has that name, or the object has no ``order`` method.
    """
    if isinstance(strategy, str):
        factory = STRATEGIES.get(strategy)
        if factory is None:
            raise ConfigError(f"unknown strategy {strategy!r}; one of: {', '.join(STRATEGIES)}")
        return factory()
    if not callable(getattr(strategy, "order", None)):
        raise ConfigError(f"a strategy needs an order() method, got {strategy!r}")
    return strategy
