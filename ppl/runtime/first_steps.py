"""A new step's first calls from Python, run by the interpreter over the step's compiled kernels.

A step of kernel calls (the array lowering's CPU step: a straight line of kernel calls, compiled
without reference counts) spends its first call mostly compiling itself: Numba types it, lowers it,
and LLVM optimises and emits it, and the part after typing grows faster than the step
(docs/benchmarks/compile-and-cold-start.md). Typing alone compiles, or loads from the disk cache,
every kernel the step calls. So a program's first calls from Python (`grad`, `loss`, `sample` ...)
type the step only, bind each kernel call of the step's source to the specialisation the compiled
step calls (the literal arguments included, so the machine code, and the results, are the same
bit for bit) and run the step's own Python function: one Python call per kernel call.

The step is compiled once the interpreter's extra cost reaches what its compile is expected to
cost (a rent-or-buy rule: calls x sites x PER_SITE_S >= COMPILE_PER_TYPING x the typing's time), so
a program called a few times never pays its compile and one called many times pays it at most
about twice. A step with loops of its own (a scan's, a checkpointed scan's segments) makes as many
kernel calls as its loops run: it is compiled once the interpreted calls' own time (the kernels'
work included, so sooner than the rule needs) reaches the compile's expected cost. Its loops do
integer work only (the slices of a step's rows, a segment's bounds); every value is a kernel's.
`ppl.fit`'s per-step loop (training/fit.py, PythonSteps: a short fit's, by default) runs them too;
its nopython loop compiles the step with itself. Everything else takes the compiled step as
before: a step in the disk cache (loading it is quick), a step that calls compiled code of its own
(the row-fused lowering's `_forward`, a user's function), the checked entry (`check_steps`) and a
user's @njit code calling `prog.entry`. `PPL_FIRST_STEPS=0` turns the interpreter off.
"""
from __future__ import annotations

import ast
import inspect
import os
import time
import types

import numpy as np

from .notice import compiling

ENV = "PPL_FIRST_STEPS"
PER_SITE_S = 6e-7          # the interpreter's extra cost per kernel call (BENCHMARKS.md)
COMPILE_PER_TYPING = 2.5   # a step's compile after typing, in units of its typing's time


class FirstSteps:
    """The interpreted step of a program (`fn`, the step's Python function with its kernel calls
    bound) and its rent-or-buy count."""

    def __init__(self, step, fn, sites: int, typing_s: float, loops: bool = False):
        self.step, self.fn, self.calls = step, fn, 0   # step: the compiled step it stands for
        self.budget = max(1, int(COMPILE_PER_TYPING * typing_s / (max(sites, 1) * PER_SITE_S)))
        # a step with loops: its kernel calls per call are its loops' trips, so its interpreted
        # calls' own time is what is counted against the compile's expected cost (None: by calls)
        self.budget_s = COMPILE_PER_TYPING * typing_s if loops else None
        self.spent_s = 0.0

    def __call__(self, *args):
        self.calls += 1
        if self.budget_s is None:
            return self.fn(*args)
        t0 = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.spent_s += time.perf_counter() - t0

    @property
    def spent(self) -> bool:
        if self.budget_s is not None:
            return self.spent_s >= self.budget_s or self.calls >= self.budget
        return self.calls >= self.budget


def call(prog, args, seed, t, mode, write=None, interpret=True):
    """One call of `prog`'s step from Python (`grad` and its siblings, fit's per-step loop): the
    compiled step once it has run; before, the interpreted step while it pays (interpret=False:
    never). The call that types the step (compiling or loading its kernels) or compiles it says so
    on the screen when it takes long (write: where the line goes, as `notice.compiling`)."""
    if getattr(prog, "_called", False):
        return prog.entry(*args, seed, t, mode)
    first = _ready(prog) if interpret else None
    if first is not None:
        return first(*args, seed, t, mode)
    with compiling(f"model '{prog.model.name}'", write=write):
        run = _decide(prog, args) if interpret else prog.entry
        loss = run(*args, seed, t, mode)
    prog._called = run is prog.entry
    return loss


def _ready(prog) -> FirstSteps | None:
    """`prog`'s interpreted step while it pays, else None."""
    first = prog.__dict__.get("_first_steps")
    step = prog.module.step
    return first if first and not first.spent and first.step is step and prog.entry is step else None


def _decide(prog, args):
    """The interpreted step, made at the program's first call (and again for a new step: a plate's
    size set), or the compiled entry point where it does not apply."""
    first = prog.__dict__.get("_first_steps")
    if first is None or first and first.step is not prog.module.step:
        try:
            first = start(prog, args) or False
        except Exception:   # noqa: BLE001 - the compiled step's own first call says what is wrong
            first = False
        prog._first_steps = first
    return _ready(prog) or prog.entry


def signature(args) -> tuple:
    """The argument types of a call of the step with the program's arguments `args` (seed, step and
    mode after them), as its compiled entry point's first call compiles it."""
    from numba import typeof
    return tuple(typeof(a) for a in (*args, np.uint64(0), np.int64(0), 1))


def start(prog, args) -> FirstSteps | None:
    """The interpreted step of `prog` for a call with `args` (the step's arguments), or None where
    it does not apply (see the module's docstring)."""
    from ..kernels import numba_compat
    step = prog.module.step
    if os.environ.get(ENV, "1").strip() == "0" or getattr(prog, "target", "cpu") != "cpu" or \
            prog.entry is not step or numba_compat.nrt_option(step) is not False:
        return None
    sig = signature(args)
    if numba_compat.is_cached(step, sig):
        return None
    made = _bound_source(step)
    if made is None:
        return None
    fn, kernels, loops = made
    t0 = time.perf_counter()
    called = numba_compat.types_only(fn, sig)   # compiles, or loads, every kernel the step calls
    typing_s = time.perf_counter() - t0
    if called is None:
        return None
    glb = fn.__globals__
    for name, disp in kernels.items():
        if hasattr(disp, "python"):   # an intrinsic (flat_view): its meaning in Python
            glb[name] = disp.python
            continue
        got = disp.overloads.get(called.get(name))
        if got is None or got.entry_point is None:
            return None   # a call typing did not reach, or more than one specialisation at a site
        glb[name] = got.entry_point
    return FirstSteps(step, fn, len(kernels), typing_s, loops)


def _bound_source(step):
    """The step's Python function made again from its source with each call of a kernel module's
    function (`core.affine_fwd(...)`) made a call of a global of its own (`_k0(...)`), and those
    globals {name: the dispatcher or intrinsic}, and whether the step has loops of its own; None
    where it calls something else that is compiled."""
    from numba.core.registry import CPUDispatcher
    from ..kernels import source
    py = step.py_func
    tree = ast.parse(inspect.getsource(py))
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef):
        return None
    inside = source.in_loops(func, (ast.For, ast.While))   # each node of a loop once, nested loops too
    if any(_float_work(n) for n in ast.walk(func) if id(n) in inside):
        return None
    func.decorator_list = []
    glb, kernels = py.__globals__, {}
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        target = getattr(glb.get(f.value.id), f.attr, None) if isinstance(f, ast.Attribute) and \
            isinstance(f.value, ast.Name) else glb.get(f.id) if isinstance(f, ast.Name) else None
        compiled = isinstance(target, CPUDispatcher) or hasattr(target, "python")
        if not compiled:
            if type(target).__module__.startswith("numba"):
                return None   # a compiled callee it could not bind
            continue
        if isinstance(f, ast.Name):
            return None
        name = f"_k{len(kernels)}"
        kernels[name] = target
        node.func = ast.copy_location(ast.Name(name, ast.Load()), f)
    code = compile(ast.fix_missing_locations(tree), inspect.getsourcefile(py), "exec")
    body = next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == py.__name__)
    return types.FunctionType(body, {**glb, **kernels}, py.__name__), kernels, bool(inside)


def _float_work(node) -> bool:
    """Whether `node` is arithmetic that may be on floats (a float constant, `float(...)` or an
    array's entry among its operands): a loop of the interpreted step keeps to integer work, which
    Python and the compiled step do alike, while a float sum may be reordered once compiled."""
    if not isinstance(node, (ast.BinOp, ast.AugAssign, ast.UnaryOp)) or \
            isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):   # a literal: -1.0
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, float):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "float":
            return True
        if isinstance(n, ast.Subscript) and not (isinstance(n.value, ast.Attribute) and n.value.attr == "shape"):
            return True
    return False
