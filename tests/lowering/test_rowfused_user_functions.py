"""A user's functions in the row-fused lowering: black boxes (ppl.blackbox, with and without
`grad`) and user layers (ppl.layer, with and without `vjp`) of width 1, called once per row from
the row code. Oracle: the array step, which calls the same functions on rows of its buffers (its
own gradients are checked against exact ones elsewhere): the same loss, gradient, estimator state,
samples and per-cost losses (float64 to 1e-12, float32 to 2e-5), under `lowering="auto"`. And
the row-fused backward through the user's gradients against central differences, the step from
a user's @njit loop, and such programs kept out of the disk cache."""
import numba
import numpy as np
import pytest

import exact
import ppl
from ppl import Affine, Bernoulli, Model, Normal


@numba.njit
def _sim(u, b, x):
    """A gradient-free simulator: piecewise constant in u."""
    return np.floor(2.0 * (u[0] + 0.5 * b[0] * x[0])) / 2.0 + np.sin(3.0 * x[0]) * b[0]


@numba.njit
def _affine_row(a, x, out):   # a user layer without a VJP
    out[0] = a[0] * x[0] + 1.0


@numba.njit
def _smooth(u, z):
    return (u[0] - 0.3) ** 2 + np.sin(z[0]) * u[0]


@numba.njit
def _smooth_grad(u, z, gu, gz):
    gu[0] = 2.0 * (u[0] - 0.3) + np.sin(z[0])
    gz[0] = np.cos(z[0]) * u[0]


@numba.njit
def _layer(z, x, out):
    out[0] = np.tanh(z[0]) * x[0] + z[0]


@numba.njit
def _layer_vjp(z, x, out, gout, gz, gx):
    t = np.tanh(z[0])
    gz[0] = gout[0] * ((1.0 - t * t) * x[0] + 1.0)
    gx[0] = gout[0] * t


def _graph(kind):
    with Model(f"row_user_{kind}") as m:
        x = m.input("x", 1)
        if kind == "bernoulli":   # no gradient through the user's functions: score, ARM, DisARM
            b1 = Bernoulli("b1", logits=Affine(x, 1, name="e1"))
            b2 = Bernoulli("b2", logits=Affine(b1, 1, name="e2") + 0.5 * x)
            u = ppl.layer(_affine_row, [b1, x], 1, name="u")
            m.cost("sim", ppl.blackbox(_sim, [u, b2, x]))
            m.cost("lp", ppl.log_prob(b1))
        elif kind == "normal":    # the black box's and the layer's gradients carry pathwise estimates
            loc, scale = Affine(x, 1, name="loc"), ppl.softplus(Affine(x, 1, name="s"))
            z = Normal("z", loc=loc, scale=scale)
            u = ppl.layer(_layer, [z, x], 1, vjp=_layer_vjp, name="u")
            m.cost("sim", ppl.blackbox(_smooth, [u, z], grad=_smooth_grad))
            m.cost("kl", ppl.gaussian_kl(loc, scale))
        elif kind == "bernoulli_grad":   # ... and straight-through, Concrete, ReinMax estimates
            b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
            u = ppl.layer(_layer, [Affine(b, 1, name="dec"), x], 1, vjp=_layer_vjp, name="u")
            m.cost("sim", ppl.blackbox(_smooth, [u, b], grad=_smooth_grad))
        elif kind == "pair_grad":   # an antithetic pair's two configurations call the gradients in turn
            b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
            z = Normal("z", loc=Affine(b, 1, name="loc") + x, scale=ppl.softplus(Affine(x, 1, name="s")))
            u = ppl.layer(_layer, [z, x], 1, vjp=_layer_vjp, name="u")
            m.cost("sim", ppl.blackbox(_smooth, [u, b], grad=_smooth_grad))
    return m


CASES = [
    ("bernoulli", ("score", {"baseline": "none"}), 1),
    ("bernoulli", ("score", {"baseline": "moving_average"}), 3),
    ("bernoulli", "disarm", 2),
    ("bernoulli", {"b1": "disarm", "b2": ("score", {"baseline": "moving_average"})}, 1),
    ("normal", "pathwise", 2),
    ("normal", ("score", {"baseline": "moving_average"}), 1),
    ("bernoulli_grad", "straight_through", 1),
    ("bernoulli_grad", "concrete", 2),
    ("bernoulli_grad", "reinmax", 1),
    ("pair_grad", {"b": "disarm", "z": "pathwise"}, 1),
    ("pair_grad", {"b": "arm", "z": "pathwise"}, 2),
]
F32 = [   # float32 on the graphs whose user functions have gradients, with each kind of estimator
    ("bernoulli_grad", "straight_through", 1),
    ("pair_grad", {"b": "disarm", "z": "pathwise"}, 1),
]


@pytest.mark.parametrize("kind,est,samples,dtype",
                         [c + (np.float64,) for c in CASES] + [c + (np.float32,) for c in F32])
def test_row_fused_user_functions_match_the_array_step(kind, est, samples, dtype):
    x = np.linspace(-1.5, 2.0, 7)[:, None]
    progs = [_graph(kind).compile(estimators=est, dtype=dtype, samples=samples, lowering=low)
             for low in ("auto", "arrays")]
    assert "row-fused" in progs[0].explain() and "row-fused" not in progs[1].explain()
    assert "_gradient(" in progs[0].source and "bb_blackbox_1(" in progs[0].source
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (2e-5, 1e-6)
    for step in range(4):   # several steps: the running baseline's state must follow too
        (l0, g0), (l1, g1) = (p.grad({"x": x}, seed=11, step=step) for p in progs)
        assert l0 == pytest.approx(l1, rel=rtol, abs=1e-12)
        assert g0.keys() == g1.keys()
        for k in g1:
            np.testing.assert_allclose(g0[k], g1[k], rtol=rtol, atol=atol, err_msg=k)
        np.testing.assert_allclose(progs[0].state, progs[1].state, rtol=rtol)
    assert any(np.any(g != 0) for g in g1.values())
    s0, s1 = (p.sample({"x": x}, seed=5, step=2) for p in progs)
    assert s0.keys() == s1.keys() and "u" in s1
    for k in s1:
        np.testing.assert_allclose(s0[k], s1[k], rtol=rtol, atol=atol, err_msg=k)
    p0, p1 = (p.loss_parts({"x": x}, seed=5, step=2) for p in progs)
    assert p0.keys() == p1.keys()
    for k in p1:
        assert p0[k] == pytest.approx(p1[k], rel=rtol, abs=1e-12)


def test_the_users_gradients_match_central_differences():
    """Pathwise through the layer's VJP and the black box's gradient: at fixed noise the loss is a
    smooth function of the parameters, so its central differences are the gradient."""
    prog = _graph("normal").compile(estimators="pathwise", dtype=np.float64)
    assert "row-fused" in prog.explain()
    prog.theta[:] = np.random.default_rng(0).normal(0, 0.5, prog.theta.shape)
    exact.assert_step_gradient(prog, {"x": np.linspace(-1.0, 1.5, 5)[:, None]})


@numba.njit
def _entry_grads(entry, n, theta, grad, state, ws2, ws1, inputs, B):
    out = np.empty((n, grad.shape[0]))
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(4), t, 1)
        out[t] = grad
    return out


def test_row_fused_user_functions_from_njit_and_not_disk_cached():
    """The step calls the user's functions as globals of its module: it runs from a user's @njit
    loop (the same gradients as prog.grad), and, as every program with user functions, it is
    compiled without Numba's disk cache (a program without them keeps it)."""
    x = np.linspace(-1.0, 1.0, 3)[:, None]
    prog = _graph("normal").compile(estimators="pathwise", dtype=np.float64)
    assert "row-fused" in prog.explain()
    assert "cache=True" not in prog.source and prog.source.count("@njit(cache=False") == 4
    got = _entry_grads(prog.entry, 3, *prog.args({"x": x}))
    for t in range(3):
        _, g = prog.grad({"x": x}, seed=4, step=t)
        np.testing.assert_array_equal(got[t], np.concatenate([v.ravel() for v in g.values()]))
    with Model("row_no_user") as m:
        z = Normal("z", loc=Affine(m.input("x", 1), 1, name="loc"), scale=1.0)
        m.cost("f", ppl.total(z * z))
    src = m.compile(dtype=np.float64).source
    assert "_gradient(" in src and "cache=False" not in src


def test_user_functions_under_lowering_scalar():
    """lowering='row-fused' takes the user's functions now; a wider user node still refuses it."""
    assert "row-fused" in _graph("bernoulli").compile(estimators="disarm", dtype=np.float64,
                                                      lowering="row-fused").explain()
    with Model("row_user_wide") as m:
        x = m.input("x", 1)
        b = Bernoulli("b", logits=Affine(x, 1, name="e"))
        u = ppl.layer(_affine_row, [b, x], 2, name="u2")
        m.cost("sim", ppl.blackbox(_sim, [u, b, x]))
    with pytest.raises(ppl.ModelError, match=r"lowering='row-fused'.*node 'u2' has width 2"):
        m.compile(estimators="disarm", dtype=np.float64, lowering="row-fused")
