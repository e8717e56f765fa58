"""Testing helpers.

* :class:`ScriptedProvider` (``failover.testing.scripted``): an in-process fake provider
  answered from a script, for users' own tests; core dependencies only.
* :class:`Simulator` (``failover.testing.simulator``): the local provider simulator over
  real HTTP; needs the ``sim`` extra (starlette, uvicorn), imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.testing.scripted import Call, Script, ScriptedProvider, Step

if TYPE_CHECKING:
    from failover.testing.simulator import KINDS, Behavior, Received, Simulator

__all__ = [
    "KINDS",
    "Behavior",
    "Call",
    "Received",
    "Script",
    "ScriptedProvider",
    "Simulator",
    "Step",
]

_SIMULATOR_NAMES = frozenset({"KINDS", "Behavior", "Received", "Simulator"})


def __getattr__(name: str) -> Any:
    """The simulator's names, imported on first use (they need the ``sim`` extra)."""
    if name in _SIMULATOR_NAMES:
        from failover.testing import simulator

        return getattr(simulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
