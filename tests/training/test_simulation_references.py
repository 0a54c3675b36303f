"""The oracles of the simulation benchmark (benchmarks/simulations.py, benchmarks/sim_references.py)
against independent ones, on small instances:

* each DP's E[f] and d E[f] / d theta against brute-force enumeration of every path (exact sums
  over the paths' probabilities and their scores, written apart from the DPs);
* each truncation bound against the truncation it bounds (a loose DP against a tight one);
* each plain simulator against its DP: the mean of f, and the common-random-number central
  difference (f(theta + h) - f(theta - h)) / 2h against the DP's exact
  (E(theta + h) - E(theta - h)) / 2h (what ties the simulator to the model the DP computes);
  tests/stats.py's `assert_unbiased`, whose test of the test requires a 5% error to fail;
* the Kalman derivative against complex-step and central differences, the Kalman
  log-likelihood against the joint Gaussian density of y (scipy), the particle filter's
  likelihood estimate (unbiased for p(y)) against the Kalman p(y);
* the inverse-CDF draws against scipy's quantiles;
* the cached references (benchmarks/data/simulation_references.json) against their precision
  requirement and, where cheap, a recomputation (the random walk's also against the complex-step
  derivative of its dense transition matrix).
"""
import itertools
import json
import math
import os
import sys

import numpy as np
import pytest
import scipy.stats as st

import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
import sim_references as R  # noqa: E402
import simulations as S  # noqa: E402


def assert_mean(samples, exact, label):
    """The samples' mean equals `exact`, with the power to see a 5% error (stats.assert_unbiased)."""
    r = stats.assert_unbiased(np.asarray(samples, float)[:, None], np.array([exact]), label)
    print(label, r)


def crn_difference(problem, theta, h, n, seed, **over):
    lo = problem.simulate_batch(theta - h, seed, n, **over)
    hi = problem.simulate_batch(theta + h, seed, n, **over)
    return (hi - lo) / (2 * h)


# ----------------------------------------------------------------------------- inverse CDFs

def test_inverse_cdf_draws_are_scipy_quantiles():
    us = np.array([1e-9, 0.003, 0.2, 0.5, 0.77, 0.999, 1 - 1e-9])
    for n, p in ((10, 0.3), (57, 0.05), (40, 0.8), (200, 0.5)):
        got = [S.binomial_icdf(u, n, p) for u in us]
        assert got == list(st.binom.ppf(us, n, p).astype(int)), (n, p)
    for lam in (0.3, 4.5, 40.0):
        got = [S.poisson_icdf(u, lam) for u in us]
        assert got == list(st.poisson.ppf(us, lam).astype(int)), lam
    assert S.poisson_icdf(0.9, 0.0) == 0 and S.binomial_icdf(0.9, 0, 0.3) == 0
    w = np.array([0.1, 0.0, 2.0, 0.5, 0.4])
    cum = np.cumsum(w)
    for u in (0.0, 0.03, 0.05, 0.4, 0.99):
        assert S.categorical_icdf(u, cum, 5) == np.searchsorted(cum, u * cum[-1], side="right")


# ----------------------------------------------------------------------------- queue

def test_queue_dp_against_enumeration():
    a, s, T = 0.45, 0.5, 6
    E = dE = 0.0
    for steps in itertools.product(range(4), repeat=T):   # (A, D) per step
        L, tot, prob, score = 0, 0, 1.0, 0.0
        for k in steps:
            A, D = k & 1, k >> 1
            prob *= (a if A else 1 - a) * (s if D else 1 - s)
            score += D / s - (1 - D) / (1 - s)
            L = max(L + A - D, 0)
            tot += L
        E += prob * tot / T
        dE += prob * score * tot / T
    got = R.queue_dp(a, s, T, 0)
    assert got[0] == pytest.approx(E, rel=1e-12) and got[1] == pytest.approx(dE, rel=1e-12)


def test_queue_simulator_against_dp():
    pr = S.PROBLEMS["queue"]
    s, a, T, h = 0.5, 0.45, 10, 0.05
    assert_mean(pr.simulate_batch(s, 1, 40_000, T=T), R.queue_dp(a, s, T, 0)[0], "queue mean")
    exact = (R.queue_dp(a, s + h, T, 0)[0] - R.queue_dp(a, s - h, T, 0)[0]) / (2 * h)
    assert_mean(crn_difference(pr, s, h, 40_000, 2, T=T), exact, "queue CRN difference")


# ----------------------------------------------------------------------------- inventory

def inventory_enumerated(lam, S_, s, K, c, h, p, T, I0, dmax=30):
    E = dE = 0.0
    pmf = st.poisson.pmf(np.arange(dmax + 1), lam)
    for ds in itertools.product(range(dmax + 1), repeat=T):
        inv, cost, prob, score = I0, 0.0, 1.0, 0.0
        for d in ds:
            prob *= pmf[d]
            score += d / lam - 1
            if inv <= s:
                cost += K + c * (S_ - inv)
                inv = S_
            cost += p * max(d - inv, 0)
            inv = max(inv - d, 0)
            cost += h * inv
        E += prob * cost / T
        dE += prob * score * cost / T
    return E, dE


def test_inventory_dp_against_enumeration():
    args = (1.5, 6, 2, 5.0, 1.0, 0.5, 4.0, 3, 4)   # lam, S, s, K, c, h, p, T, I0; P(D > 30) < 1e-27
    E, dE = inventory_enumerated(*args)
    got = R.inventory_dp(*args)
    assert got[0] == pytest.approx(E, rel=1e-10) and got[1] == pytest.approx(dE, rel=1e-10)


def test_inventory_simulator_against_dp():
    pr = S.PROBLEMS["inventory"]
    lam, T, h = 10.0, 10, 1.0
    p = dict(pr.params, T=T)
    rest = tuple(p[k] for k in ("S", "s", "K", "c", "h", "p", "T", "I0"))
    assert_mean(pr.simulate_batch(lam, 3, 20_000, T=T), R.inventory_dp(lam, *rest)[0], "inventory mean")
    exact = (R.inventory_dp(lam + h, *rest)[0] - R.inventory_dp(lam - h, *rest)[0]) / (2 * h)
    assert_mean(crn_difference(pr, lam, h, 40_000, 4, T=T), exact, "inventory CRN difference")


# ----------------------------------------------------------------------------- branching

def test_branching_dp_against_enumeration():
    Rr, Kc, z0, T, zc = 1.5, 3.0, 2, 3, 40   # rates <= 4.5: P(Poisson(4.5) > 40) < 1e-22
    lam = lambda z: Rr * z / (1 + z / Kc)   # noqa: E731
    E = dE = 0.0
    for z1 in range(zc + 1):
        p1 = st.poisson.pmf(z1, lam(z0))
        s1 = z1 / Rr - lam(z0) / Rr            # d log pmf / dR (dlam / dR = lam / R)
        for z2 in range(zc + 1):
            p2 = st.poisson.pmf(z2, lam(z1)) if z1 else float(z2 == 0)
            s2 = (z2 / Rr - lam(z1) / Rr) if z1 else 0.0
            # E[Z_3 | z2] = lam(z2), d/dR = lam(z2) / R
            E += p1 * p2 * lam(z2)
            dE += p1 * p2 * ((s1 + s2) * lam(z2) + lam(z2) / Rr)
    got = R.branching_dp(Rr, Kc, z0, T, 200)
    assert got[0] == pytest.approx(E, rel=1e-10) and got[1] == pytest.approx(dE, rel=1e-10)


def test_branching_truncation_bound_holds():
    """Truncated at z_max 25..40 (dropping 20% .. 4e-5 of the mass): the stated bounds hold and
    are within 20x of the actual error (not vacuous)."""
    tight = R.branching_dp(1.6, 25.0, 3, 30, 200)
    assert tight[2] < 1e-40 and tight[3] < 1e-40
    for z_max in (25, 30, 35, 40):
        E, dE, errE, errdE, dropped = R.branching_dp(1.6, 25.0, 3, 30, z_max)
        assert dropped > 1e-5
        assert abs(E - tight[0]) <= errE <= 20 * abs(E - tight[0]), z_max
        assert abs(dE - tight[1]) <= errdE <= 20 * abs(dE - tight[1]), z_max


def test_branching_simulator_against_dp():
    pr = S.PROBLEMS["branching"]
    Rr, T, h = 1.6, 10, 0.1
    assert_mean(pr.simulate_batch(Rr, 5, 40_000, T=T), R.branching_dp(Rr, 25.0, 3, T, 200)[0], "branching mean")
    exact = (R.branching_dp(Rr + h, 25.0, 3, T, 200)[0] - R.branching_dp(Rr - h, 25.0, 3, T, 200)[0]) / (2 * h)
    assert_mean(crn_difference(pr, Rr, h, 40_000, 6, T=T), exact, "branching CRN difference")


# ----------------------------------------------------------------------------- SIR

def sir_enumerated(beta, gamma, N, i0, T):
    """E[peak] and its beta-derivative summed over every (B_t, C_t) path."""
    def rec(t, s, i, peak, prob, score):
        if t == T:
            return prob * peak, prob * score * peak
        x = beta * i / N
        p = -math.expm1(-x)
        dp = (i / N) * math.exp(-x)
        e = de = 0.0
        for b in range(s + 1):
            pb = st.binom.pmf(b, s, p) if i else float(b == 0)
            sb = (b / p - (s - b) / (1 - p)) * dp if i else 0.0
            for c in range(i + 1):
                i2 = i + b - c
                r = rec(t + 1, s - b, i2, max(peak, i2), prob * pb * st.binom.pmf(c, i, gamma), score + sb)
                e += r[0]
                de += r[1]
        return e, de
    return rec(0, N - i0, i0, i0, 1.0, 0.0)


def test_sir_dp_against_enumeration():
    E, dE = sir_enumerated(0.9, 0.3, 6, 2, 3)
    got = R.sir_dp(0.9, 0.3, 6, 2, 3, 1e-300, 1e-300)
    assert got[0] == pytest.approx(E, rel=1e-12) and got[1] == pytest.approx(dE, rel=1e-12)


def test_sir_pruning_bound_holds_and_derivative_is_the_expectations():
    args = (0.3, 0.1, 40, 3, 40)
    tight = R.sir_dp(*args, 1e-30, 1e-30)
    E, dE, errE, errdE, dropped, _ = R.sir_dp(*args, 1e-7, 1e-6)
    assert dropped > 1e-4   # 0.09% of the mass pruned: the bounds hold and are not vacuous
    assert abs(E - tight[0]) <= errE <= 10 * abs(E - tight[0])
    assert abs(dE - tight[1]) <= errdE <= 100 * abs(dE - tight[1])
    h = 1e-4
    cd = (R.sir_dp(0.3 + h, *args[1:], 1e-30, 1e-30)[0] - R.sir_dp(0.3 - h, *args[1:], 1e-30, 1e-30)[0]) / (2 * h)
    assert tight[1] == pytest.approx(cd, rel=1e-6)


def test_sir_simulator_against_dp():
    pr = S.PROBLEMS["sir"]
    beta, h, over = 0.3, 0.05, dict(n_pop=30, i0=3, T=20)
    dp = lambda b: R.sir_dp(b, 0.1, 30, 3, 20, 1e-30, 1e-30)[0]   # noqa: E731
    assert_mean(pr.simulate_batch(beta, 7, 20_000, **over), dp(beta), "sir mean")
    exact = (dp(beta + h) - dp(beta - h)) / (2 * h)
    assert_mean(crn_difference(pr, beta, h, 20_000, 8, **over), exact, "sir CRN difference")


# ----------------------------------------------------------------------------- random walk

def walk_enumerated(p, n):
    """E[X_n^2] and its p-derivative summed over every up / down path (the score of each step:
    d log q / dp = X / p^2 up, -(dq / dp) / (1 - q) down; a down step at X = 0 has probability 0)."""
    E = dE = 0.0
    for ups in itertools.product((0, 1), repeat=n):
        x, prob, score = 0, 1.0, 0.0
        for up in ups:
            q = math.exp(-x / p)
            if not up and x == 0:
                break
            prob *= q if up else 1 - q
            score += x / p ** 2 if up else -q * x / p ** 2 / (1 - q)
            x += 1 if up else -1
        else:
            E += prob * x * x
            dE += prob * score * x * x
    return E, dE


def walk_by_matrix(p, n):
    """E[X_n^2] by the dense transition matrix on 0..n (plain NumPy, so a complex p gives the
    complex-step derivative)."""
    k = np.arange(n + 1)
    q = np.exp(-k / p)
    M = np.zeros((n + 1, n + 1), dtype=np.result_type(p, float))
    M[k[:-1], k[:-1] + 1] = q[:-1]
    M[k[1:], k[1:] - 1] = 1 - q[1:]
    law = np.zeros(n + 1, dtype=M.dtype)
    law[0] = 1.0
    for _ in range(n):
        law = law @ M
    return law @ (k * k)


def test_walk_dp_against_enumeration():
    for p, n in ((3.0, 8), (20.0, 10)):
        E, dE = walk_enumerated(p, n)
        got = R.walk_dp(p, n)
        assert got[0] == pytest.approx(E, rel=1e-12) and got[1] == pytest.approx(dE, rel=1e-10), (p, n)


def test_walk_simulator_against_dp():
    pr = S.PROBLEMS["walk20"]
    p, n, h = 40.0, 20, 2.0
    assert_mean(pr.simulate_batch(p, 11, 40_000), R.walk_dp(p, n)[0], "walk mean")
    exact = (R.walk_dp(p + h, n)[0] - R.walk_dp(p - h, n)[0]) / (2 * h)
    assert_mean(crn_difference(pr, p, h, 50_000, 12), exact, "walk CRN difference")


# ----------------------------------------------------------------------------- Kalman / particle filter

def pf_args(T):
    p = S.PROBLEMS["particle_filter"].params
    return p["A0"], p["Lq"] @ p["Lq"].T, p["C"], p["r"], p["m0"], p["L0"] @ p["L0"].T, p["y"][:T]


def test_kalman_loglik_is_the_joint_gaussian_density():
    T, theta = 6, 0.8
    A0, Q, C, r, m0, P0, y = pf_args(T)
    A = theta * A0
    # x_t = A^t x_0 + sum_{k=1..t} A^{t-k} w_k: the covariance of (y_1..y_T) in closed form
    powers = [np.linalg.matrix_power(A, k) for k in range(T + 1)]
    cov = np.empty((T, T))
    for t in range(1, T + 1):
        for u in range(1, T + 1):
            cxx = powers[t] @ P0 @ powers[u].T + sum(powers[t - k] @ Q @ powers[u - k].T for k in range(1, min(t, u) + 1))
            cov[t - 1, u - 1] = C @ cxx @ C + (r if t == u else 0.0)
    mean = np.array([C @ powers[t] @ m0 for t in range(1, T + 1)])
    assert R.kalman_loglik(theta, A0, Q, C, r, m0, P0, y) == pytest.approx(
        st.multivariate_normal(mean, cov).logpdf(y), rel=1e-12)


def test_kalman_derivative_against_complex_step_and_central_differences():
    A0, Q, C, r, m0, P0, y = pf_args(40)
    for theta in (0.5, 0.8, 0.95):
        ll, dll = R.kalman_loglik_grad(theta, A0, Q, C, r, m0, P0, y)
        assert ll == pytest.approx(R.kalman_loglik(theta, A0, Q, C, r, m0, P0, y), rel=1e-13)
        cs = R.kalman_loglik(complex(theta, 1e-20), A0, Q, C, r, m0, P0, y, dtype=complex).imag / 1e-20
        h = 1e-5
        cd = (R.kalman_loglik(theta + h, A0, Q, C, r, m0, P0, y) - R.kalman_loglik(theta - h, A0, Q, C, r, m0, P0, y)) / (2 * h)
        assert dll == pytest.approx(cs, rel=1e-11) and dll == pytest.approx(cd, rel=1e-7)


def test_particle_filter_likelihood_is_unbiased_for_kalman():
    """p_hat is unbiased for p(y): E[exp(log p_hat - log p)] = 1 (T = 5, 32 particles)."""
    pr = S.PROBLEMS["particle_filter"]
    T, theta = 5, 0.8
    ll = R.kalman_loglik(theta, *pf_args(T))
    x = pr.simulate_batch(theta, 9, 20_000, T=T, n_part=32)
    assert_mean(np.exp(x - ll), 1.0, "particle filter p_hat / p")


# ----------------------------------------------------------------------------- the cached references

def test_cached_references_are_complete_precise_and_reproduced():
    with open(S.REFERENCES_JSON) as fh:
        data = json.load(fh)["problems"]
    assert set(data) == set(S.PROBLEMS)
    for name, pr in S.PROBLEMS.items():
        entry = pr.cached_reference()   # raises if cached for other parameters
        assert entry["rel_error"] <= S.MAX_REL_ERROR and entry["abs_error"] >= 0, name
        assert abs(entry["value"]) > 50 * entry["abs_error"], name
    for name in ("queue", "inventory", "branching"):   # seconds each; the SIR DP takes ~30 s
        pr = S.PROBLEMS[name]
        r = pr.compute_reference()
        assert r["value"] == pytest.approx(data[name]["value"], rel=1e-10, abs=data[name]["abs_error"]), name
    for n in (10, 20, 30, 50, 100):   # the random walk: the DP again, and the complex step of the dense matrix
        pr = S.PROBLEMS[f"walk{n}"]
        assert pr.compute_reference()["value"] == pytest.approx(data[pr.name]["value"], rel=1e-12), pr.name
        cs = walk_by_matrix(complex(pr.theta, 1e-20), n).imag / 1e-20
        assert cs == pytest.approx(data[pr.name]["value"], rel=1e-10), pr.name
    pf = S.PROBLEMS["particle_filter"]
    r = pf.reference(pf.theta, **pf.params, jensen_samples=0)
    assert r["value"] == pytest.approx(data["particle_filter"]["value"], rel=1e-12)
    # the derivative of E[log p_hat] (Kalman + gap) is known to the same precision
    assert data["particle_filter"]["jensen_gap_se"] <= S.MAX_REL_ERROR * abs(data["particle_filter"]["value"])
