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
from .registry import cells

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


def _seed_d_body(r, j, d1, d2):
    R, D = d1.shape
    d1[r, j] = 1.0
    d2[r, j] = 0.0


_seed_d = cells(_seed_d_body, "d1")


def seed_d(d1, d2):
    """z itself: d1 = 1, d2 = 0."""
    _run(_seed_d, d1, d1, d2)


def _activation_d_body(r, j, kind, x, d1x, d2x, d1, d2):
    R, D = x.shape
    d1[r, j], d2[r, j] = _activation_d1d2(kind, x[r, j], d1x[r, j], d2x[r, j])


_activation_d = cells(_activation_d_body, "x")


def activation_d(kind, x, d1x, d2x, d1, d2):
    """d1 = phi'(x) d1x, d2 = phi''(x) d1x^2 + phi'(x) d2x (kind: cpu_price.ACTIVATIONS)."""
    _run(_activation_d, x, kind, x, d1x, d2x, d1, d2)


def _mul_d_body(r, j, a, b, d1a, d2a, d1b, d2b, d1, d2):
    R, D = a.shape
    d1[r, j], d2[r, j] = _mul_d1d2(a[r, j], b[r, j], d1a[r, j], d2a[r, j], d1b[r, j], d2b[r, j])


_mul_d = cells(_mul_d_body, "a")


def mul_d(a, b, d1a, d2a, d1b, d2b, d1, d2):
    """Either factor may be independent of z (pass zero derivative arrays for it)."""
    _run(_mul_d, a, a, b, d1a, d2a, d1b, d2b, d1, d2)


def _add_d_body(r, j, d1a, d2a, d1b, d2b, d1, d2):
    R, D = d1.shape
    d1[r, j] = d1a[r, j] + d1b[r, j]
    d2[r, j] = d2a[r, j] + d2b[r, j]


_add_d = cells(_add_d_body, "d1")


def add_d(d1a, d2a, d1b, d2b, d1, d2):
    _run(_add_d, d1, d1a, d2a, d1b, d2b, d1, d2)


def _scale_d_body(r, j, s, d1x, d2x, d1, d2):
    R, D = d1.shape
    d1[r, j] = s * d1x[r, j]
    d2[r, j] = s * d2x[r, j]


_scale_d = cells(_scale_d_body, "d1")


def scale_d(s, d1x, d2x, d1, d2):
    _run(_scale_d, d1, s, d1x, d2x, d1, d2)


def _zero_d_body(r, j, d1, d2):
    R, D = d1.shape
    d1[r, j] = 0.0
    d2[r, j] = 0.0


_zero_d = cells(_zero_d_body, "d1")


def zero_d(d1, d2):
    _run(_zero_d, d1, d1, d2)


def _hess_total_body(r, j, w, d1, d2, h):
    R, D = h.shape
    h[r, j] += w[r] * d2[r, j]


_hess_total = cells(_hess_total_body, "h")


def hess_total(w, d1, d2, h):
    """c = sum_j y_j: c' = 1, c'' = 0."""
    _run(_hess_total, h, w, d1, d2, h)


def _hess_bernoulli_nll_logits_body(r, j, w, a, t, d1, d2, h):
    R, D = h.shape
    h[r, j] += w[r] * _hess_bernoulli_nll_logits_term(a[r, j], t[r, j], d1[r, j], d2[r, j])


_hess_bernoulli_nll_logits = cells(_hess_bernoulli_nll_logits_body, "h")


def hess_bernoulli_nll_logits(w, a, t, d1, d2, h):
    """c = softplus(a) - t a: c' = sigmoid(a) - t, c'' = sigmoid(a) sigmoid(-a)."""
    _run(_hess_bernoulli_nll_logits, h, w, a, t, d1, d2, h)


def _hess_gaussian_nll_mean_body(r, j, w, y, other, sigma, d1, d2, h):
    R, D = h.shape
    h[r, j] += w[r] * _hess_gaussian_nll_mean_term(y[r, j], other[r, j], sigma[r, j], d1[r, j], d2[r, j])


_hess_gaussian_nll_mean = cells(_hess_gaussian_nll_mean_body, "h")


def hess_gaussian_nll_mean(w, y, other, sigma, d1, d2, h):
    """c = (y - other)^2 / (2 sigma^2) in y."""
    _run(_hess_gaussian_nll_mean, h, w, y, other, sigma, d1, d2, h)


def _hess_gaussian_nll_scale_body(r, j, w, mu, sigma, t, d1, d2, h):
    R, D = h.shape
    h[r, j] += w[r] * _hess_gaussian_nll_scale_term(mu[r, j], sigma[r, j], t[r, j], d1[r, j], d2[r, j])


_hess_gaussian_nll_scale = cells(_hess_gaussian_nll_scale_body, "h")


def hess_gaussian_nll_scale(w, mu, sigma, t, d1, d2, h):
    """c = log sigma + (t - mu)^2 / (2 sigma^2) in sigma."""
    _run(_hess_gaussian_nll_scale, h, w, mu, sigma, t, d1, d2, h)


def _hess_normal_log_prob_value_body(r, j, w, x, loc, scale, d1, d2, h):
    R, D = h.shape
    h[r, j] += w[r] * _hess_normal_log_prob_value_term(x[r, j], loc[r, j], scale[r, j], d1[r, j], d2[r, j])


_hess_normal_log_prob_value = cells(_hess_normal_log_prob_value_body, "h")


def hess_normal_log_prob_value(w, x, loc, scale, d1, d2, h):
    """c = log N(x | loc, scale) in x."""
    _run(_hess_normal_log_prob_value, h, w, x, loc, scale, d1, d2, h)


def _price_scale_grad_body(r, j, scale, h, gscale):
    R, D = h.shape
    gscale[r, j] += scale[r, j] * h[r, j]


_price_scale_grad = cells(_price_scale_grad_body, "h")


def price_scale_grad(scale, h, gscale):
    """Price: gscale += sigma * (weighted) d^2 f / dz^2, the row weights already in h."""
    _run(_price_scale_grad, h, scale, h, gscale)


from . import cpu_price as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("price", _cpu_twin, globals())
