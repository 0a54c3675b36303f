"""What a CUDA step's kernel call reaches (lowering/launches.py and lowering/stepped.py join calls by
it): the declared loop a call's launcher runs, the arrays each argument may be (a buffer's views are
the buffer; every view of theta, grad and state is one array), which of them a call writes and
whether at its row or past it (fusion.access of the declared body), and the rows of a buffer.
"""
from __future__ import annotations

from ..calls import Code, Column, Const, Flat, Head, Row, StepArg, View
from ..estimators.protocol import NO_GRAD, NO_GRAD_1D, NoGrad
from ..kernels import fusion, registry
from ..targets import CUDA_FAMILIES
from . import ir

NO_MEMORY = frozenset(m.name for m in (NO_GRAD, NO_GRAD_1D))   # a skipped gradient's empty buffer: nothing
VIEWS = "theta, grad, state"   # the key of every view of theta, grad and state (one array, conservatively)
WHOLE = ("theta", "grad", "state")


def loop_of(st):
    """The loop of the CUDA launcher a statement calls (kernels/declare.py's `__loop__`) where a
    joined kernel may take the call (a declared kernel over the rows of an array), else None."""
    if not isinstance(st, ir.Stmt) or st.call is None or st.call.assign:
        return None
    alias, name = st.kernel
    k = registry.lookup(CUDA_FAMILIES.get(alias, alias), name)
    loop = getattr(k.impls.get("cuda"), "__loop__", None) if k is not None else None
    if loop is None or loop.shape not in fusion.SHAPES or len(st.call.args) != len(loop.args):
        return None   # (a call leaving an argument to its default keeps its own launch)
    return loop


def memory(arg) -> tuple:
    """(the arrays an argument may be, keys: two arguments of one key are one array; whether its
    row r is the array's row r). A buffer's views (its one column, its first rows) are the buffer;
    every view of theta, grad and state is one array (conservative: what a member writes of one,
    no other member reaches past its row in another); code (a slice, an expression) may be any
    array it names, at any row; a number is none."""
    if isinstance(arg, NoGrad):   # the empty buffer of a skipped gradient: no memory (every kernel skips it)
        return (), True
    if isinstance(arg, (Flat, Column, Head)):
        return (arg.buffer,), True
    if isinstance(arg, Row):   # its one row holds every row of the buffer
        return (arg.buffer,), False
    if isinstance(arg, View) or (isinstance(arg, StepArg) and str(arg) in WHOLE):
        return (VIEWS,), True
    if isinstance(arg, Code):
        return tuple(n for n, _, _ in arg.names), False
    if isinstance(arg, (StepArg, Const, bool, int, float, tuple)):
        return (), True
    return (str(arg),), True


def names_of(st) -> set:
    """The names through which a call reaches memory: its arrays', with theta, grad and state for
    a view of them (a line that names none of them reaches none of its arrays)."""
    out = set()
    for a in st.call.args:
        keys, _ = memory(a)
        for key in keys:
            if key == VIEWS:
                out.update(WHOLE)
                out.add(str(a))
            else:
                out.add(key)
    return out


_ACCESS: dict = {}   # a declared body -> fusion.access of it


def touched(st, loop, memory=memory) -> dict:
    """{array: (written, at the row or fusion.ADDS)} of one call (fusion.access of its body, by its
    arguments; `memory`: what an argument may be, as the function `memory`)."""
    acc = _ACCESS.get(loop.body)
    if acc is None:
        acc = _ACCESS[loop.body] = fusion.access(loop.body, loop.lead)
    out = {}
    for param, arg in zip(loop.args, st.call.args):
        if param not in acc:
            continue
        keys, exact = memory(arg)
        w, here = acc[param]
        for key in keys:   # an argument that may be any row of an array reaches it past the row
            out[key] = fusion.merged(out.get(key), w, here if exact else False)
    return out


def rows_of(arg, per: int):
    """The rows of a buffer argument per data row (`per`: the step's), or the number of rows with
    the key "all", or None where unknown (not a buffer; a loop's per-step buffer)."""
    rows = getattr(arg, "rows", None)
    if isinstance(rows, int):
        return ("all", rows)
    if rows == "R":
        return ("per data row", per)
    if isinstance(rows, str) and (rows == "D" or (rows[:1] == "D" and rows[1:].isdigit())):
        return ("per data row", int(rows[1:] or 1))
    return None


def arg_key(a) -> tuple:
    """An argument's identity among a joined kernel's (two of one key are passed once)."""
    return (type(a), str(a))


def args_of(st) -> set:
    return {arg_key(a) for a in st.call.args}


def apart(touched: dict) -> dict:
    """A member's accesses (`touched`) as seen from other rows: every one past its row (an add
    stays an add)."""
    return {key: (written, fusion.ADDS if at is fusion.ADDS else False) for key, (written, at) in touched.items()}
