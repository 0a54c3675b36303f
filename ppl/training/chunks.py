"""fit's nopython loop: chunks of training steps in one call of kernels/cpu/train.py's loop
(ppl/training/fit.py decides when; the per-step Python loop is the reference)."""
from __future__ import annotations

import time

import numpy as np

from ..errors import ModelError
from ..kernels.numba_compat import is_cached
from ..runtime import first_steps
from ..runtime.notice import CPU_NOTE


class Chunks:
    """The nopython training loop (kernels/cpu/train.py) for one fit: the step taken as a
    first-class function of its compiled signature, the data arrays, the batch buffers and the
    optimiser's state; `run(t, n)` trains steps t .. t + n - 1 in one call."""

    SECONDS = 0.2   # aim of one chunk's wall time (the progress bar redraws at most every 0.25 s)
    what = "fit's nopython loop"   # what its first chunk compiles (said when long: runtime/notice.py)
    note = CPU_NOTE                # and why

    NEW_SIGNATURE_STEPS = 10_000   # auto: a loop not yet compiled for this step signature pays off

    @classmethod
    def make(cls, prog, optimizer, batches, batch_size, useed, nopython, steps, split=False):
        """The loop for this fit, or None for the per-step loop: always with nopython=True,
        never with False; with None (auto) when the loop for the step's signature is compiled
        already (in this process or on disk: ~10 ms to load) or the run, with the program's earlier
        runs in the per-step loop, is long enough (NEW_SIGNATURE_STEPS) to repay its first compile
        (about 1 s; it saves 15-60 us of Python per step): many short fits of one program (a sweep's,
        a benchmark's) take the loop once their steps add up."""
        from . import optim
        if nopython is False or steps < 2:
            return None
        if getattr(prog, "target", "cpu") != "cpu" or type(optimizer) not in (optim.SGD, optim.Momentum, optim.Adam):
            if nopython:
                raise ModelError("fit: nopython=True needs a CPU program and one of ppl.optim's SGD, Momentum, "
                                 "Adam; leave nopython=None to take the per-step loop elsewhere")
            return None   # the CUDA program and user optimisers keep the per-step loop
        if nopython is None and not split and getattr(prog, "per_step_loop_steps", 0) + steps < cls.NEW_SIGNATURE_STEPS:
            # a step neither compiled nor cached has no compiled loop either: the per-step loop, without
            # compiling the step to ask the loop's cache (it may run interpreted: runtime/first_steps.py)
            args = prog.batch_args(batches, 0) if batches is not None else prog.args(None, batch=int(batch_size))
            if not is_cached(prog.module.step, first_steps.signature(args)):
                prog.per_step_loop_steps = getattr(prog, "per_step_loop_steps", 0) + steps
                return None
        loop = cls(prog, optimizer, batches, batch_size, useed, split)
        if nopython is None and not loop.compiled():
            ran = getattr(prog, "per_step_loop_steps", 0)   # this program's steps in the per-step loop so far
            if ran + steps < cls.NEW_SIGNATURE_STEPS:
                prog.per_step_loop_steps = ran + steps
                return None
        return loop

    def __init__(self, prog, optimizer, batches, batch_size, useed, split=False):
        from . import optim
        from ..kernels.cpu import train as cpu_train   # imported when a fit needs it, not with ppl
        self.K = K = cpu_train
        self.prog, self.opt, self.batches, self.useed = prog, optimizer, batches, useed
        if batches is not None:
            self.data, _ = prog._inputs(batches.arrays, None)   # every row checked once (names, widths, finite)
            self.B = batches.batch_size
        else:
            self.data, self.B = (), int(batch_size)
        dt = prog.dtype
        self.split = bool(split)
        if self.split:   # two halves of rows at once (train_chunk_rows), each with its own buffers
            self.B0, self.B1 = (self.B + 1) // 2, self.B // 2
            self.inputs = tuple(np.zeros((self.B0, a.shape[1]), dt) for a in self.data)
            self.inputs1 = tuple(np.zeros((self.B1, a.shape[1]), dt) for a in self.data)
            self.ws2, self.ws1 = prog.workspace(self.B0)
            ws21, ws11 = prog.workspace(self.B1)
            self.ws21, self.ws11 = tuple(a.copy() for a in ws21), tuple(a.copy() for a in ws11)
            self.grad1 = np.zeros_like(prog.grad_buffer)
            self.state1, self.state0 = prog.state.copy(), prog.state.copy()
            self.halves = (self.B0, self.B1, self.inputs, self.ws2, self.ws1)
            self.whole = None   # the whole batch's buffers (set_whole), made when first asked
        else:
            self.inputs = tuple(np.zeros((self.B, a.shape[1]), dt) for a in self.data)
            self.ws2, self.ws1 = prog.workspace(self.B)
        optimizer._ensure(prog.theta)
        o = optimizer
        if isinstance(o, optim.Adam):
            self.kind, s1, s2 = K.OPT_ADAM, o.m, o.v
        elif isinstance(o, optim.Momentum):
            self.kind, s1, s2 = K.OPT_MOMENTUM, o.vel, o.vel
        else:
            self.kind, s1, s2 = K.OPT_SGD, prog.theta[:0], prog.theta[:0]
        self.s1, self.s2 = s1, s2
        self.hyper = o.hyper()
        self.done = np.zeros(2, np.int64)
        self.losses = np.zeros(64, np.float64)
        self.n = 16
        self.fn = None
        self.sig = self._signature()

    def _signature(self):
        """train_chunk's argument types for this program (compiles the step if it is not yet)."""
        from numba import typeof, types

        def as_function(disp, args):   # the compiled signature of `disp` for args, as a FunctionType
            sig = tuple(typeof(a) for a in args)
            if sig not in disp.overloads:
                disp.compile(sig)
            return types.FunctionType(disp.overloads[sig].signature)

        p = self.prog
        # optimizer_update returns nothing: its type without compiling it (every optimiser's
        # kernels) just to ask whether the loop is cached; the loop compiles it when it runs
        fupdate = types.FunctionType(types.none(*(typeof(a) for a in (
            self.kind, p.theta, p.grad_buffer, self.s1, self.s2, self.hyper, 0))))
        if self.split:
            fstep = as_function(p.module.step_rows, (p.theta, p.grad_buffer, p.state, self.ws2, self.ws1, self.inputs,
                                                     self.B0, self.useed, np.int64(0), 1, np.int64(0)))
        else:
            fstep = as_function(p.module.step, (p.theta, p.grad_buffer, p.state, self.ws2, self.ws1, self.inputs,
                                                self.B, self.useed, np.int64(0), 1))
        return (fstep, fupdate) + tuple(typeof(a) for a in self._args(0, 0, np.zeros(0, np.int64))[2:])

    def _args(self, t, n, rows):
        """The chunk kernel's arguments for steps t .. t + n - 1 on data rows `rows`: the step,
        the optimiser update, then the arrays and numbers (train_chunk_rows' with the split)."""
        p = self.prog
        tail = (self.useed, np.int64(t), n, self.data, rows, self.kind, self.hyper, self.s1, self.s2, self.opt.t,
                self.losses, self.done)
        if self.split:
            return (p.module.step_rows, self.K.optimizer_update, p.theta, p.grad_buffer, p.state, self.ws2, self.ws1,
                    self.inputs, self.grad1, self.state1, self.state0, self.ws21, self.ws11, self.inputs1, self.B0,
                    self.B1, p.samples) + tail
        return (p.module.step, self.K.optimizer_update, p.theta, p.grad_buffer, p.state, self.ws2, self.ws1, self.inputs,
                self.B) + tail

    def set_whole(self, whole: bool):
        """A split loop's setting: each batch's two halves at once (False) or the whole batch in
        one step on this thread (True; train_chunk_rows with B1 = 0). One compiled loop serves
        both; the whole batch draws the same noise by global row, and its gradient is the
        halves' combined by rows up to rounding."""
        if whole and self.whole is None:
            ws2, ws1 = self.prog.workspace(self.B)
            inputs = tuple(np.zeros((self.B, a.shape[1]), self.prog.dtype) for a in self.data)
            self.whole = (self.B, 0, inputs, ws2, ws1)
        self.B0, self.B1, self.inputs, self.ws2, self.ws1 = self.whole if whole else self.halves

    @property
    def chunk(self):
        """The kernel of this loop: train_chunk, or train_chunk_rows when the batch is split."""
        return self.K.train_chunk_rows if self.split else self.K.train_chunk

    def compiled(self) -> bool:
        """Is the loop for this step signature compiled, in this process or in the disk cache?"""
        return is_cached(self.chunk, self.sig)

    def length(self, t, total, eval_every, checkpoint_every) -> int:
        """Steps of the next chunk: about SECONDS of work, ending at the next evaluation,
        checkpoint or the end of training."""
        return chunk_length(t, self.n, total, eval_every, checkpoint_every)

    def run(self, t, n):
        """Train steps t .. t + n - 1: (their losses (an array, valid until the next run), None), or (the losses of the steps done,
        (failing step, its ModelError or its non-finite loss))."""
        if self.fn is None:
            self.fn = self.chunk.compile(self.sig)
        o = self.opt
        if self.losses.shape[0] < n:
            self.losses = np.zeros(max(n, 2 * self.losses.shape[0]), np.float64)
        rows = self.batches.rows(t, n) if self.batches is not None else np.zeros(0, np.int64)
        t0 = time.perf_counter()
        err = None
        try:
            self.fn(*self._args(t, n, rows))
        except ModelError as e:
            err = e
        k = int(self.done[0])
        o.t += k
        losses = self.losses[:k]   # a view: recorded before the next run
        if err is not None:
            return losses, (t + k, err)
        if self.done[1]:
            return losses, (t + k, float(self.losses[k]))
        if n == self.n:   # a full chunk: aim the next one at SECONDS
            self.n = aimed(n, time.perf_counter() - t0, self.SECONDS)
        return losses, None


def chunk_length(t, n, total, eval_every, checkpoint_every) -> int:
    """Steps of a chunk from step t: n at most, ending at the next evaluation, checkpoint or the
    end of training (each loop's `length`)."""
    end = min(total, t + n)
    for every in (eval_every, checkpoint_every):
        if every:
            end = min(end, (t // int(every) + 1) * int(every))
    return end - t


def aimed(n, dt, seconds, most=None) -> int:
    """The steps of the next chunk after a full one of n steps took dt seconds: about `seconds`
    of work, at most 4 n (and `most`)."""
    k = min(4 * n, int(n * seconds / max(dt, 1e-6)))
    return max(1, k if most is None else min(k, most))
