"""The layers of the package, read from the source: which module imports which at runtime.

Every module under ``failover/`` and ``providers/`` (installed as ``failover.providers``) is
parsed with :mod:`ast`. An import counts when it runs: at module level or inside a function,
but not under ``if TYPE_CHECKING:`` (a type-only import). From those imports:

- no module reaches itself again (an import circle), and
- the state layer (the manager and its parts, the stores, the recovery line) never reaches
  the client, the engine or the SDK transport.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (("failover", ROOT / "failover"), ("failover.providers", ROOT / "providers"))

STATE_ROOTS = (
    "failover.profiles",  # the FailoverManager facade, over its parts:
    "failover.auth_profile",
    "failover.pools",
    "failover.breakers",
    "failover.replication",
    "failover.failover_callbacks",
    "failover.store",
    "failover.recovery",
)
"""The state layer: what the manager keeps and shares."""

CLIENT_LAYER = frozenset(
    (
        "failover.client",
        "failover.sync_client",
        "failover.engine",
        "failover.transport",
        "failover.transport_gateway",
    )
)
"""The faces and the engine: nothing in the state layer may import them, even lazily."""


def _modules() -> dict[str, Path]:
    """Every module of the two packages, by its dotted name as imported."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES:
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder)
            if package == "failover" and relative.parts[0] == "providers":
                continue  # the symlink to providers/, read under its own name
            parts = [package, *relative.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run (anywhere but in an ``if TYPE_CHECKING:`` body)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch runs
        else:
            stack.extend(ast.iter_child_nodes(node))


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> Iterator[str]:
    """The modules of the two packages that one import statement loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield from _known_prefix(alias.name, known)
        return
    if node.level:  # relative: from the package this module is in (or is)
        base = module.split(".")
        if not is_package:
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    for alias in node.names:
        submodule = f"{origin}.{alias.name}"
        if submodule in known:  # from failover import providers: the subpackage
            yield submodule
        else:
            yield from _known_prefix(origin, known)


def _known_prefix(name: str, known: set[str]) -> Iterator[str]:
    """The longest module of the two packages that ``name`` names or lies in."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate
            return
        parts.pop()


def import_graph() -> dict[str, set[str]]:
    """Each module of the two packages, and those of them it imports at runtime."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        edges = {
            target
            for node in _runtime_imports(tree)
            for target in _targets(node, name, is_package, known)
        }
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative: the graph may be deep
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(groups, key=lambda group: (-len(group), group))


def path_between(graph: dict[str, set[str]], start: str, goals: set[str]) -> list[str] | None:
    """The shortest import path from ``start`` to any of ``goals`` (breadth first)."""
    came: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child in came:
                    continue
                came[child] = node
                if child in goals:
                    path = [child]
                    while (step := came[path[-1]]) is not None:
                        path.append(step)
                    return path[::-1]
                following.append(child)
        frontier = following
    return None


def one_circle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest circle within the group, closed (first == last)."""
    members = set(group)
    inside = {name: graph[name] & members for name in group}
    found: list[list[str]] = []
    for first in group:
        for child in sorted(inside[first]):
            back = [first] if child == first else path_between(inside, child, {first})
            if back is not None:
                found.append([first, child, *back[1:]] if child != first else [first, first])
    return min(found, key=len)


def _described(graph: dict[str, set[str]], groups: list[list[str]]) -> str:
    lines = []
    for group in groups:
        lines.append(f"{len(group)} modules in a circle: {', '.join(group)}")
        lines.append("  e.g. " + " -> ".join(one_circle(graph, group)))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_module_level_and_function_local_imports_but_not_type_only_ones(
    graph: dict[str, set[str]],
) -> None:
    # failover/store/__init__.py imports RedisStore inside __getattr__ (runtime, lazy) and
    # under TYPE_CHECKING (type only); store.base at module level
    assert "failover.store.base" in graph["failover.store"]
    assert "failover.store.redis_store" in graph["failover.store"]
    assert "failover.errors" in graph["failover.providers.base"]
    source = "import anyio\nif TYPE_CHECKING:\n    import failover.client\nelse:\n    import os\n"
    imported = [alias.name for node in _runtime_imports(ast.parse(source)) for alias in node.names]
    assert sorted(imported) == ["anyio", "os"]


def test_no_import_circle_among_the_modules(graph: dict[str, set[str]]) -> None:
    groups = circles(graph)
    assert not groups, "import circles (type-only imports excluded):\n" + _described(graph, groups)


@pytest.mark.parametrize("root", STATE_ROOTS)
def test_the_state_layer_never_imports_the_client(graph: dict[str, set[str]], root: str) -> None:
    starts = [name for name in graph if name == root or name.startswith(root + ".")]
    assert starts
    for start in starts:
        path = path_between(graph, start, set(CLIENT_LAYER))
        assert path is None, "the state layer reaches the client: " + " -> ".join(path or ())


def test_the_adapters_reach_only_the_core_below_them(graph: dict[str, set[str]]) -> None:
    # providers -> failover.errors and types only: an adapter knows a wire, not the manager
    # or the client (the registry, failover.providers itself, is what the client imports)
    above = set(CLIENT_LAYER) | {
        name for name in graph if name.startswith(STATE_ROOTS) or name == "failover"
    }
    adapters = [name for name in graph if name.startswith("failover.providers.")]
    assert "failover.providers.openai" in adapters
    for adapter in adapters:
        path = path_between(graph, adapter, above)
        assert path is None, "an adapter reaches a layer above it: " + " -> ".join(path or ())


def test_a_circle_is_found_and_named() -> None:
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(toy) == [["a", "b", "c"]]
    assert one_circle(toy, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert path_between(toy, "d", {"c"}) == ["d", "a", "b", "c"]
