"""Dirichlet units: a law added as two files (ppl/laws/dirichlet.py, kernels/families/dirichlet.py).

A node of two groups of K = 3 components, alpha = exp(theta). Oracles: scipy.stats.beta for the
marginals of the draws (x_k ~ Beta(a_k, A - a_k), A the group's sum; Kolmogorov-Smirnov) and
scipy.stats.dirichlet for the log-density; closed forms for the objective
E[sum_k c_k x_k + log p(x)] = sum_k c_k a_k / A - H(a) per group, H the Dirichlet entropy
log B(a) + (A - K) psi(A) - sum_k (a_k - 1) psi(a_k) (its gradient in closed form too, itself
checked against central differences of scipy's entropy); central differences of the step at
fixed noise for the implicit pathwise backward and for the -log p head of a Dirichlet
likelihood. Unbiasedness (pathwise and score): tests/stats.py's projection ratio, the tile sized
so a 5% bias is detectable (the same estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import special as sp
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Model

K = 3
A0 = np.array([-1.0, 0.3, 1.1, 0.5, -0.4, 0.0])     # log concentrations, two groups of 3
C = np.array([1.0, -2.0, 3.0, 0.5, 2.5, -1.0])      # the weights c of the linear cost
DATA = {"x": np.tile(C, (4, 1))}


def build(name="dirichlet"):
    with Model(name) as m:
        x = m.input("x", 2 * K)        # the weights c on every row
        a = ppl.exp(ppl.param("a", 2 * K, init=A0))
        z = ppl.Dirichlet("z", a, classes=K)
        m.cost("mean", ppl.total(z * x))
        m.cost("lp", ppl.log_prob(z))
    return m


def objective(ta):
    a = np.exp(ta)
    return sum(C[g:g + K] @ a[g:g + K] / a[g:g + K].sum() - sps.dirichlet(a[g:g + K]).entropy()
               for g in range(0, 2 * K, K))


def exact_gradient(ta):
    """d/dtheta of the objective: per group, d(c.a / A)/da_j = (c_j - c.a / A) / A and
    dH/da_j = (A - K) psi'(A) - (a_j - 1) psi'(a_j)."""
    a = np.exp(ta)
    out = np.zeros_like(a)
    for g in range(0, 2 * K, K):
        ag, cg = a[g:g + K], C[g:g + K]
        A = ag.sum()
        dm = (cg - cg @ ag / A) / A
        dH = (A - K) * sp.polygamma(1, A) - (ag - 1) * sp.polygamma(1, ag)
        out[g:g + K] = (dm - dH) * ag
    return {"a": out}


def test_the_closed_form_gradient_matches_central_differences_of_scipy():
    g, h = exact_gradient(A0)["a"], 1e-6
    for j in range(2 * K):
        up, down = A0.copy(), A0.copy()
        up[j] += h
        down[j] -= h
        assert g[j] == pytest.approx((objective(up) - objective(down)) / (2 * h), rel=1e-6, abs=1e-9), j


def test_draws_lie_on_the_simplex_and_their_marginals_match_scipy():
    prog = build().compile(dtype=np.float64)
    z = np.concatenate([prog.sample({"x": np.ones((2000, 2 * K))}, seed=s)["z"] for s in range(3)])
    assert np.all(z > 0)
    np.testing.assert_allclose(z.reshape(-1, 2, K).sum(axis=2), 1.0, rtol=1e-12)
    a = np.exp(A0)
    for j in range(2 * K):
        A = a[(j // K) * K:(j // K + 1) * K].sum()
        p = sps.kstest(z[:, j], sps.beta(a[j], A - a[j]).cdf).pvalue
        assert p > 1e-3, (j, p)   # the plumbing: the quantile's own KS tests, with power, are test_gamma_math.py's
    # the two groups are independent draws
    c = np.corrcoef(z[:, 0], z[:, K])[0, 1]
    assert abs(c) < 4 / np.sqrt(len(z)), c


def test_the_step_gradient_matches_central_differences_at_fixed_noise():
    exact.assert_step_gradient(build("dirichlet_cd").compile(dtype=np.float64), DATA)


@pytest.mark.parametrize("est", ["pathwise", "score"])
def test_dirichlet_gradients_are_unbiased(est):
    prog = build(f"dirichlet_{est}").compile(dtype=np.float64, estimators={"z": est})
    stats.assert_unbiased_tuned(prog, DATA, ["a"], stats.flat(exact_gradient(A0), ["a"]), f"dirichlet {est}")


def _spec_model():
    """A Dirichlet latent with a Dirichlet prior, and a Dirichlet likelihood whose concentration reads it."""
    with Model("dirichlet_spec") as m:
        y = m.input("y", 2 * K)
        z = ppl.Dirichlet("z", ppl.exp(ppl.param("a", 2 * K, init=A0)), classes=K)
        m.latent(z, ppl.dist.Dirichlet(ppl.exp(ppl.param("p", 2 * K, init=0.2 * A0)), classes=K))
        m.observe("y", ppl.dist.Dirichlet(concentration=z * 4.0 + 0.5, classes=K), y)
    return m


Y = np.array([[0.2, 0.5, 0.3, 0.05, 0.15, 0.8]])


def test_dirichlet_prior_and_likelihood_match_scipy():
    prog = _spec_model().compile(dtype=np.float64)
    zv = prog.sample({"y": Y}, seed=4)["z"][0]
    want = 0.0
    for g in range(0, 2 * K, K):
        s = slice(g, g + K)
        want += (sps.dirichlet.logpdf(zv[s], np.exp(A0[s])) - sps.dirichlet.logpdf(zv[s], np.exp(0.2 * A0[s]))
                 - sps.dirichlet.logpdf(Y[0, s], zv[s] * 4.0 + 0.5))
    assert np.isclose(prog.loss({"y": Y}, seed=4), want, rtol=1e-9)


def test_the_spec_model_step_gradient_matches_central_differences():
    """The prior's and the likelihood's -log p heads (law_nll) and their gradients through z."""
    exact.assert_step_gradient(_spec_model().compile(dtype=np.float64), {"y": Y})


def test_a_width_that_is_not_groups_of_classes_is_refused():
    with Model("dirichlet_width") as m:
        m.input("x", 2)
        with pytest.raises(ppl.ModelError, match=r"Dirichlet.*'z'.*classes=3"):
            ppl.Dirichlet("z", ppl.exp(ppl.param("a", 4)), classes=3)


def test_a_prior_of_another_support_is_refused():
    with Model("dirichlet_support") as m:
        m.input("x", 2)
        z = ppl.Dirichlet("z", ppl.exp(ppl.param("a", 4)), classes=2)
        with pytest.raises(ppl.ModelError, match=r"does not describe the values of dirichlet node 'z'"):
            m.latent(z, ppl.dist.Categorical(logits=0.0, classes=2))


@pytest.mark.parametrize("bad", [0.0, np.nan])
def test_bad_parameters_raise_in_the_step_naming_the_node(bad):
    with Model("dirichlet_bad") as m:
        x = m.input("x", 4)
        c = ppl.param("c", 4, init=1.0)
        z = ppl.Dirichlet("z", c, classes=2)
        m.cost("mean", ppl.total(z * x))
    prog = m.compile(dtype=np.float64)
    prog.params["c"][3] = bad
    with pytest.raises(ppl.ModelError, match=r"Dirichlet 'z': concentration 'c' has values <= 0 or NaN"):
        prog.loss({"x": np.ones((1, 4))}, seed=0)


@pytest.mark.cuda
@pytest.mark.parametrize("est", ["pathwise", "score"])
def test_the_cuda_program_gives_the_cpu_program_s_loss_and_gradients(est):
    """The whole step on the CUDA target (numba's simulator without a GPU): the same seed, so
    the same loss and gradients as on the CPU (float64)."""
    cpu = build(f"dirichlet_cpu_{est}").compile(dtype=np.float64, estimators={"z": est})
    gpu = build(f"dirichlet_gpu_{est}").compile(dtype=np.float64, estimators={"z": est}, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
