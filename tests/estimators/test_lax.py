"""LAX for Normal nodes (ppl/estimators/lax.py, kernels/families/lax.py; Grathwohl et al. 2018).

* the formula at fixed noise against a direct NumPy implementation (rtol 1e-10): the estimate
  and phi's variance gradient (NumPy's by complex-step differentiation of the variance, exact to
  rounding), in the kernel (with and without the scale's gradient) and in a whole program;
* unbiasedness with stated power (tests/stats.py: projection ratio within 4 SE, and the estimates
  scaled by 1.05 / 0.95 must fail) against closed forms (the Normal node alone, behind a black
  box, with a control variate far from zero) and against tests/exact.py (Gauss-Hermite and
  enumeration) on stacked layers: a Bernoulli layer under disarm feeding the Normal's loc, a
  Normal layer under pathwise feeding it, and the LAX node above a Bernoulli layer under disarm;
* training phi lowers the variance; the ratio to score with a moving-average baseline is printed;
* NaN in the black box never turns finite; a non-Normal node gets a ModelError naming the node.
CUDA parity: tests/kernels/test_gpu_kernels.py (the kernel) and tests/runtime/test_cuda_program.py (a program).
"""
import math

import numba
import numpy as np
import pytest

import ppl
import stats
from exact import gradient, model_params
from ppl import Affine, Bernoulli, Model, Normal
from ppl.kernels.cpu import relax as cpu_relax
from ppl.kernels.families import lax as cpu_lax

X2 = np.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]])


@numba.njit
def bb_quad(z):
    """A black-box quadratic: E over z ~ N(mu, sigma^2) is (mu0 - 0.5)^2 + s0^2 + 0.3 (mu1^2 + s1^2)."""
    return (z[0] - 0.5) ** 2 + 0.3 * z[1] * z[1]


@numba.njit
def bb_exp(z):
    """A black box with a smooth, non-polynomial mean: exp(0.5 z0 - 0.3 z1)."""
    return math.exp(0.5 * z[0] - 0.3 * z[1])


@numba.njit
def bb_nan(z):
    return math.nan if z[0] > 0.0 else z[0] * z[0]


def softplus(s):
    return np.log1p(np.exp(s))


def single(fn=bb_quad, name="lax_single"):
    with Model(name) as m:
        mu = ppl.param("mu", 2, init=np.array([0.3, -0.5]))
        s = ppl.param("s", 2, init=np.array([0.2, -0.4]))
        z = Normal("z", loc=mu, scale=ppl.softplus(s))
        m.cost("f", ppl.blackbox(fn, [z]))
    return m


def single_exact(mu, s):
    sig, dsig = softplus(s), 1 / (1 + np.exp(-s))
    return {"mu": np.array([2 * (mu[0] - 0.5), 0.6 * mu[1]]), "s": np.array([2 * sig[0], 0.6 * sig[1]]) * dsig}


# ------------------------------------------------------------------ the formula at fixed noise
def np_cv(phi, z, ctx, H):
    """c(z, x) and dc/dz of RELAX's network, written again in NumPy (complex-safe)."""
    R, D = z.shape
    C = ctx.shape[1]
    W1 = phi[:H * D].reshape(H, D)
    U = phi[H * D:H * D + H * C].reshape(H, C)
    b1 = phi[H * D + H * C:H * D + H * C + H]
    w2 = phi[H * D + H * C + H:H * D + H * C + 2 * H]
    t = z @ W1.T + ctx @ U.T + b1
    h = np.tanh(t)
    return h @ w2 + phi[-1], (w2 * (1 - h * h)) @ W1


def np_lax(z, scale, eps, L, rw, ctx, phi, H, loc=True, sc=True):
    """Per-row LAX estimates (g_mu, g_sigma) and the variance sum_r rw (|g_mu|^2 + |g_sigma|^2)."""
    c, dc = np_cv(phi, z, ctx, H)
    d = (L - c)[:, None]
    gm = d * eps / scale + dc
    gs = d * (eps * eps - 1) / scale + dc * eps
    var = (rw[:, None] * ((gm * gm if loc else 0) + (gs * gs if sc else 0))).sum()
    return gm, gs, var


def np_phi_grad(z, scale, eps, L, rw, ctx, phi, H, loc=True, sc=True):
    """d variance / d phi by complex-step differentiation: Im V(phi + i h e_k) / h, exact to rounding."""
    out = np.empty(len(phi))
    for k in range(len(phi)):
        p = phi.astype(complex)
        p[k] += 1e-30j
        out[k] = np_lax(z, scale, eps, L, rw, ctx, p, H, loc, sc)[2].imag / 1e-30
    return out


@pytest.mark.parametrize("with_scale", [True, False])
def test_kernel_matches_numpy_at_fixed_noise(with_scale):
    rng = np.random.default_rng(0)
    R, D, C, H = 6, 3, 2, 4
    loc, scale, eps = rng.normal(size=(R, D)), rng.uniform(0.5, 2, (R, D)), rng.normal(size=(R, D))
    z = loc + scale * eps
    L, rw, ctx = rng.normal(size=R), rng.uniform(0.1, 1, R), rng.normal(size=(R, C))
    phi = rng.normal(0, 0.5, cpu_relax.relax_size(D, C, H))
    g0 = rng.normal(size=(R, D))   # the kernel accumulates
    gloc, gscale = g0.copy(), (g0.copy() if with_scale else np.empty((0, 0)))
    gphi = np.full(len(phi), 0.25)
    cpu_lax.lax_normal_bwd(z, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gphi, True)
    gm, gs, _ = np_lax(z, scale, eps, L, rw, ctx, phi, H)
    np.testing.assert_allclose(gloc - g0, rw[:, None] * gm, rtol=1e-10, atol=1e-13)
    if with_scale:
        np.testing.assert_allclose(gscale - g0, rw[:, None] * gs, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gphi - 0.25, np_phi_grad(z, scale, eps, L, rw, ctx, phi, H, True, with_scale),
                               rtol=1e-10, atol=1e-12)
    # train=False leaves gphi alone; no context (ctx with 0 rows) is the network without U
    gphi2 = np.zeros(cpu_relax.relax_size(D, 0, H))
    gloc2 = np.zeros((R, D))
    p0 = phi[np.r_[0:H * D, H * D + H * C:len(phi)]]
    cpu_lax.lax_normal_bwd(z, scale, eps, L, rw, np.empty((0, 0)), p0, H, gloc2, np.empty((0, 0)), gphi2, False)
    assert not gphi2.any()
    np.testing.assert_allclose(gloc2, rw[:, None] * np_lax(z, scale, eps, L, rw, np.zeros((R, 0)), p0, H)[0],
                               rtol=1e-10, atol=1e-13)


def with_context(fn=bb_quad, name="lax_ctx"):
    """The Normal's loc from a data input (the control variate's context) and its scale a parameter."""
    with Model(name) as m:
        x = m.input("x", 2)
        s = ppl.param("s", 2, init=np.array([0.1, -0.3]))
        z = Normal("z", loc=Affine(x, 2, name="enc"), scale=ppl.softplus(s))
        m.cost("f", ppl.blackbox(fn, [z]))
    return m


def test_program_matches_numpy_at_fixed_noise():
    """The compiled step's gradient (model parameters and phi) against NumPy's LAX at the same draws
    (z from prog.sample at the same seed, eps = (z - loc) / scale), chained through the Affine
    and the softplus by hand."""
    prog = with_context().compile(dtype=np.float64, estimators="lax", seed=2)
    H = 16
    phi = prog.params["lax.z"].copy()
    phi += np.random.default_rng(1).normal(0, 0.3, phi.shape)   # away from its initialisation
    prog.params["lax.z"] = phi
    data = {"x": X2}
    _, g = prog.grad(data, seed=4)
    smp = prog.sample(data, seed=4)
    W, b, s = prog.params["enc.W"], prog.params["enc.b"], prog.params["s"]
    loc = X2 @ W + b
    scale = np.repeat(softplus(s)[None, :], len(X2), 0)
    z = smp["z"]
    eps = (z - loc) / scale
    L = np.array([bb_quad.py_func(r) for r in z])
    rw = np.full(len(X2), 1 / len(X2))
    gm, gs, _ = np_lax(z, scale, eps, L, rw, X2, phi, H)
    np.testing.assert_allclose(g["enc.W"], X2.T @ (rw[:, None] * gm), rtol=1e-10)
    np.testing.assert_allclose(g["enc.b"], (rw[:, None] * gm).sum(0), rtol=1e-10)
    np.testing.assert_allclose(g["s"], (rw[:, None] * gs).sum(0) / (1 + np.exp(-s)), rtol=1e-10)
    np.testing.assert_allclose(g["lax.z"], np_phi_grad(z, scale, eps, L, rw, X2, phi, H), rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------ unbiasedness with stated power
@pytest.mark.parametrize("fn", [bb_quad, bb_exp], ids=["quadratic", "exp"])
def test_single_normal_unbiased(fn):
    """Closed forms: E (z0 - 0.5)^2 + 0.3 z1^2 and E exp(a.z) = exp(a.mu + |a sigma|^2 / 2). The
    control variate is set far from zero (phi ~ N(0, 1), c0 = 2): LAX is unbiased for any c."""
    prog = single(fn, "lax_single_" + fn.__name__).compile(dtype=np.float64, estimators="lax")
    rng = np.random.default_rng(3)
    phi = rng.normal(0, 1, prog.params["lax.z"].shape)
    phi[-1] = 2.0
    prog.params["lax.z"] = phi
    mu, s = prog.params["mu"].copy(), prog.params["s"].copy()
    if fn is bb_quad:
        exact = single_exact(mu, s)
    else:
        a = np.array([0.5, -0.3])
        sig, dsig = softplus(s), 1 / (1 + np.exp(-s))
        E = math.exp(a @ mu + 0.5 * ((a * sig) ** 2).sum())
        exact = {"mu": E * a, "s": E * a * a * sig * dsig}
    stats.assert_unbiased_tuned(prog, None, ["mu", "s"], stats.flat(exact, ["mu", "s"]), f"lax single {fn.__name__}",
                                batch=2)


@numba.njit
def bb_tanh_sum(z):
    return math.tanh(z[0] - 0.3) ** 2 + 0.5 * z[1] * math.sin(z[0])


def stacked(kind):
    """Two stochastic layers: 'bern' a Bernoulli h feeds the Normal z's loc; 'normal' a Normal h
    does; 'lax_above' z (LAX) feeds a Bernoulli h's logits. The black box reads z (and h)."""
    with Model("lax_stack_" + kind) as m:
        x = m.input("x", 2)
        if kind == "lax_above":
            z = Normal("z", loc=Affine(x, 2, name="zl"), scale=ppl.softplus(ppl.param("zs", 2, init=-0.2)))
            h = Bernoulli("h", logits=Affine(z, 2, name="hl"))
            m.cost("f", ppl.blackbox(bb_pair, [z, h]))
            m.cost("ent", ppl.log_prob(h))
            return m
        if kind == "bern":
            h = Bernoulli("h", logits=Affine(x, 2, name="hl"))
        else:
            h = Normal("h", loc=Affine(x, 2, name="hl"), scale=ppl.softplus(ppl.param("hs", 2, init=-0.5)))
        z = Normal("z", loc=Affine(h, 2, name="zl"), scale=ppl.softplus(ppl.param("zs", 2, init=-0.2)))
        m.cost("f", ppl.blackbox(bb_tanh_sum, [z]))
        m.cost("g", ppl.total(h * h))
    return m


@numba.njit
def bb_pair(z, h):
    return (z[0] - h[1]) ** 2 + z[1] * h[0]


STACKS = [("bern", {"h": "disarm", "z": "lax"}), ("normal", {"h": "pathwise", "z": "lax"}),
          ("lax_above", {"z": "lax", "h": "disarm"})]


@pytest.mark.parametrize("kind,est", STACKS, ids=[k for k, _ in STACKS])
def test_stacked_unbiased(kind, est):
    """Mixed estimators on stacked layers against tests/exact.py (Gauss-Hermite for the Normal
    nodes, enumeration for the Bernoulli ones, central differences), every model parameter."""
    m = stacked(kind)
    prog = m.compile(dtype=np.float64, estimators=est, seed=7)
    P = model_params(prog)
    exact = gradient(m, P, {"x": X2})
    names = list(exact)
    stats.assert_unbiased_tuned(prog, {"x": X2}, names, stats.flat(exact, names), f"lax stacked {kind} {est}")


# ------------------------------------------------------------------ variance, NaN, errors
def grad_draws(prog, n, seed0):
    return np.array([np.concatenate([g["mu"], g["s"]]) for g in (prog.grad(batch=1, seed=seed0 + i)[1]
                                                                  for i in range(n))])


def test_training_phi_lowers_the_variance():
    """Adam on phi alone (the model held fixed), 2000 steps of batch 8: the trace of the gradient's
    covariance (batch 1, 4000 draws) falls, and is compared with score and a moving-average
    baseline (warmed up for 200 steps) on the same node. The figures go to BENCHMARKS.md."""
    from ppl.kernels.cpu.core import adam_update

    prog = single().compile(dtype=np.float64, estimators="lax")
    before = grad_draws(prog, 4000, 0).var(0).sum()
    model = slice(0, 4)   # mu, s lead theta; phi follows
    assert list(prog.params)[:2] == ["mu", "s"] and prog.params["lax.z"].size == len(prog.theta) - 4
    theta0 = prog.theta[model].copy()
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    for t in range(2000):
        prog.grad(batch=8, seed=10 ** 6 + t)
        prog.grad_buffer[model] = 0
        adam_update(prog.theta, prog.grad_buffer, m, v, 0.01, 0.9, 0.999, 1e-8, t + 1)
    assert np.array_equal(prog.theta[model], theta0)
    after = grad_draws(prog, 4000, 10 ** 5).var(0).sum()
    score = single().compile(dtype=np.float64, estimators=("score", {"baseline": "moving_average"}))
    for t in range(200):
        score.grad(batch=8, seed=2 * 10 ** 6 + t)
    sc = grad_draws(score, 4000, 10 ** 5).var(0).sum()
    print(f"LAX variance (trace, batch 1): {before:.4g} untrained -> {after:.4g} after 2000 steps of phi; "
          f"score+moving average {sc:.4g}; lax trained / score = {after / sc:.3f}, untrained / score = "
          f"{before / sc:.3f}")
    assert after < 0.5 * before and after < sc
    # still unbiased with the trained control variate (closed form; detects a 5% bias)
    stats.assert_unbiased_tuned(prog, None, ["mu", "s"], stats.flat(single_exact(prog.params["mu"], prog.params["s"]),
                                                                     ["mu", "s"]), "lax trained", batch=2)


def test_nan_never_turns_finite():
    """A black box that returns NaN on some rows: the model gradient and phi's are NaN, never a number."""
    prog = single(bb_nan, "lax_nan").compile(dtype=np.float64, estimators="lax")
    _, g = prog.grad(batch=16, seed=0)
    assert np.isnan(g["mu"]).all() and np.isnan(g["s"]).all() and np.isnan(g["lax.z"]).all()
    # and in the kernel: one NaN cost row poisons its row's estimate and phi's gradient
    rng = np.random.default_rng(0)
    x, sc, eps = rng.normal(size=(3, 2)), np.ones((3, 2)), rng.normal(size=(3, 2))
    L = np.array([0.5, np.nan, 1.0])
    phi = rng.normal(0, 0.3, cpu_relax.relax_size(2, 0, 4))
    gl, gs, gp = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(len(phi))
    cpu_lax.lax_normal_bwd(x, sc, eps, L, np.full(3, 1 / 3), np.empty((0, 0)), phi, 4, gl, gs, gp, True)
    assert np.isnan(gl[1]).all() and np.isnan(gs[1]).all() and np.isfinite(gl[[0, 2]]).all()
    assert np.isnan(gp).any()


def test_a_non_normal_node_is_refused_with_the_fix():
    with Model("lax_bern") as m:
        theta = ppl.param("theta", 1, init=0.3)
        b = Bernoulli("b", logits=theta)
        m.cost("f", ppl.blackbox(bb_nan, [b]))
    with pytest.raises(ppl.ModelError, match=r"Bernoulli 'b': estimator 'lax' does not apply \(Bernoulli has no "
                                             r"LAX implementation \(Normal nodes do\); for discrete nodes use "
                                             r"'relax'\); use .*'relax_blackbox'"):
        m.compile(dtype=np.float64, estimators="lax")


def test_listed_by_ppl_list(capsys):
    """Acceptance: `ppl list` shows lax with its one-line `about` and its citation."""
    from ppl.cli import main
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("lax "))
    assert ppl.estimators["lax"].about in line
    assert 'Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void", ICLR (LAX)' in out
