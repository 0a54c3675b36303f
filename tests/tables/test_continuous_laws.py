"""Exponential, HalfNormal, HalfCauchy, LogNormal and StudentT: each a node, a prior and a
likelihood (one law module and one kernel family each), pathwise and score.

Oracles: scipy.stats for the draws (Kolmogorov-Smirnov; the same draws against the law with a
parameter 5% larger must fail) and the log-density; the gradient of E[log(1 + z^2)] (finite for
all five, the heavy tails included), each unit's expectation by scipy's quadrature (`expect`) and its
derivatives in the law's parameters by central differences of it, chained through the encoder
in NumPy; central differences of the step at fixed noise for the pathwise backward.
Unbiasedness: tests/stats.py's projection ratio with its SE, the tile sized by a pilot so that
a 5% bias is detected (the estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import stats as sps

import ppl
from ppl import Affine, Model
from ppl.language import dist

import exact
import stats

X = np.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]])
LAWS = {   # name -> (constructor, each parameter's offset c (positive: softplus(a) + c) or None, scipy law)
    "Exponential": (ppl.Exponential, (0.0,), lambda rate: sps.expon(scale=1 / rate)),
    "HalfNormal": (ppl.HalfNormal, (0.0,), lambda s: sps.halfnorm(scale=s)),
    "HalfCauchy": (ppl.HalfCauchy, (0.0,), lambda s: sps.halfcauchy(scale=s)),
    "LogNormal": (ppl.LogNormal, (None, 0.0), lambda loc, s: sps.lognorm(s=s, scale=np.exp(loc))),
    "StudentT": (ppl.StudentT, (1.5, None, 0.0), lambda df, loc, s: sps.t(df, loc, s)),
}


def _params(x, offsets):
    return [Affine(x, 2, name=f"p{k}") if c is None else ppl.softplus(Affine(x, 2, name=f"p{k}")) + c
            for k, c in enumerate(offsets)]


def build(law, name=None):
    make, positive, _ = LAWS[law]
    with Model(name or f"pos_{law}") as m:
        x = m.input("x", 2)
        z = make("z", *_params(x, positive))
        m.cost("f", ppl.total(ppl.log(1.0 + z * z)))
    return m


def law_params(prog, law, x):
    """[(pre-activation, parameter)] of each of the law's parameters on the rows x."""
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    out = []
    for k, c in enumerate(LAWS[law][1]):
        a = x @ P[f"p{k}.W"] + P[f"p{k}.b"]
        out.append((a, a if c is None else np.logaddexp(0, a) + c))
    return out


def exact_gradient(prog, law, x, h=1e-4):
    """d/dtheta of mean_rows sum_units E[log(1 + z^2)] by quadrature and central differences."""
    frozen, positive = LAWS[law][2], LAWS[law][1]
    pars = law_params(prog, law, x)
    n = x.shape[0]
    grads = {}
    for k, (a, p) in enumerate(pars):
        d = np.zeros_like(p)
        for r in range(p.shape[0]):
            for j in range(p.shape[1]):
                vals = [q[1][r, j] for q in pars]

                def e(v):
                    args = list(vals)
                    args[k] = v
                    return frozen(*args).expect(lambda t: np.log1p(t * t))
                d[r, j] = (e(vals[k] + h) - e(vals[k] - h)) / (2 * h)
        da = d * (1.0 if positive[k] is None else 1 / (1 + np.exp(-a))) / n
        grads[f"p{k}.W"], grads[f"p{k}.b"] = x.T @ da, da.sum(0)
    return grads


def randomised(law, est="pathwise", samples=1, seed=4):
    prog = build(law).compile(estimators=est, dtype=np.float64, samples=samples)
    prog.theta[:] = np.random.default_rng(seed).normal(0, 0.4, prog.theta.shape)
    return prog


@pytest.mark.parametrize("law", list(LAWS))
def test_draws_and_log_density_match_scipy(law):
    prog = randomised(law)
    x = np.tile(X[:1], (200_000, 1))
    z = prog.sample({"x": x}, seed=7)["z"]
    pars = [p[0] for _, p in law_params(prog, law, X[:1])]   # row 0's two units
    for j in range(2):
        args = [p[j] for p in pars]
        assert sps.kstest(z[:, j], LAWS[law][2](*args).cdf).pvalue > 1e-4, (law, j)
        wrong = list(args)
        wrong[-1] *= 1.05                                         # the scale (or rate) 5% larger
        assert sps.kstest(z[:, j], LAWS[law][2](*wrong).cdf).pvalue < 1e-4, (law, j)
    with Model(f"lp_{law}") as m:
        x_in = m.input("x", 2)
        zz = LAWS[law][0]("z", *_params(x_in, LAWS[law][1]))
        m.cost("lp", ppl.log_prob(zz))
    lp = m.compile(estimators="pathwise", dtype=np.float64)
    lp.theta[:] = prog.theta
    parts = lp.loss_parts({"x": X}, seed=3)
    z = lp.sample({"x": X}, seed=3)["z"]
    ps = [p for _, p in law_params(lp, law, X)]
    assert parts["lp"] == pytest.approx(LAWS[law][2](*ps).logpdf(z).sum(1).mean(), rel=1e-12)


@pytest.mark.parametrize("law", list(LAWS))
def test_pathwise_backward_matches_central_differences(law):
    exact.assert_step_gradient(randomised(law, seed=2), {"x": X})


@pytest.mark.parametrize("law,est", [(law, "pathwise") for law in LAWS] + [("Exponential", "score"),
                                                                        ("StudentT", "score")])
def test_estimators_are_unbiased_against_quadrature(law, est):
    prog = randomised(law, est, samples=2 if est == "score" else 1)
    e = exact_gradient(prog, law, X)
    names = list(e)
    stats.assert_unbiased_tuned(prog, {"x": X}, names, stats.flat(e, names), f"{law} {est}")


def test_priors_and_likelihoods_of_the_new_laws():
    """As priors (a HalfCauchy(5) on a positive latent, automatic guide) and likelihoods (each
    law's -log p(y) the negated scipy log-density of the data)."""
    rng = np.random.default_rng(3)
    y = rng.lognormal(0.2, 0.5, (30, 1))
    specs = {"Exponential": (dist.Exponential(2.0), sps.expon(scale=0.5)),
             "HalfNormal": (dist.HalfNormal(1.5), sps.halfnorm(scale=1.5)),
             "HalfCauchy": (dist.HalfCauchy(5.0), sps.halfcauchy(scale=5.0)),
             "LogNormal": (dist.LogNormal(0.2, 0.5), sps.lognorm(s=0.5, scale=np.exp(0.2))),
             "StudentT": (dist.StudentT(3.0, 1.0, 0.7), sps.t(3.0, 1.0, 0.7))}
    for law, (spec, ref) in specs.items():
        with Model(f"lik_{law}") as m:
            t = m.input("y", 1)
            m.observe("lik", spec, t)
        got = m.compile(dtype=np.float64).loss_parts({"y": y})["lik"]
        assert got == pytest.approx(-ref.logpdf(y[:, 0]).mean(), rel=1e-12), law
    with Model("scale_prior") as m:
        t = m.input("y", 1)
        tau = m.latent("tau", dist.HalfCauchy(5.0))
        with m.plate("data"):
            m.observe("lik", dist.Normal(0.0, tau), t)
    prog = m.compile(dtype=np.float64, samples=8)
    ppl.fit(prog, {"y": np.log(y)}, ppl.optim.Adam(0.05), steps=600, batch_size=30, progress=False)
    sd = float(np.exp(prog.params["tau_loc"][0]))
    assert 0.3 < sd < 0.8    # near the data's sd 0.5 (the posterior of tau given 30 draws)
