"""Independent oracles for the core tests: exact objectives written directly in NumPy (by
enumeration or closed form) and their central finite-difference gradients."""
import itertools

import numpy as np


def log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def bern_logp(a, h):
    """sum_j h log sigmoid(a) + (1-h) log sigmoid(-a), per row."""
    return (h * log_sigmoid(a) + (1 - h) * log_sigmoid(-a)).sum(-1)


def bern_nll(a, t):
    return (np.logaddexp(0.0, a) - t * a).sum(-1)


def configs(d):
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)))


def fd_grad(F, params: dict, eps=1e-4):
    """Fourth-order central differences of F(params) for every entry of every parameter:
    (8 (F(+h) - F(-h)) - (F(+2h) - F(-2h))) / 12h. Truncation O(h^4 F^(5)) ~ 1e-16 and rounding
    ~ 1e-16 |F| / h ~ 1e-12 |F| at h = 1e-4 (the two-point rule at h = 1e-6 rounded to ~1e-9,
    the size of the tolerances it was compared at)."""
    out = {}
    for k, v in params.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            old = v[idx]
            f = {}
            for j in (-2, -1, 1, 2):
                v[idx] = old + j * eps
                f[j] = F(params)
            v[idx] = old
            g[idx] = (8.0 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12.0 * eps)
        out[k] = g
    return out


def two_layer_sbn_objective(P, X):
    """E over h1 ~ q(h1|x), h2 ~ q(h2|h1) of [nll(x | d1(h1)) + log q(h1|x) + nll(x | d2(h2))],
    averaged over the rows of X, by exact enumeration (8 x 8 configurations)."""
    H = configs(P["e1.W"].shape[1])
    total = 0.0
    for x in X:
        a1 = x @ P["e1.W"] + P["e1.b"]
        p1 = np.exp(bern_logp(a1[None, :], H))
        for h1, w1 in zip(H, p1):
            c = bern_nll(h1 @ P["d1.W"] + P["d1.b"], x) + bern_logp(a1, h1)
            a2 = h1 @ P["e2.W"] + P["e2.b"]
            p2 = np.exp(bern_logp(a2[None, :], H))
            c2 = bern_nll(H @ P["d2.W"] + P["d2.b"], x[None, :])
            total += w1 * (c + (p2 * c2).sum())
    return total / len(X)


def categorical_objective(P, X, K):
    """E over z ~ Cat(softmax(x W + b)) per group of a nonlinear cost
    sum(tanh(z @ V + c) ** 2) - 0.5 * z . x_tiled, by enumeration."""
    G = P["enc.W"].shape[1] // K
    total = 0.0
    for x in X:
        a = (x @ P["enc.W"] + P["enc.b"]).reshape(G, K)
        logp = a - np.log(np.exp(a).sum(1, keepdims=True))
        for ks in itertools.product(range(K), repeat=G):
            z = np.zeros(G * K)
            lp = 0.0
            for g, k in enumerate(ks):
                z[g * K + k] = 1.0
                lp += logp[g, k]
            y = np.tanh(z @ P["dec.W"] + P["dec.b"])
            total += np.exp(lp) * ((y ** 2).sum())
    return total / len(X)


def gamma_log_icdf_mp(u, a, w0, dps=60):
    """log z, z the Gamma(a, 1) quantile at u, to about dps - 10 digits (mpmath): Newton in
    w = log z on log P(a, e^w) = log u (u <= 1/2) or log Q(a, e^w) = log(1 - u), from w0."""
    import mpmath as mp
    with mp.workdps(dps):
        a, u = mp.mpf(a), mp.mpf(u)
        upper = u > 0.5
        target = mp.log1p(-u) if upper else mp.log(u)
        w = mp.mpf(w0)
        for _ in range(50):
            x = mp.exp(w)
            F = mp.gammainc(a, x, mp.inf, regularized=True) if upper else mp.gammainc(a, 0, x, regularized=True)
            lF = mp.log(F)
            slope = mp.exp(a * w - x - mp.loggamma(a) - lF) * (-1 if upper else 1)
            step = (target - lF) / slope
            w += step
            if abs(step) < mp.mpf(10) ** (10 - dps) * max(1, abs(w)):
                break
        return w


def gamma_log_icdf_dalpha_mp(u, a, w0, dps=60):
    """(d log z / da, log z) at fixed u: central differences of gamma_log_icdf_mp with
    h = 1e-22 a (truncation ~h^2, rounding ~10^-dps / h: both below 1e-35)."""
    import mpmath as mp
    with mp.workdps(dps):
        a = mp.mpf(a)
        h = a * mp.mpf(10) ** -22
        d = (gamma_log_icdf_mp(u, a + h, w0, dps) - gamma_log_icdf_mp(u, a - h, w0, dps)) / (2 * h)
        return d, gamma_log_icdf_mp(u, a, w0, dps)


# A Bayesian linear regression with known noise SIG_BLR and prior w ~ N(0, I) on a design whose
# columns are orthogonal (X'X diagonal): the posterior N(mu, Sigma), Sigma = (I + X'X / SIG^2)^-1,
# mu = Sigma X'y / SIG^2 (tests/runtime/test_predictive.py, tests/language/test_plates.py).
SIG_BLR = 0.5


def blr_design():
    """(X, y, mu, Sigma) of the regression above on 16 rows."""
    i = np.arange(16)
    X = np.stack([np.where(i % 2, 1.0, -1.0), 0.5 * np.where((i // 2) % 2, 1.0, -1.0)], 1)   # X'X diagonal
    y = X @ np.array([0.7, -0.4]) + SIG_BLR * np.random.default_rng(3).standard_normal(16)
    prec = np.eye(2) + X.T @ X / SIG_BLR ** 2
    sigma = np.linalg.inv(prec)
    return X, y[:, None], sigma @ X.T @ y / SIG_BLR ** 2, sigma
