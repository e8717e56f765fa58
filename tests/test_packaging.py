"""The package as users get it: the wheel's contents and metadata, and a bare install.

The wheel is built once per session from a copy of the sources (``pip wheel --no-deps``,
build isolation: the build backend comes from the package index), then installed into a
fresh virtual environment with only the runtime dependencies, at the versions of
requirements/dev.txt. There the ``failover`` command and every example must say which
extra to install, in one line, instead of a traceback. Slow-ish (a venv and an install,
about half a minute) and part of ``make test``.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import failover

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "dev.txt"
RUNTIME = ["httpx", "httpx-sse", "anyio", "tenacity", "genai-prices"]
"""The runtime dependencies (pyproject's [project] dependencies) by name."""
if sys.version_info < (3, 11):  # pragma: no cover
    RUNTIME.append("tomli")


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (so no build/ lands in the repository)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "providers", source / "providers", ignore=skip)
    shutil.copytree(ROOT / "failover", source / "failover", symlinks=True, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", out)
    (built,) = out.glob("llm_failover-*.whl")
    return built


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


@pytest.fixture(scope="module")
def bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and the runtime dependencies only: its bin/."""
    home = tmp_path_factory.mktemp("bare")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    bindir = home / "venv" / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    _run(python, "-m", "pip", "install", "-q", "-c", LOCK, *RUNTIME)
    _run(python, "-m", "pip", "install", "-q", "--no-deps", wheel)
    return bindir


def _environment() -> dict[str, str]:
    """No API key, no colour forcing, nothing of this checkout on the path."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL"))
        and k not in ("PYTHONPATH", "FORCE_COLOR", "OLLAMA_HOST", "VLLM_BASE_URL")
    }


def _in_bare(bindir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bindir / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=_environment(),
    )


def test_the_wheel_installs_providers_inside_failover_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {n for n in names if n.startswith("failover/providers/") and n.endswith(".py")}
    expected = {f"failover/providers/{p.name}" for p in (ROOT / "providers").glob("*.py")}
    assert expected <= shipped and "failover/providers/base.py" in shipped
    assert "failover/providers/py.typed" in names and "failover/py.typed" in names
    assert not [n for n in names if n.split("/")[0] in ("providers", "tests", "examples")]


def test_the_wheel_metadata_says_licence_version_classifiers_and_urls(metadata: Message) -> None:
    assert metadata["Name"] == "llm-failover"
    assert metadata["Version"] == failover.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License"] is None  # the SPDX expression only, no free-text licence
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3" in classifiers
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"cli", "sim", "demo", "redis", "prometheus"} <= extras


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["demo"], "failover demo needs the 'sim' extra: pip install 'llm-failover[sim]'"),
        (["simulate"], "failover simulate needs the 'sim' extra: pip install 'llm-failover[sim]'"),
        (["check"], "failover check needs the 'cli' extra: pip install 'llm-failover[cli]'"),
        (["status"], "failover status needs the 'cli' extra: pip install 'llm-failover[cli]'"),
        (
            ["demo", "--workers", "2"],
            "failover demo needs the 'sim' and 'redis' extras: pip install 'llm-failover[sim,redis]'",
        ),
    ],
)
def test_in_a_bare_install_each_command_names_its_extra(
    bare: Path, tmp_path: Path, argv: list[str], line: str
) -> None:
    done = _in_bare(bare, "failover", *argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == line and "Traceback" not in done.stderr


def test_in_a_bare_install_chat_help_and_version_work(bare: Path, tmp_path: Path) -> None:
    done = _in_bare(bare, "failover", "chat", "hello", cwd=tmp_path)
    assert done.returncode == 2 and "no API keys found" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = _in_bare(bare, "failover", "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"failover {failover.__version__}"
    done = _in_bare(bare, "python", "-m", "failover", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "demo" in done.stdout, done.stderr


def test_in_a_bare_install_providers_live_under_failover_only(bare: Path, tmp_path: Path) -> None:
    done = _in_bare(
        bare,
        "python",
        "-c",
        "import failover.providers.openai, failover.providers.base; print(failover.providers.__file__)",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "site-packages" in done.stdout and str(ROOT) not in done.stdout
    done = _in_bare(bare, "python", "-c", "import providers", cwd=tmp_path)
    assert done.returncode == 1 and "No module named 'providers'" in done.stderr


EXAMPLES = sorted(
    p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("test_")
)


@pytest.mark.parametrize("script", EXAMPLES)
def test_in_a_bare_install_an_example_says_what_to_install(
    bare: Path, tmp_path: Path, script: str
) -> None:
    done = _in_bare(bare, "python", str(ROOT / "examples" / script), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("This example ") and "pip install " in lines[0]
