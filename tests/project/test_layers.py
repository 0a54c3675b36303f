"""The modules of ppl import one another one way: no import cycle, counting the imports inside
functions too (a cycle hidden in a function body is still a cycle of the design).

Every module of ppl/ and of its subpackages is a node; kernels/ and models/ (installed as
ppl.kernels and ppl.models) are one node each, their packages. Every `import` and
`from ... import` of a ppl module anywhere in a file is an edge (relative imports resolved;
`from package import name` is an edge to the submodule when `name` is one, else to the package).
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

from ppl.analysis.graph import find_cycle

ROOT = Path(__file__).resolve().parents[2]
# installed package -> folder of the repository
PACKAGES = {"ppl": ROOT / "ppl", **{f"ppl.{d.name}": d for d in sorted((ROOT / "ppl").iterdir())
                                    if (d / "__init__.py").is_file()}}
COLLAPSED = {"ppl.kernels": ROOT / "kernels", "ppl.models": ROOT / "models"}   # one node per package


def _modules() -> dict:
    """module name -> (file, is a package's __init__) for every file parsed."""
    mods = {}
    for pkg, folder in {**PACKAGES, **COLLAPSED}.items():
        for f in sorted(folder.glob("*.py")):
            name = pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"
            mods[name] = (f, f.stem == "__init__")
    return mods


def _node(name: str, known) -> str | None:
    """The graph node of module `name`: a collapsed package for its modules, the longest known
    prefix otherwise (a name imported from a module is no module); None outside ppl."""
    if name != "ppl" and not name.startswith("ppl."):
        return None
    for pkg in COLLAPSED:
        if name == pkg or name.startswith(pkg + "."):
            return pkg
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def import_graph():
    """(networkx.DiGraph of module names, {(importer, imported): line})."""
    mods = _modules()
    known = set(mods)
    g, lines = nx.DiGraph(), {}
    for name, (file, is_pkg) in mods.items():
        src = _node(name, known)
        g.add_node(src)
        package = name if is_pkg else name.rpartition(".")[0]
        for stmt in ast.walk(ast.parse(file.read_text(), str(file))):
            targets = []
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.level:
                    base = package.split(".")
                    base = base[:len(base) - (stmt.level - 1)]
                    mod = ".".join(base + ([stmt.module] if stmt.module else []))
                else:
                    mod = stmt.module
                # `from pkg import sub`: the submodule sub when it is one, else the package
                targets = [f"{mod}.{a.name}" for a in stmt.names]
            for t in targets:
                dst = _node(t, known)
                if dst is not None and dst != src:
                    g.add_edge(src, dst)
                    lines.setdefault((src, dst), stmt.lineno)
    return g, lines


def test_the_import_graph_is_read():
    g, lines = import_graph()
    assert {"ppl", "ppl.dsl", "ppl.compiler.pipeline", "ppl.estimators.protocol", "ppl.kernels", "ppl.models"} <= set(g)
    for edge in (("ppl.compiler.pipeline", "ppl.kernels"), ("ppl.estimators", "ppl.estimators.protocol"),
                 ("ppl.lowering.core", "ppl.lowering.walk"), ("ppl.models", "ppl")):
        assert edge[1] in set(g.successors(edge[0])) and edge in lines, edge


def test_no_import_cycle():
    g, lines = import_graph()
    cycle = find_cycle(g)
    assert cycle is None, "an import cycle in ppl: " + " -> ".join(cycle) + "   (lines: " + ", ".join(
        f"{a}:{lines[a, b]}" for a, b in zip(cycle, cycle[1:])) + ")"
