"""Poisson counts, added as one Distribution entry (discrete, unbounded) plus their kernels
(kernels/cpu_poisson.py, gpu_poisson.py) and a DSL constructor: the score function (with its
baselines) applies unchanged, every other estimator refuses with a clear error.

Oracles: scipy.stats.poisson for the draws (chi-square over the counts) and the log-pmf; the
exact gradient of E[k^2 + log p(k)] by sums over k = 0..200 (the tail beyond is below 1e-100
at these rates), differentiated through the encoder in NumPy. Unbiasedness: tests/stats.py's
projection ratio with its standard error over 200 estimates, the tile sized by a pilot run so a
5% bias is detectable (the same estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

import ppl
from ppl import Affine, Model, Poisson

import stats

X = np.array([[0.5, -0.2], [-0.3, 0.6], [0.1, 0.1]])
KS = np.arange(201.0)


def build(name="poisson"):
    """One model name for every test: programs with the same estimator, dtype and samples have
    the same source, so a test process compiles each once."""
    with Model(name) as m:
        x = m.input("x", 2)
        rate = ppl.softplus(Affine(x, 2, name="enc"))
        k = Poisson("k", rate)
        m.cost("sq", ppl.total(0.1 * (k * k)))
        m.cost("lp", ppl.log_prob(k))
    return m


def exact_gradient(prog, x):
    """d/dtheta of mean_rows sum_units E[0.1 k^2 + log p(k)] at rate = softplus(x W + b)."""
    W, b = (np.asarray(prog.params[k], np.float64) for k in ("enc.W", "enc.b"))
    a = x @ W + b
    lam = np.log1p(np.exp(a))
    logp = KS[:, None, None] * np.log(lam) - lam - special.gammaln(KS[:, None, None] + 1)
    p = np.exp(logp)
    f = 0.1 * KS[:, None, None] ** 2 + logp
    # d/dlam sum_k p_k f_k = sum_k p_k (k / lam - 1) f_k + sum_k p_k d f_k / dlam (the latter: E[k/lam - 1] = 0)
    dlam = (p * (KS[:, None, None] / lam - 1) * f).sum(0) / x.shape[0]
    da = dlam / (1 + np.exp(-a))
    return {"enc.W": x.T @ da, "enc.b": da.sum(0)}


def test_draws_and_log_pmf_match_scipy():
    prog = build().compile(estimators="score", dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = [0.3, 2.5]
    rates = np.log1p(np.exp(np.array([0.3, 2.5])))
    s = prog.sample({"x": np.zeros((20000, 2))}, seed=5)
    for j, lam in enumerate(rates):
        k = s["k"][:, j]
        assert np.all(k == np.floor(k)) and k.min() >= 0
        top = int(sps.poisson(lam).ppf(0.999))
        obs = np.bincount(np.minimum(k.astype(int), top), minlength=top + 1)
        exp = sps.poisson(lam).pmf(np.arange(top + 1)) * k.size
        exp[-1] = sps.poisson(lam).sf(top - 1) * k.size
        p = sps.chisquare(obs, exp).pvalue
        assert p > 1e-4, (j, p)
    x = np.zeros((40, 2))
    z = prog.sample({"x": x}, seed=3)["k"]
    want = sps.poisson(rates).logpmf(z).sum(1).mean()
    assert prog.loss_parts({"x": x}, seed=3)["lp"] == pytest.approx(want, rel=1e-12)


def test_large_rates_sample_and_stay_finite():
    prog = build().compile(estimators="score", dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = [900.0, 5000.0]   # exp(-rate) underflows: the search runs in log space
    k = prog.sample({"x": np.zeros((400, 2))}, seed=1)["k"]
    for j, lam in enumerate((900.0, 5000.0)):
        assert abs(k[:, j].mean() - lam) < 5 * np.sqrt(lam / 400), (j, k[:, j].mean())


@pytest.mark.parametrize("samples", [1, 2])
def test_score_is_unbiased_against_the_exact_sums(samples):
    prog = build().compile(dtype=np.float64, samples=samples)
    assert {n.name: ch.estimator for n, (ch, _) in prog.choices.items()} == {"k": "score"}
    prog.theta[:] = np.random.default_rng(6).normal(0, 0.4, prog.theta.shape)
    exact = exact_gradient(prog, X)
    names = list(exact)
    stats.assert_unbiased_tuned(prog, {"x": X}, names, stats.flat(exact, names), f"Poisson score K={samples}")


def test_other_estimators_refuse_clearly():
    for est, why in (("pathwise", ""), ("enumerate", "infinitely many values"), ("straight_through", ""),
                     ("concrete", ""), ("arm", "not a logit-link Bernoulli"), ("rebar", "no REBAR"),
                     ("relax", "no RELAX"), ("price", "not a Normal node")):
        with pytest.raises(ppl.ModelError, match=f"Poisson 'k': estimator '{est}' does not apply.*{why}"):
            build(f"poisson_{est}").compile(estimators=est, dtype=np.float64)


def test_a_negative_rate_in_the_step_names_the_node():
    with Model("poisson_neg") as m:
        x = m.input("x", 2)
        k = Poisson("k", Affine(x, 2, name="enc"))   # not made positive
        m.cost("c", ppl.total(k))
    prog = m.compile(dtype=np.float64)
    prog.params["enc.b"][...] = -3.0
    with pytest.raises(ppl.ModelError, match=r"Poisson 'k': rate 'enc' has values < 0, inf or NaN"):
        prog.loss({"x": X}, seed=0)


def test_rate_zero_is_the_certain_zero():
    """A rate of 0 draws 0 with log p(0 | 0) = 0 and a finite score (d log p / d rate = -1); the
    measure-valued and stochastic derivatives see f(1) - f(0) there, the one-sided derivative."""
    with Model("poisson_zero") as m:
        x = m.input("x", 2)
        k = Poisson("k", ppl.relu(Affine(x, 2, name="enc")))
        m.cost("c", ppl.total(k * k + 2.0 * k))
        m.cost("lp", ppl.log_prob(k))
    for est in ("score", "mvd", "stochastic_derivative"):
        prog = m.compile(dtype=np.float64, estimators=est)
        prog.params["enc.W"][...] = 0.0
        prog.params["enc.b"][...] = 0.0   # relu(0) = 0: every rate is 0
        loss, g = prog.grad({"x": X}, seed=0)
        assert loss == 0.0 and all(np.all(np.isfinite(v)) for v in g.values())
        if est == "score":   # (the others' samples hold their branch rows too)
            assert not np.any(prog.sample({"x": X}, seed=1)["k"])


@pytest.mark.cuda
def test_cuda_parity():
    cpu = build().compile(estimators="score", dtype=np.float64, seed=1)
    gpu = build("poisson_gpu").compile(estimators="score", dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad({"x": X}, seed=seed)
        lg, gg = gpu.grad({"x": X}, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
