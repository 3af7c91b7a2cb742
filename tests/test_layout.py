"""The packages' shape, read from their source: no import circle (a function-level import counts too), and
``symbolic`` never reaches torch or ``numeric``.

Read with ``ast`` rather than by importing, so that an import inside a function, which runs only when called,
is seen as well: a lazy import is still a circle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("symbolic", "numeric")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, wherever in the file the import stands."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            # ``from . import _index``: the submodule is what is imported
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}
    return {
        name: {other for other in _imports(path) if other in modules and other != name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, as the modules around it, or None. A package's ``__init__`` importing its
    own submodules is how a package is made, not a circle: edges into a package from its own modules are left out."""
    edges = {name: {other for other in targets if not name.startswith(other + ".")} for name, targets in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for other in sorted(edges[name]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def test_no_import_circle():
    assert _cycle(_graph()) is None, " → ".join(_cycle(_graph()) or [])


@pytest.mark.parametrize(
    "graph, circle",
    [
        ({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}, True),
        ({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set()}, False),
        ({"p": {"p.a"}, "p.a": {"p"}}, False),  # a package's __init__ and its module
    ],
)
def test_the_circle_finder_finds_circles(graph, circle):
    assert (_cycle(graph) is not None) == circle


def test_the_import_reader_sees_imports_inside_functions():
    source = ROOT / "symbolic" / "_derivation.py"
    assert "symbolic._errors" in _imports(source)
    assert all(not name.startswith(("symbolic._formats", "symbolic._html")) for name in _imports(source))


def test_symbolic_never_imports_torch_or_numeric():
    for path in sorted((ROOT / "symbolic").rglob("*.py")):
        for name in _imports(path):
            assert name.split(".")[0] not in ("torch", "numeric"), (path.name, name)
