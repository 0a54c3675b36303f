"""A compiled program on the CUDA target.

The step is the CPU program's generated body with its kernel calls bound to the CUDA
launchers of ppl.kernels.cuda; it is a plain Python function that launches grid-stride
kernels. Parameters, gradient, estimator state, optimiser state and workspaces live on the
device between steps; data is copied once per call. `prog.theta`, `prog.state` and
`prog.grad_buffer` are host mirrors, refreshed on demand: reading `prog.params` pulls the
parameters when the device holds newer ones, and `prog.params[name] = value` pushes them.
Every copy is counted in `prog.transfers` and reported by `explain()`.
"""
from __future__ import annotations

import weakref

import numpy as np

from ..errors import ModelError
from .program import ParamView, Program, all_rows


class _PushingView(ParamView):
    def __init__(self, prog):
        super().__init__(prog.theta, prog.layout)
        self._prog = prog

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        self._prog.push()


class CudaProgram(Program):
    target = "cuda"

    def __init__(self, *args):
        from numba import cuda

        self._cuda = cuda
        self.transfers = {"host_to_device": 0, "device_to_host": 0, "bytes": 0}
        super().__init__(*args)
        self.d_theta = self._to_device(self.theta)
        self.d_grad = self._to_device(self.grad_buffer)
        self.d_state = self._to_device(self.state)
        self._device_newer = False
        self._resident = None   # (a weak reference to fit's Batches, its inputs on the device or None, {B: buffers})

    # ----- host <-> device, counted
    def _to_device(self, a):
        self.transfers["host_to_device"] += 1
        self.transfers["bytes"] += a.nbytes
        return self._cuda.to_device(np.ascontiguousarray(a))

    def _to_host(self, d, out):
        self.transfers["device_to_host"] += 1
        self.transfers["bytes"] += out.nbytes
        d.copy_to_host(out)

    def pull(self):
        """Copy parameters and estimator state to the host mirrors if the device holds newer ones."""
        if self._device_newer:
            self._to_host(self.d_theta, self.theta)
            self._to_host(self.d_state, self.state)
            self._device_newer = False

    def push(self):
        """Copy the host mirrors of parameters and state to the device."""
        self.d_theta.copy_to_device(self.theta)
        self.d_state.copy_to_device(self.state)
        self.transfers["host_to_device"] += 2
        self.transfers["bytes"] += self.theta.nbytes + self.state.nbytes

    def mark_device_newer(self):
        self._device_newer = True

    @property
    def params(self):
        self.pull()
        return _PushingView(self)

    @params.setter
    def params(self, _view):  # Program.__init__ assigns a host view; the property builds its own
        pass

    # ----- workspaces and arguments on the device
    def workspace(self, B: int):
        if B not in self._ws:
            ws2, ws1 = super().workspace(B)
            cuda = self._cuda
            self._ws[B] = (tuple(cuda.to_device(a) for a in ws2), tuple(cuda.to_device(a) for a in ws1))
        return self._ws[B]

    def args(self, data=None, batch=None):
        inputs, B = self._inputs(data, batch)
        return self._step_args(tuple(self._to_device(a) for a in inputs), B)

    def _step_args(self, inputs, B):   # inputs: arrays on the device
        ws2, ws1 = self.workspace(B)
        return (self.d_theta, self.d_grad, self.d_state, ws2, ws1, inputs, B)

    def batch_args(self, batches, t):
        """The step's arguments for step t of fit's `batches` (data.Batches). The data is checked
        and copied to the device once per Batches (it stays there until a fit with other data), and
        each step gathers its rows there: only the batch's row indices travel. Data over a quarter
        of the device's free memory is copied batch by batch instead."""
        idx = batches.rows(t, 1)
        B = idx.shape[0]
        d_all, buffers = self.resident(batches, B)
        if d_all is None:   # the rows gathered on the host, copied per step
            return self._step_args(tuple(self._to_device(a[idx]) for a in self._checked_data(batches)), B)
        from ..kernels.cuda import rows as gpu_rows
        d_idx = self._to_device(idx)
        for src, dst in zip(d_all, buffers):
            gpu_rows.gather_rows(src, 0, d_idx, dst)
        return self._step_args(buffers, B)

    def resident(self, batches, B):
        """fit's data (data.Batches) on the device, (its arrays there, the B-row buffers a step's
        batch is gathered into), or (None, None) when it is over a quarter of the free memory.
        Checked and copied once per Batches."""
        if self._resident is None or self._resident[0]() is not batches:
            self._resident = None
            inputs = self._checked_data(batches)   # every row checked once
            fits = sum(a.nbytes for a in inputs) <= self._free_bytes() / 4
            self._resident = (weakref.ref(batches), tuple(self._to_device(a) for a in inputs) if fits else None, {})
        _, d_all, buffers = self._resident
        if d_all is None:
            return None, None
        if B not in buffers:
            buffers[B] = tuple(self._cuda.device_array((B, a.shape[1]), a.dtype) for a in d_all)
        return d_all, buffers[B]

    def _free_bytes(self):
        try:
            return self._cuda.current_context().get_memory_info()[0]
        except Exception:   # the simulator has no memory figures
            return float("inf")

    def _run(self, data, batch, seed, step, mode):
        from .. import validate as V
        self.check_plate_sized()
        seed = V.seed(seed)
        step = V.integer(step, "step", lo=0, hi=V.SEED_MAX)
        self.pull()
        a = self.args(data, batch)
        loss = self.entry(*a, np.uint64(seed), np.int64(step), mode)
        self.mark_device_newer()  # the step may update estimator state (running baselines)
        return loss, a

    def grad(self, data=None, seed=0, step=0, batch=None):
        loss, _ = self._run(data, batch, seed, step, 1)
        self._to_host(self.d_grad, self.grad_buffer)
        return float(loss), ParamView(self.grad_buffer, self.layout).copies()

    def loss_parts(self, data=None, seed=0, step=0, batch=None) -> dict:
        _, a = self._run(data, batch, seed, step, 0)
        ws1 = [d.copy_to_host() for d in a[4]]
        self.transfers["device_to_host"] += len(ws1)
        rw = ws1[self.layout.rw_index]
        return {name: float(rw @ ws1[i]) for name, i in self.layout.costs}

    def sample(self, data=None, seed=0, step=0, batch=None, nodes=None, configurations: bool = False) -> dict:
        """As Program.sample (one draw per data row and sample: where the step evaluates several
        configurations, the CPU twin's that samples every node once, the same draws)."""
        if self.layout.S > 1 and not configurations:
            return Program.sample(self, data, seed, step, batch, nodes)
        nodes = None if nodes is None else self._node_names(nodes, "sample")
        _, a = self._run(data, batch, seed, step, 0)
        out = {}
        for name, (where, i, rows) in self.layout.values.items():
            if nodes is not None and name not in nodes:
                continue
            out[name] = all_rows((a[5][i] if where == "input" else a[3][i]).copy_to_host(), rows)
            self.transfers["device_to_host"] += 1
        return out

    def gradient_is_finite(self) -> bool:
        """Whether every entry of the gradient on the device is finite: its count of others added
        into a zeroed device word (no copy to the device), one copy back."""
        from ..kernels.cuda import rows as gpu_rows
        from ..kernels.native.launch import sink
        word = sink(1)
        gpu_rows.all_finite_into(self.d_grad, word, 0)
        return bool(word.copy_to_host()[0] == 0)

    def explain(self) -> str:
        t = self.transfers
        return (super().explain() + f"\ntarget: cuda; host<->device transfers so far: {t['host_to_device']} to the "
                f"device, {t['device_to_host']} back ({t['bytes'] / 1e6:.3f} MB)")

    def save(self, path) -> None:
        self.pull()
        super().save(path)

    def load(self, path) -> None:
        super().load(path)
        self.push()
