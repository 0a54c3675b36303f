"""Measure-valued derivative kernels (kernels of estimators/mvd.py), per law.

Each drawn row is expanded into `size` configurations: c = 0 is the draw itself (the drawn row,
local index 0 of the node's row digit (stride, span)), c = j + 1 (at local index off + j) the draw
with unit j moved to the other branch of the derivative's coupled pair; a digit of its own is
(stride, 1, size); in a shared one, every other row draws the node plainly. The rows c >= 1 weigh
0 in the objective; the graph below runs on all of them.

Bernoulli(logits a), p = sigmoid(a): d/da E f(b) = p (1 - p) (f(b_j = 1) - f(b_j = 0)); row j + 1
flips unit j, so the difference is the draw's cost against the flipped row's, signed by b_j.
Poisson(rate): d/drate E f(k) = E[f(k + 1) - f(k)]; row j + 1 adds one count to unit j.
Categorical(logits a) in G groups of K classes, p = softmax(a) per group: d/da_k E f(x) =
p_k (f(e_k) - sum_i p_i f(e_i)) = p_k (D_k - sum_i p_i D_i), D_i = f(e_i) - f(e_d) against the
drawn class d (D_d = 0; the softmax Jacobian p_k (delta_ik - p_i)); row 1 + g (K - 1) + t moves
group g to its t-th class other than d (t < d: class t, else t + 1), so each group costs K - 1
rows and its derivative is exact in its own draw.
The laws given by probabilities, Binomial and Geometric keep their rows in their own families
(probs.py, binomial.py, geometric.py).
"""
import math

import numpy as np
from numba import njit

from ..declare import rows
from ..math.scalar import like
from ..math.slots import slot_config, slot_local
from ..math.groups import categorical_sample_group, logsumexp_group
from .poisson import _inverse_cdf


@rows("value")
def mvd_bernoulli_draw(r, logits, u, stride, off, span, value, row_weights):
    """value[r] = the draw (u < sigmoid(a)); configuration c >= 1 flips unit c - 1 and weighs 0."""
    one = like(value, 1.0)
    for j in range(value.shape[1]):
        p = one / (one + math.exp(-logits[r, j]))
        value[r, j] = one if u[r, j] < p else like(value, 0.0)
    c = slot_config(r, stride, off, span, value.shape[1] + 1)
    if c > 0:
        value[r, c - 1] = one - value[r, c - 1]
        row_weights[r] = 0.0


@rows("value")
def mvd_bernoulli_grad(r, logits, value, cost, row_weights, stride, off, span, grad_logits):
    """grad_logits[r, j] += w_r p_j (1 - p_j) (f(b_j = 1) - f(b_j = 0)), on the draw's rows."""
    if slot_local(r, stride, span) == 0:
        one = like(value, 1.0)
        for j in range(value.shape[1]):
            p = one / (one + math.exp(-logits[r, j]))
            diff = cost[r] - cost[r + (off + j) * stride]
            if value[r, j] == 0.0:
                diff = -diff
            grad_logits[r, j] += row_weights[r] * p * (one - p) * diff


@rows("value")
def mvd_poisson_draw(r, rate, u, stride, off, span, value, row_weights):
    """value[r] = the Poisson draw; configuration c >= 1 adds one to unit c - 1 and weighs 0."""
    for j in range(value.shape[1]):
        value[r, j] = _inverse_cdf(rate[r, j], u[r, j])
    c = slot_config(r, stride, off, span, value.shape[1] + 1)
    if c > 0:
        value[r, c - 1] += like(value, 1.0)
        row_weights[r] = 0.0


@rows("value")
def mvd_poisson_grad(r, value, cost, row_weights, stride, off, span, grad_rate):
    """grad_rate[r, j] += w_r (f(k_j + 1) - f(k)), on the draw's rows."""
    if slot_local(r, stride, span) == 0:
        for j in range(value.shape[1]):
            grad_rate[r, j] += row_weights[r] * (cost[r + (off + j) * stride] - cost[r])


@njit(cache=True, error_model="numpy")
def _drawn(value, r, c0, K):
    """The class of the one-hot group value[r, c0:c0+K]."""
    d = 0
    for k in range(1, K):
        if value[r, c0 + k] > value[r, c0 + d]:
            d = k
    return d


@njit(cache=True, error_model="numpy")
def _configure_groups(r, stride, off, span, K, value, row_weights):
    """Configuration c >= 1 of the drawn one-hot groups value[r]: group (c - 1) // (K - 1) moved
    to its ((c - 1) % (K - 1))-th other class, the row weighing 0."""
    c = slot_config(r, stride, off, span, 1 + (value.shape[1] // K) * (K - 1))
    if c > 0:
        c0 = ((c - 1) // (K - 1)) * K
        t = (c - 1) % (K - 1)
        d = _drawn(value, r, c0, K)
        k = t if t < d else t + 1
        value[r, c0 + d] = like(value, 0.0)
        value[r, c0 + k] = like(value, 1.0)
        row_weights[r] = 0.0


@njit(cache=True, error_model="numpy")
def _other(cost, r, stride, off, gi, K, k, d):
    """f(group gi moved to class k) - f(the draw): the cost of its configuration row against row r."""
    t = k if k < d else k - 1
    return cost[r + (off + gi * (K - 1) + t) * stride] - cost[r]


@rows("value")
def mvd_categorical_draw(r, logits, gumbel, K, stride, off, span, value, row_weights):
    """value[r] = the draw (Gumbel-max, one-hot per group); configuration c >= 1 moves group
    (c - 1) // (K - 1) to its ((c - 1) % (K - 1))-th other class and weighs 0."""
    for c0 in range(0, value.shape[1], K):
        categorical_sample_group(logits, gumbel, r, c0, K, value)
    _configure_groups(r, stride, off, span, K, value, row_weights)


@rows("value")
def mvd_categorical_grad(r, logits, value, cost, row_weights, K, stride, off, span, grad_logits):
    """grad_logits[r, k] += w_r p_k (D_k - sum_i p_i D_i) per group, on the draw's rows."""
    if slot_local(r, stride, span) == 0:
        w = row_weights[r]
        for gi in range(value.shape[1] // K):
            c0 = gi * K
            d = _drawn(value, r, c0, K)
            m, lse = logsumexp_group(logits, r, c0, K)
            mean = like(cost, 0.0)
            for k in range(K):
                if k != d:
                    mean += math.exp(logits[r, c0 + k] - m - lse) * _other(cost, r, stride, off, gi, K, k, d)
            for k in range(K):
                p = math.exp(logits[r, c0 + k] - m - lse)
                diff = _other(cost, r, stride, off, gi, K, k, d) if k != d else like(cost, 0.0)
                grad_logits[r, c0 + k] += w * p * (diff - mean)


@rows("value")
def mvd_normal_draw(r, loc, scale, eps, u, stride, off, span, value, row_weights):
    """value[r] = loc + scale eps (the draw); configuration c = 3 j + 1 + k, k = 0, 1, 2 moves unit
    j to loc + scale R, loc - scale R (R = sqrt(-2 log u), Rayleigh: the loc's pair) or
    loc + scale sign(eps) sqrt(R^2 + eps^2) (double-sided Maxwell: the scale's branch against
    the draw); those rows weigh 0."""
    for j in range(value.shape[1]):
        value[r, j] = loc[r, j] + scale[r, j] * eps[r, j]
    c = slot_config(r, stride, off, span, 1 + 3 * value.shape[1])
    if c > 0:
        j = (c - 1) // 3
        k = (c - 1) - 3 * j
        e = eps[r, j]
        R = math.sqrt(-2.0 * math.log(u[r, j]))
        if k == 0:
            value[r, j] = loc[r, j] + scale[r, j] * like(value, R)
        elif k == 1:
            value[r, j] = loc[r, j] - scale[r, j] * like(value, R)
        else:
            m = math.sqrt(R * R + e * e)
            value[r, j] = loc[r, j] + scale[r, j] * like(value, m if e >= 0 else -m)
        row_weights[r] = 0.0


@rows("value")
def mvd_normal_grad(r, loc, scale, value, cost, row_weights, stride, off, span, grad_loc, grad_scale):
    """On the draw's rows: grad_loc[r, j] += w (f(loc + scale R) - f(loc - scale R)) / (scale
    sqrt(2 pi)); grad_scale[r, j] += w (f(Maxwell branch) - f(draw)) / scale (each skippable)."""
    if slot_local(r, stride, span) == 0:
        w = row_weights[r]
        if grad_loc.shape[0] != 0:
            for j in range(value.shape[1]):
                d = cost[r + (off + 3 * j) * stride] - cost[r + (off + 3 * j + 1) * stride]
                grad_loc[r, j] += w * d / (scale[r, j] * like(grad_loc, 2.5066282746310002))
        if grad_scale.shape[0] != 0:
            for j in range(value.shape[1]):
                grad_scale[r, j] += w * (cost[r + (off + 3 * j + 2) * stride] - cost[r]) / scale[r, j]


R, D = 8, 3   # 2 drawn rows of D + 1 configurations each
PARITY = {
    # a digit shared with another node's row (local index 1): D + 2 rows per drawn row
    "mvd_bernoulli_draw": lambda g: (g.x(10, D), g.u(10, D), 1, 2, D + 2, g.out(10, D), g.pos(10)),
    "mvd_bernoulli_grad": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.pos(R), 1, 1, D + 1, g.x(R, D)),
    "mvd_poisson_draw": lambda g: (4 * g.pos(R, D), g.u(R, D), 1, 1, D + 1, g.out(R, D), g.pos(R)),
    "mvd_poisson_grad": lambda g: (g.bits(R, D), g.x(R), g.pos(R), 1, 1, D + 1, g.x(R, D)),
    # 2 drawn rows of 1 + G (K - 1) = 5 configurations (G = 2 groups of K = 3 classes)
    "mvd_categorical_draw": lambda g: (g.x(10, 6), -np.log(-np.log(g.u(10, 6))), 3, 1, 1, 5, g.out(10, 6),
                                       g.pos(10)),
    # 2 drawn rows of 1 + 3 D = 10 configurations (D = 3)
    "mvd_normal_draw": lambda g: (g.x(20, D), g.pos(20, D), g.x(20, D), g.u(20, D), 1, 1, 10, g.out(20, D),
                                  g.pos(20)),
    "mvd_normal_grad": lambda g: (g.x(20, D), g.pos(20, D), g.x(20, D), g.x(20), g.pos(20), 1, 1, 10, g.x(20, D),
                                  g.x(20, D)),
    "mvd_categorical_grad": lambda g: (g.x(10, 6), g.onehot(10, 2, 3), g.x(10), g.pos(10), 3, 1, 1, 5, g.x(10, 6)),
}
