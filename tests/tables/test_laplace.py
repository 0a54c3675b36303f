"""Laplace units, added as one Distribution entry (ppl/distributions.py) plus their kernels
(kernels/cpu_laplace.py, gpu_laplace.py) and a DSL constructor: the estimators that apply
(pathwise, score) apply unchanged, the others refuse with a clear error.

Oracles: scipy.stats.laplace for the draws (Kolmogorov-Smirnov) and the log-density; closed
forms for the objective E[z^2 + 3 z + log p(z)] = loc^2 + 2 scale^2 + 3 loc - 1 - log(2 scale)
(per unit), differentiated through the encoder in NumPy; central differences of the step at
fixed noise for the pathwise backward. Unbiasedness: tests/stats.py's projection ratio with its
standard error over 200 estimates, tile sized by a pilot run so a 5% bias is detectable (the
same estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import stats as sps

import ppl
from ppl import Affine, Bernoulli, Laplace, Model

import exact
import stats

X = np.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]])


def build(name="laplace"):
    """One model name for every test: programs with the same estimator, dtype and samples have
    the same source, so a test process compiles each once."""
    with Model(name) as m:
        x = m.input("x", 2)
        loc = Affine(x, 2, name="loc")
        scale = ppl.softplus(Affine(x, 2, name="sc"))
        z = Laplace("z", loc, scale)
        m.cost("sq", ppl.total(z * z + 3.0 * z))
        m.cost("lp", ppl.log_prob(z))
    return m


def exact_gradient(prog, x):
    """d/dtheta of mean_rows sum_units [loc^2 + 2 s^2 + 3 loc - 1 - log(2 s)], s = softplus."""
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    loc = x @ P["loc.W"] + P["loc.b"]
    a = x @ P["sc.W"] + P["sc.b"]
    s = np.log1p(np.exp(a))
    n = x.shape[0]
    dloc = (2 * loc + 3) / n
    ds = (4 * s - 1 / s) / n * (1 / (1 + np.exp(-a)))
    return {"loc.W": x.T @ dloc, "loc.b": dloc.sum(0), "sc.W": x.T @ ds, "sc.b": ds.sum(0)}


def test_draws_and_log_density_match_scipy():
    prog = build().compile(estimators="pathwise", dtype=np.float64)
    prog.params["loc.W"][...] = 0.0
    prog.params["loc.b"][...] = [0.5, -1.0]
    prog.params["sc.W"][...] = 0.0
    prog.params["sc.b"][...] = [0.0, 1.0]
    x = np.zeros((20000, 2))
    s = prog.sample({"x": x}, seed=7)
    scale = np.log1p(np.exp(np.array([0.0, 1.0])))
    for j, loc in enumerate((0.5, -1.0)):
        p = sps.kstest(s["z"][:, j], sps.laplace(loc=loc, scale=scale[j]).cdf).pvalue
        assert p > 1e-4, (j, p)
    parts = prog.loss_parts({"x": x[:50]}, seed=3)
    z = prog.sample({"x": x[:50]}, seed=3)["z"]
    want = sps.laplace(loc=[0.5, -1.0], scale=scale).logpdf(z).sum(1).mean()
    assert parts["lp"] == pytest.approx(want, rel=1e-12)


def test_pathwise_backward_matches_central_differences():
    prog = build().compile(estimators="pathwise", dtype=np.float64)
    prog.theta[:] = np.random.default_rng(2).normal(0, 0.5, prog.theta.shape)
    exact.assert_step_gradient(prog, {"x": X})


@pytest.mark.parametrize("est,samples", [("pathwise", 1), ("score", 2)])
def test_estimators_are_unbiased_against_the_closed_form(est, samples):
    prog = build().compile(estimators=est, dtype=np.float64, samples=samples)
    prog.theta[:] = np.random.default_rng(4).normal(0, 0.4, prog.theta.shape)
    exact = exact_gradient(prog, X)
    names = list(exact)
    stats.assert_unbiased_tuned(prog, {"x": X}, names, stats.flat(exact, names), f"Laplace {est}")


def test_default_is_pathwise_and_other_estimators_refuse_clearly():
    prog = build().compile(dtype=np.float64)
    assert {n.name: ch.estimator for n, (ch, _) in prog.choices.items()} == {"z": "pathwise"}
    for est, why in (("price", "Laplace is not a Normal node"), ("arm", "not a logit-link Bernoulli"),
                     ("enumerate", "continuous"), ("rebar", "no REBAR implementation")):
        with pytest.raises(ppl.ModelError, match=f"Laplace 'z': estimator '{est}' does not apply.*{why}"):
            build(f"laplace_{est}").compile(estimators=est, dtype=np.float64)
    with Model("laplace_bad"):
        p = ppl.param("p", 2)
        with pytest.raises(ppl.ModelError, match=r"Laplace 'z': scale is the constant -1.0; it must be > 0"):
            Laplace("z", p, -1.0)


def test_score_laplace_below_rebar_is_a_clear_error():
    with Model("laplace_rebar") as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 2, name="enc"))
        z = Laplace("z", Affine(b, 2, name="loc"), 0.5)
        m.cost("c", ppl.total(z * z))
    with pytest.raises(ppl.ModelError, match=r"Laplace 'z' \(estimator 'score'\) cannot sit below the REBAR node 'b'"):
        m.compile(estimators={"b": "rebar", "z": "score"}, dtype=np.float64)
    m.compile(estimators={"b": "rebar", "z": "pathwise"}, dtype=np.float64)


def test_a_nonpositive_scale_in_the_step_names_the_node():
    with Model("laplace_nan") as m:
        x = m.input("x", 2)
        z = Laplace("z", Affine(x, 2, name="loc"), Affine(x, 2, name="sc"))   # not made positive
        m.cost("c", ppl.total(z))
    prog = m.compile(estimators="score", dtype=np.float64)
    prog.params["sc.b"][...] = -5.0
    with pytest.raises(ppl.ModelError, match=r"Laplace 'z': scale 'sc' has values <= 0"):
        prog.loss({"x": X}, seed=0)


@pytest.mark.cuda
def test_cuda_parity():
    cpu = build().compile(estimators="pathwise", dtype=np.float64, seed=1)
    gpu = build("laplace_gpu").compile(estimators="pathwise", dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad({"x": X}, seed=seed)
        lg, gg = gpu.grad({"x": X}, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
