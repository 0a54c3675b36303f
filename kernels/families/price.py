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
An elementwise op's rule is its own kernel, `<kind>_d12`, made from its first and second
derivative where the op is declared (kernels/declare.unary).

Declared once (kernels/declare.py): every kernel is a cell body (one CUDA thread per element;
the step calls them as price.<name>); the hess_* kernels and price_scale_grad accumulate (+=).
The CPU kernels keep the hand-written ones' flags (`_FLAGS`: no fast-math, Python's error model).
"""

from numba import njit

from ..declare import cells
from ..math.scalar import sigmoid

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


_FLAGS = dict(fastmath=False, error_model="python")   # the hand-written kernels' flags


@cells("d1", **_FLAGS)
def seed_d(r, j, d1, d2):
    """z itself: d1 = 1, d2 = 0."""
    d1[r, j] = 1.0
    d2[r, j] = 0.0


@cells("a", **_FLAGS)
def mul_d(r, j, a, b, d1a, d2a, d1b, d2b, d1, d2):
    """Either factor may be independent of z (pass zero derivative arrays for it)."""
    d1[r, j], d2[r, j] = _mul_d1d2(a[r, j], b[r, j], d1a[r, j], d2a[r, j], d1b[r, j], d2b[r, j])


@cells("d1", **_FLAGS)
def add_d(r, j, d1a, d2a, d1b, d2b, d1, d2):
    """d1 = d1a + d1b, d2 = d2a + d2b."""
    d1[r, j] = d1a[r, j] + d1b[r, j]
    d2[r, j] = d2a[r, j] + d2b[r, j]


@cells("d1", **_FLAGS)
def scale_d(r, j, s, d1x, d2x, d1, d2):
    """d1 = s d1x, d2 = s d2x."""
    d1[r, j] = s * d1x[r, j]
    d2[r, j] = s * d2x[r, j]


@cells("d1", **_FLAGS)
def zero_d(r, j, d1, d2):
    """d1 = d2 = 0 (a value independent of z)."""
    d1[r, j] = 0.0
    d2[r, j] = 0.0


@cells("h", **_FLAGS)
def hess_total(r, j, w, d1, d2, h):
    """c = sum_j y_j: c' = 1, c'' = 0."""
    h[r, j] += w[r] * d2[r, j]


@cells("h", **_FLAGS)
def hess_bernoulli_nll_logits(r, j, w, a, t, d1, d2, h):
    """c = softplus(a) - t a: c' = sigmoid(a) - t, c'' = sigmoid(a) sigmoid(-a)."""
    h[r, j] += w[r] * _hess_bernoulli_nll_logits_term(a[r, j], t[r, j], d1[r, j], d2[r, j])


@cells("h", **_FLAGS)
def hess_gaussian_nll_mean(r, j, w, y, other, sigma, d1, d2, h):
    """c = (y - other)^2 / (2 sigma^2) in y (the loc or the target): c' = (y - other)/sigma^2, c'' = 1/sigma^2."""
    h[r, j] += w[r] * _hess_gaussian_nll_mean_term(y[r, j], other[r, j], sigma[r, j], d1[r, j], d2[r, j])


@cells("h", **_FLAGS)
def hess_gaussian_nll_scale(r, j, w, mu, sigma, t, d1, d2, h):
    """c = log sigma + (t - mu)^2 / (2 sigma^2) in sigma: c' = 1/s - q/s^3, c'' = -1/s^2 + 3 q/s^4, q = (t - mu)^2."""
    h[r, j] += w[r] * _hess_gaussian_nll_scale_term(mu[r, j], sigma[r, j], t[r, j], d1[r, j], d2[r, j])


@cells("h", **_FLAGS)
def hess_normal_log_prob_value(r, j, w, x, loc, scale, d1, d2, h):
    """c = log N(x | loc, scale) in x: c' = -(x - loc)/scale^2, c'' = -1/scale^2."""
    h[r, j] += w[r] * _hess_normal_log_prob_value_term(x[r, j], loc[r, j], scale[r, j], d1[r, j], d2[r, j])


@cells("h", **_FLAGS)
def price_scale_grad(r, j, scale, h, gscale):
    """Price: gscale += sigma * (weighted) d^2 f / dz^2, the row weights already in h."""
    gscale[r, j] += scale[r, j] * h[r, j]


R, D = 4, 6
PARITY = {
    "seed_d": lambda g: (g.out(R, D), g.out(R, D)),
    "mul_d": lambda g: tuple(g.x(R, D) for _ in range(6)) + (g.out(R, D), g.out(R, D)),
    "add_d": lambda g: tuple(g.x(R, D) for _ in range(4)) + (g.out(R, D), g.out(R, D)),
    "scale_d": lambda g: (1.7, g.x(R, D), g.x(R, D), g.out(R, D), g.out(R, D)),
    "zero_d": lambda g: (g.out(R, D), g.out(R, D)),
    "hess_total": lambda g: (g.pos(R), g.x(R, D), g.x(R, D), g.x(R, D)),
    "hess_bernoulli_nll_logits": lambda g: (g.pos(R), g.x(R, D), g.bits(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "hess_gaussian_nll_mean": lambda g: (g.pos(R), g.x(R, D), g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R, D),
                                         g.x(R, D)),
    "hess_gaussian_nll_scale": lambda g: (g.pos(R), g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R, D), g.x(R, D),
                                          g.x(R, D)),
    "hess_normal_log_prob_value": lambda g: (g.pos(R), g.x(R, D), g.x(R, D), g.pos(R, D), g.x(R, D),
                                             g.x(R, D), g.x(R, D)),
    "price_scale_grad": lambda g: (g.pos(R, D), g.x(R, D), g.x(R, D)),
}
