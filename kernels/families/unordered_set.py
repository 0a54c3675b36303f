"""The unordered set estimator with its built-in baseline (Kool, van Hoof & Welling 2020,
"Estimating gradients for discrete random variables by sampling without replacement", ICLR) for a
categorical node of one group of K classes.

A drawn row becomes k rows (the node's configuration digit at `stride`): row t holds the t-th of k
distinct classes drawn without replacement by Gumbel-top-k (the k largest a_j + G_j, one Gumbel
per class shared by the k rows, ties by index). With S the unordered set and, for E a subset of
S, Q(E) = the probability that sampling without replacement from the classes outside E (their
probabilities renormalised) draws S \\ E first (Q(S) = 1; Q(E) = sum_{t in S\\E} p_t / (1 - p(E))
Q(E + t)), the estimator's terms are
    w_s   = p_s R(S, s) = p_s Q({s}) / Q({})                  (the probability s came first, given S)
    b_s   = p_s f(s) + sum_{s' != s} p_s' Q({s, s'}) / Q({s}) f(s')     (the built-in baseline)
    d/da E f  ~  sum_{s in S} w_s (f(s) - b_s) (e_s - pi)
    E f       ~  sum_{s in S} w_s f(s)
(b_s: an unbiased estimate of E f from the other k - 1 draws given s drawn first, hence k >= 2).
The forward pass multiplies row t's weight by w_{s_t}, so the costs, every other parameter's
gradient and the estimators below see the set estimate. The backward pass reads f of row t as
rw L / w (the rows below this node's digit keep their own weights, and the estimate is linear
in f, so it holds for each of their configurations and adds up to the marginal).

The table of log Q over the 2^k subsets (bit t: the t-th class), then the k log p_t and the k
classes, is the workspace row `ws` of each set's digit-0 row (width 2^k + 2k), computed once per set; sums of probabilities are taken in
log space in float64 (log-sum-exp), so no 1 - p is rounded and nothing under- or overflows for
finite logits.

Declared once (kernels/declare.py): both kernels are row bodies that act for a set's digit-0
row, which writes its table row and the k rows of its set (forward: the value and the weights;
backward: the gradient); one CUDA thread per row, so no two iterations touch the same element.
"""
import math

import numpy as np
from numba import njit

from ..declare import rows

MAX_SET = 8   # 2^k workspace entries per row


def table_width(k):
    return (1 << k) + 2 * k


@njit(cache=True, error_model="numpy")
def _lae(x, y):
    """log(e^x + e^y) in float64 (-inf is the empty sum; NaN stays NaN)."""
    hi = x if x > y else y
    lo = y if x > y else x
    if lo == -math.inf:
        return hi
    return hi + math.log1p(math.exp(lo - hi))


@njit(cache=True, error_model="numpy")
def _rank(a, g, r, K, j):
    """Position of class j in the descending order of a + g (ties by index)."""
    kj = a[r, j] + g[r, j]
    n = 0
    for i in range(K):
        ki = a[r, i] + g[r, i]
        if ki > kj or (ki == kj and i < j):
            n += 1
    return n


@njit(cache=True, error_model="numpy")
def _log_norm(a, r, K):
    """(m, l): log pi_j = a_j - m - l, in float64."""
    m = float(a[r, 0])
    for j in range(1, K):
        if float(a[r, j]) > m:
            m = float(a[r, j])
    s = 0.0
    for j in range(K):
        s += math.exp(float(a[r, j]) - m)
    return m, math.log(s)


@njit(cache=True, error_model="numpy")
def _us_table(a, g, r, K, k, ws):
    """ws[r]: log Q over the subsets of S, then log p_t, then the classes s_t (t = 0 .. k-1)."""
    n = 1 << k
    m, l = _log_norm(a, r, K)
    lout = -math.inf   # log of the probability outside S
    for j in range(K):
        t = _rank(a, g, r, K, j)
        lp = float(a[r, j]) - m - l
        if t < k:
            ws[r, n + t] = lp
            ws[r, n + k + t] = j
        else:
            lout = _lae(lout, lp)
    ws[r, n - 1] = 0.0
    for mask in range(n - 2, -1, -1):
        lden = lout
        acc = -math.inf
        for t in range(k):
            if not (mask >> t) & 1:
                lp = float(ws[r, n + t])
                lden = _lae(lden, lp)
                acc = _lae(acc, lp + float(ws[r, mask | (1 << t)]))
        ws[r, mask] = acc - lden


@njit(cache=True, error_model="numpy")
def _log_first(ws, r, k, t):
    """log w_t = log p_t + log Q({t}) - log Q({})."""
    return float(ws[r, (1 << k) + t]) + float(ws[r, 1 << t]) - float(ws[r, 0])


@njit(cache=True, error_model="numpy")
def _us_set(logits, gumbel, stride, k, K, ws, out, rw, r):
    """The set of drawn row r (digit 0): its table (in ws[r]), its k rows' values and weights."""
    n = 1 << k
    _us_table(logits, gumbel, r, K, k, ws)
    for t in range(k):
        rt = r + t * stride
        s = int(ws[r, n + k + t])
        for j in range(K):
            out[rt, j] = 0.0
        out[rt, s] = 1.0
        rw[rt] *= math.exp(_log_first(ws, r, k, t))


@njit(cache=True, error_model="numpy")
def _us_grad_set(logits, ws, L, rw, stride, k, K, ga, r):
    """The set of drawn row r (digit 0): every one of its k rows' gradient."""
    n = 1 << k
    m, l = _log_norm(logits, r, K)
    for t in range(k):
        rt = r + t * stride
        lw_t = _log_first(ws, r, k, t)
        rho_t = float(rw[rt]) * float(L[rt]) * math.exp(-lw_t)   # f(s_t), times the weights below the node
        base = math.exp(float(ws[r, n + t])) * rho_t
        for t2 in range(k):
            if t2 != t:
                r2 = r + t2 * stride
                rho2 = float(rw[r2]) * float(L[r2]) * math.exp(-_log_first(ws, r, k, t2))
                base += math.exp(float(ws[r, n + t2]) + float(ws[r, (1 << t) | (1 << t2)]) - float(ws[r, 1 << t])) * rho2
        c = math.exp(lw_t) * (rho_t - base)
        s = int(ws[r, n + k + t])
        for j in range(K):
            ga[rt, j] -= c * math.exp(float(logits[r, j]) - m - l)
        ga[rt, s] += c


@rows("out")
def us_forward(r, logits, gumbel, stride, k, K, ws, out, rw):
    """Row t of each set: one-hot of the t-th class of the Gumbel-top-k; rw *= w_{s_t}; the table in
    the set's digit-0 row of ws (the other rows of ws are left alone)."""
    if (r // stride) % k == 0:
        _us_set(logits, gumbel, stride, k, K, ws, out, rw, r)


@rows("ga")
def us_grad(r, logits, ws, L, rw, stride, k, K, ga):
    """ga[row t] += w_t (f(s_t) - b_t) (e_{s_t} - pi) for each set (rows with digit 0 and their k - 1 partners)."""
    if (r // stride) % k == 0:
        _us_grad_set(logits, ws, L, rw, stride, k, K, ga, r)


def _case(g):
    """us_forward's arguments (4 sets of k = 3 of 5 classes, stride 1; a set's rows share logits
    and noise), then us_grad's on the table and weights the CPU forward left."""
    k, Kc, n = 3, 5, 12
    logits, gum = np.repeat(2 * g.x(n // k, Kc), k, axis=0), np.repeat(g.x(n // k, Kc), k, axis=0)
    fwd = (logits, gum, 1, k, Kc, g.out(n, table_width(k)), g.out(n, Kc), g.pos(n))
    ws, rw = fwd[5].copy(), fwd[7].copy()
    us_forward(logits, gum, 1, k, Kc, ws, g.out(n, Kc), rw)
    return fwd + (logits, ws, g.x(n), rw, 1, k, Kc, g.x(n, Kc))


PARITY = {   # sets of k = 3 of 5 classes at stride 1: 4 sets
    "us_forward": lambda g: _case(g)[:8],
    "us_grad": lambda g: _case(g)[8:],
}
