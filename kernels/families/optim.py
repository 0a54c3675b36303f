"""Optimiser steps over a flat parameter vector: sgd_update, momentum_update, adam_update
(hyper-parameters are 1-element arrays or plain floats; the scalar formulas are
kernels/math/optim.py's, shared with fit's nopython loop, kernels/cpu/train.py).

Declared once (kernels/declare.py): SGD's and momentum's steps are item bodies, one item per
parameter entry (a grid-stride thread per entry on CUDA). Adam's CPU kernel is hand-written: its
float32 update on AVX-512 runs 16 lanes at a time (kernels/native/simd.py: the division by a
reciprocal estimate and a Newton step, within 5.5 ulp of the float64 step, as the exact loop),
chosen by an overload on the arrays' types; its CUDA kernel is the per-entry body `_adam_item`
(the family's `CUDA`), the exact step of `math.optim.adam_step`.
Conventions are cpu/core.py's.
"""
from numba import njit
from numba.extending import overload

from ..native import parts
from ..native.simd import LANES, adam_lanes, adam_lanes_masked, lanes_ok
from ..declare import cuda_launcher, items
from ..math.optim import adam_constants, adam_entry, adam_update_entry, momentum_entry, sgd_entry
from ..math.scalar import hyper, like

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@items("theta.shape[0]")
def sgd_update(i, theta, grad, lr):
    """theta -= lr grad (Robbins-Monro step, Robbins & Monro 1951; the schedule lives in lr)."""
    sgd_entry(i, theta, grad, like(theta, hyper(lr)))


@items("theta.shape[0]")
def momentum_update(i, theta, grad, vel, lr, mu):
    """Heavy-ball momentum (Polyak 1964): vel = mu vel - lr grad ; theta += vel."""
    momentum_entry(i, theta, grad, vel, like(theta, hyper(lr)), like(theta, hyper(mu)))


@njit(**_JIT)
def _adam_moments_exact(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
    """theta -= lr (m' c1) / (sqrt(v' c2) + eps) with the moments m', v' updated in place:
    math.optim.adam_update_entry per entry (a division and a square root each)."""
    for i in range(theta.shape[0]):
        adam_update_entry(i, theta, grad, m, v, lr, b1, b2, c1, c2, eps)


def adam_moments(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
    """_adam_moments_exact's update: by simd.adam_lanes (16 lanes, the division by a reciprocal
    estimate) where simd.lanes_ok (C-contiguous float32 arrays, a target with AVX-512F), else
    _adam_moments_exact."""


@overload(adam_moments, jit_options=_JIT)
def _adam_moments(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
    if not lanes_ok(theta, grad, m, v):
        def impl_exact(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
            _adam_moments_exact(theta, grad, m, v, lr, b1, b2, c1, c2, eps)
        return impl_exact

    def impl_lanes(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
        n = theta.shape[0]
        if grad.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
            raise ValueError("adam_update: theta, grad, m and v must have the same length")
        a1 = lr * c1
        i = 0
        while i + LANES <= n:
            adam_lanes(theta, grad, m, v, i, n, a1, b1, b2, c2, eps)
            i += LANES
        if i < n:
            adam_lanes_masked(theta, grad, m, v, i, n, a1, b1, b2, c2, eps)
    return impl_lanes


ADAM_PART_MIN = 1 << 15   # parameters of one part at least when ppl splits the update (kernels/native/parts.py)


def _adam_slot(theta, grad, m, v):
    """The parts table's slot of Adam's parallel kernel for these arrays, or -1 (not C-contiguous)."""


@overload(_adam_slot, jit_options=_JIT)
def _adam_slot_overload(theta, grad, m, v):
    ok = all(x.layout == "C" and x.dtype == theta.dtype for x in (theta, grad, m, v))
    index = parts.slot("adam", theta.dtype) if ok else -1
    return lambda theta, grad, m, v: index


@njit(**_JIT)
def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count:
    m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ;
    theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    float32 on AVX-512: the division by a reciprocal estimate refined by a Newton step (within
    5.5 ulp of the float64 step, as the exact loop; kernels/native/simd.py). In parts at once when
    ppl splits its work (kernels/native/parts.py)."""
    a = like(theta, hyper(lr))
    b1, b2, ep, c1, c2 = adam_constants(theta, beta1, beta2, eps, t)
    index = _adam_slot(theta, grad, m, v)
    if index >= 0 and parts.parts() > 1 and parts.bound(index):   # each entry's update is its own: no bit changes
        n = theta.shape[0]
        k, step = parts.split(n, parts.parts(), ADAM_PART_MIN)
        if k > 1:
            if grad.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
                raise ValueError("adam_update: theta, grad, m and v must have the same length")
            parts.call(index, (theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step))
            return
    adam_moments(theta, grad, m, v, a, b1, b2, c1, c2, ep)


def _adam_item(i, theta, grad, m, v, lr, beta1, beta2, eps, t):
    """adam_update's CUDA body: entry i's exact step (math.optim.adam_entry)."""
    adam_entry(i, theta, grad, m, v, like(theta, hyper(lr)), beta1, beta2, eps, t)


# the CUDA launcher of the kernel whose CPU code is not a loop shape's (module docstring)
CUDA = {"adam_update": lambda: cuda_launcher(adam_update, "items", _adam_item, n="theta.shape[0]")}

N = 9
PARITY = {
    "sgd_update": lambda g: (g.x(N), g.x(N), g.h(0.1)),
    "momentum_update": lambda g: (g.x(N), g.x(N), g.x(N), g.h(0.1), g.h(0.9)),
    "adam_update": lambda g: (g.x(N), g.x(N), g.x(N), g.pos(N), g.h(0.01), g.h(0.9), g.h(0.999), g.h(1e-8), 3),
}
