"""Geometric(p) kernels: the failures before the first success, p(k) = q^k p, k = 0, 1, 2, ...,
q = 1 - p, given by probs p in (0, 1] or by logits a (p = sigmoid(a), log q = log sigmoid(-a)).
Every formula runs in float64 for every program dtype.

Sampling is the inverse CDF of one uniform u: k = floor(log u / log q) (P(K >= k) = q^k), with
log q = log1p(-p) or -softplus(a) (accurate for small p); p = 1 gives 0 (log q = -inf). A success
probability that underflows (logits below about -745) gives +inf: no count of float64 holds it.
Counts beyond 2^53 (2^24 in float32 programs) are not exact integers.

The score: d log p / dp = 1 / p - k / q (k / q left out at k = 0: finite at p = 1), or
d/da = q - k p. A count has no pathwise gradient.

Measure-valued derivative (estimators/mvd.py): d/dp E f(X) = sum_k k q^(k - 1) (f(k - 1) - f(k)),
and k q^(k - 1) p^2 is the law of Z + 1 with Z = X + X2 ~ NegativeBinomial(2, p) (X2 a second,
independent geometric count), so d/dp E f(X) = -(1 / p^2) E[f(Z + 1) - f(Z)]. The draw row holds X,
unit j's two branch rows Z_j = X_j + X2_j and Z_j + 1 (1 + 2 width rows per draw). Unlike the
one-row form E[X / (p q) (f(X - 1) - f(X))], it is exact at p = 1 (where X is always 0: the
derivative f(0) - f(1) needs the count 1, which X never takes) and its weight stays bounded as p
-> 1 (X / (p q) grows like 1 / q there).
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, rows
from ..math.scalar import like
from ..math.slots import slot_config, slot_local
from .binomial import _pq, floor_count


@njit(cache=True, error_model="numpy")
def geometric_icdf(lq, u):
    """floor(log u / log q) (float64): 0 when q = 0 (p = 1), +inf when log q = 0 (p = 0)."""
    if lq == -math.inf:
        return 0.0
    if lq >= 0.0:
        return math.inf
    return floor_count(math.log(float(u)) / lq)


@njit(cache=True, error_model="numpy")
def _sample(param, u, logits):
    p, q, lp, lq = _pq(param, logits)
    return geometric_icdf(lq, u)


@njit(cache=True, error_model="numpy")
def _log_prob(k, param, logits):
    """log p(k) = k log q + log p: -inf below 0; k log q left out at k = 0 (log p(0 | p = 1) = 0)."""
    kk = float(k)
    if kk < 0.0:
        return -math.inf
    p, q, lp, lq = _pq(param, logits)
    return lp + kk * lq if kk > 0.0 else lp


@njit(cache=True, error_model="numpy")
def _score(k, param, logits):
    """d log p(k) / dp = 1 / p - k / q (k / q left out at k = 0), or d/da = q - k p."""
    kk = float(k)
    p, q, lp, lq = _pq(param, logits)
    if logits:
        return q - kk * p
    return 1.0 / p - kk / q if kk > 0.0 else 1.0 / p


@cells("out")
def geometric_sample(r, j, probs, u, out):
    """out = floor(log u / log(1 - p)), the Geometric(p) count at uniform u (inverse CDF)."""
    out[r, j] = _sample(probs[r, j], u[r, j], False)


@cells("out")
def geometric_logits_sample(r, j, logits, u, out):
    """out = floor(log u / log sigmoid(-a)), the Geometric(sigmoid(a)) count at uniform u."""
    out[r, j] = _sample(logits[r, j], u[r, j], True)


@rows("x")
def geometric_log_prob(r, probs, x, out_rows):
    """out_rows[r] = sum_j x log(1 - p) + log p."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob(x[r, j], probs[r, j], False)
    out_rows[r] = s


@rows("x")
def geometric_logits_log_prob(r, logits, x, out_rows):
    """out_rows[r] = sum_j x log sigmoid(-a) + log sigmoid(a)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob(x[r, j], logits[r, j], True)
    out_rows[r] = s


@rows("x")
def geometric_log_prob_bwd(r, probs, x, grow, gprobs, gx):
    """gprobs += grow[r] (1 / p - x / (1 - p)) (skippable; nothing on a row of weight 0); a count
    has no value gradient (gx is not touched)."""
    g = grow[r]
    if gprobs.shape[0] != 0:
        if g != 0:
            for j in range(x.shape[1]):
                gprobs[r, j] += g * _score(x[r, j], probs[r, j], False)


@rows("x")
def geometric_logits_log_prob_bwd(r, logits, x, grow, glogits, gx):
    """glogits += grow[r] (sigmoid(-a) - x sigmoid(a)) (skippable); gx is not touched."""
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(x.shape[1]):
            glogits[r, j] += g * _score(x[r, j], logits[r, j], True)


@njit(cache=True, error_model="numpy")
def _mvd_draw(r, param, u, v, stride, off, span, value, row_weights, logits):
    """The rows of mvd_geometric_draw / mvd_geometric_logits_draw (their docstring)."""
    for j in range(value.shape[1]):
        value[r, j] = _sample(param[r, j], u[r, j], logits)
    c = slot_config(r, stride, off, span, 1 + 2 * value.shape[1])
    if c > 0:
        j = (c - 1) // 2
        value[r, j] += _sample(param[r, j], v[r, j], logits) + ((c - 1) - 2 * j)
        row_weights[r] = 0.0


@njit(cache=True, error_model="numpy")
def _mvd_grad(r, param, value, cost, row_weights, stride, off, span, gparam, logits):
    """The rows of mvd_geometric_grad / mvd_geometric_logits_grad (their docstring)."""
    if slot_local(r, stride, span) == 0:
        w = row_weights[r]
        for j in range(value.shape[1]):
            diff = cost[r + (off + 2 * j + 1) * stride] - cost[r + (off + 2 * j) * stride]
            x = float(param[r, j])
            coef = math.exp(-x) if logits else 1.0 / (x * x)   # dp/da / p^2 = q / p = exp(-a)
            gparam[r, j] -= w * coef * diff


@rows("value")
def mvd_geometric_draw(r, probs, u, v, stride, off, span, value, row_weights):
    """value[r] = X, the draw at u; configuration c = 2 j + 1 + k (k = 0, 1) moves unit j to
    X + X2 + k (X2 the count at v: X + X2 ~ NegativeBinomial(2, p)) and weighs 0."""
    _mvd_draw(r, probs, u, v, stride, off, span, value, row_weights, False)


@rows("value")
def mvd_geometric_logits_draw(r, logits, u, v, stride, off, span, value, row_weights):
    """mvd_geometric_draw with p = sigmoid(logits)."""
    _mvd_draw(r, logits, u, v, stride, off, span, value, row_weights, True)


@rows("value")
def mvd_geometric_grad(r, probs, value, cost, row_weights, stride, off, span, gprobs):
    """gprobs[r, j] += -w_r (f(Z_j + 1) - f(Z_j)) / p^2, on the draw's rows."""
    _mvd_grad(r, probs, value, cost, row_weights, stride, off, span, gprobs, False)


@rows("value")
def mvd_geometric_logits_grad(r, logits, value, cost, row_weights, stride, off, span, glogits):
    """glogits[r, j] += -w_r (f(Z_j + 1) - f(Z_j)) exp(-a) (dp/da = p q), on the draw's rows."""
    _mvd_grad(r, logits, value, cost, row_weights, stride, off, span, glogits, True)


def _unit(g, *shape):
    """Probabilities within (0, 1], a 1 among them (always 0)."""
    p = np.maximum(g.u(*shape), 0.1).astype(g.dt)
    p.flat[-1] = 1.0
    return p


def _counts(g, *shape):
    return np.floor(6 * g.u(*shape)).astype(g.dt)


R, D = 4, 6
PARITY = {
    "geometric_sample": lambda g: (_unit(g, R, D), g.u(R, D), g.out(R, D)),
    "geometric_logits_sample": lambda g: (2 * g.x(R, D), g.u(R, D), g.out(R, D)),
    "geometric_log_prob": lambda g: (_unit(g, R, D), _counts(g, R, D), g.out(R)),
    "geometric_logits_log_prob": lambda g: (g.x(R, D), _counts(g, R, D), g.out(R)),
    "geometric_log_prob_bwd": lambda g: (g.u(R, D), _counts(g, R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "geometric_logits_log_prob_bwd": lambda g: (g.x(R, D), _counts(g, R, D), g.x(R), g.x(R, D), g.x(R, D)),
    # 2 drawn rows of 1 + 2 D = 7 configurations (D = 3)
    "mvd_geometric_draw": lambda g: (_unit(g, 14, 3), g.u(14, 3), g.u(14, 3), 1, 1, 7, g.out(14, 3), g.pos(14)),
    "mvd_geometric_logits_draw": lambda g: (g.x(14, 3), g.u(14, 3), g.u(14, 3), 1, 1, 7, g.out(14, 3), g.pos(14)),
    "mvd_geometric_grad": lambda g: (_unit(g, 14, 3), _counts(g, 14, 3), g.x(14), g.pos(14), 1, 1, 7, g.x(14, 3)),
    "mvd_geometric_logits_grad": lambda g: (g.x(14, 3), _counts(g, 14, 3), g.x(14), g.pos(14), 1, 1, 7, g.x(14, 3)),
}
