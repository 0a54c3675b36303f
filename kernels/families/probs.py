"""Bernoulli and Categorical units given by probabilities (the laws' probs=): the samples (the
inverse CDF of one uniform), the log-probability and its VJP in the probabilities,
straight-through's backward and the measure-valued derivative's rows (estimators/mvd.py).

Bernoulli(probs p), p in [0, 1]: b = 1[u < p] for u uniform in (0, 1), so p = 0 and p = 1 are
certain outcomes. log p(b) = b log p + (1 - b) log(1 - p), each term 0 where its weight b or
1 - b is 0 (log p(1 | p = 1) = 0, not 0 * -inf); d/dp = b / p - (1 - b) / (1 - p), each term
likewise 0 where its weight is 0, so the score is finite wherever the value has positive
probability. A row whose VJP weight is 0 (an enumerated value of probability 0) adds nothing.

Categorical(probs w) in G groups of K classes: P(k) = w_k / S, S = sum_i w_i per group (w >= 0,
S > 0: the step checks them first). The draw is the smallest class whose cumulative weight
exceeds u S (u: the noise's column of the group's first class), so a class of weight 0 is never
drawn. log p(x) = sum_k x_k (log w_k - log S), terms of weight 0 left out; d/dw_k = x_k / w_k -
(sum_i x_i) / S.

Straight-through with probabilities differentiates the mean of the value: E[b] = p, so the
cotangent of b passes to p unchanged; E[x_k] = w_k / S, so g_w_k += (g_k - sum_i pi_i g_i) / S.

Measure-valued derivatives: d/dp E f(b) = f(b_j = 1) - f(b_j = 0) (rows as mvd_bernoulli_*:
row j + 1 flips unit j); d/dw_k E f(x) = (D_k - sum_i pi_i D_i) / S with D_i = f(e_i) - f(e_d)
against the drawn class d (rows as mvd_categorical_*; a class of weight 0 adds nothing to the
mean). Both are exact at p in {0, 1} and at classes of weight 0: the branch rows are evaluated
whatever their probability (a log_prob(node) cost is -inf there, and so is its derivative).
"""
from numba import njit

from ..declare import cells, groups, rows
from ..math.scalar import like, log0, log1m
from ..math.slots import slot_config, slot_local
from .mvd import _configure_groups, _drawn, _other


# ============================================================================ Bernoulli(probs)


@njit(cache=True, error_model="numpy")
def _bernoulli_term(p, x):
    """x log p + (1 - x) log(1 - p), a term left out where its weight is 0."""
    one = like(p, 1.0)
    s = like(p, 0.0)
    if x != 0:
        s += x * log0(float(p))
    if x != one:
        s += (one - x) * log1m(float(p))
    return s


@njit(cache=True, error_model="numpy")
def _bernoulli_score(p, x):
    """d/dp of _bernoulli_term: x / p - (1 - x) / (1 - p), a term left out where its weight is 0."""
    one = like(p, 1.0)
    s = like(p, 0.0)
    if x != 0:
        s += x / p
    if x != one:
        s -= (one - x) / (one - p)
    return s


@cells("out")
def bernoulli_probs_sample(r, j, probs, u, out):
    """out = 1[u < p] (u uniform in (0, 1)): P(out = 1) = p, certain at p = 0 and p = 1."""
    out[r, j] = like(u, 1.0) if u[r, j] < probs[r, j] else like(u, 0.0)


@rows("x")
def bernoulli_probs_log_prob(r, probs, x, out_rows):
    """out_rows[r] = sum_j x log p + (1 - x) log(1 - p) (x may be relaxed in [0, 1])."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _bernoulli_term(probs[r, j], x[r, j])
    out_rows[r] = s


@rows("x")
def bernoulli_probs_log_prob_bwd(r, probs, x, grow, gprobs, gx):
    """gprobs += grow[r] (x / p - (1 - x) / (1 - p)) ; gx += grow[r] (log p - log(1 - p)); each
    skippable, and nothing added on a row of weight 0."""
    g = grow[r]
    if g != 0:
        if gprobs.shape[0] != 0:
            for j in range(x.shape[1]):
                gprobs[r, j] += g * _bernoulli_score(probs[r, j], x[r, j])
        if gx.shape[0] != 0:
            for j in range(x.shape[1]):
                gx[r, j] += g * (log0(float(probs[r, j])) - log1m(float(probs[r, j])))


@cells("gx")
def bernoulli_probs_st_bwd(r, j, probs, gx, gprobs):
    """Straight-through with probabilities: gprobs += gx (the derivative of E[b] = p); skippable."""
    if gprobs.shape[0] != 0:
        gprobs[r, j] += gx[r, j]


@rows("value")
def mvd_bernoulli_probs_draw(r, probs, u, stride, off, span, value, row_weights):
    """value[r] = the draw 1[u < p]; configuration c >= 1 flips unit c - 1 and weighs 0."""
    one = like(value, 1.0)
    for j in range(value.shape[1]):
        value[r, j] = one if u[r, j] < probs[r, j] else like(value, 0.0)
    c = slot_config(r, stride, off, span, value.shape[1] + 1)
    if c > 0:
        value[r, c - 1] = one - value[r, c - 1]
        row_weights[r] = 0.0


@rows("value")
def mvd_bernoulli_probs_grad(r, probs, value, cost, row_weights, stride, off, span, grad_probs):
    """grad_probs[r, j] += w_r (f(b_j = 1) - f(b_j = 0)), on the draw's rows."""
    if slot_local(r, stride, span) == 0:
        for j in range(value.shape[1]):
            diff = cost[r] - cost[r + (off + j) * stride]
            if value[r, j] == 0.0:
                diff = -diff
            grad_probs[r, j] += row_weights[r] * diff


# ============================================================================ Categorical(probs)


@njit(cache=True, error_model="numpy")
def _group_sum(w, r, c0, K):
    s = like(w[r, c0], 0.0)
    for k in range(K):
        s += w[r, c0 + k]
    return s


@njit(cache=True, error_model="numpy")
def _icdf_group(w, u, r, c0, K, out):
    """One-hot of the smallest k with sum_{i<=k} w_i > u S; if rounding leaves the cumulative sum
    short, the last class of positive weight."""
    zero = like(out[r, c0], 0.0)
    thr = u * _group_sum(w, r, c0, K)
    cum = like(w[r, c0], 0.0)
    pick = -1
    last = 0
    for k in range(K):
        wk = w[r, c0 + k]
        out[r, c0 + k] = zero
        if wk > 0:
            last = k
            cum += wk
            if pick < 0 and cum > thr:
                pick = k
    out[r, c0 + (last if pick < 0 else pick)] = like(out[r, c0], 1.0)


@njit(cache=True, error_model="numpy")
def _log_prob_group(w, x, r, c0, K):
    """sum_k x_k (log w_k - log S) over the group, terms of weight x_k = 0 left out."""
    ls = log0(float(_group_sum(w, r, c0, K)))
    s = like(x[r, c0], 0.0)
    for k in range(K):
        if x[r, c0 + k] != 0:
            s += x[r, c0 + k] * (log0(float(w[r, c0 + k])) - ls)
    return s


@njit(cache=True, error_model="numpy")
def _log_prob_bwd_group(w, x, r, c0, K, g, gw, gx):
    """gw_k += g (x_k / w_k - sum_i x_i / S) ; gx_k += g (log w_k - log S) (each skippable; nothing
    where g = 0, a term of weight x_k = 0 left out)."""
    if g == 0:
        return
    S = _group_sum(w, r, c0, K)
    sx = _group_sum(x, r, c0, K)
    ls = log0(float(S))
    for k in range(K):
        c = c0 + k
        if gw.shape[0] != 0:
            gw[r, c] += g * ((x[r, c] / w[r, c] if x[r, c] != 0 else like(g, 0.0)) - sx / S)
        if gx.shape[0] != 0:
            gx[r, c] += g * (log0(float(w[r, c])) - ls)


@groups("out")
def categorical_probs_sample(r, g, probs, u, K, out):
    """One-hot per group of the smallest k with sum_{i<=k} w_i > u S, u = u[r, g K] (inverse CDF)."""
    _icdf_group(probs, u[r, g * K], r, g * K, K, out)


@rows("x")
def categorical_probs_log_prob(r, probs, x, K, out_rows):
    """out_rows[r] = sum_g sum_k x_k (log w_k - log S_g) (x one-hot or relaxed)."""
    s = like(x, 0.0)
    for g in range(x.shape[1] // K):
        s += _log_prob_group(probs, x, r, g * K, K)
    out_rows[r] = s


@groups("x")
def categorical_probs_log_prob_bwd(r, g, probs, x, K, grow, gprobs, gx):
    """gprobs += grow (x_k / w_k - sum_i x_i / S) ; gx += grow (log w_k - log S); skippable."""
    _log_prob_bwd_group(probs, x, r, g * K, K, grow[r], gprobs, gx)


@groups("gx")
def categorical_probs_st_bwd(r, g, probs, gx, K, gprobs):
    """Straight-through with probabilities: gprobs_k += (gx_k - sum_i pi_i gx_i) / S, the VJP of the
    mean pi = w / S; skippable."""
    if gprobs.shape[0] != 0:
        c0 = g * K
        S = _group_sum(probs, r, c0, K)
        dot = like(gx, 0.0)
        for k in range(K):
            if probs[r, c0 + k] != 0:   # a class of weight 0 adds nothing (its cotangent may be -inf)
                dot += probs[r, c0 + k] * gx[r, c0 + k]
        for k in range(K):
            gprobs[r, c0 + k] += (gx[r, c0 + k] - dot / S) / S


@rows("value")
def mvd_categorical_probs_draw(r, probs, u, K, stride, off, span, value, row_weights):
    """value[r] = the draw (inverse CDF, one-hot per group); configuration c >= 1 moves group
    (c - 1) // (K - 1) to its ((c - 1) % (K - 1))-th other class and weighs 0."""
    for c0 in range(0, value.shape[1], K):
        _icdf_group(probs, u[r, c0], r, c0, K, value)
    _configure_groups(r, stride, off, span, K, value, row_weights)


@rows("value")
def mvd_categorical_probs_grad(r, probs, value, cost, row_weights, K, stride, off, span, grad_probs):
    """grad_probs[r, k] += w_r (D_k - sum_i pi_i D_i) / S per group, on the draw's rows."""
    if slot_local(r, stride, span) == 0:
        w = row_weights[r]
        for gi in range(value.shape[1] // K):
            c0 = gi * K
            d = _drawn(value, r, c0, K)
            S = _group_sum(probs, r, c0, K)
            mean = like(cost, 0.0)
            for k in range(K):
                if k != d and probs[r, c0 + k] != 0:   # a class of weight 0 adds nothing (its cost may be -inf)
                    mean += probs[r, c0 + k] / S * _other(cost, r, stride, off, gi, K, k, d)
            for k in range(K):
                diff = _other(cost, r, stride, off, gi, K, k, d) if k != d else like(cost, 0.0)
                grad_probs[r, c0 + k] += w * (diff - mean) / S


def _unit(g, *shape):
    """Probabilities in [0, 1] with a 0 and a 1 among them (the certain outcomes)."""
    p = g.u(*shape)
    p.flat[0], p.flat[-1] = 0.0, 1.0
    return p


def _weights(g, *shape):
    """Non-negative weights per group, a few 0 (never drawn), every group's sum positive."""
    w = g.pos(*shape)
    w[::2, 1] = 0.0
    return w


R, D, K = 4, 6, 3   # G = 2 groups of K per row
PARITY = {
    "bernoulli_probs_sample": lambda g: (_unit(g, R, D), g.u(R, D), g.out(R, D)),
    "bernoulli_probs_log_prob": lambda g: (g.u(R, D), g.bits(R, D), g.out(R)),
    "bernoulli_probs_log_prob_bwd": lambda g: (g.u(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_probs_st_bwd": lambda g: (g.u(R, D), g.x(R, D), g.x(R, D)),
    "mvd_bernoulli_probs_draw": lambda g: (_unit(g, 8, 3), g.u(8, 3), 1, 1, 4, g.out(8, 3), g.pos(8)),
    "mvd_bernoulli_probs_grad": lambda g: (g.u(8, 3), g.bits(8, 3), g.x(8), g.pos(8), 1, 1, 4, g.x(8, 3)),
    "categorical_probs_sample": lambda g: (_weights(g, R, D), g.u(R, D), K, g.out(R, D)),
    "categorical_probs_log_prob": lambda g: (g.pos(R, D), g.onehot(R, 2, K), K, g.out(R)),
    "categorical_probs_log_prob_bwd": lambda g: (g.pos(R, D), g.onehot(R, 2, K), K, g.x(R), g.x(R, D),
                                                 g.x(R, D)),
    "categorical_probs_st_bwd": lambda g: (g.pos(R, D), g.x(R, D), K, g.x(R, D)),
    # 2 drawn rows of 1 + G (K - 1) = 5 configurations (G = 2 groups of K = 3 classes)
    "mvd_categorical_probs_draw": lambda g: (_weights(g, 10, 6), g.u(10, 6), 3, 1, 1, 5, g.out(10, 6), g.pos(10)),
    "mvd_categorical_probs_grad": lambda g: (g.pos(10, 6), g.onehot(10, 2, 3), g.x(10), g.pos(10), 3, 1, 1, 5,
                                             g.x(10, 6)),
}
