"""Binomial(n, p) kernels: p(k) = C(n, k) p^k q^(n - k), k = 0..n, q = 1 - p, n = total_count,
given by probs p or by logits a (p = sigmoid(a), q = sigmoid(-a): each keeps its relative
accuracy). Every formula runs in float64 for every program dtype.

Sampling is the inverse CDF of ONE uniform u per unit (`binomial_icdf`): the smallest k with
F(k) >= u, exact for any n (no normal approximation), and for a fixed u monotone in p, so common
random numbers couple neighbouring parameters. Where the mean n p is at most SEQUENTIAL_MEAN and p
at most 1/2, the search runs up from 0 (p(0) = q^n, pmf(k + 1) = pmf(k) (n - k) p / ((k + 1) q)):
no log-gamma function, n p + 1 steps at most. Otherwise it starts at the mode m = floor((n + 1) p)
with p(m) from log-gamma functions: F(m) is the sum of the terms below the mode, summed downwards
(pmf(k - 1) = pmf(k) k q / ((n - k + 1) p)) until a term is below 1e-20 of the sum; from there the
CDF recurrence walks down (F(k - 1) = F(k) - pmf(k)) or up to the answer. About 10 sqrt(n p q) + 1
steps per draw (the terms more than 9.6 standard deviations below the mode are below 1e-20).

The score needs d log p / dp = k / p - (n - k) / q (a term left out where its weight k or n - k is
0: finite wherever k has positive probability, p = 0 and p = 1 included), or d/da = k - n p. No
gradient reaches total_count (a discrete input: its kernels leave its cotangent alone), nor the
count itself.

Measure-valued derivative (estimators/mvd.py): d/dp E f(X) = n E[f(Y + 1) - f(Y)], Y ~ Bin(n - 1,
p). The draw row holds X = Y + B (B = 1[v < p] from a second uniform: X ~ Bin(n, p)), the branch
row of unit j moves it to X + 1 - 2B (the other of Y, Y + 1), so the estimate is n (X - X')
(f(X) - f(X')): exact at p in {0, 1}, one row per unit.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, rows
from ..math.scalar import like, log0, log1m, log_sigmoid, sigmoid
from ..math.slots import slot_config, slot_local


SEQUENTIAL_MEAN = 100.0   # binomial_icdf's search from 0 up to this mean: cheaper than log-gamma functions


@njit(cache=True, error_model="numpy")
def floor_count(x):
    """floor(x) of a float64 x >= 0, as a float64 (every float from 2^52 up is an integer already;
    int(x) would overflow beyond 2^63)."""
    return x if x >= 4503599627370496.0 else float(int(x))


@njit(cache=True, error_model="numpy")
def binomial_icdf(n, p, q, u):
    """The smallest k in 0..n with P(K <= k) >= u for Binomial(n, p), q = 1 - p given apart (float64)."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if q <= 0.0:
        return n
    if n * p <= SEQUENTIAL_MEAN and p <= 0.5:   # upwards from 0 (q^n >= exp(-2 SEQUENTIAL_MEAN) > 0)
        t = math.exp(n * math.log1p(-p))
        F, k, fwd = t, 0.0, p / q
        top = min(n, n * p + 20.0 * math.sqrt(n * p) + 40.0)   # P(K > top) < 1e-40: F(top) >= any u < 1
        while F < u and k < top:
            t *= (n - k) / (k + 1.0) * fwd
            k += 1.0
            F += t
        return k
    m = min(floor_count((n + 1.0) * p), n)
    pm = math.exp(math.lgamma(n + 1.0) - math.lgamma(m + 1.0) - math.lgamma(n - m + 1.0)
                  + m * log0(p) + (n - m) * log0(q))
    back, fwd = q / p, p / q
    F, t, k = pm, pm, m    # F(m): the mode's term and those below it, while they count
    while k > 0.0:
        t *= k / (n - k + 1.0) * back
        k -= 1.0
        F += t
        if t <= 1e-20 * F:
            break
    t, k = pm, m
    if u <= F:   # downwards to the smallest k with F(k) >= u
        while k > 0.0 and F - t >= u:
            F -= t
            t *= k / (n - k + 1.0) * back
            k -= 1.0
        return k
    while k < n:   # upwards; past the mode a term below 1e-17 no longer moves F in float64
        t *= (n - k) / (k + 1.0) * fwd
        k += 1.0
        F += t
        if F >= u or t < 1e-17:
            break
    return k


@njit(cache=True, error_model="numpy")
def _pq(param, logits):
    """(p, q, log p, log q) in float64 of a probability or, logits=True, a logit."""
    x = float(param)
    if logits:
        return sigmoid(x), sigmoid(-x), log_sigmoid(x), log_sigmoid(-x)
    return x, 1.0 - x, log0(x), log1m(x)


@njit(cache=True, error_model="numpy")
def _log_prob(n, k, param, logits):
    """log p(k | n, p): -inf outside 0..n; a term of weight 0 left out (log p(n | p = 1) = 0)."""
    nn, kk = float(n), float(k)
    if kk < 0.0 or kk > nn:
        return -math.inf
    p, q, lp, lq = _pq(param, logits)
    s = math.lgamma(nn + 1.0) - math.lgamma(kk + 1.0) - math.lgamma(nn - kk + 1.0)
    if kk > 0.0:
        s += kk * lp
    if nn - kk > 0.0:
        s += (nn - kk) * lq
    return s


@njit(cache=True, error_model="numpy")
def _score(n, k, param, logits):
    """d log p(k) / dp = k / p - (n - k) / q (terms of weight 0 left out), or d/da = k - n p."""
    nn, kk = float(n), float(k)
    p, q, lp, lq = _pq(param, logits)
    if logits:
        return kk - nn * p
    s = 0.0
    if kk > 0.0:
        s += kk / p
    if nn - kk > 0.0:
        s -= (nn - kk) / q
    return s


@njit(cache=True, error_model="numpy")
def _sample(n, param, u, logits):
    p, q, lp, lq = _pq(param, logits)
    return binomial_icdf(float(n), p, q, float(u))


@cells("out")
def binomial_sample(r, j, total_count, probs, u, out):
    """out = the Binomial(n, p) count at uniform u (inverse CDF)."""
    out[r, j] = _sample(total_count[r, j], probs[r, j], u[r, j], False)


@cells("out")
def binomial_logits_sample(r, j, total_count, logits, u, out):
    """out = the Binomial(n, sigmoid(a)) count at uniform u (inverse CDF)."""
    out[r, j] = _sample(total_count[r, j], logits[r, j], u[r, j], True)


@rows("x")
def binomial_log_prob(r, total_count, probs, x, out_rows):
    """out_rows[r] = sum_j log p(x | n, p)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob(total_count[r, j], x[r, j], probs[r, j], False)
    out_rows[r] = s


@rows("x")
def binomial_logits_log_prob(r, total_count, logits, x, out_rows):
    """out_rows[r] = sum_j log p(x | n, sigmoid(a))."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob(total_count[r, j], x[r, j], logits[r, j], True)
    out_rows[r] = s


@rows("x")
def binomial_log_prob_bwd(r, total_count, probs, x, grow, gtotal_count, gprobs, gx):
    """gprobs += grow[r] (x / p - (n - x) / q) (skippable; nothing on a row of weight 0); no
    gradient reaches total_count or the count (gtotal_count, gx are not touched)."""
    g = grow[r]
    if gprobs.shape[0] != 0:
        if g != 0:
            for j in range(x.shape[1]):
                gprobs[r, j] += g * _score(total_count[r, j], x[r, j], probs[r, j], False)


@rows("x")
def binomial_logits_log_prob_bwd(r, total_count, logits, x, grow, gtotal_count, glogits, gx):
    """glogits += grow[r] (x - n sigmoid(a)) (skippable); gtotal_count, gx are not touched."""
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(x.shape[1]):
            glogits[r, j] += g * _score(total_count[r, j], x[r, j], logits[r, j], True)


@cells("out")
def count_enum(r, j, stride, bound, out):
    """Counts 0..bound per unit from the enumeration digit (r // stride) % (bound + 1)^D: base-(bound + 1)
    digit j -> unit j."""
    c = r // stride
    for _ in range(j):
        c //= bound + 1
    out[r, j] = c % (bound + 1)


@njit(cache=True, error_model="numpy")
def _mvd_split(n, param, u, v, logits):
    """(Y, B) of the mvd draw X = Y + B: Y ~ Bin(n - 1, p) at u, B = 1[v < p]; (0, 0) when n = 0."""
    nn = float(n)
    if nn <= 0.0:
        return 0.0, 0.0
    p, q, lp, lq = _pq(param, logits)
    return binomial_icdf(nn - 1.0, p, q, float(u)), (1.0 if float(v) < p else 0.0)


@njit(cache=True, error_model="numpy")
def _mvd_draw(r, total_count, param, u, v, stride, off, span, value, row_weights, logits):
    """The rows of mvd_binomial_draw / mvd_binomial_logits_draw (their docstring)."""
    c = slot_config(r, stride, off, span, value.shape[1] + 1)   # unit c - 1 takes its other B
    for j in range(value.shape[1]):
        y, b = _mvd_split(total_count[r, j], param[r, j], u[r, j], v[r, j], logits)
        value[r, j] = y + 1.0 - b if j == c - 1 and total_count[r, j] > 0 else y + b
    if c > 0:
        row_weights[r] = 0.0


@njit(cache=True, error_model="numpy")
def _mvd_grad(r, total_count, param, value, cost, row_weights, stride, off, span, gparam, logits):
    """The rows of mvd_binomial_grad / mvd_binomial_logits_grad (their docstring)."""
    if slot_local(r, stride, span) == 0 and gparam.shape[0] != 0:
        w = row_weights[r]
        for j in range(value.shape[1]):
            rb = r + (off + j) * stride
            d = w * total_count[r, j] * (value[r, j] - value[rb, j]) * (cost[r] - cost[rb])
            if logits:
                p, q, lp, lq = _pq(param[r, j], True)
                d *= p * q
            gparam[r, j] += d


@rows("value")
def mvd_binomial_draw(r, total_count, probs, u, v, stride, off, span, value, row_weights):
    """value[r] = Y + B (Y ~ Bin(n - 1, p) at u, B = 1[v < p]); configuration c >= 1 moves unit
    c - 1 to Y + 1 - B (the other of Y, Y + 1; itself when n = 0) and weighs 0."""
    _mvd_draw(r, total_count, probs, u, v, stride, off, span, value, row_weights, False)


@rows("value")
def mvd_binomial_logits_draw(r, total_count, logits, u, v, stride, off, span, value, row_weights):
    """mvd_binomial_draw with p = sigmoid(logits)."""
    _mvd_draw(r, total_count, logits, u, v, stride, off, span, value, row_weights, True)


@rows("value")
def mvd_binomial_grad(r, total_count, probs, value, cost, row_weights, stride, off, span, gtotal_count, gprobs):
    """gprobs[r, j] += w_r n (X - X') (f(X) - f(X')), X' unit j's branch, on the draw's rows
    (= n (f(Y + 1) - f(Y))); total_count gets no gradient."""
    _mvd_grad(r, total_count, probs, value, cost, row_weights, stride, off, span, gprobs, False)


@rows("value")
def mvd_binomial_logits_grad(r, total_count, logits, value, cost, row_weights, stride, off, span, gtotal_count,
                             glogits):
    """mvd_binomial_grad times dp/da = p q."""
    _mvd_grad(r, total_count, logits, value, cost, row_weights, stride, off, span, glogits, True)


def _counts(g, *shape):
    """Totals 0..7, a 0 among them."""
    n = np.floor(8 * g.u(*shape)).astype(g.dt)
    n.flat[0] = 0
    return n


def _unit(g, *shape):
    p = g.u(*shape)
    p.flat[1], p.flat[-1] = 0.0, 1.0
    return p


def _below(g, n):
    """Counts within 0..n."""
    return np.floor(g.u(*n.shape) * (n + 1)).astype(g.dt)


def _log_prob_case(g, logits):
    n = _counts(g, R, D)
    return (n, g.x(R, D) if logits else g.u(R, D), _below(g, n), g.out(R))


def _bwd_case(g, logits):
    n = _counts(g, R, D)
    return (n, g.x(R, D) if logits else g.u(R, D), _below(g, n), g.x(R), g.x(R, D), g.x(R, D), g.x(R, D))


def _mvd_grad_case(g, logits):
    n = _counts(g, 8, 3)
    return (n, g.x(8, 3) if logits else g.u(8, 3), _below(g, n), g.x(8), g.pos(8), 1, 1, 4, g.x(8, 3), g.x(8, 3))


R, D = 4, 6
PARITY = {
    "binomial_sample": lambda g: (_counts(g, R, D) * 300, _unit(g, R, D), g.u(R, D), g.out(R, D)),
    "binomial_logits_sample": lambda g: (_counts(g, R, D) * 300, 3 * g.x(R, D), g.u(R, D), g.out(R, D)),
    "binomial_log_prob": lambda g: _log_prob_case(g, False),
    "binomial_logits_log_prob": lambda g: _log_prob_case(g, True),
    "binomial_log_prob_bwd": lambda g: _bwd_case(g, False),
    "binomial_logits_log_prob_bwd": lambda g: _bwd_case(g, True),
    "count_enum": lambda g: (2, 2, g.out(18, 2)),
    # 2 drawn rows of D + 1 = 4 configurations
    "mvd_binomial_draw": lambda g: (_counts(g, 8, 3), _unit(g, 8, 3), g.u(8, 3), g.u(8, 3), 1, 1, 4, g.out(8, 3),
                                    g.pos(8)),
    "mvd_binomial_logits_draw": lambda g: (_counts(g, 8, 3), g.x(8, 3), g.u(8, 3), g.u(8, 3), 1, 1, 4, g.out(8, 3),
                                           g.pos(8)),
    "mvd_binomial_grad": lambda g: _mvd_grad_case(g, False),
    "mvd_binomial_logits_grad": lambda g: _mvd_grad_case(g, True),
}
