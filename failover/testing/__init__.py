"""Testing helpers: the local provider simulator (needs the ``sim`` extra)."""

from __future__ import annotations

from failover.testing.simulator import KINDS, Behavior, Received, Simulator

__all__ = ["KINDS", "Behavior", "Received", "Simulator"]
