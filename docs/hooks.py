"""MkDocs hooks for the API reference.

* A public name on an API page without a docstring is a warning. mkdocstrings renders what
  has a docstring (``show_if_no_docstring: false``) and silently leaves out what has none;
  this makes the gap visible: for every ``::: identifier`` on a page, the object, the
  members the page renders (its ``members:`` option, else the module's ``__all__`` or
  public names) and, for classes, their public methods must have a docstring. Under
  ``mkdocs build --strict`` (``make docs``) each warning fails the build.
* The Sphinx roles the docstrings use (``:class:`~failover.store.RedisStore```) become
  links to the API reference where the name is documented, and plain code elsewhere.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import griffe

log = logging.getLogger("mkdocs.hooks.docstrings")

_DIRECTIVE = re.compile(r"^:::\s+(?P<id>[\w.]+)\s*\n(?P<opts>(?:[ \t]+.*\n|\n)*)", re.MULTILINE)
_search_paths: list[str] = [str(Path(__file__).resolve().parent.parent)]
_loader: griffe.GriffeLoader | None = None


def on_config(config: Any) -> None:
    """Read the packages from where mkdocstrings reads them (its handler's ``paths``)."""
    global _loader, _search_paths
    base = Path(config.config_file_path).resolve().parent
    handlers = config.plugins["mkdocstrings"].config.handlers
    paths = handlers.get("python", {}).get("paths", ["."])
    _search_paths = [str((base / path).resolve()) for path in paths]
    _loader = None


def _get(identifier: str) -> griffe.Object | griffe.Alias:
    global _loader
    if _loader is None:
        _loader = griffe.GriffeLoader(search_paths=_search_paths)
    package = identifier.split(".", 1)[0]
    if package not in _loader.modules_collection:
        _loader.load(package)
        _loader.resolve_aliases(external=False, implicit=False)
    return _loader.modules_collection[identifier]


def _listed_members(options: str) -> list[str] | None:
    match = re.search(r"members:\s*\n((?:\s+- .*\n)+)", options)
    if match:
        return re.findall(r"-\s*(\S+)", match.group(1))
    if re.search(r"members:\s*false", options):
        return []
    return None


def _public(obj: griffe.Object | griffe.Alias) -> list[str]:
    exports = obj.exports if obj.is_module else None
    if exports is not None:
        return [name if isinstance(name, str) else name.name for name in exports]
    return [
        name
        for name, member in obj.members.items()
        if not name.startswith("_") and not member.is_alias and not member.is_module
    ]


def _undocumented(obj: griffe.Object | griffe.Alias, *, members: list[str] | None) -> list[str]:
    missing: list[str] = []
    target = obj.final_target if obj.is_alias else obj
    if target.is_attribute:
        return missing  # attributes are documented in their class's or module's docstring
    if not (target.docstring and target.docstring.value.strip()):
        missing.append(obj.path)
    names = _public(target) if members is None else members
    if target.is_module or target.is_class:
        for name in names:
            if name not in target.members:
                missing.append(f"{obj.path}.{name} (not found)")
                continue
            member = target.members[name]
            if target.is_class and (member.is_attribute or member.inherited):
                continue
            if target.is_class and name.startswith("_"):
                continue
            missing.extend(_undocumented(member, members=[] if member.is_module else None))
    return missing


_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):<code>(?P<text>[^<]+)</code>"
)


def _role_to_link(match: re.Match[str]) -> str:
    text = match.group("text")
    target = text.removeprefix("~").removesuffix("()")
    title = target.rsplit(".", 1)[-1] if text.startswith("~") else target
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    """Turn the docstrings' Sphinx roles into cross-references (plain code when unknown)."""
    return _ROLE.sub(_role_to_link, html)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Warn about every rendered public name that has no docstring."""
    for directive in _DIRECTIVE.finditer(markdown):
        identifier = directive.group("id")
        try:
            obj = _get(identifier)
        except (KeyError, griffe.AliasResolutionError, ImportError) as exc:
            log.warning("%s: cannot load %s: %s", page.file.src_path, identifier, exc)
            continue
        for path in _undocumented(obj, members=_listed_members(directive.group("opts"))):
            log.warning("%s: %s has no docstring", page.file.src_path, path)
    return markdown
