"""The package's modules form layers: no import cycle, and no import of a package module hidden
inside a function (where a cycle would hide), except the few listed below with their reason.

The import graph is read from the source with `ast`, so this runs without importing anything.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tape"

# (importing module, imported module): imports inside functions that are meant to be lazy.
LAZY_ALLOWED = {
    ("tape.backends", "tape.backends.numba_backend"): "numba is compiled only when that backend is chosen",
    ("tape.backends", "tape.backends.numpy_backend"): "symmetry with the numba backend",
    ("tape.testing", "tape"): "check_grads is for users' own ops: it uses the whole public API",
    ("tape.untrack", "tape.backends.numba_untrack"): "Numba's loop only where the numba backend loaded Numba",
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges():
    """(importer, imported, inside a function?) for every import of a package module."""
    modules = _modules()
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nested = {
            id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
        }
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                targets = subs + ([target] if len(subs) < len(node.names) else [])
            for t in targets:
                if t == "tape" or t.startswith("tape."):
                    edges.append((name, t if t in modules else t.rsplit(".", 1)[0], id(node) in nested))
    return edges


def _cycles(edges):
    graph = {}
    for a, b, _ in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    # Packages import their own submodules at the top (tape -> tape.ops -> tape.ops.elementwise); a
    # submodule importing its package's __init__ back would be a cycle and is reported.
    assert _cycles([e for e in import_edges() if not e[2]]) == []
    assert _cycles(import_edges()) == []


def test_no_package_import_hides_inside_a_function():
    hidden = sorted({(a, b) for a, b, nested in import_edges() if nested and (a, b) not in LAZY_ALLOWED})
    assert hidden == [], f"imports inside functions (move them to the top, or list them with a reason): {hidden}"


def test_the_checker_sees_a_cycle():
    assert _cycles([("a", "b", False), ("b", "c", False), ("c", "a", False), ("c", "d", False)]) == [["a", "b", "c"]]
