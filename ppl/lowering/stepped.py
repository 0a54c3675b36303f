"""A loop block as one CUDA kernel (`rows.stepped`, lowering/launches.py's `joined`): a `ppl.scan`'s
steps whose every statement is a declared kernel at its rows (a carry's `if` / `else` included) are
one launch, each row's lanes running all its steps (kernels/cuda/fused.py), instead of a launch per
kernel and step; a check in it (its `_into` count) counts the whole per-step buffer once, after it.
"""
from __future__ import annotations

from ..calls import Call, Code, Const, KernelRef, Name, arg_names, code, substituted
from ..kernels import fusion
from ..targets import CUDA_FAMILIES
from . import access, ir

MAX_STEP_ARGS = 40   # of a loop block's kernel (its storages are its arrays: no view of each step)
_KEPT = (ir.LOOP_VAR, "float", "int")   # names a step's argument text keeps in the kernel


class _Steps:
    """One loop block read for `rows.stepped`: its storages by per-step name, the text of each step's
    rows of a storage (a carry's previous step too), and the kernel's parameters as they come."""

    def __init__(self, loop: ir.Loop):
        self.loop, self.params, self.records, self.views = loop, {}, {}, {}
        self.slices = {str(ir.step_rows(full, loop.length, shift)): (full, shift)
                       for full in set(loop.binds.values()) for shift in (-1, 0, 1)}
        self.rows = {}   # storage -> rows of a step (from the per-step buffers bound to it)

    def memory(self, arg) -> tuple:
        """access.memory with a per-step buffer and a step's rows of a storage read as the storage,
        at the row (each row's lanes run every step of that row)."""
        name = str(arg)
        if isinstance(arg, _Kept):
            return (name,), True
        if name in self.loop.binds and not isinstance(arg, Code):
            return (self.loop.binds[name],), True
        if isinstance(arg, Code) and name in self.slices:
            return (self.slices[name][0],), True
        keys, exact = access.memory(arg)   # (it_ and the builtins a text names are no memory)
        return tuple(self.loop.binds.get(k, k) for k in keys if k not in _KEPT), exact

    def over_rows(self, arg, per):
        if isinstance(arg, Code) and str(arg) in self.slices:
            return self.rows.get(self.slices[str(arg)][0])
        return access.rows_of(arg, per)

    def view(self, full: str, shift: int) -> str:
        """The name of a storage's rows of step it_ + shift in the kernel (s<k>, s<k>m, s<k>p)."""
        k = self.params.setdefault(full, len(self.params))
        name = f"s{k}" + {-1: "m", 0: "", 1: "p"}[shift]
        self.views[name] = (f"a{k}", shift)
        return name

    def scratch(self) -> str:
        """A new scratch storage of the kernel's own (c<i>) and the name of its rows of step it_."""
        i = sum(1 for v in self.views if v.startswith("k"))
        self.views[f"k{i}"] = (f"c{i}", 0)
        return f"k{i}"

    def name(self, n: str) -> str:
        """A name of the step as the kernel's: a per-step buffer its storage's rows of step it_
        (`view`), it_ and builtins kept, any other name a parameter a<k>."""
        if n in _KEPT:
            return n
        if n in self.loop.binds:
            return self.view(self.loop.binds[n], 0)
        return f"a{self.params.setdefault(n, len(self.params))}"

    def arg(self, a) -> str:
        if isinstance(a, _Kept):
            return str(a)
        if isinstance(a, Code) and str(a) in self.slices:
            return self.view(*self.slices[str(a)])
        for n, _, _ in arg_names(a):
            if n == str(a) and n not in self.loop.binds and type(a) is not str:
                self.records.setdefault(n, a)
        return substituted(a, self.name)


def _tested(node, steps: _Steps):
    """[(call, the steps' test)] of an If whose branches are declared calls (a carry's), or None
    for any other statement (a check: its raise is no call)."""
    if not isinstance(node, ir.If):
        return None
    test = substituted(node.test.record, steps.name)
    if node.negate:
        test = f"not ({test})"
    out = []
    for branch, holds in ((node.then, test), (node.orelse or (), f"not ({test})")):
        for line in branch:
            if not isinstance(line, ir.Stmt) or access.loop_of(line) is None:
                return None
            out.append((line, holds))
    return out


def _hoisted(st: ir.Stmt, loop: ir.Loop):
    """A check's count (its `_into` call, adding to the sink) on its per-step buffers' storages, once
    after the loop, or None where it reads anything else of a step."""
    args = []
    for a in st.call.args:
        if str(a) in loop.binds and not isinstance(a, Code):
            args.append(code("{full}", full=loop.binds[str(a)]))
        elif any(n == ir.LOOP_VAR or n in loop.binds for n, _, _ in arg_names(a)):
            return None
        else:
            args.append(a)
    return ir.Stmt(Call(st.call.kernel, args, st.call.assign), st.owner)


class _Kept(Name):
    """A member's argument that is the kernel's own scratch (`_Steps.scratch`: its step's rows)."""


def _folded(st: ir.Stmt, steps: _Steps):
    """A moving-average baseline in a loop block (rows.moving_average_baseline) as its row half, a
    member (rows.baseline_keep, keeping each row's weighted cost of the step in scratch), and its
    fold after the loop ((rw, state, slots, decay, update) of `stepped`'s spec), or None where
    the steps do not each have their own slot."""
    L, rw, state, slot, decay, b, update = st.call.args
    if not (isinstance(slot, ir.PerStep) and isinstance(slot.off, (int, type(None))) and slot.size >= 2):
        return None   # a slot shared by the steps: a later step reads what an earlier one folds in
    slots = tuple(slot.at(t) for t in range(steps.loop.length))
    keep = _Kept(steps.scratch())
    member = ir.Stmt(Call(KernelRef("rows", "baseline_keep"), (L, rw, state, slot, b, keep)), st.owner)
    return member, (steps.arg(rw), steps.arg(state), slots, steps.arg(decay), steps.arg(update))


def _one_kernel(loop: ir.Loop, per: int):
    """The loop block as [its pre, one rows.stepped call, its checks after it], or None."""
    steps, members, after, folds = _Steps(loop), [], [], []
    for st in loop.body:
        if isinstance(st, ir.Stmt) and st.kernel == ("rows", "moving_average_baseline"):
            got = _folded(st, steps)
            if got is None:
                return None
            members.append((got[0], ""))
            folds.append(got[1])
        elif isinstance(st, ir.If):
            got = _tested(st, steps)
            if not got:
                return None
            members += got
        elif isinstance(st, ir.Stmt) and st.call is not None and any(type(a) is str and a == "sink_"
                                                                     for a in st.call.args):
            after.append(_hoisted(st, loop))
            if after[-1] is None:
                return None
        elif access.loop_of(st) is not None:
            members.append((st, ""))
        else:
            return None
    for st, _ in members:
        for a in st.call.args:
            if str(a) in loop.binds and access.rows_of(a, per) is not None:
                steps.rows[loop.binds[str(a)]] = access.rows_of(a, per)
    written, past, rows, spec = set(), set(), set(), []
    for st, test in members:
        lp = access.loop_of(st)
        for key, (w, here) in access.touched(st, lp, steps.memory).items():
            written |= {key} if w else set()
            past |= set() if here else {key}
        rows.add(steps.over_rows(st.call.args[lp.args.index(lp.over)], per))
        spec.append((st, lp, tuple(steps.arg(a) for a in st.call.args), test))
    if written & past or len(rows) != 1 or None in rows or len(steps.params) > MAX_STEP_ARGS:
        return None   # a row reads what another row writes (at another step), or rows unknown or unequal
    args = [steps.records.get(n, code("{n}", n=n)) for n in steps.params]
    views = tuple((name, *at) for name, at in sorted(steps.views.items(), key=lambda v: (v[1][0][0], int(v[1][0][1:]),
                                                                                        v[1][1])))
    call = Call(KernelRef("rows", "stepped"), [Const(repr(_spec(loop, len(args), views, spec, folds))), *args])
    return [*loop.pre, ir.Stmt(call, members[0][0].owner), *after]


def _spec(loop: ir.Loop, n: int, views, members, folds) -> tuple:
    """`rows.stepped`'s spec of a loop block: (length, reverse, n, the members' kernels, each fold's
    slots, the kernel's row source, the host part's source). Both sources are generated here,
    from the members' arguments as the kernel's expressions (kernels/fusion.py's `steps_source`,
    `host_source`); the CUDA runtime loads them (kernels/cuda/fused.py)."""
    names, rows, exprs = [], [], {}
    for k, (st, lp, args, test) in enumerate(members):
        alias, name = st.kernel
        names.append(f"{CUDA_FAMILIES.get(alias, alias)}.{name}")
        K = lp.args.index(lp.K) if lp.shape == "groups" else None
        rows.append((lp.shape, lp.shape == "rows" and lp.gen.formed, args, lp.args.index(lp.over), K, test))
        exprs[f"args{k}"], exprs[f"test{k}"] = f"({''.join(a + ', ' for a in args)})", test or "True"
    for i, (rw, state, _, decay, update) in enumerate(folds):
        exprs[f"rw{i}"], exprs[f"fold{i}"] = rw, f"({rw}, {state}, {decay}, {update})"
    source = fusion.steps_source(loop.length, loop.reverse, views, rows, n, len(folds))
    host = fusion.host_source(loop.length, n, len(folds), views, exprs)
    return loop.length, loop.reverse, n, tuple(names), tuple(f[2] for f in folds), source, host


def stepped(stmts: list, per: int) -> list:
    """Each loop block that one kernel can run (`_one_kernel`) as that kernel's launch."""
    out = []
    for st in stmts:
        got = _one_kernel(st, per) if isinstance(st, ir.Loop) and st.body else None
        out += got if got is not None else [st]
    return out
