"""Optimisers that update a program's flat parameter vector in place with jitted kernels.

    opt = ppl.optim.Adam(lr=1e-3)
    loss, _ = prog.grad({"x": batch}, seed=s, step=t)
    opt.step(prog)                       # theta -= update(prog.grad_buffer), in place

The whole theta vector is optimised, so learned estimator state that lives in it (a learned
baseline 'baseline.h', a control variate's weights) is trained by the same loop as the
model. Each optimiser owns its state arrays (velocity, Adam moments, step count); `state()`
and `load_state()` let `ppl.fit` checkpoint and resume them.

SGD uses a Robbins-Monro schedule (Robbins & Monro 1951):
    a_t = a0 / (1 + t / t0)^kappa,  kappa in (0.5, 1]
so that sum_t a_t = inf (the iterates can travel any distance) and sum_t a_t^2 < inf (the
noise of the stochastic gradients averages out). `kernel()` returns an @njit-callable update
for embedding in a user's own nopython loop next to `prog.entry`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import ModelError

from ..kernels.cpu import core as cpu_kernels
from ..kernels.cpu.core import adam_update, momentum_update, sgd_update
from ..kernels.math.optim import robbins_monro_rate
from ..runtime.arena import carve


def _positive(owner: str, name: str, value, allow_zero: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ModelError(f"{owner}: {name} must be a finite number {need}, got {value!r}")
    return v


def _unit(owner: str, name: str, value) -> float:
    v = float(value)
    if not (0.0 <= v < 1.0):
        raise ModelError(f"{owner}: {name} must be in [0, 1), got {value!r}")
    return v


def robbins_monro(a0: float, t0: float = 100.0, kappa: float = 1.0):
    """The step size a_t = a0 / (1 + t/t0)^kappa as a function of t = 0, 1, 2, ..."""
    a0 = _positive("robbins_monro", "a0", a0)
    t0 = _positive("robbins_monro", "t0", t0)
    k = float(kappa)
    if not (0.5 < k <= 1.0):
        raise ModelError(f"robbins_monro: kappa must be in (0.5, 1] so that sum a_t = inf and sum a_t^2 < inf "
                         f"(Robbins & Monro 1951), got {kappa!r}; use e.g. kappa=0.75 or kappa=1.0")
    return lambda t: a0 / (1.0 + t / t0) ** k


class Optimizer:
    """Base: `step(prog)` applies one update from prog.grad_buffer to prog.theta."""

    name = ""

    def __init__(self):
        self.t = 0  # updates applied so far

    def _arrays(self) -> dict:
        return {}

    def _ensure(self, theta: np.ndarray) -> None:
        new = [k for k, a in self._arrays().items() if a is None or a.shape != theta.shape or a.dtype != theta.dtype]
        if not new:   # every step but the first: no block to carve
            return
        for k, a in zip(new, carve([theta.shape] * len(new), theta.dtype)):   # apart in memory (runtime/arena.py)
            setattr(self, k, a)

    def step(self, prog) -> None:
        if getattr(prog, "target", "cpu") == "cuda":  # parameters and state stay on the device
            from numba import cuda

            from ..kernels.cuda import core as gpu
            for k, a in self._arrays().items():
                if a is None or a.shape != prog.theta.shape:
                    a = np.zeros_like(prog.theta)
                if not hasattr(a, "copy_to_host"):  # not yet a device array
                    setattr(self, k, cuda.to_device(np.asarray(a, prog.theta.dtype)))
            self._apply(gpu, prog.d_theta, prog.d_grad)
            self.t += 1
            prog.mark_device_newer()
            return
        self.update(prog.theta, prog.grad_buffer)

    def update(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if theta.shape != grad.shape:
            raise ModelError(f"{self.name}: theta has shape {theta.shape} but the gradient {grad.shape}")
        self._ensure(theta)
        self._apply(cpu_kernels, theta, grad)
        self.t += 1

    def kernel_calls(self, theta: np.ndarray, grad: np.ndarray) -> list:
        """The (kernel, arguments) pairs update(theta, grad) calls, recorded without calling them:
        what a helper process may compile before the first update (ppl/compiler/ahead.py). None
        recorded for an update written outside ppl (it may compute in Python, not in kernels)."""
        owner = next(c for c in type(self).__mro__ if "_apply" in vars(c))
        if owner.__module__ != __name__:
            return []
        self._ensure(theta)
        calls = []

        class Record:
            def __getattr__(self, name):
                kernel = getattr(cpu_kernels, name)
                return lambda *args: calls.append((kernel, args))
        self._apply(Record(), theta, grad)
        return calls

    def state(self) -> dict:
        """Arrays to checkpoint: the step count and every state array."""
        out = {"t": np.array(self.t, np.int64), "kind": np.array(self.name)}
        out.update({k: (v.copy_to_host() if hasattr(v, "copy_to_host") else v)
                    for k, v in self._arrays().items() if v is not None})
        return out

    def load_state(self, st: dict) -> None:
        kind = str(st.get("kind", self.name))
        if kind != self.name:
            raise ModelError(f"the checkpoint holds the state of optimiser '{kind}', not '{self.name}'; resume "
                             f"with the same optimiser or start afresh (resume=False)")
        self.t = int(st["t"])
        for k in self._arrays():
            if k in st:
                setattr(self, k, np.array(st[k]))


class SGD(Optimizer):
    """Plain SGD on a Robbins-Monro schedule a_t = lr / (1 + t/t0)^kappa (t0=None: constant lr)."""

    name = "sgd"

    def __init__(self, lr: float = 0.01, t0: float | None = None, kappa: float = 1.0):
        super().__init__()
        self.lr = _positive("SGD", "lr", lr)
        self.t0 = None if t0 is None else _positive("SGD", "t0", t0)
        self.kappa = float(kappa)
        if t0 is not None:
            robbins_monro(self.lr, self.t0, self.kappa)  # validates kappa
        self._lr = np.zeros(1)

    def rate(self, t: int | None = None) -> float:
        t = self.t if t is None else t
        return self.lr if self.t0 is None else robbins_monro_rate(self.lr, self.t0, self.kappa, float(t))

    def _apply(self, K, theta, grad):
        K.sgd_update(theta, grad, self.rate())

    def kernel(self):
        """@njit `update(theta, grad, t)` for a user's nopython loop (t = 0-based step)."""
        a0, t0, kappa = self.lr, (np.inf if self.t0 is None else self.t0), self.kappa

        @njit
        def update(theta, grad, t):
            sgd_update(theta, grad, robbins_monro_rate(a0, t0, kappa, float(t)))

        return update


class Momentum(SGD):
    """Heavy-ball momentum: vel = mu vel - a_t grad ; theta += vel, with a_t as in SGD."""

    name = "momentum"

    def __init__(self, lr: float = 0.01, mu: float = 0.9, t0: float | None = None, kappa: float = 1.0):
        super().__init__(lr, t0, kappa)
        self.mu = _unit("Momentum", "mu", mu)
        self.vel = None

    def _arrays(self):
        return {"vel": self.vel}

    def _apply(self, K, theta, grad):
        K.momentum_update(theta, grad, self.vel, self.rate(), self.mu)

    def kernel(self):
        """@njit `update(theta, grad, vel, t)`; `vel` is a zero array the caller keeps."""
        a0, t0, kappa, mu = self.lr, (np.inf if self.t0 is None else self.t0), self.kappa, self.mu

        @njit
        def update(theta, grad, vel, t):
            momentum_update(theta, grad, vel, robbins_monro_rate(a0, t0, kappa, float(t)), mu)

        return update


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias-corrected moments."""

    name = "adam"

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__()
        self.lr = _positive("Adam", "lr", lr)
        self.beta1 = _unit("Adam", "beta1", beta1)
        self.beta2 = _unit("Adam", "beta2", beta2)
        self.eps = _positive("Adam", "eps", eps)
        self.m = None
        self.v = None

    def _arrays(self):
        return {"m": self.m, "v": self.v}

    def rate(self, t: int | None = None) -> float:
        return self.lr

    def _apply(self, K, theta, grad):
        K.adam_update(theta, grad, self.m, self.v, self.lr, self.beta1, self.beta2, self.eps, self.t + 1)

    def kernel(self):
        """@njit `update(theta, grad, m, v, t)` with t the 0-based step; m, v zero arrays the caller keeps."""
        lr, b1, b2, eps = self.lr, self.beta1, self.beta2, self.eps

        @njit
        def update(theta, grad, m, v, t):
            adam_update(theta, grad, m, v, lr, b1, b2, eps, t + 1)

        return update


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make(name: str, lr: float | None = None, **kw) -> Optimizer:
    """An optimiser by name ('sgd', 'momentum', 'adam'); lr=None keeps its default."""
    if name not in OPTIMIZERS:
        raise ModelError(f"unknown optimiser {name!r}; use one of {', '.join(OPTIMIZERS)}")
    if lr is not None:
        kw["lr"] = lr
    return OPTIMIZERS[name](**kw)
