"""The subpackages of ghostzoo depend downwards only: no import cycle, not even inside a function.

A cycle hidden in a function-level import works until someone moves the import to the top, and
it ties two subpackages together so neither can be understood (or tested) without the other. The
graph is read from the source with ``ast``, so it sees every import, whether or not it ever runs.
Nodes are the subpackages (``deploy``, ``quantization``, ...) and the top-level modules
(``registry``, ``factory``, ...); ``ghostzoo`` is the package's own ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ghostzoo

PACKAGE = Path(ghostzoo.__file__).parent
ROOT = PACKAGE.name  # "ghostzoo"


def node_of(module: str) -> str | None:
    """The node a dotted module name belongs to (None outside ghostzoo)."""
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    return parts[1] if len(parts) > 1 else ROOT


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def _imported(path: Path) -> list[tuple[str, int]]:
    """The modules ``path`` imports (anywhere in it, functions included), each with its line."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from .. import deploy`` imports the subpackage deploy, not the package's __init__
            found += [
                (f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base, node.lineno)
                for alias in node.names
            ]
    return found


def import_graph() -> dict[str, dict[str, str]]:
    """node -> {imported node: where (``path:line``) one such import is}."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = node_of(_module_name(path))
        edges = graph.setdefault(source, {})
        for module, line in _imported(path):
            target = node_of(module)
            if target is not None and target != source:
                edges.setdefault(target, f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str]:
    """One cycle of ``graph`` as its nodes, the first repeated at the end; empty when there is none."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_find_cycle_names_the_cycle():
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}, "d": {"a": "d.py:4"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    del graph["c"]["a"]
    assert find_cycle(graph) == []


def test_subpackages_import_each_other_in_one_direction_only():
    graph = import_graph()
    assert {"deploy", "quantization", "engine", "models", "layers", "registry"} <= set(graph)  # the walk saw them
    cycle = find_cycle(graph)
    where = ", ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))
    assert not cycle, f"import cycle {' -> '.join(cycle)}: {where}"


def test_deploy_depends_on_no_application_package():
    """deploy is what quantization and bench build on: it must not reach back up to them."""
    assert not {"bench", "quantization", "engine", "cli"} & set(import_graph()["deploy"])
