"""``failover status --redis URL [--config FILE] [--watch]``: the shared state, as tables.

Reads what :class:`~failover.store.RedisStore` keeps under a prefix: each profile's status,
how long it still rests and why, its escalation strikes and its uses in the last minute,
every breaker resting a model at an endpoint, and the dollars spent per budget scope. With
the config file, admission as the clients see it (:func:`read_admission`): each budget's
limit, spend and what is left, each key's token window, the in-flight caps. Redis holds no
keys, only fingerprints, so nothing secret can be shown. Needs the ``redis`` and ``sim``
(rich) extras; :func:`read_admission` and :func:`render_admission` need neither (rich for
the tables) and serve a process's own view too, in-flight counts and its line included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.errors import ConfigError
from failover.store.redis_store import FOREVER, rpm_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from rich.table import Table

    from failover.profiles import FailoverManager
    from failover.recovery import RecoveryLine

__all__ = [
    "AdmissionView",
    "InFlightRow",
    "SharedBreaker",
    "SharedProfile",
    "read_admission",
    "read_shared_spend",
    "read_shared_state",
    "render",
    "render_admission",
    "render_shared_spend",
    "run_status",
]


@dataclass(frozen=True, slots=True)
class SharedProfile:
    """One profile as Redis holds it."""

    name: str
    provider: str
    fingerprint: str
    status: str
    rest: float | None
    """Seconds it still rests (``inf``: until enabled), ``None`` when it does not."""
    strikes: int
    error: str
    uses_last_minute: int


@dataclass(frozen=True, slots=True)
class SharedBreaker:
    """One open breaker: a model resting at an endpoint."""

    provider: str
    base_url: str
    model: str
    rest: float
    strikes: int


def _rest(until: float, now: float) -> float | None:
    if until >= FOREVER / 10:
        return float("inf")
    return until - now if until > now else None


async def read_shared_state(
    client: Redis, prefix: str = "failover"
) -> tuple[list[SharedProfile], list[SharedBreaker]]:
    """Return every profile and open breaker stored under ``prefix``."""
    now = time.time()
    profiles = []
    async for key in client.scan_iter(match=f"{prefix}:profile:*", count=500):
        record: dict[str, Any] = await client.hgetall(key)  # type: ignore[assignment]
        name, _, fingerprint = key[len(prefix) + 9 :].rpartition(":")
        until = float(record.get("until") or 0)
        rest = _rest(until, now) if record.get("status", "available") != "available" else None
        profiles.append(
            SharedProfile(
                name=name,
                provider=record.get("provider", "?"),
                fingerprint=record.get("fp", fingerprint),
                status=record.get("status", "available") if rest is not None else "available",
                rest=rest,
                strikes=int(float(record.get("strikes") or 0)),
                error=record.get("error", "") if rest is not None else "",
                uses_last_minute=int(
                    await client.zcount(rpm_key(prefix, name, fingerprint), now - 60, "+inf")
                ),
            )
        )
    breakers = []
    async for key in client.scan_iter(match=f"{prefix}:breaker:*", count=500):
        record = await client.hgetall(key)  # type: ignore[assignment]
        provider, base_url, model = key[len(prefix) + 9 :].split("|", 2)
        rest = _rest(float(record.get("until") or 0), now)
        if rest is not None:
            breakers.append(
                SharedBreaker(provider, base_url, model, rest, int(record.get("strikes", 0)))
            )
    profiles.sort(key=lambda p: (p.provider, p.name))
    breakers.sort(key=lambda b: (b.provider, b.base_url, b.model))
    return profiles, breakers


def _seconds(rest: float | None) -> str:
    if rest is None:
        return ""
    if rest == float("inf"):
        return "until enabled"
    return f"{rest:,.1f} s"


def render(profiles: list[SharedProfile], breakers: list[SharedBreaker], prefix: str) -> Table:
    """The state as a rich table (one row per profile, then one per resting model)."""
    from rich.table import Table

    table = Table(title=f"failover state in Redis (prefix {prefix!r})")
    for column in ("profile", "provider", "key fingerprint", "status", "rests for"):
        table.add_column(column)
    table.add_column("strikes", justify="right")
    table.add_column("rpm (60 s)", justify="right")
    table.add_column("why")
    styles = {"available": "green", "rate_limited": "yellow", "cooling_down": "yellow"}
    for p in profiles:
        style = styles.get(p.status, "red")
        table.add_row(
            p.name,
            p.provider,
            p.fingerprint,
            f"[{style}]{p.status}[/]",
            _seconds(p.rest),
            str(p.strikes),
            str(p.uses_last_minute),
            p.error[:80],
        )
    for b in breakers:
        table.add_row(
            f"[dim]{b.model}[/]",
            b.provider,
            b.base_url or "(default URL)",
            "[yellow]model resting[/]",
            _seconds(b.rest),
            str(b.strikes),
            "",
            "circuit breaker open",
        )
    if not profiles and not breakers:
        table.caption = "nothing stored yet: no process has shared state under this prefix"
    return table


async def run_status(
    url: str,
    *,
    prefix: str = "failover",
    watch: bool = False,
    manager: FailoverManager | None = None,
) -> int:
    """Print the tables once, or refresh them every second with ``watch`` until Ctrl-C.

    The keys and resting models, and spend per budget scope; with ``manager`` (built from
    a config file over a ``RedisStore`` at ``url``), each budget's limit and what is left,
    each key's token window and the caps instead.
    """
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError
    from rich.console import Console, Group
    from rich.live import Live

    console = Console()
    client = aioredis.from_url(url, decode_responses=True, socket_timeout=2.0)

    async def everything() -> Group:
        tables: list[Any] = [render(*await read_shared_state(client, prefix), prefix)]
        if manager is not None:
            view = await read_admission(manager, counted_here=False)
            tables += render_admission(view)
        elif spend := await read_shared_spend(client, prefix):
            tables.append(render_shared_spend(spend))
        return Group(*tables)

    try:
        shown = await everything()
        if not watch:
            console.print(shown)
            return 0
        with Live(shown, console=console, refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(1.0)
                live.update(await everything())
    except (RedisError, OSError) as error:
        console.print(f"failover status: cannot read {url.split('@')[-1]}: {error}")
        return 1
    finally:
        await client.aclose()


# -- admission: budgets, token windows, in flight, the line ------------------------------------


@dataclass(frozen=True, slots=True)
class InFlightRow:
    """Requests running now against one key or one deployment, and its cap."""

    kind: str
    """``key`` (a profile's ``max_in_flight``) or ``deployment`` (``provider/model``)."""
    name: str
    running: int | None
    """``None``: not counted here (caps are counted in each process)."""
    cap: int | None


@dataclass(frozen=True, slots=True)
class AdmissionView:
    """What admission holds now, for ``failover status`` (see :func:`read_admission`).

    Attributes:
        budgets: Per budget: ``scope``, ``per``, ``usd``, ``used``, ``remaining``,
            ``resets_in`` (seconds).
        token_windows: Profile name -> ``tokens_available``, ``requests_available`` and
            ``capacity`` (of each key with ``rate_limit_tpm``).
        in_flight: Keys and deployments with a cap, or with requests running.
        queue_length: Requests waiting in the engine's line (``None``: not known here).
        shared: Spend and token windows were read from Redis (every process's).
    """

    budgets: tuple[dict[str, Any], ...]
    token_windows: Mapping[str, Mapping[str, Any]]
    in_flight: tuple[InFlightRow, ...]
    queue_length: int | None
    shared: bool

    @property
    def configured(self) -> bool:
        """Whether any budget, token window or in-flight cap is set (else nothing to show)."""
        return bool(self.budgets or self.token_windows or self.in_flight)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready values (``failover status --json``)."""
        return {
            "shared": self.shared,
            "budgets": [dict(row) for row in self.budgets],
            "token_windows": {name: dict(window) for name, window in self.token_windows.items()},
            "in_flight": [
                {"kind": row.kind, "name": row.name, "running": row.running, "cap": row.cap}
                for row in self.in_flight
            ],
            "queue_length": self.queue_length,
        }


async def read_admission(
    manager: FailoverManager, *, line: RecoveryLine | None = None, counted_here: bool = True
) -> AdmissionView:
    """Read what ``manager``'s admission holds: spend and what is left per budget, each
    limited key's token window, requests in flight against each cap, and ``line``'s length.

    Args:
        manager: Whose budgets, keys and caps (its store says where spend is kept).
        line: The engine's line of waiting requests (``client._engine.recovery``), if known.
        counted_here: ``False`` when this process sends nothing (``failover status``):
            in-flight counts are per process, so they are not shown as if they were zero.
    """
    admission = manager.admission
    profiles = manager.list_profiles()
    state = await admission.status(profiles)
    running = state["in_flight"] if counted_here else {"profiles": {}, "deployments": {}}
    rows = [
        InFlightRow("key", p.name, running["profiles"].get(p.name, 0), p.max_in_flight)
        for p in profiles
        if p.max_in_flight is not None or running["profiles"].get(p.name)
    ]
    deployments = sorted({*admission.caps, *running["deployments"]})
    rows += [
        InFlightRow("deployment", d, running["deployments"].get(d, 0), admission.caps.get(d))
        for d in deployments
    ]
    if not counted_here:
        rows = [InFlightRow(row.kind, row.name, None, row.cap) for row in rows]
    return AdmissionView(
        budgets=tuple(state["budgets"]),
        token_windows=state["token_windows"],
        in_flight=tuple(rows),
        queue_length=None if line is None else len(line),
        shared=bool(getattr(manager.store, "shared", False)),
    )


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    return "$" + f"{value:.6f}".rstrip("0").rstrip(".")


def _window(per: str | float) -> str:
    return per if isinstance(per, str) else f"{per:g} s"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def render_admission(view: AdmissionView) -> list[Table]:
    """The view as rich tables: spend budgets, token windows, in flight (those configured)."""
    from rich.table import Table

    tables = []
    where = "shared in Redis" if view.shared else "this process"
    if view.budgets:
        budgets = Table(title=f"spend budgets ({where})")
        budgets.add_column("scope")
        budgets.add_column("window")
        for column in ("limit", "spent", "left", "resets in"):
            budgets.add_column(column, justify="right")
        for row in view.budgets:
            share = row["remaining"] / row["usd"]
            style = "red" if share < 0.1 else "yellow" if share < 0.5 else "green"
            budgets.add_row(
                row["scope"],
                _window(row["per"]),
                _usd(row["usd"]),
                _usd(row["used"]),
                f"[{style}]{_usd(row['remaining'])}[/]",
                _duration(row["resets_in"]),
            )
        tables.append(budgets)
    if view.token_windows:
        windows = Table(title=f"token windows per key ({where})")
        windows.add_column("profile")
        requests = any(w["capacity"]["requests"] is not None for w in view.token_windows.values())
        columns = ["tokens left", "tokens a minute"]
        if requests:  # requests a minute are held by the key pools unless the windows keep them
            columns += ["requests left", "requests a minute"]
        for column in columns:
            windows.add_column(column, justify="right")
        for name, window in sorted(view.token_windows.items()):
            capacity = window["capacity"]
            cells = [_count(window["tokens_available"]), _count(capacity["tokens"])]
            if requests:
                cells += [_count(window["requests_available"]), _count(capacity["requests"])]
            windows.add_row(name, *cells)
        tables.append(windows)
    if view.in_flight or view.queue_length:
        title = "in flight"
        if view.queue_length is not None:
            title += f" ({view.queue_length} waiting in line)"
        in_flight = Table(title=title)
        in_flight.add_column("key or deployment")
        in_flight.add_column("running", justify="right")
        in_flight.add_column("cap", justify="right")
        for item in view.in_flight:
            in_flight.add_row(
                item.name if item.kind == "key" else f"[dim]{item.name}[/]",
                "-" if item.running is None else str(item.running),
                _count(item.cap),
            )
        if any(item.running is None for item in view.in_flight):
            in_flight.caption = "running: counted in each process, not seen from here"
        tables.append(in_flight)
    return tables


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


async def read_shared_spend(client: Redis, prefix: str = "failover") -> list[dict[str, Any]]:
    """Dollars spent in each budget's current window, as Redis holds them (no limits:
    those are in the config; ``--config`` adds them). Rows: ``scope``, ``per``, ``used``."""
    from failover.budgets import Budget

    now = time.time()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    start = len(prefix) + len(":budget:")
    async for key in client.scan_iter(match=f"{prefix}:budget:*", count=500):
        scope, _, rest = key[start:].rpartition("|")
        per_text, _, window = rest.partition(":")
        try:
            per: str | float = per_text if per_text in ("hour", "day", "month") else float(per_text)
            budget = Budget(usd=1.0, per=per, scope=scope)
        except (ValueError, ConfigError):
            continue  # not a budget's key
        if budget.window(now)[0] != window:
            continue  # a past window, kept an hour for late settles
        used = max(0.0, float(await client.get(key) or 0))
        found[(scope, str(budget.per))] = {"scope": scope, "per": budget.per, "used": used}
    return [found[key] for key in sorted(found)]


def render_shared_spend(rows: list[dict[str, Any]]) -> Table:
    """Spend per budget scope in Redis as a rich table."""
    from rich.table import Table

    table = Table(title="spend this window (shared in Redis)")
    table.add_column("scope")
    table.add_column("window")
    table.add_column("spent", justify="right")
    for row in rows:
        table.add_row(row["scope"], _window(row["per"]), _usd(row["used"]))
    table.caption = "limits and what is left: add --config with the file's [[budgets]]"
    return table
