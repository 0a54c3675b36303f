"""The row-fused lowering of width-1 graphs: the same draws, loss, gradient and
estimator state as the array lowering (its oracle here, itself checked against exact
gradients elsewhere), a central-difference check of its own backward pass, an unbiasedness
check against the closed-form gradient, its use from @njit code, and its refusals."""
import numba
import numpy as np
import pytest

import exact
import ppl
import stats
from ppl import Affine, Bernoulli, Model, ModelError, Normal
from ppl.models import toy_bernoulli


def _row_graph(kind):
    with Model(f"scalar_{kind}") as m:
        x = m.input("x", 1)
        if kind == "bernoulli":
            b = Bernoulli("b", logits=Affine(ppl.tanh(x), 1, name="enc"))
            y = ppl.sigmoid(Affine(b, 1, name="dec")) * x + ppl.exp(0.3 * b)
            m.cost("f", ppl.total(ppl.relu(y - 0.2) + ppl.sqrt1p(y)))
            m.cost("lp", ppl.log_prob(b))
        elif kind == "two_layer":   # two antithetic nodes: four configurations per drawn row
            b1 = Bernoulli("b1", logits=Affine(x, 1, name="e1"))
            b2 = Bernoulli("b2", logits=Affine(b1, 1, name="e2") + 0.5 * x)
            m.cost("f", ppl.total(ppl.tanh(Affine(b2, 1, name="dec")) * (x + b1)))
            m.cost("g", ppl.bernoulli_nll(Affine(b1, 1, name="d1"), target=ppl.sigmoid(x)))
        elif kind == "probit":
            b = Bernoulli("b", logits=Affine(x, 1, name="enc"), link="probit")
            m.cost("f", ppl.bernoulli_nll(Affine(b, 1, name="dec"), target=ppl.sigmoid(x)))
        elif kind == "normal":
            loc = Affine(x, 1, name="loc")
            scale = ppl.softplus(Affine(x, 1, name="s"))
            z = Normal("z", loc=loc, scale=scale)
            m.cost("nll", ppl.gaussian_nll(Affine(z, 1, name="dec"), ppl.param("sd", 1, init=0.7), target=x))
            m.cost("kl", ppl.gaussian_kl(loc, scale))
            m.cost("kl2", ppl.gaussian_kl(loc, scale, ppl.param("m2", 1, init=0.1), ppl.exp(ppl.param("ls", 1))))
            m.cost("lq", ppl.log_prob(z))
        elif kind in ("laplace", "gamma"):   # laws row-fused from their kernels alone
            a = ppl.softplus(Affine(x, 1, name="a")) + 0.5
            z = (ppl.Laplace("z", loc=Affine(x, 1, name="loc"), scale=a) if kind == "laplace"
                 else ppl.Gamma("z", concentration=a, rate=ppl.exp(Affine(x, 1, name="r"))))
            m.cost("nll", ppl.gaussian_nll(Affine(z, 1, name="dec"), ppl.param("sd", 1, init=0.7), target=x))
            m.cost("lq", ppl.log_prob(z))
        elif kind == "poisson":
            n = ppl.Poisson("n", rate=ppl.exp(Affine(x, 1, name="r")))
            m.cost("f", ppl.total(ppl.tanh(Affine(n, 1, name="dec")) * x))
            m.cost("lq", ppl.log_prob(n))
        elif kind == "counts":   # the laws given by probabilities: a Bernoulli, a Binomial of it, a Geometric
            b = Bernoulli("b", probs=ppl.sigmoid(Affine(x, 1, name="eb")))
            n = ppl.Binomial("n", 3.0 * b + 2.0, probs=ppl.sigmoid(Affine(x, 1, name="en")))
            g = ppl.Geometric("g", logits=Affine(b, 1, name="eg") + 0.5)
            m.cost("f", ppl.total(ppl.tanh(Affine(n + g, 1, name="dec")) * x))
            for node in (b, n, g):
                m.cost(f"lq_{node.name}", ppl.log_prob(node))
    return m


CASES = [
    ("bernoulli", ("score", {"baseline": "none"}), 1),
    ("bernoulli", ("score", {"baseline": "moving_average"}), 1),
    ("bernoulli", ("score", {"baseline": "moving_average"}), 3),
    ("bernoulli", "straight_through", 1),
    ("bernoulli", "concrete", 2),
    ("bernoulli", "disarm", 1),
    ("bernoulli", "arm", 2),
    ("two_layer", "disarm", 1),
    ("two_layer", "arm", 1),
    ("two_layer", {"b1": "disarm", "b2": ("score", {"baseline": "moving_average"})}, 2),
    ("two_layer", {"b1": "straight_through", "b2": "disarm"}, 1),
    ("probit", "straight_through", 1),
    ("probit", ("score", {"baseline": "none"}), 1),
    ("normal", "pathwise", 1),
    ("normal", "pathwise", 2),
    ("normal", ("score", {"baseline": "moving_average"}), 1),
    ("laplace", "pathwise", 1),
    ("laplace", ("score", {"baseline": "none"}), 2),
    ("gamma", "pathwise", 1),
    ("poisson", ("score", {"baseline": "moving_average"}), 1),
    ("bernoulli", "reinmax", 1),          # estimators row-fused from their array code alone
    ("two_layer", {"b1": "gapped_st", "b2": "disarm"}, 1),
    ("counts", ("score", {"baseline": "moving_average"}), 1),
    ("counts", {"b": "straight_through", "n": ("score", {"baseline": "none"}),
                "g": ("score", {"baseline": "none"})}, 2),
    # estimators whose kernels read their configuration's other rows (the pair's partner, the
    # branches), alone and sharing one digit of branches
    ("bernoulli", "mvd", 1),
    ("two_layer", "mvd", 2),
    ("two_layer", {"b1": "mvd", "b2": "disarm"}, 1),
    ("two_layer", {"b1": "arm", "b2": ("score", {"baseline": "moving_average"})}, 1),
]


# float32 on one case of each law's model (not the two-layer one: its laws are the Bernoulli's)
# and on a pair drawn twice per data row (the constants and casts are per dtype, the control
# flow is not); every case in float64. Each case compiles two steps.
F32 = {0, 6, 12, 14, 16, 18, 19, 22}


@pytest.mark.parametrize("kind,est,samples,dtype",
                         [c + (np.float64,) for c in CASES] + [CASES[i] + (np.float32,) for i in sorted(F32)])
def test_row_fused_step_matches_array_step(kind, est, samples, dtype):
    x = np.linspace(-1.5, 2.0, 7)[:, None]
    progs = [_row_graph(kind).compile(estimators=est, dtype=dtype, samples=samples, lowering=low)
             for low in ("row-fused", "arrays")]
    assert "row-fused" in progs[0].explain() and "row-fused" not in progs[1].explain()
    assert "_gradient(" in progs[0].source and "_gradient(" not in progs[1].source
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for step in range(4):   # several steps: the running baseline's state must follow too
        (l0, g0), (l1, g1) = (p.grad({"x": x}, seed=11, step=step) for p in progs)
        assert l0 == pytest.approx(l1, rel=rtol, abs=1e-12)
        for k in g1:
            np.testing.assert_allclose(g0[k], g1[k], rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-13)
        np.testing.assert_allclose(progs[0].state, progs[1].state, rtol=rtol)
    s0, s1 = (p.sample({"x": x}, seed=5, step=2) for p in progs)
    assert s0.keys() == s1.keys()
    for k in s1:
        np.testing.assert_allclose(s0[k], s1[k], rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-13)
    p0, p1 = (p.loss_parts({"x": x}, seed=5, step=2) for p in progs)
    for k in p1:
        assert p0[k] == pytest.approx(p1[k], rel=rtol, abs=1e-12)


@pytest.mark.parametrize("est", ["pathwise", "concrete"])
def test_row_fused_backward_matches_central_differences(est):
    """With the noise held fixed (same seed and step), the loss is a smooth function of the
    parameters for reparameterised nodes: its central differences are the exact gradient."""
    kind = "normal" if est == "pathwise" else "bernoulli"
    if kind == "bernoulli":
        with Model("scalar_concrete_fd") as m:
            x = m.input("x", 1)
            b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
            m.cost("f", ppl.total(ppl.tanh(Affine(b, 1, name="dec")) * x))
    else:
        m = _row_graph(kind)
    prog = m.compile(estimators=est, dtype=np.float64, lowering="row-fused")
    prog.theta[:] = np.random.default_rng(0).normal(0, 0.5, prog.theta.shape)
    x = np.linspace(-1.0, 1.5, 5)[:, None]
    exact.assert_step_gradient(prog, {"x": x})


def test_row_fused_score_estimate_is_unbiased():
    """The REBAR / RELAX toy, score function without baseline. Oracle: the closed form (1 - 2t) p (1 - p).
    stats.assert_unbiased on 200 estimates, each the mean of 1,000 single-draw estimates (the
    projection ratio of a scalar is mean / exact): detects a 5% bias (figure printed with -s)."""
    t, theta = 0.4, 0.3
    prog = toy_bernoulli.build(t=t, theta0=theta).compile(estimators=("score", {"baseline": "none"}),
                                                         dtype=np.float64)
    assert "row-fused" in prog.explain()
    n = 200_000
    theta_arr, grad, state, ws2, ws1, inputs, B = prog.args(batch=1)
    draws = _draws(prog.entry, n, 1, theta_arr, grad, state, ws2, ws1, inputs, B)
    p = 1 / (1 + np.exp(-theta))
    exact = (1 - 2 * t) * p * (1 - p)
    se = draws.std() / np.sqrt(n)
    r = stats.assert_unbiased(draws.reshape(200, -1).mean(1)[:, None], np.array([exact]), "scalar score")
    print("scalar score toy:", r)
    # one call with batch = n averages n rows (other counter addresses, the same law)
    _, g = prog.grad(batch=n, seed=99, step=0)
    assert abs(g["theta"][0] - exact) < 4 * se


@numba.njit
def _draws(entry, n, stride, theta, grad, state, ws2, ws1, inputs, B):
    """n single-draw estimates from a user's @njit loop, at steps 0, stride, 2 stride, ..."""
    out = np.empty(n)
    for i in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(99), i * stride, 1)
        out[i] = grad[0]
    return out


def test_row_fused_draws_from_njit_match_rows():
    prog = toy_bernoulli.build(t=0.4, theta0=0.3).compile(dtype=np.float64, estimators=("score", {"baseline": "none"}))
    a = prog.args(batch=1)
    d = _draws(prog.entry, 3, 0, *a)
    assert np.all(d == d[0])  # same seed and step: the same draw each time
    d = _draws(prog.entry, 3, 1, *a)
    for i in range(3):   # the @njit caller sees what the Python API returns
        assert prog.grad(batch=1, seed=99, step=i)[1]["theta"][0] == d[i]


def test_lowering_refusals_name_the_problem():
    with Model("wide") as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
        m.cost("f", ppl.total(b))
    with pytest.raises(ModelError, match=r"lowering='row-fused'.*node 'x' has width 2"):
        m.compile(dtype=np.float64, lowering="row-fused")
    assert "row-fused" not in m.compile(dtype=np.float64).explain()   # auto: array kernels
    toy = toy_bernoulli.build()
    with pytest.raises(ModelError, match=r"estimator 'rebar' of node 'b' reads ctx.parameter, which the row-fused"):
        toy.compile(dtype=np.float64, estimators="rebar", lowering="row-fused")
    with pytest.raises(ModelError, match=r"'b': the 'loo' baseline reads other rows"):
        toy.compile(dtype=np.float64, estimators=("score", {"baseline": "loo"}), samples=2, lowering="row-fused")
    with pytest.raises(ModelError, match=r"lowering must be one of auto, arrays, row-fused"):
        toy.compile(dtype=np.float64, lowering="fused")
    with Model("chain") as m4:   # a chain of 8 DisARM nodes: 1 + 8 rows per drawn row (they add up)
        h = m4.input("x", 1)
        for i in range(8):
            h = Bernoulli(f"b{i}", logits=Affine(h, 1, name=f"e{i}"))
        m4.cost("f", ppl.total(h))
    with pytest.raises(ModelError, match=r"more than 8 antithetic configurations per drawn row"):
        m4.compile(dtype=np.float64, estimators="disarm", lowering="row-fused")
    assert "row-fused" not in toy.compile(dtype=np.float64, estimators="relax").explain()
    assert "row-fused" in toy.compile(dtype=np.float64).explain()   # the default (DisARM) is row-fused


def test_row_fused_step_refuses_a_nonpositive_scale():
    with Model("scalar_bad_scale") as m:
        x = m.input("x", 1)
        z = Normal("z", loc=x, scale=Affine(x, 1, name="s"))
        m.cost("f", ppl.total(z))
    prog = m.compile(dtype=np.float64, lowering="row-fused")
    prog.params["s.W"] = [[0.0]]
    prog.params["s.b"] = [-1.0]
    for call in (prog.loss, prog.grad):
        with pytest.raises(ValueError, match=r"Normal 'z': scale 's' has values <= 0 or NaN"):
            call({"x": np.ones((2, 1))})


class _UserPathwise(ppl.Estimator):
    """A user's reparameterisation written for the array lowering only: the law's sample and
    sample_bwd kernels on the context's buffers."""
    name = "user_pathwise_rows"
    about = "pathwise, written outside ppl"
    passes_value_grad = True

    def check(self, info):
        return None if info.dist.has_rsample else f"{info.dist.name} is not reparameterisable"

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is not ppl.NO_GRAD:
            ctx.law_call("sample_bwd", [ctx.drawn_noise(), gv], ctx.param_grads())


@numba.njit
def _user_scale(g, out):
    for r in range(g.shape[0]):
        for j in range(g.shape[1]):
            out[r, j] += g[r, j]


class _UserOwnKernel(_UserPathwise):
    """The same, adding its cotangent through a kernel of its own (no row form)."""
    name = "user_own_kernel_rows"

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is not ppl.NO_GRAD:
            loc, _ = ctx.param_grads()
            ctx.call(_user_scale, gv, loc)


class _UserFreshNoise(_UserPathwise):
    """Draws noise in its estimate too (stream 1, after the draw's): a test of the streams, not
    an estimator to use (its "gradient" reads noise the draw did not use)."""
    name = "user_fresh_noise_rows"

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is not ppl.NO_GRAD:
            ctx.law_call("sample_bwd", [ctx.noise("normal"), gv], ctx.param_grads())


def test_a_users_estimator_runs_row_fused_from_its_array_code():
    """An estimator written for the array lowering gets the row-fused form when everything it
    calls has a row form (its kernel calls rewritten; the array step is the oracle), and the array
    lowering, or a clear refusal under lowering='row-fused', when a kernel of its own has none."""
    for est in (_UserPathwise, _UserOwnKernel, _UserFreshNoise):
        if est.name not in ppl.estimators:
            ppl.register_estimator(est)
    x = np.linspace(-1.5, 2.0, 7)[:, None]
    for name in ("user_pathwise_rows", "user_fresh_noise_rows"):
        progs = [_row_graph("normal").compile(estimators={"z": name}, dtype=np.float64, lowering=low)
                 for low in ("row-fused", "arrays")]
        assert "_gradient(" in progs[0].source
        (l0, g0), (l1, g1) = (p.grad({"x": x}, seed=3, step=1) for p in progs)
        assert l0 == pytest.approx(l1, rel=1e-12)
        for k in g1:
            np.testing.assert_allclose(g0[k], g1[k], rtol=1e-12, atol=1e-13, err_msg=f"{name}: {k}")
    auto = _row_graph("normal").compile(estimators={"z": "user_own_kernel_rows"}, dtype=np.float64)
    assert "_gradient(" not in auto.source and "row-fused" not in auto.explain()
    with pytest.raises(ModelError, match=r"lowering='row-fused'.*_user_scale has no row form"):
        _row_graph("normal").compile(estimators={"z": "user_own_kernel_rows"}, dtype=np.float64, lowering="row-fused")
