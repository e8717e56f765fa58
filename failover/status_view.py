"""``failover status --redis URL [--watch]``: the shared state of every key, as a table.

Reads what :class:`~failover.store.RedisStore` keeps under a prefix: each profile's status,
how long it still rests and why, its escalation strikes and its uses in the last minute,
and every breaker resting a model at an endpoint. Redis holds no keys, only fingerprints,
so nothing secret can be shown. Needs the ``redis`` and ``sim`` (rich) extras.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.store.redis_store import FOREVER, rpm_key

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from rich.table import Table

__all__ = ["SharedBreaker", "SharedProfile", "read_shared_state", "render", "run_status"]


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


async def run_status(url: str, *, prefix: str = "failover", watch: bool = False) -> int:
    """Print the table once, or refresh it every second with ``watch`` until Ctrl-C."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError
    from rich.console import Console
    from rich.live import Live

    console = Console()
    client = aioredis.from_url(url, decode_responses=True, socket_timeout=2.0)
    try:
        state = await read_shared_state(client, prefix)
        if not watch:
            console.print(render(*state, prefix))
            return 0
        with Live(render(*state, prefix), console=console, refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(1.0)
                live.update(render(*await read_shared_state(client, prefix), prefix))
    except (RedisError, OSError) as error:
        console.print(f"failover status: cannot read {url.split('@')[-1]}: {error}")
        return 1
    finally:
        await client.aclose()
