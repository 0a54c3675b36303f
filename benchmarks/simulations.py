"""Simulations with discrete randomness: seven problems (the sixth, StochasticAD.jl's random-walk
tutorial, at five lengths: walk10 .. walk100; the seventh, sir2, an epidemic fitted to observed
cases with two parameters, in sim_sir2.py), their plain @njit simulators and exact
reference derivatives, against which gradient estimators of d E[f] / d theta are scored (bias
as a z-score against the reference, standard deviation per estimate, time per estimate). The
peer is StochasticAD.jl (Arya et al., NeurIPS 2022), whose users write such simulators.

    python benchmarks/simulations.py --references   # recompute benchmarks/data/simulation_references.json (~4 min of CPU)
    python benchmarks/simulations.py --plain        # us per sample of each plain simulator, one JSON line each
    python benchmarks/simulations.py --show         # each problem's definition and cached reference

`PROBLEMS` maps a name to a `Problem`: its definition (the docstring of its simulator), theta,
the other parameters, T, the plain @njit simulator (`run`: one sample from numba's global
random stream; `batch`: n samples of one seeded stream), and the function computing the
reference. Each problem has its own section below (definition, simulator, reference,
registration; the walk's definition, simulator and ppl model in `sim_walk.py`); a model of the
same problem in another system (a ppl model written with `ppl.scan`, a StochasticAD program) is
written in that problem's section and scored against `PROBLEMS[name].cached_reference()`.

Common random numbers (the draws: `sim_draws.py`). Every random variable is drawn from ONE
uniform (inverse CDF: Bernoulli u < p, binomial and Poisson by sequential search of the CDF,
categorical by binary search of the normalised cumulative weights) or, for Gaussians, one
standard normal; every sample consumes
the same draws in the same order whatever theta and the path, so `simulate(theta, seed)` at two
neighbouring thetas is a coupled pair: a CRN difference (f(theta + h) - f(theta - h)) / 2h has
the expectation (E[f(theta + h)] - E[f(theta - h)]) / 2h and a variance far below that of
independent draws.

References: exact dynamic programming (forward mode: the law of the state and its derivative
in theta propagated together) for problems 1-4, 6 and 7, the Kalman filter's exact derivative for 5.
Each stated with a bound of its error (truncation bounded rigorously; float64 rounding checked
by central differences of the exact expectation), required <= 0.2% relative (`MAX_REL_ERROR`).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sim_references as refs  # noqa: E402
import sim_sir2 as sir2  # noqa: E402
import sim_walk as walk  # noqa: E402
from sim_draws import bernoulli_icdf, binomial_icdf, categorical_icdf, poisson_icdf  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCES_JSON = os.path.join(HERE, "data", "simulation_references.json")
MAX_REL_ERROR = 2e-3   # a reference must be this precise (relative) to see a 5% bias

njit = numba.njit(cache=True)


# ============================================================================ the registry

@dataclass(frozen=True)
class Problem:
    name: str
    theta_name: str
    theta: float
    params: dict                  # the other parameters, in the order `run` takes them
    run: Callable                 # @njit (theta, *params) -> f, one sample from numba's stream
    batch: Callable               # @njit (theta, *params, seed, out): out[k] = k-th sample
    reference: Callable           # (theta, **params) -> dict (value, abs_error, E_f, method, ...)
    theta_range: tuple            # the open interval where theta is meaningful

    @property
    def definition(self) -> str:
        return self.run.__doc__

    @property
    def T(self) -> int:
        return int(self.params["T"])

    def args(self, **over):
        unknown = set(over) - set(self.params)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; known: {list(self.params)}")
        return tuple(over.get(k, v) for k, v in self.params.items())

    def simulate(self, theta=None, seed=0, **over) -> float:
        """f of one sample, the stream seeded by `seed` (= simulate_batch(theta, seed, 1)[0])."""
        return float(self.simulate_batch(theta, seed, 1, **over)[0])

    def simulate_batch(self, theta=None, seed=0, n=1, **over) -> np.ndarray:
        out = np.empty(n)
        self.batch(self._theta(theta), *self.args(**over), np.int64(seed), out)
        return out

    def _theta(self, theta):
        theta = float(self.theta if theta is None else theta)
        lo, hi = self.theta_range
        if not lo < theta < hi:   # NaN fails too
            raise ValueError(f"{self.name}: {self.theta_name} = {theta} is outside ({lo}, {hi})")
        return theta

    def compute_reference(self, theta=None, **over) -> dict:
        theta = self._theta(theta)
        params = dict(self.params, **over)
        t0 = time.perf_counter()
        r = self.reference(theta, **params)
        r["seconds"] = round(time.perf_counter() - t0, 2)
        r["rel_error"] = r["abs_error"] / abs(r["value"])
        return r

    def cached_reference(self) -> dict:
        """The reference at the default parameters, from benchmarks/data/simulation_references.json."""
        with open(REFERENCES_JSON) as fh:
            entry = json.load(fh)["problems"][self.name]
        if entry["theta"] != self.theta or entry["params"] != _jsonable(self.params):
            raise RuntimeError(f"{self.name}: the cached reference is for other parameters; "
                               f"run `python benchmarks/simulations.py --references`")
        return entry


PROBLEMS: dict = {}


def register(problem: Problem) -> Problem:
    PROBLEMS[problem.name] = problem
    return problem


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (np.ndarray, list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


def _central_check(expect, theta, h):
    """Central difference of an exact expectation E(theta) (a cross-check of the forward-mode
    derivative: their difference bounds rounding plus the O(h^2) step error)."""
    return (expect(theta + h) - expect(theta - h)) / (2 * h)


# ============================================================================ 1. SIR epidemic

@njit
def sir_peak(beta, gamma, n_pop, i0, T):
    """SIR epidemic, chain binomial, daily steps. State (S_t, I_t), R_t = N - S_t - I_t;
    S_0 = N - I_0. Each day t = 0..T-1, from the same state:
        new infections B_t ~ Binomial(S_t, 1 - exp(-beta I_t / N)),
        recoveries     C_t ~ Binomial(I_t, gamma),
        S_{t+1} = S_t - B_t,  I_{t+1} = I_t + B_t - C_t.
    f = max_{0 <= t <= T} I_t (the epidemic's peak); theta = beta, d E[peak] / d beta.
    Defaults: N = 200, I_0 = 5, beta = 0.3 / day, gamma = 0.1 / day (R_0 = 3, a 10-day
    infectious period), T = 100 days (the epidemic is over by then).
    Two uniforms per day, always (also once I = 0), inverse-CDF binomials.

    N = 200, not ~1000: the exact reference is a DP over (S, I, M = running peak), up to
    N^3 / 6 states each sending mass to ~10^2 binomial pairs per day; one pass takes ~30 s at
    N = 200 and grows like N^3 or faster (an hour or more, and 5 GB of state, at N = 1000).
    CRN differences of the discrete simulator, the alternative, have a variance growing like
    1 / h: far from 0.2% in reasonable time."""
    s = n_pop - i0
    i = i0
    peak = i
    for t in range(T):
        u_inf = np.random.random()
        u_rec = np.random.random()
        b = binomial_icdf(u_inf, s, -math.expm1(-beta * i / n_pop))
        c = binomial_icdf(u_rec, i, gamma)
        s -= b
        i += b - c
        if i > peak:
            peak = i
    return float(peak)


@njit
def sir_batch(beta, gamma, n_pop, i0, T, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = sir_peak(beta, gamma, n_pop, i0, T)


SIR_TAU_STATE = 1e-14   # pruning of the state law (|P| below this, |dP| below 1e3 x this)
SIR_TAU_PMF = 1e-13     # binomial windows: pmf >= this x the mode's


def sir_reference(beta, gamma, n_pop, i0, T, check=True):
    E, dE, errE, errdE, dropped, _ = refs.sir_dp(beta, gamma, n_pop, i0, T, SIR_TAU_STATE, SIR_TAU_PMF)
    out = {"value": dE, "abs_error": errdE, "E_f": E, "E_f_abs_error": errE,
           "method": (f"exact forward DP over (S, I, running peak) with its beta-derivative; states "
                      f"pruned below {SIR_TAU_STATE:g}, binomials cut below {SIR_TAU_PMF:g} x their mode "
                      f"(dropped mass {dropped:.2e}); abs_error = the rigorous bound of what that leaves out "
                      f"+ |forward - central difference| of the exact E")}
    if check:
        out.update(_cd_check(lambda b: refs.sir_dp(b, gamma, n_pop, i0, T, SIR_TAU_STATE, SIR_TAU_PMF)[0],
                             beta, 1e-4 * beta, dE, errdE))
    return out


def _cd_check(expect, theta, h, value, bound):
    cd = _central_check(expect, theta, h)
    return {"central_difference": cd, "central_h": h, "abs_error": bound + abs(cd - value)}


register(Problem(
    name="sir", theta_name="beta", theta=0.3,
    params={"gamma": 0.1, "n_pop": 200, "i0": 5, "T": 100},
    run=sir_peak, batch=sir_batch, reference=sir_reference, theta_range=(0.0, math.inf)))


def sir_ppl(T, tag):
    """The epidemic in ppl: a scan over the days, the state (S, I, running peak) its carry, the
    new infections and recoveries Binomial nodes (total counts S and I); theta = the parameter
    `beta`. Its data: one row (S_0, I_0, I_0) per sample."""
    import ppl
    P = PROBLEMS["sir"].params
    with ppl.Model(f"sir_{tag}") as m:
        start = m.input("start", 3)
        beta = ppl.param("beta", 1, PROBLEMS["sir"].theta)

        def day(carry, t):
            s, i, peak = carry
            infections = ppl.Binomial("inf", s, probs=1.0 - ppl.exp(beta * i * (-1.0 / P["n_pop"])))
            recoveries = ppl.Binomial("rec", i, probs=ppl.const(P["gamma"], 1))
            i = i + infections - recoveries
            return (s - infections, i, peak + ppl.relu(i - peak)), None
        (_, _, peak), _ = ppl.scan(day, (start[:, 0], start[:, 1], start[:, 2]), length=T)
        m.cost("peak", ppl.total(peak))
    return m


def sir_data(B):
    P = PROBLEMS["sir"].params
    return {"start": np.tile([P["n_pop"] - P["i0"], P["i0"], P["i0"]], (B, 1)).astype(float)}


# ============================================================================ 2. queue

@njit
def queue_mean_length(s, a, T, L0):
    """Discrete-time single-server queue. L_0 = 0; each step t = 0..T-1 one arrival
    A_t ~ Bernoulli(a) and one service completion D_t ~ Bernoulli(s) (both possible in the
    same step), L_{t+1} = max(L_t + A_t - D_t, 0).
    f = (1/T) sum_{t=1..T} L_t (mean queue length); theta = s, d E[f] / d s.
    Defaults: a = 0.45, s = 0.5 (load a (1 - s) / (s (1 - a)) = 0.82, stationary mean 4.5;
    from empty, T = 200 steps averages the transient and the stationary regime).
    Two uniforms per step: A = u1 < a, D = u2 < s.
    Reference: the exact law of L_t on 0..T (DP), derivative by forward mode."""
    L = L0
    total = 0.0
    for t in range(T):
        arr = bernoulli_icdf(np.random.random(), a)
        dep = bernoulli_icdf(np.random.random(), s)
        L = max(L + arr - dep, 0)
        total += L
    return total / T


@njit
def queue_batch(s, a, T, L0, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = queue_mean_length(s, a, T, L0)


def queue_reference(s, a, T, L0, check=True):
    E, dE = refs.queue_dp(a, s, T, L0)
    out = {"value": dE, "abs_error": 0.0, "E_f": E, "E_f_abs_error": 0.0,
           "method": "exact DP over the law of L on 0..T, forward-mode derivative in s (no truncation); "
                     "abs_error = |forward - central difference| of the exact E"}
    if check:
        out.update(_cd_check(lambda x: refs.queue_dp(a, x, T, L0)[0], s, 1e-4 * s, dE, 0.0))
    return out


register(Problem(
    name="queue", theta_name="s", theta=0.5,
    params={"a": 0.45, "T": 200, "L0": 0},
    run=queue_mean_length, batch=queue_batch, reference=queue_reference, theta_range=(0.0, 1.0)))


def queue_ppl(T, tag):
    """The queue in ppl: a scan whose carry is the length; arrivals and services Bernoulli nodes
    by probability, theta = the parameter `s`; the mean length a per-step cost L_t / T."""
    import ppl
    P = PROBLEMS["queue"].params
    with ppl.Model(f"queue_{tag}") as m:
        L0 = m.input("L0", 1)
        s = ppl.param("s", 1, PROBLEMS["queue"].theta)

        def step(L, t):
            arrival = ppl.Bernoulli("arr", probs=ppl.const(P["a"], 1))
            service = ppl.Bernoulli("dep", probs=s)
            L = ppl.relu(L + arrival - service)
            m.cost("length", ppl.total(L * (1.0 / T)))
            return L, None
        ppl.scan(step, L0, length=T)
    return m


def queue_data(B):
    return {"L0": np.full((B, 1), float(PROBLEMS["queue"].params["L0"]))}


# ============================================================================ 3. inventory

@njit
def inventory_cost(lam, S, s, K, c, h, p, T, I0):
    """Periodic-review (s, S) inventory with lost sales and zero lead time. State: the level
    I_t in 0..S at the start of period t, I_0 = S. Each period t = 0..T-1:
        order: if I_t <= s, order S - I_t (arrives at once, costs K + c (S - I_t)); y = S,
               else y = I_t;
        demand D_t ~ Poisson(lam); sales min(D_t, y); lost sales (D_t - y)^+ cost p each;
        I_{t+1} = (y - D_t)^+, holding cost h I_{t+1}.
    f = (1/T) sum_t cost_t (mean cost per period); theta = lam, d E[f] / d lam.
    Defaults: lam = 10 units / period, S = 40, s = 15, K = 40, c = 2, h = 1, p = 10, T = 200.
    One uniform per period (the demand, by inverse CDF).
    Reference: the exact law of the level on 0..S (DP) with its lam-derivative; no truncation
    (the Poisson tail enters only as P(D >= y), the mass sent to level 0, and as
    E[(D - y)^+] = lam - y + E[(y - D)^+])."""
    inv = I0
    total = 0.0
    for t in range(T):
        u = np.random.random()
        if inv <= s:
            total += K + c * (S - inv)
            inv = S
        d = poisson_icdf(u, lam)
        if d >= inv:
            total += p * (d - inv)
            inv = 0
        else:
            inv -= d
        total += h * inv
    return total / T


@njit
def inventory_batch(lam, S, s, K, c, h, p, T, I0, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = inventory_cost(lam, S, s, K, c, h, p, T, I0)


def inventory_reference(lam, S, s, K, c, h, p, T, I0, check=True):
    E, dE = refs.inventory_dp(lam, S, s, K, c, h, p, T, I0)
    out = {"value": dE, "abs_error": 0.0, "E_f": E, "E_f_abs_error": 0.0,
           "method": "exact DP over the inventory level on 0..S, forward-mode derivative in lam; the Poisson "
                     "tail in closed form (no truncation); abs_error = |forward - central difference| of the exact E"}
    if check:
        out.update(_cd_check(lambda x: refs.inventory_dp(x, S, s, K, c, h, p, T, I0)[0], lam, 1e-4 * lam, dE, 0.0))
    return out


register(Problem(
    name="inventory", theta_name="lam", theta=10.0,
    params={"S": 40, "s": 15, "K": 40.0, "c": 2.0, "h": 1.0, "p": 10.0, "T": 200, "I0": 40},
    run=inventory_cost, batch=inventory_batch, reference=inventory_reference, theta_range=(0.0, 700.0)))


def inventory_ppl(T, tag):
    """The (s, S) inventory in ppl: a scan whose carry is the level; the demand a Poisson node of
    rate theta (the parameter `lam`); the order rule and the costs piecewise linear in the level
    (1[I <= s] = relu(s + 1 - I) - relu(s - I) on integers); the mean cost a per-step cost / T."""
    import ppl
    P = PROBLEMS["inventory"].params
    S, s, K, c, h, p = P["S"], P["s"], P["K"], P["c"], P["h"], P["p"]
    with ppl.Model(f"inventory_{tag}") as m:
        I0 = m.input("I0", 1)
        lam = ppl.param("lam", 1, PROBLEMS["inventory"].theta)

        def period(level, t):
            order = ppl.relu(s + 1.0 - level) - ppl.relu(s - level)   # 1[level <= s]
            stock = level + (S - level) * order
            demand = ppl.Poisson("d", lam)
            after = ppl.relu(stock - demand)
            cost = order * (K + c * (S - level)) + p * ppl.relu(demand - stock) + h * after
            m.cost("cost", ppl.total(cost * (1.0 / T)))
            return after, None
        ppl.scan(period, I0, length=T)
    return m


def inventory_data(B):
    return {"I0": np.full((B, 1), float(PROBLEMS["inventory"].params["I0"]))}


# ============================================================================ 4. branching

@njit
def branching_final(R, Kc, z0, T):
    """Branching process with density-dependent Poisson offspring (a Ricker / Beverton-Holt
    population in discrete generations). Z_0 = z0; each generation t = 0..T-1,
        Z_{t+1} ~ Poisson(Z_t m(Z_t)),  m(Z) = R / (1 + Z / Kc)
    (Z = 0 gives rate 0, the certain 0: extinction is absorbing).
    f = Z_T; theta = R, d E[Z_T] / d R (through the survival probability and the level).
    Defaults: R = 1.6, Kc = 25 (equilibrium Kc (R - 1) = 15), z0 = 3, T = 30 generations.
    One uniform per generation (inverse-CDF Poisson).
    Reference: the exact law of Z_t on 0..z_max = 200 (DP) with its R-derivative; the rate is
    below R Kc = 40 everywhere, so the mass above z_max is < P(Poisson(40) > 200) ~ 1e-70 per
    step, its effect bounded (`sim_references.branching_dp`)."""
    z = z0
    for t in range(T):
        u = np.random.random()
        z = poisson_icdf(u, z * R / (1.0 + z / Kc))
    return float(z)


@njit
def branching_batch(R, Kc, z0, T, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = branching_final(R, Kc, z0, T)


BRANCHING_ZMAX = 200


def branching_reference(R, Kc, z0, T, check=True):
    E, dE, errE, errdE, dropped = refs.branching_dp(R, Kc, z0, T, BRANCHING_ZMAX)
    out = {"value": dE, "abs_error": errdE, "E_f": E, "E_f_abs_error": errE,
           "method": (f"exact DP over the law of Z on 0..{BRANCHING_ZMAX}, forward-mode derivative in R; "
                      f"dropped mass {dropped:.1e}, bounded; abs_error = that bound + |forward - central "
                      f"difference| of the exact E")}
    if check:
        out.update(_cd_check(lambda x: refs.branching_dp(x, Kc, z0, T, BRANCHING_ZMAX)[0], R, 1e-4 * R, dE, errdE))
    return out


register(Problem(
    name="branching", theta_name="R", theta=1.6,
    params={"Kc": 25.0, "z0": 3, "T": 30},
    run=branching_final, batch=branching_batch, reference=branching_reference, theta_range=(0.0, math.inf)))


def branching_ppl(T, tag):
    """The branching process in ppl: a scan whose carry is the population, each generation a
    Poisson node of rate Z R / (1 + Z / Kc) (rate 0 at extinction: the certain 0); theta = the
    parameter `R`; f = Z_T, a cost after the loop."""
    import ppl
    P = PROBLEMS["branching"].params
    with ppl.Model(f"branching_{tag}") as m:
        z0 = m.input("z0", 1)
        R = ppl.param("R", 1, PROBLEMS["branching"].theta)

        def generation(z, t):
            return ppl.Poisson("z", R * z / (1.0 + z * (1.0 / P["Kc"]))), None
        last, _ = ppl.scan(generation, z0, length=T)
        m.cost("final", ppl.total(last))
    return m


def branching_data(B):
    return {"z0": np.full((B, 1), float(PROBLEMS["branching"].params["z0"]))}


# ============================================================================ 5. particle filter

@njit
def pf_loglik(theta, A0, Lq, C, r, m0, L0, y, n_part, T):
    """Bootstrap particle filter on a 2-D linear-Gaussian state-space model:
        x_0 ~ N(m0, P0),  x_t = theta A0 x_{t-1} + w_t,  w_t ~ N(0, Q),
        y_t = C x_t + v_t,  v_t ~ N(0, r)            (t = 1..T, y scalar),
    A0 a rotation by 0.4 rad, theta its damping; Q = 0.25 I, r = 1, m0 = 0, P0 = I; C =
    (1, 0): the first coordinate is observed. y_{1:40} (`PF_Y`) were drawn once from this model
    at theta = 0.95 (`pf_observations`, seed 20240611) and are stored here.
    Filter: n_part = 64 particles drawn from the prior; each step propagates them (two standard
    normals each), weights them by N(y_t; C x, r), adds log(mean weight) to the estimate and,
    except after the last step, resamples multinomially: particle i takes ancestor
    j = min{j : cum_j > u_i cum_N} (one uniform per particle, binary search).
    f = log p_hat(y_{1:T}), the filter's log-likelihood estimate; theta = the damping of A
    (evaluated at 0.8, below the 0.95 that drew the data, so the derivative is clearly > 0).
    Reference: the Kalman filter's exact d log p(y_{1:T}) / d theta (tangent recursion,
    `sim_references.kalman_loglik_grad`).
    Note: p_hat is unbiased for p(y), so E[log p_hat] < log p(y) by O(1/N) (Jensen), and
    d E[log p_hat] / d theta differs from the Kalman derivative by O(1/N) too: the reference
    entry states that gap ("jensen_gap"), measured by CRN central differences of long runs of
    this filter at n_part = 64, so an estimator of d E[log p_hat] / d theta is unbiased when its
    bias against the Kalman derivative equals the gap. At the defaults: d E[log p_hat] / d theta
    - d log p / d theta = +0.545 +- 0.056 (1.2% of 44.32), E[log p_hat] - log p(y) = -0.909."""
    x = np.empty((n_part, 2))
    xn = np.empty((n_part, 2))
    logw = np.empty(n_part)
    cum = np.empty(n_part)
    a00, a01, a10, a11 = theta * A0[0, 0], theta * A0[0, 1], theta * A0[1, 0], theta * A0[1, 1]
    for i in range(n_part):
        e0 = np.random.standard_normal()
        e1 = np.random.standard_normal()
        x[i, 0] = m0[0] + L0[0, 0] * e0
        x[i, 1] = m0[1] + L0[1, 0] * e0 + L0[1, 1] * e1
    ll = 0.0
    half_log_2pi_r = 0.5 * math.log(2.0 * math.pi * r)
    for t in range(T):
        mx = -np.inf
        for i in range(n_part):
            e0 = np.random.standard_normal()
            e1 = np.random.standard_normal()
            x0 = a00 * x[i, 0] + a01 * x[i, 1] + Lq[0, 0] * e0
            x1 = a10 * x[i, 0] + a11 * x[i, 1] + Lq[1, 0] * e0 + Lq[1, 1] * e1
            x[i, 0] = x0
            x[i, 1] = x1
            d = y[t] - (C[0] * x0 + C[1] * x1)
            logw[i] = -0.5 * d * d / r
            if logw[i] > mx:
                mx = logw[i]
        tot = 0.0
        for i in range(n_part):
            tot += math.exp(logw[i] - mx)
            cum[i] = tot
        ll += mx + math.log(tot / n_part) - half_log_2pi_r
        if t < T - 1:
            for i in range(n_part):
                j = categorical_icdf(np.random.random(), cum, n_part)
                xn[i, 0] = x[j, 0]
                xn[i, 1] = x[j, 1]
            x, xn = xn, x
    return ll


@njit
def pf_batch(theta, A0, Lq, C, r, m0, L0, y, n_part, T, seed, out):
    np.random.seed(seed)
    for k in range(out.size):
        out[k] = pf_loglik(theta, A0, Lq, C, r, m0, L0, y, n_part, T)


PF_OMEGA = 0.4
PF_THETA_TRUE = 0.95
PF_SEED = 20240611


def pf_model(T=40):
    """The model's fixed matrices (A0, Q, C, r, m0, P0)."""
    w = PF_OMEGA
    A0 = np.array([[math.cos(w), math.sin(w)], [-math.sin(w), math.cos(w)]])
    return A0, 0.25 * np.eye(2), np.array([1.0, 0.0]), 1.0, np.zeros(2), np.eye(2)


def pf_observations(seed=PF_SEED, T=40):
    """y_{1:T} drawn from the model at theta = PF_THETA_TRUE (how `PF_Y` was made)."""
    A0, Q, C, r, m0, P0 = pf_model()
    rng = np.random.default_rng(seed)
    x = m0 + np.linalg.cholesky(P0) @ rng.standard_normal(2)
    y = np.empty(T)
    for t in range(T):
        x = PF_THETA_TRUE * A0 @ x + np.linalg.cholesky(Q) @ rng.standard_normal(2)
        y[t] = C @ x + math.sqrt(r) * rng.standard_normal()
    return y
PF_Y = np.array([
    -0.017076150714596727, -0.7959244823985201, -2.993771810529837, -3.05067603677695,
    -3.02473914213899, -1.4741803598074867, -0.7293074587365069, -0.8680789145275599,
    1.8682990413829983, 1.1586816176071448, 3.2238629509642616, 1.6339756384580126,
    -0.20254585203528253, -1.5559513917009782, -2.4138325626346746, -1.2385125866106959,
    -3.627641945622692, -1.64597538161147, -3.2821701157833094, -2.695427961536548,
    -0.8156120086665853, 0.3187341428865882, 2.859123013276857, 1.6753690917103496,
    -0.2628729299759818, 1.740223281391542, 1.0361910850684202, 0.4217949335005427,
    1.4797228597483945, 0.2452545182624834, 0.4642404738771029, -0.6948398069685074,
    -0.7370970385203448, -0.7086044835622998, -1.4289152692296287, 0.5411920664498959,
    1.0496022215292387, 0.5707854472739935, -1.5870437603900838, 0.3861439602576696,
])


def _pf_params(T=40, n_part=64):
    A0, Q, C, r, m0, P0 = pf_model()
    return {"A0": A0, "Lq": np.linalg.cholesky(Q), "C": C, "r": r, "m0": m0, "L0": np.linalg.cholesky(P0),
            "y": PF_Y, "n_part": n_part, "T": T}


PF_JENSEN_SAMPLES = 150_000   # paired filter runs at theta +- h for the Jensen gap
PF_JENSEN_H = 0.03


def pf_kalman(theta, A0, Lq, C, r, m0, L0, y, T):
    return refs.kalman_loglik_grad(theta, A0, Lq @ Lq.T, C, r, m0, L0 @ L0.T, y[:T])


def pf_reference(theta, A0, Lq, C, r, m0, L0, y, n_part, T, check=True, jensen_samples=PF_JENSEN_SAMPLES):
    ll, dll = pf_kalman(theta, A0, Lq, C, r, m0, L0, y, T)
    out = {"value": dll, "abs_error": 0.0, "E_f": None, "log_p": ll,
           "method": "Kalman filter's exact d log p(y_{1:T}) / d theta (tangent recursion); abs_error = "
                     "|tangent - complex-step derivative| + |tangent - central difference|"}
    if check:
        h = 1e-20
        cs = refs.kalman_loglik(complex(theta, h), A0, Lq @ Lq.T, C, r, m0, L0 @ L0.T, y[:T], dtype=complex).imag / h
        cd = _central_check(lambda x: pf_kalman(x, A0, Lq, C, r, m0, L0, y, T)[0], theta, 1e-4 * theta)
        out.update({"complex_step": cs, "central_difference": cd, "central_h": 1e-4 * theta,
                    "abs_error": abs(cs - dll) + abs(cd - dll)})
    if jensen_samples:
        out.update(pf_jensen_gap(theta, (A0, Lq, C, r, m0, L0, y, n_part, T), jensen_samples, PF_JENSEN_H))
    return out


def pf_jensen_gap(theta, args, n, h, seed=7):
    """d E[log p_hat] / d theta - d log p / d theta at this n_part, from n paired runs of the
    plain filter at theta +- h (common random numbers); the Kalman central difference at the
    same h is subtracted, so the O(h^2) step error cancels to the gap's own third derivative."""
    A0, Lq, C, r, m0, L0, y, n_part, T = args
    lo = np.empty(n)
    hi = np.empty(n)
    mid = np.empty(n // 3)
    pf_batch(theta - h, *args, np.int64(seed), lo)
    pf_batch(theta + h, *args, np.int64(seed), hi)
    pf_batch(theta, *args, np.int64(seed + 1), mid)
    d = (hi - lo) / (2 * h)
    kal = _central_check(lambda x: pf_kalman(x, A0, Lq, C, r, m0, L0, y, T)[0], theta, h)
    ll = pf_kalman(theta, A0, Lq, C, r, m0, L0, y, T)[0]
    return {"E_f": float(mid.mean()), "E_f_se": float(mid.std(ddof=1) / math.sqrt(n)),
            "jensen_gap_E_f": float(mid.mean() - ll),
            "jensen_gap": float(d.mean() - kal), "jensen_gap_se": float(d.std(ddof=1) / math.sqrt(n)),
            "jensen_method": (f"{n} paired runs of the plain filter at theta +- {h} (CRN central difference of "
                              f"E[log p_hat]) minus the Kalman central difference at the same h; "
                              f"E_f from {n // 3} further runs at theta")}


register(Problem(
    name="particle_filter", theta_name="theta", theta=0.8,
    params=_pf_params(),
    run=pf_loglik, batch=pf_batch, reference=pf_reference, theta_range=(-math.inf, math.inf)))


@numba.njit
def _pick(anc, x, out):
    """A resampling step of the particle filter in ppl: out[i] = x[a_i], the ancestors one-hot in
    groups of n (anc[i n + j] = 1 when particle i takes particle j)."""
    n = x.shape[0]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += anc[i * n + j] * x[j]
        out[i] = s


@numba.njit
def _pick_vjp(anc, x, out, gout, ganc, gx):
    """The VJP of _pick: gx[j] = sum_i gout[i] anc[i n + j]; ganc[i n + j] = gout[i] x[j]."""
    n = x.shape[0]
    for j in range(n):
        gx[j] = 0.0
    for i in range(n):
        for j in range(n):
            gx[j] += gout[i] * anc[i * n + j]
            ganc[i * n + j] = gout[i] * x[j]


def pf_ppl(T, tag):
    """The bootstrap filter in ppl: the particles' two coordinates (n each) the scan's carry,
    propagated by Normal nodes (pathwise), weighted by the observation (xs: y_t), the per-step
    cost the log of the mean weight (so the objective is log p_hat), resampled by a Categorical
    node of n groups of n classes given by the weights (each particle's ancestor) and a user
    layer that picks the ancestors' values; theta = the parameter `theta`. The estimator compared
    is the ancestors' (the Normal nodes keep pathwise)."""
    import ppl
    P = PROBLEMS["particle_filter"].params
    A0, n, r = P["A0"], P["n_part"], P["r"]
    sd = float(P["Lq"][0, 0])
    with ppl.Model(f"pf_{tag}") as m:
        y = m.input("y", T)
        theta = ppl.param("theta", 1, PROBLEMS["particle_filter"].theta)
        zero = ppl.const(0.0, n)
        x0 = ppl.Normal("x0_0", zero, 1.0)
        x1 = ppl.Normal("x1_0", zero, 1.0)

        def step(carry, yt):
            a, b = carry
            a2 = ppl.Normal("x0", theta * (A0[0, 0] * a + A0[0, 1] * b), sd)
            b2 = ppl.Normal("x1", theta * (A0[1, 0] * a + A0[1, 1] * b), sd)
            d = a2 - yt
            w = ppl.exp(d * d * (-0.5 / r))
            m.cost("loglik", ppl.total(ppl.log(ppl.rowsum(w) * (1.0 / n)) - 0.5 * math.log(2 * math.pi * r)))
            anc = ppl.Categorical("anc", probs=ppl.concat([w] * n), classes=n)
            return (ppl.layer(_pick, [anc, a2], n, vjp=_pick_vjp), ppl.layer(_pick, [anc, b2], n, vjp=_pick_vjp)), None
        ppl.scan(step, (x0, x1), xs=y, length=T)
    return m


def pf_data(B):
    P = PROBLEMS["particle_filter"].params
    return {"y": np.tile(P["y"][:P["T"]], (B, 1))}


# ============================================================================ 6. random walk

# StochasticAD.jl's random-walk tutorial, one problem per length n of its variance sweep (walk10 ..
# walk100, theta p = 2 n): the definition, plain simulator, ppl model and StochasticAD's published
# figures are in benchmarks/sim_walk.py (this file's length), the exact DP in sim_references.walk_dp.

def walk_reference(p, T, check=True):
    E, dE = refs.walk_dp(p, T)
    out = {"value": dE, "abs_error": 0.0, "E_f": E, "E_f_abs_error": 0.0,
           "method": "exact DP over the law of X on 0..n + 1, forward-mode derivative in p (no truncation); "
                     "abs_error = |forward - central difference| of the exact E"}
    if check:
        out.update(_cd_check(lambda x: refs.walk_dp(x, T)[0], p, 1e-4 * p, dE, 0.0))
    return out


for _n in walk.WALK_NS:
    register(Problem(
        name=f"walk{_n}", theta_name="p", theta=2.0 * _n, params={"T": _n},
        run=walk.walk_final, batch=walk.walk_batch, reference=walk_reference, theta_range=(0.0, math.inf)))
# the peer's published std per sample (StochasticAD's pruned triples), added to --ppl's lines
STOCHASTICAD_STD = {f"walk{n}": std for n, std in walk.STOCHASTICAD_WALK_STD.items()}


# ============================================================================ 7. SIR, two parameters

# The epidemic fitted to 60 observed daily cases, theta = (beta, gamma): the definition, plain
# simulator, exact DP (both derivatives; the Problem's theta and "value" are beta's, the reference's
# "by_parameter" has both), ppl model and two-parameter comparison are in benchmarks/sim_sir2.py.
register(Problem(
    name="sir2", theta_name="beta", theta=sir2.BETA, params=sir2.PARAMS,
    run=sir2.sir2_loss, batch=sir2.sir2_batch, reference=sir2.sir2_reference, theta_range=(0.0, math.inf)))
# problems whose --ppl comparison scores several parameters: their own function (problem, batch, rounds)
PPL_MULTI = {"sir2": sir2.compare_estimators}


# ============================================================================ ppl's estimators

@dataclass(frozen=True)
class PplModel:
    """A problem written in ppl (each problem's section): `build(T, tag)` the model (its scan of T
    steps; `tag` names it anew), `data(B)` B samples' inputs, the parameter holding theta, and
    the random node theta reaches (its estimator is the one compared; the others' parameters get
    no gradient)."""

    build: Callable
    data: Callable
    theta: str
    node: str


PPL = {"sir": PplModel(sir_ppl, sir_data, "beta", "inf"),
       "queue": PplModel(queue_ppl, queue_data, "s", "dep"),
       "inventory": PplModel(inventory_ppl, inventory_data, "lam", "d"),
       "branching": PplModel(branching_ppl, branching_data, "R", "z"),
       "particle_filter": PplModel(pf_ppl, pf_data, "theta", "anc"),
       **{f"walk{n}": PplModel(functools.partial(walk.walk_ppl, p=PROBLEMS[f"walk{n}"].theta), walk.walk_data,
                               "p", "up") for n in walk.WALK_NS}}
# the built-in unbiased estimators of a count or a binary node in a loop (DisARM and ARMS need
# Bernoulli logits; these take probabilities and counts)
CANDIDATES = ("score", "stochastic_derivative", "mvd")


def estimator_spec(est):
    """An estimator as --estimators names it: "name" or "name:option=word" (e.g.
    "stochastic_derivative:importance=none"), as compile's estimators= takes it."""
    name, _, opts = est.partition(":")
    return (name, dict(kv.split("=", 1) for kv in opts.split(","))) if opts else name


def compare_estimators(name, batch, rounds, estimators=CANDIDATES, T=None):
    """Each estimator of the node theta reaches, and the default policy's choice ("auto"), against
    the cached reference: compiled once, then `rounds` rounds alternating over them and the plain
    simulator, each a gradient call on `batch` samples (an estimator with R rows per sample gets
    batch / R, at least 8: the same work per call). JSON lines: the mean estimate's bias as a
    z-score, the standard deviation per estimate (per sample), us per estimate, variance x time
    (the cost of a given precision), the plain simulator's us per sample in the same rounds."""
    spec, pr = PPL[name], PROBLEMS[name]
    ref = pr.cached_reference()
    T = T or pr.T
    import ppl
    runs = {}
    for est in (*estimators, "auto"):
        t0 = time.perf_counter()
        try:
            prog = spec.build(T, f"{est.replace(':', '_').replace('=', '_')}_{T}").compile(
                estimators="auto" if est == "auto" else {spec.node: estimator_spec(est)}, dtype=np.float64)
        except ppl.ModelError as e:   # e.g. mvd's rows per step on a wide node: over the bound
            print(json.dumps({"bench": "simulations", "case": f"{name}/{est}", "refused": str(e)}), flush=True)
            continue
        B = max(8, batch // prog.rows_per_data_row)
        data = spec.data(B)
        prog.grad(data, seed=0)
        if est == "auto":   # the measured choice made (it measures on a thread after the first gradient)
            prog.choose(data)
        chosen = prog.choices[prog.model.nodes[spec.node]][0].estimator
        runs[est] = {"prog": prog, "data": data, "B": B, "first_step_s": time.perf_counter() - t0, "times": [],
                     "g": [], "chosen": chosen}
    plain = []
    pr.simulate_batch(n=batch, seed=1)
    for r in range(rounds):
        for est, run in runs.items():
            t0 = time.perf_counter()
            _, g = run["prog"].grad(run["data"], seed=1 + r)
            run["times"].append(time.perf_counter() - t0)
            run["g"].append(float(g[spec.theta][0]))
        t0 = time.perf_counter()
        pr.simulate_batch(n=batch, seed=1000 + r)
        plain.append((time.perf_counter() - t0) / batch * 1e6)
    plain_us = float(np.median(plain))
    out = {}
    for est, run in runs.items():
        g = np.array(run["g"])
        se = g.std(ddof=1) / math.sqrt(rounds)
        std = g.std(ddof=1) * math.sqrt(run["B"])   # per estimate: each call averages B samples
        us = float(np.median(run["times"])) / run["B"] * 1e6
        out[est] = line = {
            "bench": "simulations", "case": f"{name}/{est}", "metric": "variance_x_time", "unit": "us",
            "value": std ** 2 * us, "problem": name, "T": T, "estimator": run["chosen"],
            "rows_per_sample": run["prog"].rows_per_data_row, "batch": run["B"], "rounds": rounds,
            "mean": float(g.mean()), "se": se, "reference": ref["value"],
            "bias_z": (float(g.mean()) - ref["value"]) / math.hypot(se, ref["abs_error"]),
            "std_per_estimate": std, "us_per_estimate": us, "std_x_time": std * us,
            "plain_us_per_sample": plain_us, "time_over_plain": us / plain_us,
            "first_step_s": run["first_step_s"]}
        if name == "particle_filter":
            line["jensen_gap"] = ref.get("jensen_gap")
        if name in STOCHASTICAD_STD:
            line["stochasticad_std"] = STOCHASTICAD_STD[name]
    best = min((o for e, o in out.items() if e != "auto"), key=lambda o: o["value"])
    for o in out.values():
        o["baseline"], o["ratio"] = best["value"], o["value"] / best["value"]
        print(json.dumps(o), flush=True)
    return out


def compile_times(name, lengths, rounds, estimator="score"):
    """The first step of the problem's ppl model (the kernels cached, the step itself compiled
    anew: a new tag) against its scan's length, each in a fresh process, alternating over the
    lengths; median of `rounds`. JSON lines."""
    import subprocess
    times = {T: [] for T in lengths}
    for r in range(rounds):
        for T in lengths:
            code = (f"import time, sys; t0 = time.perf_counter(); sys.path.insert(0, {HERE!r}); "
                    f"import simulations as S; spec = S.PPL[{name!r}]; "
                    f"m = spec.build({T}, 'compile_{T}_{r}_{os.getpid()}'); "
                    f"p = m.compile(estimators={{spec.node: {estimator!r}}}, cache=False); "
                    f"t1 = time.perf_counter(); p.grad(spec.data(4), seed=0); "
                    f"print(time.perf_counter() - t1, t1 - t0)")
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            first, build = map(float, res.stdout.split())
            times[T].append((first, build))
    for T in lengths:
        first = float(np.median([f for f, _ in times[T]]))
        print(json.dumps({"bench": "simulations", "case": f"{name}/compile/T={T}", "metric": "first_step_s",
                          "value": first, "unit": "s", "problem": name, "T": T, "estimator": estimator,
                          "build_s": float(np.median([b for _, b in times[T]])), "rounds": rounds,
                          "baseline": 2.0, "ratio": first / 2.0}), flush=True)


# ============================================================================ command line

def write_references(names):
    """Compute the references of `names` (checked <= MAX_REL_ERROR) into REFERENCES_JSON, keeping
    the cached entries of the other problems."""
    data = {"problems": {}}
    if os.path.exists(REFERENCES_JSON):
        with open(REFERENCES_JSON) as fh:
            data = json.load(fh)
    t_all = time.perf_counter()
    for name in names:
        pr = PROBLEMS[name]
        r = pr.compute_reference()
        if not r["rel_error"] <= MAX_REL_ERROR:
            raise RuntimeError(f"{name}: the reference's relative error {r['rel_error']:.2e} exceeds {MAX_REL_ERROR}")
        entry = {"theta_name": pr.theta_name, "theta": pr.theta, "T": pr.T,
                 "params": _jsonable(pr.params), **_jsonable(r)}
        data["problems"][name] = entry
        print(json.dumps({"problem": name, "reference": r["value"], "abs_error": r["abs_error"],
                          "rel_error": r["rel_error"], "E_f": r.get("E_f"), "seconds": r["seconds"],
                          **({"by_parameter": r["by_parameter"]} if "by_parameter" in r else {})}), flush=True)
    data["meta"] = {"command": "python benchmarks/simulations.py --references",
                    "max_rel_error": MAX_REL_ERROR,
                    "versions": {"python": platform.python_version(), "numpy": np.__version__,
                                 "numba": numba.__version__}}
    data["problems"] = {k: data["problems"][k] for k in PROBLEMS if k in data["problems"]}
    os.makedirs(os.path.dirname(REFERENCES_JSON), exist_ok=True)
    with open(REFERENCES_JSON, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
    print(f"# wrote {REFERENCES_JSON} in {time.perf_counter() - t_all:.0f} s", file=sys.stderr)


def time_plain(names, rounds, seconds):
    """Each plain simulator's us per sample: a warm-up batch, a batch size calibrated to about
    `seconds`, then `rounds` rounds alternating over the problems; median over rounds. The
    samples of every round give E[f] with its standard error."""
    size, samples, per = {}, {n: [] for n in names}, {n: [] for n in names}
    for name in names:
        pr = PROBLEMS[name]
        pr.simulate_batch(n=10, seed=1)
        t0 = time.perf_counter()
        pr.simulate_batch(n=50, seed=2)
        size[name] = max(50, int(seconds / ((time.perf_counter() - t0) / 50)))
    for r in range(rounds):
        for name in names:
            pr = PROBLEMS[name]
            t0 = time.perf_counter()
            out = pr.simulate_batch(n=size[name], seed=1000 + r)
            per[name].append((time.perf_counter() - t0) / size[name] * 1e6)
            samples[name].append(out)
    for name in names:
        pr = PROBLEMS[name]
        x = np.concatenate(samples[name])
        try:
            ref = pr.cached_reference()
        except (OSError, KeyError, RuntimeError) as e:
            ref = {"note": str(e)}
        line = {"bench": "simulations", "case": name, "metric": "us_per_sample",
                "value": round(float(np.median(per[name])), 3), "unit": "us",
                "problem": name, "T": pr.T, "theta_name": pr.theta_name, "theta": pr.theta,
                "us_per_sample": round(float(np.median(per[name])), 3),
                "us_per_sample_min_max": [round(min(per[name]), 3), round(max(per[name]), 3)],
                "rounds": rounds, "n_samples": int(x.size),
                "E_f": float(x.mean()), "E_f_se": float(x.std(ddof=1) / math.sqrt(x.size)),
                "E_f_exact": ref.get("E_f") if name != "particle_filter" else None,
                "reference_dE_dtheta": ref.get("value"), "reference_abs_error": ref.get("abs_error")}
        if name == "particle_filter":
            line.update({"E_f_long_run": ref.get("E_f"), "log_p_kalman": ref.get("log_p"),
                         "jensen_gap": ref.get("jensen_gap"), "jensen_gap_se": ref.get("jensen_gap_se")})
        if "note" in ref:
            line["reference_note"] = ref["note"]
        print(json.dumps(line), flush=True)


def main(argv=None):
    # the steady state: a new scan's first calls would run interpreted over its kernels until the
    # step's compile pays (ppl/runtime/first_steps.py); this times, and compiles at once, the compiled step
    os.environ.setdefault("PPL_FIRST_STEPS", "0")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--references", action="store_true", help="recompute the cached references")
    ap.add_argument("--plain", action="store_true", help="time each plain @njit simulator")
    ap.add_argument("--show", action="store_true", help="print each definition and cached reference")
    ap.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated subset")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.1, help="per batch in --plain")
    ap.add_argument("--ppl", action="store_true", help="ppl's estimators and its default against the references")
    ap.add_argument("--batch", type=int, default=1000, help="samples per gradient call in --ppl")
    ap.add_argument("--estimators", default=",".join(CANDIDATES),
                    help="in --ppl, besides the default: names, or name:option=word (e.g. "
                         "stochastic_derivative:importance=none); ';' between them when an option list has commas")
    ap.add_argument("--compile", action="store_true", help="the first step against the scan's length (10, 100, 1000)")
    args = ap.parse_args(argv)
    names = [n for n in args.problems.split(",") if n]
    for n in names:
        if n not in PROBLEMS:
            ap.error(f"unknown problem {n!r}; known: {', '.join(PROBLEMS)}")
    if not (args.references or args.plain or args.show or args.ppl or args.compile):
        ap.error("say --references, --plain, --show, --ppl or --compile")
    if args.show:
        for n in names:
            print(f"== {n}: d E[f] / d {PROBLEMS[n].theta_name} at {PROBLEMS[n].theta}\n{PROBLEMS[n].definition}")
            try:
                ref = PROBLEMS[n].cached_reference()
                print(f"   reference {ref['value']!r} +- {ref['abs_error']:.2g} ({ref['method']})\n")
                for k, v in ref.get("by_parameter", {}).items():
                    print(f"   d E[f] / d {k}: {v['value']!r} +- {v['abs_error']:.2g}\n")
            except (OSError, KeyError, RuntimeError) as e:
                print(f"   no cached reference: {e}\n")
    if args.references:
        write_references(names)
    if args.plain:
        time_plain(names, args.rounds, args.seconds)
    for n in names if args.ppl else ():
        ests = tuple(args.estimators.split(";" if ";" in args.estimators else ","))
        if n in PPL_MULTI:
            PPL_MULTI[n](PROBLEMS[n], args.batch, args.rounds, ests)
        elif n in PPL:
            compare_estimators(n, args.batch, args.rounds, ests)
    for n in names if args.compile else ():
        if n in PPL:
            compile_times(n, (10, 100, 1000), args.rounds)


if __name__ == "__main__":
    main()
