"""Optimisers that update a program's flat parameter vector in place with jitted kernels.

    opt = ppl.optim.Adam(lr=1e-3)
    loss, _ = prog.grad({"x": batch}, seed=s, step=t)
    opt.step(prog)                       # theta -= update(prog.grad_buffer), in place

The whole theta vector is optimised, so learned estimator state that lives in it (a learned
baseline 'baseline.h', a control variate's weights) is trained by the same loop as the
model. Each optimiser owns its state arrays (velocity, Adam moments, step count); `state()`
and `load_state()` let `ppl.fit` checkpoint and resume them.

Every optimiser takes a learning rate or a schedule of it (constant, exponential_decay,
step_decay, cosine_decay, each with an optional linear warm-up), and clip_norm= scales a
gradient whose Euclidean norm is larger down to that norm before the update. The schedule reads
the optimiser's update count t, which its state (and a checkpoint) carries.

SGD may also use a Robbins-Monro schedule (Robbins & Monro 1951):
    a_t = a0 / (1 + t / t0)^kappa,  kappa in (0.5, 1]
so that sum_t a_t = inf (the iterates can travel any distance) and sum_t a_t^2 < inf (the
noise of the stochastic gradients averages out). `kernel()` returns an @njit-callable update
for embedding in a user's own nopython loop next to `prog.entry`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import validate as V
from ..errors import ModelError

from ..kernels.cpu import core as cpu_kernels
from ..kernels.cpu.core import adam_update, momentum_update, sgd_update
from ..kernels.cpu.train import clip_by_norm, rate as scheduled_rate
from ..kernels.math import optim as optim_math
from ..runtime.arena import carve

RATE = np.float64(0.0)   # the step size in the calls Optimizer.kernel_calls records (their types matter)


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


@dataclass(frozen=True)
class Schedule:
    """A learning rate as a function of the update count t = 0, 1, ...: lr times a linear warm-up
    over the first `warmup` updates, then the decay (kernels/math/optim.py:schedule_factor)."""

    lr: float
    kind: int = optim_math.SCHED_CONSTANT
    warmup: int = 0
    a: float = 1.0
    b: float = 1.0

    def __call__(self, t: int) -> float:
        return self.lr * optim_math.schedule_factor(self.kind, self.warmup, self.a, self.b, float(t))


def _schedule(owner, lr, kind, warmup, a=1.0, b=1.0) -> Schedule:
    warmup = V.integer(warmup, f"{owner}: warmup", lo=0)
    return Schedule(_positive(owner, "lr", lr), kind, warmup, a, b)


def constant(lr: float, warmup: int = 0) -> Schedule:
    """lr, after a linear warm-up over `warmup` updates (lr (t + 1) / warmup before)."""
    return _schedule("constant", lr, optim_math.SCHED_CONSTANT, warmup)


def exponential_decay(lr: float, every: int, rate: float, warmup: int = 0) -> Schedule:
    """lr rate^(u / every), u the updates after the warm-up: the rate is multiplied by `rate`
    every `every` updates, smoothly."""
    every = V.integer(every, "exponential_decay: every", lo=1)
    return _schedule("exponential_decay", lr, optim_math.SCHED_EXPONENTIAL, warmup, every,
                     V.real(rate, "exponential_decay: rate", positive=True, hi_open=1.0))


def step_decay(lr: float, every: int, rate: float, warmup: int = 0) -> Schedule:
    """lr rate^floor(u / every): the rate multiplied by `rate` once every `every` updates."""
    every = V.integer(every, "step_decay: every", lo=1)
    return _schedule("step_decay", lr, optim_math.SCHED_STEP, warmup, every,
                     V.real(rate, "step_decay: rate", positive=True, hi_open=1.0))


def cosine_decay(lr: float, steps: int, final: float = 0.0, warmup: int = 0) -> Schedule:
    """lr (final + (1 - final) (1 + cos(pi u / steps)) / 2) for the u = 0 .. steps updates after
    the warm-up, then lr final (Loshchilov & Hutter 2017, without restarts)."""
    steps = V.integer(steps, "cosine_decay: steps", lo=1)
    final = V.real(final, "cosine_decay: final (a fraction of lr)", lo=0.0)
    if final > 1.0:
        raise ModelError(f"cosine_decay: final is the fraction of lr the decay ends at, in [0, 1]; got {final}")
    return _schedule("cosine_decay", lr, optim_math.SCHED_COSINE, warmup, steps, final)


class Optimizer:
    """Base: `step(prog)` applies one update from prog.grad_buffer to prog.theta."""

    name = ""
    lr = 0.0
    t0 = None
    kappa = 1.0
    mu = 0.0
    beta1 = beta2 = eps = 0.0

    def __init__(self, lr=None, clip_norm=None):
        self.t = 0  # updates applied so far
        self.schedule = Schedule(1.0)   # constant (a user's optimiser may set lr itself)
        if lr is not None:
            self.schedule = lr if isinstance(lr, Schedule) else Schedule(_positive(type(self).__name__, "lr", lr))
            self.lr = self.schedule.lr
        self.clip_norm = None if clip_norm is None else _positive(type(self).__name__, "clip_norm", clip_norm)

    def hyper(self) -> np.ndarray:
        """The update's numbers as fit's nopython loop takes them (kernels/cpu/train.py's layout)."""
        s = self.schedule
        return np.array([self.lr, self.beta1, self.beta2, self.eps, np.inf if self.t0 is None else self.t0,
                         self.kappa, self.mu, s.kind, s.warmup, s.a, s.b,
                         np.inf if self.clip_norm is None else self.clip_norm], np.float64)

    def rate(self, t: int | None = None) -> float:
        """The step size of the update after t updates (default: the next one)."""
        return float(scheduled_rate(self.hyper(), self.t if t is None else t))

    def _arrays(self) -> dict:
        return {}

    def _ensure(self, theta: np.ndarray) -> None:
        new = [k for k, a in self._arrays().items() if a is None or a.shape != theta.shape or a.dtype != theta.dtype]
        if not new:   # every step but the first: no block to carve
            return
        for k, a in zip(new, carve([theta.shape] * len(new), theta.dtype)):   # apart in memory (runtime/arena.py)
            setattr(self, k, a)

    def step(self, prog) -> None:
        """One update of the program's parameters from its last gradient (prog.grad_buffer)."""
        if getattr(prog, "target", "cpu") == "cuda":  # parameters and state stay on the device
            if self.clip_norm is not None:
                raise ModelError(f"{self.name}: clip_norm is not available on the CUDA target yet; train without it "
                                 f"or on the CPU target")
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
        """One update of the flat parameter vector theta, in place, from the gradient grad."""
        if theta.shape != grad.shape:
            raise ModelError(f"{self.name}: theta has shape {theta.shape} but the gradient {grad.shape}")
        self._ensure(theta)
        if self.clip_norm is not None:
            clip_by_norm(grad, self.clip_norm)
        self._apply(cpu_kernels, theta, grad)
        self.t += 1

    def kernel_calls(self, theta: np.ndarray, grad: np.ndarray) -> list:
        """The (kernel, arguments) pairs update(theta, grad) calls, recorded without calling them:
        what a helper process may compile before the first update (ppl/compiler/ahead.py). The
        step size is the call of the schedule's kernel (kernels/cpu/train.rate) recorded first;
        the update's calls hold `RATE` in its place (a float64 like its result). None recorded
        for an update written outside ppl (it may compute in Python, not in kernels)."""
        owner = next(c for c in type(self).__mro__ if "_apply" in vars(c))
        if owner.__module__ != __name__:
            return []
        self._ensure(theta)
        calls = []
        hyper = self.hyper()

        class Record:
            def __getattr__(self, name):
                kernel = getattr(cpu_kernels, name)
                return lambda *args: calls.append((kernel, args))

        def rate(t=None):
            calls.append((scheduled_rate, (hyper, self.t if t is None else t)))
            return RATE
        self.rate = rate   # not the kernel's own call: a new process would compile it here
        try:
            self._apply(Record(), theta, grad)
        finally:
            del self.rate
        return calls

    def state(self) -> dict:
        """Arrays to checkpoint: the step count and every state array."""
        out = {"t": np.array(self.t, np.int64), "kind": np.array(self.name)}
        out.update({k: (v.copy_to_host() if hasattr(v, "copy_to_host") else v)
                    for k, v in self._arrays().items() if v is not None})
        return out

    def load_state(self, st: dict) -> None:
        """Take the state a checkpoint holds (state()'s dict), refusing another optimiser's."""
        kind = str(st.get("kind", self.name))
        if kind != self.name:
            raise ModelError(f"the checkpoint holds the state of optimiser '{kind}', not '{self.name}'; resume "
                             f"with the same optimiser or start afresh (resume=False)")
        self.t = int(st["t"])
        for k in self._arrays():
            if k in st:
                setattr(self, k, np.array(st[k]))


class SGD(Optimizer):
    """Plain SGD with the rate lr (a number or a Schedule), times a Robbins-Monro factor
    1 / (1 + t/t0)^kappa when t0 is given (t0=None: none)."""

    name = "sgd"

    def __init__(self, lr=0.01, t0: float | None = None, kappa: float = 1.0, clip_norm: float | None = None):
        super().__init__(lr, clip_norm)
        self.t0 = None if t0 is None else _positive("SGD", "t0", t0)
        self.kappa = float(kappa)
        if t0 is not None:
            robbins_monro(self.lr, self.t0, self.kappa)  # validates kappa

    def _apply(self, K, theta, grad):
        K.sgd_update(theta, grad, self.rate())

    def kernel(self):
        """@njit `update(theta, grad, t)` for a user's nopython loop (t = 0-based step)."""
        hyper = self.hyper()

        @njit
        def update(theta, grad, t):
            _clip(grad, hyper)
            sgd_update(theta, grad, scheduled_rate(hyper, t))

        return update


class Momentum(SGD):
    """Heavy-ball momentum: vel = mu vel - a_t grad ; theta += vel, with a_t as in SGD."""

    name = "momentum"

    def __init__(self, lr=0.01, mu: float = 0.9, t0: float | None = None, kappa: float = 1.0,
                 clip_norm: float | None = None):
        super().__init__(lr, t0, kappa, clip_norm)
        self.mu = _unit("Momentum", "mu", mu)
        self.vel = None

    def _arrays(self):
        return {"vel": self.vel}

    def _apply(self, K, theta, grad):
        K.momentum_update(theta, grad, self.vel, self.rate(), self.mu)

    def kernel(self):
        """@njit `update(theta, grad, vel, t)`; `vel` is a zero array the caller keeps."""
        hyper, mu = self.hyper(), self.mu

        @njit
        def update(theta, grad, vel, t):
            _clip(grad, hyper)
            momentum_update(theta, grad, vel, scheduled_rate(hyper, t), mu)

        return update


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias-corrected moments; lr a number or a Schedule."""

    name = "adam"

    def __init__(self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 clip_norm: float | None = None):
        super().__init__(lr, clip_norm)
        self.beta1 = _unit("Adam", "beta1", beta1)
        self.beta2 = _unit("Adam", "beta2", beta2)
        self.eps = _positive("Adam", "eps", eps)
        self.m = None
        self.v = None

    def _arrays(self):
        return {"m": self.m, "v": self.v}

    def _apply(self, K, theta, grad):
        K.adam_update(theta, grad, self.m, self.v, self.rate(), self.beta1, self.beta2, self.eps, self.t + 1)

    def kernel(self):
        """@njit `update(theta, grad, m, v, t)` with t the 0-based step; m, v zero arrays the caller keeps."""
        hyper = self.hyper()
        b1, b2, eps = self.beta1, self.beta2, self.eps

        @njit
        def update(theta, grad, m, v, t):
            _clip(grad, hyper)
            adam_update(theta, grad, m, v, scheduled_rate(hyper, t), b1, b2, eps, t + 1)

        return update


@njit(cache=True)
def _clip(grad, hyper):
    if not math.isinf(hyper[11]):
        clip_by_norm(grad, hyper[11])


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make(name: str, lr: float | None = None, **kw) -> Optimizer:
    """An optimiser by name ('sgd', 'momentum', 'adam'); lr=None keeps its default."""
    if name not in OPTIMIZERS:
        raise ModelError(f"unknown optimiser {name!r}; use one of {', '.join(OPTIMIZERS)}")
    if lr is not None:
        kw["lr"] = lr
    return OPTIMIZERS[name](**kw)

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "make", "Schedule", "constant", "exponential_decay",
           "step_decay", "cosine_decay", "robbins_monro"]   # the public names (ppl.optim.*)
