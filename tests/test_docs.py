"""The documentation: the site builds strictly, and the README's links lead somewhere.

``make docs`` (and CI) builds the MkDocs site with ``--strict``, so a broken link, a broken
anchor or a public name on an API page without a docstring fails it. These tests build the
real site the same way, check that each of those mistakes really fails a build made with
the same configuration, and check that every relative link of the README resolves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` as ``make docs`` runs it, into ``site``."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def warnings_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line]


def project_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return loaded


def small_site(tmp_path: Path, pages: dict[str, str]) -> Path:
    """A site with the project's own settings (validation, hook, mkdocstrings options)
    and only ``pages``; modules written next to it can be documented by its pages."""
    config = project_config()
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in pages.items():
        (docs / name).write_text(textwrap.dedent(text), encoding="utf-8")
    config["docs_dir"] = str(docs)
    config["nav"] = [{name.removesuffix(".md"): name} for name in pages]
    config["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    config["markdown_extensions"] = [
        ext for ext in config["markdown_extensions"] if "pymdownx.snippets" not in str(ext)
    ]
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(tmp_path)]
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_site_builds_with_strict_and_no_warnings(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert warnings_of(result) == []
    api = (tmp_path / "site" / "api" / "client" / "index.html").read_text(encoding="utf-8")
    assert "ResilientClient" in api and "complete" in api  # rendered from the docstrings
    assert (tmp_path / "site" / "policy" / "index.html").exists()


def test_every_page_of_the_docs_folder_is_in_the_navigation() -> None:
    def pages(nav: Any) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [page for value in nav.values() for page in pages(value)]
        return [page for item in nav for page in pages(item)]

    listed = set(pages(project_config()["nav"]))
    written = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert written <= listed, f"pages missing from the nav: {sorted(written - listed)}"


def test_a_link_to_a_missing_page_fails_the_build(tmp_path: Path) -> None:
    config = small_site(tmp_path, {"index.md": "# Home\n\nSee [the policy](policy.md).\n"})
    result = build(config, tmp_path / "site")
    assert result.returncode != 0
    assert any("policy.md" in line for line in warnings_of(result))


def test_a_link_to_a_missing_anchor_fails_the_build(tmp_path: Path) -> None:
    pages = {
        "index.md": "# Home\n\nSee [waiting](other.md#waiting-for-recovery).\n",
        "other.md": "# Other\n\n## Backoff\n",
    }
    result = build(small_site(tmp_path, pages), tmp_path / "site")
    assert result.returncode != 0
    assert any("waiting-for-recovery" in line for line in warnings_of(result))


def test_a_documented_public_name_without_a_docstring_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "sample_api.py").write_text(
        '"""A module."""\n\n'
        "__all__ = ['Documented', 'undocumented']\n\n\n"
        "class Documented:\n"
        '    """Has one."""\n\n'
        "    def method(self) -> None:\n"
        "        pass\n\n\n"
        "def undocumented(x: int) -> int:\n"
        "    return x\n",
        encoding="utf-8",
    )
    config = small_site(tmp_path, {"index.md": "# API\n\n::: sample_api\n"})
    result = build(config, tmp_path / "site")
    assert result.returncode != 0
    missing = [line for line in warnings_of(result) if "has no docstring" in line]
    assert any("sample_api.undocumented" in line for line in missing)
    assert any("sample_api.Documented.method" in line for line in missing)
    assert not any("sample_api.Documented " in line for line in missing)


def test_a_docstring_naming_a_parameter_the_function_lacks_fails_the_build(
    tmp_path: Path,
) -> None:
    (tmp_path / "sample_params.py").write_text(
        '"""A module."""\n\n\n'
        "def send(timeout: float) -> None:\n"
        '    """Send.\n\n'
        "    Args:\n"
        "        deadline: Seconds for the whole request.\n"
        '    """\n',
        encoding="utf-8",
    )
    config = small_site(tmp_path, {"index.md": "# API\n\n::: sample_params.send\n"})
    result = build(config, tmp_path / "site")
    assert result.returncode != 0
    assert any("deadline" in line for line in warnings_of(result))


def test_sphinx_roles_in_docstrings_become_links_to_the_reference(tmp_path: Path) -> None:
    (tmp_path / "sample_roles.py").write_text(
        '"""Start with :class:`~sample_roles.Thing`, or :func:`nowhere.to_be_found`."""\n\n\n'
        "class Thing:\n"
        '    """A thing."""\n',
        encoding="utf-8",
    )
    config = small_site(tmp_path, {"index.md": "# API\n\n::: sample_roles\n"})
    result = build(config, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert ":class:" not in page and ":func:" not in page
    assert re.search(r'<a [^>]*href="#sample_roles\.Thing"[^>]*><code>Thing</code></a>', page)
    assert "<code>nowhere.to_be_found</code>" in page  # unknown: plain code, no warning


def readme_links() -> list[str]:
    text = FENCE.sub("", README.read_text(encoding="utf-8"))
    return LINK.findall(text)


def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_every_relative_link_of_the_readme_resolves() -> None:
    links = readme_links()
    assert len(links) > 20  # the front page links to the docs pages and the examples
    headings = {
        github_anchor(line.lstrip("#"))
        for line in FENCE.sub("", README.read_text(encoding="utf-8")).splitlines()
        if line.startswith("#")
    }
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https://..., mailto:...
        path, _, anchor = link.partition("#")
        if not path:
            if anchor not in headings:
                broken.append(link)
        elif not (ROOT / path).exists():
            broken.append(link)
    assert broken == []


def test_the_readme_links_to_every_topic_page_of_the_docs() -> None:
    linked = {link.partition("#")[0] for link in readme_links()}
    topics = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert topics - linked == set()


def test_the_make_commands_the_readme_names_are_makefile_targets() -> None:
    readme = README.read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z][a-z-]*)`", readme))
    named |= set(re.findall(r"^make ([a-z][a-z-]*) ", readme, re.MULTILINE))  # the quick start
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert {"demo", "test", "docs"} <= named
    assert named <= targets
