"""Probabilistic (heteroscedastic) regression, through the CPU kernel chain.

Linear model: mu = w.x, z = v.x, sigma = sqrt(1 + z^2), and the averaged
log-likelihood J = 1/N sum_i log N(t_i | mu_i, sigma_i^2), maximised. Our cost
head is gaussian_nll = -log N, so the chain affine -> sqrt1p -> gaussian_nll is run with
the row cotangent -1/N, and must give:

  dJ/dw = 1/N sum_i (t_i - mu_i) / sigma_i^2 x_i
  dJ/dv = 1/N sum_i ((t_i - mu_i)^2 / sigma_i^4 - 1 / sigma_i^2) z_i x_i

to 1e-10 relative; also central finite differences of J (rtol 1e-7), and the bound
|df/dz| <= (t - mu)^2 + 1.
"""
import numpy as np
from numpy.testing import assert_allclose
from scipy import stats

from ppl.kernels.cpu import core as cpu

N, P = 64, 5
E2 = np.empty((0, 0))


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, P))
    w, v = rng.normal(size=P), rng.normal(size=P)
    t = (x @ w + np.sqrt(1 + (x @ v) ** 2) * rng.normal(size=N)).reshape(N, 1) + rng.normal(size=(N, 1))
    return x, t, w, v


def forward(x, t, w, v):
    """Returns J and the intermediates (mu, z, sigma) as (N, 1) node arrays."""
    zero = np.zeros(1)
    mu, z, sigma = np.empty((N, 1)), np.empty((N, 1)), np.empty((N, 1))
    cpu.affine_fwd(x, w.reshape(P, 1), zero, mu)
    cpu.affine_fwd(x, v.reshape(P, 1), zero, z)
    cpu.sqrt1p_fwd(z, sigma)
    nll = np.empty(N)
    cpu.gaussian_nll(mu, sigma, t, nll)
    return -nll.mean(), mu, z, sigma


def backward(x, t, w, v):
    """dJ/dw, dJ/dv and the per-row df/dz, by the backward kernels in reverse order."""
    _, mu, z, sigma = forward(x, t, w, v)
    gmu, gsigma, gz = np.zeros((N, 1)), np.zeros((N, 1)), np.zeros((N, 1))
    cpu.gaussian_nll_bwd(mu, sigma, t, np.full(N, -1.0 / N), gmu, gsigma, E2)
    cpu.sqrt1p_bwd(z, sigma, gsigma, gz)
    gw, gv = np.zeros((P, 1)), np.zeros((P, 1))
    cpu.affine_bwd(x, w.reshape(P, 1), gmu, E2, gw, np.zeros(1))
    cpu.affine_bwd(x, v.reshape(P, 1), gz, E2, gv, np.zeros(1))
    return gw.ravel(), gv.ravel(), N * gz.ravel()


def test_objective_is_the_gaussian_log_likelihood():
    x, t, w, v = data()
    J, mu, z, sigma = forward(x, t, w, v)
    assert_allclose(sigma, np.sqrt(1 + (x @ v) ** 2).reshape(N, 1), rtol=1e-14)
    assert_allclose(J, stats.norm.logpdf(t, mu, sigma).mean(), rtol=1e-13)


def test_gradient_matches_the_corrected_closed_form():
    x, t, w, v = data()
    gw, gv, _ = backward(x, t, w, v)
    mu, z = x @ w, x @ v
    s2 = 1 + z**2
    r = t.ravel() - mu
    dJdw = ((r / s2)[:, None] * x).mean(0)
    dJdv = (((r**2 / s2**2 - 1 / s2) * z)[:, None] * x).mean(0)
    assert_allclose(gw, dJdw, rtol=1e-10, atol=1e-14)
    assert_allclose(gv, dJdv, rtol=1e-10, atol=1e-14)


def test_gradient_matches_finite_differences():
    x, t, w, v = data(1)
    gw, gv, _ = backward(x, t, w, v)
    h = 1e-6
    for theta, g in ((w, gw), (v, gv)):
        fd = np.empty(P)
        for k in range(P):
            old = theta[k]
            theta[k] = old + h
            jp = forward(x, t, w, v)[0]
            theta[k] = old - h
            jm = forward(x, t, w, v)[0]
            theta[k] = old
            fd[k] = (jp - jm) / (2 * h)
        assert_allclose(g, fd, rtol=1e-7, atol=1e-10)


def test_df_dz_formula_and_bound():
    """Part (b): df/dz = ((t-mu)^2/sigma^4 - 1/sigma^2) z ; part (c): |df/dz| <= (t-mu)^2 + 1,
    over random rows and adversarial ones (tiny and huge z, residuals from 0 to 1e3)."""
    x, t, w, v = data(2)
    rng = np.random.default_rng(3)
    x[:8] *= 1e3  # huge z rows
    x[8:16] *= 1e-6  # z ~ 0 rows
    t[16:24] += rng.choice([-1e3, 1e3], size=(8, 1))  # huge residuals
    _, _, dfdz = backward(x, t, w, v)
    mu, z = x @ w, x @ v
    s2 = 1 + z**2
    r2 = (t.ravel() - mu) ** 2
    assert_allclose(dfdz, (r2 / s2**2 - 1 / s2) * z, rtol=1e-10, atol=1e-300)
    assert np.all(np.abs(dfdz) <= r2 + 1)
    # and on a dense sweep of (z, t - mu): z in +-[1e-6, 1e6] and 0, residual in [0, 1e3]
    zz = np.concatenate([-np.logspace(-6, 6, 61), [0.0], np.logspace(-6, 6, 61)])
    rr = np.concatenate([[0.0], np.logspace(-3, 3, 31)])
    Z, RR = np.meshgrid(zz, rr)
    zs, res = Z.reshape(-1, 1), RR.reshape(-1, 1)
    n = zs.shape[0]
    sig, gs, gz = np.empty((n, 1)), np.zeros((n, 1)), np.zeros((n, 1))
    cpu.sqrt1p_fwd(zs, sig)
    cpu.gaussian_nll_bwd(np.zeros((n, 1)), sig, res, -np.ones(n), E2, gs, E2)
    cpu.sqrt1p_bwd(zs, sig, gs, gz)
    assert np.all(np.isfinite(gz))
    assert np.all(np.abs(gz) <= res**2 + 1)


def test_gradient_ascent_with_adam_improves_J():
    """The chain trains: 300 Adam steps on J (through the kernels) raise it by > 0.3 nats."""
    x, t, w0, v0 = data(4)
    theta = np.zeros(2 * P)
    m, s = np.zeros(2 * P), np.zeros(2 * P)
    J0 = forward(x, t, theta[:P], theta[P:])[0]
    for step in range(1, 301):
        gw, gv, _ = backward(x, t, theta[:P].copy(), theta[P:].copy())
        cpu.adam_update(theta, -np.concatenate([gw, gv]), m, s, np.array([0.05]),
                        np.array([0.9]), np.array([0.999]), np.array([1e-8]), step)
    J1 = forward(x, t, theta[:P], theta[P:])[0]
    assert J1 > J0 + 0.3, (J0, J1)
