"""The CUDA step's joined kernels: a run of declared kernels over the same rows launched as ONE
kernel (kernels/fusion.py says which may join and writes a row's work; lowering/launches.py finds
the runs).

``fused(spec, *args)``: spec names the members, ``(("family.name", positions), ...)``, each
member's arguments being ``args[p]`` for p in its positions (an argument two members share is
passed once); a member ``("family.name", positions, "side")`` is side work, on arrays no other
member reaches (the gradient's buffer zeroed): after the rows, the kernel's threads run its
loop, a thread per row, cell or group of its own array. The kernel is made once per spec: a
grid-stride loop over the first member's rows times the lanes a row gets, each row's lanes
running ``fusion.row_source``'s function of the members' device bodies (Generated.body). The lanes per row are ``row_lanes`` of the rows
and the widest member's columns where a member spreads over lanes (a row body's lanes form, a
cells or groups loop), else one. Where the members' loops do not run over the same number of
rows, each member is launched as it is (the joined kernel assumes the rows are one set); where
the joined kernel does not compile (Numba's error at its first launch), the members are launched
one by one from then on, with a warning that names them and the error.

``stepped(spec, *args)``: a loop block of the step (a ``ppl.scan``'s steps) whose every member is
a declared kernel at its rows, as ONE kernel: each row's lanes run every step's members in turn
(kernels/fusion.py's ``steps_source``), instead of a launch per member and step. spec is
``(length, reverse, n, members, folds, source, host)``, made by the compiler
(ppl/lowering/stepped.py): the members' kernels ``"family.name"`` in order; each fold's state
slots; ``source``, the generated row function ``seg`` of the kernel (its members' arguments as
expressions of the parameters ``a0 .. a<n-1>``, the kernel's scratch ``c<i>``, the storages'
step views and ``it_``); ``host``, the generated module of the host part: ``args<k>(args, it_)``
and ``test<k>(args, it_)`` (member k's arguments at a step, whether it runs there),
``rw<i>`` and ``fold<i>`` (fold i's rows' weights and arguments). A fold is a moving-average
baseline's update deferred past the loop: its rows' weighted costs, kept at each step in scratch
``c<i>`` (rows.baseline_keep), summed into state[slots[t]] for each step t after the kernel
(products.moving_average_fold), as each step's rows.moving_average_baseline would have (each step
its own slot, read by no other step). Where the members' rows differ or the kernel does not
compile, the steps run from Python, member by member. Both sources are loaded once per spec
(`_load`); nothing is generated from argument texts here.
"""
import re
import warnings

import numpy as np
from numba import cuda
from numba.core.errors import NumbaError

from .. import fusion, registry
from ..native import launch as L

_SEGMENTS = {}   # spec -> Segment
_HIGHLIGHT = re.compile(L.BOLD)


def _first_line(exc) -> str:
    """A compile error's kind and first line, for a warning (no terminal escapes)."""
    return f"{type(exc).__name__}: {_HIGHLIGHT.sub('', str(exc)).strip().splitlines()[0][:300]}"


def _member(kernel, what):
    """(CUDA launcher, its loop, the indices among the loop's arguments of its loop array and of its
    group size (or None), whether a rows body has its lanes form) of a member "family.name"."""
    family, _, name = kernel.partition(".")
    launcher = registry.lookup(family, name).impls["cuda"]
    loop = launcher.__loop__
    if loop.shape not in fusion.SHAPES:
        raise ValueError(f"{what}: {family}.{name} runs over {loop.shape}, not rows")
    K = loop.args.index(loop.K) if loop.shape == "groups" else None
    return launcher, loop, loop.args.index(loop.over), K, loop.shape == "rows" and loop.gen.formed


def _side_lines(k, shape, formed, pos, over, K) -> list:
    """The grid-stride loop of side member k (its body ``s<k>``): one thread per row, cell or group
    of its loop array (a row body's lanes form on one lane)."""
    args = ", ".join(f"a{p}" for p in pos)
    o = f"a{over}"
    if shape == "rows":
        return [f"    for i in range(cuda.grid(1), {o}.shape[0], cuda.gridsize(1)):",
                f"        s{k}(i, 0, 1, {args})" if formed else f"        s{k}(i, {args})"]
    if shape == "cells":
        return [f"    for i in range(cuda.grid(1), {o}.shape[0] * {o}.shape[1], cuda.gridsize(1)):",
                f"        s{k}(i // {o}.shape[1], i % {o}.shape[1], {args})"]
    return [f"    for i in range(cuda.grid(1), {o}.shape[0] * ({o}.shape[1] // a{K}), cuda.gridsize(1)):",
            f"        s{k}(i // ({o}.shape[1] // a{K}), i % ({o}.shape[1] // a{K}), {args})"]


def _kernel(members, dtype, src, params, lead, rows, prefix, names, side=()):
    """The kernel ``k(W_<lead>, *params)`` of a grid-stride loop over `rows` (an expression of
    its arguments) times W_ lanes, each row's lanes running ``seg`` (`src`: fusion.row_source or
    steps_source) with its members' device bodies ``f<k>`` for arrays of `dtype`; then each side
    member's own loop (`side`: (loop, (shape, formed, positions, over, K)), `_side_lines`)."""
    glb = {"lanes_sync": L.lanes_sync}
    for k, (loop, _) in enumerate(members):
        glb[f"f{k}"] = loop.gen.body(dtype)
    _load(src, f"<{prefix}row of the CUDA step>", glb)
    args = "".join(f", {p}" for p in params)
    kern = (f"def k(W_{lead}{args}):\n"
            f"    for i in range(cuda.grid(1), {rows} * W_, cuda.gridsize(1)):\n"
            f"        seg(i // W_, i % W_, W_{args})\n")
    kern += "".join(line + "\n" for k, (_, m) in enumerate(side) for line in _side_lines(k, *m))
    kglb = {"cuda": cuda, "seg": cuda.jit(device=True)(glb["seg"])}
    kglb.update({f"s{k}": loop.gen.body(dtype) for k, (loop, _) in enumerate(side)})
    _load(kern, f"<{prefix}kernel of the CUDA step>", kglb)
    kglb["k"].__name__ = prefix + "_".join(n.partition(".")[2] for n in names)[:80]
    return cuda.jit(kglb["k"])


def _load(src: str, where: str, glb: dict) -> dict:
    """The generated module `src` loaded into `glb` (a kernel's source, a loop block's host part):
    the one place this file runs generated code."""
    exec(compile(src, where, "exec"), glb)
    return glb



class Segment:
    """The joined kernel of one spec: its members' loops and launchers, made at first use."""

    def __init__(self, spec):
        self.launchers, self.members, self.side = [], [], []
        for kernel, pos, *side in spec:
            launcher, loop, over, K, formed = _member(kernel, "fused")
            self.launchers.append((launcher, tuple(pos)))
            m = (loop, (loop.shape, formed, tuple(pos), pos[over], None if K is None else pos[K]))
            (self.side if side else self.members).append(m)
        self.overs = tuple(m[3] for _, m in self.members)
        self.spread = any(m[0] != "rows" or m[1] for _, m in self.members)
        self.n = 1 + max(p for _, pos in self.launchers for p in pos)
        self.names = tuple(m[0] for m in spec)
        self._kernels, self.failed = {}, False   # failed: a joined kernel did not compile

    def kernel(self, dtype):
        """The joined kernel for arrays of `dtype` (a member's body may differ by dtype: a noise
        fill's), made at its first use."""
        if dtype not in self._kernels:
            src = fusion.row_source([m for _, m in self.members], self.n)
            self._kernels[dtype] = _kernel(self.members, dtype, src, [f"a{i}" for i in range(self.n)], "",
                                           f"a{self.overs[0]}.shape[0]", "joined_", self.names, self.side)
        return self._kernels[dtype]

    def _extent(self, args, R, W) -> int:
        """The threads of a launch: the rows' lanes, or a side member's loop where it is longer."""
        n = R * W
        for _, (shape, _, _, over, K) in self.side:
            a = args[over]
            n = max(n, a.shape[0] if shape == "rows" else
                    a.shape[0] * (a.shape[1] if shape == "cells" else a.shape[1] // args[K]))
        return n

    def __call__(self, *args):
        R = args[self.overs[0]].shape[0]
        if self.failed or any(args[o].shape[0] != R for o in self.overs):   # not one set of rows: one launch each
            self.one_by_one(args)
            return
        W = 1
        if self.spread:
            widest = max((a.shape[1] for a in args if getattr(a, "ndim", 0) == 2), default=0)
            W = L.joined_lanes(R, max(args[o].shape[1] if args[o].ndim == 2 else 0 for o in self.overs), widest)
        dtype, n = args[self.overs[0]].dtype, self._extent(args, R, W)
        if dtype in self._kernels:
            L.run(self._kernels[dtype], n, W, *args)
            return
        try:   # the first launch compiles the joined kernel
            L.run(self.kernel(dtype), n, W, *args)
        except NumbaError as exc:   # the members one by one from now on, said once
            self.failed = True
            warnings.warn(f"ppl: the CUDA step launches {', '.join(self.names)} one by one: their joined kernel did "
                          f"not compile ({_first_line(exc)})",
                          RuntimeWarning, stacklevel=3)
            self.one_by_one(args)

    def one_by_one(self, args):
        for launcher, pos in self.launchers:
            launcher(*(args[p] for p in pos))


class Steps:
    """The kernel of one loop block (`stepped`): its members' loops, launchers and the rows they
    run over, made at first use; its scratch storages (a fold's per-step rows, float64) and the
    folds after it."""

    def __init__(self, spec):
        self.length, self.reverse, self.n, self.names, self.folds, self.source, host = spec
        self.members, made = [], []
        for kernel in self.names:
            launcher, loop, over, K, formed = _member(kernel, "stepped")
            self.members.append((loop, (loop.shape, formed)))
            made.append((launcher, over))
        host = _load(host, "<host part of a CUDA loop block>", {"np": np})
        # (launcher, its arguments at a step, the index of its loop's, whether it runs at a step)
        self.launchers = [(launcher, host[f"args{k}"], over, host[f"test{k}"])
                          for k, (launcher, over) in enumerate(made)]
        self.fold_rows = [host[f"rw{i}"] for i in range(len(self.folds))]   # a fold's rows' weights
        self.fold_args = [host[f"fold{i}"] for i in range(len(self.folds))]   # (rw, state, decay, update)
        self.spread = any(m[0] != "rows" or m[1] for _, m in self.members)
        self.order = range(self.length - 1, -1, -1) if self.reverse else range(self.length)
        self._kernels, self._rows, self._scratch, self._slots, self.failed = {}, {}, {}, None, False

    def kernel(self, dtype):
        if dtype not in self._kernels:
            params = [f"a{i}" for i in range(self.n)] + [f"c{i}" for i in range(len(self.folds))]
            self._kernels[dtype] = _kernel(self.members, dtype, self.source, params, ", R_", "R_", "steps_",
                                           self.names)
        return self._kernels[dtype]

    def _with_scratch(self, args):
        """args and the scratch storages: each fold's rows of every step (float64, made once per
        rows, before any capture: a step runs once before it is captured)."""
        if not self.folds:
            return args
        rows = tuple(rw(args, self.order[0]).shape[0] for rw in self.fold_rows)
        if rows not in self._scratch:
            self._scratch[rows] = tuple(cuda.device_array(self.length * R, np.float64) for R in rows)
        return (*args, *self._scratch[rows])

    def _fold(self, full):
        """Each fold after the steps (kernels/cuda/products.py's moving_average_fold)."""
        from .products import moving_average_fold
        if self._slots is None:
            self._slots = [cuda.to_device(np.array(slots, np.int64)) for slots in self.folds]
        for i, fold in enumerate(self.fold_args):
            rw, state, decay, update = fold(full, self.order[0])
            moving_average_fold(full[self.n + i], rw, state, self._slots[i], decay, update)

    def rows(self, full):
        """(rows, the widest loop array's columns, the widest argument's, the dtype) that every member
        runs over at each step, or None where they differ (read at the first and last steps a
        member runs at)."""
        key = tuple((getattr(a, "shape", None), str(getattr(a, "dtype", ""))) for a in full)
        if key not in self._rows:
            seen = set()
            for _, args, over, test in self.launchers:
                for it in {self.order[0], self.order[-1]}:
                    if test(full, it):
                        a = args(full, it)[over]
                        seen.add((a.shape[0], a.shape[1] if a.ndim == 2 else 0, a.dtype))
            R = {x[0] for x in seen}
            widest = max((a.shape[1] for a in full if getattr(a, "ndim", 0) == 2), default=0)
            self._rows[key] = (R.pop(), max(x[1] for x in seen), widest, next(iter(seen))[2]) if len(R) == 1 else None
        return self._rows[key]

    def __call__(self, *args):
        full = self._with_scratch(args)
        at = None if self.failed else self.rows(full)
        if at is None:
            self.one_by_one(full)
            return
        R, cols, widest, dtype = at
        W = L.joined_lanes(R, cols, widest) if self.spread else 1   # a thread per row of a narrow simulation
        try:   # the first launch compiles the kernel
            L.run(self.kernel(dtype), R * W, W, R, *full)
        except NumbaError as exc:   # the steps from Python from now on, said once
            self.failed = True
            warnings.warn(f"ppl: the CUDA step runs the loop of {', '.join(self.names)} step by step: its kernel did "
                          f"not compile ({_first_line(exc)})",
                          RuntimeWarning, stacklevel=3)
            self.one_by_one(full)
            return
        self._fold(full)

    def one_by_one(self, full):
        """Each step's members launched in turn from Python (the loop as the step printed it), then
        the folds."""
        for it in self.order:
            for launcher, args, _, test in self.launchers:
                if test(full, it):
                    launcher(*args(full, it))
        self._fold(full)


_STEPS = {}   # spec -> Steps


def stepped(spec, *args):
    """The loop block of ``spec`` (``(length, reverse, n, members, folds, source, host)``) on ``args``
    as one kernel: the same result as its steps' members launched in turn."""
    st = _STEPS.get(spec)
    if st is None:
        st = _STEPS[spec] = Steps(spec)
    st(*args)


def fused(spec, *args):
    """The members of ``spec`` (``(("family.name", argument positions), ...)``) on ``args``, as one
    kernel: the same result as launching each in turn."""
    seg = _SEGMENTS.get(spec)
    if seg is None:
        seg = _SEGMENTS[spec] = Segment(spec)
    seg(*args)
