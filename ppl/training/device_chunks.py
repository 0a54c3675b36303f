"""fit's chunks of training steps on the CUDA target: one training step (the batch's rows
gathered, the step, the gradient's check, the optimiser's update) captured once as a CUDA graph
(runtime/cuda_graph.py) and replayed for each step of a chunk, with one wait for the device and one
copy back per chunk instead of some thirty launches from Python and a copy back per step.

What changes from step to step lives on the device (kernels/cuda/clock.py): the clock (the step,
its slot in the chunk, the optimiser's update count), the chunk's batch indices and learning rates
(copied in before the chunk), and the record of each step's sink words (copied back after it).
A step whose check fails, whose loss is not finite or whose gradient is not finite stops the
chunk's result there: the parameters, estimator state and optimiser state go back to the chunk's
start (copies on the device) and the chunk's steps are run again one by one from Python
(fit.PythonSteps), which raise the failing step's own error as a fit without chunks would.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from numba import config

from ..errors import ModelError
from .chunks import aimed, chunk_length


class DeviceChunks:
    split = False
    what = "fit's CUDA step"   # what its first chunk compiles (said when long: runtime/notice.py), and why
    note = "each of its kernels compiled for the device at its first launch, then the step captured as a graph"
    SECONDS = 0.2   # aim of one chunk's wall time (as the CPU loop's, chunks.Chunks)
    MAX = 512       # steps of one chunk at most (the rows of the device's index and record buffers)

    @classmethod
    def make(cls, prog, optimizer, batches, batch_size, one, nopython, steps):
        """The chunks for this fit on a CUDA program, or None for the per-step loop: never with
        nopython=False, nor for a run of one step, a user's optimiser, clip_norm (the per-step
        loop says it is not available), a program checking its steps, or data too large to stay
        on the device."""
        from . import optim
        if nopython is False or steps < 2:
            return None
        if type(optimizer) not in (optim.SGD, optim.Momentum, optim.Adam) or optimizer.clip_norm is not None \
                or prog.entry is not prog.module.step:
            if nopython:
                raise ModelError("fit: nopython=True on the CUDA target needs one of ppl.optim's SGD, Momentum, Adam "
                                 "without clip_norm; leave nopython=None to take the per-step loop")
            return None
        B = batches.batch_size if batches is not None else int(batch_size)
        d_all, inputs = prog.resident(batches, B) if batches is not None else ((), ())
        if d_all is None:
            return None
        return cls(prog, optimizer, batches, B, one, d_all, inputs)

    def __init__(self, prog, optimizer, batches, B, one, d_all, inputs):
        """d_all: the data on the device (CudaProgram.resident), inputs: the B-row buffers a
        step's batch is gathered into (both empty without data)."""
        from numba import cuda
        self.cuda, self.prog, self.opt, self.batches, self.B, self.one = cuda, prog, optimizer, batches, B, one
        mod = prog.module
        self.words = int(mod.SINK_WORDS) + 1   # the step's words, then the gradient's non-finite count
        self.loss_words = tuple(mod.SINK_LOSS)
        self.check_words = [k for k in range(mod.SINK_WORDS) if k not in self.loss_words]
        self.sink = cuda.to_device(np.zeros(self.words, np.float64))
        self.record = cuda.device_array((self.MAX, self.words), np.float64)
        self.clock = cuda.to_device(np.zeros(3, np.int64))
        self.done = cuda.to_device(np.zeros(1, np.int32))   # the last kernel's blocks' tickets
        self.rates = cuda.device_array(self.MAX, np.float64)
        self.index = cuda.device_array((self.MAX, B), np.int64) if batches is not None else None
        self.d_all, self.buffers = d_all, inputs
        self.args = prog._step_args(inputs, B)
        self.replay = None
        self.snapshot = None
        self.n = 16

    # ----- one training step, launched on arrays that stay the same
    def _live(self):
        """The arrays a chunk changes and a failure restores: parameters, estimator state and the
        optimiser's state."""
        p = self.prog
        return [p.d_theta, p.d_state, *self.opt._arrays().values()]

    def step(self):
        """Gather the batch, run the step, then its last kernel: the gradient's check, the
        optimiser's update and the clock moved on (kernels/cuda/clock.py)."""
        from ..kernels.cuda import clock as K
        from . import optim
        o, p = self.opt, self.prog
        for src, dst in zip(self.d_all, self.buffers):
            K.gather_rows_at(src, self.index, self.clock, dst)
        p.module.step(*self.args, self.one.useed, self.clock, 1, self.sink)
        end = (self.sink, self.record, self.done)
        if type(o) is optim.Adam:
            K.adam_end(p.d_theta, p.d_grad, o.m, o.v, self.rates, o.beta1, o.beta2, o.eps, self.clock, *end)
        elif type(o) is optim.Momentum:
            K.momentum_end(p.d_theta, p.d_grad, o.vel, self.rates, o.mu, self.clock, *end)
        else:
            K.sgd_end(p.d_theta, p.d_grad, self.rates, self.clock, *end)

    # ----- a chunk
    def length(self, t, total, eval_every, checkpoint_every) -> int:
        """Steps of the next chunk: about SECONDS of work (at most MAX), ending at the next
        evaluation, checkpoint or the end of training."""
        return chunk_length(t, min(self.n, self.MAX), total, eval_every, checkpoint_every)

    def _load(self, t, n):
        """The chunk's batch indices, learning rates and clock copied to the device; the state it
        starts from kept on the device."""
        o, p = self.opt, self.prog
        sent = [(self.rates[:n], np.array([o.rate(o.t + k) for k in range(n)], np.float64)),
                (self.clock, np.array([t, 0, o.t], np.int64))]
        if self.index is not None:
            sent.append((self.index[:n], self.batches.rows(t, n).reshape(n, self.B)))
        for d, a in sent:
            d.copy_to_device(a)
            p.transfers["host_to_device"] += 1
            p.transfers["bytes"] += a.nbytes
        live = self._live()
        if self.snapshot is None:
            self.snapshot = [self.cuda.device_array_like(a) for a in live]
        for keep, a in zip(self.snapshot, live):
            keep.copy_to_device(a)

    def _restore(self):
        for keep, a in zip(self.snapshot, self._live()):
            a.copy_to_device(keep)

    def run(self, t, n):
        """Train steps t .. t + n - 1: (their losses, None), or (the losses of the steps before
        the failing one, (that step, its ModelError or its non-finite loss))."""
        from ..runtime.cuda_graph import Replay
        n = min(n, self.MAX)
        o, p = self.opt, self.prog
        t_start, updates = time.perf_counter(), o.t
        self._load(t, n)
        done = 0
        if self.replay is None:   # the first chunk: one step as it is (its kernels compiled), then the capture
            self.step()
            done = 1
            self.replay = Replay(self.step)
            if self.replay.why is not None and not config.ENABLE_CUDASIM:
                warnings.warn(f"fit: the CUDA training step runs kernel by kernel: {self.replay.why}", stacklevel=3)
        self.replay.run(n - done)
        rec = np.empty((n, self.words))
        p._to_host(self.record[:n], rec)
        losses = np.zeros(n)
        for w in self.loss_words:   # in the step's order, as the step adds them
            losses += rec[:, w]
        bad = ~np.isfinite(losses) | (rec[:, self.words - 1] != 0)
        for w in self.check_words:
            bad |= rec[:, w] != 0
        p.mark_device_newer()
        if bad.any():   # back to the chunk's start; its steps again one by one, to the failing one's error
            self._restore()
            o.t = updates
            return self._one_by_one(t, n)
        o.t = updates + n
        if n == self.n:   # a full chunk: aim the next one at SECONDS
            self.n = aimed(n, time.perf_counter() - t_start, self.SECONDS, self.MAX)
        return losses, None

    def _one_by_one(self, t, n):
        losses = []
        for k in range(n):
            out, failed = self.one.run(t + k)
            losses += out
            if failed is not None:
                return np.array(losses), failed
        return np.array(losses), None
