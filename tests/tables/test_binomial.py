"""Binomial counts (`ppl.Binomial(name, total_count, probs=... | logits=...)`, law entries
"binomial" / "binomial_logits", kernels/families/binomial.py): the inverse CDF of one uniform per
unit, exact for any total_count; total_count a node (a count, possibly drawn), no gradient into it.

Oracles: scipy.stats.binom for the sampler (its quantile function at the same uniforms, exactly;
chi-square of draws) and the log-pmf; tests/exact.py (every count enumerated, the gradient by
central differences) for the estimators' expectations, alone, over a pathwise Normal, below a
Bernoulli(probs) node feeding its probs and below a Binomial count that is its total_count; at
p in {0, 1} the one-sided derivative n (f(n) - f(n - 1)) (p = 1) in closed form. Unbiasedness:
stats.assert_unbiased_tuned (a 5% bias detected: the estimates scaled by 1.05 and 0.95 must fail).
"""
import numpy as np
import pytest
from scipy import stats as sps

import exact
import ppl
import stats
from ppl import Affine, Binomial, Model
from ppl.kernels.cpu import core
from small_models import DATA

N = 4


def build(name="binomial", form="probs"):
    with Model(name) as m:
        x = m.input("x", 3)
        a = Affine(x, 2, name="enc")
        k = Binomial("k", N, probs=ppl.sigmoid(a)) if form == "probs" else Binomial("k", N, logits=a)
        m.cost("nll", ppl.bernoulli_nll(Affine(k, 3, name="dec"), target=x))
        m.cost("lp", ppl.log_prob(k))
    return m


def build_stacked(name, kind):
    """normal: a Binomial over a Normal unit; bernoulli: a Bernoulli(probs) node feeding the
    Binomial's probs; counts: a Binomial count that is the next one's total_count."""
    with Model(name) as m:
        x = m.input("x", 3)
        if kind == "normal":
            k = Binomial("k", 3, probs=ppl.sigmoid(Affine(x, 1, name="enc")))
            z = ppl.Normal("z", Affine(k, 1, name="loc"), ppl.softplus(Affine(k, 1, name="sc")))
            m.cost("lpk", ppl.log_prob(k))
            m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
            return m
        if kind == "bernoulli":
            b = ppl.Bernoulli("b", probs=ppl.sigmoid(Affine(x, 2, name="enc")))
            k = Binomial("k", 3, probs=ppl.sigmoid(Affine(b, 2, name="mid")))
            m.cost("lpb", ppl.log_prob(b))
        else:   # new infections ~ Binomial(susceptible, p): the count above is the total
            s = Binomial("s", 3, probs=ppl.sigmoid(Affine(x, 1, name="enc")))
            k = Binomial("k", s, probs=ppl.sigmoid(Affine(x, 1, name="mid")))
            m.cost("lps", ppl.log_prob(s))
        m.cost("lpk", ppl.log_prob(k))
        m.cost("nll", ppl.bernoulli_nll(Affine(k, 3, name="dec"), target=x))
    return m


def _params(prog, seed=4):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.7, v.shape) for k, v in exact.model_params(prog).items()}


def _set(prog, P):
    for k, v in P.items():
        prog.params[k][...] = v


@pytest.mark.parametrize("n", [1, 7, 60, 1000, 10000])
def test_the_sampler_is_scipys_quantile_at_the_same_uniform(n):
    """binomial_sample(n, p, u) = binom.ppf(u; n, p) exactly, for any n (no approximation), away
    from the rounding of the CDF (|F(k) - u| > 1e-10); monotone in p for a fixed u."""
    rng = np.random.default_rng(n)
    u = rng.uniform(size=(200, 1))
    for p in (0.003, 0.3, 0.5, 0.97):
        out = np.empty_like(u)
        core.binomial_sample(np.full_like(u, float(n)), np.full_like(u, p), u, out)
        want = sps.binom.ppf(u, n, p)
        near = np.abs(sps.binom.cdf(want, n, p) - u) < 1e-10
        assert np.all((out == want) | near), (n, p)
    ps = np.linspace(0.0, 1.0, 101)[:, None] * np.ones((1, 50))
    out = np.empty_like(ps)
    u = np.broadcast_to(rng.uniform(size=(1, 50)), ps.shape).copy()
    core.binomial_sample(np.full_like(ps, float(n)), ps, u, out)
    assert np.all(np.diff(out, axis=0) >= 0) and np.all(out[0] == 0) and np.all(out[-1] == n)


def test_draws_and_log_pmf_match_scipy():
    prog = build().compile(estimators="score", dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = [-1.0, 0.7]
    p = 1 / (1 + np.exp(-np.array([-1.0, 0.7])))
    s = prog.sample({"x": np.zeros((20000, 3))}, seed=5)["k"]
    for j in range(2):
        obs = np.bincount(s[:, j].astype(int), minlength=N + 1)
        assert len(obs) == N + 1 and sps.chisquare(obs, sps.binom.pmf(np.arange(N + 1), N, p[j]) * len(s)).pvalue > 1e-4
    x = np.zeros((40, 3))
    k = prog.sample({"x": x}, seed=3)["k"]
    want = sps.binom(N, p).logpmf(k).sum(1).mean()
    assert prog.loss_parts({"x": x}, seed=3)["lp"] == pytest.approx(want, rel=1e-12)


def test_large_total_counts_in_a_program():
    """total_count 10,000 (a number, and per row from data): draws centred on n p, within a few
    standard errors, in float32 programs too."""
    for dtype in (np.float64, np.float32):
        with Model("binomial_large") as m:
            x = m.input("n", 1)
            k = Binomial("k", x, probs=ppl.sigmoid(ppl.param("a", 1, init=0.4)))
            m.cost("c", ppl.total(k))
        prog = m.compile(estimators="score", dtype=dtype)
        k = prog.sample({"n": np.full((400, 1), 10000.0)}, seed=2)["k"][:, 0]
        p = 1 / (1 + np.exp(-0.4))
        assert abs(k.mean() - 10000 * p) < 5 * np.sqrt(10000 * p * (1 - p) / 400), k.mean()
        assert np.all(k == np.floor(k)) and k.min() >= 0 and k.max() <= 10000


def test_the_boundary_is_certain_and_mvd_exact_there():
    """p = 0 gives 0, p = 1 gives n; log p = 0 there; score's gradient finite; mvd's the one-sided
    derivatives n (f(1) - f(0)) at p = 0 and n (f(n) - f(n - 1)) at p = 1, exactly."""
    x = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    for est in ("score", "mvd"):
        with Model(f"binomial_edges_{est}") as m:
            xi = m.input("x", 3)
            k = Binomial("k", 3, probs=ppl.param("p", 2, init=np.array([0.0, 1.0])))
            m.cost("f", ppl.total(ppl.tanh(Affine(k, 3, name="dec")) * xi))
            if est == "score":
                m.cost("lp", ppl.log_prob(k))
        prog = m.compile(estimators=est, dtype=np.float64)
        prog.params["dec.W"][...] = np.random.default_rng(3).normal(0, 0.4, (2, 3))
        s = prog.sample({"x": x}, seed=2)["k"]
        assert np.all(s[::3 if est == "mvd" else 1] == [0.0, 3.0])
        loss, g = prog.grad({"x": x}, seed=2)
        assert np.isfinite(loss) and np.all(np.isfinite(g["p"])), (est, g)
        if est == "score":
            assert prog.loss_parts({"x": x}, seed=2)["lp"] == 0.0
        else:
            W, c = prog.params["dec.W"], prog.params["dec.b"]
            f = lambda v: np.mean(np.sum(np.tanh(np.array(v, float) @ W + c) * x, 1))   # noqa: E731
            np.testing.assert_allclose(g["p"], [3 * (f([1, 3]) - f([0, 3])), 3 * (f([0, 3]) - f([0, 2]))], rtol=1e-12)


@pytest.mark.parametrize("form,est,samples", [
    ("probs", ("score", {"baseline": "none"}), 1), ("probs", ("score", {"baseline": "moving_average"}), 1),
    ("probs", ("score", {"baseline": "loo"}), 2), ("logits", ("score", {"baseline": "learned"}), 1),
    ("probs", "mvd", 1), ("logits", "mvd", 1), ("logits", "vimco", 2)])
def test_estimators_are_unbiased(form, est, samples):
    iwae = est == "vimco"
    prog = build(f"binomial_{form}", form).compile(estimators=est, dtype=np.float64, samples=samples,
                                                    objective="iwae" if iwae else "elbo")
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build(f"binomial_{form}_oracle", form), P, DATA, iwae=samples if iwae else None)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Binomial({form}) {est}")


@pytest.mark.parametrize("form", ["probs", "logits"])
def test_enumeration_of_a_constant_total_is_exact(form):
    prog = build(f"binomial_{form}", form).compile(estimators="enumerate", dtype=np.float64)
    P = _params(prog)
    _set(prog, P)
    g = exact.gradient(build(f"binomial_{form}_oracle", form), P, DATA)
    _, got = prog.grad(DATA, seed=0)
    for k in P:
        np.testing.assert_allclose(got[k], g[k], rtol=1e-6, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("kind,over", [("normal", {"k": "score", "z": "pathwise"}),
                                       ("normal", {"k": "mvd", "z": "pathwise"}),
                                       ("bernoulli", {"b": "mvd", "k": "score"}),
                                       ("bernoulli", {"b": "score", "k": "mvd"}),
                                       ("bernoulli", {"b": "enumerate", "k": "score"}),
                                       ("counts", {"s": "mvd", "k": "score"}), ("counts", {"s": "score", "k": "mvd"})])
def test_stacked_estimators_are_unbiased(kind, over):
    tag = "_".join(f"{k}{v}" for k, v in over.items())
    prog = build_stacked(f"binomial_{kind}_{tag}", kind).compile(estimators=over, dtype=np.float64)
    P = _params(prog, seed=6)
    _set(prog, P)
    g = exact.gradient(build_stacked(f"binomial_{kind}_oracle", kind), P, DATA)
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"Binomial {kind} {over}")


def test_other_estimators_refuse_clearly():
    for est, why in (("pathwise", "not reparameterisable"), ("straight_through", "no straight-through"),
                     ("disarm", "not a logit-link Bernoulli"), ("concrete", "no concrete relaxation")):
        with pytest.raises(ppl.ModelError, match=f"Binomial 'k': estimator '{est}' does not apply.*{why}"):
            build(f"binomial_{est}").compile(estimators=est, dtype=np.float64)
    with pytest.raises(ppl.ModelError, match=r"Binomial 'k': estimator 'enumerate' does not apply \(its total_count is "
                                             r"not a constant number"):
        build_stacked("binomial_enum_counts", "counts").compile(estimators={"s": "score", "k": "enumerate"})


def test_bad_arguments_name_the_node():
    with Model("binomial_bad"):
        a = ppl.param("a", 2)
        with pytest.raises(ppl.ModelError, match=r"Binomial 'k': give exactly one of logits or probs, got neither"):
            Binomial("k", 3)
        with pytest.raises(ppl.ModelError, match=r"Binomial 'k': give exactly one of logits or probs, got logits and"):
            Binomial("k", 3, ppl.sigmoid(a), logits=a)
        for bad in (2.5, -1, float("inf")):
            with pytest.raises(ppl.ModelError, match=r"Binomial 'k': total_count .*must be a non-negative integer|"
                                                     r"Binomial 'k': total_count: a constant must be a finite number"):
                Binomial("k", bad, logits=a)
        with pytest.raises(ppl.ModelError, match=r"Binomial 'k': probs is the constant 1.5; it must be within"):
            Binomial("k", a, probs=1.5)
        assert Binomial("k", 3, ppl.sigmoid(a)).kind == "binomial"
        assert Binomial("j", 3, logits=a).kind == "binomial_logits"


@pytest.mark.parametrize("n,what", [(2.5, "fractional"), (-1.0, "negative"), (np.nan, "nan")])
def test_bad_total_counts_are_refused_in_the_step(n, what):
    """Data is finite (inputs are checked), a count from a parameter path may be NaN: both named."""
    for lowering, name in (("arrays", "binomial_n"), ("row-fused", "binomial_n1")):
        with Model(name) as m:
            x = m.input("n", 1)
            k = Binomial("k", x + ppl.param("shift", 1), logits=ppl.param("a", 1))
            m.cost("c", ppl.total(k))
        prog = m.compile(estimators="score", dtype=np.float64, lowering=lowering)
        prog.params["shift"][...] = n if np.isnan(n) else 0.0
        with pytest.raises(ppl.ModelError, match=r"Binomial\(logits\) 'k': total_count 'add_1' \(= n \+ shift\) has "
                                                 r"values that are not non-negative integers"):
            prog.loss({"n": np.array([[3.0], [3.0 if np.isnan(n) else n]])}, seed=0)


def test_as_prior_and_likelihood():
    """ppl.dist.Binomial: a prior of a Binomial node and a likelihood of counts, against scipy;
    no gradient reaches a total_count that is a parameter path (it is piecewise constant)."""
    y = np.array([[0.0, 3.0], [5.0, 1.0]])
    with Model("binomial_specs") as m:
        x = m.input("x", 3)
        yi = m.input("y", 2)
        k = Binomial("k", 5, logits=Affine(x, 2, name="enc"))
        m.latent(k, ppl.dist.Binomial(5, probs=0.3))
        m.observe("y", ppl.dist.Binomial(5, logits=Affine(k, 2, name="dec")), yi)
    prog = m.compile(estimators="score", dtype=np.float64)
    data = {"x": DATA["x"], "y": y}
    parts = prog.loss_parts(data, seed=1)
    s = prog.sample(data, seed=1)
    assert parts["logp_k"] == pytest.approx(-sps.binom(5, 0.3).logpmf(s["k"]).sum(1).mean(), rel=1e-12)
    P = prog.params
    p = 1 / (1 + np.exp(-(s["k"] @ P["dec.W"] + P["dec.b"])))
    assert parts["y"] == pytest.approx(-sps.binom(5, p).logpmf(y).sum(1).mean(), rel=1e-12)
    with Model("binomial_badprior") as m2:
        k = Binomial("k", 5, logits=ppl.param("a", 2))
        with pytest.raises(ppl.ModelError, match=r"Binomial parameter total_count is the constant 5.5; it must be a "
                                                 r"non-negative integer"):
            m2.latent(k, ppl.dist.Binomial(5.5, probs=0.3))


@pytest.mark.cuda
@pytest.mark.parametrize("over", [{"s": "score", "k": "mvd"}, {"s": "mvd", "k": "score"}])
def test_cuda_parity(over):
    """The step on the CUDA target (the checks' launchers, the samplers, mvd's rows) gives the CPU
    step's loss and gradient."""
    cpu = build_stacked("binomial_cuda", "counts").compile(estimators=over, dtype=np.float64, seed=1)
    gpu = build_stacked("binomial_cuda_gpu", "counts").compile(estimators=over, dtype=np.float64, seed=1, target="cuda")
    for seed in (0, 5):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
