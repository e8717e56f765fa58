"""Routing helpers: recent latency per deployment, and hedged requests with a budget.

A hedged request starts a second attempt on another deployment (another endpoint of the
same model, or the next model) when the first has not answered after ``hedge_after``
seconds, or after the recent 95th percentile of that deployment's latency; the first to
succeed wins and the other is cancelled. A budget keeps the extra load bounded.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Literal

from failover.errors import ConfigError

__all__ = ["HedgeBudget", "Hedging", "LatencyTracker"]

HedgeAfter = float | Literal["p95"]


class LatencyTracker:
    """The latest latencies (seconds to a reply, or to a stream's first chunk) per deployment.

    Args:
        window: Latencies kept per deployment.
        limit: Deployments remembered (the least recently used are forgotten).
    """

    def __init__(self, window: int = 64, limit: int = 1024) -> None:
        self._window = window
        self._limit = limit
        self._samples: OrderedDict[tuple[str, str | None], deque[float]] = OrderedDict()

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

    Every request earns ``ratio`` of a hedge (up to ``initial + 1`` banked); a hedge spends
    one. A cold client can hedge at once, a busy one hedges about one request in ten.
    """

    def __init__(self, ratio: float = 0.1, initial: float = 2.0) -> None:
        if not 0 <= ratio <= 1:
            raise ConfigError(f"hedge_budget must be within [0, 1], got {ratio!r}")
        self.ratio = ratio
        self._cap = initial + 1
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
        self.latency = LatencyTracker()

    def delay(self, model: str, endpoint: str | None) -> float | None:
        """Seconds to wait for the first attempt before hedging (``None``: do not hedge)."""
        if isinstance(self.after, str):
            return self.latency.quantile(model, endpoint, 0.95)
        return float(self.after)
