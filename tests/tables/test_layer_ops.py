"""Ops added on the op table (ppl/ops.py): constants where a node is expected, `ppl.concat` and
column slices `h[:, lo:hi]`. Each is one op entry plus its row kernels (cpu_rows / gpu_rows);
these tests check them the way every op is checked: values against closed forms, gradients
against central differences (oracle; float64, h = 1e-6, agreement to 1e-6 relative), the
row-fused lowering against the array lowering, the CUDA twin against the CPU (simulator
without a GPU), and bad input as a ModelError naming the argument.
"""
import numpy as np
import pytest
from numba import njit

import exact
import ppl
from ppl import Affine, Model, Normal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=(5, 2))


def _fd_check(prog, data):
    """Central differences of the loss at fixed noise against the step's gradient."""
    prog.theta[:] = np.random.default_rng(1).normal(0, 0.5, prog.theta.shape)
    exact.assert_step_gradient(prog, data)


def columns_model(name="cols"):
    with Model(name) as m:
        x = m.input("x", 3)
        y = m.input("y", 2)
        h = ppl.tanh(Affine(x, 4, name="enc"))
        c = ppl.concat([h[:, :2], ppl.sigmoid(h[:, 2:]), x[:, 0], h[:, -1]])     # width 6
        z = Normal("z", Affine(c, 2, name="loc"), 0.5)                           # a constant scale
        m.cost("nll", ppl.gaussian_nll(z, 1.0, y))                               # a constant scale
        m.cost("sq", ppl.total(c * c))
    return m


def test_concat_slice_const_values_and_gradients():
    prog = columns_model().compile(estimators="pathwise", dtype=np.float64)
    assert set(prog.params) == {"enc.W", "enc.b", "loc.W", "loc.b"}   # constants are not trained
    data = {"x": X, "y": Y}
    s = prog.sample(data, seed=2)
    h = np.tanh(X @ prog.params["enc.W"] + prog.params["enc.b"])
    c = np.concatenate([h[:, :2], 1 / (1 + np.exp(-h[:, 2:])), X[:, :1], h[:, -1:]], axis=1)
    c_node = next(k for k in s if k.startswith("concat"))
    np.testing.assert_allclose(s[c_node], c, rtol=1e-12)
    const_nodes = [k for k in s if k.startswith("const")]
    assert len(const_nodes) == 2 and all(np.all(s[k] == v) for k, v in zip(sorted(const_nodes), (0.5, 1.0)))
    # closed form of the loss at these draws: the Normal's noise is (z - loc) / 0.5
    loc = c @ prog.params["loc.W"] + prog.params["loc.b"]
    z = s["z"]
    nll = 0.5 * (Y - z) ** 2 + 0.5 * np.log(2 * np.pi)
    parts = prog.loss_parts(data, seed=2)
    assert parts["nll"] == pytest.approx(nll.sum(1).mean(), rel=1e-12)
    assert parts["sq"] == pytest.approx((c * c).sum(1).mean(), rel=1e-12)
    assert np.std((z - loc) / 0.5) > 0.3   # the constant scale was applied, not ignored
    _fd_check(prog, data)


def test_constant_scale_in_the_row_fused_lowering_matches_the_arrays():
    def build():
        with Model("const_scalar") as m:
            x = m.input("x", 1)
            z = Normal("z", Affine(x, 1, name="loc"), 0.5)
            m.cost("nll", ppl.gaussian_nll(z[:, 0], 1.0, x))
        return m
    a = build().compile(estimators="pathwise", dtype=np.float64, lowering="arrays")
    s = build().compile(estimators="pathwise", dtype=np.float64, lowering="row-fused")
    x = np.linspace(-1, 1, 7)[:, None]
    la, ga = a.grad({"x": x}, seed=4, step=2)
    ls, gs = s.grad({"x": x}, seed=4, step=2)
    assert ls == pytest.approx(la, rel=1e-12)
    for k in ga:
        np.testing.assert_allclose(gs[k], ga[k], rtol=1e-12)
    _fd_check(s, {"x": x})


@pytest.mark.cuda
def test_concat_slice_const_cuda_parity():
    cpu = columns_model().compile(estimators="pathwise", dtype=np.float64, seed=1)
    gpu = columns_model("cols_gpu").compile(estimators="pathwise", dtype=np.float64, seed=1, target="cuda")
    data = {"x": X, "y": Y}
    lc, gc = cpu.grad(data, seed=5)
    lg, gg = gpu.grad(data, seed=5)
    assert lg == pytest.approx(lc, rel=1e-9)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)


def arith_model(name="arith"):
    """x / y of two nodes, x / c, c / x and x ** p (an integer, a fraction, a negative power) on
    positive values (softplus), each feeding the loss."""
    with Model(name) as m:
        x = m.input("x", 3)
        a = ppl.softplus(Affine(x, 4, name="a")) + 0.1
        b = ppl.softplus(Affine(x, 4, name="b")) + 0.1
        q = a / b
        m.cost("quot", ppl.total(q + a / 4.0 + 2.0 / b))
        m.cost("pows", ppl.total(a ** 2 + b ** 0.5 + a ** -1.5))
        z = Normal("z", Affine(q, 2, name="loc"), 0.5)
        m.cost("nll", ppl.gaussian_nll(z, 1.0, x[:, :2]))
    return m


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_division_and_powers_values_and_gradients(dtype):
    prog = arith_model().compile(estimators="pathwise", dtype=dtype)
    prog.theta[:] = np.random.default_rng(3).normal(0, 0.5, prog.theta.shape)
    sp = lambda v: np.log1p(np.exp(v))   # noqa: E731
    P = {k: v.astype(np.float64) for k, v in prog.params.items()}
    a = sp(X @ P["a.W"] + P["a.b"]) + 0.1
    b = sp(X @ P["b.W"] + P["b.b"]) + 0.1
    parts = prog.loss_parts({"x": X}, seed=1)
    rel = 1e-12 if dtype == np.float64 else 2e-5
    assert parts["quot"] == pytest.approx((a / b + a / 4 + 2 / b).sum(1).mean(), rel=rel)
    assert parts["pows"] == pytest.approx((a ** 2 + b ** 0.5 + a ** -1.5).sum(1).mean(), rel=rel)
    if dtype == np.float64:
        _fd_check(prog, {"x": X})


@pytest.mark.cuda
def test_division_and_powers_row_fused_and_cuda_parity():
    def build(name):
        with Model(name) as m:
            x = m.input("x", 1)
            a = ppl.softplus(Affine(x, 1, name="a")) + 0.2
            z = Normal("z", Affine(a / (a + 1.0), 1, name="loc"), 1.0 / a)
            m.cost("nll", ppl.gaussian_nll(z, 1.0, x))
            m.cost("p", ppl.total(a ** 1.5 + 3.0 / a))
        return m
    x = np.linspace(-1, 1, 7)[:, None]
    arr = build("arith_s").compile(estimators="pathwise", dtype=np.float64, lowering="arrays", seed=2)
    sca = build("arith_s").compile(estimators="pathwise", dtype=np.float64, lowering="row-fused", seed=2)
    gpu = build("arith_s").compile(estimators="pathwise", dtype=np.float64, target="cuda", seed=2)
    la, ga = arr.grad({"x": x}, seed=4, step=2)
    for other in (sca, gpu):
        lo, go = other.grad({"x": x}, seed=4, step=2)
        assert lo == pytest.approx(la, rel=1e-9)
        for k in ga:
            np.testing.assert_allclose(go[k], ga[k], rtol=1e-9, atol=1e-12, err_msg=k)
    _fd_check(sca, {"x": x})


def test_categorical_nll_is_the_softmax_cross_entropy_of_a_one_hot_target():
    with Model("cat_nll") as m:
        x = m.input("x", 3)
        t = m.input("t", 6)
        logits = Affine(x, 6, name="f")
        m.cost("nll", ppl.categorical_nll(logits, t, classes=3))
    prog = m.compile(dtype=np.float64)
    T = np.eye(3)[np.random.default_rng(0).integers(0, 3, size=(5, 2))].reshape(5, 6)
    L = X @ prog.params["f.W"] + prog.params["f.b"]
    G = L.reshape(5, 2, 3)
    logp = G - np.log(np.exp(G).sum(2, keepdims=True))
    want = -(logp * T.reshape(5, 2, 3)).sum((1, 2)).mean()
    assert prog.loss({"x": X, "t": T}) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("build,match", [
    (lambda h: h / 0, r"division by the constant zero"),
    (lambda h: h / "a", r"the divisor must be a node or a number"),
    (lambda h: h ** h, r"the exponent must be a constant number"),
    (lambda h: h ** float("inf"), r"the exponent is inf; give a finite number"),
    (lambda h: h / ppl.param("q", 3), r"widths must agree"),
    (lambda h: h[:, 2:9], r"columns 2:9 are not a non-empty range within its width 4"),
    (lambda h: h[:, 3:1], r"not a non-empty range"),
    (lambda h: h[1], r"index a node as h\[:, lo:hi\]"),
    (lambda h: h[:, ::2], r"step 1"),
    (lambda h: h[:, 1.5], r"index a node as"),
    (lambda h: ppl.concat([]), r"concat: give a non-empty list"),
    (lambda h: ppl.concat([h, 2.0]), r"concat: argument 'nodes\[1\]' must be a ppl node"),
    (lambda h: Normal("z", h, float("nan")), r"Normal 'z': scale: a constant must be a finite number"),
    (lambda h: Normal("z", h, True), r"Normal 'z': scale: a constant must be a finite number"),
    (lambda h: ppl.gaussian_nll(1.0, 1.0, 2.0), r"gaussian_nll: argument 'loc' must be a ppl node"),
    (lambda h: Normal("z", h, -0.5), r"Normal 'z': scale is the constant -0.5; it must be > 0"),
    (lambda h: ppl.gaussian_nll(h, 0, h), r"gaussian_nll: scale is the constant 0.0; it must be > 0"),
    (lambda h: ppl.bernoulli_nll(h, 1.5), r"bernoulli_nll: target is the constant 1.5; it must be within \[0, 1\]"),
])
def test_bad_columns_and_constants_are_clear_errors(build, match):
    with Model("bad_cols"):
        h = ppl.param("p", 4)
        with pytest.raises(ppl.ModelError, match=match):
            build(h)


def test_a_node_is_not_iterable():
    with Model("iter"):
        h = ppl.param("p", 4)
        with pytest.raises(TypeError):
            list(h)


# --------------------------------------------------------------------------- user layers
@njit
def _pair_fn(h, out):              # out = (h0 * h1, sin(h0), h1^2)
    out[0] = h[0] * h[1]
    out[1] = np.sin(h[0])
    out[2] = h[1] * h[1]


@njit
def _pair_vjp(h, out, gout, gh):
    gh[0] = gout[0] * h[1] + gout[1] * np.cos(h[0])
    gh[1] = gout[0] * h[0] + 2.0 * gout[2] * h[1]


@njit
def _flip_fn(b, out):              # no VJP: a piecewise map of a binary row
    out[0] = 1.0 if b[0] > b[1] else -1.0


def layer_model(name="user_layer"):
    with Model(name) as m:
        x = m.input("x", 3)
        y = m.input("y", 2)
        h = ppl.tanh(Affine(x, 2, name="enc"))
        u = ppl.layer(_pair_fn, h, 3, vjp=_pair_vjp, name="pair")
        z = Normal("z", Affine(u, 2, name="loc"), ppl.softplus(Affine(u, 2, name="sc")))
        m.cost("nll", ppl.gaussian_nll(z, 1.0, y))
        m.cost("lp", ppl.log_prob(z))
    return m


def test_user_layer_values_and_gradients():
    """The layer's row function and VJP inside the graph: values against NumPy, the whole
    step's gradient against central differences (pathwise below it)."""
    prog = layer_model().compile(estimators="pathwise", dtype=np.float64)
    data = {"x": X, "y": Y}
    s = prog.sample(data, seed=1)
    h = np.tanh(X @ prog.params["enc.W"] + prog.params["enc.b"])
    want = np.stack([h[:, 0] * h[:, 1], np.sin(h[:, 0]), h[:, 1] ** 2], axis=1)
    np.testing.assert_allclose(s["pair"], want, rtol=1e-12)
    _fd_check(prog, data)


def test_user_layer_without_vjp_blocks_like_a_black_box():
    """No VJP: the Bernoulli above it gets stochastic derivatives (a narrow node on a blocked path), which match the
    exact gradient by enumeration (tests/stats.py projection test; 5% bias detectable)."""
    import stats
    with Model("flip") as m:
        x = m.input("x", 3)
        b = ppl.Bernoulli("b", logits=Affine(x, 2, name="enc"))
        f = ppl.layer(_flip_fn, b, 1, name="flip")
        m.cost("c", ppl.total(f * f + 0.5 * f))
        m.cost("lp", ppl.log_prob(b))
    prog = m.compile(dtype=np.float64, samples=2)
    chosen = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
    assert chosen["b"] == "stochastic_derivative"   # the rule for a narrow node behind a gradient-free path
    exact_prog = m.compile(dtype=np.float64, estimators="enumerate")
    for k in exact_prog.params:
        exact_prog.params[k][...] = prog.params[k]
    _, ex = exact_prog.grad({"x": X[:2]}, seed=0)
    stats.assert_unbiased_tuned(prog, {"x": X[:2]}, ["enc.W", "enc.b"], stats.flat(ex, ["enc.W", "enc.b"]),
                                "user layer without vjp")
    with Model("flip_param") as m2:
        x = m2.input("x", 3)
        f = ppl.layer(_flip_fn, Affine(x, 2, name="enc"), 1, name="flip")
        m2.cost("c", ppl.total(f))
    with pytest.raises(ppl.ModelError, match=r"layer 'flip' has no gradient.*ppl.layer\(\.\.\., vjp=\.\.\.\)"):
        m2.compile(dtype=np.float64)


def test_user_layer_errors():
    with Model("ul_bad") as m:
        x = m.input("x", 2)
        u = ppl.layer(_flip_fn, x, 1, vjp=_pair_fn, name="bad")
        m.cost("c", ppl.total(u))
    with pytest.raises(ppl.ModelError, match=r"layer 'bad': vjp takes 2 argument\(s\) but is called with 4"):
        m.compile(dtype=np.float64)
    with Model("ul_cuda") as m:
        x = m.input("x", 3)
        u = ppl.layer(_pair_fn, ppl.tanh(Affine(x, 2, name="enc")), 3, vjp=_pair_vjp, name="pair")
        m.cost("c", ppl.total(u))
    with pytest.raises(ppl.ModelError, match=r"target 'cuda': the user layer 'pair' runs a Python/@njit function"):
        m.compile(dtype=np.float64, target="cuda")
    with Model("ul_args"):
        p = ppl.param("p", 2)
        with pytest.raises(ppl.ModelError, match=r"layer: fn must be a numba @njit function"):
            ppl.layer(None, p, 1)
        with pytest.raises(ppl.ModelError, match=r"layer 'q': vjp must be a numba @njit function"):
            ppl.layer(_flip_fn, p, 1, vjp=lambda *a: None, name="q")
        with pytest.raises(ppl.ModelError, match=r"layer 'r': width"):
            ppl.layer(_flip_fn, p, 0, name="r")


def test_a_width_one_node_is_a_cost_as_it_is():
    """m.cost(name, node) with a node of width 1 is ppl.total(node): same loss and gradient on
    the same draw; a wider node is a clear error naming its width and the fix."""
    def build(name, wrap):
        with Model(name) as m:
            x = m.input("x", 3)
            z = Normal("z", loc=Affine(x, 1, name="loc"), scale=0.7)
            e = (z - 0.3) * (z - 0.3)
            m.cost("sq", ppl.total(e) if wrap else e)
        return m
    a = build("w1_total", True).compile(dtype=np.float64)
    b = build("w1_bare", False).compile(dtype=np.float64)
    b.theta[:] = a.theta
    la, ga = a.grad({"x": X}, seed=3)
    lb, gb = b.grad({"x": X}, seed=3)
    assert la == lb and all(np.array_equal(ga[k], gb[k]) for k in ga)
    with Model("w2_bare") as m:
        x = m.input("x", 3)
        with pytest.raises(ppl.ModelError, match=r"cost 'sq': affine node 'a2' has 2 columns.*ppl.total"):
            m.cost("sq", Affine(x, 2, name="a2"))


def broadcast_model(name="bcast", wide=False):
    """A width-1 node against width-4 ones in add, mul, sub, div, a head and a law's parameter;
    wide=True writes each broadcast out as a concatenation of copies (the oracle of the values)."""
    rep = (lambda v: ppl.concat([v] * 4)) if wide else (lambda v: v)
    with Model(name) as m:
        x, t = m.input("x", 4), m.input("t", 4)
        s, a = ppl.param("s", 1, init=0.7), Affine(x, 1, name="a")
        h = rep(s) * x + rep(a) - x / (rep(ppl.softplus(a)) + 1.0) - rep(a)
        m.cost("c", ppl.gaussian_nll(h, rep(ppl.softplus(s)), t))
        m.observe("o", ppl.dist.Normal(h, rep(ppl.softplus(a))), t)
        z = Normal("z", rep(s), 1.0 + x * x)                       # a law: width-1 loc, width-4 scale
        m.latent(z, ppl.dist.Normal(0.0, 1.0))
    return m


def test_width_one_broadcasts_against_width_n():
    data = {"x": RNG.normal(size=(5, 4)), "t": RNG.normal(size=(5, 4))}
    m = broadcast_model()
    assert sum(n.kind == "bcast" for n in m.order) == 7 and m.nodes["z"].width == 4
    p = m.compile(estimators="pathwise", dtype=np.float64)
    q = broadcast_model("bcast_wide", wide=True).compile(estimators="pathwise", dtype=np.float64)
    q.theta[:] = p.theta
    (lp, gp), (lq, gq) = p.grad(data, seed=3), q.grad(data, seed=3)
    assert lp == pytest.approx(lq, rel=1e-12)
    for k in gp:
        np.testing.assert_allclose(gp[k], gq[k], rtol=1e-10, atol=1e-12, err_msg=k)
    _fd_check(p, data)
    gpu = broadcast_model("bcast_gpu").compile(estimators="pathwise", dtype=np.float64, target="cuda")
    gpu.theta[:] = p.theta
    lg, gg = gpu.grad(data, seed=3)
    assert lg == pytest.approx(lp, rel=1e-9)
    for k in gp:
        np.testing.assert_allclose(gg[k], gp[k], rtol=1e-9, atol=1e-12, err_msg=k)
    with Model("bad_widths") as m:
        with pytest.raises(ppl.ModelError, match="widths must agree"):
            m.input("u", 2) + m.input("v", 3)
