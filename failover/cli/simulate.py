"""``failover simulate`` and ``failover demo``: the local provider simulator, scripted or driven."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.testing import Simulator

__all__ = ["SCRIPT_KEYS", "apply_script", "read_script", "run_demo_command", "run_simulate"]


# -- simulate --------------------------------------------------------------------------------


def read_script(path: str) -> dict[str, Any]:
    """A simulator script file: TOML, or JSON when it ends in ``.json``."""
    from failover import ConfigError

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the script ({exc.strerror})") from None
    try:
        if file.suffix == ".json":
            document = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            document = tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"{file}: cannot parse the script: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: a script is a table (keys, default, script, outage, chaos)")
    return document


SCRIPT_KEYS = ("keys", "default", "script", "outage", "chaos")


def apply_script(sim: Simulator, document: Mapping[str, Any], source: str) -> None:
    """Script ``sim`` from a script file's tables; every mistake names its table and key.

    ``[[script]]``: ``behavior`` (a kind, or a table of Behavior fields) with ``key``,
    ``model`` or ``provider``; ``[[outage]]``: ``provider``, ``start``, ``end``, ``kind``;
    ``[chaos]``: ``rates`` and ``seed``; ``[default]``: Behavior fields.
    """
    from failover import ConfigError
    from failover.testing import Behavior

    def behavior(value: Any, where: str) -> Behavior:
        try:
            return Behavior(value) if isinstance(value, str) else Behavior(**dict(value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None

    def tables(name: str) -> list[dict[str, Any]]:
        items = document.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError(f"{source}: {name} must be [[{name}]] tables")
        return items

    for key in document:
        if key not in SCRIPT_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}; known: {', '.join(SCRIPT_KEYS)}")
    for provider, keys in dict(document.get("keys", {})).items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{source}: [keys] {provider} must be a list of keys")
        for key in keys:
            sim.add_key(provider, key)
    if "default" in document:
        sim.default = behavior(document["default"], "[default]")
    for number, item in enumerate(tables("script"), start=1):
        where = f"[[script]] #{number}"
        unknown = set(item) - {"behavior", "key", "model", "provider"}
        if unknown or "behavior" not in item:
            raise ConfigError(
                f"{source}: {where}: needs behavior (and key, model or provider)"
                + (f"; unknown key(s): {', '.join(sorted(unknown))}" if unknown else "")
            )
        sim.script(
            behavior(item["behavior"], where),
            key=item.get("key"),
            model=item.get("model"),
            provider=item.get("provider"),
        )
    for number, item in enumerate(tables("outage"), start=1):
        where = f"[[outage]] #{number}"
        try:
            sim.outage(
                item["provider"],
                start=float(item["start"]),
                end=float(item["end"]),
                kind=item.get("kind", "overloaded"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {where}: needs provider, start and end ({exc})") from None
    if "chaos" in document:
        chaos = dict(document["chaos"])
        try:
            sim.chaos(dict(chaos.get("rates", {})), seed=int(chaos.get("seed", 0)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: [chaos]: {exc}") from None


async def run_simulate(args: argparse.Namespace) -> int:
    """Serve the simulator until interrupted, scripted from ``--script`` when given."""
    from failover.testing import Simulator

    accepted: dict[str, list[str]] = {}
    for provider, key in args.key:
        accepted.setdefault(provider, []).append(key)
    document = read_script(args.script) if args.script else None
    async with Simulator(keys=accepted, port=args.port) as sim:
        if document is not None:
            apply_script(sim, document, args.script)
        print(f"simulator listening on {sim.root_url}", flush=True)
        for provider in ("openai", "anthropic", "gemini", "ollama-native", "groq"):
            print(f"  {provider:14} base_url={sim.base_url(provider)}")
        print(
            f"  script it: POST {sim.root_url}/_sim/script "
            '{"behavior": {"kind": "rate_limit", "retry_after": 5}, "key": "..."}'
        )
        print(f"  recorded calls: GET {sim.root_url}/_sim/calls")
        if args.script:
            print(f"  scripted from {args.script}", flush=True)
        await asyncio.Event().wait()
    return 0


# -- demo ------------------------------------------------------------------------------------


async def run_demo_command(args: argparse.Namespace) -> int:
    """The demo: one process (the default) or ``--workers`` processes sharing the keys."""
    if args.workers:
        from failover.demo_workers import run_workers_demo

        return await run_workers_demo(args.workers, args.requests, args.redis)
    from failover.demo import run_demo

    await run_demo(args.requests, args.concurrency, args.seconds, metrics_port=args.metrics_port)
    return 0
