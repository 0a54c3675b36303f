"""Gamma units: a law added as two files (ppl/laws/gamma.py, kernels/families/gamma.py).

Oracles: scipy.stats.gamma for the draws (Kolmogorov-Smirnov) and the log-density; closed forms
for the objective E[sum_j z_j + log p(z_j)] = a / b - H(a, b), H the Gamma entropy
a - log b + lgamma(a) + (1 - a) psi(a), with a = exp(theta_a), b = exp(theta_b) (its gradient in
closed form too); central differences of the step at fixed noise for the implicit pathwise
backward. Unbiasedness (pathwise and score): tests/stats.py's projection ratio, the tile sized so
a 5% bias is detectable (the same estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import special as sp
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Model

ONES = {"x": np.ones((4, 3))}
A0 = np.array([-1.5, 0.0, 1.2])     # log concentrations: 0.22, 1, 3.3
B0 = np.array([0.3, -0.4, 0.1])     # log rates


def build(name="gamma"):
    with Model(name) as m:
        x = m.input("x", 3)            # all ones: the rows of a batch
        a = ppl.exp(ppl.param("a", 3, init=A0))
        b = ppl.exp(ppl.param("b", 3, init=B0))
        z = ppl.Gamma("z", a, b)
        m.cost("mean", ppl.total(z * x))
        m.cost("lp", ppl.log_prob(z))
    return m


def exact_gradient(ta, tb):
    """d/d(theta_a, theta_b) of sum_j a/b - (a - log b + lgamma(a) + (1 - a) psi(a))."""
    a, b = np.exp(ta), np.exp(tb)
    dA = 1 / b - (1 + sp.digamma(a) - sp.digamma(a) + (1 - a) * sp.polygamma(1, a))
    dB = -a / b ** 2 + 1 / b
    return {"a": dA * a, "b": dB * b}


def test_draws_match_scipy():
    prog = build().compile(dtype=np.float64)
    z = np.concatenate([prog.sample({"x": np.ones((2000, 3))}, seed=s)["z"] for s in range(3)])
    a, b = np.exp(A0), np.exp(B0)
    for j in range(3):
        p = sps.kstest(z[:, j], sps.gamma(a[j], scale=1 / b[j]).cdf).pvalue
        assert p > 1e-3, (j, p)   # the plumbing: the quantile's own KS tests, with power, are test_gamma_math.py's


def test_the_step_gradient_matches_central_differences_at_fixed_noise():
    exact.assert_step_gradient(build("gamma_cd").compile(dtype=np.float64), ONES)


@pytest.mark.parametrize("est", ["pathwise", "score"])
def test_gamma_gradients_are_unbiased(est):
    prog = build(f"gamma_{est}").compile(dtype=np.float64, estimators={"z": est})
    g = exact_gradient(A0, B0)
    names = ["a", "b"]
    stats.assert_unbiased_tuned(prog, ONES, names, stats.flat(g, names), f"gamma {est}")


def test_gamma_prior_and_likelihood():
    """A Gamma latent with a Gamma prior, and a Gamma likelihood: the loss against scipy."""
    with Model("gamma_spec") as m:
        y = m.input("y", 3)
        z = ppl.Gamma("z", ppl.exp(ppl.param("a", 3, init=A0)), 2.0)
        m.latent(z, ppl.dist.Gamma(1.5, 1.0))
        m.observe("y", ppl.dist.Gamma(concentration=z + 1.0, rate=3.0), y)
    prog = m.compile(dtype=np.float64)
    data = {"y": np.array([[0.5, 1.2, 0.1]])}
    zv = prog.sample(data, seed=4)["z"][0]
    want = (sps.gamma.logpdf(zv, np.exp(A0), scale=0.5).sum() - sps.gamma.logpdf(zv, 1.5).sum()
            - sps.gamma.logpdf(data["y"][0], zv + 1.0, scale=1 / 3.0).sum())
    assert np.isclose(prog.loss(data, seed=4), want, rtol=1e-9)


def test_bad_parameters_raise_in_the_step_naming_the_node():
    with Model("gamma_bad") as m:
        x = m.input("x", 2)
        c = ppl.param("c", 2, init=np.array([1.0, -1.0]))
        z = ppl.Gamma("z", c, 1.0)
        m.cost("mean", ppl.total(z * x))
    with pytest.raises(ppl.ModelError, match=r"Gamma 'z': concentration 'c' has values <= 0 or NaN"):
        m.compile(dtype=np.float64).loss({"x": np.ones((1, 2))}, seed=0)
