"""ARM, DisARM and RELAX: unbiasedness on the REBAR / RELAX toy problem (also with a black-box cost),
the exactness of RELAX's variance gradient, and that training the control variate lowers
the variance. Tolerance: mean of N estimates within 4 standard errors of the exact value."""
import numba
import numpy as np
import pytest

import ppl
import stats
from ppl import Bernoulli, Model
from ppl.kernels.cpu import relax as X


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@numba.njit
def toy_cost(b):
    return (b[0] - 0.45) ** 2


def toy(blackbox=False, theta0=0.3, t=0.45):
    with Model("toy") as m:
        theta = ppl.param("theta", 1, init=theta0)
        b = Bernoulli("b", logits=theta)
        if blackbox:
            m.cost("f", ppl.blackbox(toy_cost, [b]))
        else:
            m.cost("f", ppl.total((b + (-t)) * (b + (-t))))
    return m


def toy_exact(theta, t=0.45):
    return sigmoid(theta) * (1 - sigmoid(theta)) * ((1 - t) ** 2 - t ** 2)


def estimates(prog, n, batch=1, step0=0):
    out = np.empty(n)
    for i in range(n):
        _, g = prog.grad(batch=batch, seed=i, step=step0)
        out[i] = g["theta"][0]
    return out


@pytest.mark.parametrize("est,blackbox", [("arm", False), ("disarm", False), ("relax", False), ("relax", True),
                                          ("rebar", False),
                                          ("score", True)])
def test_toy_unbiased(est, blackbox):
    """Oracle: the closed form toy_exact (d/dtheta of E[(b - t)^2], b ~ Bernoulli(sigmoid(theta))).
    stats.assert_unbiased_tuned on the scalar gradient (the projection ratio is mean / exact),
    `batch` rows per estimate sized for a ratio SE of ~0.8%: detects a 5% bias (figure printed)."""
    prog = toy(blackbox).compile(dtype=np.float64, estimators=est)
    stats.assert_unbiased_tuned(prog, None, ["theta"], np.array([toy_exact(0.3)]),
                                f"toy {est} blackbox={blackbox}", batch=1)


def test_relax_variance_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    R, D, C, H = 5, 3, 2, 4
    a = rng.normal(0, 1, (R, D))
    u, v = rng.random((R, D)), rng.random((R, D))
    b = np.zeros((R, D))
    X.relax_sample(a, u, b)
    L = rng.normal(0, 1, R)
    rw = np.full(R, 1 / R)
    ctx = rng.normal(0, 1, (R, C))
    phi = rng.normal(0, 0.5, X.relax_size(D, C, H))

    def variance(p):
        ga = np.zeros((R, D))
        X.relax_bwd(a, u, v, b, L, rw, ctx, p, H, ga, np.zeros_like(p), False)
        return float(((ga / rw[:, None]) ** 2 * rw[:, None]).sum())

    gphi = np.zeros_like(phi)
    X.relax_bwd(a, u, v, b, L, rw, ctx, phi, H, np.zeros((R, D)), gphi, True)
    eps = 1e-6
    for i in range(len(phi)):
        p1, p2 = phi.copy(), phi.copy()
        p1[i] += eps
        p2[i] -= eps
        fd = (variance(p1) - variance(p2)) / (2 * eps)
        assert abs(fd - gphi[i]) <= 1e-6 * max(1.0, abs(fd)), (i, fd, gphi[i])


def test_relax_categorical_variance_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    R, K, G, C, H = 4, 3, 2, 2, 3
    D = K * G
    a = rng.normal(0, 1, (R, D))
    u, v = rng.random((R, D)), rng.random((R, D))
    b = np.zeros((R, D))
    X.relax_categorical_sample(a, u, K, b)
    L = rng.normal(0, 1, R)
    rw = np.full(R, 1 / R)
    ctx = rng.normal(0, 1, (R, C))
    phi = rng.normal(0, 0.5, X.relax_size(D, C, H))

    def variance(p):
        ga = np.zeros((R, D))
        X.relax_categorical_bwd(a, u, v, b, L, rw, ctx, p, H, K, ga, np.zeros_like(p), False)
        return float(((ga / rw[:, None]) ** 2 * rw[:, None]).sum())

    gphi = np.zeros_like(phi)
    X.relax_categorical_bwd(a, u, v, b, L, rw, ctx, phi, H, K, np.zeros((R, D)), gphi, True)
    for i in range(len(phi)):
        p1, p2 = phi.copy(), phi.copy()
        p1[i] += 1e-6
        p2[i] -= 1e-6
        fd = (variance(p1) - variance(p2)) / 2e-6
        assert abs(fd - gphi[i]) <= 1e-6 * max(1.0, abs(fd)), (i, fd, gphi[i])


def test_relax_training_lowers_variance():
    """Training the control variate (Adam on its variance gradient, theta held fixed) lowers
    the variance of the theta-gradient on the toy problem at theta = 0."""
    from ppl.kernels.cpu.core import adam_update

    prog = toy(theta0=0.0).compile(dtype=np.float64, estimators="relax")
    before = estimates(prog, 4000, step0=0).var()
    theta0 = prog.params["theta"].copy()
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    for t in range(1500):
        prog.grad(batch=8, seed=10 ** 6 + t)
        prog.grad_buffer[:1] = 0  # only the control variate learns here
        adam_update(prog.theta, prog.grad_buffer, m, v, 0.01, 0.9, 0.999, 1e-8, t + 1)
    assert np.array_equal(prog.params["theta"], theta0)
    after = estimates(prog, 4000, step0=1)
    # still unbiased with the trained control variate (closed form; detects a 5% bias)
    stats.assert_unbiased_tuned(prog, None, ["theta"], np.array([toy_exact(0.0)]), "relax trained", batch=1)
    print(f"RELAX toy: log10 variance at theta=0 {np.log10(before):.2f} -> {np.log10(after.var()):.2f}")
    assert after.var() < 0.5 * before


def test_rebar_tuning_moves_eta_and_temperature_and_lowers_variance():
    """REBAR's eta and temperature follow their variance gradient (model parameters held fixed)
    on a one-layer Bernoulli net, and the variance of the encoder gradient falls."""
    from ppl.kernels.cpu.core import adam_update

    X = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float64)
    with Model("rebar_tune") as m:
        x = m.input("x", 4)
        h = Bernoulli("h", logits=ppl.Affine(x, 3, name="enc"))
        m.cost("nll", ppl.bernoulli_nll(ppl.Affine(h, 4, name="dec"), target=x))
    prog = m.compile(dtype=np.float64, estimators=("rebar", {"eta": 0.2, "temperature": 2.0, "train": True}),
                     seed=3)
    prog.params["dec.W"] = 4 * prog.params["dec.W"]
    tuned = np.zeros_like(prog.theta, dtype=bool)
    for name, off, shape, _ in prog.layout.params:
        tuned[off: off + int(np.prod(shape))] = name.startswith("rebar.")

    def encoder_variance(step):
        gs = [np.concatenate([g["enc.W"].ravel(), g["enc.b"]])
              for g in (prog.grad({"x": X}, seed=s, step=step)[1] for s in range(1000))]
        return np.var(np.array(gs), axis=0).sum()

    before = encoder_variance(0)
    m_, v_ = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    for t in range(500):
        prog.grad({"x": X}, seed=10 ** 6 + t)
        prog.grad_buffer[~tuned] = 0
        adam_update(prog.theta, prog.grad_buffer, m_, v_, 0.05, 0.9, 0.999, 1e-8, t + 1)
    after = encoder_variance(1)
    eta, lam = prog.params["rebar.h.eta"][0], np.exp(prog.params["rebar.h.log_temperature"][0])
    print(f"REBAR: eta 0.20 -> {eta:.2f}, temperature 2.00 -> {lam:.2f}, encoder-gradient variance "
          f"{before:.3f} -> {after:.3f}")
    assert abs(eta - 0.2) > 0.3 and abs(lam - 2.0) > 0.3
    assert after < 0.5 * before


def test_fixed_rebar_evaluates_three_rows_per_draw_and_the_same_estimate():
    """With eta and the temperature fixed (train=False) a REBAR node expands a drawn row into 3
    configuration rows, not 5 (rows 3, 4 only serve the variance gradients), and the model
    gradient is the trained layout's on the same noise up to the SEED_EPS-scaled zero-mean terms
    those rows add (2^-20 of a relaxed-row gradient). Two REBAR layers share one row digit whose
    rows add up: 1 + 2 + 2 rows per drawn row (1 + 4 + 4 trained), not 3 x 3 (5 x 5)."""
    from ppl.kernels.cpu.rebar import CONFIGS, FIXED_CONFIGS

    X = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=np.float64)

    def build():
        with Model("rebar_rows") as m:
            x = m.input("x", 4)
            h1 = Bernoulli("h1", logits=ppl.Affine(x, 3, name="e1"))
            h2 = Bernoulli("h2", logits=ppl.Affine(h1, 2, name="e2"))
            m.cost("nll", ppl.bernoulli_nll(ppl.Affine(h2, 3, name="d2"), target=h1))
            m.cost("nll0", ppl.bernoulli_nll(ppl.Affine(h1, 4, name="d1"), target=x))
        return m
    grads = {}
    for train, rows in ((True, 1 + 2 * (CONFIGS - 1)), (False, 1 + 2 * (FIXED_CONFIGS - 1))):
        prog = build().compile(dtype=np.float64, estimators=("rebar", {"train": train}), seed=3)
        assert prog.rows_per_data_row == rows
        loss, g = prog.grad({"x": X}, seed=0)
        grads[train] = g
        if not train:
            assert all(not np.any(g[k]) for k in g if k.startswith("rebar."))
    for k, v in grads[False].items():
        if not k.startswith("rebar."):
            np.testing.assert_allclose(v, grads[True][k], rtol=0, atol=1e-5 * max(1.0, np.abs(v).max()), err_msg=k)
    assert any(np.any(grads[True][k]) for k in grads[True] if k.startswith("rebar."))


def test_rebar_trains_eta_alone_at_three_rows():
    """train='eta': 3 configuration rows per drawn row as with everything fixed, the model
    gradient that of train=False on the same noise bit for bit (so its unbiasedness is the fixed
    variant's, tested with stated power in test_rebar_rows.py), eta's variance gradient given and
    the temperature's not; any other value of train is refused with the three it takes."""
    from ppl.kernels.cpu.rebar import FIXED_CONFIGS

    X = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=np.float64)

    def build():
        with Model("rebar_eta") as m:
            x = m.input("x", 4)
            h = Bernoulli("h", logits=ppl.Affine(x, 3, name="enc"))
            m.cost("lp", ppl.log_prob(h))
            m.cost("nll", ppl.bernoulli_nll(ppl.Affine(h, 4, name="dec"), target=x))
        return m
    grads = {}
    for train in (False, "eta"):
        prog = build().compile(dtype=np.float64, estimators=("rebar", {"train": train}), seed=3)
        assert prog.rows_per_data_row == FIXED_CONFIGS
        grads[train] = prog.grad({"x": X}, seed=0)[1]
    for k, v in grads[False].items():
        if not k.startswith("rebar."):
            np.testing.assert_array_equal(grads["eta"][k], v, err_msg=k)
    assert np.all(grads["eta"]["rebar.h.eta"] != 0) and not np.any(grads["eta"]["rebar.h.log_temperature"])
    with pytest.raises(ppl.ModelError, match="train must be True, False, 'eta' .*got 'temperature'"):
        build().compile(estimators=("rebar", {"train": "temperature"}))
    # numpy's True trains both, as True does (5 rows), not eta alone
    assert build().compile(dtype=np.float64, estimators=("rebar", {"train": np.True_})).rows_per_data_row == 5


def test_price_is_exact_on_a_quadratic_and_refuses_mixing():
    """Price: for f = sum z^2 the scale gradient sigma * E[f''] = 2 sigma has no variance; the
    pathwise 2 z eps does. A layer that mixes columns makes the Hessian diagonal inexact."""
    def build():
        with Model("quad") as m:
            mu = ppl.param("mu", 2, init=np.array([0.5, -1.0]))
            s = ppl.param("s", 2, init=np.array([0.3, 0.1]))
            z = ppl.Normal("z", loc=mu, scale=ppl.softplus(s))
            m.cost("f", ppl.total(z * z))
        return m
    stats = {}
    for est in ("price", "pathwise"):
        prog = build().compile(dtype=np.float64, estimators=est)
        gs = np.array([prog.grad(batch=1, seed=i)[1]["s"] for i in range(400)])
        stats[est] = gs
    sig = np.log1p(np.exp(np.array([0.3, 0.1])))
    exact = 2 * sig / (1 + np.exp(-np.array([0.3, 0.1])))
    np.testing.assert_allclose(stats["price"], np.broadcast_to(exact, stats["price"].shape), rtol=1e-12)
    assert stats["pathwise"].var(0).min() > 1e-3
    with Model("mixing") as m:
        z = ppl.Normal("z", loc=ppl.param("mu", 2), scale=ppl.softplus(ppl.param("s", 2)))
        m.cost("f", ppl.total(ppl.tanh(ppl.Affine(z, 2, name="mix"))))
    with pytest.raises(ppl.ModelError, match="Normal 'z': estimator 'price' needs an exact Hessian diagonal"):
        m.compile(dtype=np.float64, estimators="price")


@pytest.mark.parametrize("rows", ["trained", "fixed temperature"])
def test_rebar_eta_variance_gradient_matches_finite_differences(rows):
    """d/deta of sum over drawn rows of w * |g_a|^2, with the value cotangents of the relaxed rows
    scaling with eta as the cost seeds make them (rows 1, 2: +-eta * w * df/dy); the same from
    the 3 rows of a fixed temperature (train='eta'), whose temperature gradient stays 0."""
    from ppl.kernels.cpu import rebar as Bk
    rng = np.random.default_rng(5)
    n, D, S = 3, 4, (Bk.CONFIGS if rows == "trained" else Bk.FIXED_CONFIGS)
    R = n * S
    a = np.repeat(rng.normal(0, 1, (n, D)), S, axis=0)
    u = np.repeat(rng.random((n, D)), S, axis=0)
    v = np.repeat(rng.random((n, D)), S, axis=0)
    L = rng.normal(0, 1, R)
    F = rng.normal(0, 1, (R, D))          # df/dy at each row
    rw = np.zeros(R)
    rw[::S] = 1 / n
    loglam = np.array([np.log(0.7)])
    y, dzt = np.zeros((R, D)), np.zeros((R, D))
    Bk.rebar_forward(a, u, v, 1, 1, S, S, loglam, 0.1, y, dzt)

    def run(eta, train, sa=np.empty((0, 0))):
        gs = np.zeros((R, D))
        for r0 in range(0, R, S):
            for c, f in ((1, eta), (2, -eta), (3, Bk.SEED_EPS * eta), (4, -Bk.SEED_EPS * eta))[:S - 1]:
                gs[r0 + c] = f * rw[r0] * F[r0 + c]
        ga, geta, glam = np.zeros((R, D)), np.zeros(1), np.zeros(1)
        Bk.rebar_bwd(a, sa, dzt, y, L, rw, gs, 1, 1, S, S, np.array([eta]), loglam, 0.1, ga, geta, glam, train)
        assert (glam[0] != 0) == (train and S == Bk.CONFIGS)
        return ga, geta[0]

    def variance(eta):
        ga, _ = run(eta, False)
        return sum(rw[r0] * (((ga[r0] + ga[r0 + 1] + ga[r0 + 2]) / rw[r0]) ** 2).sum() for r0 in range(0, R, S))

    for eta in (0.3, 1.2):
        fd = (variance(eta + 1e-6) - variance(eta - 1e-6)) / 2e-6
        assert abs(fd - run(eta, True)[1]) <= 1e-6 * max(1.0, abs(fd)), (eta, fd)
    # sigma(a) kept by a log_prob cost gives the same estimate
    kept = 1 / (1 + np.exp(-a))
    for train in (False, True):
        ga0, ge0 = run(0.7, train)
        ga1, ge1 = run(0.7, train, kept)
        np.testing.assert_allclose(ga1, ga0, rtol=1e-12, atol=1e-14)
        assert abs(ge1 - ge0) <= 1e-12 * max(1.0, abs(ge0))
