"""The measure-valued derivative estimator (`mvd`, ppl/estimators/mvd.py) is unbiased, alone and
stacked with other estimators, on Bernoulli, Categorical and Poisson nodes.

Oracles:
- Bernoulli and Categorical: tests/exact.py (every layer enumerated; the gradient by central
  differences).
- Poisson: the closed form E[(k - c)^2] = rate + (rate - c)^2 per unit, with the Bernoulli layer
  above it (under DisARM) enumerated exactly; the gradient by central differences in NumPy.
Check: stats.assert_unbiased_tuned, the projection of the mean estimate on the exact gradient
within 4 SE of 1 (and every entry within 4.5 SE); the tile is sized for an SE of the ratio of
about 0.8%, and the same estimates scaled by 1.05 and 0.95 must fail, so each case detects a 5%
bias. A biased variant (the Bernoulli weight p (1 - p) replaced by p) is rejected.
"""
import numpy as np
import pytest

import exact
import ppl
import stats
from ppl import Affine, Bernoulli, Model
from ppl.estimators import REGISTRY

from small_models import DATA, X, two_layer_sbn as build  # noqa: E402


def build_normal(name):
    with Model(name) as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 2, name="a1"))
        z = ppl.Normal("z", Affine(h, 2, name="loc"), ppl.softplus(Affine(h, 2, name="sc")))
        m.cost("lpz", ppl.log_prob(z))
        m.cost("lph", ppl.log_prob(h))
        m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
    return m


@pytest.mark.parametrize("h,z", [("disarm", "mvd"), ("mvd", "mvd"), ("mvd", "pathwise")])
def test_mvd_normal_is_unbiased(h, z):
    """The Normal's loc by its Rayleigh pair, its scale by the double-sided Maxwell against the
    draw; tests/exact.py integrates the Normal by Gauss-Hermite and enumerates the Bernoulli."""
    prog = build_normal(f"mvd_normal_{h}_{z}").compile(dtype=np.float64, estimators={"h": h, "z": z})
    P = _params(prog, seed=11)
    g = exact.gradient(build_normal("mvd_normal_oracle"), P, DATA)
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"{h} over {z} (Normal)")


def _params(prog, seed=7):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}


@pytest.mark.parametrize("h1,h2", [("mvd", "mvd"), ("disarm", "mvd"), ("mvd", "score"), ("mvd", "rebar")])
def test_mvd_bernoulli_is_unbiased(h1, h2):
    m = build(f"mvd_{h1}_{h2}")
    prog = m.compile(dtype=np.float64, estimators={"h1": h1, "h2": h2})
    P = _params(prog)
    g = exact.gradient(build("mvd_oracle"), P, DATA)
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"{h1} over {h2}")


def build_categorical(name):
    """A Bernoulli layer over a categorical one of G = 2 groups of K = 3 classes (9 joint values)."""
    with Model(name) as m:
        x = m.input("x", 3)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="a1"))
        h2 = ppl.Categorical("h2", Affine(h1, 6, name="a2"), classes=3)
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        m.cost("nll", ppl.bernoulli_nll(Affine(h2, 3, name="dec"), target=x))
    return m


@pytest.mark.parametrize("h1,h2", [("mvd", "mvd"), ("disarm", "mvd"), ("mvd", "score")])
def test_mvd_categorical_is_unbiased(h1, h2):
    prog = build_categorical(f"mvd_cat_{h1}_{h2}").compile(dtype=np.float64, estimators={"h1": h1, "h2": h2})
    P = _params(prog, seed=11)
    g = exact.gradient(build_categorical("mvd_cat_oracle"), P, DATA)
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"{h1} over {h2} (categorical)")


def test_mvd_categorical_is_exact_in_the_group_s_own_draw():
    """One group of K = 4 classes, its logits' only cost below it: the estimate of the logits'
    gradient sums every class with its softmax weight (1 + (K - 1) rows), so each estimate is the
    exact gradient, whatever the draw (a wrong weight shows here without any statistics)."""
    with Model("mvd_cat_exact") as m:
        x = m.input("x", 3)
        h = ppl.Categorical("h", Affine(x, 4, name="a"), classes=4)
        m.cost("nll", ppl.bernoulli_nll(Affine(h, 3, name="dec"), target=x))
    prog = m.compile(dtype=np.float64, estimators={"h": "mvd"})
    assert "rows per data row: 4 (4 per draw" in " ".join(prog.explain().split())
    P = _params(prog, seed=5)
    for k, v in P.items():
        prog.params[k][...] = v
    g = exact.gradient(m, P, DATA)
    for seed in range(3):
        _, est = prog.grad(DATA, seed=seed)
        for k in ("a.W", "a.b"):
            np.testing.assert_allclose(est[k], g[k], rtol=1e-6, atol=1e-8, err_msg=k)


C = 3.0


def build_poisson(name):
    with Model(name) as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 2, name="a"))
        k = ppl.Poisson("k", ppl.exp(Affine(h, 2, name="r")))
        d = k - C
        m.cost("sq", ppl.total(d * d))
        m.cost("lp", ppl.log_prob(h))
    return m


def poisson_objective(P):
    """Mean over rows of E_h[ sum_j rate_j(h) + (rate_j(h) - C)^2 + log q(h) ], h enumerated."""
    total = 0.0
    for x in X:
        a = x @ P["a.W"] + P["a.b"]
        for hv in ((0., 0.), (1., 0.), (0., 1.), (1., 1.)):
            hv = np.array(hv)
            logq = (hv * -np.logaddexp(0, -a) + (1 - hv) * -np.logaddexp(0, a)).sum()
            rate = np.exp(hv @ P["r.W"] + P["r.b"])
            total += np.exp(logq) * ((rate + (rate - C) ** 2).sum() + logq)
    return total / len(X)


def poisson_gradient(P, eps=1e-6):
    out = {}
    for k, v in P.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            Q = {kk: vv.copy() for kk, vv in P.items()}
            Q[k][idx] += eps
            fp = poisson_objective(Q)
            Q[k][idx] -= 2 * eps
            g[idx] = (fp - poisson_objective(Q)) / (2 * eps)
        out[k] = g
    return out


@pytest.mark.parametrize("h", ["disarm", "mvd"])
def test_mvd_poisson_is_unbiased_under_a_bernoulli_layer(h):
    prog = build_poisson(f"mvd_poisson_{h}").compile(dtype=np.float64, estimators={"h": h, "k": "mvd"})
    P = _params(prog, seed=3)
    P = {k: 0.5 * v for k, v in P.items()}   # rates near 1: the counts stay small
    g = poisson_gradient(P)
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"{h} over mvd (Poisson)")


def test_a_biased_variant_is_caught():
    """The test of the test: the Bernoulli kernel with p (1 - p) replaced by p is biased, and the
    check rejects it."""
    from numba import njit

    @njit(cache=False)
    def grad_p_only(logits, value, cost, row_weights, stride, size, grad_logits):
        for r in range(value.shape[0]):
            if (r // stride) % size != 0:
                continue
            for j in range(value.shape[1]):
                p = 1.0 / (1.0 + np.exp(-logits[r, j]))
                diff = cost[r] - cost[r + (j + 1) * stride]
                if value[r, j] == 0.0:
                    diff = -diff
                grad_logits[r, j] += row_weights[r] * p * diff

    MVD = type(REGISTRY["mvd"])

    class Biased(MVD):
        name = "mvd_p_only"

        def estimate(self, ctx):
            (g,) = ctx.param_grads()
            stride, size = ctx.rows.digit
            ctx.call(grad_p_only, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, stride, size, g)

    before = dict(REGISTRY)
    try:
        ppl.register_estimator(Biased)
        prog = build("mvd_biased").compile(dtype=np.float64, estimators={"h1": "mvd_p_only", "h2": "score"})
        P = _params(prog)
        g = exact.gradient(build("mvd_oracle"), P, DATA)
        for k, v in P.items():
            prog.params[k][...] = v
        names = list(P)
        r = stats.check(stats.draws(prog, DATA, names, 200, 200), stats.flat(g, names))
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def test_mvd_applies_to_its_laws_only_and_costs_a_row_per_unit():
    with Model("mvd_laplace") as m:
        x = m.input("x", 3)
        z = ppl.Laplace("z", Affine(x, 2, name="loc"), 1.0)
        m.cost("c", ppl.total(z * z))
    with pytest.raises(ppl.ModelError, match=r"Laplace 'z': estimator 'mvd' does not apply \(it has measure-valued "
                                             r"kernels for Bernoulli, Bernoulli\(probs\), Binomial, .*, Normal, "
                                             r"Poisson nodes, not Laplace\)"):
        m.compile(estimators={"z": "mvd"})
    text = " ".join(build_normal("mvd_explain_n").compile(estimators={"h": "disarm", "z": "mvd"}).explain().split())
    assert "rows per data row: 8 (8 per draw" in text   # DisARM's 1 + mvd's 3 x 2 (the loc's pair, the scale's branch)
    text = " ".join(build("mvd_explain").compile(estimators={"h1": "mvd", "h2": "mvd"}).explain().split())
    assert "rows per data row: 5 (5 per draw" in text   # the drawn row + 2 + 2: the nodes' rows add up


@pytest.mark.cuda
@pytest.mark.parametrize("make", [build, build_categorical, build_normal], ids=["bernoulli", "categorical", "normal"])
def test_mvd_runs_on_the_cuda_target(make):
    """Its kernels are declared once (kernels/families/mvd.py): the CUDA step has them."""
    cpu = make("mvd_cuda_twin").compile(dtype=np.float64, estimators="mvd")
    gpu = make("mvd_cuda_twin").compile(dtype=np.float64, estimators="mvd", target="cuda")
    for k, v in cpu.params.items():
        gpu.params[k][...] = v
    lc, gc = cpu.grad(DATA, seed=5)
    lg, gg = gpu.grad(DATA, seed=5)
    assert np.isclose(lc, lg, rtol=1e-9)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12)


def test_mvd_over_an_enumerated_node_is_refused_by_name():
    """Its branch rows weigh 0, so the costs cannot be marginalised over an enumerated node below
    (row by row the estimate was measured biased: 0.71 of the exact gradient on h1's parameters)."""
    with pytest.raises(ppl.ModelError, match=r"estimator 'mvd' of node 'h1': a node below it is enumerated"):
        build("mvd_over_enum").compile(estimators={"h1": "mvd", "h2": "enumerate"})

