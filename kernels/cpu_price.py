"""Second-order forward derivatives for the Price estimator (Price 1958, Bonnet 1964; Rezende et al. 2014).

For z ~ N(mu, diag(sigma^2)): d/dmu E f = E[df/dz] (Bonnet) and d/dsigma_j E f =
sigma_j E[d^2 f / dz_j^2] (Price). When every path from z to the costs is elementwise, the
Hessian diagonal is exact from a forward pass carrying, per element, the first and second
derivative (d1, d2) of each node's value with respect to the same column of z:
  y = phi(x):     d1y = phi'(x) d1x,          d2y = phi''(x) d1x^2 + phi'(x) d2x
  y = a * b:      d1y = a' b + a b',          d2y = a'' b + 2 a' b' + a b''
  y = a + b:      d1y = a' + b',              d2y = a'' + b''
  y = s x + c:    d1y = s d1x,                d2y = s d2x
and at a cost c(y) summed over columns: d^2c/dz_j^2 = c''(y_j) d1y_j^2 + c'(y_j) d2y_j.
Activation kinds: 0 sigmoid, 1 tanh, 2 relu, 3 softplus, 4 exp, 5 sqrt1p.
"""
import math

from numba import njit

from .scalar import sigmoid

ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2, "softplus": 3, "exp": 4, "sqrt1p": 5}


@njit(cache=True)
def _phi12(kind, x):
    """(phi'(x), phi''(x))."""
    if kind == 0:
        s = sigmoid(x)
        return s * (1 - s), s * (1 - s) * (1 - 2 * s)
    if kind == 1:
        t = math.tanh(x)
        return 1 - t * t, -2 * t * (1 - t * t)
    if kind == 2:
        return (1.0 if x > 0 else 0.0), 0.0
    if kind == 3:
        s = sigmoid(x)
        return s, s * (1 - s)
    if kind == 4:
        e = math.exp(x)
        return e, e
    q = math.sqrt(1 + x * x)
    return x / q, 1 / (q * q * q)


@njit(cache=True)
def _activation_d1d2(kind, x, d1x, d2x):
    """(d1, d2) of phi(x) from x's (d1x, d2x)."""
    p1, p2 = _phi12(kind, x)
    return p1 * d1x, p2 * d1x * d1x + p1 * d2x


@njit(cache=True)
def _mul_d1d2(a, b, d1a, d2a, d1b, d2b):
    """(d1, d2) of a * b."""
    return d1a * b + a * d1b, d2a * b + 2 * d1a * d1b + a * d2b


@njit(cache=True)
def _hess_bernoulli_nll_logits_term(a, t, d1, d2):
    s = sigmoid(a)
    return s * (1 - s) * d1 ** 2 + (s - t) * d2


@njit(cache=True)
def _hess_gaussian_nll_mean_term(y, other, sigma, d1, d2):
    iv = 1.0 / (sigma * sigma)
    return iv * d1 ** 2 + (y - other) * iv * d2


@njit(cache=True)
def _hess_gaussian_nll_scale_term(mu, sigma, t, d1, d2):
    s = sigma
    q = (t - mu) ** 2
    c1 = 1.0 / s - q / (s * s * s)
    c2 = -1.0 / (s * s) + 3.0 * q / (s * s * s * s)
    return c2 * d1 ** 2 + c1 * d2


@njit(cache=True)
def _hess_normal_log_prob_value_term(x, loc, scale, d1, d2):
    iv = 1.0 / (scale * scale)
    return -iv * d1 ** 2 - (x - loc) * iv * d2


@njit(cache=True)
def seed_d(d1, d2):
    """z itself: d1 = 1, d2 = 0."""
    for r in range(d1.shape[0]):
        for j in range(d1.shape[1]):
            d1[r, j] = 1.0
            d2[r, j] = 0.0


@njit(cache=True)
def activation_d(kind, x, d1x, d2x, d1, d2):
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            d1[r, j], d2[r, j] = _activation_d1d2(kind, x[r, j], d1x[r, j], d2x[r, j])


@njit(cache=True)
def mul_d(a, b, d1a, d2a, d1b, d2b, d1, d2):
    """Either factor may be independent of z (pass zero derivative arrays for it)."""
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            d1[r, j], d2[r, j] = _mul_d1d2(a[r, j], b[r, j], d1a[r, j], d2a[r, j], d1b[r, j], d2b[r, j])


@njit(cache=True)
def add_d(d1a, d2a, d1b, d2b, d1, d2):
    for r in range(d1.shape[0]):
        for j in range(d1.shape[1]):
            d1[r, j] = d1a[r, j] + d1b[r, j]
            d2[r, j] = d2a[r, j] + d2b[r, j]


@njit(cache=True)
def scale_d(s, d1x, d2x, d1, d2):
    for r in range(d1.shape[0]):
        for j in range(d1.shape[1]):
            d1[r, j] = s * d1x[r, j]
            d2[r, j] = s * d2x[r, j]


@njit(cache=True)
def zero_d(d1, d2):
    for r in range(d1.shape[0]):
        for j in range(d1.shape[1]):
            d1[r, j] = 0.0
            d2[r, j] = 0.0


@njit(cache=True)
def hess_total(w, d1, d2, h):
    """c = sum_j y_j: c' = 1, c'' = 0."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[r, j] += w[r] * d2[r, j]


@njit(cache=True)
def hess_bernoulli_nll_logits(w, a, t, d1, d2, h):
    """c = softplus(a) - t a: c' = sigmoid(a) - t, c'' = sigmoid(a) sigmoid(-a)."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[r, j] += w[r] * _hess_bernoulli_nll_logits_term(a[r, j], t[r, j], d1[r, j], d2[r, j])


@njit(cache=True)
def hess_gaussian_nll_mean(w, y, other, sigma, d1, d2, h):
    """c = (y - other)^2 / (2 sigma^2) in y (the loc or the target): c' = (y - other)/sigma^2, c'' = 1/sigma^2."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[r, j] += w[r] * _hess_gaussian_nll_mean_term(y[r, j], other[r, j], sigma[r, j], d1[r, j], d2[r, j])


@njit(cache=True)
def hess_gaussian_nll_scale(w, mu, sigma, t, d1, d2, h):
    """c = log sigma + (t - mu)^2 / (2 sigma^2) in sigma: c' = 1/s - q/s^3, c'' = -1/s^2 + 3 q/s^4, q = (t - mu)^2."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[r, j] += w[r] * _hess_gaussian_nll_scale_term(mu[r, j], sigma[r, j], t[r, j], d1[r, j], d2[r, j])


@njit(cache=True)
def hess_normal_log_prob_value(w, x, loc, scale, d1, d2, h):
    """c = log N(x | loc, scale) in x: c' = -(x - loc)/scale^2, c'' = -1/scale^2."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[r, j] += w[r] * _hess_normal_log_prob_value_term(x[r, j], loc[r, j], scale[r, j], d1[r, j], d2[r, j])


@njit(cache=True)
def price_scale_grad(scale, h, gscale):
    """Price: gscale += sigma * (weighted) d^2 f / dz^2, the row weights already in h."""
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            gscale[r, j] += scale[r, j] * h[r, j]
