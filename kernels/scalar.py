"""Scalar math shared by the CPU and CUDA kernels.

Every function here takes and returns scalars, uses only ``math`` and scalar arithmetic,
allocates nothing, and is ``@njit(cache=True)``; the CUDA target re-jits the same source
from ``.py_func`` as device functions, so the math is written once for both targets.

Precision: a Python float literal is float64 in Numba and would silently promote float32
math to float64. Every constant is therefore written ``like(x, c)``: ``c`` cast to the
precision of ``x`` (a scalar or an array) at compile time, so float32 inputs stay float32.

``error_model="numpy"``: division by zero gives inf/nan (as on the GPU), not an exception.

Stability: the logistic functions share one ``exp(-|x|)`` and never overflow; ``log_ndtr``
switches to the asymptotic (Laplace) series of the Mills ratio for x < -10, so it is finite
and accurate down to x = -1e4 and beyond.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

_LOG_NDTR_TAIL = -10.0  # below this, log Phi(x) uses the asymptotic series (see log_ndtr)
_TAIL_TERMS = 20  # series terms: truncation < 1e-16 relative at x = -10


def like(x, c):
    """Constant ``c`` in the floating-point precision of ``x`` (scalar or array).

    Pure-Python fallback (used when the source runs uncompiled): returns ``c`` unchanged.
    """
    return c


@overload(like)
def _like_overload(x, c):
    t = x.dtype if isinstance(x, types.Array) else x
    if isinstance(t, types.Float) and t.bitwidth == 32:
        return lambda x, c: np.float32(c)
    return lambda x, c: np.float64(c)


# ---------------------------------------------------------------------------- logistic


@njit(cache=True, error_model="numpy")
def logistic_parts(x):
    """(e, l) with e = exp(-|x|) and l = log1p(e): the one exp every logistic function needs.

    sigmoid, log_sigmoid and softplus are all cheap rational/log expressions of these two.
    """
    e = math.exp(-abs(x))
    return e, math.log1p(e)


@njit(cache=True, error_model="numpy")
def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)), evaluated with exp(-|x|) so it never overflows."""
    e = math.exp(-abs(x))
    one = like(x, 1.0)
    if x >= 0:
        return one / (one + e)
    return e / (one + e)


@njit(cache=True, error_model="numpy")
def log_sigmoid(x):
    """log sigma(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); exact for |x| -> inf."""
    e, l = logistic_parts(x)
    if x >= 0:
        return -l
    return x - l


@njit(cache=True, error_model="numpy")
def softplus(x):
    """softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    e, l = logistic_parts(x)
    if x > 0:
        return x + l
    return l


@njit(cache=True, error_model="numpy")
def sigmoid_log_sigmoids(x):
    """(sigma(x), log sigma(x), log sigma(-x)) from a single exp.

    Used by Bernoulli log-probabilities and their gradients (seed 000: log p(x|a) =
    x log sigma(a) + (1 - x) log sigma(-a), d/da = x - sigma(a)).
    """
    e, l = logistic_parts(x)
    one = like(x, 1.0)
    if x >= 0:
        return one / (one + e), -l, -x - l
    return e / (one + e), x - l, -l


@njit(cache=True, error_model="numpy")
def sigmoid_grad(x):
    """d sigma / dx = sigma(x) sigma(-x) = e / (1 + e)^2 with e = exp(-|x|) (no cancellation).

    This is the logistic-noise density, the straight-through derivative of seed 000.
    """
    e = math.exp(-abs(x))
    d = like(x, 1.0) + e
    return e / (d * d)


@njit(cache=True, error_model="numpy")
def logit(p):
    """logit(p) = log p - log(1 - p), the inverse of sigmoid (+-inf at p = 1, 0)."""
    return math.log(p) - math.log1p(-p)


# ---------------------------------------------------------------------------- sqrt1p


@njit(cache=True, error_model="numpy")
def sqrt1p(z):
    """sigma(z) = sqrt(1 + z^2) (seed 004 (b)); hypot avoids overflow of z^2 for large |z|."""
    return math.hypot(like(z, 1.0), z)


@njit(cache=True, error_model="numpy")
def sqrt1p_grad(z):
    """d sqrt(1 + z^2) / dz = z / sqrt(1 + z^2) (seed 004 (b)); tends to sign(z), |.| < 1."""
    return z / math.hypot(like(z, 1.0), z)


# ---------------------------------------------------------------------------- normal


@njit(cache=True, error_model="numpy")
def norm_pdf(x):
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the standard normal density."""
    return math.exp(like(x, -0.5) * x * x) * like(x, 0.3989422804014327)


@njit(cache=True, error_model="numpy")
def log_norm_pdf(x):
    """log phi(x) = -x^2 / 2 - log(2 pi) / 2."""
    return like(x, -0.5) * x * x - like(x, 0.9189385332046728)


@njit(cache=True, error_model="numpy")
def ndtr(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2; erfc keeps the lower tail relatively accurate."""
    return like(x, 0.5) * math.erfc(-x * like(x, 0.7071067811865476))


@njit(cache=True, error_model="numpy")
def mills_series(x):
    """S(x) = sum_n (-1)^n (2n-1)!! / x^(2n), the asymptotic series of x Phi(x) / -phi(x).

    Phi(x) ~ phi(x) / (-x) * S(x) for x -> -inf (Abramowitz & Stegun 26.2.12); Horner form
    S = 1 - z (1 - 3 z (1 - 5 z (...))) with z = 1 / x^2. Used only for x < -10.
    """
    one = like(x, 1.0)
    two = like(x, 2.0)
    z = one / (x * x)
    c = like(x, 2.0 * _TAIL_TERMS - 1.0)
    acc = one
    for _ in range(_TAIL_TERMS):
        acc = one - c * z * acc
        c -= two
    return acc


@njit(cache=True, error_model="numpy")
def log_ndtr(x):
    """log Phi(x), finite and accurate for all x (Abramowitz & Stegun 26.2.12 in the tail).

    x > 0: log1p(-Phi(-x)); -10 < x <= 0: log Phi(x);
    x <= -10: -x^2/2 - log(-x) - log(2 pi)/2 + log S(x) (the asymptotic series).
    """
    if x > 0:
        return math.log1p(-ndtr(-x))
    if x > like(x, _LOG_NDTR_TAIL):
        return math.log(ndtr(x))
    return log_norm_pdf(x) - math.log(-x) + math.log(mills_series(x))


@njit(cache=True, error_model="numpy")
def log_ndtr_grad(x):
    """d log Phi(x) / dx = phi(x) / Phi(x) (the inverse Mills ratio); -x / S(x) for x <= -10.

    Finite for every finite x; tends to -x as x -> -inf and to 0 as x -> +inf.
    """
    if x > like(x, _LOG_NDTR_TAIL):
        return norm_pdf(x) / ndtr(x)
    return -x / mills_series(x)
