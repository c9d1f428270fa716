"""The package layout keeps its dependency rules: no import cycles (not even
type-only ones), the bus knows nothing of HTTP, nothing below the operations
imports them, and pgbell's top-level modules import none of its layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pgbell

SERVER = Path(pgbell.__file__).resolve().parent
LAYERS = ("bus", "http", "ops", "demo")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["pgbell", *parts])


MODULES = {_module_name(p): p for p in SERVER.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in its body (functions and
    `if TYPE_CHECKING:` blocks included), pgbell's own and third parties'."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                # `from pgbell.http import keys` imports the module pgbell.http.keys
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


def test_there_is_no_import_cycle():
    internal = {m: {d for d in deps if d in MODULES and d != m} for m, deps in GRAPH.items()}
    # Tarjan's strongly connected components: any with two or more modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(internal[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(internal):
        if module not in index:
            visit(module)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_bus_imports_no_http_and_no_other_layer():
    offending = {
        (module, dep)
        for module, deps in GRAPH.items()
        if _layer(module) == "bus"
        for dep in deps
        if dep.split(".")[0] == "aiohttp" or _layer(dep) not in (None, "bus")
    }
    assert offending == set(), f"the bus must not import these: {sorted(offending)}"


def test_nothing_below_the_operations_imports_them():
    offending = {
        (module, dep)
        for module, deps in GRAPH.items()
        if _layer(module) != "ops" and module != "pgbell.__main__"
        for dep in deps
        if _layer(dep) == "ops"
    }
    assert offending == set(), f"only pgbell.ops may import pgbell.ops: {sorted(offending)}"


def test_top_level_modules_import_no_layer():
    offending = {
        (module, dep)
        for module, deps in GRAPH.items()
        if module.count(".") == 1 and module != "pgbell.__main__"
        for dep in deps
        if _layer(dep) is not None
    }
    assert offending == set(), f"pgbell's top-level modules import a layer: {sorted(offending)}"


def test_the_layout_is_what_the_rules_are_checked_on():
    # a guard on the guard: the walk found the layers and real edges in them
    assert {_layer(m) for m in MODULES} >= set(LAYERS)
    assert "pgbell.bus.hub" in GRAPH["pgbell.http.ws"]
    assert "pgbell.http.keys" in GRAPH["pgbell.http.proxies"]
