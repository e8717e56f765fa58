"""The versions the suite runs on are the ones the project says it runs on.

``make test`` installs from the lock (requirements/dev.txt), so the tools that judge the
code never change under it; ``make test-lowest`` installs the lowest versions pyproject.toml
allows (requirements/lowest.txt), which must stay in step with the declared ranges.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
JUDGES = (
    "mypy",
    "ruff",
    "pytest",
    "pytest-asyncio",
    "pytest-xdist",
    "anyio",
    "trio",
    "respx",
    "hypothesis",
)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"{path.name}: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def _floors() -> dict[str, str]:
    """``name -> lowest version`` of the runtime dependencies and the sim/redis extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = list(project["dependencies"])
    wanted = ["sim", "redis"]
    while wanted:  # an extra may name others (llm-failover[cli])
        for spec in extras[wanted.pop()]:
            if (inner := re.fullmatch(r"llm-failover\[([a-z0-9,]+)\]", spec)) is not None:
                wanted.extend(inner[1].split(","))
            else:
                declared.append(spec)
    floors = {}
    for spec in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([^;,\s]+)(;.*)?", spec.replace(" ", ""))
        assert match, f"pyproject.toml: {spec!r} should be a plain 'name>=version' range"
        floors[match[1].lower()] = match[2]
    return floors


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_the_lock_pins_every_tool_that_judges_the_code() -> None:
    pins = _pins(ROOT / "requirements" / "dev.txt")
    assert set(JUDGES) <= set(pins)


def test_the_lowest_versions_are_the_floors_pyproject_declares() -> None:
    lowest = _pins(ROOT / "requirements" / "lowest.txt")
    for name, floor in _floors().items():
        assert lowest.get(name) is not None, f"requirements/lowest.txt does not pin {name}"
        assert re.match(re.escape(floor), lowest[name]), (name, floor, lowest[name])


def test_the_suite_runs_on_the_versions_it_was_installed_from() -> None:
    """Under make test, on the lock; under make test-lowest, on the floors."""
    lowest = _pins(ROOT / "requirements" / "lowest.txt")
    if _installed("httpx") == lowest["httpx"] and _installed("mypy") is None:
        expected = {name: lowest[name] for name in _floors() if _installed(name)}
    elif _installed("mypy") is not None:
        locked = _pins(ROOT / "requirements" / "dev.txt")
        expected = {name: locked[name] for name in JUDGES}
    else:
        pytest.skip("installed by hand, neither from the lock nor from the floors")
    installed = {name: _installed(name) for name in expected}
    assert installed == expected
