"""Beta units: a law added as two files (ppl/laws/beta.py, kernels/families/beta.py), on the
core's one new capability for it: a law's noise_draws (two uniforms per unit).

Oracles: scipy.stats.beta for the draws (Kolmogorov-Smirnov) and the log-density; closed forms
for the objective E[sum_j z_j + log p(z_j)] = a / (a + b) - H(a, b), H the Beta entropy
log B(a, b) - (a - 1) psi(a) - (b - 1) psi(b) + (a + b - 2) psi(a + b), with a = exp(theta_a),
b = exp(theta_b) (its gradient in closed form too, itself checked against central differences
of scipy's entropy); central differences of the step at fixed noise for the implicit pathwise
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
A0 = np.array([-1.2, 0.0, 1.0])     # log concentration1: 0.30, 1, 2.7
B0 = np.array([0.5, -0.8, 0.2])     # log concentration0: 1.6, 0.45, 1.2


def build(name="beta"):
    with Model(name) as m:
        x = m.input("x", 3)            # all ones: the rows of a batch
        a = ppl.exp(ppl.param("a", 3, init=A0))
        b = ppl.exp(ppl.param("b", 3, init=B0))
        z = ppl.Beta("z", a, b)
        m.cost("mean", ppl.total(z * x))
        m.cost("lp", ppl.log_prob(z))
    return m


def objective(ta, tb):
    a, b = np.exp(ta), np.exp(tb)
    return np.sum(a / (a + b) - sps.beta.entropy(a, b))


def exact_gradient(ta, tb):
    """d/d(theta_a, theta_b) of sum_j a/(a+b) - H(a, b): dH/da = (a + b - 2) psi'(a + b) - (a - 1) psi'(a)."""
    a, b = np.exp(ta), np.exp(tb)
    t = (a + b - 2) * sp.polygamma(1, a + b)
    dA = b / (a + b) ** 2 - (t - (a - 1) * sp.polygamma(1, a))
    dB = -a / (a + b) ** 2 - (t - (b - 1) * sp.polygamma(1, b))
    return {"a": dA * a, "b": dB * b}


def test_the_closed_form_gradient_matches_central_differences_of_scipy():
    g, h = exact_gradient(A0, B0), 1e-6
    for k, base in (("a", A0), ("b", B0)):
        for j in range(3):
            up, down = base.copy(), base.copy()
            up[j] += h
            down[j] -= h
            num = ((objective(up, B0) - objective(down, B0)) if k == "a" else
                   (objective(A0, up) - objective(A0, down))) / (2 * h)
            assert g[k][j] == pytest.approx(num, rel=1e-6, abs=1e-9), (k, j)


def test_draws_match_scipy_and_use_two_uniforms_per_unit():
    prog = build().compile(dtype=np.float64)
    assert [w for (_, _, w) in (prog.layout.ws2[i] for i in prog.layout.noise)] == [6]   # 2 x width 3
    z = np.concatenate([prog.sample({"x": np.ones((2000, 3))}, seed=s)["z"] for s in range(3)])
    a, b = np.exp(A0), np.exp(B0)
    for j in range(3):
        p = sps.kstest(z[:, j], sps.beta(a[j], b[j]).cdf).pvalue
        assert p > 1e-3, (j, p)   # the plumbing: the quantile's own KS tests, with power, are test_gamma_math.py's
    # the columns are independent draws (the two uniforms of a unit are not shared with a neighbour)
    c = np.corrcoef(z.T)[np.triu_indices(3, 1)]
    assert np.all(np.abs(c) < 4 / np.sqrt(len(z))), c


def test_the_step_gradient_matches_central_differences_at_fixed_noise():
    exact.assert_step_gradient(build("beta_cd").compile(dtype=np.float64), ONES)


@pytest.mark.parametrize("est", ["pathwise", "score"])
def test_beta_gradients_are_unbiased(est):
    prog = build(f"beta_{est}").compile(dtype=np.float64, estimators={"z": est})
    g = exact_gradient(A0, B0)
    names = ["a", "b"]
    stats.assert_unbiased_tuned(prog, ONES, names, stats.flat(g, names), f"beta {est}")


def test_beta_prior_and_likelihood():
    """A Beta latent with a Beta prior, and a Beta likelihood: the loss against scipy."""
    with Model("beta_spec") as m:
        y = m.input("y", 3)
        z = ppl.Beta("z", ppl.exp(ppl.param("a", 3, init=A0)), 2.0)
        m.latent(z, ppl.dist.Beta(1.5, 0.7))
        m.observe("y", ppl.dist.Beta(concentration1=z + 1.0, concentration0=3.0), y)
    prog = m.compile(dtype=np.float64)
    data = {"y": np.array([[0.5, 0.92, 0.1]])}
    zv = prog.sample(data, seed=4)["z"][0]
    want = (sps.beta.logpdf(zv, np.exp(A0), 2.0).sum() - sps.beta.logpdf(zv, 1.5, 0.7).sum()
            - sps.beta.logpdf(data["y"][0], zv + 1.0, 3.0).sum())
    assert np.isclose(prog.loss(data, seed=4), want, rtol=1e-9)


def test_a_prior_of_another_support_is_refused():
    with Model("beta_support") as m:
        m.input("x", 2)
        z = ppl.Beta("z", 1.0, ppl.exp(ppl.param("b", 2)))
        with pytest.raises(ppl.ModelError, match=r"does not describe the values of beta node 'z'"):
            m.latent(z, ppl.dist.Gamma(1.0, 1.0))


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_bad_parameters_raise_in_the_step_naming_the_node(bad):
    with Model("beta_bad") as m:
        x = m.input("x", 2)
        c = ppl.param("c", 2, init=1.0)
        z = ppl.Beta("z", 1.0, c)
        m.cost("mean", ppl.total(z * x))
    prog = m.compile(dtype=np.float64)
    prog.params["c"][1] = bad
    with pytest.raises(ppl.ModelError, match=r"Beta 'z': concentration0 'c' has values <= 0 or NaN"):
        prog.loss({"x": np.ones((1, 2))}, seed=0)


@pytest.mark.cuda
@pytest.mark.parametrize("est", ["pathwise", "score"])
def test_the_cuda_program_gives_the_cpu_program_s_loss_and_gradients(est):
    """The whole step on the CUDA target (numba's simulator without a GPU): the same seed, the
    same two uniforms per unit, so the same loss and gradients as on the CPU (float64)."""
    cpu = build(f"beta_cpu_{est}").compile(dtype=np.float64, estimators={"z": est})
    gpu = build(f"beta_gpu_{est}").compile(dtype=np.float64, estimators={"z": est}, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(ONES, seed=seed)
        lg, gg = gpu.grad(ONES, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
