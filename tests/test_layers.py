"""The layer table of docs/CONTRIBUTING.md, enforced: an `ast` walk over every import (module and function level)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "turbo_cli"
ROOT_MODULES = {"errors", "atomic", "hub", "progress", "device", "config"}
# layer -> the layers it may import (besides itself and the root modules)
ALLOWED = {"root": set(), "engine": set(), "io": set(), "eval": {"io"}, "train": {"engine", "io", "eval"},
           "jobs": {"engine", "io", "eval", "train"}, "api": {"jobs"},
           "cli": {"api", "jobs", "engine", "io", "eval", "train"}}
UI_LIBRARIES = {"rich", "typer", "click"}  # rendering belongs to cli/


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "__main__":  # `python -m turbo_cli` is the CLI's entry point
        return "cli"
    if module == "turbo_cli":  # the package's __init__: the public API facade over jobs/
        return "api"
    return "root" if len(parts) < 2 or parts[1] in ROOT_MODULES else parts[1]


def import_graph() -> dict[str, set[str]]:
    """module -> every module (turbo_cli.* or a third-party top-level name) it imports anywhere in its source."""
    graph = {}
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                imported = {f"{base}.{a.name}" for a in node.names}
                # `from pkg import submodule` imports the submodule, not the package's own code
                names |= imported | ({base} if not imported <= modules else set())
        graph[module] = names
    return graph


def test_no_upward_edges_and_no_ui_libraries_below_cli():
    graph = import_graph()
    bad = []
    for module, names in graph.items():
        for name in names:
            if name.startswith("turbo_cli."):
                target = layer(name)
                if target not in {layer(module), "root"} and target not in ALLOWED[layer(module)]:
                    bad.append(f"{module} -> {name}")
            elif name.split(".")[0] in UI_LIBRARIES and layer(module) != "cli":
                bad.append(f"{module} -> {name} (rendering lives in cli/)")
    assert not bad, "imports against docs/CONTRIBUTING.md's layer table:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = import_graph()
    edges = {m: {n for n in names if n in graph and n != m} for m, names in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            if state.get(nxt) == 1:
                return path + [module, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [module])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module, [])):
            raise AssertionError("import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):]))


def test_the_graph_sees_imports_inside_functions():
    """The walk must not miss a function-level import (the kind that hid the old cycles): jobs/loading.py imports
    the Translator only inside build_translator."""
    source = (PACKAGE / "jobs" / "loading.py").read_text()
    assert "\nfrom turbo_cli.engine.translator import" not in source  # not at module level...
    assert "turbo_cli.engine.translator.Translator" in import_graph()["turbo_cli.jobs.loading"]  # ...yet seen
