"""CPU optimiser steps, as ``@njit`` loops over a flat parameter vector: sgd_update,
momentum_update, adam_update (hyper-parameters are 1-element arrays or plain floats).

The conventions are ``cpu/core.py``'s, which re-exports every public name here; the CUDA twin is
``cuda/optim.py``.
"""
from numba import njit
from numba.extending import overload

from ..math.scalar import hyper, like
from ..math.optim import adam_bias_corrections, adam_step, momentum_velocity
from .simd import LANES, adam_lanes, adam_lanes_masked, lanes_ok

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ optimisers


@njit(**_JIT)
def sgd_update(theta, grad, lr):
    """theta -= lr grad (Robbins-Monro step, Robbins & Monro 1951; the schedule lives in lr)."""
    a = like(theta, hyper(lr))
    for i in range(theta.shape[0]):
        theta[i] -= a * grad[i]


@njit(**_JIT)
def momentum_update(theta, grad, vel, lr, mu):
    """Heavy-ball momentum (Polyak 1964): vel = mu vel - lr grad ; theta += vel."""
    a = like(theta, hyper(lr))
    m = like(theta, hyper(mu))
    for i in range(theta.shape[0]):
        v = momentum_velocity(vel[i], grad[i], a, m)
        vel[i] = v
        theta[i] += v


@njit(**_JIT)
def _adam_moments_exact(theta, grad, m, v, lr, b1, b2, c1, c2, eps):
    """theta -= lr (m' c1) / (sqrt(v' c2) + eps) with the moments m', v' updated in place:
    scalar_optim.adam_step per entry (a division and a square root each)."""
    for i in range(theta.shape[0]):
        delta, mi, vi = adam_step(grad[i], m[i], v[i], lr, b1, b2, c1, c2, eps)
        m[i] = mi
        v[i] = vi
        theta[i] -= delta


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


@njit(**_JIT)
def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count:
    m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ;
    theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    float32 on AVX-512: the division by a reciprocal estimate refined by a Newton step (within
    5.5 ulp of the float64 step, as the exact loop; kernels/cpu/simd.py)."""
    a = like(theta, hyper(lr))
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    ep = like(theta, hyper(eps))
    c1, c2 = adam_bias_corrections(b1, b2, t)
    adam_moments(theta, grad, m, v, a, b1, b2, c1, c2, ep)
