"""The learned importance of stochastic derivatives' jumps (ppl/lowering/tangents.py; the draws
and the banking: stochastic_derivative.py). Along the parameters, each jump is weighed also by an
importance of its node's step and path, kept in the step's `state`: per cell (a jumping node's
step), a block of A numbers (one per path) each of: the importance in use (0: weight 1), the
candidate (0: none learned yet), the kept jumps' sums of D^2 (D = f(y) - f(x)), their counts, and
the sums of the two `_moments`. A drawn row's `learn[r, a]` holds path a's kept cell, `learn[r, A + a]`
its jumps' weights summed under the weighing not in use, so that each step estimates its
estimate's second moment under both.
"""
import math

import numpy as np
from numba import njit

from ..declare import items, rows
from ..math.slots import slot_local
from ..math.words import add_word


@njit(cache=True, error_model="numpy", inline="always")
def _importance(su, sc):
    """(the importance in use, the other weighing's) of a cell from its stored h in use `su` (0:
    weight 1) and candidate `sc` (0: none learned yet): the jumps are weighed by the one, and their
    weights under the other summed too (learn's second block), so that each step measures both."""
    return (su, 1.0) if su > 0.0 else (1.0, sc if sc > 0.0 else 1.0)


@njit(cache=True, error_model="numpy", inline="always")
def _moments(su, sc, wu, wo, d2):
    """A kept jump's estimates of the square of its path's estimate (W D / h)^2 under weight 1 and
    under the candidate importance (W_1 W D^2 / h and W_c W D^2 / (h h_c): unbiased, the jump
    having been kept with probability w h / W): W = wu the weights' sum in use, wo the other's."""
    hu, ho = _importance(su, sc)
    b = wu * d2 / hu
    if su > 0.0:
        return wo * b, wu * b / hu
    return wu * b, wo * b / ho


@njit(cache=True, error_model="numpy", inline="always")
def _kept_terms(su, sc, w, wo, d2):
    """What a path's kept jump, its estimate final (the weights' sum in use w, the other's wo, D^2 =
    d2; its cell's importance in use su and candidate sc), adds to its cell's sums: D^2, a count and
    the two _moments, zeros where D or a moment is not finite. Scalars only: a helper taking the
    arrays would keep a reference count of each per call (kernels/declare.py); the body adds them
    (`k = int(learn[r, a])`, `add_word(state, k + (2 + i) A + a, term i)`)."""
    m1, mc = _moments(su, sc, w, wo, d2)
    ok = d2 - d2 == 0.0
    both = ok and m1 - m1 == 0.0 and mc - mc == 0.0
    return (d2 if ok else 0.0), (1.0 if ok else 0.0), (m1 if both else 0.0), (mc if both else 0.0)


@rows("W")
def sd_learn_final(r, W, D, learn, state, stride, span):
    """At the step's end, each path's kept jump not banked yet (W[r, a] != 0 on a drawn row: an
    empty reservoir keeps its first jump) joins its cell's sums as in sd_bank."""
    if slot_local(r, stride, span) == 0:
        A = W.shape[1]
        for a in range(A):
            if W[r, a] != 0.0:
                k = int(learn[r, a])
                t2, t3, t4, t5 = _kept_terms(state[k + a], state[k + A + a], W[r, a], learn[r, A + a], D[r, a] * D[r, a])
                add_word(state, k + 2 * A + a, t2)
                add_word(state, k + 3 * A + a, t3)
                add_word(state, k + 4 * A + a, t4)
                add_word(state, k + 5 * A + a, t5)


@items("A")
def sd_importance(a, state, state_off, C, A, decay, floor, prior):
    """Path a's learned importance over C cells (a jumping node's step; cell c's numbers at
    state[state_off + 6 A c:], a block of A (one per path) each: the importance in use, the candidate,
    the kept jumps' sums of D^2, their counts, and the two _moments sums). The candidate h is the
    root mean square of the D of the cell's kept jumps, shrunk towards the path's (over every
    cell) as if the cell had `prior` more jumps of that mean square, and floored at `floor` x the
    largest cell's; the path weighs its jumps by it where its estimate's second moment measured
    below weight 1's (else 1: 0 stored); 0 while no jump had D != 0. Then every sum decays."""
    ss, nn, m1, mc = 0.0, 0.0, 0.0, 0.0
    for c in range(C):
        k = state_off + 6 * A * c
        ss += state[k + 2 * A + a]
        nn += state[k + 3 * A + a]
        m1 += state[k + 4 * A + a]
        mc += state[k + 5 * A + a]
    pooled = ss / nn if nn > 0.0 else 0.0
    top = 0.0
    for c in range(C):
        k = state_off + 6 * A * c
        state[k + A + a] = (state[k + 2 * A + a] + prior * pooled) / (state[k + 3 * A + a] + prior)
        top = max(top, state[k + A + a])
    use = mc < m1
    for c in range(C):
        k = state_off + 6 * A * c
        h = math.sqrt(max(state[k + A + a], floor * floor * top)) if top > 0.0 else 0.0
        state[k + A + a] = h
        state[k + a] = h if use else 0.0
        for b in range(2, 6):
            state[k + b * A + a] *= decay


def learn_case(g, R, A):
    """learn for a parity case: each path's kept cell (0 or 12: two cells of A = 2 paths) and the
    other weighing's sum."""
    return np.concatenate([12 * g.bits(R, A), g.pos(R, A)], axis=1)


R, A = 12, 2
PARITY = {
    "sd_learn_final": lambda g: (g.bits(R, A), g.x(R, A), learn_case(g, R, A), g.pos(24) * (np.arange(24) != 12), 1, 4),
    # cell 1 path 0: no jump counted; path 0's candidate measured worse than weight 1, path 1's better
    "sd_importance": lambda g: (g.pos(2 + 36) * (np.arange(38) != 2 + 12 + 6) + 9 * np.isin(np.arange(38), (11, 12)),
                                2, 3, A, 0.99, 0.01, 4.0),
}
