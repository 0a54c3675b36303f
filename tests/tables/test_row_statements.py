"""The row code's statements as records (ppl/statements.py: Expr, Assign, Do): what the row-fused
lowering and its rules for a user's functions emit instead of text. Each expression prints as Python reads it
(the operator tree Python parses from the printed text is the record's), and what is not a name,
a number, a record or a function of the scalar library is refused."""
from __future__ import annotations

import ast
import itertools

import pytest

from ppl.statements import Assign, Do, add, as_float, cast, expr, floordiv, index, mul, scalar_call, sub, user_call
from ppl.kernels.math import scalar

def _trees(depth: int) -> list:
    """Every expression of `+`, `-`, `*` and `//` over the names a, b, c up to `depth` operators."""
    if depth == 0:
        return [expr(n) for n in "abc"]
    small = _trees(depth - 1)
    return small + [make(x, y) for x, y in itertools.product(small, small) for make in (add, sub, mul, floordiv)]


def _tree_of_text(node):
    """The operator tree Python reads from printed text (ast of an expression)."""
    if isinstance(node, ast.Expression):
        return _tree_of_text(node.body)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.BinOp):
        op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//"}[type(node.op)]
        return (op, _tree_of_text(node.left), _tree_of_text(node.right))
    raise AssertionError(ast.dump(node))


def _tree_of_record(e):
    return str(e) if e.op == "name" else (e.op, *(_tree_of_record(a) for a in e.args))


def test_each_expression_prints_as_python_reads_it():
    trees = _trees(2)
    assert len(trees) > 300
    for e in trees:
        assert _tree_of_text(ast.parse(str(e), mode="eval")) == _tree_of_record(e), str(e)
    # the test of the test: without its parentheses a * (b * c) reads as (a * b) * c
    right = mul("a", mul("b", "c"))
    flat = f"{right.args[0]} * {right.args[1]}"
    assert _tree_of_text(ast.parse(flat, mode="eval")) != _tree_of_record(right)


def test_the_forms_the_row_fused_lowering_writes():
    assert str(mul(0.5, sub("L1", "L0"))) == "0.5 * (L1 - L0)"
    assert str(cast(mul("w_", 0.5))) == "cast(w_ * 0.5)"
    assert str(mul(as_float("w_"), as_float("L"))) == "float(w_) * float(L)"
    st = Assign("s_z", scalar_call(scalar.moving_average, "b", "t", "w", 0.9, index("ok_", 0)))
    assert list(map(str, st.lines())) == ["s_z = scalar.moving_average(b, t, w, 0.9, ok_[0])"]
    assert list(map(str, Assign(index("rw_", add(mul("d", 4), 1)), "w_").lines())) == ["rw_[d * 4 + 1] = w_"]
    assert list(map(str, Assign("s_x", index("in_x", floordiv("d", 2), 0)).lines())) == ["s_x = in_x[d // 2, 0]"]
    assert list(map(str, Do(user_call("bbg_f", "ua0_f", "ug0_f")).lines())) == ["bbg_f(ua0_f, ug0_f)"]
    assert list(map(str, Assign("g", cast(mul("w_", "cf_")), "+=").lines())) == ["g += cast(w_ * cf_)"]


def test_what_is_no_row_expression_is_refused():
    with pytest.raises(ValueError, match="no name of the row code"):
        expr("a + b")   # text: build it from records
    with pytest.raises(TypeError, match="a name, a number or an Expr"):
        expr(True)
    with pytest.raises(ValueError, match="no function of kernels/math/scalar.py"):
        scalar_call(abs, "a")
    with pytest.raises(ValueError, match="'=' or '\\+='"):
        Assign("a", 1.0, "-=")
    with pytest.raises(TypeError, match="a row code statement of its own is a call"):
        Do(add("a", "b"))

