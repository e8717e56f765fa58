"""`failover status` shows admission: spend and what is left per budget scope, each key's
token window, the in-flight caps; from the file alone, or as every process shares them in
Redis. Keys never appear."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from failover.cli import main
from failover.config_file import load_config
from failover.status_view import read_admission, render_admission
from failover.store import RedisStore
from failover.testing import Behavior, Simulator
from tests.redis_server import RedisServer

GOOD = "sk-cli-status-good-key-0000001"
CLAUDE = "sk-ant-cli-status-key-0000002"
ENV = {"STATUS_GOOD_KEY": GOOD, "STATUS_CLAUDE_KEY": CLAUDE}
ASK = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    keys = {"openai": [GOOD], "anthropic": [CLAUDE]}
    async with Simulator(keys=keys, default=Behavior(reply="a simulated answer")) as simulator:
        yield simulator


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def write_config(tmp_path: Path, sim: Simulator, *, tpm: int = 90_000) -> Path:
    path = tmp_path / "failover.toml"
    path.write_text(
        f"""
chain = [{{name = "mini", deployments = ["openai/gpt-4o-mini"]}}, "anthropic/claude-haiku-4-5"]

[settings]
max_retries = 0

[settings.max_in_flight]
"anthropic/claude-haiku-4-5" = 4

[[profiles]]
name = "good"
provider = "openai"
api_key = "env:STATUS_GOOD_KEY"
base_url = "{sim.base_url("openai")}"
rate_limit_tpm = {tpm}
max_in_flight = 2

[[profiles]]
name = "claude"
provider = "anthropic"
api_key = "env:STATUS_CLAUDE_KEY"
base_url = "{sim.base_url("anthropic")}"

[[budgets]]
usd = 50

[[budgets]]
usd = 2.5
per = "hour"
scope = "group:mini"

[[budgets]]
usd = 1
per = 600
scope = "tag:tenant-a"
"""
    )
    return path


async def run(*argv: str) -> int:
    """Run the command as a user would, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


def rows(out: str, title: str) -> dict[str, list[str]]:
    """The rows of the table titled ``title`` (its first line starting so), by first cell."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    found = {}
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.count("│") >= 3:
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            found[cells[0]] = cells
    return found


def dollars(cell: str) -> float:
    return float(cell.replace("[", "").replace("]", "").removeprefix("$").replace(",", ""))


async def test_status_from_the_file_shows_its_budgets_token_windows_and_caps(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, sim)
    assert await run("status", "--config", str(path)) == 0
    out = capsys.readouterr().out
    budgets = rows(out, "spend budgets (this process)")
    assert budgets["client"][1:5] == ["day", "$50.00", "$0", "$50.00"]
    assert budgets["group:mini"][1:5] == ["hour", "$2.50", "$0", "$2.50"]
    assert budgets["tag:tenant-a"][1:5] == ["600 s", "$1.00", "$0", "$1.00"]
    assert rows(out, "token windows per key")["good"] == ["good", "90,000", "90,000"]
    assert rows(out, "in flight") == {  # counted in each process: not from here
        "good": ["good", "-", "2"],
        "anthropic/claude-haiku-4-5": ["anthropic/claude-haiku-4-5", "-", "4"],
    }
    assert sim.requests == []
    assert GOOD not in out and CLAUDE not in out

    assert await run("status", "--config", str(path), "--json") == 0
    admission = json.loads(capsys.readouterr().out)["admission"]
    assert [(b["scope"], b["per"], b["usd"], b["used"]) for b in admission["budgets"]] == [
        ("client", "day", 50.0, 0.0),
        ("group:mini", "hour", 2.5, 0.0),
        ("tag:tenant-a", 600.0, 1.0, 0.0),
    ]
    assert admission["token_windows"]["good"]["capacity"]["tokens"] == 90_000
    assert {(r["name"], r["cap"]) for r in admission["in_flight"]} == {
        ("good", 2),
        ("anthropic/claude-haiku-4-5", 4),
    }
    assert admission["shared"] is False and admission["queue_length"] is None


async def test_status_of_a_file_without_admission_shows_only_the_keys(
    sim: Simulator, tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(
        'chain = ["openai/gpt-4o-mini"]\n'
        '[[profiles]]\nname = "good"\nprovider = "openai"\napi_key = "env:STATUS_GOOD_KEY"\n'
    )
    assert await run("status", "--config", str(path)) == 0
    out = capsys.readouterr().out
    assert "spend budgets" not in out and "token windows" not in out and "in flight" not in out
    assert await run("status", "--config", str(path), "--json") == 0
    assert "admission" not in json.loads(capsys.readouterr().out)


async def test_status_with_redis_shows_what_every_process_spent_and_has_left(
    sim: Simulator,
    tmp_path: Path,
    environment: None,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(tmp_path, sim, tpm=60)  # a token a second: what was used shows
    prefix = f"status{os.getpid()}"
    loaded = load_config(path)
    store = RedisStore(redis_server.url, prefix=prefix)
    async with loaded.client(profiles=loaded.manager(store=store), telemetry=False) as client:
        tagged = await client.complete(ASK, max_tokens=20, tags="tenant-a")
        plain = await client.complete(ASK, max_tokens=20)
    sent = time.monotonic()
    assert tagged.cost_usd and plain.cost_usd and tagged.model == "openai/gpt-4o-mini"
    total = tagged.cost_usd + plain.cost_usd

    argv = ("status", "--redis", redis_server.url, "--prefix", prefix)
    assert await run(*argv, "--config", str(path)) == 0
    out = capsys.readouterr().out
    shown = rows(out, "spend budgets (shared in Redis)")
    assert dollars(shown["client"][3]) == pytest.approx(total, abs=1e-6)
    assert dollars(shown["client"][4]) == pytest.approx(50 - total, abs=0.01)
    assert dollars(shown["group:mini"][3]) == pytest.approx(total, abs=1e-6)
    assert dollars(shown["tag:tenant-a"][3]) == pytest.approx(tagged.cost_usd, abs=1e-6)
    refilled = time.monotonic() - sent + 1  # a token a second since (and rounding)
    used = sum(r.usage.input_tokens + r.usage.output_tokens for r in (tagged, plain) if r.usage)
    window = rows(out, "token windows per key")["good"]
    assert window[2] == "60" and used > 0
    assert 60 - used <= int(window[1]) <= min(60, 60 - used + refilled)
    assert GOOD not in out and CLAUDE not in out

    assert await run(*argv) == 0  # without the file: what was spent, per scope, no limits
    out = capsys.readouterr().out
    shown = rows(out, "spend this window (shared in Redis)")
    assert dollars(shown["client"][2]) == pytest.approx(total, abs=1e-6)
    assert dollars(shown["tag:tenant-a"][2]) == pytest.approx(tagged.cost_usd, abs=1e-6)
    assert shown["tag:tenant-a"][1] == "600 s"
    assert GOOD not in out and CLAUDE not in out


async def test_a_process_sees_its_own_requests_in_flight_and_its_line(
    sim: Simulator, tmp_path: Path, environment: None
) -> None:
    sim.script(Behavior("hang"), provider="openai")
    loaded = load_config(write_config(tmp_path, sim))
    async with loaded.client(telemetry=False) as client:
        line = client._engine.recovery
        async with anyio.create_task_group() as group:
            for _ in range(2):  # both hang at the key, its cap reached
                group.start_soon(client.complete, ASK)
            for _ in range(100):
                if len(sim.requests) == 2:
                    break
                await anyio.sleep(0.01)
            beside = await client.complete(ASK)  # the key is full: the next model answers
            view = await read_admission(client.manager, line=line)
            group.cancel_scope.cancel()
    assert beside.model == "anthropic/claude-haiku-4-5"
    assert {(r.name, r.running, r.cap) for r in view.in_flight} == {
        ("good", 2, 2),
        ("anthropic/claude-haiku-4-5", 0, 4),
        ("openai/gpt-4o-mini", 2, None),  # running, though uncapped
    }
    assert view.queue_length == 0 and not view.shared
    titles = [table.title for table in render_admission(view)]
    assert titles == [
        "spend budgets (this process)",
        "token windows per key (this process)",
        "in flight (0 waiting in line)",
    ]
    assert dict(client.manager.admission.in_flight.counts()) == {"profiles": {}, "deployments": {}}
