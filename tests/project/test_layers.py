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


# ----- folders: ppl's packages (compiler, runtime, training, ...) import one another one way
FOLDER_BACK_ARROWS = {
    # a sweep names a bundled model by name (training/distributed.py), and the bundled models train with
    # ppl.training: the one pair of folders left importing each other
    ("ppl.training", "ppl.models"),
}


def folder(name: str) -> str:
    """The folder (package) of a module node: ppl.runtime.derived -> ppl.runtime; ppl.dsl stays."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def folder_back_arrows(edges) -> set:
    """(importer folder, imported folder) pairs whose folders import each other, the second of each
    pair the one that also imports the first (both directions listed)."""
    fe = {(folder(a), folder(b)) for a, b in edges if folder(a) != folder(b)}
    return {(a, b) for a, b in fe if (b, a) in fe}


def test_no_two_folders_import_each_other():
    """The runtime gets what it needs of the compiler from the programs the compiler makes (their
    options, the compile helper: ppl/runtime/program.py), so no folder imports one that imports it
    back, but the pair FOLDER_BACK_ARROWS names; and the check finds such a pair (the test of the
    test)."""
    g, lines = import_graph()
    both = folder_back_arrows(g.edges())
    left = sorted(both - FOLDER_BACK_ARROWS - {(b, a) for a, b in FOLDER_BACK_ARROWS})
    assert not left, "folders that import each other: " + ", ".join(
        f"{a} -> {b} ({next(f'{x}:{lines[x, y]}' for x, y in lines if folder(x) == a and folder(y) == b)})"
        for a, b in left)
    sample = [("ppl.runtime.derived", "ppl.compiler.ahead"), ("ppl.compiler.pipeline", "ppl.runtime.program"),
              ("ppl.lowering.walk", "ppl.estimators")]
    assert folder_back_arrows(sample) == {("ppl.runtime", "ppl.compiler"), ("ppl.compiler", "ppl.runtime")}


# kernels/'s folders, lowest first: a folder imports only from its own or lower ones (the modules at
# kernels/'s top -- declare, registry, rowcode, the cache and link -- are tools the folders share)
KERNEL_FOLDERS = ("math", "native", "families", "cpu", "cuda")
KERNEL_RANK = {"math": 0, "native": 1, "families": 2, "cpu": 3, "cuda": 3}


def kernel_back_arrows(files) -> list:
    """Imports, inside functions too, from a kernels/ folder to a higher one: (path, line, target).
    files: (path relative to kernels/, source) pairs."""
    out = []
    for path, src in files:
        parts = path.split("/")
        if len(parts) < 2 or parts[0] not in KERNEL_RANK:
            continue
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0:   # ppl.kernels.<folder>... or kernels.<folder>...
                names = (node.module or "").split(".")
                names = names[2:] if names[:2] == ["ppl", "kernels"] else []
            elif node.level == 1:   # from .x: its own folder
                continue
            else:   # from ..x (kernels/ top), ..x.y
                names = (node.module or "").split(".") if node.module else [a.name for a in node.names]
            target = names[0] if names else None
            if target in KERNEL_RANK and KERNEL_RANK[target] > KERNEL_RANK[parts[0]]:
                out.append((path, node.lineno, target))
    return out


def test_kernels_folders_import_only_downward():
    """kernels/math < native < families < cpu, cuda: no module imports from a higher folder (a
    family names a target's launcher maker by string instead, kernels/declare.py), and the check
    sees a sample of each kind of back arrow (the test of the test)."""
    kroot = ROOT / "kernels"
    files = [(str(p.relative_to(kroot)), p.read_text()) for p in sorted(kroot.rglob("*.py"))]
    assert {p.split("/")[0] for p, _ in files if "/" in p} == set(KERNEL_FOLDERS)
    assert kernel_back_arrows(files) == []
    bad = [("families/x.py", "from ..cpu.rows import f\ndef g():\n    from ..cuda import products\n"),
           ("math/y.py", "from ..native import blas\nfrom .scalar import like\n"),
           ("native/z.py", "from ppl.kernels.families import layers\nfrom ..math import rng\n")]
    assert [(p, t) for p, _, t in kernel_back_arrows(bad)] == [("families/x.py", "cpu"), ("families/x.py", "cuda"),
                                                               ("math/y.py", "native"), ("native/z.py", "families")]
