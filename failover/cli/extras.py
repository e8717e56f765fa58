"""What each subcommand needs beyond a bare install, and the one line that says so.

A bare ``pip install llm-failover`` has the client and ``failover chat``; the other
subcommands need an extra. Each is checked before the command starts, so a missing one is
named with its install line (exit status 2) rather than met as a ``ModuleNotFoundError``
halfway through.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.util import find_spec

__all__ = ["EXTRAS", "PACKAGE", "advice", "extra_for_module", "missing_extras", "needed_extras"]

PACKAGE = "llm-failover"
EXTRAS: dict[str, tuple[str, ...]] = {
    "cli": ("rich",),
    "sim": ("starlette", "uvicorn", "rich"),
    "redis": ("redis",),
    "prometheus": ("opentelemetry.sdk", "opentelemetry.exporter.prometheus"),
}
"""Extra -> the modules it brings that the command imports."""


def needed_extras(args: argparse.Namespace) -> list[str]:
    """The extras the parsed command needs, in the order to name them."""
    command = args.command
    if command in ("check", "status"):
        if command == "status" and args.redis:
            return ["cli", "redis"]
        return [] if command == "status" and args.json else ["cli"]
    if command == "simulate":
        return ["sim"]
    if command == "demo":
        return [
            "sim",
            *(["redis"] if args.workers else []),
            *(["prometheus"] if args.metrics_port is not None else []),
        ]
    return []  # chat: the client alone


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ImportError:  # a parent package is missing (opentelemetry for .sdk)
        return False


def missing_extras(extras: Sequence[str]) -> list[str]:
    """The ``extras`` of which some module is not installed."""
    return [extra for extra in extras if not all(_installed(m) for m in EXTRAS[extra])]


def extra_for_module(name: str | None) -> str | None:
    """The extra that brings the module ``name`` (or its package), if one does."""
    if not name:
        return None
    for extra, modules in EXTRAS.items():
        if any(name == m or name.startswith(m + ".") or m.startswith(name + ".") for m in modules):
            return extra
    return None


def advice(command: str, extras: Sequence[str]) -> str:
    """``failover demo needs the 'sim' extra: pip install 'llm-failover[sim]'``."""
    names = " and ".join(f"'{extra}'" for extra in extras)
    plural = "extra" if len(extras) == 1 else "extras"
    return (
        f"failover {command} needs the {names} {plural}: "
        f"pip install '{PACKAGE}[{','.join(extras)}]'"
    )
