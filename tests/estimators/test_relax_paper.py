"""RELAX in its paper's form (c(z) = eta f(sigma_lam(z)) + r(z): REBAR's relaxed term plus a
learned residual network) and the routing of 'relax' to its black-box form.

Oracles: central differences of the kernels' own variance (the variance gradients of eta and of
r's parameters are exact), and tests/exact.py's enumeration of the two-layer models (the
estimate's unbiasedness at a control variate far from its initialisation, alone and stacked with
other estimators); stats.assert_unbiased_tuned states the power (the estimates scaled by 1.05 and
0.95 must fail the same check)."""
import numpy as np
import pytest

import exact
import ppl
import stats
from ppl import Affine, Bernoulli, Categorical, Model
from ppl.kernels.cpu import rebar as B, relax as X

S, OFF, SPAN = 2, 1, B.FIXED_CONFIGS   # a lone node's digit: 2 drawn rows per block, 3 rows each
BLOCKS = 2
R = S * SPAN * BLOCKS


def _layout(rng, D):
    """Drawn rows (local index 0 of the digit), their weights and costs."""
    drawn = [r for r in range(R) if (r // S) % SPAN == 0]
    rw = np.zeros(R)
    rw[drawn] = rng.uniform(0.2, 1.0, len(drawn))
    L = rng.normal(0, 1, R)
    return drawn, rw, L


def _variance(ga, drawn, rw):
    """sum over drawn rows of rw |g|^2, g the row's whole estimate (its rows c = 0, 1, 2 added)."""
    tot = 0.0
    for r0 in drawn:
        g = (ga[r0] + ga[r0 + OFF * S] + ga[r0 + (OFF + 1) * S]) / rw[r0]
        tot += rw[r0] * float(g @ g)
    return tot


def _seeds(G1, G2, drawn, rw, eta):
    """The value cotangents REBAR's seeds leave on the relaxed rows: +-rw eta df/dy."""
    gs = np.zeros_like(G1)
    for r0 in drawn:
        gs[r0 + OFF * S] = rw[r0] * eta * G1[r0 + OFF * S]
        gs[r0 + (OFF + 1) * S] = -rw[r0] * eta * G2[r0 + (OFF + 1) * S]
    return gs


@pytest.mark.parametrize("categorical", [False, True], ids=["bernoulli", "categorical"])
def test_paper_kernel_variance_gradients_are_exact(categorical):
    """d/deta and d/dphi of sum rw |g|^2 (g the whole estimate: REBAR's terms and r's) from the
    kernel, against central differences of the kernel's own estimate (tolerance 1e-6 relative)."""
    rng = np.random.default_rng(11)
    K, C, H = 3, 2, 3
    D = 2 * K
    a = rng.normal(0, 1, (R, D))
    u, v = rng.random((R, D)), rng.random((R, D))
    y, dzt = np.zeros((R, D)), np.zeros((R, D))
    loglam = np.array([np.log(0.6)])
    if categorical:
        B.rebar_categorical_forward(a, u, v, S, OFF, SPAN, SPAN, K, loglam, 0.1, y)
    else:
        B.rebar_forward(a, u, v, S, OFF, SPAN, SPAN, loglam, 0.1, y, dzt)
    drawn, rw, L = _layout(rng, D)
    G1, G2 = rng.normal(0, 1, (R, D)), rng.normal(0, 1, (R, D))
    ctx = rng.normal(0, 1, (R, C))
    phi = rng.normal(0, 0.5, X.relax_size(D, C, H))

    def run(p, eta, train):
        ga, geta, glam, gphi = np.zeros((R, D)), np.zeros(1), np.zeros(1), np.zeros_like(p)
        gs = _seeds(G1, G2, drawn, rw, eta)
        e = np.array([eta])
        if categorical:
            X.relax_paper_categorical_bwd(a, u, v, L, rw, gs, S, OFF, SPAN, SPAN, K, e, loglam, 0.1, ctx, p, H, ga,
                                          geta, glam, gphi, train)
        else:
            X.relax_paper_bwd(a, u, v, y, L, rw, gs, S, OFF, SPAN, SPAN, e, loglam, 0.1, ctx, p, H, ga, geta, glam,
                              gphi, train)
        return ga, geta[0], gphi

    eta, h = 0.7, 1e-6
    ga, geta, gphi = run(phi, eta, True)
    assert np.array_equal(ga, run(phi, eta, False)[0])   # training changes no estimate
    fd = (_variance(run(phi, eta + h, False)[0], drawn, rw)
          - _variance(run(phi, eta - h, False)[0], drawn, rw)) / (2 * h)
    assert abs(fd - geta) <= 1e-6 * max(1.0, abs(fd)), (fd, geta)
    for i in range(len(phi)):
        p1, p2 = phi.copy(), phi.copy()
        p1[i] += h
        p2[i] -= h
        fd = (_variance(run(p1, eta, False)[0], drawn, rw) - _variance(run(p2, eta, False)[0], drawn, rw)) / (2 * h)
        assert abs(fd - gphi[i]) <= 1e-6 * max(1.0, abs(fd)), (i, fd, gphi[i])


def _two_layers(top, below):
    with Model("relax_paper") as m:
        x = m.input("x", 3)
        if top == "C":
            h1 = Categorical("h1", logits=Affine(x, 6, name="e1"), classes=3)
        else:
            h1 = Bernoulli("h1", logits=Affine(x, 3, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="e2"))
        m.cost("lp1", ppl.log_prob(h1))
        y = ppl.tanh(Affine(h2, 2, name="d"))
        m.cost("f", ppl.total((y + (-0.3)) * (y + (-0.3))))
    return m


X3 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0]])
CASES = [("B", "disarm", {}), ("B", "relax", {}), ("B", "score", {"train": True}), ("C", "rebar", {})]


@pytest.mark.parametrize("top,below,opts", CASES, ids=[f"{c[0]}-{c[1]}{'-tempered' if c[2] else ''}" for c in CASES])
def test_paper_form_is_unbiased_with_a_moved_control_variate(top, below, opts):
    """The paper form on h1 (Bernoulli or Categorical), stacked with another estimator on h2,
    with eta = 0.6 and r's parameters 5x their initial draw (a residual far from zero): the
    estimate against exact enumeration (tests/exact.py), power stated by the tuned check."""
    m = _two_layers(top, below)
    prog = m.compile(dtype=np.float64, estimators={"h1": ("relax", opts), "h2": below}, seed=2)
    prog.params["relax.h1.eta"][:] = 0.6
    prog.params["relax.h1"][:] *= 5.0
    params = exact.model_params(prog)
    names = list(params)
    e = exact.gradient(m, params, {"x": X3})
    stats.assert_unbiased_tuned(prog, {"x": X3}, names, stats.flat(e, names), f"relax paper {top} / {below}",
                                calls=200, target_se=0.008)


def test_relax_routes_to_its_black_box_form_and_says_so():
    """'relax' behind a gradient-free black box runs as 'relax_blackbox' (explain() says which
    form runs and why); on a differentiable path it is the paper's form, with REBAR's rows."""
    import numba

    @numba.njit
    def f(b):
        return (b[0] - 0.45) ** 2

    with Model("bb") as m:
        theta = ppl.param("theta", 1, init=0.3)
        b = Bernoulli("b", logits=theta)
        m.cost("f", ppl.blackbox(f, [b]))
    prog = m.compile(dtype=np.float64, estimators="relax")
    (ch, _), = prog.choices.values()
    assert ch.estimator == "relax_blackbox"
    text = " ".join(w for line in prog.explain().splitlines() for w in line.strip(" |").split())
    assert "chosen by the user as 'relax', which runs here as 'relax_blackbox'" in text, text
    paper = _two_layers("B", "disarm").compile(dtype=np.float64, estimators={"h1": "relax", "h2": "disarm"})
    assert paper.choices[next(n for n in paper.choices if n.name == "h1")][0].estimator == "relax"
    assert {"relax.h1", "relax.h1.eta", "relax.h1.log_temperature"} <= set(paper.params)
    with pytest.raises(ppl.ModelError, match=r"'relax_blackbox' has no option\(s\) temperature"):
        m.compile(dtype=np.float64, estimators=("relax", {"temperature": 0.3}))


def test_paper_form_trains_eta_and_the_residual_and_lowers_variance():
    """Training only the control variate (eta and r; the model held) on the two-layer model lowers
    the variance of the model's gradient (every seed's estimate at the same parameters)."""
    from ppl.kernels.cpu.core import adam_update

    m = _two_layers("B", "disarm")
    prog = m.compile(dtype=np.float64, estimators={"h1": "relax", "h2": "disarm"}, seed=4)
    model = list(exact.model_params(prog))
    before = stats.draws(prog, {"x": X3}, model, 600).var(0).sum()
    eta0 = float(prog.params["relax.h1.eta"][0])
    mom, var = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    keep = {k: prog.params[k].copy() for k in model}
    for t in range(600):
        prog.grad({"x": np.tile(X3, (8, 1))}, seed=10 ** 6 + t)
        adam_update(prog.theta, prog.grad_buffer, mom, var, 0.01, 0.9, 0.999, 1e-8, t + 1)
        for k in model:
            prog.params[k][:] = keep[k]
    after = stats.draws(prog, {"x": X3}, model, 600, seed0=50_000).var(0).sum()
    print(f"relax paper: eta {eta0} -> {prog.params['relax.h1.eta'][0]:.3f}; variance {before:.4g} -> {after:.4g}")
    assert prog.params["relax.h1.eta"][0] != eta0
    assert after < 0.8 * before
