"""The code's shape, read from the source: no file over 600 lines in ppl/ or kernels/, no class
over 300 lines and no function over 80 in ppl/, and no identifier of the names that explained
nothing (a lowering called `lw`, `vat` / `gat` for a node's values and cotangents on some rows).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE, MAX_CLASS, MAX_FUNCTION = 600, 300, 80
BANNED = {"lw", "vat", "gat", "vB", "gB", "E2"}


def _files(*folders):
    return sorted(f for d in folders for f in (ROOT / d).rglob("*.py"))


def _span(node) -> int:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
    return node.end_lineno - first + 1


def test_the_files_are_found():
    assert len(_files("ppl")) > 50 and len(_files("kernels")) > 20


@pytest.mark.parametrize("folder", ["ppl", "kernels"])
def test_no_file_over_the_limit(folder):
    long = {str(f.relative_to(ROOT)): n for f in _files(folder)
            if (n := len(f.read_text().splitlines())) > MAX_FILE}
    assert not long, f"files over {MAX_FILE} lines: {long}"


def test_no_class_or_function_over_the_limit():
    over = []
    for f in _files("ppl"):
        for node in ast.walk(ast.parse(f.read_text())):
            limit = MAX_CLASS if isinstance(node, ast.ClassDef) else \
                MAX_FUNCTION if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if limit is not None and _span(node) > limit:
                over.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name} ({_span(node)} lines)")
    assert not over, over


def _identifiers(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id, node.lineno
        elif isinstance(node, ast.Attribute):
            yield node.attr, node.lineno
        elif isinstance(node, ast.arg):
            yield node.arg, node.lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node.lineno


def test_no_name_that_explains_nothing():
    found = [f"{f.relative_to(ROOT)}:{line} {name}" for f in _files("ppl", "kernels")
             for name, line in _identifiers(ast.parse(f.read_text())) if name in BANNED]
    assert not found, found


def test_the_checks_can_fail(tmp_path):
    """The readers above see what they look for."""
    src = "def lw(vat):\n    gat = 1\n" + "    x = 1\n" * (MAX_FUNCTION + 1)
    tree = ast.parse(src)
    assert {n for n, _ in _identifiers(tree)} >= {"lw", "vat", "gat"}
    assert _span(tree.body[0]) > MAX_FUNCTION


# ----- generated code: turned into text only by a printer, loaded where a module or kernel is made
MAX_EXEC = 14   # the loaders of generated modules and kernels (kernels/declare.py, the CUDA launchers, ...)


def _dynamic_calls(source: str) -> dict:
    """{"eval": [line, ...], "exec": [line, ...]}: the calls of the builtins eval and exec in a source."""
    found = {"eval": [], "exec": []}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in found:
            found[node.func.id].append(node.lineno)
    return found


def test_dynamic_calls_are_found():
    """The test of the tests below: an eval and an exec in a snippet are both found, a method named
    eval (an object's) is not."""
    got = _dynamic_calls("x = eval('1 + 1')\nexec(compile(src, '<m>', 'exec'), glb)\nmodel.eval()\n")
    assert got == {"eval": [1], "exec": [2]}


def test_no_eval_and_exec_only_in_the_loaders():
    """No generated text is evaluated at run time (a loop block's arguments on the CUDA target are
    functions of a generated module, kernels/cuda/fused.py), and exec stays in the loaders."""
    evals, execs = [], []
    for f in _files("ppl", "kernels"):
        got = _dynamic_calls(f.read_text())
        evals += [f"{f.relative_to(ROOT)}:{n}" for n in got["eval"]]
        execs += [f"{f.relative_to(ROOT)}:{n}" for n in got["exec"]]
    assert not evals, f"eval of text: {evals}"
    assert len(execs) <= MAX_EXEC, f"{len(execs)} exec sites (at most {MAX_EXEC}): {execs}"
