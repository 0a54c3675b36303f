"""The score control variate of stochastic derivatives weighed along the parameters
(ppl/lowering/tangents.py; the draws: stochastic_derivative.py).

A drawn row's estimate E_d along the parameter direction d (its banked estimates and its paths' W
D S) gets sum_t c_t,d s_t,d added, s_t,d the draw's score along d at step t of each jumping node (its
law's d log p(x) / d q times q's tangent, summed over the units): zero-mean whatever the draw, so any
coefficient c fixed before the step's draws keeps the estimate unbiased. The variance-minimising
coefficient is -Cov(E_d, s_t,d) / Var(s_t,d), and the scores of different steps are uncorrelated
(each has mean zero given what was drawn before it), so each cell (a jumping node's step) learns its
own from decayed sums over earlier steps' drawn rows: sum E s and sum s^2, and sum (E s)^2 for the
coefficient's noise: it is shrunk by max(0, 1 - sum (E s)^2 / (sum E s)^2) (positive-part James-Stein: 1
- 1 / z^2 of the sum's z), so that a cell whose score hardly correlates with the estimate does not add
its coefficient's noise. A cell's block in the step's `state` is CELL ND numbers: the coefficients in
use, then the three sums, ND each.
"""
import math

import numpy as np
from numba import njit

from ..declare import items, rows
from ..math.scalar import sigmoid
from ..math.slots import slot_local

CELL = 4   # a cell's numbers per direction: the coefficient in use, sum E s, sum s^2, sum (E s)^2


# each law's score of a unit: d log p(x) / d q, q the parameter its jumps are weighed in (the draws of
# stochastic_derivative.py compute it); selects of a divisor (0 / 0 never taken), not branches on the draw
@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_score(logits, x):
    return x - float(sigmoid(logits))


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_probs_score(probs, x):
    return 1.0 / (float(probs) - (1.0 - x))   # 1 / p, or -1 / (1 - p), no test of x


@njit(cache=True, error_model="numpy", inline="always")
def _poisson_score(rate, x):
    return x / (float(rate) if x != 0.0 else 1.0) - 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _binomial_score(n, param, x, logits):
    if logits:
        return x - float(n) * float(sigmoid(float(param)))
    p, m = float(param), float(n) - x
    return x / (p if x != 0.0 else 1.0) - m / (1.0 - p if m != 0.0 else 1.0)


@njit(cache=True, error_model="numpy", inline="always")
def _geometric_score(param, x, logits):
    if logits:
        p = float(sigmoid(float(param)))
        return (1.0 - p) - x * p
    p = float(param)
    return 1.0 / p - x / (1.0 - p if x != 0.0 else 1.0)


@rows("E")
def sd_estimate(r, W, D, S, acc, E, stride, span):
    """E[r, d] = acc[r, d] + sum_a W D S[r, a ND + d] on a drawn row (its estimate along direction d
    before any control variate); NaN on every other row, so that sd_score_learn's loop over all the
    rows (one that vectorises) adds nothing of theirs."""
    drawn = slot_local(r, stride, span) == 0
    ND, A = acc.shape[1], W.shape[1]
    for d in range(ND):
        e = acc[r, d]
        for a in range(A):
            e += W[r, a] * D[r, a] * S[r, a * ND + d]
        E[r, d] = e if drawn else math.nan


@items("steps * E.shape[1]")
def sd_score_learn(i, E, sc, steps, state, state_off):
    """Item i = (step t, direction d) of a jumping node's scores (sc: `steps` steps of R rows, written
    on the drawn rows; its cells at state[state_off + CELL ND t:]): the cell's sums of E s, s^2 and (E s)^2
    add every row's whose E (sd_estimate's: NaN off the drawn rows) and score are finite."""
    ND, R = E.shape[1], E.shape[0]
    t, d = i // ND, i % ND
    num, den, sq = 0.0, 0.0, 0.0
    for r in range(R):
        e, s = E[r, d], float(sc[t * R + r, d])
        ok = e - e == 0.0 and s - s == 0.0
        es = e * s if ok else 0.0
        num += es
        den += s * s if ok else 0.0
        sq += es * es
    k = state_off + CELL * ND * t
    state[k + ND + d] += num
    state[k + 2 * ND + d] += den
    state[k + 3 * ND + d] += sq


@rows("acc")
def sd_score_apply(r, sc, steps, state, state_off, acc, stride, span):
    """acc[r, d] += sum_t c_t,d sc[t R + r, d] on a drawn row (its banked estimates): a jumping node's
    control variates, its coefficients in use at state[state_off + CELL ND t + d]. Every cell has learned
    from sd_estimate's E before (the estimate without control variates), so the nodes add in turn."""
    if slot_local(r, stride, span) == 0:
        ND, R = acc.shape[1], acc.shape[0]
        for d in range(ND):
            t_cv = 0.0
            for t in range(steps):
                t_cv += state[state_off + CELL * ND * t + d] * float(sc[t * R + r, d])
            acc[r, d] += t_cv


@items("ND")
def sd_cv_update(d, state, state_off, C, ND, decay):
    """Direction d's coefficient in each of C cells (state[state_off + CELL ND c:]) from the cell's sums,
    -sum(E s) / sum(s^2) shrunk by max(0, 1 - sum((E s)^2) / sum(E s)^2) (0 while no score was seen),
    for the next step; then the sums decay."""
    for c in range(C):
        k = state_off + CELL * ND * c
        num, den, sq = state[k + ND + d], state[k + 2 * ND + d], state[k + 3 * ND + d]
        shrink = max(0.0, 1.0 - sq / (num * num)) if num != 0.0 else 0.0
        state[k + d] = -num / den * shrink if den > 0.0 else 0.0
        state[k + ND + d] = num * decay
        state[k + 2 * ND + d] = den * decay
        state[k + 3 * ND + d] = sq * decay


R, ND = 8, 2
PARITY = {
    "sd_estimate": lambda g: (g.pos(2 * R, 2), g.x(2 * R, 2), g.x(2 * R, 2 * ND), g.x(2 * R, ND), g.out(2 * R, ND),
                              1, 2),
    "sd_score_learn": lambda g: (g.x(2 * R, ND) * np.where(np.arange(2 * R) % 2 == 0, 1.0, np.nan)[:, None],
                                 g.x(3 * 2 * R, ND), 3, g.x(4 + CELL * ND * 3), 4),
    "sd_score_apply": lambda g: (g.x(3 * 2 * R, ND), 3, g.x(4 + CELL * ND * 3), 4, g.out(2 * R, ND), 1, 2),
    "sd_cv_update": lambda g: (g.x(CELL * ND * 3) ** 2, 0, 3, ND, 0.99),
}
