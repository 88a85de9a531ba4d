"""The package's modules import one another without a cycle: every import statement of every module,
at module level or inside a function (a deferred import is still a dependency), read with ast."""
from __future__ import annotations

import ast
from pathlib import Path

import juno_bridge

PACKAGE = Path(juno_bridge.__file__).resolve().parent


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py module of the package."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports. `from a.b import c` depends on a.b.c when that is a module,
    else on a.b; the parent packages an import runs implicitly are not counted."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *filter(None, [node.module])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules) | {"juno_bridge._core", "juno_bridge._hits"}  # compiled: they import errors, tensor_info
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_walk_sees_deferred_and_relative_imports(tmp_path):
    graph = import_graph()
    assert "juno_bridge.remote" in graph["juno_bridge.algorithm"]  # imported inside open_algorithm
    assert "juno_bridge.bench.common" in graph["juno_bridge.bench.onnx"]
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("from .sub import b\n")
    modules = package_modules(pkg)
    graph = {n: imported_modules(n, p, set(modules)) for n, p in modules.items()}
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.sub.b"}
    assert find_cycle(graph) in (["pkg.c", "pkg.sub.b", "pkg.c"], ["pkg.sub.b", "pkg.c", "pkg.sub.b"])
