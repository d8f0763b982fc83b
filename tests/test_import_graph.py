"""genrec's modules form an acyclic import graph, and each imports on its own.

The graph is read from the source with ``ast``, so deferred imports inside functions count too:
a cycle hidden behind one is still a cycle. ``TYPE_CHECKING`` blocks are left out (they never run).

What an import statement in module ``M`` depends on:

- ``import a.b.c`` and ``from a.b.c import x``: the packages ``a`` and ``a.b`` (their ``__init__``
  runs first) and the module ``a.b.c``;
- ``from a.b import c`` where ``a.b.c`` is a module: that module (plus the packages above it);
  where ``c`` is a name defined in ``a/b/__init__.py``: the package ``a.b`` itself.

Python initialises a module's ancestor packages before the module, so an edge to an ancestor
is only counted when ``M`` takes a name from the ancestor's ``__init__`` (``from genrec.rankers
import create_ranker`` inside ``genrec/rankers/base.py`` is a cycle through the package;
``from genrec.rankers import base`` is not).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO_ROOT / "genrec"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py")) if "bundled" not in path.parts}


def is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def packages_above(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b]``: the packages Python initialises before ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def imported_modules(name: str, source: str, is_package: bool) -> set[str]:
    """The genrec modules module ``name`` depends on (module docstring: what counts)."""
    tree = ast.parse(source)
    type_checking = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.update(package for package in packages_above(alias.name) if not is_ancestor(package, name))
                targets.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            targets.update(package for package in [*packages_above(base), base] if not is_ancestor(package, name))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in MODULES else base)
    return {target for target in targets if target in MODULES and target != name}


GRAPH = {
    name: imported_modules(name, path.read_text(encoding="utf-8"), path.name == "__init__.py")
    for name, path in MODULES.items()
}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as ``[m1, m2, ..., m1]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set(), "e": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    graph["c"] = set()
    assert find_cycle(graph) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # a name from the package's own __init__: an edge to the package
        ("def f():\n    from genrec.rankers import create_ranker\n", {"genrec.rankers"}),
        # a sibling module through the package: an edge to the sibling only
        ("from genrec.rankers import training\n", {"genrec.rankers.training"}),
        ("from . import training\n", {"genrec.rankers.training"}),
        ("from .training import fit_with_early_stopping\n", {"genrec.rankers.training"}),
        # another package's module: that package's __init__ runs too
        ("import genrec.encoders.base\n", {"genrec.encoders", "genrec.encoders.base"}),
        # only for the type checker: no edge
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from genrec.pipelines import rank\n", set()),
    ],
)
def test_what_an_import_statement_depends_on(source, expected):
    assert imported_modules("genrec.rankers.base", source, is_package=False) == expected


def test_every_module_imports():
    """With the graph acyclic (above), no import can meet a partly initialised genrec module, so a module
    that imports here imports on its own too; the slow test below checks that in fresh interpreters."""
    for name in sorted(MODULES):
        importlib.import_module(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports_in_a_fresh_interpreter(name):
    """The exact check (nothing imported before): one interpreter per module (5-15 s each here)."""
    result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
