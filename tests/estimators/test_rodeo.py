"""RODEO (`rodeo`, ppl/estimators/rodeo.py): the leave-one-out score function with Gibbs
Stein-operator control variates of a learned network, for logit-link Bernoulli nodes, samples >= 2.

Oracle: tests/exact.py (every layer enumerated; the gradient by central differences).
Check: stats.assert_unbiased_tuned, the projection of the mean estimate on the exact gradient
within 4 SE of 1 (and every entry within 4.5 SE); the tile is sized for an SE of the ratio of
about 0.8%, and the same estimates scaled by 1.05 and 0.95 must fail, so each case detects a 5%
bias (the smallest bias each detects, 4 SE, is printed). The control variate is checked at its
initial value, at a random value (its Stein terms large) and after training, alone on a one-layer
graph and stacked with other estimators on the two-layer SBN, and on h1's own parameters. The
tests of the test: the Stein operator with the wrong coefficient (q(b_i) for the flip's
q(1 - b_i)) is rejected, and so are the draws compared row by row above an enumerated node.
The network's gradient is the gradient of |v|^2 (v: a data row's logits gradient), checked against
central differences at fixed noise.
"""
import dataclasses

import numpy as np
import pytest
from numba import njit

import exact
import ppl
import stats
from ppl import Affine, Bernoulli, Model
from ppl.estimators import REGISTRY
from ppl.kernels.cpu.core import rodeo_collect, rodeo_cv, rodeo_grad, rodeo_signal, rodeo_train

from small_models import DATA, X, two_layer_sbn  # noqa: E402


def one_layer(name, lp=True):
    """x -> h (3 Bernoulli units) -> Bernoulli likelihood of x (with log q(h) unless lp=False)."""
    with Model(name) as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 3, name="a1"))
        if lp:
            m.cost("lp", ppl.log_prob(h))
        m.cost("nll", ppl.bernoulli_nll(Affine(h, 3, name="dec"), target=x))
    return m


def _setup(prog, build, seed=7, cv=None):
    """Random model parameters (and the networks' at scale `cv`, if given); the exact gradient."""
    rng = np.random.default_rng(seed)
    P = {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}
    g = exact.gradient(build("rodeo_oracle"), P, DATA)
    for k, v in P.items():
        prog.params[k][...] = v
    if cv is not None:
        for k in prog.params:
            if k.startswith("rodeo") and k.endswith(".cv"):
                prog.params[k][...] = rng.normal(0.0, cv, prog.params[k].shape)
    names = list(P)
    return names, stats.flat(g, names)


def _train(prog, steps=1000):
    """Train the program (the networks with it) on the data; returns the networks' values."""
    before = {k: v.copy() for k, v in prog.params.items() if k.startswith("rodeo.")}
    ppl.fit(prog, {"x": np.tile(X, (8, 1))}, ppl.optim.Adam(0.01), steps=steps, batch_size=8, progress=False)
    for k, v in before.items():
        assert np.abs(prog.params[k] - v).max() > 1e-3, f"{k} did not train"
    return {k: prog.params[k].copy() for k in before}


@pytest.mark.parametrize("cv", ["init", "random", "trained"])
def test_rodeo_alone_is_unbiased(cv):
    prog = one_layer("rodeo_one").compile(dtype=np.float64, samples=3, estimators={"h": "rodeo"})
    if cv == "trained":
        _train(prog)
    names, e = _setup(prog, one_layer, cv=0.7 if cv == "random" else None)
    stats.assert_unbiased_tuned(prog, DATA, names, e, f"rodeo alone, K=3, cv {cv}")


CASES = [("rodeo", "rodeo", 3, "random"), ("rodeo", "rodeo", 2, "trained"), ("rodeo", "score", 3, "random"),
         ("rodeo", "enumerate", 3, "random"), ("rodeo", "disarm", 2, "random"),
         ("rodeo", ("arms", {"n": 3}), 3, "random"),
         ("disarm", "rodeo", 2, "random"), (("arms", {"n": 3}), "rodeo", 2, "random")]


def _label(s):
    return s if isinstance(s, str) else s[0]


@pytest.mark.parametrize("h1,h2,K,cv", CASES, ids=lambda s: _label(s) if not isinstance(s, int) else f"K{s}")
def test_rodeo_stacked_is_unbiased(h1, h2, K, cv):
    label = f"{_label(h1)} over {_label(h2)}, K={K}, cv {cv}"
    prog = two_layer_sbn("rodeo_case").compile(dtype=np.float64, samples=K, estimators={"h1": h1, "h2": h2})
    if cv == "trained":
        _train(prog)
    names, e = _setup(prog, two_layer_sbn, cv=0.7 if cv == "random" else None)
    stats.assert_unbiased_tuned(prog, DATA, names, e, label)


@njit(cache=False)
def _complement(p, out):
    for r in range(p.shape[0]):
        for j in range(p.shape[1]):
            out[r, j] = 1.0 - p[r, j]


def test_a_wrong_stein_coefficient_is_caught():
    """The test of the test: the Stein terms built with the flip weight q(b_i) instead of
    q(1 - b_i) (the kernel given 1 - p for p) have a nonzero mean; rejected."""
    RODEO = type(REGISTRY["rodeo"])

    class Wrong(RODEO):
        name = "rodeo_wrong_coefficient"

        def estimate(self, ctx):
            (g,) = ctx.param_grads()
            K, S = ctx.rows.samples, ctx.rows.configs
            D, H = ctx.node.width, ctx.options["hidden"]
            from ppl.kernels.families.rodeo import init, rodeo_size
            phi, gphi = ctx.parameter("cv", (rodeo_size(D, H),), init(D, H))
            below = ("(1,)", "(1,)")
            (a,) = ctx.params()
            b, rw = ctx.value(), ctx.rows.weights
            F, W, S0 = ctx.buffer("F"), ctx.buffer("W"), ctx.buffer("S0")
            Pm, Q, V, Vv = ctx.buffer("P", D), ctx.buffer("Q", D), ctx.buffer("V", D), ctx.buffer("Vv", D)
            Th, Gp = ctx.buffer("Th", H * (D + 1)), ctx.buffer("Gp", rodeo_size(D, H))
            ctx.call(rodeo_signal, a, b, ctx.downstream_cost(), rw, *below, F, W, Pm)
            ctx.call(_complement, Pm, Q)
            ctx.call(rodeo_cv, a, b, Q, F, K, S, *below, phi, H, Th, S0, V)
            ctx.call(rodeo_grad, b, Pm, F, S0, V, rw, K, S, *below, g)
            ctx.call(rodeo_train, a, b, Pm, F, W, S0, V, Th, K, S, *below, phi, H, Vv, Gp)
            ctx.call(rodeo_collect, Gp, gphi)

    before = dict(REGISTRY)
    try:
        ppl.register_estimator(Wrong)
        prog = one_layer("rodeo_wrong").compile(dtype=np.float64, samples=3, estimators={"h": Wrong.name})
        names, e = _setup(prog, one_layer, cv=0.7)
        r = stats.check(stats.draws(prog, DATA, names, 200, 50), e)
        print("rodeo with the wrong Stein coefficient:", r)
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


@pytest.mark.parametrize("K", [2, 3])
def test_the_network_gradient_is_that_of_the_squared_estimate(K):
    """At fixed noise (the draws do not depend on the network), the gradient entry of 'rodeo.h.cv'
    is d |v|^2 / dphi, v the data row's logits gradient (a1.b's, without log q's direct term)."""
    prog = one_layer("rodeo_fd", lp=False).compile(dtype=np.float64, samples=K, estimators={"h": "rodeo"})
    rng = np.random.default_rng(1)
    for v in prog.params.values():
        v[...] = rng.normal(0.0, 1.0, v.shape)
    phi = prog.params["rodeo.h.cv"]
    base = phi.copy()
    x = {"x": X[:1]}

    def sq(p):
        phi[...] = p
        return float((prog.grad(x, seed=3)[1]["a1.b"] ** 2).sum())

    analytic = prog.grad(x, seed=3)[1]["rodeo.h.cv"].copy()
    eps = 1e-6
    num = np.array([(sq(base + eps * u) - sq(base - eps * u)) / (2 * eps) for u in np.eye(len(base))])
    phi[...] = base
    np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-6 * np.abs(num).max())
    assert np.abs(num).max() > 0.1


def test_at_initialisation_it_is_score_with_the_leave_one_out_baseline():
    """w_0 = w_1 = 0: no control variate; the same draws give score 'loo''s estimate (the loss
    and every model gradient to rounding)."""
    progs = [one_layer(f"rodeo_vs_{n}").compile(dtype=np.float64, samples=3, estimators={"h": est})
             for n, est in (("rodeo", "rodeo"), ("loo", ("score", {"baseline": "loo"})))]
    rng = np.random.default_rng(2)
    for k, v in exact.model_params(progs[0]).items():
        val = rng.normal(0.0, 0.8, v.shape)
        for p in progs:
            p.params[k][...] = val
    data = {"x": np.tile(X, (5, 1))}
    (lr, gr), (ll, gl) = (p.grad(data, seed=4) for p in progs)
    assert np.isclose(lr, ll, rtol=1e-12)
    for k in gl:
        np.testing.assert_allclose(gr[k], gl[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_rodeo_refuses_bad_use():
    with Model("rodeo_normal") as m:
        x = m.input("x", 3)
        z = ppl.Normal("z", Affine(x, 2, name="loc"), 1.0)
        m.cost("c", ppl.total(z * z))
    with pytest.raises(ppl.ModelError, match=r"Normal 'z': estimator 'rodeo' does not apply \(Normal is not a "
                                             r"logit-link Bernoulli\)"):
        m.compile(estimators={"z": "rodeo"}, samples=2)
    with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': estimator 'rodeo' does not apply \(it needs "
                                             r"samples >= 2 .*compile\(\.\.\., samples=K\)"):
        one_layer("rodeo_k1").compile(estimators={"h": "rodeo"})
    for bad in (0, 65, 2.5, True):
        with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': rodeo option hidden .*must be .*got"):
            one_layer("rodeo_bad_h").compile(estimators={"h": ("rodeo", {"hidden": bad})}, samples=2)
    with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': estimator 'rodeo' does not apply \(it estimates the "
                                             r"gradient of the 'elbo' objective"):
        one_layer("rodeo_iwae").compile(estimators={"h": "rodeo"}, samples=2, objective="iwae")


def test_listed_with_its_paper_and_not_measured():
    est = REGISTRY["rodeo"]
    assert "Shi, Zhou, Hwang, Titsias & Mackey 2022" in est.cite and "Stein" in est.about
    text = " ".join(one_layer("rodeo_explain").compile(estimators={"h": "rodeo"}, samples=2).explain().split())
    assert "rodeo" in text
    assert est.not_measured(None)


@pytest.mark.cuda
@pytest.mark.parametrize("h2", ["rodeo", "enumerate"])
def test_rodeo_runs_on_the_cuda_target(h2):
    """Its kernels are declared once (kernels/families/rodeo.py): the CUDA step has them and gives
    the CPU step's loss and gradient (the networks' too) on the same seed."""
    est = {"h1": "rodeo", "h2": h2}
    cpu = two_layer_sbn("rodeo_cuda_twin").compile(dtype=np.float64, samples=2, estimators=est)
    gpu = two_layer_sbn("rodeo_cuda_twin").compile(dtype=np.float64, samples=2, estimators=est, target="cuda")
    assert gpu.target == "cuda" and "core.rodeo_cv" in gpu.source and "core.rodeo_train" in gpu.source
    rng = np.random.default_rng(0)
    for k in list(cpu.params):
        cpu.params[k] = gpu.params[k] = rng.normal(0.0, 0.7, cpu.params[k].shape)
    lc, gc = cpu.grad(DATA, seed=5)
    lg, gg = gpu.grad(DATA, seed=5)
    assert np.isclose(lc, lg, rtol=1e-9)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_fit_in_float32_trains_the_network():
    """The default program (float32) through ppl.fit: finite losses; the network moved from its
    initial value and is no model parameter."""
    prog = one_layer("rodeo_fit").compile(estimators="rodeo", samples=2, seed=0)
    assert prog.dtype == np.float32 and "rodeo.h.cv" not in prog.model_param_names()
    before = prog.params["rodeo.h.cv"].copy()
    hist = ppl.fit(prog, {"x": np.tile(X, (20, 1)).astype(np.float32)}, ppl.optim.make("adam", 0.01), steps=200,
                   batch_size=8, progress=False)
    assert np.all(np.isfinite(hist.loss)) and np.all(np.isfinite(prog.params["rodeo.h.cv"]))
    assert np.abs(prog.params["rodeo.h.cv"] - before).max() > 1e-3


@pytest.mark.parametrize("h2", ["enumerate", "rodeo"])
def test_rodeo_own_parameters_are_unbiased(h2):
    """The check on h1's logit parameters only (a1: what rodeo's estimate reaches), so that the
    stated power is rodeo's own rather than the pooled decoder's; the network at a random value."""
    prog = two_layer_sbn("rodeo_own").compile(dtype=np.float64, samples=3, estimators={"h1": "rodeo", "h2": h2})
    names, e = _setup(prog, two_layer_sbn, cv=0.7)
    own = [k for k in names if k.startswith("a1.")]
    idx = np.concatenate([np.full(np.size(prog.params[k]), k in own) for k in names])
    stats.assert_unbiased_tuned(prog, DATA, own, e[idx], f"rodeo on h1's parameters over {h2}")


class _RowsReplaced:
    """An estimator's context with other `rows` (everything else the context's own)."""

    def __init__(self, ctx, rows):
        self._ctx, self.rows = ctx, rows

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def test_comparing_rows_above_an_enumerated_node_is_caught():
    """The test of the marginalisation: below rodeo an enumerated node's rows weigh p(c | draw), so
    the draws' costs compared row by row (the enumerated digit not passed to the kernels) are
    biased and the check on h1's parameters rejects it; rodeo itself passes (the stacked cases)."""
    RODEO = type(REGISTRY["rodeo"])

    class RowByRow(RODEO):
        name = "rodeo_row_by_row"

        def estimate(self, ctx):
            super().estimate(_RowsReplaced(ctx, dataclasses.replace(ctx.rows, enumerated_below=None)))

    before = dict(REGISTRY)
    try:
        ppl.register_estimator(RowByRow)
        prog = two_layer_sbn("rodeo_row_by_row").compile(dtype=np.float64, samples=3,
                                                         estimators={"h1": RowByRow.name, "h2": "enumerate"})
        names, e = _setup(prog, two_layer_sbn)
        own = [k for k in names if k.startswith("a1.")]
        idx = np.concatenate([np.full(np.size(prog.params[k]), k in own) for k in names])
        r = stats.check(stats.draws(prog, DATA, own, 200, 50), e[idx])
        print("rodeo compared row by row over enumerate:", r)
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def test_serves_a_black_box_below():
    """No value cotangent is read: a gradient-free black box below the node is allowed."""
    from numba import njit as jit

    def sq(row):
        s = 0.0
        for v in row:
            s += v * v
        return s

    with Model("rodeo_blackbox") as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        m.cost("sim", ppl.blackbox(jit(sq), [h]))
    prog = m.compile(dtype=np.float64, samples=2, estimators={"h": "rodeo"})
    loss, g = prog.grad(DATA, seed=0)
    assert np.isfinite(loss) and np.abs(g["enc.W"]).max() > 0
