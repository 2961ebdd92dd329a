"""The import contract: the folders are the layers, and arrows point down only.

    cli → bench → http → storage, config → engine → core

Each package may import its own modules and those of the layers below it, never above
(storage and config sit side by side and do not import each other). The core imports
nothing outside core but the standard library, numpy, scipy and orjson (a pure serialiser,
used to sign route_ids and hash prompts), and nothing in it touches a file, a socket or a
process. No module imports itself back through others (no cycles), counting imports inside
functions too: a cycle hidden in a function is still a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bandit_router"
RANK = {"core": 0, "engine": 1, "storage": 2, "config": 2, "http": 3, "bench": 4, "cli": 5}
CORE_MAY_USE = {"numpy", "scipy", "orjson"}
CORE_MUST_NOT_USE = {"socket", "subprocess", "sqlite3", "asyncio", "threading", "aiohttp",
                     "urllib", "http", "shutil", "tempfile", "pathlib", "io", "tomllib"}
FILE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes"}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (a name imported from a package counts as
    that package's module when it is one)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                whole = f"{node.module}.{alias.name}"
                out.add(whole if whole in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "bandit_router" and len(parts) > 1 and parts[1] in RANK \
        else None


GRAPH = {m: {d for d in _imports(p) if d in MODULES and d != m} for m, p in MODULES.items()}


def test_every_module_lives_in_a_layer():
    loose = sorted(m for m in MODULES if _layer(m) is None
                   and m not in ("bandit_router", "bandit_router.__main__"))
    assert not loose, f"modules outside the layer folders: {loose}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_arrows_point_down(module: str):
    here = _layer(module)
    wrong = sorted(d for d in GRAPH[module] if _layer(d) and _layer(d) != here
                   and RANK[_layer(d)] >= RANK[here])
    assert not wrong, f"{module} ({here}) imports from its own level or above: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "core"))
def test_the_core_imports_only_the_core_and_does_no_io(module: str):
    outside = set()
    for name in _imports(MODULES[module]):
        top = name.split(".")[0]
        if top == "bandit_router":
            if _layer(name) != "core" and name != "bandit_router":
                outside.add(name)
        elif top in CORE_MUST_NOT_USE or (top not in sys.stdlib_module_names
                                          and top not in CORE_MAY_USE):
            outside.add(name)
    assert not outside, f"{module} imports {sorted(outside)}"
    calls = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
             for node in ast.walk(ast.parse(MODULES[module].read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)}
    assert not calls & FILE_CALLS, f"{module} touches files: {sorted(calls & FILE_CALLS)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_there_are_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
