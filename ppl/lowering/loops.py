"""Loop blocks: the body of a `ppl.scan` (ppl/language/scan.py) lowered once and printed as a
loop over its steps (ir.Loop), so the step's source and its compile time do not grow with the
loop's length.

Storage. A buffer the forward walk makes inside the body (a node's values and cotangents, its
noise, an estimator's per-draw buffers, a per-step cost's rows) holds every step: `length` times
its rows (`<name>__T`, Layout rows `R*length`), bound at the top of each step to that step's rows
under the buffer's own name, so the body's code is the code of one step. Buffers the backward
walk makes there are scratch of one step. On the CPU a buffer no other step and no backward step
reads is bound to its first step's rows in a gradient call (`one_step_storage`): the steps'
working set stays one step's. The state an estimator keeps for a body node (a
running baseline) is kept per step index (a baseline of step t learns from step t of earlier
calls); its parameters are shared by the steps.

Forward: each step copies the carry in (init at step 0, the carry's node of the previous step
after), reads its x, runs the body. After the loop: the outputs (the carry of the last step; the
per-step outputs side by side, `stack_steps`), and each per-step cost's rows summed over the
steps (`sum_steps`) for the loss.

Backward: the steps in reverse. A step's carry cotangent is added into the carry's node at the
previous step (init's at step 0), as reverse mode through JAX's scan does. The learning signal of
a body node that reaches the carry or an output (`LoopInfo.future`) adds the running sum F of the
costs the carry reaches at the later steps and of those after the loop: F starts as the latter
and adds each step's carry costs once the step's backward is done.

Random numbers: step t of the i-th random node draws stream 16 i + k + 16 N t (N: the model's
random nodes), so every step's noise is its own (ppl/analysis/loops.py checks the 32 bits).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..calls import KERNELS, Const, View, call, code
from ..errors import ModelError
from ..estimators.protocol import joined_by
from ..language.scan import segment_steps
from . import ir
from .layout import PerStep


def check_loop_estimators(an, choices, objective: str):
    """Estimators whose extra rows relax the graph below them (REBAR) are not lowered in loops,
    nor the importance-weighted bound (its terms are a draw's whole cost)."""
    if an.loops and objective == "iwae":
        raise ModelError(f"objective='iwae' with ppl.scan '{an.loops[0].loop.name}': the importance-weighted "
                         f"bound is not lowered through loops; train the ELBO (objective='elbo')")
    for info in an.loops:
        for n in joined_by(info.loop.body, choices, "relaxed"):
            raise ModelError(f"{n.kind} '{n.name}' (in the body of ppl.scan '{info.loop.name}'): estimator "
                             f"'{choices[n][0].estimator}' relaxes the graph below its node in its extra "
                             f"rows, across the later steps, which loops do not lower; choose 'disarm', "
                             f"'score', 'mvd' or another estimator for '{n.name}'")

STORE = "__T"   # the suffix of a per-step buffer's storage


class Loops:
    """The lowering's part for loop blocks (the walk opens and closes them)."""

    def _init_loops(self):
        # each random node's first noise stream (stream)
        self.stream_base = {n: 16 * i for i, n in enumerate(x for x in self.an.order if x.is_stochastic)}
        self.loop = None            # the open ir.Loop, or None
        self.loop_info = None       # its analysis (analysis/loops.LoopInfo)
        self.loop_alloc = False     # buffers made now hold every step (the forward walk in a body)
        self.per_step: dict = {}    # buffer name -> its storage's name
        self.one_step: set = set()  # the per-step buffers no other step reads (one_step_storage)
        self.kept_steps: set = set()   # the per-step state values (step_state): never one step's
        self.future_sum: dict = {}  # LoopInfo -> its running sum F of the later steps' costs (1D)
        self.cost_total: dict = {}  # a body's cost head -> its rows summed over the steps (1D)
        self.slabs: dict = {}       # a checkpointed loop's storage -> its K slots (ir.Loop)
        self.ckpts: dict = {}       # LoopInfo -> its ir.Checkpoint
        self.checkpoints_allowed = True   # the CPU target's lowering (compiler pipeline)
        self._cost_total_at: dict = {}    # a body's cost head -> the ws1 index of its sum

    def body_loop(self):
        """The ppl.scan whose body is being lowered (language.nodes' loop: length, carries)."""
        return self.loop_info.loop

    def open_steps(self) -> int:
        """The steps of the loop whose body is being lowered; 1 outside a loop."""
        return self.loop_info.loop.length if self.loop is not None else 1

    def future_of(self, info):
        """The running sum F of the later steps' costs of the loop `info` (1D), or None."""
        return self.future_sum.get(info)

    def summed_over_steps(self, head):
        """A body cost's rows summed over its loop's steps (1D), or None (step_totals)."""
        return self.cost_total.get(head)

    def walk_to(self, node, reverse: bool = False):
        """Open or close the loop block as the walk reaches `node` (None: the walk's end), and
        point `section` where the node's code goes."""
        info = self.an.loop_of(node)
        if self.loop is not None and info is not self.loop_info:
            self.close_loop()
        if info is not None and self.loop is None:
            self.open_loop(info, reverse)
        b = self.builder
        b.section = self.loop.body if self.loop is not None else (b.bwd if reverse else b.fwd)

    def open_loop(self, info, reverse: bool):
        parent = self.builder.bwd if reverse else self.builder.fwd
        if reverse and info.future:   # F: the costs after the loop, then each step's carry costs
            self.builder.section = parent
            F = self.future_sum[info] = self.buf1(f"F_{info.loop.name}")
            self.emit(call(KERNELS.rows.zero1, F))
            for c in info.post_costs:
                self.emit(call(KERNELS.rows.add_rows, f'c_{c.name}', F))
        if not reverse:
            K = self.checkpoint_steps(info)
            if K is not None:
                self.ckpts[info] = ir.Checkpoint(K, info.loop.length)
        self.loop = ir.Loop(info.loop.length, reverse, self.per_step, self.slabs, self.ckpts.get(info), self.one_step)
        self.loop_info, self.loop_alloc = info, not reverse
        parent.append(self.loop)

    def close_loop(self):
        info = self.loop_info
        if not self.loop.reverse and hasattr(self, "end_of_step"):   # the array lowering's tangents
            self.builder.section = self.loop.body
            self.end_of_step(info)
        if self.loop.ckpt is not None:
            (self._close_reverse_segments if self.loop.reverse else self._close_forward_segments)(info)
        if self.loop.reverse and info in self.future_sum:   # this step's carry costs join F for the steps before
            self.builder.section = self.loop.body
            for c in info.carry_costs:
                self.emit(call(KERNELS.rows.add_rows, self.cost_rows(c), self.future_sum[info]))
        self.loop = self.loop_info = None
        self.loop_alloc = False

    @contextmanager
    def outside(self):
        """Emit and allocate before the open loop block (run once, not per step): a value of a node
        outside the body copied onto the rows the body reads it on."""
        if self.loop is None:
            yield
            return
        loop, info, alloc, section = self.loop, self.loop_info, self.loop_alloc, self.builder.section
        self.loop, self.loop_alloc, self.builder.section = None, False, loop.pre
        try:
            yield
        finally:
            self.loop, self.loop_info, self.loop_alloc, self.builder.section = loop, info, alloc, section

    # ----- names of a step's rows
    def storage(self, name: str) -> str:
        """The storage of a per-step buffer (all its steps), or the buffer itself."""
        return self.per_step.get(name, name)

    def _slots(self, name: str):
        """K where the storage of the body buffer `name` keeps K steps (allocated or to be, in
        the open checkpointed loop), else None."""
        full = self.storage_of(name)
        if full in self.slabs:
            return self.slabs[full]
        ck = self.loop.ckpt if self.loop is not None else None
        if ck is not None and not any(str(name).endswith("_" + y.name) for y in self.loop_info.loop.ys):
            return ck.K
        return None

    def previous_step(self, name: str, length: int) -> str:
        K = self._slots(name)
        if K is not None:
            return ir.slot_rows(self.storage_of(name), K, code("{it} - 1", it=ir.LOOP_VAR))
        return ir.step_rows(self.storage_of(name), length, shift=-1)

    def last_step(self, name: str, length: int) -> str:
        K = self._slots(name)
        full = self.storage_of(name)
        return ir.last_rows(full, length) if K is None else ir.slot_rows(full, K, length - 1)

    # ----- checkpointed loops (ir.Loop, ir.Checkpoint)
    def checkpoint_steps(self, info):
        """K, the steps of a checkpointed loop's segments, or None (every step kept): the rule of
        language/scan.py's segment_steps, where the loop can be checkpointed (by default; asked
        for, a loop that cannot is an error)."""
        K = segment_steps(info.loop, np.dtype(self.dtype).itemsize)
        why = None if K is None else self._not_checkpointable(info)
        if why is not None and info.loop.checkpoint is not None:
            raise ModelError(f"ppl.scan '{info.loop.name}' (checkpoint={info.loop.checkpoint}): {why}; use "
                             f"checkpoint=False")
        return K if why is None else None

    def _not_checkpointable(self, info):
        if not self.checkpoints_allowed:
            return "checkpointed scans are lowered for the CPU target"
        for n in joined_by(info.loop.body, self.choices, "alternative"):
            return (f"'{n.name}' (estimator '{self.choices[n][0].estimator}') keeps a path across the steps that "
                    f"running a segment again would draw twice")
        return None

    def _close_forward_segments(self, info):
        """After each step: its per-step costs added to their sums; at the end of a segment (but the
        last), the carry's nodes saved for the reverse pass."""
        ck, loop, lp = self.loop.ckpt, self.loop, info.loop
        self.loop_alloc = False   # buffers made now are not per step
        for c in self.model.costs:
            if c in info.body:
                tot = self._cost_sum(c)
                self._emit_into(loop.pre, call(KERNELS.rows.zero1, tot))
                self._emit_into(loop.once, call(KERNELS.rows.add_rows, self.cost_rows(c), tot))
        saved = max(ck.segments - 1, 1)
        for o in lp.carry_out:
            src = self.stored_values(o)
            buf = self.buf2(f"ck_{o.name}", o.width, rows=PerStep(self._rows(self.plan.lay.get(o, self.plan.FULL)), saved))
            n = code("({b}.shape[0] // {S})", b=buf, S=saved)
            at = code("(({it} + 1) // {K} - 1)", it=ir.LOOP_VAR, K=ck.K)
            into = code("{b}[{at} * {n}:({at} + 1) * {n}]", b=buf, at=at, n=n)
            with self._emitting_into(loop.once):
                self.emit_if(code("({it} + 1) % {K} == 0 and {it} + 1 < {T}", it=ir.LOOP_VAR, K=ck.K, T=lp.length),
                             [call(KERNELS.core.copy_fwd, src, into)])
            ck.saved.append((buf, self.storage(src)))

    def _close_reverse_segments(self, info):
        """After each step backward: its slots of the cotangents zeroed for the step K earlier."""
        used = {name for st in ir.flatten(self.loop.body) for name, _, _ in ir._stmt_names(st)}
        for name, full in self.per_step.items():
            if name in used and full in self.slabs and name.startswith("g"):
                self._emit_into(self.loop.body, call(KERNELS.rows.zero2, name))

    def _emit_into(self, section: list, line):
        """Emit a statement into `section`."""
        with self._emitting_into(section):
            self.emit(line)

    @contextmanager
    def _emitting_into(self, section: list):
        """What is emitted inside goes to `section`."""
        saved, self.builder.section = self.builder.section, section
        try:
            yield
        finally:
            self.builder.section = saved

    def per_step_rows(self, name: str, rows) -> tuple:
        """(the head's name, the Layout rows) of a buffer made now: its storage and `length`
        times the rows when it holds every step (K times in a checkpointed loop, but for the
        buffers of its per-step outputs, which the stacked outputs read after the loop)."""
        if not self.loop_alloc:
            return name, rows
        full = self.storage_of(name)
        self.per_step[name] = full
        K = self._slots(name)
        if K is not None:
            self.slabs[full] = K
            return full, PerStep(rows, K)
        return full, PerStep(rows, self.loop_info.loop.length)

    def one_step_storage(self):
        """Pass "one step's slot" (the CPU step's, at the lowering's finish): a per-step buffer
        whose storage no statement names (no other step's rows read: the carry's previous step,
        the last step, the stacked outputs) and which no reverse loop block reads is bound to its
        first step's rows at every step of a gradient step (mode != 0): the loop's working set is
        one step's, not `length` steps' (the forward values nobody reads back, the noise, an
        estimator's per-draw buffers). A forward-only call (mode 0: `Program.sample`'s
        trajectories, the loss) keeps every step."""
        if not self.checkpoints_allowed or not self.per_step:
            return
        b = self.builder
        named = {n for st in ir.flatten([*b.fwd, *b.bwd]) for n, _, _ in ir._stmt_names(st)}
        backward = {n for loop in b.bwd if isinstance(loop, ir.Loop)
                    for st in ir.flatten([loop]) for n, _, _ in ir._stmt_names(st)}
        self.one_step.update(name for name, full in self.per_step.items()
                             if full not in self.slabs and full not in named and name not in backward
                             and name not in self.kept_steps)

    def stream(self, node, k: int) -> str:
        """The noise stream of the node's k-th noise (a body node's: of the step)."""
        base = self.stream_base[node] + k
        if self.an.loop_of(node) is None:
            return Const(str(base))
        return ir.per_step(16 * len(self.stream_base), base)

    def per_step_offset(self, off: int, size: int):
        """An offset in `state` of a value kept per step index in the open loop (or the offset)."""
        return off if self.loop is None else ir.per_step(size, off)

    # ----- the loss: per-step costs summed over the steps
    def step_totals(self):
        """Each body cost's rows summed over its loop's steps (for the loss and the signals of
        the nodes outside the loop that reach it)."""
        for info in self.an.loops:
            for c in self.model.costs:
                if c in info.body:
                    if c not in self.cost_total:   # a checkpointed loop's: summed as its steps run
                        self.emit(call(KERNELS.core.sum_steps, self.storage_of(self.cost_rows(c)), info.loop.length,
                                       self._cost_sum(c)))
                    for j, (name, idx) in enumerate(self.builder.L.costs):   # loss_parts reads the sum
                        if name == c.attrs["cost_name"]:
                            self.builder.L.costs[j] = (name, self._cost_total_at[c])

    def _cost_sum(self, c):
        """The buffer of a body cost's rows summed over the steps (`cost_total`), and its index."""
        tot = self.cost_total[c] = self.buf1(f"cT_{c.name}")
        self._cost_total_at[c] = len(self.builder.L.ws1) - 1
        return tot

    def loop_length(self, out) -> int:
        """The steps of the loop whose output node (scan_last / scan_stack) `out` is."""
        return next(lp.length for lp in self.model.loops if lp.name == out.attrs["of_loop"])

    def step_state(self, name: str, off: int, steps: int) -> None:
        """A state value kept per step (from `off` in `state`, one number a step) as a per-step
        buffer `name` of the open loop: its storage the view of every step's number, bound at the
        top of each step as the step's (never one step's slot for them all: each is kept)."""
        full = self.storage_of(name)
        self.builder.bind(full, "view", expr=f"rows.flat_view(state, {off}, ({steps},))")
        self.builder.declare(View(name, None))
        self.per_step[name] = full
        self.kept_steps.add(name)

    def storage_of(self, name: str) -> str:
        """The storage (all steps) of a body node's buffer."""
        return f"{name}{STORE}"
