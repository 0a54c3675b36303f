"""CUDA twin of ``cpu_price.py``: forward second-order derivatives for the Price estimator.

Every kernel is elementwise (one thread per element, grid-stride); the per-element formulas are
``cpu_price``'s ``@njit`` scalar helpers (``_activation_d1d2``, ``_mul_d1d2``,
``_hess_*_term``) re-jitted by ``device()``, the same functions the CPU loops call. The
``hess_*`` kernels and ``price_scale_grad`` accumulate (``+=``) as on the CPU; no element is
written by two threads, so there are no reductions and no limits.
"""
from numba import cuda

from . import cpu_price as P
from .cpu_price import ACTIVATIONS  # noqa: F401  (the same activation codes)
from .device import device
from .gpu_core import launch

_activation_d1d2 = device(P._activation_d1d2)
_mul_d1d2 = device(P._mul_d1d2)
_hess_bernoulli_nll_logits_term = device(P._hess_bernoulli_nll_logits_term)
_hess_gaussian_nll_mean_term = device(P._hess_gaussian_nll_mean_term)
_hess_gaussian_nll_scale_term = device(P._hess_gaussian_nll_scale_term)
_hess_normal_log_prob_value_term = device(P._hess_normal_log_prob_value_term)


def _run(kernel, out, *args):
    k = launch(kernel, out.shape[0] * out.shape[1])
    if k is not None:
        k(*args)


@cuda.jit
def _seed_d(d1, d2):
    R, D = d1.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j] = 1.0
        d2[r, j] = 0.0


def seed_d(d1, d2):
    """z itself: d1 = 1, d2 = 0."""
    _run(_seed_d, d1, d1, d2)


@cuda.jit
def _activation_d(kind, x, d1x, d2x, d1, d2):
    R, D = x.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j], d2[r, j] = _activation_d1d2(kind, x[r, j], d1x[r, j], d2x[r, j])


def activation_d(kind, x, d1x, d2x, d1, d2):
    """d1 = phi'(x) d1x, d2 = phi''(x) d1x^2 + phi'(x) d2x (kind: cpu_price.ACTIVATIONS)."""
    _run(_activation_d, x, kind, x, d1x, d2x, d1, d2)


@cuda.jit
def _mul_d(a, b, d1a, d2a, d1b, d2b, d1, d2):
    R, D = a.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j], d2[r, j] = _mul_d1d2(a[r, j], b[r, j], d1a[r, j], d2a[r, j], d1b[r, j], d2b[r, j])


def mul_d(a, b, d1a, d2a, d1b, d2b, d1, d2):
    """Either factor may be independent of z (pass zero derivative arrays for it)."""
    _run(_mul_d, a, a, b, d1a, d2a, d1b, d2b, d1, d2)


@cuda.jit
def _add_d(d1a, d2a, d1b, d2b, d1, d2):
    R, D = d1.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j] = d1a[r, j] + d1b[r, j]
        d2[r, j] = d2a[r, j] + d2b[r, j]


def add_d(d1a, d2a, d1b, d2b, d1, d2):
    _run(_add_d, d1, d1a, d2a, d1b, d2b, d1, d2)


@cuda.jit
def _scale_d(s, d1x, d2x, d1, d2):
    R, D = d1.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j] = s * d1x[r, j]
        d2[r, j] = s * d2x[r, j]


def scale_d(s, d1x, d2x, d1, d2):
    _run(_scale_d, d1, s, d1x, d2x, d1, d2)


@cuda.jit
def _zero_d(d1, d2):
    R, D = d1.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        d1[r, j] = 0.0
        d2[r, j] = 0.0


def zero_d(d1, d2):
    _run(_zero_d, d1, d1, d2)


@cuda.jit
def _hess_total(w, d1, d2, h):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        h[r, j] += w[r] * d2[r, j]


def hess_total(w, d1, d2, h):
    """c = sum_j y_j: c' = 1, c'' = 0."""
    _run(_hess_total, h, w, d1, d2, h)


@cuda.jit
def _hess_bernoulli_nll_logits(w, a, t, d1, d2, h):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        h[r, j] += w[r] * _hess_bernoulli_nll_logits_term(a[r, j], t[r, j], d1[r, j], d2[r, j])


def hess_bernoulli_nll_logits(w, a, t, d1, d2, h):
    """c = softplus(a) - t a: c' = sigmoid(a) - t, c'' = sigmoid(a) sigmoid(-a)."""
    _run(_hess_bernoulli_nll_logits, h, w, a, t, d1, d2, h)


@cuda.jit
def _hess_gaussian_nll_mean(w, y, other, sigma, d1, d2, h):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        h[r, j] += w[r] * _hess_gaussian_nll_mean_term(y[r, j], other[r, j], sigma[r, j], d1[r, j], d2[r, j])


def hess_gaussian_nll_mean(w, y, other, sigma, d1, d2, h):
    """c = (y - other)^2 / (2 sigma^2) in y."""
    _run(_hess_gaussian_nll_mean, h, w, y, other, sigma, d1, d2, h)


@cuda.jit
def _hess_gaussian_nll_scale(w, mu, sigma, t, d1, d2, h):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        h[r, j] += w[r] * _hess_gaussian_nll_scale_term(mu[r, j], sigma[r, j], t[r, j], d1[r, j], d2[r, j])


def hess_gaussian_nll_scale(w, mu, sigma, t, d1, d2, h):
    """c = log sigma + (t - mu)^2 / (2 sigma^2) in sigma."""
    _run(_hess_gaussian_nll_scale, h, w, mu, sigma, t, d1, d2, h)


@cuda.jit
def _hess_normal_log_prob_value(w, x, loc, scale, d1, d2, h):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        h[r, j] += w[r] * _hess_normal_log_prob_value_term(x[r, j], loc[r, j], scale[r, j], d1[r, j], d2[r, j])


def hess_normal_log_prob_value(w, x, loc, scale, d1, d2, h):
    """c = log N(x | loc, scale) in x."""
    _run(_hess_normal_log_prob_value, h, w, x, loc, scale, d1, d2, h)


@cuda.jit
def _price_scale_grad(scale, h, gscale):
    R, D = h.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        gscale[r, j] += scale[r, j] * h[r, j]


def price_scale_grad(scale, h, gscale):
    """Price: gscale += sigma * (weighted) d^2 f / dz^2, the row weights already in h."""
    _run(_price_scale_grad, h, scale, h, gscale)
