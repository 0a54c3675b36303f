"""StochasticAD.jl's random-walk tutorial as simulation problems `walk10` .. `walk100` of
`benchmarks/simulations.py` (its section 6 registers them; this module keeps that file's length):
the definition (the plain simulator's docstring), the plain @njit simulator, the ppl model, and
StochasticAD's published figures for it. The exact reference is `sim_references.walk_dp`.
"""
import math

import numba
import numpy as np

from sim_draws import bernoulli_icdf

njit = numba.njit(cache=True)

WALK_NS = (10, 20, 30, 50, 100)   # the tutorial's variance sweep (n, at p = 2 n): one problem each

# The peer's figures, quoted (not measured here): StochasticAD.jl's published random-walk tutorial
# figures for `derivative_estimate` with its default backend (pruned stochastic triples), the
# standard deviation per sample of d X_n^2 / d p at p = 2 n, keyed by n.
STOCHASTICAD_WALK_STD = {10: 0.99, 20: 1.59, 30: 2.18, 50: 3.42, 100: 6.48}


@njit
def walk_final(p, T):
    """Random walk on the integers from StochasticAD.jl's tutorial. X_0 = 0; each step
    t = 0..T-1 (T = n),
        up_t ~ Bernoulli(q(X_t)),  q(X) = exp(-X / p),
        X_{t+1} = X_t + 1 if up_t else X_t - 1
    (q(0) = 1: the walk never goes below 0; the chance of a step up decays with decay length p).
    f = X_n^2; theta = p, d E[X_n^2] / d p.
    Problems walk10, walk20, walk30, walk50, walk100: n = 10, 20, 30, 50, 100 at p = 2 n, the
    tutorial's variance sweep, where StochasticAD's pruned stochastic triples have a published
    std per sample of 0.99, 1.59, 2.18, 3.42, 6.48 (`STOCHASTICAD_WALK_STD`).
    One uniform per step (up = u < q).
    Reference: the exact law of X_t on 0..n + 1 (DP) with its p-derivative, no truncation
    (`sim_references.walk_dp`)."""
    x = 0
    for t in range(T):
        up = bernoulli_icdf(np.random.random(), math.exp(-x / p))
        x += 2 * up - 1
    return float(x * x)


@njit
def walk_batch(p, T, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = walk_final(p, T)


def walk_ppl(T, tag, p):
    """The walk in ppl: a scan whose carry is X; each step a Bernoulli node of probability
    exp(-relu(X) / p), theta = the parameter `p` (its initial value the problem's); f = X_n^2, a
    cost after the loop. relu(X) = X on every path of the walk (X >= 0); it keeps the probability
    <= 1 on the alternative paths an estimator may evaluate (mvd takes both values of each step,
    so the down step at X = 0, whose weight dq / dp is 0 there, reaches X = -1)."""
    import ppl
    with ppl.Model(f"walk_{tag}") as m:
        X0 = m.input("X0", 1)
        p = ppl.param("p", 1, p)

        def step(X, t):
            up = ppl.Bernoulli("up", probs=ppl.exp(-ppl.relu(X) / p))
            return X + 2.0 * up - 1.0, None
        X, _ = ppl.scan(step, X0, length=T)
        m.cost("sq", ppl.total(X * X))
    return m


def walk_data(B):
    return {"X0": np.zeros((B, 1))}
