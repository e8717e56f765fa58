"""``failover check`` and ``failover status``: the config file, its keys, their state."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.cli import options
from failover.cli.environment import CHAT_MODELS, OLLAMA_MODEL

if TYPE_CHECKING:
    from failover.config_file import LoadedConfig, ProfileSpec
    from failover.profiles import AuthProfile, FailoverManager, FailoverStatus

__all__ = ["NOT_PROBED", "PROBE", "Probe", "run_check", "run_status"]

PROBE = [{"role": "user", "content": "Reply with the word OK."}]
"""The tiny request a probe sends."""
NOT_PROBED = "not probed: run with --probe to check keys"


# -- probing each key --------------------------------------------------------------------------


@dataclass(slots=True)
class Probe:
    """What one tiny request through one profile showed."""

    profile: AuthProfile
    model: str | None
    outcome: str
    status: int | None
    latency: float
    message: str


def _probe_model(spec: ProfileSpec, chain: Sequence[str]) -> str | None:
    """The model to probe a profile with: the chain's first it may serve, else a default."""
    from failover.catalog import canonical_provider

    provider = spec.build().provider
    models = spec.values.get("models")
    for key in chain:
        model_provider, _, model = key.partition("/")
        if canonical_provider(model_provider) == provider and (not models or model in models):
            return key
    if models:
        return f"{provider}/{next(iter(models))}"
    if provider in CHAT_MODELS:
        return CHAT_MODELS[provider]
    return f"{provider}/{OLLAMA_MODEL}" if provider.startswith("ollama") else None


async def _probe(spec: ProfileSpec, model: str | None, timeout: float) -> Probe:
    from failover import FailoverConfig, FailoverError, ResilientClient

    profile = spec.build()
    if model is None:
        return Probe(profile, None, "skipped", None, 0.0, "no model to try; list its models")
    began = time.monotonic()
    config = FailoverConfig(max_retries=0, failure_threshold=1)
    try:
        async with ResilientClient(
            [model], [profile], config=config, timeout=timeout, telemetry=False
        ) as client:
            await client.complete(PROBE, max_tokens=16)
    except FailoverError as exc:
        attempts = getattr(exc, "attempts", ()) or ()
        last = attempts[-1] if attempts else None
        outcome = last.outcome if last else getattr(exc, "kind", type(exc).__name__)
        status = last.status if last else getattr(exc, "status", None)
        message = (last.error.message if last and last.error else str(exc)).partition("\n")[0]
        return Probe(profile, model, outcome, status, time.monotonic() - began, message[:120])
    return Probe(profile, model, "ok", 200, time.monotonic() - began, "")


async def _probe_all(loaded: LoadedConfig, timeout: float) -> list[Probe]:
    return list(
        await asyncio.gather(
            *(
                _probe(spec, _probe_model(spec, loaded.model_ids), timeout)
                for spec in loaded.profiles
            )
        )
    )


# -- check -----------------------------------------------------------------------------------


async def run_check(args: argparse.Namespace) -> int:
    """Validate the config file and show it; with ``--live``, probe every key (1 if any fails)."""
    from rich.table import Table

    from failover.catalog import default_catalog

    console = options.console()
    loaded = options.load(args.config)
    if loaded.chain:  # the client's own checks: options, a profile per chain provider, ...
        await loaded.client(telemetry=False).aclose()
    console.print(
        f"[green]{loaded.source}: valid[/] - {len(loaded.profiles)} profile(s), "
        f"chain of {len(loaded.chain)} model(s)",
        soft_wrap=True,
    )
    profiles = Table(title="profiles")
    for column in ("profile", "provider", "key", "base_url", "models", "priority"):
        profiles.add_column(column)
    for spec in loaded.profiles:
        profile = spec.build()
        key = f"{spec.key_source} ({profile.masked_key})" if profile.api_key else spec.key_source
        profiles.add_row(
            profile.name,
            profile.provider,
            key,
            profile.base_url or "(public)",
            ", ".join(sorted(profile.models)) if profile.models else "any",
            str(profile.priority),
        )
    console.print(profiles)
    if loaded.chain:
        chain = Table(title="chain")
        for column in ("#", "model", "context", "$/Mtok in/out", "profiles"):
            chain.add_column(column)
        built = loaded.build_profiles()
        for position, key in enumerate(loaded.model_ids, start=1):
            entry = default_catalog.resolve(key)
            assert entry is not None  # the loader checked the chain
            serving = [p.name for p in built if p.provider == entry.provider and p.allows(entry.id)]
            prices = (
                f"{entry.cost_input:g} / {entry.cost_output:g}"
                if entry.cost_input is not None and entry.cost_output is not None
                else "unknown"
            )
            chain.add_row(
                str(position),
                key,
                f"{entry.context_window:,}" if entry.context_window else "?",
                prices,
                ", ".join(serving) or "[red]none[/]",
            )
        console.print(chain)
    if not args.live:
        return 0
    probes = await _probe_all(loaded, args.timeout)
    live = Table(title="live: one tiny request per profile")
    for column in ("profile", "model", "result", "HTTP", "latency", "requests left", "tokens left"):
        live.add_column(column)
    live.add_column("detail", overflow="fold")
    for probe in probes:
        good = probe.outcome == "ok"
        live.add_row(
            probe.profile.name,
            probe.model or "-",
            "[green]ok[/]" if good else f"[red]{probe.outcome}[/]",
            str(probe.status or "-"),
            f"{probe.latency * 1000:.0f} ms",
            options.count(probe.profile.requests_remaining),
            options.count(probe.profile.tokens_remaining),
            probe.message,
        )
    console.print(live)
    failed = [probe for probe in probes if probe.outcome != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} of {len(probes)} profile(s) failed[/]")
    return 1 if failed else 0


# -- status ------------------------------------------------------------------------------------


async def _status_manager(args: argparse.Namespace) -> FailoverManager:
    """The manager whose keys ``failover status`` shows, without ``--redis``.

    A config file gives a local view: fresh profiles, whose state nothing has checked
    unless ``--probe`` sends one tiny request through each first.
    """

    loaded = options.load(args.config)
    if not args.probe:
        return loaded.manager()
    probes = await _probe_all(loaded, args.timeout)
    return loaded.manager(profiles=[probe.profile for probe in probes])


async def run_status(args: argparse.Namespace) -> int:
    """Show every key's state: live from Redis (``--redis``; with ``--config``, admission
    read from the same store too), or from the config file. Budgets, token windows and
    in-flight caps are shown when the file sets any; keys never are."""
    from failover import ConfigError

    if args.redis:  # the state the clients share, live from the store
        if args.probe or args.json:
            raise ConfigError("--redis shows the shared store; --probe and --json are local")
        return await _shared_status(args)
    if args.watch:
        raise ConfigError("--watch refreshes the shared state: give --redis URL")
    manager = await _status_manager(args)
    status = manager.status()
    from failover.status_view import read_admission

    admission = await read_admission(manager, counted_here=False)
    if args.json:
        shown = _status_dict(status, probed=args.probe)
        if admission.configured:
            shown["admission"] = admission.to_dict()
        print(json.dumps(shown, indent=2))
        return 0
    console = options.console()
    if args.probe:
        console.print(_status_table(status))
    else:
        console.print(f"{status.total_profiles} key(s), {NOT_PROBED}", soft_wrap=True)
        console.print(_unprobed_table(status))
    if admission.configured:
        from failover.status_view import render_admission

        console.print(
            "admission as the file sets it, seen from here: no spend is shared without a "
            "store (--redis URL shows what the clients share)",
            soft_wrap=True,
        )
        for table in render_admission(admission):
            console.print(table)
    return 0


async def _shared_status(args: argparse.Namespace) -> int:
    """``--redis``: the store's state; with ``--config``, admission read from it as well."""
    from failover.status_view import run_status

    if not args.config:
        return await run_status(args.redis, prefix=args.prefix, watch=args.watch)
    from failover.store import RedisStore

    loaded = options.load(args.config)
    store = RedisStore(args.redis, prefix=args.prefix)  # read only: its sync never starts
    try:
        manager = loaded.manager(store=store)
        return await run_status(args.redis, prefix=args.prefix, watch=args.watch, manager=manager)
    finally:
        await store.aclose()


def _status_dict(status: FailoverStatus, *, probed: bool) -> dict[str, Any]:
    """``status`` as JSON. Unprobed, no key is claimed available: nothing was checked."""
    data = {"probed": probed, **status.to_dict()}
    if not probed:
        data["available_profiles"] = None
        for profile in data["profiles"]:
            if profile["status"] == "available":
                profile["status"] = "not_probed"
    return data


def _unprobed_table(status: FailoverStatus) -> Any:
    """The keys as a rich table, none claimed available: nothing was checked."""
    from rich.table import Table

    table = Table(title="keys")
    for column in ("profile", "provider", "key", "status"):
        table.add_column(column)
    for snapshot in status.profiles:
        state = snapshot.status.value
        shown = "[dim]not probed[/]" if state == "available" else f"[red]{state}[/]"
        table.add_row(snapshot.name, snapshot.provider, snapshot.key, shown)
    return table


def _status_table(status: FailoverStatus) -> Any:
    """The keys' state after a probe, as a rich table."""
    from rich.table import Table

    colours = {"available": "green", "rate_limited": "yellow", "cooling_down": "yellow"}
    table = Table(
        title=f"key status: {status.available_profiles} of {status.total_profiles} available"
    )
    columns = ("profile", "provider", "key", "status", "back in", "failures", "successes")
    for column in (*columns, "requests left", "tokens left"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    for snapshot in status.profiles:
        state = snapshot.status.value
        remaining = snapshot.cooldown_remaining
        back_in = (
            "-" if remaining <= 0 else "never" if remaining == float("inf") else f"{remaining:.0f}s"
        )
        table.add_row(
            snapshot.name,
            snapshot.provider,
            snapshot.key,
            f"[{colours.get(state, 'red')}]{state}[/]",
            back_in,
            f"{snapshot.consecutive_failures} in a row / {snapshot.failure_count}",
            str(snapshot.success_count),
            options.count(snapshot.requests_remaining),
            options.count(snapshot.tokens_remaining),
            (snapshot.last_error or "").partition("\n")[0][:120],
        )
    return table
