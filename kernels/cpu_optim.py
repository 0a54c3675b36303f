"""CPU optimiser steps, as ``@njit`` loops over a flat parameter vector: sgd_update,
momentum_update, adam_update (hyper-parameters are 1-element arrays or plain floats).

The conventions are ``cpu.py``'s, which re-exports every public name here; the CUDA twin is
``gpu_optim.py``.
"""
from numba import njit

from .scalar import adam_bias_corrections, adam_step, hyper, like, momentum_velocity

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
def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count:
    m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ;
    theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""
    a = like(theta, hyper(lr))
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    ep = like(theta, hyper(eps))
    c1, c2 = adam_bias_corrections(b1, b2, t)
    for i in range(theta.shape[0]):
        delta, mi, vi = adam_step(grad[i], m[i], v[i], a, b1, b2, c1, c2, ep)
        m[i] = mi
        v[i] = vi
        theta[i] -= delta
