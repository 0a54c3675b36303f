"""The lanes rewrite: a declared row body spread over the lanes of a warp on the CUDA target.

A row body (kernels/declare.py's ``@rows``) loops over its row's columns; on a CPU one call per
row is the right grain, on a GPU one thread per row leaves a warp's memory accesses apart and, at
small batches, most of the device idle. ``lane_body(body, helpers)`` rewrites the body's syntax
tree into ``f(r, lane_, W_, *args)``, run by the W_ lanes of a warp together on row r:

- a loop at the row's level, ``for j in range(n)`` or ``range(a, n)``, gives lane l the columns
  l, l + W_, ... (``range(a + lane_, n, W_)``): neighbouring lanes read neighbouring words;
- a scalar a loop accumulates (``s += ...``, ``s -= ...``, ``flag |= ...``, ``flag &= ...``: its
  only use in the loop) is combined over the lanes after it (``lanes_sum`` / ``lanes_any`` /
  ``lanes_all``): every lane then holds the row's value, the same bits in each lane. Lane 0
  starts from the scalar's value before the loop, the others from 0 (False, True) where that
  value is not already one (a float sum's 0 is ``like(s, 0.0)``);
- after each such loop, and after a write at the row's level, the lanes meet (``lanes_sync``),
  so what one lane wrote the others read;
- a write at the row's level (``out_rows[r] = s``) is made by lane 0 alone, and so is an add
  to a word many rows add to (``add_word(sink, k, n)``, kernels/math/words.py); the row's other
  statements every lane runs, on the same values.
A body the rewrite cannot prove safe raises ``NoLaneForm`` and keeps one thread per row: a write
in a loop whose index is not the loop's column (``j`` or ``j`` plus an offset), a read in a loop
of a cell another iteration writes or of another column (``x[r, j - 1]``: the caller may pass
one array as an output and an input), a loop-carried scalar that is not an accumulation, a scalar
set in a loop and read after it, ``break``, ``return``, ``while`` or a call made for its effect.
A body with no loop over its columns keeps one thread per row too: the row is one thread's work.
The helpers (``lanes_sum``, ``lanes_any``, ``lanes_all``, ``lanes_sync``, each taking W_ last)
are the caller's: warp shuffles on a device (kernels/native/launch.py), threads meeting at a
barrier in the tests (tests/kernels/test_lanes.py).
"""
import ast

from .math.words import ADDING
from .source import in_loops, parsed

LANE, WIDTH = "lane_", "W_"
_COMBINE = {ast.Add: "lanes_sum", ast.Sub: "lanes_sum", ast.BitOr: "lanes_any", ast.BitAnd: "lanes_all"}
_NEUTRAL = {"lanes_sum": 0, "lanes_any": False, "lanes_all": True}


class NoLaneForm(Exception):
    """A row body the lanes rewrite cannot spread over a warp (it keeps a thread per row)."""


def lane_body(body, helpers):
    """The lanes form of the row body ``body`` (a Python or ``@njit`` function ``body(r, *args)``)
    as a Python function ``f(r, lane_, W_, *args)`` whose globals are the body's plus ``helpers``."""
    py = getattr(body, "py_func", body)
    try:
        fn = parsed(py)   # a tree of its own to rewrite
    except (OSError, TypeError) as exc:
        raise NoLaneForm(f"{py.__name__}: no source ({exc})") from None
    if not isinstance(fn, ast.FunctionDef) or not fn.args.args:
        raise NoLaneForm(f"{py.__name__}: not a function of the row index")
    fn.decorator_list = []
    fn.name = f"{py.__name__}_lanes"
    first, rest = fn.args.args[0], fn.args.args[1:]
    fn.args.args = [first, ast.arg(LANE), ast.arg(WIDTH)] + rest
    _Rewrite(py.__name__, fn).run()
    tree = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
    from .math.scalar import like
    glb = dict(py.__globals__)
    glb.update(helpers, like_=like)
    exec(compile(tree, f"<lanes form of {py.__name__}>", "exec"), glb)
    out = glb.pop(fn.name)
    out.__doc__ = py.__doc__
    return out


def _name(n, ctx=ast.Load):
    return ast.Name(id=n, ctx=ctx())


def _call(fn, *args):
    return ast.Call(func=_name(fn), args=list(args), keywords=[])


def _sync():
    return ast.Expr(_call("lanes_sync", _name(WIDTH)))


def _names(node, ctx):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


class _Rewrite:
    def __init__(self, name, fn):
        self.name, self.fn = name, fn
        self.inits = {}   # a scalar's last value set at the row's level (before the loop being read)
        self.loops = 0

    def fail(self, why):
        raise NoLaneForm(f"{self.name}: {why}")

    def run(self):
        for node in ast.walk(ast.Module(body=self.fn.body, type_ignores=[])):
            if isinstance(node, (ast.Return, ast.While, ast.Break, ast.Yield, ast.Global, ast.Nonlocal,
                                 ast.FunctionDef, ast.Lambda, ast.Try, ast.With)):
                self.fail(f"a {type(node).__name__.lower()}")
        self.fn.body = self.block(self.fn.body)
        if not self.loops:
            self.fail("no loop over the row's columns (a thread per row is the whole row's work)")

    def block(self, stmts, top=True):
        """Statements at the row's level (``top``: not inside an ``if``): loops spread over the
        lanes, writes by lane 0."""
        out = []
        for st in stmts:
            if isinstance(st, ast.For):
                out += self.loop(st)
            elif isinstance(st, ast.If):
                st.body, st.orelse = self.block(st.body, False), self.block(st.orelse, False)
                out.append(st)
            elif isinstance(st, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                if any(isinstance(n, (ast.Subscript, ast.Attribute)) for t in targets for n in ast.walk(t)
                       if isinstance(getattr(n, "ctx", None), ast.Store)):
                    out += [ast.If(test=ast.Compare(left=_name(LANE), ops=[ast.Eq()],
                                                    comparators=[ast.Constant(0)]), body=[st], orelse=[]),
                            _sync()]
                else:
                    out.append(st)
                    if top and isinstance(st, ast.Assign) and len(targets) == 1 and isinstance(targets[0], ast.Name):
                        self.inits[targets[0].id] = st.value
                    else:
                        self.inits.update({n: None for t in targets for n in _names(t, ast.Store)})
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and isinstance(st.value.func, ast.Name) \
                    and st.value.func.id in ADDING:   # an add to a word many rows add to: lane 0 alone
                out += [ast.If(test=ast.Compare(left=_name(LANE), ops=[ast.Eq()], comparators=[ast.Constant(0)]),
                               body=[st], orelse=[]), _sync()]
            elif isinstance(st, ast.Pass) or (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)):
                out.append(st)
            else:
                self.fail(f"a {type(st).__name__.lower()} statement at the row's level")
        return out

    def loop(self, st):
        """A loop at the row's level over the lanes; its accumulations combined after it."""
        j = st.target.id if isinstance(st.target, ast.Name) else None
        it = st.iter
        if (j is None or st.orelse or not isinstance(it, ast.Call) or not isinstance(it.func, ast.Name)
                or it.func.id != "range" or not 1 <= len(it.args) <= 2 or it.keywords):
            self.fail("a loop that is not `for j in range(n)` or `range(a, n)`")
        start, stop = (ast.Constant(0), it.args[0]) if len(it.args) == 1 else it.args
        for node in ast.walk(ast.Module(body=st.body, type_ignores=[])):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
                self.fail("a call made for its effect inside a loop")
        self.cells(st, j)
        combine = self.scalars(st, j)
        self.loops += 1
        st.iter = _call("range", ast.BinOp(left=start, op=ast.Add(), right=_name(LANE)), stop, _name(WIDTH))
        before = [ast.If(test=ast.Compare(left=_name(LANE), ops=[ast.NotEq()], comparators=[ast.Constant(0)]),
                         body=[ast.Assign(targets=[_name(v, ast.Store)], value=self.neutral(v, fn))], orelse=[])
                  for v, fn in sorted(combine.items()) if not self.starts_neutral(v, fn)]
        after = [ast.Assign(targets=[_name(v, ast.Store)], value=_call(fn, _name(v), _name(WIDTH)))
                 for v, fn in sorted(combine.items())]
        self.inits.update({v: None for v in combine})   # the row's value now: a later loop starts anew
        return before + [st] + after + [_sync()]

    def starts_neutral(self, v, fn):
        """Whether v's value before the loop is already the combination's neutral value."""
        init = self.inits.get(v)
        if isinstance(init, ast.Call) and isinstance(init.func, ast.Name) and init.func.id == "like" \
                and len(init.args) == 2:   # like(x, c): c in x's precision
            init = init.args[1]
        if not isinstance(init, ast.Constant):
            return False
        if fn == "lanes_sum":
            return not isinstance(init.value, bool) and init.value == 0
        return init.value is _NEUTRAL[fn]

    def neutral(self, v, fn):
        if fn == "lanes_sum":
            return _call("like_", _name(v), ast.Constant(0.0))
        return ast.Constant(_NEUTRAL[fn])

    def cells(self, st, j):
        """Every write in the loop is into the loop's column, and every read of a written array
        is of the cell the same iteration writes."""
        written = {}
        for node in ast.walk(ast.Module(body=st.body, type_ignores=[])):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                if not isinstance(node.value, ast.Name):
                    self.fail("a write into an expression")
                idx = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
                if not any(self.column(e, j) for e in idx):
                    self.fail(f"a write into {node.value.id} at an index that is not the column {j}")
                written.setdefault(node.value.id, set()).add(ast.dump(node.slice))
        for node in ast.walk(ast.Module(body=st.body, type_ignores=[])):
            if not (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                    and isinstance(node.value, ast.Name)):
                continue
            if node.value.id in written and ast.dump(node.slice) not in written[node.value.id]:
                self.fail(f"a read of {node.value.id} at a cell another column writes")
            idx = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if any(j in _names(e, ast.Load) and not self.column(e, j) for e in idx):
                # another column's cell (x[r, j - 1]): its array may be an output passed as an input too
                self.fail(f"a read of {node.value.id} at another column than {j}")

    @staticmethod
    def column(e, j):
        if isinstance(e, ast.Name):
            return e.id == j
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
            for a, b in ((e.left, e.right), (e.right, e.left)):
                if isinstance(a, ast.Name) and a.id == j and j not in _names(b, (ast.Load, ast.Store)):
                    return True
        return False

    def scalars(self, st, j):
        """{name: combining helper} of the loop's accumulations; every other scalar the loop sets
        is set before it is read in an iteration and not read after the loop."""
        events = list(_events(st.body))
        ops, plain = {}, set()
        for name, kind, op in events:
            if kind == "aug":
                ops.setdefault(name, set()).add(op)
            elif kind == "store":
                plain.add(name)
        loads = {n for n, kind, _ in events if kind == "load"}
        combine = {}
        for name, kinds in ops.items():
            if len(kinds) == 1 and next(iter(kinds)) in _COMBINE and name not in plain and name not in loads:
                combine[name] = _COMBINE[next(iter(kinds))]
            else:
                self.fail(f"{name} carried from column to column (not one accumulation)")
        later = self.loads_after(st)
        for name in plain - {j}:
            first = next(kind for n, kind, _ in events if n == name)
            if first != "store":
                self.fail(f"{name} read in a column before it is set there")
            if name in later:
                self.fail(f"{name}, set in a loop, read after it")
        if j in later:
            self.fail(f"the loop's column {j} read after the loop")
        return combine

    def loads_after(self, st):
        """Names read after the loop (lines past its end) outside loops that set them first."""
        out = set()
        inside = in_loops(self.fn)
        for node in ast.walk(self.fn):
            if getattr(node, "lineno", 0) <= st.end_lineno:   # before the loop, in it, or the rewrite's own
                continue
            if isinstance(node, ast.For):
                evs = list(_target_events(node.target)) + list(_events(node.body))
                for name in {n for n, k, _ in evs if k == "load"}:
                    if next(k for n, k, _ in evs if n == name) != "store":
                        out.add(name)
                out |= _names(node.iter, ast.Load)
            elif isinstance(node, ast.If) and id(node) not in inside:
                out |= _names(node.test, ast.Load)
            elif isinstance(node, ast.stmt) and id(node) not in inside:
                out |= _names(node, ast.Load)
        return out


def _events(stmts):
    """(name, "load" / "store" / "aug", op) of the scalars in statements, in the order they run."""
    for st in stmts:
        yield from _stmt_events(st)


def _stmt_events(st):
    if isinstance(st, ast.Assign):
        yield from _expr_events(st.value)
        for t in st.targets:
            yield from _target_events(t)
    elif isinstance(st, ast.AnnAssign):
        if st.value is not None:
            yield from _expr_events(st.value)
        yield from _target_events(st.target)
    elif isinstance(st, ast.AugAssign):
        yield from _expr_events(st.value)
        if isinstance(st.target, ast.Name):
            yield st.target.id, "aug", type(st.op)
        else:
            yield from _expr_events(st.target)
    elif isinstance(st, ast.For):
        yield from _expr_events(st.iter)
        yield from _target_events(st.target)
        yield from _events(st.body)
    elif isinstance(st, ast.If):
        yield from _expr_events(st.test)
        yield from _events(st.body)
        yield from _events(st.orelse)
    elif isinstance(st, ast.Expr):
        yield from _expr_events(st.value)


def _target_events(t):
    if isinstance(t, ast.Name):
        yield t.id, "store", None
    elif isinstance(t, (ast.Tuple, ast.List)):
        for e in t.elts:
            yield from _target_events(e)
    else:   # a subscript: its array and index are read
        yield from _expr_events(t)


def _expr_events(e):
    for node in ast.walk(e):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Load, ast.Store)):
            yield node.id, "load", None
