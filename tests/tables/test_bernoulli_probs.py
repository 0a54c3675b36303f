"""Bernoulli units given by probabilities (`ppl.Bernoulli(name, probs=p)`, the law entry
"bernoulli_probs", kernels/families/probs.py): b = 1[u < p], exact at p = 0 and p = 1.

Oracles: scipy.stats.bernoulli for the draws (chi-square) and the log-pmf; tests/exact.py (every
value enumerated, the gradient by central differences) for the estimators' expectations, alone
and stacked over a Normal layer (Gauss-Hermite there); at p in {0, 1} the one-sided derivative
f(b_j = 1) - f(b_j = 0) in closed form. Unbiasedness: stats.assert_unbiased_tuned, the projection
of the mean estimate on the exact gradient within 4 SE of 1 with the tile sized for an SE of
about 0.8%, and the same estimates scaled by 1.05 and 0.95 must fail: each case detects a 5% bias.
"""
import numpy as np
import pytest
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Affine, Bernoulli, Model
from small_models import DATA, X


def build(name="bprobs"):
    """One model name per estimator: programs of the same source compile once per process."""
    with Model(name) as m:
        x = m.input("x", 3)
        b = Bernoulli("b", probs=ppl.sigmoid(Affine(x, 2, name="enc")))
        m.cost("nll", ppl.bernoulli_nll(Affine(b, 3, name="dec"), target=x))
        m.cost("lp", ppl.log_prob(b))
    return m


def build_stacked(name):
    """A Bernoulli(probs) layer over a Normal unit: x -> b (2 units) -> z -> likelihood of x."""
    with Model(name) as m:
        x = m.input("x", 3)
        b = Bernoulli("b", probs=ppl.sigmoid(Affine(x, 2, name="enc")))
        z = ppl.Normal("z", Affine(b, 1, name="loc"), ppl.softplus(Affine(b, 1, name="sc")))
        m.cost("lpb", ppl.log_prob(b))
        m.cost("lpz", ppl.log_prob(z))
        m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
    return m


def build_edges(name, log_prob=False):
    """Probabilities that are parameters, at the boundary: each unit is certain."""
    with Model(name) as m:
        x = m.input("x", 3)
        b = Bernoulli("b", probs=ppl.param("p", 2, init=np.array([0.0, 1.0])))
        m.cost("f", ppl.total(ppl.tanh(Affine(b, 3, name="dec")) * x))
        if log_prob:
            m.cost("lp", ppl.log_prob(b))
    return m


def _params(prog, seed=5):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}


def _set(prog, P):
    for k, v in P.items():
        prog.params[k][...] = v


def test_draws_and_log_pmf_match_scipy():
    prog = build().compile(estimators="score", dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = [-0.8, 1.5]
    p = 1 / (1 + np.exp(-np.array([-0.8, 1.5])))
    s = prog.sample({"x": np.zeros((20000, 3))}, seed=5)["b"]
    assert set(np.unique(s)) <= {0.0, 1.0}
    for j in range(2):
        obs = np.bincount(s[:, j].astype(int), minlength=2)
        assert sps.chisquare(obs, [(1 - p[j]) * len(s), p[j] * len(s)]).pvalue > 1e-4, j
    x = np.zeros((40, 3))
    b = prog.sample({"x": x}, seed=3)["b"]
    want = sps.bernoulli(p).logpmf(b).sum(1).mean()
    assert prog.loss_parts({"x": x}, seed=3)["lp"] == pytest.approx(want, rel=1e-12)


def test_the_boundary_is_certain_and_its_gradients_finite_and_exact():
    """p = 0 and p = 1: every draw is the certain value, log p = 0, the score's gradient finite,
    mvd's the one-sided derivative f(b_j = 1) - f(b_j = 0) exactly (no variance is left)."""
    x = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    for est in ("score", "mvd", "straight_through"):
        prog = build_edges(f"bprobs_edges_{est}").compile(estimators=est, dtype=np.float64)
        prog.params["dec.W"][...] = np.random.default_rng(1).normal(0, 0.7, (2, 3))
        s = prog.sample({"x": x}, seed=2)["b"]
        assert np.all(s[::3 if est == "mvd" else 1] == [0.0, 1.0])   # mvd: each draw's row, then its branches
        loss, g = prog.grad({"x": x}, seed=2)
        assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in g.values()), (est, g)
        if est == "mvd":
            W, c = prog.params["dec.W"], prog.params["dec.b"]
            f = [np.mean(np.sum(np.tanh(np.array(v) @ W + c) * x, 1)) for v in ([1, 1], [0, 0], [0, 1])]
            np.testing.assert_allclose(g["p"], [f[0] - f[2], f[2] - f[1]], rtol=1e-12)
    prog = build_edges("bprobs_edges_lp", log_prob=True).compile(estimators="score", dtype=np.float64)
    assert prog.loss_parts({"x": x}, seed=0)["lp"] == 0.0   # log p(0 | 0) = log p(1 | 1) = 0
    _, g = prog.grad({"x": x}, seed=0)
    assert np.all(np.isfinite(g["p"]))


@pytest.mark.parametrize("est,samples", [(("score", {"baseline": "none"}), 1),
                                         (("score", {"baseline": "moving_average"}), 1),
                                         (("score", {"baseline": "loo"}), 2), (("score", {"baseline": "learned"}), 1),
                                         ("mvd", 1), ("vimco", 2)])
def test_estimators_are_unbiased(est, samples):
    iwae = est == "vimco"
    prog = build().compile(estimators=est, dtype=np.float64, samples=samples, objective="iwae" if iwae else "elbo")
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build("bprobs_oracle"), P, DATA, iwae=samples if iwae else None)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Bernoulli(probs) {est}")


def test_enumeration_is_exact():
    prog = build().compile(estimators="enumerate", dtype=np.float64)
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build("bprobs_oracle"), P, DATA)
    _, got = prog.grad(DATA, seed=0)
    for k in P:
        np.testing.assert_allclose(got[k], g[k], rtol=1e-6, atol=1e-9, err_msg=k)
    assert prog.loss(DATA, seed=0) == pytest.approx(exact.objective(build("bprobs_oracle"), P, DATA), rel=1e-10)


@pytest.mark.parametrize("b", ["mvd", "score", "enumerate"])
def test_stacked_over_a_pathwise_normal_is_unbiased(b):
    prog = build_stacked(f"bprobs_stacked_{b}").compile(estimators={"b": b, "z": "pathwise"}, dtype=np.float64)
    P = _params(prog, seed=9)
    _set(prog, P)
    g = exact.gradient(build_stacked("bprobs_stacked_oracle"), P, DATA)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Bernoulli(probs) {b} over pathwise")


def test_straight_through_passes_the_cotangent_to_p():
    """Straight-through with probabilities differentiates E[b] = p: for a cost linear in b the
    estimate is exact at every draw (and at the boundary)."""
    with Model("bprobs_st") as m:
        x = m.input("x", 3)
        b = Bernoulli("b", probs=ppl.param("p", 3, init=np.array([0.0, 0.4, 1.0])))
        m.cost("f", ppl.total(b * x))
    prog = m.compile(estimators="straight_through", dtype=np.float64)
    for seed in range(3):
        _, g = prog.grad(DATA, seed=seed)
        np.testing.assert_allclose(g["p"], X.mean(0), rtol=1e-12)


def test_bad_arguments_name_the_node():
    with Model("bprobs_bad"):
        a = ppl.param("a", 2)
        with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': give exactly one of logits or probs, got logits and "
                                                 r"probs"):
            Bernoulli("h", logits=a, probs=ppl.sigmoid(a))
        with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': give exactly one of logits or probs, got neither"):
            Bernoulli("h")
        with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': link= applies to logits, not to probs"):
            Bernoulli("h", probs=ppl.sigmoid(a), link="probit")
        h = Bernoulli("h", probs=ppl.sigmoid(a))
        assert h.kind == "bernoulli_probs"
        assert Bernoulli("g", a).kind == "bernoulli" and Bernoulli("k", logits=a, probs=None).kind == "bernoulli"
    with pytest.raises(ppl.ModelError, match=r"ppl.dist.Bernoulli: give exactly one of logits or probs, got neither"):
        ppl.dist.Bernoulli()
    with Model("bprobs_bad_prior") as m:
        h = Bernoulli("h", probs=ppl.sigmoid(ppl.param("a", 2)))
        with pytest.raises(ppl.ModelError, match=r"Bernoulli\(probs\) parameter probs is the constant 1.5; it must be "
                                                 r"within \[0, 1\]"):
            m.latent(h, ppl.dist.Bernoulli(probs=1.5))


@pytest.mark.parametrize("bad", [1.2, -0.1, np.nan])
def test_probabilities_outside_the_unit_interval_are_refused_in_the_step(bad):
    for lowering, name in (("arrays", "bprobs_range"), ("row-fused", "bprobs_range1")):
        with Model(name) as m:
            x = m.input("x", 1)
            b = Bernoulli("b", probs=Affine(x, 1, name="enc"))
            m.cost("c", ppl.total(b))
        prog = m.compile(estimators="score", dtype=np.float64, lowering=lowering)
        prog.params["enc.W"][...] = 0.0
        prog.params["enc.b"][...] = bad
        with pytest.raises(ppl.ModelError, match=r"Bernoulli\(probs\) 'b': probs 'enc' has values outside \[0, 1\] "
                                                 r"or NaN"):
            prog.loss({"x": np.zeros((2, 1))}, seed=0)


def test_as_prior_and_likelihood():
    """ppl.dist.Bernoulli(probs=...): a prior of a logit Bernoulli node (the same support) and a
    likelihood; -log p against scipy, the certain outcomes included."""
    with Model("bprobs_specs") as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.latent(h, ppl.dist.Bernoulli(probs=0.3))
        m.observe("x", ppl.dist.Bernoulli(probs=ppl.param("q", 3, init=np.array([1.0, 0.2, 0.9]))), x)
    prog = m.compile(estimators="score", dtype=np.float64)
    parts = prog.loss_parts(DATA, seed=1)
    h = prog.sample(DATA, seed=1)["h"]
    assert parts["logp_h"] == pytest.approx(-sps.bernoulli(0.3).logpmf(h).sum(1).mean(), rel=1e-12)
    want = -sps.bernoulli([1.0, 0.2, 0.9]).logpmf(X).sum(1).mean()   # x[1, 0] = 0 under p = 1: +inf
    assert parts["x"] == want == np.inf
    prog.params["q"][...] = [0.5, 0.2, 0.9]
    parts = prog.loss_parts(DATA, seed=1)
    assert parts["x"] == pytest.approx(-sps.bernoulli([0.5, 0.2, 0.9]).logpmf(X).sum(1).mean(), rel=1e-12)


@pytest.mark.cuda
@pytest.mark.parametrize("b", ["mvd", "straight_through"])
def test_cuda_parity(b):
    """The step on the CUDA target gives the CPU step's loss and gradient."""
    over = {"b": b, "z": "pathwise"}
    cpu = build_stacked("bprobs_cuda").compile(estimators=over, dtype=np.float64, seed=1)
    gpu = build_stacked("bprobs_cuda_gpu").compile(estimators=over, dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
