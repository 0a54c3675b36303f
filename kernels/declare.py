"""Kernels declared once: a per-cell or per-row body, from which both targets' kernels are made.

A kernel family in `kernels/families/` is one file. Each kernel is written as its body over
the loop indices, decorated with its loop shape:

    @cells("out")                        # one iteration per (r, j) cell of the argument `out`
    def laplace_sample(r, j, loc, scale, u, out):
        out[r, j] = loc[r, j] + scale[r, j] * _eps(u[r, j])

    @rows("x")                           # one iteration per row r of the argument `x`
    def laplace_log_prob(r, loc, scale, x, out_rows): ...

    @groups("out")                       # one per (row r, group g of K columns) of `out` (K an argument)
    def cat_antithetic_sample(r, g, logits, u, stride, K, out): ...

    @items("(L.shape[0] // (K * S)) * S")   # one per item i < n, n an expression of the arguments
    def double_cv_grad(i, logits, b, L, ...): ...

The decorator returns the CPU kernel: an `@njit(cache=True)` function of the arguments after the
indices (`laplace_sample(loc, scale, u, out)`), the loops around a call of the body
(inlined). Its source is generated, and compiled under the family file's
name and the body's line, so Numba's disk cache finds it in a new process as it finds a
hand-written kernel (the cache's version folder hashes every kernel source). The CUDA kernel is
made from the same body by `cuda_twin` (called by `cuda/core.py`, so a CPU-only process never imports
`numba.cuda`): a grid-stride loop of the registry's `cells` / `rows` / `items` / `groups` shapes
(kernels/registry.py) around the body re-jitted as a device function (kernels/cuda/device.py); a
row body runs on a warp's lanes together where kernels/lanes.py can spread its column loops.

A cells kernel has a one-column twin, `<name>_col1` (`narrow`, made at its first use and bound
by `cpu/core.py` and `cpu/rows.py` through `narrow_twins`): the same body in a loop over the rows
alone, which LLVM vectorises; the CPU step calls it where the loop's argument has one column
(pass "narrow cells"), so the general kernel keeps no branch for it. So has a rows kernel whose
body reads its arrays' widths (`x.shape[1]`): in its twin they are 1, its column loops unroll
and leave no loop set-up in each row's work (a path's and a unit's loops of one each), and the
CPU step calls it where every one of those arrays has one column. A cells kernel that reads and
writes each array at its own cell only (kernels/one_row.py: `x[r, j]`, a skippable gradient tested
by its rows) needs no twin for workspace buffers of one column in a step that calls it over wider
ones too: the step passes them laid out as one row (`rows.as_row(x)`), the same loop over the
cells, and the kernel's one compiled body serves both widths.

The body's statements are pasted into the CPU loops (its syntax tree, at its own lines; a body
with a `return` is inlined by Numba's `inline="always"` instead, which costs a reference count
per array argument per iteration). A body writes its outputs
for its own cell, row or group only, or for cells no other iteration writes (an antithetic
pair's body, run for the pair's first row, writes both rows): the loops may run in any order, on
any number of threads (one CUDA thread per iteration); a
gradient passed with 0 rows is skipped by the body's own test. A kernel with skippable outputs
is best a row body that tests once per row and loops over the columns inside: a test per cell
keeps LLVM from vectorising the loop (docs/benchmarks/kernels.md, "Kernels declared once"). A family
may declare `PARITY = {kernel name: argument maker}` for the CPU / CUDA parity test
(kernels/parity_cases.py). A kernel no loop shape fits (a reduction that returns a value, ...)
stays a hand-written `@njit` function of its family file, which names it in
`CUDA = {kernel name: maker of its CUDA launcher}`: `declared` lists it, `cuda_twin` calls the
maker and registers the launcher (with the registry's generated kernels it launches, as
`__kernels__`). A declared kernel whose CPU loop is the wrong grain for a device (work shared by a
data row's rows) is named there too, its maker `cuda_launcher(kernel, shape, body, ...)`: the
generated kernel of a body of its own, one thread per cell or row.
"""
import ast
import atexit
import copy
import importlib.util
import inspect
import linecache
import marshal
import os
import sys
import types
from types import SimpleNamespace

import numpy as np
from numba import njit

from .source import body_tree, generator, moved, parsed, statements

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})

_LOOPS = {
    "cells": ("    R_, D_ = {over}.shape\n"
              "    for r in range(R_):\n"
              "        for j in range(D_):\n"
              "            body_(r, j, {args})\n"),
    # a cells kernel's twin for one column (a scalar node, a simulation's state): a loop over the
    # rows alone, which LLVM vectorises (the nested loops' inner trip count of 1 kept each row's
    # cell scalar); `narrow` makes it, the CPU step calls it where `over` has one column
    "cells1": ("    for r in range({over}.shape[0]):\n"
               "        for j in range(1):\n"
               "            body_(r, j, {args})\n"),
    "rows": ("    for r in range({over}.shape[0]):\n"
             "        body_(r, {args})\n"),
    "groups": ("    R_, G_ = {over}.shape[0], {over}.shape[1] // {K}\n"
               "    for r in range(R_):\n"
               "        for g in range(G_):\n"
               "            body_(r, g, {args})\n"),
    "items": ("    for i in range({n}):\n"
              "        body_(i, {args})\n"),
}
_LEAD = {"cells": 2, "cells1": 2, "rows": 1, "groups": 2, "items": 1}


NARROW = "_col1"   # the name of a cells kernel's one-column twin: <name>_col1 (`narrow`)


def narrow(kernel):
    """The one-column twin of a declared cells kernel, or of a rows kernel whose body reads the
    width of arrays (`narrowed`: every `x.shape[1]` there is 1, so that its column loops unroll and
    leave no loop set-up in each row's work), made once, at its first use: the CPU step's pass
    "narrow cells" calls it where those arguments (a cells kernel's `over`) have one column."""
    d = kernel.__declared__
    if d.shape == "cells":
        make = _declare("cells1", d.over, jit=d.jit, name=kernel.__name__ + NARROW)
    elif d.shape == "rows" and narrowed(kernel):
        make = _declare("rows", d.over, jit=d.jit, name=kernel.__name__ + NARROW, narrowed=narrowed(kernel))
    else:
        raise TypeError(f"{kernel.__name__}: neither a cells kernel nor a rows kernel reading its arrays' widths")
    if getattr(d, "narrow", None) is None:
        d.narrow = make(d.body)
    return d.narrow


def narrowed(kernel) -> tuple:
    """The arguments whose one column the kernel's twin (`narrow`) takes for granted: a cells
    kernel's `over`; for a rows kernel, the arrays whose width (`x.shape[1]`) its body reads, none
    where its body is not pasted into the loop (one that returns)."""
    d = kernel.__declared__
    if d.shape == "cells":
        return (d.over,)
    if d.shape != "rows":
        return ()
    if d.widths is None:
        fdef = body_tree(d.body)
        pasted = _pastable(d.body, fdef)
        d.widths = tuple(a for a in d.args if pasted and any(_width_of(n) == a for n in ast.walk(fdef)))
    return d.widths


def _width_of(node):
    """x where node is `x.shape[1]`, else None."""
    if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == 1
            and isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
            and isinstance(node.value.value, ast.Name)):
        return node.value.value.id
    return None


class _OneColumn(ast.NodeTransformer):
    """`x.shape[1]` -> 1 for the arrays x named (a rows kernel's twin, `narrow`)."""

    def __init__(self, names):
        self.names = set(names)

    def visit_Subscript(self, node):
        return ast.copy_location(ast.Constant(1), node) if _width_of(node) in self.names else self.generic_visit(node)


def narrow_twins(namespace: dict, lookup=None):
    """A module's `__getattr__` giving `<name>_col1`, the one-column twin of its cells kernel
    `<name>` (`narrow`), made at its first use and kept in the module's namespace: the modules
    the step calls through (`cpu/core.py`, `cpu/rows.py`) and each family module, where the
    records of the step's calls name a twin's module (kernels/_link.py loads it from there before
    a cached step; `lookup`: name -> kernel there, the namespace's own by default)."""
    def get(attr):
        base = (lookup or namespace.get)(attr[:-len(NARROW)]) if attr.endswith(NARROW) else None
        d = getattr(base, "__declared__", None)
        if d is None or not narrowed(base):
            raise AttributeError(f"module {namespace.get('__name__')!r} has no attribute {attr!r}")
        namespace[attr] = twin = narrow(base)
        return twin
    return get


def _declare(shape, over, K=None, n=None, jit=None, name=None, narrowed=()):
    def make(body):
        params = list(inspect.signature(body).parameters)
        lead, args = params[:_LEAD[shape]], params[_LEAD[shape]:]
        if shape == "groups" and K not in args:
            raise TypeError(f"{body.__name__}: the group size {K!r} is not one of its arguments {args}")
        if over is not None and over not in args:
            raise TypeError(f"{body.__name__}: the loop's array {over!r} is not one of its arguments {args}")
        kname, module = name or body.__name__, body.__module__
        code = body.__code__
        # the body: inlined into the loops (a call per cell would cost more than most bodies)
        body.__qualname__ = f"{body.__name__}__body"
        cell = njit(inline="always", error_model="numpy")(body)
        src = (f"def {kname}({', '.join(args)}):\n"
               + _LOOPS[shape].format(over=over, K=K, n=n, args=", ".join(args)))
        key = (code.co_filename, code.co_firstlineno, kname, src, tuple(lead), tuple(narrowed))
        made = _made_codes().get(key)
        if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], types.CodeType)):
            made = _generate(body, src, lead, narrowed)
            _MADE[1][key] = made
            _MADE[2].append(key)
        module_code, pasted = made
        glb = {"__name__": module, "body_": cell}
        exec(module_code, glb)
        fn = glb[kname]
        if pasted:   # the pasted statements read the family's own globals
            fn = types.FunctionType(fn.__code__, body.__globals__, kname)
        fn.__doc__ = body.__doc__
        kernel = njit(**{**_JIT, **(jit or {})})(fn)
        if name is not None:   # a twin (narrow): no declaration of its own (the families list theirs)
            return kernel
        family = sys.modules.get(module)
        if shape in ("cells", "rows") and family is not None and "__getattr__" not in vars(family):
            # the family module gives <name>_col1 too: where the JIT's symbol records look
            vars(family)["__getattr__"] = narrow_twins(vars(family), lambda n, m=family: declared(m).get(n))
        kernel.__declared__ = SimpleNamespace(shape=shape, over=over, K=K, n=n, body=body, args=tuple(args),
                                              lead=tuple(lead), jit=jit, narrow=None, widths=None, one_row=False)
        linecache.checkcache(code.co_filename)
        return kernel
    return make


def _generate(body, src, lead, narrowed=()):
    """(the compiled module of the kernel's source, whether the body's statements are pasted
    into its loops), compiled at the body's own line of the family file: the cache locates it
    there."""
    code = body.__code__
    tree = _pasted(body, src, lead)
    if tree is not None and narrowed:
        tree = ast.fix_missing_locations(_OneColumn(narrowed).visit(tree))
    if tree is None:
        return compile("\n" * (code.co_firstlineno - 1) + src, code.co_filename, "exec"), False
    # at the body's lines of its file: the functions' first lines moved there, and theirs with them
    return moved(compile(tree, code.co_filename, "exec"), code.co_firstlineno - 1), True


# The generated kernels' compiled modules, kept in the ppl cache folder beside Numba's files of
# the same kernel sources: generating them (reading and rewriting each body's syntax tree) is
# much of `import ppl` (docs/benchmarks/compile-and-cold-start.md, "`import ppl`"). (the file or
# None, {key: (code, pasted)}, keys made in this process)
_MADE = None


def _made_codes() -> dict:
    global _MADE
    if _MADE is None:
        from ._cache import declared_table, report_damage
        table, data = {}, None
        path = declared_table()
        try:
            data = None if path is None else path.read_bytes()
        except OSError:   # none yet
            pass
        if data is not None:
            try:
                table = marshal.loads(data)
                if not isinstance(table, dict):
                    raise ValueError("not a table of generated kernels")
            except Exception as e:   # noqa: BLE001 - any damage: read as a miss, generated again
                report_damage(path, e)
                table = {}
        _MADE = (path, table, [])
        atexit.register(save_made)
    return _MADE[1]


def save_made() -> None:
    """Write the table when this process generated kernels it did not hold: once every family is
    declared (a compile helper started meanwhile reads it, ppl/compiler/ahead.py), and at exit."""
    if _MADE is None:
        return
    path, table, made = _MADE
    if not made or path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(table))
        os.replace(tmp, path)
    except OSError:
        pass   # a read-only cache folder: generated again next time
    made.clear()


def _pasted(body, src, lead):
    """The loops of ``src`` with the body's statements in place of its call (a syntax tree whose
    lines are the body's, counted from its first line), or None where the body returns: Numba's
    inlining of a call keeps a reference count per array argument per iteration, which the
    statements pasted into the loop do not have (docs/benchmarks/kernels.md, "Kernels declared once")."""
    fdef = parsed(body)
    if not _pastable(body, fdef):
        return None
    stmts = fdef.body
    if isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant):
        stmts = stmts[1:] or [ast.copy_location(ast.Pass(), stmts[0])]   # the docstring
    tree = ast.parse(src)
    for node in ast.walk(tree):
        node.lineno = node.end_lineno = 1   # the loops at the body's first line
    for k, loops in enumerate(_nests(tree)):   # each nest of loops around a call of the body (a shape may have two)
        for f, index in zip(loops, lead):   # the loops' variables bear the body's index names
            f.target.id = index
        loops[-1].body = stmts if k == 0 else copy.deepcopy(stmts)   # a tree of its own for each nest after the first
    return tree


def _pastable(body, fdef) -> bool:
    """Whether the body's statements can be pasted into the loops: no `return`, `global`,
    `nonlocal` or `yield` in them."""
    return not (generator(body.__code__)
                or any(isinstance(n, (ast.Return, ast.Global, ast.Nonlocal)) for n in statements(fdef.body)))


def _nests(node):
    """The nests of `for` loops in a loop shape's syntax tree: each a list from the outer loop to
    the one whose body calls the body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.For):
            loops = [child]
            while isinstance(loops[-1].body[0], ast.For):
                loops.append(loops[-1].body[0])
            yield loops
        else:
            yield from _nests(child)


def cells(over, **jit):
    """A kernel with one iteration per (r, j) cell of the argument ``over``: body(r, j, *args).
    ``jit``: options of its CPU ``@njit`` in place of the kernels' defaults (e.g. fastmath=False:
    no reassociation of its sums), for every shape."""
    return _declare("cells", over, jit=jit)


def rows(over, **jit):
    """A kernel with one iteration per row r of the argument ``over``: body(r, *args)."""
    return _declare("rows", over, jit=jit)


def groups(over, K="K", **jit):
    """A kernel with one iteration per (row r, group g of K columns) of the argument ``over`` (K
    the argument of that name): body(r, g, *args); the group's columns are g * K .. g * K + K - 1."""
    return _declare("groups", over, K=K, jit=jit)


def items(n, **jit):
    """A kernel with one iteration per item i < n, ``n`` an expression over the arguments (e.g.
    "(L.shape[0] // (K * S)) * S"): body(i, *args)."""
    return _declare("items", None, n=n, jit=jit)


def unary(kind, f, df, doc, domain="real", d2f=None, vjp=None):
    """An elementwise op declared from its scalar function f and derivative df (both `@njit`,
    over one value): its kernels `<kind>_fwd(x, out)`: out = f(x), and `<kind>_bwd(x, out, gout,
    gx)`: gx += gout * df(x) (the op table emits it only when x has a gradient), made as any
    declared kernel. `vjp(x, y, g)`, when given, is that VJP's term in place of g * df(x): from
    the value y = f(x) (tanh's g (1 - y^2): no second transcendental), or a select (relu's: g
    where x > 0, 0 at or below, so a cotangent is not multiplied where the op does not depend on
    x). `d2f(x)`, the second derivative, gives Price's second-order rule, the kernel
    `<kind>_d12(x, d1x, d2x, d1, d2)`: d1 = f'(x) d1x, d2 = f''(x) d1x^2 + f'(x) d2x
    (kernels/families/price.py); without it Price refuses the op. `doc` the op's one line;
    `domain` ("real" or "positive") the inputs of its parity cases. Bind the result to `OP` in a
    family module (or a tuple of them, one file declaring several ops): ppl's op table
    (ppl/ops.py) reads it, `cpu/core.py` re-exports the kernels and f, df, vjp as `<kind>_value`,
    `<kind>_grad`, `<kind>_vjp` (what the row-fused lowering calls), and the DSL gets
    `ppl.<kind>(x)`."""
    import sys
    frame = sys._getframe(1)
    glb = {"f_": f, "df_": df, "d2f_": d2f, "vjp_": vjp, "__name__": frame.f_globals["__name__"]}
    term = "vjp_(x[r, j], out[r, j], gout[r, j])" if vjp is not None else "gout[r, j] * df_(x[r, j])"
    parts = [f"def {kind}_fwd(r, j, x, out):\n    out[r, j] = f_(x[r, j])\n",
             f"def {kind}_bwd(r, j, x, out, gout, gx):\n    gx[r, j] += {term}\n"]
    if d2f is not None:
        parts.append(f"def {kind}_d12(r, j, x, d1x, d2x, d1, d2):\n"
                     f"    p1 = df_(x[r, j])\n"
                     f"    d1[r, j] = p1 * d1x[r, j]\n"
                     f"    d2[r, j] = d2f_(x[r, j]) * d1x[r, j] * d1x[r, j] + p1 * d2x[r, j]\n")
    src = "".join(parts)
    exec(compile("\n" * (frame.f_lineno - 1) + src, frame.f_code.co_filename, "exec"), glb)
    fwd, bwd = glb[f"{kind}_fwd"], glb[f"{kind}_bwd"]
    fwd.__source__, bwd.__source__ = parts[0], parts[1]
    fwd.__doc__ = f"out = {kind}(x), elementwise."
    bwd.__doc__ = f"gx += gout * {kind}'(x), elementwise."
    R, D = 4, 6
    x = (lambda g: g.pos(R, D)) if domain == "positive" else (lambda g: g.x(R, D))

    def bwd_case(g):   # the VJP reads the forward value when its derivative is written over it
        xs, out = x(g), g.out(R, D)
        fwd_kernel(xs, out)
        return (xs, out, g.x(R, D), g.x(R, D))
    fwd_kernel = cells("out")(fwd)
    op = SimpleNamespace(kind=kind, doc=doc, f=f, df=df, d2f=d2f, vjp=vjp, fwd=fwd_kernel, bwd=cells("gout")(bwd), d12=None,
                         parity={f"{kind}_fwd": lambda g: (x(g), g.out(R, D)), f"{kind}_bwd": bwd_case})
    if d2f is not None:
        d12 = glb[f"{kind}_d12"]
        d12.__source__ = parts[2]
        d12.__doc__ = f"Price's second-order pass through {kind}: d1 = {kind}'(x) d1x, d2 = {kind}''(x) d1x^2 + {kind}'(x) d2x."
        op.d12 = cells("d1")(d12)
        op.parity[f"{kind}_d12"] = lambda g: (x(g), g.x(R, D), g.x(R, D), g.out(R, D), g.out(R, D))
    return op


def ops(module) -> tuple:
    """The elementwise ops a family module declares (`OP`: one, or a tuple of them)."""
    op = getattr(module, "OP", None)
    return () if op is None else (op if isinstance(op, tuple) else (op,))


def parity(module) -> dict:
    """A family's parity cases: its `PARITY`, and an op's (`OP`, from `unary`)."""
    out = dict(getattr(module, "PARITY", {}))
    for op in ops(module):
        out.update(op.parity)
    return out


def exported(module) -> dict:
    """What `cpu/core.py` binds of a family module: its declared kernels, and an op's kernels and
    scalar functions (`OP`, from `unary`)."""
    out = declared(module)
    for op in ops(module):   # its kernels are declared(); its scalar functions, for the row-fused lowering
        out.update({f"{op.kind}_value": op.f, f"{op.kind}_grad": op.df})
        if op.vjp is not None:
            out[f"{op.kind}_vjp"] = op.vjp
    return out


def declared(module):
    """The kernels ``module`` declares: {public name: CPU kernel} (an op's too: `unary`; and the
    hand-written CPU kernels its `CUDA` names)."""
    out = {n: f for n, f in vars(module).items()
           if not n.startswith("_") and getattr(f, "__declared__", None) is not None}
    for op in ops(module):
        out.update({f"{op.kind}_fwd": op.fwd, f"{op.kind}_bwd": op.bwd})
        if op.d12 is not None:
            out[f"{op.kind}_d12"] = op.d12
    out.update({n: getattr(module, n) for n in getattr(module, "CUDA", {})})
    return out


_TWINS = {}   # family module name -> {name: CUDA launcher}, made once


def cuda_twin(module) -> dict:
    """{name: CUDA launcher} for every kernel ``module`` declares: the registry's generated
    kernel of the same body, launched over the cells, rows, groups or items of the same argument;
    for a kernel no loop shape fits, the launcher its family makes (`CUDA = {name: maker}`, a
    maker called here, so a CPU-only process never imports numba.cuda; or the name of a maker of
    kernels/cuda/, "products.affine_fwd_launcher"). Made once per family and
    registered in the registry under the family's name (the file's), both targets."""
    if module.__name__ in _TWINS:
        return _TWINS[module.__name__]
    from . import registry
    from .native.launch import run
    family = module.__name__.rsplit(".", 1)[1]
    makers = getattr(module, "CUDA", {})
    # the target modules that hold makers first: one that is this family's target set makes its
    # twin as it is imported, and that twin (the one the module binds) is the family's only one
    for mod in sorted({m.partition(".")[0] for m in makers.values() if isinstance(m, str)}):
        importlib.import_module(f"{__package__}.cuda.{mod}")
    if module.__name__ in _TWINS:
        return _TWINS[module.__name__]
    out = {}
    kernels = declared(module)
    for name, kernel in kernels.items():
        if name in makers:
            maker = makers[name]
            if isinstance(maker, str):   # "module.maker" of kernels/cuda/ (a target's, above the families)
                mod, _, fn = maker.partition(".")
                maker = getattr(importlib.import_module(f"{__package__}.cuda.{mod}"), fn)
            out[name] = maker()
        else:
            d = kernel.__declared__
            gen, extent = _generated(d.shape, d.body, d.over, d.K, d.n)
            out[name] = _launcher(name, d.args, gen, extent, run, kernel.__doc__,
                                  SimpleNamespace(shape=d.shape, body=d.body, lead=d.lead, over=d.over, K=d.K))
        if hasattr(out[name], "into") and f"{name}_into" not in kernels:   # a value the step reads: its
            out[f"{name}_into"] = out[name].into   # device-side form beside it (unless declared a row at a time)
        gens = getattr(out[name], "__kernels__", ())
        registry.register(family, name, "cpu", kernel)
        registry.register(family, name, "cuda", out[name], shapes=[g.shape for g in gens],
                          scalars=[g.fn for g in gens])
    _TWINS[module.__name__] = out
    return out


def _generated(shape, body, over, K, n):
    """The registry's CUDA kernel of ``body`` over the loop ``shape``, and its launch extent (an
    expression of the arguments: the threads the loop shape needs)."""
    from . import registry
    if shape == "cells":
        return registry.cells(body, over), f"{over}.shape[0] * {over}.shape[1]"
    if shape == "rows":   # lanes per row where the body allows (kernels/lanes.py), W_ set by the launcher
        return registry.rows(body, over), f"{over}.shape[0] * W_"
    if shape == "groups":
        return registry.groups(body, over, K), f"{over}.shape[0] * ({over}.shape[1] // {K})"
    return registry.items(body, n), n


def cuda_launcher(kernel, shape, body, over=None, K="K", n=None):
    """The CUDA launcher of ``kernel`` (a CPU kernel of a family) generated from a body of its own,
    for the family's `CUDA` maker where one thread per iteration of the CPU kernel's loop is the
    wrong grain on a device (a CPU kernel that shares work across a data row's rows, where a
    device gives each row or cell a thread): the registry's kernel of ``body`` over ``shape``
    (`cells`, `rows`, `groups`, `items`, as the decorators), with ``kernel``'s name, arguments and
    docstring."""
    from .native.launch import run
    fn = getattr(kernel, "py_func", kernel)
    args = list(inspect.signature(fn).parameters)
    body_args = list(inspect.signature(body).parameters)[_LEAD[shape]:]
    if body_args != args:
        raise TypeError(f"{fn.__name__}: the CUDA body takes {body_args}, the kernel {args}")
    gen, extent = _generated(shape, body, over, K, n)
    lead = tuple(list(inspect.signature(body).parameters)[:_LEAD[shape]])
    return _launcher(fn.__name__, args, gen, extent, run, fn.__doc__,
                     SimpleNamespace(shape=shape, body=body, lead=lead, over=over, K=K))


def block_launcher(kernel, item, n, result="total"):
    """The maker of the CUDA launcher of a reduction that returns a value (a family's `CUDA`
    entry; ``kernel`` its hand-written CPU kernel): ONE block sums ``item(i, *args)`` over the
    ``n`` items (an expression of the kernel's arguments) in float64, the registry's ``block``
    (a deterministic block_sum); thread 0 writes ``result`` (an expression of total and the
    arguments) to a scratch word, and the launcher returns it (a float). Its ``into(*args,
    sink, k)`` adds ``result`` to ``sink[k]`` on the device and returns nothing: the CUDA step
    reads every such value with one copy (lowering/printer.py)."""
    def make():
        from . import registry
        from .native.launch import scratch, single_block
        fn = getattr(kernel, "py_func", kernel)
        args = list(inspect.signature(fn).parameters)
        item_args = list(inspect.signature(item).parameters)[1:]
        if item_args != args:
            raise TypeError(f"{fn.__name__}: the CUDA item takes {item_args}, the kernel {args}")
        gen = registry.block(item, n, result)
        src = (f"def {fn.__name__}({', '.join(args)}):\n"
               f"    res_ = scratch_()\n"
               f"    single_block_(gen_, {n})({', '.join(args)}, res_)\n"
               f"    return float(res_.copy_to_host()[0])\n")
        glb = {"scratch_": scratch, "single_block_": single_block, "gen_": gen, "__name__": __name__}
        exec(compile(src, f"<CUDA launcher of {fn.__name__}>", "exec"), glb)
        f = glb[fn.__name__]
        gen_into = registry.block(item, n, f"res[0] + ({result})")
        src = (f"def {fn.__name__}_into({', '.join(args)}, sink, k):\n"
               f"    single_block_(gen_, {n})({', '.join(args)}, sink[k:k + 1])\n")
        glb = {"single_block_": single_block, "gen_": gen_into, "__name__": __name__}
        exec(compile(src, f"<CUDA launcher of {fn.__name__}_into>", "exec"), glb)
        f.into = glb[f"{fn.__name__}_into"]
        f.__doc__, f.__kernels__ = fn.__doc__, [gen, gen_into]
        return f
    return make


def count_launcher(kernel, item, n):
    """The maker of the CUDA launcher of a check that counts its failing items (a family's `CUDA`
    entry; ``kernel`` its hand-written CPU kernel, True when none fails): the grid counts
    ``item(i, *args)`` (1.0 where item i fails) over the ``n`` items (an expression of the
    kernel's arguments; registry.counted: exact, the same count on every run) into a scratch word,
    and the launcher returns whether it is 0. Its ``into(*args, sink, k)`` adds the count to
    ``sink[k]`` on the device and returns nothing (the CUDA step's checks: lowering/printer.py)."""
    def make():
        from . import registry
        from .native.launch import launch_counted, scratch
        fn = getattr(kernel, "py_func", kernel)
        args = ", ".join(inspect.signature(fn).parameters)
        item_args = ", ".join(list(inspect.signature(item).parameters)[1:])
        if item_args != args:
            raise TypeError(f"{fn.__name__}: the CUDA item takes ({item_args}), the kernel ({args})")
        gen = registry.counted(item, n)
        src = (f"def {fn.__name__}({args}):\n"
               f"    res_ = scratch_()\n"
               f"    res_.copy_to_device(zeros_)\n"
               f"    if ({n}) > 0:\n"
               f"        launch_(gen_, {n})({args}, res_)\n"
               f"    return bool(res_.copy_to_host()[0] == 0)\n"
               f"def {fn.__name__}_into({args}, sink, k):\n"
               f"    if ({n}) > 0:\n"
               f"        launch_(gen_, {n})({args}, sink[k:k + 1])\n")
        glb = {"scratch_": scratch, "launch_": launch_counted, "gen_": gen, "zeros_": np.zeros(2),
               "__name__": __name__}
        exec(compile(src, f"<CUDA launcher of {fn.__name__}>", "exec"), glb)
        f = glb[fn.__name__]
        f.into = glb[f"{fn.__name__}_into"]
        f.__doc__, f.__kernels__ = fn.__doc__, [gen]
        return f
    return make


def _launcher(name, args, gen, extent, run, doc, loop):
    """The host launcher: ``run`` the generated kernel over ``extent`` (an expression of the
    arguments: the threads the loop shape needs) with the kernel's arguments. ``loop`` (its
    shape, body, index names, loop array and group size) rides along as ``__loop__`` with the
    kernel's arguments and generated kernel: what joins it with others (kernels/cuda/fused.py)."""
    from . import registry
    lead = ""
    if isinstance(gen, registry.Rows):   # the lanes per row first (registry.Rows.lanes)
        lead = f"    W_ = gen_.lanes({gen.over})\n"
        args_ = ["W_"] + list(args)
    else:
        args_ = list(args)
    src = f"def {name}({', '.join(args)}):\n{lead}    run_(gen_, {extent}, {', '.join(args_)})\n"
    glb = {"run_": run, "gen_": gen, "__name__": __name__}
    exec(compile(src, f"<CUDA launcher of {name}>", "exec"), glb)
    f = glb[name]
    f.__doc__ = doc
    f.__kernels__ = [gen]
    loop.args, loop.gen = tuple(args), gen
    f.__loop__ = loop
    return f
