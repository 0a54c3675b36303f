"""The row-fused rewrite: a kernel call rewritten as straight-line code for one row of width-1 arrays.

A kernel is written once, as its body over the loop indices (kernels/declare.py). The CPU kernel
loops over the body, the CUDA kernel runs it per thread, and this module reads the same body for
the third target, the row-fused step (ppl/lowering/rowfused.py): where every array of a call has
one column, each array stands for one value of the row, a local of the step's row loop. A call
`core.sigmoid_fwd(s_a, s_z)` of the body `out[r, j] = sigmoid(z[r, j])` becomes
`s_z = scalar.sigmoid(s_a)`.

`row_lines(kernel, args, qualify, tag)` rewrites the body's syntax tree:
- an argument is the text of its value in the row (a local `s_a`, a parameter `theta[3]`, a
  constant `0.5`), or None for an array passed with 0 rows (a skipped gradient);
- `x[r, j]`, `x[r]`, `x[j]`: the argument's text; the row index r (a cell or row body's first
  index) must stand alone, and a column's index must come to 0 at j = 0 (`off + j`, off 0);
- `x.shape[0]`: 0 for a skipped array, else 1; `x.shape[1]`: 1. Tests and assignments of
  constants fold, so `if gx.shape[0] != 0:` keeps or drops its block, and a write into a
  skipped array is dropped;
- `for j in range(...)` over one column: its body, once;
- a write into an argument is cast to the step's float type (`cast(...)`), as a store into a
  float array is, so the row's locals keep one type; `like(x, c)` is `cast(c)`;
- the body's locals are renamed `<name><tag>_` (two calls in one row never share a local); its
  global functions are named through `qualify(obj)`, the step's module alias of each.
A body the rewrite cannot follow (a loop over more than one column, a return, another row's
index, an item or group body) raises `NoRowForm`; `has_row_form` asks without rewriting.

The row-fused step unrolls the configurations of a drawn row (an antithetic pair's two rows, ...)
into its loop body, each with locals of its own. `row_lines(..., row=c)` rewrites a call made in
the code of configuration c: an argument may then be a tuple of texts, one per configuration
(None where a configuration has none), the row index is the number c, and a body that reads
another row of its configuration digit (`r + off * stride`, `slot_local(r, stride, span)`: the
kernels of families/antithetic.py) reads that configuration's local. The row index folds as a
number: integer arithmetic on it, a call of a kernel helper with it and other integer constants
(the helper's Python function evaluated), comparisons, an `if` on them, a local bound to it. It
never reaches the code: a body that uses it as a value has no row form.

A hand-written kernel (a BLAS product, a loop no declared shape fits) has no body to read: its
module names a body per kernel in `ROW = {kernel name: body}`, a function over the loop indices
and the kernel's arguments, as a declared body is, registered for this target only.

A kernel that folds over the rows (a running baseline's batch mean) is its own row form where its
module names it in `FOLDS = {kernel name: (its whole arrays,)}`: its body is statements before one
loop over the rows, the loop's body, and statements after it. The row-fused step runs the first
part before its row loop, the second in each row (each configuration's code) and the third after
it (`row_lines(..., part="before" | "each" | "after")`, one tag for the three, so they share their
locals). A whole array (the step's `state`) is indexed by a number the arguments give, never by
the row.
"""
import ast
import builtins
import copy
import functools
import inspect
import sys

from .math.scalar import like as _like
from .source import body_tree


class NoRowForm(Exception):
    """The kernel has no body the row-fused rewrite can rewrite (the message says why)."""


def row_body(kernel):
    """(body, the count of its leading loop indices) of a kernel for the row-fused rewrite, or None."""
    d = getattr(kernel, "__declared__", None)
    if d is not None:   # a cell or row body: its first index is the row; an item or group is not
        return (d.body, len(d.lead)) if d.shape in ("cells", "rows") else None
    fn = getattr(kernel, "py_func", kernel)
    mod = sys.modules.get(getattr(fn, "__module__", None))
    body = getattr(mod, "ROW", {}).get(getattr(fn, "__name__", None))
    if body is None:
        return None
    nargs = len(inspect.signature(fn).parameters)
    return body, len(inspect.signature(body).parameters) - nargs


def fold_of(kernel):
    """(before, the row index, each, after, the whole arrays) of a kernel its module names in
    `FOLDS` (see the module), else None."""
    fn = getattr(kernel, "py_func", kernel)
    try:
        return _fold_of(fn)
    except TypeError:   # unhashable: no kernel of a module
        return None


@functools.lru_cache(maxsize=None)
def _fold_of(fn):
    mod = sys.modules.get(getattr(fn, "__module__", None))
    whole = getattr(mod, "FOLDS", {}).get(getattr(fn, "__name__", None))
    if whole is None:
        return None
    stmts = _statements(body_tree(fn))
    loops = [k for k, s in enumerate(stmts) if isinstance(s, ast.For)]
    if len(loops) != 1 or not isinstance(stmts[loops[0]].target, ast.Name) or stmts[loops[0]].orelse:
        raise NoRowForm(f"{fn.__name__}: a fold's body is one loop over the rows between statements")
    k = loops[0]
    return stmts[:k], stmts[k].target.id, stmts[k].body, stmts[k + 1:], tuple(whole)


def has_row_form(kernel) -> bool:
    return row_body(kernel) is not None or fold_of(kernel) is not None


def _statements(fdef) -> list:
    """A function definition's statements, its docstring left out."""
    stmts = fdef.body
    if stmts and isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant):
        stmts = stmts[1:]
    return stmts


_LITERALS = {"True": True, "False": False, "None": None}


def expression(text) -> ast.expr:
    """The expression tree of an argument the row-fused lowering passes (a local or a dotted
    name, an entry `name[i]` of theta, grad or state, a number), built without parsing the
    lowering's text; any other form has no row form."""
    text = str(text).strip()
    if text in _LITERALS:
        return ast.Constant(_LITERALS[text])
    head, bracket, index = text.partition("[")
    if bracket:
        if index.endswith("]") and head.isidentifier():
            return ast.Subscript(ast.Name(head, ast.Load()), expression(index[:-1]), ast.Load())
    elif all(part.isidentifier() for part in text.split(".")):
        out = ast.Name(text.split(".")[0], ast.Load())
        for attr in text.split(".")[1:]:
            out = ast.Attribute(out, attr, ast.Load())
        return out
    else:
        for number in (int, float):
            try:
                value = number(text)
            except ValueError:
                continue
            if value == value and abs(value) != float("inf"):   # a finite number, as its repr writes it
                return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if text.startswith("-") else ast.Constant(value)
    raise NoRowForm(f"the argument {text!r} is none of the forms the row code takes (a name, name[i], a number)")


def row_lines(kernel, args, qualify, tag, row=None, reads=None, part=None) -> list:
    """The row code of `kernel(*args)` (see the module's docstring), as lines of source: `row`,
    the configuration whose code it is (None: no argument is per configuration); `reads`, a set
    the texts of the per-configuration arguments it reads or writes are added to; `part`, of a
    fold (`FOLDS`): "before", "each" or "after"."""
    name = getattr(kernel, "__name__", repr(kernel))
    fold = fold_of(kernel)
    if (fold is None) != (part is None):
        raise NoRowForm(f"the kernel {name} " + ("folds over the rows: its row code is in parts" if part is None
                                                 else "is no fold over the rows"))
    if fold is not None:
        return _fold_lines(kernel, name, fold, args, qualify, tag, row, reads, part)
    found = row_body(kernel)
    if found is None:
        raise NoRowForm(f"the kernel {name} has no row form (declared body, ROW or FOLDS entry)")
    body, nlead = found
    fdef = body_tree(body)
    params = [a.arg for a in fdef.args.args]
    lead, rest = params[:nlead], params[nlead:]
    if len(rest) != len(args):
        raise NoRowForm(f"{name}: {len(args)} arguments for {len(rest)} parameters")
    rw = _Rewrite(name, dict(zip(rest, args)), lead, body.__globals__, qualify, tag, row)
    if rw.row is None and row is not None:
        rw.fail("has no row index (an item or group body)")
    out = []
    rw.block(_statements(fdef), out, "")
    if reads is not None:
        reads.update(rw.reads)
    return out


PARTS = ("before", "each", "after")


def _fold_lines(kernel, name, fold, args, qualify, tag, row, reads, part) -> list:
    """One part of a fold's row code: the parts before it are rewritten too (discarded), so that
    its locals and folded tests are known."""
    before, index, each, after, whole = fold
    fn = getattr(kernel, "py_func", kernel)
    params = [a.arg for a in body_tree(fn).args.args]
    if len(params) != len(args):
        raise NoRowForm(f"{name}: {len(args)} arguments for {len(params)} parameters")
    rw = _Rewrite(name, dict(zip(params, args)), [], fn.__globals__, qualify, tag, None, whole)
    if row is None and any(isinstance(a, tuple) for a in args):
        row = 0   # the rows' part rewritten for its locals only: any configuration's code will do
    for p, stmts in zip(PARTS, (before, each, after)):
        if p == "each":
            rw.start_rows(index, row)
        elif p == "after":
            rw.start_rows(None, None)
        out, rw.reads = [], set()
        rw.block(stmts, out, "")
        if p == part:
            if reads is not None:
                reads.update(rw.reads)
            return out
    raise NoRowForm(f"{name}: no part {part!r} of a fold (one of {', '.join(PARTS)})")


_KEEP = {"range", "abs", "min", "max", "float", "int", "bool"}


class _Row:
    """The row index of a call in configuration `c`'s code (`row_lines(..., row=c)`): a number the
    rewrite folds, which moves with integer arithmetic."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def __add__(self, k):
        return _Row(self.c + k) if type(k) is int else NotImplemented

    __radd__ = __add__

    def __sub__(self, k):
        return _Row(self.c - k) if type(k) is int else NotImplemented

    def __eq__(self, other):
        return isinstance(other, _Row) and other.c == self.c

    def __hash__(self):
        return hash(("row", self.c))


def _has_row(node) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, _Row) for n in ast.walk(node))


class _Rewrite:
    def __init__(self, kernel, args, indices, glb, qualify, tag, cfg=None, whole=()):
        self.kernel, self.args, self.indices = kernel, args, set(indices)
        self.row = indices[0] if indices else None   # the row index (a cell or row body's first)
        self.cfg = cfg         # the configuration whose code this is (None: every argument has one text)
        self.glb, self.qualify, self.tag = glb, qualify, tag
        self.whole = set(whole)   # arrays indexed by a number, not the row (a fold's state)
        self.consts = {}       # locals bound to a folded constant
        self.locals = set()
        self.reads = set()     # the texts of per-configuration arguments read or written

    def start_rows(self, index, cfg):
        """A fold's next part: its loop's body (`index`, the row index, in configuration cfg's
        code), or the statements after the loop (None: no row index)."""
        self.indices = {index} if index else set()
        self.row, self.cfg = index, cfg
        self.consts = {k: v for k, v in self.consts.items() if not isinstance(v, _Row)}

    def whole_index(self, name, sl):
        """`name[i]` of a whole array: its text indexed by i rewritten, a number where it folds."""
        if self.args[name] is None:
            self.fail(f"reads {name!r}, passed with 0 rows")
        if any(isinstance(n, ast.Name) and n.id in self.indices for n in ast.walk(sl)):
            self.fail(f"indexes the whole array {name!r} by the row")
        ix = self.expr(sl)
        value = _arith(ix)
        return expression(self.args[name]), (ast.Constant(value) if type(value) is int else ix)

    def fail(self, why):
        raise NoRowForm(f"{self.kernel}: {why}")

    # ----- expressions
    def expr(self, node):
        """The expression rewritten (a new tree)."""
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "shape" and isinstance(node.value.value, ast.Name) \
                and node.value.value.id in self.args:
            axis = _int(node.slice)
            if axis == 0:
                return ast.Constant(0 if self.args[node.value.value.id] is None else 1)
            if axis == 1:
                return ast.Constant(1)
            self.fail("reads an array's shape beyond its second axis")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in self.whole:
            return ast.Subscript(*self.whole_index(node.value.id, node.slice), ast.Load())
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in self.args:
            return self.arg(node.value.id, self.check_index(node.slice))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if self.cfg is not None and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and not node.keywords and hasattr(self.glb.get(node.func.id), "py_func"):
            vals = [_arith(self.expr(a)) for a in node.args]
            if any(isinstance(v, _Row) for v in vals) and all(v is not None for v in vals):
                # a helper of the row index and integer constants (slot_local, ...): its value
                value = self.glb[node.func.id].py_func(*[v.c if isinstance(v, _Row) else v for v in vals])
                if type(value) in (int, bool):
                    return ast.Constant(value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 2 \
                and self.glb.get(node.func.id) is _like:   # the constant in the step's float type
            return _cast(self.expr(node.args[1]))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.args:
            self.fail(f"reads the attribute {node.attr!r} of the array {node.value.id!r}")
        new = _copy(node)
        for field, value in ast.iter_fields(new):
            if isinstance(value, ast.AST) and not isinstance(value, (ast.expr_context, ast.operator, ast.cmpop,
                                                                     ast.unaryop, ast.boolop)):
                setattr(new, field, self.expr(value))
            elif isinstance(value, list):
                setattr(new, field, [self.expr(v) if isinstance(v, ast.expr)
                                     else ast.keyword(v.arg, self.expr(v.value)) if isinstance(v, ast.keyword) else v
                                     for v in value])
        return _fold(new)

    def check_index(self, sl):
        """The configuration an index reads (None: this row's). An index that names the row index is
        that index alone (this row), or, in a configuration's code, comes to a row of the drawn row
        (`r + off * stride`); any other is a column's, and comes to 0 with the column indices 0
        (`j`, `off + j` with off 0): at width 1 there is no other column."""
        if self.cfg is not None:
            return self.configured_index(sl)
        for ix in (sl.elts if isinstance(sl, ast.Tuple) else [sl]):
            names = {n.id for n in ast.walk(ix) if isinstance(n, ast.Name)}
            if self.row in names:
                if isinstance(ix, ast.Name):
                    continue
                self.fail(f"indexes an array by {ast.unparse(ix)!r}, a row other than its own")
            if _arith(_Zero(self).visit(_copy_tree(ix))) == 0:
                continue
            self.fail(f"indexes an array by {ast.unparse(ix)!r}, which is not 0 at width 1")
        return None

    def configured_index(self, sl):
        row = None
        for ix in (sl.elts if isinstance(sl, ast.Tuple) else [sl]):
            value = _arith(_Zero(self).visit(_copy_tree(ix)))
            if isinstance(value, _Row):
                if row is not None:
                    self.fail(f"indexes an array by two rows")
                row = value.c
            elif value != 0:
                self.fail(f"indexes an array by {ast.unparse(ix)!r}, which is neither a row nor 0 at width 1")
        return row

    def text(self, name, cfg=None):
        """The argument's text in configuration cfg (default: this call's); None: skipped."""
        value = self.args[name]
        if not isinstance(value, tuple):
            if cfg is not None and cfg != self.cfg:
                self.fail(f"reads configuration {cfg}'s row of {name!r}, which has one value for all")
            return value
        at = self.cfg if cfg is None else cfg
        if at is None:
            self.fail(f"reads {name!r}, a value per configuration, where no configuration is given")
        if not 0 <= at < len(value) or value[at] is None:
            self.fail(f"reads {name!r} in configuration {at}, where it has no value")
        self.reads.add(value[at])
        return value[at]

    def arg(self, name, cfg=None):
        text = self.text(name, cfg)
        if text is None:
            self.fail(f"reads {name!r}, passed with 0 rows")
        return expression(text)

    def name(self, ident):
        if ident == self.row and self.cfg is not None:
            return ast.Constant(_Row(self.cfg))
        if ident in self.args:
            return self.arg(ident)
        if ident in self.consts:
            return ast.Constant(self.consts[ident])
        if ident in self.locals:
            return ast.Name(f"{ident}{self.tag}_", ast.Load())
        if ident in self.indices:
            self.fail(f"uses the loop index {ident!r} as a value")
        if ident in _KEEP:
            return ast.Name(ident, ast.Load())
        obj = self.glb.get(ident, getattr(builtins, ident, None))
        text = None if obj is None else self.qualify(obj)
        if text is None:
            self.fail(f"calls {ident!r}, which the step's modules do not export")
        return expression(text)

    # ----- statements
    def target(self, node):
        """A written name: a local (renamed) or an argument's cell; None when the array is skipped."""
        if isinstance(node, ast.Name):
            if node.id in self.args or node.id in self.indices or node.id in self.consts:
                self.fail(f"assigns to {node.id!r}" + (" (a test folded before)" if node.id in self.consts else ""))
            self.locals.add(node.id)
            return ast.Name(f"{node.id}{self.tag}_", ast.Store())
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in self.whole:
            return ast.Subscript(*self.whole_index(node.value.id, node.slice), ast.Store())
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in self.args:
            cfg = self.check_index(node.slice)
            if self.args[node.value.id] is None:
                return None
            text = self.text(node.value.id, cfg)
            return None if text is None else expression(text)
        if isinstance(node, ast.Tuple):
            elts = [self.target(e) for e in node.elts]
            if any(e is None for e in elts):
                self.fail("unpacks into a skipped array")
            return ast.Tuple(elts, ast.Store())
        self.fail(f"assigns to {ast.unparse(node)!r}")

    def is_whole(self, target) -> bool:
        """Whether the target is an entry of a whole array (stored as it is: `state` is float64)."""
        return isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in self.whole

    def plain(self, value):
        """The expression, which must not hold the row index as a value (code has no such number)."""
        if _has_row(value):
            self.fail("uses the row index as a value")
        return value

    def block(self, stmts, out, pad):
        for s in stmts:
            self.statement(s, out, pad)

    def statement(self, s, out, pad):
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            value = self.expr(s.value)
            tgt = s.targets[0]
            if isinstance(tgt, ast.Name) and isinstance(value, ast.Constant) and not pad and tgt.id not in self.locals \
                    and (isinstance(value.value, (bool, _Row)) or (self.cfg is not None and type(value.value) is int)):
                # a test folded: `do_a = ga.shape[0] != 0`; in a configuration's code, a row
                # (`r1 = r + off`) or a number (`c = slot_config(r, ...)`)
                self.consts[tgt.id] = value.value
                return
            self.plain(value)
            t = self.target(tgt)
            if t is not None:
                if not isinstance(tgt, (ast.Name, ast.Tuple)) and not self.is_whole(tgt):
                    value = _cast(value)
                out.append(pad + ast.unparse(ast.Assign([t], value, lineno=0)))
        elif isinstance(s, ast.AugAssign):
            value = self.plain(self.expr(s.value))
            if isinstance(s.target, ast.Name):
                if s.target.id not in self.locals:
                    self.fail(f"updates {s.target.id!r} before assigning it")
                t = ast.Name(f"{s.target.id}{self.tag}_", ast.Store())
            else:
                t = self.target(s.target)
                value = value if self.is_whole(s.target) else _cast(value)
            if t is not None:
                out.append(pad + ast.unparse(ast.AugAssign(t, s.op, value)))
        elif isinstance(s, ast.If):
            test = self.expr(s.test)
            if isinstance(test, ast.Constant) and not isinstance(test.value, _Row):
                self.block(s.body if test.value else s.orelse, out, pad)
                return
            out.append(pad + f"if {ast.unparse(self.plain(test))}:")
            n = len(out)
            self.block(s.body, out, pad + "    ")
            if len(out) == n:
                out.append(pad + "    pass")
            if s.orelse:
                out.append(pad + "else:")
                n = len(out)
                self.block(s.orelse, out, pad + "    ")
                if len(out) == n:
                    out.append(pad + "    pass")
        elif isinstance(s, ast.For) and isinstance(s.target, ast.Name) and not s.orelse \
                and isinstance(s.iter, ast.Call) and isinstance(s.iter.func, ast.Name) and s.iter.func.id == "range" \
                and len(s.iter.args) == 1:
            count = self.expr(s.iter.args[0])
            if not (isinstance(count, ast.Constant) and count.value in (0, 1)):
                self.fail(f"loops over {ast.unparse(s.iter.args[0])!r}, not one column")
            if count.value == 1:
                self.indices.add(s.target.id)
                self.block(s.body, out, pad)
        elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
            return   # a string
        elif isinstance(s, ast.Pass):
            return
        else:
            self.fail(f"has a statement the row-fused rewrite does not rewrite: {ast.unparse(s)!r}")


def _cast(value):
    return ast.Call(ast.Name("cast", ast.Load()), [value], [])


class _Zero(ast.NodeTransformer):
    """An index expression with its loop indices 0 and its arguments' texts in place."""

    def __init__(self, rw):
        self.rw = rw

    def visit_Name(self, node):
        rw = self.rw
        if rw.cfg is not None and node.id == rw.row:
            return ast.Constant(_Row(rw.cfg))
        if rw.cfg is not None and node.id in rw.consts:
            return ast.Constant(rw.consts[node.id])
        if node.id in rw.indices:
            return ast.Constant(0)
        if node.id in rw.args and isinstance(rw.args[node.id], str):
            return expression(rw.args[node.id])
        return node


_ARITH = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


def _arith(node):
    """The value of integer arithmetic (+, -, * of int constants; the row index plus or minus one),
    or None."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, _Row):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _arith(node.operand)
        return None if type(v) is not int else -v
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        a, b = _arith(node.left), _arith(node.right)
        if a is None or b is None:
            return None
        try:
            return _ARITH[type(node.op)](a, b)
        except TypeError:   # the row index times a number: no row
            return None
    return None


def _copy_tree(node):
    return copy.deepcopy(node)


def _copy(node):
    new = type(node)()
    for field, value in ast.iter_fields(node):
        setattr(new, field, list(value) if isinstance(value, list) else value)
    return new


def _int(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, int) else None


_CMP = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
        ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def _fold(node):
    """A comparison or boolean operation of constants, a conditional expression with a constant
    test, or arithmetic on the row index, as its constant."""
    if isinstance(node, ast.BinOp) and _has_row(node):
        value = _arith(node)
        return ast.Constant(value) if isinstance(value, _Row) else node
    if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Constant) and isinstance(node.test.value, bool):
        return node.body if node.test.value else node.orelse
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP \
            and isinstance(node.left, ast.Constant) and isinstance(node.comparators[0], ast.Constant) \
            and not _has_row(node):
        return ast.Constant(bool(_CMP[type(node.ops[0])](node.left.value, node.comparators[0].value)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and isinstance(node.operand, ast.Constant):
        return ast.Constant(not node.operand.value)
    if isinstance(node, ast.BoolOp) and all(isinstance(v, ast.Constant) for v in node.values):
        vals = [v.value for v in node.values]
        return ast.Constant(all(vals) if isinstance(node.op, ast.And) else any(vals))
    return node
