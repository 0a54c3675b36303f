"""A two-parameter SIR epidemic fitted to observed daily cases, the simulation problem `sir2` of
`benchmarks/simulations.py` (its section 7 registers it; this module keeps that file's length):
the definition (the plain simulator's docstring), the plain @njit simulator, the exact reference
(`sir2_dp`: a forward DP over the law of (S, I) with the derivatives along beta and gamma), the
ppl model, and the comparison of ppl's estimators on both parameters at once.
"""
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from sim_draws import binomial_icdf
from sim_references import binomial_window

njit = numba.njit(cache=True)
njit_nogil = numba.njit(cache=True, nogil=True)   # the DP: central differences run on threads

# 60 daily case counts B_t: one run of `sir2_cases` at beta = 0.35, gamma = 0.12 (the problem's
# N, I_0, T), numba's stream seeded with 20250301; pasted here so the problem does not depend on
# an RNG implementation.
SIR2_OBS = (3, 7, 7, 8, 12, 12, 20, 18, 16, 27, 32, 36, 43, 44, 40, 33, 50, 44, 42, 46,
            38, 40, 33, 37, 19, 19, 24, 15, 24, 15, 10, 13, 11, 9, 8, 12, 9, 6, 1, 4,
            4, 3, 2, 3, 0, 6, 1, 1, 0, 2, 2, 3, 1, 3, 0, 1, 1, 1, 0, 2)
OBS_BETA, OBS_GAMMA, OBS_SEED = 0.35, 0.12, 20250301

BETA = 0.3
PARAMS = {"gamma": 0.1, "n_pop": 1000, "i0": 10, "T": 60, "obs": np.array(SIR2_OBS, np.int64)}
MAX_REL_ERROR = 2e-3   # simulations.MAX_REL_ERROR, required of the gamma-derivative too
TAU_STATE = 1e-14      # pruning of the state law (|P| below this, |dP| below 1e3 x this)
TAU_PMF = 1e-14        # binomial windows: pmf >= this x the mode's, at the least ...
TAU_WIN = 1e-15        # ... or this / the state's weight (a state of small weight: narrower windows)


# ============================================================================ the simulator

@njit
def sir2_loss(beta, gamma, n_pop, i0, T, obs):
    """SIR epidemic fitted to observed daily cases, two parameters. Chain binomial, daily steps,
    state (S_t, I_t), S_0 = N - I_0. Each day t = 0..T-1, from the same state:
        new infections B_t ~ Binomial(S_t, 1 - exp(-beta I_t / N)),
        recoveries     C_t ~ Binomial(I_t, gamma),
        S_{t+1} = S_t - B_t,  I_{t+1} = I_t + B_t - C_t.
    f = sum_t (B_t - obs_t)^2, obs the 60 daily case counts `SIR2_OBS` (one run at beta = 0.35,
    gamma = 0.12, pasted as integers); theta = (beta, gamma): d E[f] / d beta and d E[f] / d gamma.
    Defaults: N = 1000, I_0 = 10, beta = 0.3, gamma = 0.1, T = 60 days.
    Two uniforms per day, always, inverse-CDF binomials.
    Reference: forward DP over the law of (S_t, I_t) with its derivatives along beta and gamma
    (E[(B_t - obs_t)^2 | S_t, I_t] in closed form), states and binomial windows pruned, what
    that drops bounded (`sim_sir2.sir2_dp`)."""
    s = n_pop - i0
    i = i0
    f = 0.0
    for t in range(T):
        u_inf = np.random.random()
        u_rec = np.random.random()
        b = binomial_icdf(u_inf, s, -math.expm1(-beta * i / n_pop))
        c = binomial_icdf(u_rec, i, gamma)
        f += (b - obs[t]) ** 2
        s -= b
        i += b - c
    return f


@njit
def sir2_batch(beta, gamma, n_pop, i0, T, obs, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = sir2_loss(beta, gamma, n_pop, i0, T, obs)


@njit
def sir2_cases(beta, gamma, n_pop, i0, T, seed):
    """The daily new infections B_0..B_{T-1} of one run (how `SIR2_OBS` was made, with OBS_*)."""
    np.random.seed(seed)
    s, i = n_pop - i0, i0
    out = np.zeros(T, np.int64)
    for t in range(T):
        u_inf = np.random.random()
        u_rec = np.random.random()
        b = binomial_icdf(u_inf, s, -math.expm1(-beta * i / n_pop))
        c = binomial_icdf(u_rec, i, gamma)
        out[t] = b
        s -= b
        i += b - c
    return out


# ============================================================================ the exact reference

@njit
def _recovery_windows(N, gamma, levels):
    """Binomial(i, gamma) for i = 0..N: its pmf and gamma-derivative on the widest window
    (`binomial_window` at levels[0]), stored reversed (qcr[i, N - c] = pmf(c): a window's pairs
    then write increasing columns), and per level l the window [c0, c1] where pmf >= levels[l] x
    the mode's, its left-out mass and |d/dgamma| bounds; cabs[i] bounds sum_c |d pmf(c)/dgamma|."""
    L = levels.size
    qcr, dqcr = np.zeros((N + 1, N + 1)), np.zeros((N + 1, N + 1))
    c0, c1 = np.zeros((L, N + 1), np.int64), np.zeros((L, N + 1), np.int64)
    ctail, cdtail = np.zeros((L, N + 1)), np.zeros((L, N + 1))
    cabs = np.zeros(N + 1)
    q, sc = np.zeros(N + 1), np.zeros(N + 1)
    for i in range(N + 1):
        for lev in range(L - 1, -1, -1):   # the widest last: q, sc hold its window
            c0[lev, i], c1[lev, i], ctail[lev, i], cdtail[lev, i] = binomial_window(i, gamma, levels[lev], q, sc)
        cabs[i] = cdtail[0, i]
        for c in range(c0[0, i], c1[0, i] + 1):
            qcr[i, N - c] = q[c]
            dqcr[i, N - c] = q[c] * sc[c]
            cabs[i] += abs(q[c] * sc[c])
    return qcr, dqcr, c0, c1, ctail, cdtail, cabs


@njit
def _day_loss(N, beta, o, P, Db, Dg, lo, hi):
    """sum over (S, I) of P E[(B - o)^2 | S, I] = P (S p (1 - p) + (S p - o)^2), p = 1 -
    exp(-beta I / N), and its derivatives along beta and gamma."""
    e = eb = eg = 0.0
    for s in range(N + 1):
        for i in range(lo[s], hi[s] + 1):
            w, wb, wg = P[s, i], Db[s, i], Dg[s, i]
            if w == 0.0 and wb == 0.0 and wg == 0.0:
                continue
            x = beta * i / N
            p = -math.expm1(-x)
            dp = (i / N) * math.exp(-x)
            m = s * p
            g = m * (1.0 - p) + (m - o) ** 2
            dg = (s * (1.0 - 2.0 * p) + 2.0 * s * (m - o)) * dp
            e += w * g
            eb += wb * g + w * dg
            eg += wg * g
    return e, eb, eg


@njit
def _bound(s, i, Ou, rest, N, beta, gamma, dP, dB, dG):
    """Bounds of the effect on (E, dE/dbeta, dE/dgamma) of dropping, entering a day with `rest`
    days of loss to come, a weight with |P| <= dP, |dP/dbeta| <= dB, |dP/dgamma| <= dG from a
    state (S, I) = (s, i) or one it leads to (sir2_dp's docstring)."""
    F = Ou + float(s) * s
    n = float(s + i)
    Gb = 0.5 * F * math.sqrt(rest * min(s * n, 0.25 * n * n) / (N * beta))
    Gg = 0.5 * F * math.sqrt(rest * n / (gamma * (1.0 - gamma)))
    return dP * F, dB * F + dP * Gb, dG * F + dP * Gg


@njit
def _scatter(s, i, w, wb, wg, lev, beta, N, levels, qb, sb, win, P2, B2, G2, lo2, hi2):
    """Send the state (S = s, I = i >= 1), of weight (w, wb, wg) = (P, dP/dbeta, dP/dgamma), one
    day forward over the pairs (b, c) of the binomials' windows at level `lev`. Returns bounds of
    the |P|, |d/dbeta| and |d/dgamma| of the pairs left out ({b outside} or {c outside}), and
    the number of pairs sent."""
    qcr, dqcr, c0, c1, ctail, cdtail, cabs = win
    x = beta * i / N
    p = -math.expm1(-x)
    dp = (i / N) * math.exp(-x)
    b0, b1, btail, bdtail = binomial_window(s, p, levels[lev], qb, sb)
    k0, k1 = c0[lev, i], c1[lev, i]
    bd_in = 0.0
    for b in range(b0, b1 + 1):
        bd_in += qb[b] * abs(sb[b])
    tail = btail + ctail[lev, i]
    aw = abs(w)
    drop_P = aw * tail
    drop_b = abs(wb) * tail + aw * (bdtail + bd_in * ctail[lev, i]) * dp
    drop_g = abs(wg) * tail + aw * (btail * cabs[i] + cdtail[lev, i])
    n = k1 - k0 + 1
    qr, dqr = qcr[i, N - k1:N - k0 + 1], dqcr[i, N - k1:N - k0 + 1]   # c = k1, k1 - 1, .., k0
    for b in range(b0, b1 + 1):
        q = qb[b]
        vP = w * q
        vB = wb * q + w * q * sb[b] * dp
        vG = wg * q
        s2 = s - b
        j0 = i + b - k1   # the column of c = k1; the slices keep the loop's indices in 0..n-1 (vectorised)
        p2, pb2, pg2 = P2[s2, j0:j0 + n], B2[s2, j0:j0 + n], G2[s2, j0:j0 + n]
        for k in range(n):
            p2[k] += vP * qr[k]
            pb2[k] += vB * qr[k]
            pg2[k] += vG * qr[k] + vP * dqr[k]
        lo2[s2] = min(lo2[s2], j0)
        hi2[s2] = max(hi2[s2], i + b - k0)
    return drop_P, drop_b, drop_g, (b1 - b0 + 1) * n


@njit
def _prune(N, P, Db, Dg, lo, hi, tau, tau_d, Ou, rest, beta, gamma):
    """Zero every state with |P| < tau and both |dP| < tau_d; shrink each row's I range to its
    nonzero states. Returns the bounds of the effect (E, beta, gamma), the mass dropped and the
    states kept."""
    eE = eB = eG = mass = 0.0
    kept = 0
    for s in range(N + 1):
        a, z = N + 1, -1
        for i in range(lo[s], hi[s] + 1):
            w, wb, wg = P[s, i], Db[s, i], Dg[s, i]
            if w == 0.0 and wb == 0.0 and wg == 0.0:
                continue
            if abs(w) < tau and abs(wb) < tau_d and abs(wg) < tau_d:
                x, y, z_ = _bound(s, i, Ou, rest, N, beta, gamma, abs(w), abs(wb), abs(wg))
                eE += x
                eB += y
                eG += z_
                mass += abs(w)
                P[s, i] = Db[s, i] = Dg[s, i] = 0.0
                continue
            kept += 1
            a = min(a, i)
            z = max(z, i)
        lo[s], hi[s] = a, z
    return eE, eB, eG, mass, kept


@njit
def _advance(N, beta, gamma, levels, tau_win, Ou, rest, P, Db, Dg, lo, hi, P2, B2, G2, lo2, hi2, qb, sb, win):
    """One day: every state of (P, Db, Dg) sent into (P2, B2, G2) (zero on entry), the old law
    cleared as it is read; a state's binomial windows at the level where pmf >= tau_win /
    max(|P|, |dP| / 1e3) x the mode's (within levels[0] .. levels[-1]). Returns the bounds of
    the windows' effect (E, beta, gamma), the mass they leave out and the pairs sent."""
    eE = eB = eG = mass = 0.0
    work = 0
    L = levels.size
    for s in range(N + 1):
        for i in range(lo[s], hi[s] + 1):
            w, wb, wg = P[s, i], Db[s, i], Dg[s, i]
            if w == 0.0 and wb == 0.0 and wg == 0.0:
                continue
            P[s, i] = Db[s, i] = Dg[s, i] = 0.0
            if i == 0:   # no one infected: the state stays (B = C = 0)
                P2[s, 0] += w
                B2[s, 0] += wb
                G2[s, 0] += wg
                lo2[s] = 0
                hi2[s] = max(hi2[s], 0)
                continue
            lev = 0
            scale = max(abs(w), 1e-3 * max(abs(wb), abs(wg)))
            while lev + 1 < L and levels[lev + 1] * scale <= tau_win:
                lev += 1
            dP, dB, dG, n = _scatter(s, i, w, wb, wg, lev, beta, N, levels, qb, sb, win, P2, B2, G2, lo2, hi2)
            x, y, z = _bound(s, i, Ou, rest, N, beta, gamma, dP, dB, dG)
            eE += x
            eB += y
            eG += z
            mass += dP
            work += n
        lo[s], hi[s] = N + 1, -1
    return eE, eB, eG, mass, work


@njit_nogil
def sir2_dp(beta, gamma, n_pop, i0, T, obs, tau_state, tau_pmf, tau_win):
    """E[f] = sum_t E[(B_t - obs_t)^2] of `sir2_loss` and its derivatives along beta and gamma.

    Forward mode over the law P_t of (S_t, I_t) (dense (N + 1)^2 arrays, each row S's live I
    range tracked): each day adds sum P_t E[(B_t - obs_t)^2 | S, I] (closed form) and its
    derivatives (P, dP/dbeta, dP/dgamma per state), then sends each state over the pairs (b, c)
    of the windows where each binomial's pmf is >= tau x its mode's, tau = tau_win / (the
    state's weight) within tau_pmf .. 1e-2 (in steps of 100x: a state of small weight gets
    narrower windows), and drops the states whose |P| < tau_state and |dP| < 1e3 tau_state.

    Bound of what is dropped. A weight (|P| <= dP, derivatives <= dB, dG) dropped entering day u
    from a state (s, i) (or on its way from it) changes E by at most dP F and d E / d theta by
    at most dB F + dP G, where F = sum_{v >= u} obs_v^2 + s^2 bounds the loss still to come
    (sum_v (B_v - obs_v)^2 <= sum_v obs_v^2 + (sum_v B_v)^2, sum_v B_v <= s) and
    G = (F / 2) sqrt(sum_{v >= u} Var(score_v)) bounds |d E[future loss | state] / d theta| =
    |E[(future loss - F / 2) x total score]| (the scores are martingale increments: their sum
    has mean 0 and the sum of their variances). The beta-score of Binomial(S_v, p) has variance
    S_v p'^2 / (p (1 - p)) <= S_v I_v / (N beta), the gamma-score of Binomial(I_v, gamma)
    I_v / (gamma (1 - gamma)), and S_v <= s, S_v + I_v <= s + i.

    Returns (E, dE/dbeta, dE/dgamma, err_E, err_beta, err_gamma, dropped_P, max_states, pairs)."""
    N = n_pop
    P, Db, Dg = np.zeros((N + 1, N + 1)), np.zeros((N + 1, N + 1)), np.zeros((N + 1, N + 1))
    P2, B2, G2 = np.zeros((N + 1, N + 1)), np.zeros((N + 1, N + 1)), np.zeros((N + 1, N + 1))
    lo, hi = np.full(N + 1, N + 1, np.int64), np.full(N + 1, -1, np.int64)
    lo2, hi2 = lo.copy(), hi.copy()
    P[N - i0, i0] = 1.0
    lo[N - i0] = hi[N - i0] = i0
    L = 1
    while tau_pmf * 100.0 ** L <= 1e-2:
        L += 1
    levels = tau_pmf * 100.0 ** np.arange(L)
    win = _recovery_windows(N, gamma, levels)
    qb, sb = np.zeros(N + 1), np.zeros(N + 1)
    O = np.zeros(T + 1)   # sum_{v >= u} obs_v^2
    for u in range(T - 1, -1, -1):
        O[u] = O[u + 1] + float(obs[u]) ** 2
    E = dEb = dEg = err_E = err_b = err_g = dropped = 0.0
    max_states = 1
    work = 0
    for t in range(T):
        e, eb, eg = _day_loss(N, beta, obs[t], P, Db, Dg, lo, hi)
        E += e
        dEb += eb
        dEg += eg
        if t == T - 1:
            break
        a = _advance(N, beta, gamma, levels, tau_win, O[t + 1], T - t - 1, P, Db, Dg, lo, hi, P2, B2, G2,
                     lo2, hi2, qb, sb, win)
        b = _prune(N, P2, B2, G2, lo2, hi2, tau_state, 1e3 * tau_state, O[t + 1], T - t - 1, beta, gamma)
        err_E += a[0] + b[0]
        err_b += a[1] + b[1]
        err_g += a[2] + b[2]
        dropped += a[3] + b[3]
        work += a[4]
        max_states = max(max_states, b[4])
        P, P2 = P2, P
        Db, B2 = B2, Db
        Dg, G2 = G2, Dg
        lo, lo2 = lo2, lo
        hi, hi2 = hi2, hi
    return E, dEb, dEg, err_E, err_b, err_g, dropped, max_states, work


def _dp(beta, gamma, n_pop, i0, T, obs):
    return sir2_dp(beta, gamma, n_pop, i0, T, np.asarray(obs, np.int64), TAU_STATE, TAU_PMF, TAU_WIN)


def sir2_reference(beta, gamma, n_pop, i0, T, obs, check=True):
    """The reference (simulations.Problem.reference): d E[f] / d beta as "value" / "abs_error"
    (the problem's theta), both derivatives under "by_parameter". abs_error = the DP's rigorous
    truncation bound + |forward mode - central difference of the DP's E| (h = 1e-4 theta; the
    four evaluations on threads)."""
    t0 = time.perf_counter()
    E, db, dg, eE, eb, eg, dropped, states, pairs = _dp(beta, gamma, n_pop, i0, T, obs)
    dp_s = time.perf_counter() - t0
    by = {"beta": {"value": db, "bound": eb, "abs_error": eb}, "gamma": {"value": dg, "bound": eg, "abs_error": eg}}
    if check:
        hb, hg = 1e-4 * beta, 1e-4 * gamma
        at = ((beta + hb, gamma), (beta - hb, gamma), (beta, gamma + hg), (beta, gamma - hg))
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as ex:
            e = [f.result()[0] for f in [ex.submit(_dp, b, g, n_pop, i0, T, obs) for b, g in at]]
        for k, (name, h) in enumerate((("beta", hb), ("gamma", hg))):
            r = by[name]
            r["central_difference"] = (e[2 * k] - e[2 * k + 1]) / (2 * h)
            r["central_h"] = h
            r["abs_error"] = r["bound"] + abs(r["central_difference"] - r["value"])
    for r in by.values():
        r["rel_error"] = r["abs_error"] / abs(r["value"])
    if not by["gamma"]["rel_error"] <= MAX_REL_ERROR:
        raise RuntimeError(f"sir2: d E[f] / d gamma's relative error {by['gamma']['rel_error']:.2e} exceeds "
                           f"{MAX_REL_ERROR}")
    return {"value": db, "abs_error": by["beta"]["abs_error"], "E_f": E, "E_f_abs_error": eE, "by_parameter": by,
            "dp_seconds": round(dp_s, 2), "states_max": int(states), "pairs": int(pairs), "dropped_mass": dropped,
            "method": (f"exact forward DP over (S, I) with its beta- and gamma-derivatives "
                       f"(E[(B_t - obs_t)^2 | S, I] in closed form); states pruned below {TAU_STATE:g} (|dP| below "
                       f"{1e3 * TAU_STATE:g}), binomials cut below max({TAU_PMF:g}, {TAU_WIN:g} / the state's weight) "
                       f"x their mode (dropped mass {dropped:.1e}); abs_error = the rigorous bound of what that leaves "
                       f"out + |forward - central difference| of the DP's E")}


# ============================================================================ ppl

THETAS = ("beta", "gamma")
NODES = ("inf", "rec")
CANDIDATES = ("score", "stochastic_derivative", "mvd")


def sir2_ppl(T, tag):
    """The epidemic in ppl: a scan over the days, the state (S, I) its carry and the observed
    cases its per-step input (xs: obs, one column a day); new infections and recoveries Binomial
    nodes (total counts S and I) of probabilities 1 - exp(-beta I / N) and gamma, both
    parameters; f = sum_t (B_t - obs_t)^2, a per-step cost. Data: `sir2_data`."""
    import ppl
    N = PARAMS["n_pop"]
    with ppl.Model(f"sir2_{tag}") as m:
        start = m.input("start", 2)
        obs = m.input("obs", T)
        beta = ppl.param("beta", 1, BETA)
        gamma = ppl.param("gamma", 1, PARAMS["gamma"])

        def day(carry, o):
            s, i = carry
            inf = ppl.Binomial("inf", s, probs=1.0 - ppl.exp(beta * i * (-1.0 / N)))
            rec = ppl.Binomial("rec", i, probs=gamma)
            d = inf - o
            m.cost("sq", ppl.total(d * d))
            return (s - inf, i + inf - rec), None
        ppl.scan(day, (start[:, 0], start[:, 1]), xs=obs, length=T)
    return m


def sir2_data(B, T=None):
    """B rows of (S_0, I_0) and the observed cases (the first T days)."""
    P = PARAMS
    T = T or P["T"]
    return {"start": np.tile([P["n_pop"] - P["i0"], P["i0"]], (B, 1)).astype(float),
            "obs": np.tile(P["obs"][:T].astype(float), (B, 1))}


def _spec(est):
    """simulations.estimator_spec (imported here: simulations imports this module)."""
    from simulations import estimator_spec
    return estimator_spec(est)


def _compile(est, T, batch):
    """The model compiled with `est` on both nodes (or "auto": the default policy, its measured
    choice made after the first gradient), B rows and their data, and the estimator per node."""
    prog = sir2_ppl(T, f"{est.replace(':', '_').replace('=', '_')}_{T}").compile(
        estimators="auto" if est == "auto" else {n: _spec(est) for n in NODES}, dtype=np.float64)
    B = max(8, batch // prog.rows_per_data_row)
    data = sir2_data(B, T)
    prog.grad(data, seed=0)
    if est == "auto":
        prog.choose(data)
    return prog, data, B, {n: prog.choices[prog.model.nodes[n]][0].estimator for n in NODES}


def _line(est, run, by_ref, rounds, plain_us, T):
    """One estimator's JSON line: per parameter its mean, se, bias z against the reference,
    std per estimate and variance x time; value = the sum over both of (std / |reference|)^2 x
    us per estimate (the cost of a given relative precision on both)."""
    g = np.array(run["g"])   # (rounds, 2)
    us = float(np.median(run["times"])) / run["B"] * 1e6
    per, value = {}, 0.0
    for k, name in enumerate(THETAS):
        ref = by_ref[name]
        se = g[:, k].std(ddof=1) / math.sqrt(rounds)
        std = g[:, k].std(ddof=1) * math.sqrt(run["B"])   # per estimate: each call averages B samples
        per[name] = {"mean": float(g[:, k].mean()), "se": se, "reference": ref["value"],
                     "reference_abs_error": ref["abs_error"],
                     "bias_z": (float(g[:, k].mean()) - ref["value"]) / math.hypot(se, ref["abs_error"]),
                     "std_per_estimate": std, "variance_x_time": std ** 2 * us}
        value += (std / abs(ref["value"])) ** 2 * us
    return {"bench": "simulations", "case": f"sir2/{est}", "metric": "relative_variance_x_time", "unit": "us",
            "value": value, "problem": "sir2", "T": T, "estimator": run["chosen"],
            "rows_per_sample": run["prog"].rows_per_data_row, "batch": run["B"], "rounds": rounds, **per,
            "us_per_estimate": us, "plain_us_per_sample": plain_us, "time_over_plain": us / plain_us,
            "first_step_s": run["first_step_s"]}


def compare_estimators(problem, batch, rounds, estimators=CANDIDATES):
    """simulations.compare_estimators for both parameters: each estimator on both nodes and the
    default policy ("auto"), compiled once, then `rounds` rounds alternating over them and the
    plain simulator (`problem`: simulations.PROBLEMS["sir2"]), each a gradient call on `batch`
    samples (batch / rows per sample rows, at least 8). One JSON line per estimator (`_line`)."""
    import ppl
    by_ref = problem.cached_reference()["by_parameter"]
    T = problem.T
    runs = {}
    for est in (*estimators, "auto"):
        t0 = time.perf_counter()
        try:
            prog, data, B, chosen = _compile(est, T, batch)
        except ppl.ModelError as e:
            print(json.dumps({"bench": "simulations", "case": f"sir2/{est}", "refused": str(e)}), flush=True)
            continue
        runs[est] = {"prog": prog, "data": data, "B": B, "chosen": chosen, "times": [], "g": [],
                     "first_step_s": time.perf_counter() - t0}
    plain = []
    problem.simulate_batch(n=batch, seed=1)
    for r in range(rounds):
        for run in runs.values():
            t0 = time.perf_counter()
            _, g = run["prog"].grad(run["data"], seed=1 + r)
            run["times"].append(time.perf_counter() - t0)
            run["g"].append([float(g[k][0]) for k in THETAS])
        t0 = time.perf_counter()
        problem.simulate_batch(n=batch, seed=1000 + r)
        plain.append((time.perf_counter() - t0) / batch * 1e6)
    plain_us = float(np.median(plain))
    out = {est: _line(est, run, by_ref, rounds, plain_us, T) for est, run in runs.items()}
    best = min((o for e, o in out.items() if e != "auto"), key=lambda o: o["value"], default=None)
    for o in out.values():
        if best is not None:
            o["baseline"], o["ratio"] = best["value"], o["value"] / best["value"]
        print(json.dumps(o), flush=True)
    return out
