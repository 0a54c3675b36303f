"""Poisson(rate) kernels: p(k) = rate^k exp(-rate) / k!, k = 0, 1, 2, ...

Sampling is the inverse CDF of a uniform u in (0, 1) (the program's uniform noise), searched
upwards from k = 0 with the log-probabilities log p(k) = log p(k - 1) + log(rate) - log(k) in
float64 for every program dtype (so exp(-rate) may underflow without harm: the terms near the
mode are summed exactly enough). The search stops at the first k with F(k) >= u, or, past the
mode, when the next term is below 1e-17 (F can no longer grow in float64: the rest of the tail
is below the resolution of u). It costs about rate + a few sqrt(rate) steps per draw.
The score needs d log p / d rate = k / rate - 1; a count has no pathwise gradient.
"""
import math

import numpy as np

from numba import njit

from ..declare import cells, rows
from ..math.scalar import like


@njit(cache=True, error_model="numpy")
def _inverse_cdf(rate, u):
    """The smallest k with P(K <= k) >= u, as a float64 count."""
    lam = float(rate)
    uu = float(u)
    loglam = math.log(lam) if lam != 0.0 else -math.inf   # log 0 as compiled code has it (not the simulator's error)
    logp = -lam
    F = math.exp(logp)
    k = 0.0
    while uu > F:
        k += 1.0
        logp += loglam - math.log(k)
        p = math.exp(logp)
        F += p
        if k > lam and p < 1e-17:
            break
    return k


@njit(cache=True, error_model="numpy")
def _log_prob_term(k, rate):
    """log p(k) = k log(rate) - rate - log(k!); k log(rate) left out at k = 0 (log p(0 | 0) = 0)."""
    kk = float(k)
    lam = float(rate)
    return like(rate, (kk * math.log(lam) if kk > 0.0 else 0.0) - lam - math.lgamma(kk + 1.0))


@cells("out")
def poisson_sample(r, j, rate, u, out):
    """out = the Poisson(rate) count at uniform u (inverse CDF)."""
    out[r, j] = _inverse_cdf(rate[r, j], u[r, j])


@rows("x")
def poisson_log_prob(r, rate, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | rate[r, j])."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob_term(x[r, j], rate[r, j])
    out_rows[r] = s


@rows("x")
def poisson_log_prob_bwd(r, rate, x, grow, grate, gx):
    """grate += grow[r] (x / rate - 1) (skippable; x / rate is 0 at x = 0, rate 0 included); a
    row of weight 0 adds nothing, whatever its count (an mvd or stochastic-derivative branch row
    may hold a count of probability 0: x / 0 there); a count has no value gradient (gx is not
    touched)."""
    g = grow[r]
    if grate.shape[0] != 0 and g != 0:
        for j in range(x.shape[1]):
            ratio = x[r, j] / rate[r, j] if x[r, j] > 0 else like(x, 0.0)
            grate[r, j] += g * (ratio - like(x, 1.0))


R, D = 4, 6
PARITY = {
    "poisson_sample": lambda g: (4 * g.pos(R, D), g.u(R, D), g.out(R, D)),
    "poisson_log_prob": lambda g: (4 * g.pos(R, D), np.floor(6 * g.pos(R, D)), g.out(R)),
    "poisson_log_prob_bwd": lambda g: (4 * g.pos(R, D), np.floor(6 * g.pos(R, D)), g.x(R), g.x(R, D), g.skip(2)),
}
