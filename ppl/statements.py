"""The row code's statements as records: what the row-fused lowering and its rules for a user's
functions emit (`RowFusedLowering.put`) in place of text. An expression (`Expr`) is a name, a
number, a call of the row code's scalar library (kernels/math/scalar.py, kernels/math/rng.py) or of
a user's function the step binds, or an operator over expressions, printed with the parentheses
Python needs; a statement is an assignment (`Assign`: `=` or `+=`) or a call for its effect
(`Do`). Each prints as lines that carry the names they hold (`RowLine`). An estimator writes no
row code of its own: its kernels' bodies are rewritten (kernels/rowcode.py).
"""
from __future__ import annotations

import importlib

from .calls import Const, Name, Printed


class Expr(Printed):
    """A scalar expression of the row code: its operator `op` ("name", "number", "call", "cast",
    "float", "+", "-", "*", "//", "index") and operands `args` (Exprs); a
    call's `fn` is a function of kernels/math/scalar.py or rng.py (the modules the row code binds
    as `scalar` and `rng`). Its text is what the row code prints."""

    op: str
    args: tuple
    fn: object

    def __init__(self, op: str, args: tuple, text: str, fn=None):
        self.op, self.args, self.text, self.fn = op, args, str(text), fn

    @property
    def names(self) -> tuple:
        """The names it holds (a call's function given by its record, not as a name)."""
        if self.op == "name":
            return (str(self),)
        return tuple(n for a in self.args for n in a.names)


class RowLine(Printed):
    """A line of row code printed from a statement record, with the names it holds (`names`:
    (name, -1, -1), as ir.Stmt keeps them; the row code is never rewritten by place)."""

    def __init__(self, text: str, names):
        self.text = str(text)
        self.names = tuple((n, -1, -1) for n in dict.fromkeys(names))


def expr(v) -> Expr:
    """A name (a local of the row code, `str`), a number, or an Expr as it is."""
    if isinstance(v, Expr):
        return v
    if isinstance(v, Const):
        return Expr("number", (), str(v))
    if isinstance(v, Name):   # a buffer, view or argument of the step, by its name
        return Expr("name", (), str(v))
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError(f"a row code operand is a name, a number or an Expr, not {v!r}")
    if isinstance(v, str):
        if not v.isidentifier():
            raise ValueError(f"{v!r} is no name of the row code; build expressions with ppl.calls' functions")
        return Expr("name", (), v)
    return Expr("number", (), repr(v))


_ROW_MODULES = {"scalar": "ppl.kernels.math.scalar", "rng": "ppl.kernels.math.rng"}   # the row code's libraries


def scalar_call(fn, *args) -> Expr:
    """fn(*args), fn a function of kernels/math/scalar.py (or of kernels/math/rng.py: a draw)."""
    name = getattr(fn, "__name__", "")
    alias = next((a for a, mod in _ROW_MODULES.items()
                  if getattr(importlib.import_module(mod), name, None) is fn), None)
    if alias is None:
        raise ValueError(f"{fn!r} is no function of kernels/math/scalar.py, the row code's scalar library")
    ops = tuple(expr(a) for a in args)
    return Expr("call", ops, f"{alias}.{name}({', '.join(map(str, ops))})", fn)


def user_call(name: str, *args) -> Expr:
    """name(*args): a user's function the step binds as its global `name` (ppl.blackbox,
    ppl.layer)."""
    ops = tuple(expr(a) for a in args)
    return Expr("call", (expr(name), *ops), f"{expr(name)}({', '.join(map(str, ops))})")


def cast(v) -> Expr:
    """v in the step's float type."""
    return Expr("cast", (expr(v),), f"cast({expr(v)})")


def as_float(v) -> Expr:
    """v as a Python float (float64: sums over rows)."""
    return Expr("float", (expr(v),), f"float({expr(v)})")


_BINDS = {"+": 2, "-": 2, "*": 3, "//": 3}   # how tightly each operator binds


def _binary(op: str, a, b) -> Expr:
    """a op b, an operand in parentheses where Python would read it otherwise: the left one when it
    binds less tightly, the right one when it binds no more tightly (a - (b - c), a * (b * c))."""
    a, b = expr(a), expr(b)
    pa = f"({a})" if _BINDS.get(a.op, 9) < _BINDS[op] else str(a)
    pb = f"({b})" if _BINDS.get(b.op, 9) <= _BINDS[op] else str(b)
    return Expr(op, (a, b), f"{pa} {op} {pb}")


def add(a, b) -> Expr:
    return _binary("+", a, b)


def sub(a, b) -> Expr:
    return _binary("-", a, b)


def floordiv(a, b) -> Expr:
    return _binary("//", a, b)


def index(buffer, *at) -> Expr:
    """buffer[at...]: an entry of a workspace buffer (the row code's store or read)."""
    ops = (expr(buffer), *(expr(i) for i in at))
    return Expr("index", ops, f"{ops[0]}[{', '.join(map(str, ops[1:]))}]")


def mul(a, b) -> Expr:
    return _binary("*", a, b)


class Assign:
    """`target = value` (op "=") or `target += value` (op "+="): target a name or an index(...) of
    a buffer."""

    def __init__(self, target, value, op: str = "="):
        if op not in ("=", "+="):
            raise ValueError(f"an assignment is '=' or '+=', not {op!r}")
        self.target, self.value, self.op = expr(target), expr(value), op

    def lines(self) -> list:
        return [RowLine(f"{self.target} {self.op} {self.value}", self.target.names + self.value.names)]


class Do:
    """A call made for its effect (a user's function that writes its output rows)."""

    def __init__(self, value):
        self.value = expr(value)
        if self.value.op != "call":
            raise TypeError(f"a row code statement of its own is a call, not {self.value!r}")

    def lines(self) -> list:
        return [RowLine(str(self.value), self.value.names)]
