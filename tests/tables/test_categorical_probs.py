"""Categorical units given by probabilities (`ppl.Categorical(name, probs=w, classes=K)`, the law
entry "categorical_probs", kernels/families/probs.py): P(k) = w_k / sum_i w_i per group (w >= 0,
a positive sum), the inverse CDF of one uniform per group; a class of weight 0 is never drawn.

Oracles: scipy.stats.multinomial (one trial) for the draws (chi-square) and the log-pmf;
tests/exact.py (every value enumerated, the gradient by central differences) for the
estimators' expectations, alone and stacked over a Normal layer; closed forms where a group is
certain. Unbiasedness: stats.assert_unbiased_tuned (a 5% bias detected: the estimates scaled by
1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Affine, Categorical, Model
from small_models import DATA, X

K = 3


def build(name="cprobs"):
    with Model(name) as m:
        x = m.input("x", 3)
        c = Categorical("c", probs=ppl.exp(Affine(x, 2 * K, name="enc")), classes=K)
        m.cost("nll", ppl.bernoulli_nll(Affine(c, 3, name="dec"), target=x))
        m.cost("lp", ppl.log_prob(c))
    return m


def build_stacked(name):
    with Model(name) as m:
        x = m.input("x", 3)
        c = Categorical("c", probs=ppl.softplus(Affine(x, K, name="enc")), classes=K)
        z = ppl.Normal("z", Affine(c, 1, name="loc"), ppl.softplus(Affine(c, 1, name="sc")))
        m.cost("lpc", ppl.log_prob(c))
        m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
    return m


def _params(prog, seed=3):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.7, v.shape) for k, v in exact.model_params(prog).items()}


def _set(prog, P):
    for k, v in P.items():
        prog.params[k][...] = v


def _weights_model(name, w, est="score", log_prob=True):
    with Model(name) as m:
        x = m.input("x", 3)
        c = Categorical("c", probs=ppl.param("w", len(w), init=np.array(w)), classes=K)
        m.cost("f", ppl.total(ppl.tanh(Affine(c, 3, name="dec")) * x))
        if log_prob:
            m.cost("lp", ppl.log_prob(c))
    return m.compile(estimators=est, dtype=np.float64)


def test_draws_and_log_pmf_match_scipy():
    w = np.array([0.5, 2.0, 1.0, 0.0, 3.0, 1.0])   # a class of weight 0 in the second group
    prog = _weights_model("cprobs_draws", w)
    s = prog.sample({"x": np.zeros((20000, 3))}, seed=5)["c"]
    assert np.all(s.reshape(-1, 2, K).sum(-1) == 1)
    for g in range(2):
        pi = w[g * K:(g + 1) * K] / w[g * K:(g + 1) * K].sum()
        obs = s[:, g * K:(g + 1) * K].sum(0)
        keep = pi > 0
        assert np.all(obs[~keep] == 0)
        assert sps.chisquare(obs[keep], pi[keep] * len(s)).pvalue > 1e-4, g
    x = np.zeros((40, 3))
    c = prog.sample({"x": x}, seed=3)["c"]
    want = sum(sps.multinomial(1, w[g * K:(g + 1) * K] / w[g * K:(g + 1) * K].sum()).logpmf(c[:, g * K:(g + 1) * K])
               for g in range(2)).mean()
    assert prog.loss_parts({"x": x}, seed=3)["lp"] == pytest.approx(want, rel=1e-12)


def test_a_certain_group_has_finite_gradients_and_mvd_is_exact_there():
    """Weights (0, 2, 0): class 1 always, log p = 0; the score's gradient is finite, mvd's is
    (f(e_k) - f(e_1)) / 2 per class k exactly (no variance left). (With a log_prob(c) cost mvd's
    and straight-through's are -inf for the classes of weight 0, rightly: the entropy's derivative
    there.)"""
    x = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    for est in ("score", "mvd", "straight_through"):
        prog = _weights_model(f"cprobs_edge_{est}", [0.0, 2.0, 0.0], est, log_prob=est == "score")
        prog.params["dec.W"][...] = np.random.default_rng(2).normal(0, 0.7, (K, 3))
        loss, g = prog.grad({"x": x}, seed=1)
        assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in g.values()), (est, g)
        if est == "score":
            assert prog.loss_parts({"x": x}, seed=1)["lp"] == 0.0
        elif est == "mvd":
            W, b = prog.params["dec.W"], prog.params["dec.b"]
            f = np.array([np.mean(np.sum(np.tanh(np.eye(K)[k] @ W + b) * x, 1)) for k in range(K)])
            np.testing.assert_allclose(g["w"], (f - f[1]) / 2.0, rtol=1e-12)


@pytest.mark.parametrize("est,samples", [(("score", {"baseline": "none"}), 1),
                                         (("score", {"baseline": "moving_average"}), 1),
                                         (("score", {"baseline": "loo"}), 2), (("score", {"baseline": "learned"}), 1),
                                         ("mvd", 1), ("vimco", 2)])
def test_estimators_are_unbiased(est, samples):
    iwae = est == "vimco"
    prog = build().compile(estimators=est, dtype=np.float64, samples=samples, objective="iwae" if iwae else "elbo")
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build("cprobs_oracle"), P, DATA, iwae=samples if iwae else None)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Categorical(probs) {est}")


def test_enumeration_is_exact():
    prog = build().compile(estimators="enumerate", dtype=np.float64)
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build("cprobs_oracle"), P, DATA)
    _, got = prog.grad(DATA, seed=0)
    for k in P:
        np.testing.assert_allclose(got[k], g[k], rtol=1e-6, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("c", ["mvd", "score", "enumerate"])
def test_stacked_over_a_pathwise_normal_is_unbiased(c):
    prog = build_stacked(f"cprobs_stacked_{c}").compile(estimators={"c": c, "z": "pathwise"}, dtype=np.float64)
    P = _params(prog, seed=8)
    _set(prog, P)
    g = exact.gradient(build_stacked("cprobs_stacked_oracle"), P, DATA)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Categorical(probs) {c} over pathwise")


def test_straight_through_differentiates_the_mean():
    """E[x] = w / S: for a cost linear in the one-hot value, (c_k - sum_i pi_i c_i) / S is exact at
    every draw."""
    w = np.array([0.5, 2.0, 1.5])
    with Model("cprobs_st") as m:
        x = m.input("x", 3)
        c = Categorical("c", probs=ppl.param("w", K, init=w), classes=K)
        m.cost("f", ppl.total(c * x))
    prog = m.compile(estimators="straight_through", dtype=np.float64)
    cbar = X.mean(0)
    for seed in range(3):
        _, g = prog.grad(DATA, seed=seed)
        np.testing.assert_allclose(g["w"], (cbar - (w / w.sum()) @ cbar) / w.sum(), rtol=1e-12)


def test_bad_arguments_name_the_node():
    with Model("cprobs_bad"):
        a = ppl.param("a", 6)
        with pytest.raises(ppl.ModelError, match=r"Categorical 'h': give exactly one of logits or probs, got logits"):
            Categorical("h", a, probs=ppl.exp(a), classes=3)
        with pytest.raises(ppl.ModelError, match=r"Categorical 'h': give exactly one of logits or probs, got neither"):
            Categorical("h", classes=3)
        assert Categorical("h", probs=ppl.exp(a), classes=3).kind == "categorical_probs"


@pytest.mark.parametrize("w,what", [([0.5, -0.1, 1.0], "negative"), ([0.0, 0.0, 0.0], "zero"),
                                    ([0.5, np.nan, 1.0], "nan"), ([0.5, np.inf, 1.0], "inf")])
def test_bad_weights_are_refused_in_the_step(w, what):
    prog = _weights_model("cprobs_range", [1.0, 1.0, 1.0])
    prog.params["w"][...] = w
    with pytest.raises(ppl.ModelError, match=r"Categorical\(probs\) 'c': probs 'w' has a group of 3 classes with a "
                                             r"negative, inf or NaN value or a sum of 0"):
        prog.loss({"x": np.zeros((2, 3))}, seed=0)


def test_as_prior_and_likelihood():
    """ppl.dist.Categorical(probs=..., classes=K): a prior of a logit Categorical node and a
    likelihood of one-hot data; -log p against scipy."""
    w = np.array([1.0, 3.0, 0.5])
    y = np.eye(K)[[0, 2]]
    with Model("cprobs_specs") as m:
        x = m.input("x", 3)
        y_in = m.input("y", K)
        h = Categorical("h", Affine(x, K, name="enc"), classes=K)
        m.latent(h, ppl.dist.Categorical(probs=ppl.param("prior", K, init=w), classes=K))
        m.observe("y", ppl.dist.Categorical(probs=ppl.softplus(Affine(h, K, name="dec")), classes=K), y_in)
    prog = m.compile(estimators="score", dtype=np.float64)
    data = {"x": X, "y": y}
    parts = prog.loss_parts(data, seed=1)
    s = prog.sample(data, seed=1)
    assert parts["logp_h"] == pytest.approx(-sps.multinomial(1, w / w.sum()).logpmf(s["h"]).mean(), rel=1e-12)
    P = prog.params
    sp = np.logaddexp(0, s["h"] @ P["dec.W"] + P["dec.b"])
    want = -np.mean([sps.multinomial(1, sp[r] / sp[r].sum()).logpmf(y[r]) for r in range(2)])
    assert parts["y"] == pytest.approx(want, rel=1e-12)


@pytest.mark.cuda
@pytest.mark.parametrize("est", ["score", "mvd", "straight_through"])
def test_cuda_parity(est):
    """The step on the CUDA target (the weights' check, the sampler, the VJPs, mvd's rows) gives
    the CPU step's loss and gradient."""
    cpu = build("cprobs_cuda").compile(estimators=est, dtype=np.float64, seed=1)
    gpu = build("cprobs_cuda_gpu").compile(estimators=est, dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
