"""Pass "render": the printers of the lowered step (ir.Step), one per form of step: the array
step's body (`print_arrays`: the CPU target's, and the CUDA target's with its reads gathered in
one sink), its reversed form for the compile helper (`print_reversed`) and the row-fused step
(`print_rows`); the compiler adds the target's header and signature. And `named_source`, the
form to read."""
from __future__ import annotations

import importlib
import math
import sys

import numpy as np

from ..calls import Call
from ..kernels import rowcode
from ..targets import CPU_MODULES
from . import ir, launches


def named_source(source: str) -> str:
    """A step's source with its inlined views written by the names its head comment gives them
    (`# p_q_W = rows.flat_view(theta, 0, (64, 32))`): the form to read, or to search in tests. Not
    compiled."""
    defs = {}
    for line in source.splitlines():
        if line.startswith("    # ") and " = " in line:
            name, _, expr = line[6:].partition(" = ")
            if name.isidentifier():
                defs[expr] = name
    if not defs:
        return source
    out = []
    for line in source.splitlines():
        if not line.lstrip().startswith("#"):
            for expr in sorted(defs, key=len, reverse=True):
                line = line.replace(expr, defs[expr])
        out.append(line)
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def print_arrays(step: ir.Step, inline_views: bool = True, sink: bool = False, samples: int = 1) -> str:
    """The array step's body (the compiler adds the target's header and signature).

    With `inline_views` (the CPU target) the workspace and input tuples are unpacked once,
    at the top, into the names the head gives their items; the parameter and state views
    are written where they are used, not bound to names, and kept in a comment that names
    them. A name bound at the top is a variable live across every kernel call's error
    branch; with ~100 such views LLVM's mem2reg spent a third of a new graph's compile on
    them, and they cost nothing to remake (rows.flat_view). A tuple item is another matter:
    Numba keeps the tuple argument in one stack slot and reads an item by loading the whole
    tuple (42 arrays, ~400 machine words, in a two-layer nonlinear SBN) and taking one
    field, so items read where they are used left LLVM ~100 such loads to split (0.4 s of
    SROA and InstCombine; docs/benchmarks/compile-and-cold-start.md, "Compile time of a new graph").

    With `sink` (the CUDA target) the values the step reads of its kernels, the loss's terms
    and the checks' failing counts, are added on the device into words of one array
    (`sink_`, each kernel's `_into` form) and copied back once, at the end of the forward
    pass, where the first failed check (in the step's order) raises its error: one wait for
    the device per step instead of one per value. A step given its `sink_` (a captured
    training step, runtime/cuda_graph.py) copies nothing: the words stay on the device, and
    the module's SINK_WORDS / SINK_LOSS say which is which. Launches are joined where one can do
    the work of several (lowering/launches.py: zeroed buffers, loss terms, declared kernels over
    the same rows); `samples`, the program's samples per data row, says how many rows a buffer's
    rows are."""
    S = ir.Stmt
    ret = ir.If(S("mode == 0"), (S("return loss"),))
    fwd, bwd, read, tail = list(step.fwd), list(step.bwd), [], []
    if sink:
        words = []   # per word: the check's raise lines, or None for a loss term
        per = samples * step.layout.S   # rows per data row: what a buffer's rows ("R", "D", "Dn") count
        fwd = launches.joined([*step.weights, *_into_sink(fwd, words)], per)   # the weights' fills may join too
        bwd = launches.joined(_into_sink(bwd, words), per)
        n = len(words)
        read = [S(f"v_ = sink_.copy_to_host() if own_ else np_zeros_({n})"), S("loss = 0.0")]
        read += [ir.If(S(f"v_[{k}] != 0"), lines) for k, lines in enumerate(words) if lines is not None]
        read += [S(f"loss += float(v_[{k}])") for k, lines in enumerate(words) if lines is None]
        fwd = [S("own_ = sink_ is None"), S(f"sink_ = sink_of_({n}) if own_ else sink_"), *fwd]
        tail = ["", "", "# the words of sink_: how many, and which hold the loss's terms (the others count the",
                "# failures of the checks); a step given a sink_ leaves them there (runtime/cuda_graph.py)",
                f"SINK_WORDS = {n}",
                f"SINK_LOSS = {tuple(k for k, lines in enumerate(words) if lines is None)!r}"]
    stmts, exprs, check, head = _printed(step, inline_views, fwd, [*read, ret], bwd, [S("return loss")],
                                         weights=not sink)
    return "\n".join(check + head + _lines(stmts, exprs, "    ") + tail)


def print_reversed(step: ir.Step) -> str | None:
    """The CPU array step's body with its statements in reverse order (the names its lines define
    first, in order; the forward-only call's early return dropped), for the compile helper to
    type from the last call back (compiler/ahead.py); None when the step has a loop."""
    stmts, exprs, check, head = _printed(step, True, step.fwd, (), step.bwd, ())
    if any(isinstance(st, ir.Loop) for st in stmts):
        return None
    defs = [st for st in stmts if isinstance(st, ir.Stmt) and st.defines]
    calls = [st for st in stmts if not (isinstance(st, ir.Stmt) and st.defines)]
    return "\n".join(head + _lines(defs + calls[::-1], exprs, "    ") + check + ["    return 0.0"])


def print_rows(step: ir.Step) -> tuple[str, str]:
    """The row-fused step (step.rows): (the prelude, two inner functions, and the step's body,
    which picks one by mode). The step's own arguments (tuples of workspace arrays) are many
    machine words; the step is small enough for LLVM to inline into a caller's loop, so those
    words are never passed, and the gradient function receives theta, grad, state, the inputs
    and the scratch rows only. A forward-only call (mode 0) keeps the writes of the rows' values
    to the workspace (`Stmt.store`); the gradient call needs none."""
    rc, imports = step.rows, dict(step.rows.imports)
    ins = "".join(f"{x}, " for x in [*rc.inputs, *rc.scratch])
    rows = f"B * {rc.samples}"  # drawn rows d; each is S workspace rows
    fwd_rows = _row_lines(step.fwd, imports)
    grad_rows = _row_lines(step.fwd, imports, stores=False)
    used = {name for st in ir.flatten(step.fwd) for name, _, _ in ir.names(st)}   # a row call's: its arguments
    views = [str(line) for line in step.head if line.name in used]
    common = [f"cast = {rc.fdtype}", f"w_ = cast(1.0 / ({rows}))", *_row_lines(rc.pre, imports)]  # pre: a fold's state reads
    fwd = ["", "", "@njit(cache={cache}, no_cpython_wrapper=True, no_cfunc_wrapper=True)", "def _forward(theta, state, ws2, ws1, inputs, B, seed, t, row0):",
           *("    " + x for x in views + [f"{x} = inputs[{j}]" for j, x in enumerate(rc.inputs)] + common),
           "    loss = 0.0", f"    for d in range({rows}):",
           *("        " + x for x in fwd_rows), "    return loss"]
    grd = ["", "", "@njit(cache={cache}, no_cpython_wrapper=True, no_cfunc_wrapper=True)", f"def _gradient(theta, grad, state, {ins}B, seed, t, row0):",
           *("    " + x for x in common), "    for i in range(grad.shape[0]):", "        grad[i] = 0",
           "    loss = 0.0", f"    for d in range({rows}):",
           *("        " + x for x in grad_rows + _row_lines(step.bwd, imports)), *_row_lines(rc.post, imports, indent="    "),
           "    return loss"]
    prelude = "\n".join([f"import {mod} as {alias}" for alias, mod in sorted(imports.items())] + fwd + grd) + "\n"
    args = "".join([f"inputs[{j}], " for j in range(len(rc.inputs))] + [f"ws1[{i}], " for i in rc.scratch.values()])
    return prelude, "\n".join(["    if mode == 0:", "        return _forward(theta, state, ws2, ws1, inputs, B, seed, t, row0)",
                                f"    return _gradient(theta, grad, state, {args}B, seed, t, row0)"])


_NAMES = {}


def qualify(obj, imports: dict | None = None) -> str | None:
    """How the step names a global of a kernel's body: `alias.name` of a module the step
    imports (kernels/math/scalar.py first), `np` for NumPy, `math`, a number as its literal; else a
    function of another module of ppl.kernels, imported under an alias of its own (recorded in
    `imports`: alias -> module); None when there is none."""
    if not _NAMES:
        _NAMES[id(np)] = "np"
        for alias in ("scalar", "rng", *CPU_MODULES):
            for name, value in vars(importlib.import_module(f"ppl.kernels.{CPU_MODULES[alias]}")).items():
                if not name.startswith("__") and callable(value):
                    _NAMES.setdefault(id(value), f"{alias}.{name}")
    if id(obj) in _NAMES:
        return _NAMES[id(obj)]
    if obj is math and imports is not None:
        imports["math"] = "math"
        return "math"
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return repr(obj)
    if isinstance(obj, np.floating):
        return f"np.{type(obj).__name__}({float(obj)!r})"
    mod, name = getattr(obj, "__module__", None) or "", getattr(obj, "__name__", None)
    if imports is None or not mod.startswith("ppl.kernels.") or getattr(sys.modules.get(mod), name or "", None) is not obj:
        return None
    alias = "k_" + mod[len("ppl.kernels."):].replace(".", "_")
    imports[alias] = mod
    return f"{alias}.{name}"



def row_lines_of(call: ir.RowCall) -> tuple:
    """(the lines, the modules their globals need: alias -> module, the per-configuration
    arguments' texts they read) of a row call: its kernel's
    body over the row's locals (kernels/rowcode.py), rewritten once per call (the lowering asks
    first, so a call with no row form raises NoRowForm there)."""
    if call.rewritten is None:
        imports, reads = {}, set()
        lines = rowcode.row_lines(call.kernel, call.args, lambda obj: qualify(obj, imports), call.tag, call.row, reads,
                                  call.part)
        call.rewritten = (lines, imports, frozenset(reads))
    return call.rewritten


def _row_lines(stmts, imports: dict, stores: bool = True, indent: str = "") -> list:
    """The row code's lines: each row call (ir.RowCall) as its kernel's body over the row's
    locals (the modules its globals need added to `imports`), an If (a check, a row statement's
    test) as its lines; without `stores`, no write of a row's value to the workspace (ir.Store)."""
    out = []
    for st in stmts:
        if isinstance(st, ir.RowCall):
            lines, needs, _ = row_lines_of(st)
            out += [indent + str(line) for line in lines]
            imports.update(needs)
        elif isinstance(st, (ir.If, ir.For)):
            out += _control(st, indent, str, lambda xs, at: _row_lines(xs, imports, stores, at))
        elif stores or not st.store:
            out.append(indent + str(st))
    return out


def _printed(step: ir.Step, inline_views: bool, fwd, ret, bwd, final, weights: bool = True) -> tuple:
    """(the statements: the weights' (unless `fwd` holds them already), the forward section's
    (`fwd`), `ret`, the backward section's (`bwd`) and `final`, without unread repeats; the
    names written as expressions; the lines of the parameters' size check; the head's lines)."""
    stmts = [*(step.weights if weights else ()), *fwd, *ret, *bwd, *final]
    stmts = ir.without(stmts, ir.unread_repeats(stmts))
    check, top, L = [], [], step.layout
    if L.n_theta or L.n_state:   # the views are not bounds-checked (rows.flat_view)
        n, m = L.n_theta, L.n_state
        check += [f"    if theta.shape[0] != {n} or grad.shape[0] != {n} or state.shape[0] < {m}:",
                  f"        raise ModelError_(\"step: theta and grad must have {n} entries and state at least {m} \"",
                  "                          \"(this program's prog.theta, prog.grad_buffer, prog.state)\")"]
    exprs = dict(ir.SPELLING)   # the markers of skipped gradients: the empty buffers
    if inline_views and step.head:
        items = {t: [(b.index, b.name) for b in step.head if b.source == t] for t in ("ws2", "ws1", "inputs")}
        views = {b.name: b.expr for b in step.head if b.source == "view"}
        for tup, named in items.items():
            if not named:
                continue
            named.sort()
            if [i for i, _ in named] != list(range(len(named))):   # every item named, in order
                raise AssertionError(f"lowering: the head does not name every item of {tup}")
            top += _unpack([name for _, name in named], tup)
        exprs.update(views)
        top += ["    # " + f"{name} = {expr}" for name, expr in views.items()]
    else:
        top += ["    " + str(line) for line in step.head]
    return stmts, exprs, check, top


def _into_sink(stmts: list, words: list) -> list:
    """The statements with each value the step reads of a kernel (a check's test, a loss term: a
    call whose value `loss` takes) written as the kernel's `_into` form adding it to a word of
    `sink_` (words: the check's raise, or None for a loss term, by word)."""
    out = []
    for st in stmts:
        if isinstance(st, ir.Loop):   # a check in a scan's body: its word adds up over the steps
            out.append(st.mapped(lambda stmts: _into_sink(stmts, words)))
            continue
        check = isinstance(st, ir.If) and st.raises() and st.test.call is not None
        term = isinstance(st, ir.Stmt) and st.call is not None and (st.call.assign or ("",))[0] == "loss"
        if check or term:
            read = st.test if check else st
            into = Call(read.call.kernel.variant("_into"), (*read.call.args, "sink_", len(words)))
            out.append(ir.Stmt(into, read.owner))
            words.append(st.then if check else None)
            continue
        out.append(st)
    return out


def _lines(stmts: list, exprs: dict, indent: str, forward=None) -> list:
    """The statements as indented lines, each loop block as its loop (ir.Loop); a checkpointed
    loop's reverse block as its segments (`_segments`), which run its forward block's body again
    (`forward`: the forward blocks printed so far, by their Checkpoint)."""
    out, forward = [], {} if forward is None else forward
    for st in stmts:
        if isinstance(st, ir.Loop) and st.ckpt is not None and st.reverse:
            out += _lines(st.pre, exprs, indent, forward)
            out += _segments(st, forward[id(st.ckpt)], exprs, indent)
        elif isinstance(st, ir.Loop):
            if st.ckpt is not None:
                forward[id(st.ckpt)] = st
            out += _lines(st.pre, exprs, indent, forward)
            out += _loop_head(st, f"range({st.length} - 1, -1, -1)" if st.reverse else f"range({st.length})", indent,
                              exprs)
            out += _lines(st.body + st.once, exprs, indent + "    ", forward) or [indent + "    pass"]
        elif isinstance(st, (ir.If, ir.For)):
            out += _control(st, indent, lambda x: ir.inline(x, exprs), lambda xs, at: _lines(xs, exprs, at, forward))
        else:
            out.append(indent + ir.inline(st, exprs))
    return out


def _control(st, indent: str, text, body) -> list:
    """An If's or a For's lines: its opening line (its test or count as `text` writes a
    statement), its statements as `body(statements, indent)` writes them (`pass` for none), an
    If's else branch likewise."""
    inside = indent + "    "
    if isinstance(st, ir.For):
        return [indent + f"for {st.var} in range({text(st.count)}):", *(body(st.body, inside) or [inside + "pass"])]
    out = [indent + f"if {'not ' if st.negate else ''}{text(st.test)}:", *(body(st.then, inside) or [inside + "pass"])]
    if st.orelse is not None:
        out += [indent + "else:", *(body(st.orelse, inside) or [inside + "pass"])]
    return out


def _loop_head(loop: ir.Loop, rng: str, indent: str, exprs: dict) -> list:
    """A loop block's first lines: the loop over `rng` and the bindings of its per-step buffers
    (a storage that is an inlined view, a state value's steps, written as its expression)."""
    return [indent + f"for {ir.LOOP_VAR} in {rng}:",
            *(indent + f"    {name} = {ir.inline(rows, exprs)}" for name, rows in loop.bindings())]


def _segments(rev: ir.Loop, fwd: ir.Loop, exprs: dict, indent: str) -> list:
    """A checkpointed loop's reverse block: per segment of K steps, from the last, the carry
    saved before it restored into the slot its first step reads, the forward body run again over
    the segment (not for the last segment: the forward pass left its steps in the slots), then
    the segment's steps backward."""
    ck, i2 = rev.ckpt, indent + "    "
    out = [indent + f"for seg_ in range({ck.segments} - 1, -1, -1):",
           i2 + f"lo_ = seg_ * {ck.K}", i2 + f"hi_ = min(lo_ + {ck.K}, {ck.length})",
           i2 + f"if seg_ < {ck.segments - 1}:", i2 + "    if seg_ > 0:"]
    for saved, full in ck.saved:
        n = f"({full}.shape[0] // {ck.K})"
        out.append(i2 + f"        core.copy_fwd({saved}[(seg_ - 1) * {n}:seg_ * {n}], "
                        f"{full}[({ck.K} - 1) * {n}:{ck.K} * {n}])")
    if not ck.saved:
        out.append(i2 + "        pass")
    out += _loop_head(fwd, "range(lo_, hi_)", i2 + "    ", exprs)
    out += _lines(fwd.body, exprs, i2 + "        ") or [i2 + "        pass"]
    out += _loop_head(rev, "range(hi_ - 1, lo_ - 1, -1)", i2, exprs)
    out += _lines(rev.body, exprs, i2 + "    ") or [i2 + "    pass"]
    return out


def _unpack(names: list, tup: str, width: int = 100) -> list:
    """`(a, b, ...) = tup` as indented lines of at most `width` characters."""
    out, line = [], "    ("
    for name in names:
        piece = f"{name}, "
        if len(line) + len(piece) > width and line.strip() != "(":
            out.append(line.rstrip())
            line = "     "
        line += piece
    out.append(line.rstrip() + f") = {tup}")
    return out
