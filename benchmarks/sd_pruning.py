"""Stochastic derivatives with pruning: where their variance comes from.

A stochastic derivative (Arya et al., NeurIPS 2022; StochasticAD.jl; ppl's
`stochastic_derivative`) estimates d E[f] / d theta of a discrete simulation. Each unit draw x
(inverse CDF of one uniform) has a jump to an alternative value y with a weight w per unit of
theta: for Binomial(n, p(theta)), x -> x + 1 with w = (n - x) / (1 - p) dp/dtheta. Pruning keeps
ONE of a sample's jumps, by a weighted reservoir (jump j with probability w_j / W, W = sum_j w_j),
simulates its alternative path to the end with the primal's uniforms after the jump (common
random numbers), and estimates W (f(alt) - f(primal)). Unpruned, every jump's alternative path
is simulated and the estimate is sum_j w_j (f(alt_j) - f(primal)): the same expectation, one
path per jump. The variance of the pruned estimator is the unpruned one's plus the choice's;
this script measures both, on the SIR problems of `benchmarks/simulations.py`:

    sir2  (sim_sir2.py) N = 1000, I_0 = 10, T = 60, f = sum_t (B_t - obs_t)^2, d/dbeta, d/dgamma
    sir   (simulations.sir_peak) N = 200, I_0 = 5, T = 100, f = max_t I_t, d/dbeta, d/dgamma

Day t: B ~ Binomial(S, 1 - exp(-beta I / N)), C ~ Binomial(I, gamma), one uniform each. Jumps: an
infection B -> B + 1, weight along beta (S - B) I / N; a recovery C -> C + 1, weight along gamma
(I - C) / (1 - gamma). Estimators, per sample:
    score                 (f - the batch's mean f) x the sum of the binomials' d log p / d theta
    pruned_shared         one reservoir over both kinds of jump (weight m = w_beta + w_gamma, the
                          |tangent| norm), one alternative path; the kept jump's estimate
                          W (w_d / m) (f(alt) - f(primal)) for each parameter d
    pruned_per_direction  one reservoir and alternative path per parameter, over its own jumps
    pruned_learned        pruned per direction, each jump's weight times an importance h[t, d] of its
                          day and direction, learned along the run: the root mean square of the
                          difference D of f of the jumps kept at that day in earlier batches (an
                          average decaying by DECAY a batch, floored at FLOOR x its direction's
                          largest, 1 until a day has one). The kept jump's estimate is
                          (sum_j w_j h_j) D / h_kept: unbiased for any h fixed before the batch,
                          and of least variance where h follows the jumps' |D|. LEARN_BATCHES
                          batches of BATCH samples learn it first (not counted)
    unpruned              every jump's alternative path, O(T^2) per sample
A kept jump resets its alternative state to the primal's with the jump applied; the alternative
draws its own binomials from its own state with the primal's uniforms; the difference D of f is
accumulated day by day (f = the sum of daily increments: the squared errors, or the running
peak's rises). When at a day's end the alternative state (S, I; and the running peak) equals the
primal's, W D is banked and the reservoir restarts (W = D = 0), as ppl does ("meeting"). The
reservoirs' choices use their own uniforms. The last line: the pruning's share of the variance
per parameter, 1 - var(unpruned) / var(pruned_per_direction).

    OPENBLAS_NUM_THREADS=1 python benchmarks/sd_pruning.py

JSON lines: per (problem, estimator) and parameter the mean, its standard error, the std per
sample and the z-score against the exact reference (benchmarks/data/simulation_references.json;
the peak SIR's reference is d/dbeta only), and us per sample.
"""
import argparse
import json
import math
import os
import time

import numba
import numpy as np

from sim_draws import binomial_icdf
from sim_sir2 import BETA as SIR2_BETA
from sim_sir2 import PARAMS as SIR2_PARAMS

njit = numba.njit(cache=True)

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCES_JSON = os.path.join(HERE, "data", "simulation_references.json")
THETAS = ("beta", "gamma")
ESTIMATORS = ("score", "pruned_shared", "pruned_per_direction", "pruned_learned", "unpruned")
DECAY, FLOOR, BATCH, LEARN_BATCHES = 0.99, 0.01, 256, 100   # pruned_learned

# problem: (beta, gamma, N, I_0, T, obs (unused by the peak), peak: f = max_t I_t)
PROBLEMS = {
    "sir2": (SIR2_BETA, SIR2_PARAMS["gamma"], SIR2_PARAMS["n_pop"], SIR2_PARAMS["i0"], SIR2_PARAMS["T"],
             np.asarray(SIR2_PARAMS["obs"], np.int64), False),
    "sir": (0.3, 0.1, 200, 5, 100, np.zeros(100, np.int64), True),   # simulations.PROBLEMS["sir"]
}


# ============================================================================ one day

@njit
def _draw(s, i, u_inf, u_rec, beta, gamma, N):
    """The day's (B, C) from the state (S, I) = (s, i): inverse-CDF binomials, one uniform each."""
    b = binomial_icdf(u_inf, s, -math.expm1(-beta * i / N))
    c = binomial_icdf(u_rec, i, gamma)
    return b, c


@njit
def _move(s, i, pk, b, c, t, obs, peak):
    """The state (S, I, running peak) after a day of B = b, C = c, and the day's increment of f:
    (b - obs_t)^2 (sir2: the peak stays 0), or the running peak's rise (the peak SIR: f = I_0 +
    the sum of the rises)."""
    s2, i2 = s - b, i + b - c
    if not peak:
        return s2, i2, pk, float((b - obs[t]) ** 2)
    if i2 > pk:
        return s2, i2, i2, float(i2 - pk)
    return s2, i2, pk, 0.0


@njit
def _weights(s, i, b, c, gamma, N):
    """The day's jump weights: infection B -> B + 1 along beta, (S - B) / (1 - p) dp/dbeta with
    dp/dbeta = (1 - p) I / N; recovery C -> C + 1 along gamma, (I - C) / (1 - gamma)."""
    return (s - b) * i / N, (i - c) / (1.0 - gamma)


@njit
def _start(N, i0, peak):
    return N - i0, i0, (i0 if peak else 0), (float(i0) if peak else 0.0)


# ============================================================================ the estimators

@njit
def score_batch(beta, gamma, N, i0, T, obs, peak, seed, n):
    """n samples of f and the sum of the score terms d log p / d theta of every binomial draw:
    along beta x (1 - p) / p - (S - x) times dp/dbeta / (1 - p) = I / N; along gamma
    C / gamma - (I - C) / (1 - gamma)."""
    np.random.seed(seed)
    f, sc = np.zeros(n), np.zeros((n, 2))
    for k in range(n):
        s, i, pk, tot = _start(N, i0, peak)
        for t in range(T):
            b, c = _draw(s, i, np.random.random(), np.random.random(), beta, gamma, N)
            if i > 0 and s > 0:
                p = -math.expm1(-beta * i / N)
                sc[k, 0] += (b * (1.0 - p) / p - (s - b)) * i / N
            sc[k, 1] += c / gamma - (i - c) / (1.0 - gamma)
            s, i, pk, inc = _move(s, i, pk, b, c, t, obs, peak)
            tot += inc
        f[k] = tot
    return f, sc


@njit
def _pruned_sample(beta, gamma, N, i0, T, obs, peak, shared, H, stats, out):
    """One sample of a pruned estimator into out[0:2] (beta, gamma): one reservoir over both
    kinds of jump (`shared`; the kept jump's own direction gets W D, w_d / m being 1 for it and 0
    for the other) or one per kind. A jump of day t and kind d weighs w H[t, d] (H all ones: the
    plain weights), and a banked kept jump's estimate is W D / H at its day; where `stats` has
    rows (pruned_learned), each banked kept jump adds D^2 and 1 to stats[its day, its reservoir].
    Reservoir r: weight W[r], the difference D[r] of f since its kept jump, its alternative state,
    whether it is live, the kind, day and H of its kept jump."""
    R = 1 if shared else 2
    W, D, hk = np.zeros(2), np.zeros(2), np.ones(2)
    sa, ia, pa = np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(2, np.int64)
    live, kind, kt = np.zeros(2, np.bool_), np.zeros(2, np.int64), np.zeros(2, np.int64)
    out[0] = out[1] = 0.0
    s, i, pk, _ = _start(N, i0, peak)
    for t in range(T):
        u_inf, u_rec = np.random.random(), np.random.random()
        b, c = _draw(s, i, u_inf, u_rec, beta, gamma, N)
        s2, i2, pk2, inc = _move(s, i, pk, b, c, t, obs, peak)
        for r in range(R):   # the live alternatives: their own draws, the primal's uniforms
            if live[r]:
                ba, ca = _draw(sa[r], ia[r], u_inf, u_rec, beta, gamma, N)
                sa[r], ia[r], pa[r], inc_a = _move(sa[r], ia[r], pa[r], ba, ca, t, obs, peak)
                D[r] += inc_a - inc
        wb, wg = _weights(s, i, b, c, gamma, N)
        for d in range(2):   # the day's jumps: infection (d = 0), recovery (d = 1)
            m = (wb if d == 0 else wg) * H[t, d]
            if m <= 0.0:
                continue
            r = 0 if shared else d
            W[r] += m
            if np.random.random() * W[r] < m:   # keep it: the primal's state, the jump applied
                sa[r], ia[r], pa[r], inc_j = _move(s, i, pk, b + 1 - d, c + d, t, obs, peak)
                D[r] = inc_j - inc
                live[r], kind[r], kt[r], hk[r] = True, d, t, H[t, d]
        s, i, pk = s2, i2, pk2
        for r in range(R):   # meeting: bank W D, restart the reservoir
            if live[r] and sa[r] == s and ia[r] == i and pa[r] == pk:
                _bank(r, W, D, hk, kind, kt, stats, out)
                live[r] = False
    for r in range(R):
        if live[r]:
            _bank(r, W, D, hk, kind, kt, stats, out)


@njit
def _bank(r, W, D, hk, kind, kt, stats, out):
    """Reservoir r's kept jump's estimate into out, its D^2 into stats (where it has rows); the
    reservoir restarts empty."""
    out[kind[r]] += W[r] * D[r] / hk[r]
    if stats.shape[0] > 0:
        stats[kt[r], r, 0] += D[r] * D[r]
        stats[kt[r], r, 1] += 1.0
    W[r] = D[r] = 0.0


@njit
def pruned_batch(beta, gamma, N, i0, T, obs, peak, shared, H, stats, seed, n):
    np.random.seed(seed)
    g = np.zeros((n, 2))
    for k in range(n):
        _pruned_sample(beta, gamma, N, i0, T, obs, peak, shared, H, stats, g[k])
    return g


def importance(stats):
    """h[t, d] from the banked jumps' statistics: sqrt(mean D^2) of day t, floored at FLOOR x the
    direction's largest; the largest where day t has none yet; 1 for a direction with none."""
    n = stats[:, :, 1]
    rms = np.sqrt(stats[:, :, 0] / np.where(n > 0, n, 1.0))
    h = np.ones_like(rms)
    for d in range(h.shape[1]):
        seen = n[:, d] > 0
        if seen.any():
            top = rms[seen, d].max()
            h[:, d] = np.where(seen, np.maximum(rms[:, d], FLOOR * top), top) if top > 0 else 1.0
    return h


def learned_run(beta, gamma, N, i0, T, obs, peak, seed, n):
    """n samples of pruned_learned after LEARN_BATCHES batches that learn h (the learning goes on)."""
    stats, out = np.zeros((T, 2, 2)), []
    for b in range(LEARN_BATCHES + -(-n // BATCH)):
        h = importance(stats)
        stats *= DECAY
        g = pruned_batch(beta, gamma, N, i0, T, obs, peak, False, h, stats, seed + b, BATCH)
        if b >= LEARN_BATCHES:
            out.append(g)
    return np.concatenate(out)[:n]


@njit
def _unpruned_sample(beta, gamma, N, i0, T, obs, peak, out):
    """One sample of the unpruned estimator into out[0:2]: the primal path (its uniforms, states
    and increments kept), then every jump's alternative path from its day to the end or to its
    meeting with the primal, sum_j w_j D_j per direction."""
    U = np.random.random((T, 2))
    st = np.zeros((T + 1, 3), np.int64)   # the state entering each day, and the last one
    bc, inc = np.zeros((T, 2), np.int64), np.zeros(T)
    s, i, pk, _ = _start(N, i0, peak)
    for t in range(T):
        st[t, 0], st[t, 1], st[t, 2] = s, i, pk
        bc[t, 0], bc[t, 1] = _draw(s, i, U[t, 0], U[t, 1], beta, gamma, N)
        s, i, pk, inc[t] = _move(s, i, pk, bc[t, 0], bc[t, 1], t, obs, peak)
    st[T, 0], st[T, 1], st[T, 2] = s, i, pk
    out[0] = out[1] = 0.0
    for t in range(T):
        s, i, pk, b, c = st[t, 0], st[t, 1], st[t, 2], bc[t, 0], bc[t, 1]
        wb, wg = _weights(s, i, b, c, gamma, N)
        for d in range(2):
            w = wb if d == 0 else wg
            if w <= 0.0:
                continue
            sa, ia, pa, inc_j = _move(s, i, pk, b + 1 - d, c + d, t, obs, peak)
            D = inc_j - inc[t]
            for t2 in range(t + 1, T):
                if sa == st[t2, 0] and ia == st[t2, 1] and pa == st[t2, 2]:
                    break   # met: the rest of the alternative is the primal's
                ba, ca = _draw(sa, ia, U[t2, 0], U[t2, 1], beta, gamma, N)
                sa, ia, pa, inc_a = _move(sa, ia, pa, ba, ca, t2, obs, peak)
                D += inc_a - inc[t2]
            out[d] += w * D


@njit
def unpruned_batch(beta, gamma, N, i0, T, obs, peak, seed, n):
    np.random.seed(seed)
    g = np.zeros((n, 2))
    for k in range(n):
        _unpruned_sample(beta, gamma, N, i0, T, obs, peak, g[k])
    return g


# ============================================================================ the comparison

def estimate(name, est, n, seed):
    """(n, 2) per-sample estimates of (d/dbeta, d/dgamma) and us per sample drawn (a first call of 8
    samples compiles or loads the cache, untimed)."""
    beta, gamma, N, i0, T, obs, peak = PROBLEMS[name]
    if est == "score":
        def call(m):
            f, sc = score_batch(beta, gamma, N, i0, T, obs, peak, seed, m)
            return (f - f.mean())[:, None] * sc   # the batch-mean baseline
    elif est == "unpruned":
        def call(m):
            return unpruned_batch(beta, gamma, N, i0, T, obs, peak, seed, m)
    elif est == "pruned_learned":
        def call(m):
            return learned_run(beta, gamma, N, i0, T, obs, peak, seed, m)
    else:
        def call(m):
            return pruned_batch(beta, gamma, N, i0, T, obs, peak, est == "pruned_shared", np.ones((T, 2)),
                                np.zeros((0, 2, 2)), seed, m)
    call(8)
    t0 = time.perf_counter()
    g = call(n)
    drawn = n + (LEARN_BATCHES * BATCH if est == "pruned_learned" else 0)   # its learning batches cost the same
    return g, (time.perf_counter() - t0) / drawn * 1e6


def references():
    with open(REFERENCES_JSON) as fh:
        probs = json.load(fh)["problems"]
    by = probs["sir2"]["by_parameter"]
    return {"sir2": {k: (by[k]["value"], by[k]["abs_error"]) for k in THETAS},
            "sir": {"beta": (probs["sir"]["value"], probs["sir"]["abs_error"])}}


def line(name, est, g, us, refs):
    """One JSON line: per parameter mean, se, std per sample, z against the reference."""
    n = g.shape[0]
    o = {"bench": "sd_pruning", "case": f"{name}/{est}", "problem": name, "estimator": est, "samples": n}
    for k, th in enumerate(THETAS):
        std = float(g[:, k].std(ddof=1))
        r = {"mean": float(g[:, k].mean()), "se": std / math.sqrt(n), "std_per_sample": std}
        if th in refs.get(name, {}):
            ref, err = refs[name][th]
            r["reference"] = ref
            r["z"] = (r["mean"] - ref) / math.hypot(r["se"], err)
        o[th] = r
    o["us_per_sample"] = us
    return o


def agreement(lines):
    """The largest |difference in mean| / its se over the pairs of estimators, per parameter."""
    out = {}
    for th in THETAS:
        rs = [o[th] for o in lines]
        out[th] = max(abs(a["mean"] - b["mean"]) / math.hypot(a["se"], b["se"])
                      for j, a in enumerate(rs) for b in rs[j + 1:])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200_000, help="samples of score and the pruned estimators")
    ap.add_argument("--unpruned", type=int, default=20_000, help="samples of the unpruned estimator")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    refs = references()
    share = {}
    t_all = time.perf_counter()
    for name in a.problems.split(","):
        out = {}
        for j, est in enumerate(ESTIMATORS):
            g, us = estimate(name, est, a.unpruned if est == "unpruned" else a.samples, a.seed + 1000 * j)
            out[est] = line(name, est, g, us, refs)
            print(json.dumps(out[est]), flush=True)
        pd, un = out["pruned_per_direction"], out["unpruned"]
        share[name] = {th: 1.0 - (un[th]["std_per_sample"] / pd[th]["std_per_sample"]) ** 2 for th in THETAS}
        share[name]["max_pairwise_z"] = agreement(list(out.values()))
    print(json.dumps({"bench": "sd_pruning", "case": "pruning_share_of_variance",
                      "definition": "1 - var(unpruned) / var(pruned_per_direction), per sample",
                      **share, "seconds": round(time.perf_counter() - t_all, 1)}), flush=True)


if __name__ == "__main__":
    main()
