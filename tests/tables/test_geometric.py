"""Geometric counts (`ppl.Geometric(name, probs=... | logits=...)`, law entries "geometric" /
"geometric_logits", kernels/families/geometric.py): the failures before the first success,
P(k) = (1 - p)^k p, drawn as floor(log u / log(1 - p)) from one uniform.

Oracles: scipy.stats.geom (which counts the trials: k failures are k + 1 trials) for the sampler
(its quantile function at the same uniform, exactly; chi-square of draws) and the log-pmf;
tests/exact.py (the counts enumerated up to a tail below 1e-15, the gradient by central
differences) for the estimators' expectations, alone and stacked; at p = 1 the one-sided
derivative f(0) - f(1) in closed form. Unbiasedness: stats.assert_unbiased_tuned (a 5% bias
detected: the estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Affine, Geometric, Model
from ppl.kernels.cpu import core
from small_models import DATA


def build(name="geometric", form="probs", width=2):
    """p kept above ~0.4 (sigmoid of a + 1.2): the oracle's support stays short."""
    with Model(name) as m:
        x = m.input("x", 3)
        a = Affine(x, width, name="enc") + 1.2
        k = Geometric("k", probs=ppl.sigmoid(a)) if form == "probs" else Geometric("k", logits=a)
        m.cost("nll", ppl.bernoulli_nll(Affine(ppl.tanh(0.5 * k), 3, name="dec"), target=x))
        m.cost("lp", ppl.log_prob(k))
    return m


def build_stacked(name, kind):
    """bernoulli: a Bernoulli(probs) node feeding the count's logits; normal: the count over a
    Normal unit."""
    with Model(name) as m:
        x = m.input("x", 3)
        if kind == "bernoulli":
            b = ppl.Bernoulli("b", probs=ppl.sigmoid(Affine(x, 2, name="enc")))
            k = Geometric("k", logits=Affine(b, 1, name="mid") + 1.2)
            m.cost("lpb", ppl.log_prob(b))
            m.cost("nll", ppl.bernoulli_nll(Affine(ppl.tanh(0.5 * k), 3, name="dec"), target=x))
        else:
            k = Geometric("k", probs=ppl.sigmoid(Affine(x, 1, name="enc") + 1.2))
            z = ppl.Normal("z", Affine(ppl.tanh(0.5 * k), 1, name="loc"), 0.8)
            m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
        m.cost("lpk", ppl.log_prob(k))
    return m


def _params(prog, seed=2):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.5, v.shape) for k, v in exact.model_params(prog).items()}


def _set(prog, P):
    for k, v in P.items():
        prog.params[k][...] = v


def test_the_sampler_is_scipys_quantile_at_the_same_uniform():
    """geometric_sample(p, u) = geom.ppf(1 - u; p) - 1 (failures) away from the rounding of the
    CDF; p = 1 gives 0; the logit form agrees with sigmoid(a)."""
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(500, 1))
    for p in (1e-6, 0.02, 0.5, 0.9, 1.0):
        out = np.empty_like(u)
        core.geometric_sample(np.full_like(u, p), u, out)
        if p == 1.0:   # scipy's quantile at p = 1 is 0 trials (0 / log 0); the count is 0 failures
            assert np.all(out == 0)
            continue
        want = sps.geom.ppf(1 - u, p) - 1
        near = np.abs(sps.geom.cdf(want + 1, p) - (1 - u)) < 1e-9
        assert np.all((out == want) | near), p
        outl = np.empty_like(u)
        core.geometric_logits_sample(np.full_like(u, np.log(p) - np.log1p(-p)), u, outl)
        assert np.all((outl == want) | near), p


def test_draws_and_log_pmf_match_scipy():
    prog = build().compile(estimators="score", dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = [-1.5, 0.5]   # p = sigmoid(b + 1.2)
    p = 1 / (1 + np.exp(-np.array([-0.3, 1.7])))
    s = prog.sample({"x": np.zeros((20000, 3))}, seed=5)["k"]
    for j in range(2):
        k = s[:, j]
        assert np.all(k == np.floor(k)) and k.min() >= 0
        top = int(sps.geom(p[j]).ppf(0.999))
        obs = np.bincount(np.minimum(k.astype(int), top), minlength=top + 1)
        want = sps.geom(p[j]).pmf(np.arange(1, top + 2)) * len(k)
        want[-1] = sps.geom(p[j]).sf(top) * len(k)
        assert sps.chisquare(obs, want).pvalue > 1e-4, j
    x = np.zeros((40, 3))
    k = prog.sample({"x": x}, seed=3)["k"]
    assert prog.loss_parts({"x": x}, seed=3)["lp"] == pytest.approx(sps.geom(p).logpmf(k + 1).sum(1).mean(), rel=1e-12)


def test_p_one_is_certain_and_mvd_exact_there():
    """p = 1: always 0, log p(0) = 0, the score's gradient finite; mvd's the one-sided derivative
    -(f(1) - f(0)) (its branch rows are 0 and 1), exactly."""
    x = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    for est in ("score", "mvd"):
        with Model(f"geometric_edge_{est}") as m:
            xi = m.input("x", 3)
            k = Geometric("k", probs=ppl.param("p", 1, init=1.0))
            m.cost("f", ppl.total(ppl.tanh(Affine(k, 3, name="dec")) * xi))
            if est == "score":
                m.cost("lp", ppl.log_prob(k))
        prog = m.compile(estimators=est, dtype=np.float64)
        prog.params["dec.W"][...] = [[0.4, -0.7, 0.2]]
        assert np.all(prog.sample({"x": x}, seed=2)["k"][::3 if est == "mvd" else 1] == 0)
        loss, g = prog.grad({"x": x}, seed=2)
        assert np.isfinite(loss) and np.all(np.isfinite(g["p"])), (est, g)
        if est == "score":
            assert prog.loss_parts({"x": x}, seed=2)["lp"] == 0.0
        else:
            W, c = prog.params["dec.W"], prog.params["dec.b"]
            f = lambda v: np.mean(np.sum(np.tanh(v * W[0] + c) * x, 1))   # noqa: E731
            np.testing.assert_allclose(g["p"], [-(f(1.0) - f(0.0))], rtol=1e-12)


@pytest.mark.parametrize("form,est,samples", [
    ("probs", ("score", {"baseline": "none"}), 1), ("probs", ("score", {"baseline": "moving_average"}), 1),
    ("logits", ("score", {"baseline": "loo"}), 2), ("probs", ("score", {"baseline": "learned"}), 1),
    ("probs", "mvd", 1), ("logits", "mvd", 1), ("probs", "vimco", 2)])
def test_estimators_are_unbiased(form, est, samples):
    iwae = est == "vimco"
    width = 1 if iwae else 2   # the bound's oracle enumerates pairs of branches
    prog = build(f"geometric_{form}_{width}", form, width).compile(estimators=est, dtype=np.float64, samples=samples,
                                                                  objective="iwae" if iwae else "elbo")
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build(f"geometric_{form}_oracle_{width}", form, width), P, DATA, iwae=samples if iwae else None)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Geometric({form}) {est}")


@pytest.mark.parametrize("kind,over", [("bernoulli", {"b": "mvd", "k": "score"}),
                                       ("bernoulli", {"b": "score", "k": "mvd"}),
                                       ("normal", {"k": "mvd", "z": "pathwise"}),
                                       ("normal", {"k": "score", "z": "pathwise"})])
def test_stacked_estimators_are_unbiased(kind, over):
    tag = "_".join(f"{k}{v}" for k, v in over.items())
    prog = build_stacked(f"geometric_{kind}_{tag}", kind).compile(estimators=over, dtype=np.float64)
    P = _params(prog, seed=7)
    _set(prog, P)
    g = exact.gradient(build_stacked(f"geometric_{kind}_oracle", kind), P, DATA)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Geometric {kind} {over}")


def test_other_estimators_refuse_clearly():
    for est, why in (("enumerate", "infinitely many values"), ("pathwise", "not reparameterisable"),
                     ("straight_through", "no straight-through"), ("arm", "not a logit-link Bernoulli")):
        with pytest.raises(ppl.ModelError, match=f"Geometric 'k': estimator '{est}' does not apply.*{why}"):
            build(f"geometric_{est}").compile(estimators=est, dtype=np.float64)


def test_bad_arguments_name_the_node():
    with Model("geometric_bad"):
        a = ppl.param("a", 2)
        with pytest.raises(ppl.ModelError, match=r"Geometric 'k': give exactly one of logits or probs, got neither"):
            Geometric("k")
        with pytest.raises(ppl.ModelError, match=r"Geometric 'k': give exactly one of logits or probs, got logits and"):
            Geometric("k", ppl.sigmoid(a), logits=a)
        assert Geometric("k", ppl.sigmoid(a)).kind == "geometric"
        assert Geometric("j", logits=a).kind == "geometric_logits"


@pytest.mark.parametrize("bad", [0.0, 1.5, np.nan])
def test_probabilities_outside_the_half_open_interval_are_refused_in_the_step(bad):
    for lowering, name in (("arrays", "geometric_range"), ("row-fused", "geometric_range1")):
        with Model(name) as m:
            x = m.input("x", 1)
            k = Geometric("k", probs=Affine(x, 1, name="enc"))
            m.cost("c", ppl.total(k))
        prog = m.compile(estimators="score", dtype=np.float64, lowering=lowering)
        prog.params["enc.W"][...] = 0.0
        prog.params["enc.b"][...] = bad
        with pytest.raises(ppl.ModelError, match=r"Geometric 'k': probs 'enc' has values outside \(0, 1\] or NaN"):
            prog.loss({"x": np.zeros((2, 1))}, seed=0)


def test_as_prior_and_likelihood():
    y = np.array([[0.0, 3.0], [5.0, 1.0]])
    with Model("geometric_specs") as m:
        x = m.input("x", 3)
        yi = m.input("y", 2)
        k = ppl.Poisson("k", ppl.softplus(Affine(x, 2, name="enc")))
        m.latent(k, ppl.dist.Geometric(probs=0.3))   # a count prior of a Poisson node: the same support
        m.observe("y", ppl.dist.Geometric(logits=Affine(k, 2, name="dec")), yi)
    prog = m.compile(estimators="score", dtype=np.float64)
    data = {"x": DATA["x"], "y": y}
    parts = prog.loss_parts(data, seed=1)
    s = prog.sample(data, seed=1)
    assert parts["logp_k"] == pytest.approx(-sps.geom(0.3).logpmf(s["k"] + 1).sum(1).mean(), rel=1e-12)
    P = prog.params
    p = 1 / (1 + np.exp(-(s["k"] @ P["dec.W"] + P["dec.b"])))
    assert parts["y"] == pytest.approx(-sps.geom(p).logpmf(y + 1).sum(1).mean(), rel=1e-12)


@pytest.mark.cuda
@pytest.mark.parametrize("form,est", [("probs", "mvd"), ("logits", "score")])
def test_cuda_parity(form, est):
    """The step on the CUDA target gives the CPU step's loss and gradient."""
    cpu = build(f"geometric_cuda_{form}", form).compile(estimators=est, dtype=np.float64, seed=1)
    gpu = build(f"geometric_cuda_gpu_{form}", form).compile(estimators=est, dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
