"""The inverse-CDF draws of the simulation problems' plain @njit simulators
(`benchmarks/simulations.py`, `benchmarks/sim_walk.py`): every random variable from ONE uniform,
so a sample consumes the same draws in the same order whatever theta and the path (common
random numbers; see simulations.py's docstring).
"""
import math

import numba

njit = numba.njit(cache=True)


@njit
def bernoulli_icdf(u, p):
    """1 if u < p else 0 (u uniform on [0, 1))."""
    return 1 if u < p else 0


@njit
def binomial_icdf(u, n, p):
    """The smallest k with F(k) > u for Binomial(n, p): sequential search from 0 (from n
    downwards through the complement when p > 1/2, the same map up to rounding), O(n p)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial_icdf(1.0 - u, n, 1.0 - p)
    lq = n * math.log1p(-p)
    if lq < -700.0:
        raise ValueError("binomial_icdf: (1 - p)^n underflows (n too large for the sequential search)")
    v = math.exp(lq)
    odds = p / (1.0 - p)
    F = v
    k = 0
    while F <= u and k < n:
        v = v * (n - k) / (k + 1.0) * odds
        k += 1
        F += v
    return k


@njit
def poisson_icdf(u, lam):
    """The smallest k with F(k) > u for Poisson(lam): sequential search from 0, O(lam).
    Rate 0 is the certain 0."""
    if lam <= 0.0:
        return 0
    if lam > 700.0:
        raise ValueError("poisson_icdf: rate above 700 (exp(-rate) underflows)")
    v = math.exp(-lam)
    F = v
    k = 0
    while F <= u:
        v = v * lam / (k + 1.0)
        k += 1
        F += v
        if v == 0.0 and k > lam:   # u beyond the CDF's float64 sum: the last reachable k
            break
    return k


@njit
def categorical_icdf(u, cum, n):
    """The smallest j with cum[j] > u * cum[n - 1] (cum: cumulative unnormalised weights)."""
    target = u * cum[n - 1]
    lo = 0
    hi = n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > target:
            hi = mid
        else:
            lo = mid + 1
    return lo
