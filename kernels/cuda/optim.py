"""CUDA twin of ``cpu/optim.py``: sgd_update, momentum_update and adam_update as host-side
launchers, one thread per parameter entry (grid-stride).

The conventions are ``cuda/core.py``'s, which re-exports every public name here.
"""
from numba import cuda

from ..math import optim as SO
from .device import device
from .launch import _run_rows
from ..math.scalar import hyper, like
from ..registry import items

# device versions of the scalar math (one source with the CPU kernels)
_momentum_velocity = device(SO.momentum_velocity)
_adam_bias_corrections = device(SO.adam_bias_corrections)
_adam_step = device(SO.adam_step)


# ============================================================================ optimisers


def _sgd_body(i, theta, grad, lr):
    a = like(theta, hyper(lr))
    theta[i] -= a * grad[i]


_sgd = items(_sgd_body, "theta.shape[0]")


def sgd_update(theta, grad, lr):
    """theta -= lr grad (Robbins-Monro step; the schedule lives in lr)."""
    _run_rows(_sgd, theta.shape[0], theta, grad, lr)


def _momentum_body(i, theta, grad, vel, lr, mu):
    a = like(theta, hyper(lr))
    m = like(theta, hyper(mu))
    v = _momentum_velocity(vel[i], grad[i], a, m)
    vel[i] = v
    theta[i] += v


_momentum = items(_momentum_body, "theta.shape[0]")


def momentum_update(theta, grad, vel, lr, mu):
    """Heavy-ball momentum (Polyak 1964): vel = mu vel - lr grad ; theta += vel."""
    _run_rows(_momentum, theta.shape[0], theta, grad, vel, lr, mu)


def _adam_body(i, theta, grad, m, v, lr, beta1, beta2, eps, t):
    a = like(theta, hyper(lr))
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    ep = like(theta, hyper(eps))
    c1, c2 = _adam_bias_corrections(b1, b2, t)
    delta, mi, vi = _adam_step(grad[i], m[i], v[i], a, b1, b2, c1, c2, ep)
    m[i] = mi
    v[i] = vi
    theta[i] -= delta


_adam = items(_adam_body, "theta.shape[0]")


def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count."""
    _run_rows(_adam, theta.shape[0], theta, grad, m, v, lr, beta1, beta2, eps, t)


from ..cpu import optim as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("optim", _cpu_twin, globals())
