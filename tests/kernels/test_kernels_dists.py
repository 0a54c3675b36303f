"""The distributions' kernels (kernels/families/bernoulli.py, probit.py, normal.py and
categorical.py: Bernoulli, probit, Normal and categorical log-probs and samplers,
straight-through, binary concrete and Gumbel-softmax, the kept-sigmoid costs and their `_rep` /
`_const` forms) against independent oracles.

* Forward kernels against NumPy / scipy.special / scipy.stats (float64, rtol 1e-12 unless
  stated).
* Backward kernels against central finite differences of their forward, float32 against
  float64 (tests/kernel_cases.py's `check_vjp`, `check_float32`); their float32 code is checked
  for double precision by tests/kernels/test_kernels_core.py.
* Stability: logits in [-1e4, 1e4] give finite values and gradients.
* Samplers: exact against the threshold / argmax rule, and their frequencies against the
  model probabilities within 5 standard errors (fixed seeds).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special, stats

from ppl.kernels.cpu import core as cpu

# against NumPy / SciPy references of transcendental formulas: 1e-9, not 1e-12; this machine now
# and then computes libm results ~1e-11 off in every process for minutes (tests/conftest.py;
# seen 3e-11 and 4.5e-11 here), and a wrong formula misses by far more
from machine import RTOL_LIBM  # noqa: E402  (this machine's libm windows; tests/machine.py)

from kernel_cases import D, G, K, M, R, _pos, _rows_out, _softmax_groups, check_float32, check_vjp


def onehot(rng, rows, groups, k, dtype=np.float64):
    x = np.zeros((rows, groups * k), dtype)
    idx = rng.integers(0, k, size=(rows, groups))
    for r in range(rows):
        for g in range(groups):
            x[r, g * k + idx[r, g]] = 1
    return x


def _bern_logprob():
    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D)), "x": rng.uniform(0.05, 0.95, size=(R, D))}

    def fwd(i):
        out = _rows_out(i["x"])
        cpu.bernoulli_log_prob(i["a"], i["x"], out)
        return out

    def bwd(i, grow, g):
        cpu.bernoulli_log_prob_bwd(i["a"], i["x"], grow, g["a"], g["x"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "x"])


def _concrete():
    def inputs(rng):
        return {
            "a": rng.normal(size=(R, D)),
            "n": special.logit(rng.uniform(size=(R, D))),
            "tau": np.array([0.7]),
        }

    def fwd(i):
        out = np.empty_like(i["a"])
        cpu.binary_concrete_sample(i["a"], i["n"], i["tau"], out)
        return out

    def bwd(i, gout, g):
        cpu.binary_concrete_bwd(i["a"], i["n"], i["tau"], fwd(i), gout, g["a"], g["tau"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "tau"])


def _probit_logprob():
    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D)), "x": rng.uniform(0.05, 0.95, size=(R, D))}

    def fwd(i):
        out = _rows_out(i["x"])
        cpu.probit_log_prob(i["a"], i["x"], out)
        return out

    def bwd(i, grow, g):
        cpu.probit_log_prob_bwd(i["a"], i["x"], grow, g["a"], g["x"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "x"])


def _st(kind):
    """Straight-through backward = VJP of the noise CDF F(a) = P(out = 1 | a) (Bengio et al. 2013)."""

    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D))}

    def fwd(i):
        return special.expit(i["a"]) if kind == "bernoulli" else special.ndtr(i["a"])

    def bwd(i, gout, g):
        if kind == "bernoulli":
            cpu.bernoulli_st_bwd(i["a"], gout, g["a"])
        else:
            cpu.probit_st_bwd(i["a"], gout, g["a"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a"])


def _normal_sample():
    def inputs(rng):
        return {"loc": rng.normal(size=(R, D)), "scale": _pos(rng, R, D), "eps": rng.normal(size=(R, D))}

    def fwd(i):
        out = np.empty_like(i["loc"])
        cpu.normal_sample(i["loc"], i["scale"], i["eps"], out)
        return out

    def bwd(i, gout, g):
        cpu.normal_sample_bwd(i["eps"], gout, g["loc"], g["scale"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["loc", "scale"])


def _normal_logprob():
    def inputs(rng):
        return {"loc": rng.normal(size=(R, D)), "scale": _pos(rng, R, D), "x": rng.normal(size=(R, D))}

    def fwd(i):
        out = _rows_out(i["x"])
        cpu.normal_log_prob(i["loc"], i["scale"], i["x"], out)
        return out

    def bwd(i, grow, g):
        cpu.normal_log_prob_bwd(i["loc"], i["scale"], i["x"], grow, g["loc"], g["scale"], g["x"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["loc", "scale", "x"])


def _cat_logprob():
    def inputs(rng):  # relaxed x that does not sum to 1 exercises the sum_k x_k term
        return {"a": rng.normal(scale=2, size=(R, D)), "x": rng.uniform(0.05, 0.95, size=(R, D))}

    def fwd(i):
        out = _rows_out(i["x"])
        cpu.categorical_log_prob(i["a"], i["x"], K, out)
        return out

    def bwd(i, grow, g):
        cpu.categorical_log_prob_bwd(i["a"], i["x"], K, grow, g["a"], g["x"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "x"])


def _gumbel_softmax():
    def inputs(rng):
        return {
            "a": rng.normal(size=(R, D)),
            "g": -np.log(-np.log(rng.uniform(size=(R, D)))),
            "tau": np.array([0.8]),
        }

    def fwd(i):
        out = np.empty_like(i["a"])
        cpu.gumbel_softmax_sample(i["a"], i["g"], i["tau"], K, out)
        return out

    def bwd(i, gout, g):
        cpu.gumbel_softmax_bwd(i["a"], i["g"], i["tau"], K, fwd(i), gout, g["a"], g["tau"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "tau"])


def _kept(keep, kept_bwd, plain):
    """A kept-sigmoid pair: the forward equals the plain kernel and also writes sigma(a), which
    the backward reads."""
    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D)), "t": rng.uniform(size=(R, D))}

    def fwd(i):
        out, ref = _rows_out(i["a"]), _rows_out(i["a"])
        keep(i["a"], i["t"], out, np.zeros_like(i["a"]))
        plain(i["a"], i["t"], ref)
        tol = 1e-13 if out.dtype == np.float64 else 1e-5   # the same function, two formulas
        assert np.allclose(out, ref, rtol=tol, atol=tol)
        return out

    def bwd(i, grow, g):
        sig = np.zeros_like(i["a"])
        keep(i["a"], i["t"], _rows_out(i["a"]), sig)
        kept_bwd(i["a"], i["t"], sig, grow, g["a"], g["t"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "t"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("keep,kept_bwd", [("bernoulli_nll_keep", "bernoulli_nll_kept_bwd"),
                                           ("bernoulli_log_prob_keep", "bernoulli_log_prob_kept_bwd")])
def test_rep_kernels_equal_the_per_row_kernels_on_repeated_logits(keep, kept_bwd, dtype):
    """The `_rep` kernels (logits once per data row, repeated on `reps` rows: a node of the data-row
    sub-graph) give the per-row kernels' costs and VJPs on the repeated logits; their kept sigma
    has one row per data row."""
    rng = np.random.default_rng(4)
    B, reps = 3, 4
    a = rng.normal(scale=2, size=(B, D)).astype(dtype)
    t = (rng.uniform(size=(B * reps, D)) < 0.5).astype(dtype)
    grow = rng.normal(size=B * reps).astype(dtype)
    ar = np.repeat(a, reps, axis=0)
    out, ref = np.zeros(B * reps, dtype), np.zeros(B * reps, dtype)
    sig, sig_ref = np.zeros((B, D), dtype), np.zeros((B * reps, D), dtype)
    getattr(cpu, keep + "_rep")(a, reps, t, out, sig)
    getattr(cpu, keep)(ar, t, ref, sig_ref)
    tol = 1e-13 if dtype == np.float64 else 2e-6   # the same sums, in another order
    assert_allclose(out, ref, rtol=tol, atol=tol)
    assert_allclose(np.repeat(sig, reps, axis=0), sig_ref, rtol=tol, atol=0)
    ga, gt = np.ones((B * reps, D), dtype), np.ones((B * reps, D), dtype)
    ga_ref, gt_ref = ga.copy(), gt.copy()
    getattr(cpu, kept_bwd + "_rep")(a, reps, t, sig, grow, ga, gt)
    getattr(cpu, kept_bwd)(ar, t, sig_ref, grow, ga_ref, gt_ref)
    assert_allclose(ga, ga_ref, rtol=tol, atol=tol)
    assert_allclose(gt, gt_ref, rtol=tol, atol=tol)
    empty = np.zeros((0, 0), dtype)   # each gradient skippable
    getattr(cpu, kept_bwd + "_rep")(a, reps, t, sig, grow, empty, gt)
    getattr(cpu, kept_bwd + "_rep")(a, reps, t, sig, grow, ga, empty)


CASES = {
    "bernoulli_log_prob": _bern_logprob(),
    "bernoulli_st": _st("bernoulli"),
    "binary_concrete": _concrete(),
    "probit_log_prob": _probit_logprob(),
    "probit_st": _st("probit"),
    "normal_sample": _normal_sample(),
    "normal_log_prob": _normal_logprob(),
    "categorical_log_prob": _cat_logprob(),
    "gumbel_softmax": _gumbel_softmax(),
    "bernoulli_nll_keep": _kept(cpu.bernoulli_nll_keep, cpu.bernoulli_nll_kept_bwd, cpu.bernoulli_nll),
    "bernoulli_log_prob_keep": _kept(cpu.bernoulli_log_prob_keep, cpu.bernoulli_log_prob_kept_bwd,
                                     cpu.bernoulli_log_prob),
}


@pytest.mark.parametrize("name", list(CASES))
def test_backward_matches_finite_differences(name):
    check_vjp(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_float32_matches_float64(name):
    """Forward and backward in float32 agree with float64 (rtol 1e-5, atol 1e-5 * scale)."""
    check_float32(CASES[name])


# ------------------------------------------------------------------ forward oracles


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["bernoulli_nll_keep", "bernoulli_log_prob_keep"])
def test_row_constant_logits_kernels_match_the_general_ones(name, dtype):
    """The `_const` kernels (logits one vector for every row, e.g. a prior) give the general
    kernel's costs on the broadcast logits, and the same kept sigma for its backward."""
    rng = np.random.default_rng(3)
    p = (3 * rng.normal(size=D)).astype(dtype)
    x = (rng.uniform(size=(R, D)) > 0.5).astype(dtype)
    out, ref = np.empty(R, dtype), np.empty(R, dtype)
    sig, sig_ref = np.empty((R, D), dtype), np.empty((R, D), dtype)
    getattr(cpu, name + "_const")(p, x, out, sig)
    getattr(cpu, name)(np.ascontiguousarray(np.broadcast_to(p, (R, D))), x, ref, sig_ref)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * D)
    np.testing.assert_allclose(sig, sig_ref, rtol=tol, atol=0)


def test_bernoulli_and_probit_log_prob_match_scipy():
    rng = np.random.default_rng(4)
    a = rng.normal(scale=3, size=(R, D))
    x = rng.integers(0, 2, size=(R, D)).astype(float)
    out = np.empty(R)
    cpu.bernoulli_log_prob(a, x, out)
    assert_allclose(out, stats.bernoulli.logpmf(x, special.expit(a)).sum(1), rtol=1e-12)
    cpu.probit_log_prob(a, x, out)
    # scipy's logpmf forms log(1 - Phi(a)), which cancels for a >> 0: hence rtol 1e-9 there
    # and 1e-12 against the exact log_ndtr form
    assert_allclose(out, stats.bernoulli.logpmf(x, special.ndtr(a)).sum(1), rtol=1e-9)
    ref = (x * special.log_ndtr(a) + (1 - x) * special.log_ndtr(-a)).sum(1)
    assert_allclose(out, ref, rtol=1e-12)
    xr = rng.uniform(size=(R, D))  # relaxed x: the same formula, linear in x
    cpu.bernoulli_log_prob(a, xr, out)
    ref = (xr * special.log_expit(a) + (1 - xr) * special.log_expit(-a)).sum(1)
    assert_allclose(out, ref, rtol=1e-12)
    cpu.probit_log_prob(a, xr, out)
    ref = (xr * special.log_ndtr(a) + (1 - xr) * special.log_ndtr(-a)).sum(1)
    assert_allclose(out, ref, rtol=1e-12)


def test_binary_samplers_rule_and_frequency():
    rng = np.random.default_rng(5)
    n = 20000
    a = np.tile(np.array([[-2.0, -0.5, 0.0, 0.7, 3.0]]), (n, 1))
    out = np.empty_like(a)
    noise = special.logit(rng.uniform(size=a.shape))  # standard logistic
    cpu.bernoulli_sample(a, noise, out)
    assert np.array_equal(out, (a + noise > 0).astype(float))
    p = special.expit(a[0])
    assert np.all(np.abs(out.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n))
    gauss = rng.normal(size=a.shape)
    cpu.probit_sample(a, gauss, out)
    assert np.array_equal(out, (a + gauss > 0).astype(float))
    p = special.ndtr(a[0])
    assert np.all(np.abs(out.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n))
    tau = np.array([0.5])
    cpu.binary_concrete_sample(a, noise, tau, out)
    assert_allclose(out, special.expit((a + noise) / 0.5), rtol=1e-13)


def test_bernoulli_sample_rep_is_the_logistic_draw_from_the_same_uniforms():
    """bernoulli_sample_rep (logits once per data row, uniform noise, u > sigma(-a)) draws what
    bernoulli_sample draws from the repeated logits and the logistic noise logit(u) of the same
    uniforms, in float64 and float32; a NaN logit gives NaN values on every drawn row of its data
    row and column, not a silent 0."""
    rng = np.random.default_rng(11)
    for dtype in (np.float64, np.float32):
        a = (3 * rng.normal(size=(40, 16))).astype(dtype)
        u = rng.uniform(size=(200, 16)).astype(dtype)
        out = np.empty((200, 16), dtype)
        cpu.bernoulli_sample_rep(a, 5, u, out)
        ref = np.empty_like(out)
        cpu.bernoulli_sample(np.repeat(a, 5, 0), special.logit(u.astype(np.float64)).astype(dtype), ref)
        assert np.array_equal(out, ref)
        a[7, 3] = np.nan
        cpu.bernoulli_sample_rep(a, 5, u, out)
        assert np.isnan(out[35:40, 3]).all() and np.isnan(out).sum() == 5


def test_normal_matches_scipy():
    rng = np.random.default_rng(6)
    loc, scale, x = rng.normal(size=(R, D)), _pos(rng, R, D), rng.normal(size=(R, D))
    out = np.empty(R)
    cpu.normal_log_prob(loc, scale, x, out)
    assert_allclose(out, stats.norm.logpdf(x, loc, scale).sum(1), rtol=1e-12)
    eps = rng.normal(size=(R, D))
    y = np.empty((R, D))
    cpu.normal_sample(loc, scale, eps, y)
    assert_allclose(y, loc + scale * eps, rtol=1e-15, atol=1e-16)  # a fused multiply-add rounds once
    cpu.gaussian_nll(loc, scale, x, out)
    assert_allclose(out, -stats.norm.logpdf(x, loc, scale).sum(1), rtol=1e-12)


def test_categorical_log_prob_and_xent_match_softmax():
    rng = np.random.default_rng(7)
    a = rng.normal(scale=2, size=(R, D))
    x = onehot(rng, R, G, K)
    out = np.empty(R)
    cpu.categorical_log_prob(a, x, K, out)
    p = _softmax_groups(a).reshape(R, G, K)
    ref = sum(stats.multinomial.logpmf(x.reshape(R, G, K)[:, g], 1, p[:, g]) for g in range(G))
    assert_allclose(out, ref, rtol=1e-12)
    t = rng.uniform(size=(R, D))
    logp = special.log_softmax(a.reshape(R, G, K), axis=2).reshape(R, D)
    cpu.categorical_log_prob(a, t, K, out)
    assert_allclose(out, (t * logp).sum(1), rtol=1e-12)
    cpu.softmax_xent(a, t, K, out)
    assert_allclose(out, -(t * logp).sum(1), rtol=1e-12)


def test_categorical_samplers_rule_and_frequency():
    rng = np.random.default_rng(8)
    n = 20000
    a = np.tile(np.array([[0.3, -1.0, 1.2, 2.0, 0.0, -3.0]]), (n, 1))
    p = _softmax_groups(a[:1])[0]
    gum = -np.log(-np.log(rng.uniform(size=a.shape)))
    out = np.empty_like(a)
    cpu.categorical_sample(a, gum, K, out)
    idx = np.argmax((a + gum).reshape(n, G, K), axis=2)
    assert np.array_equal(out.reshape(n, G, K).argmax(2), idx)
    assert np.array_equal(out.sum(1), np.full(n, G))
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(out.mean(0) - p) < 5 * se)
    u = rng.uniform(size=(n, G))
    cpu.categorical_inverse_cdf_sample(a, u, K, out)
    cdf = np.cumsum(p.reshape(G, K), axis=1)
    ref = np.stack([np.searchsorted(cdf[g], u[:, g], side="right") for g in range(G)], 1)
    assert np.array_equal(out.reshape(n, G, K).argmax(2), ref)
    assert np.array_equal(out.sum(1), np.full(n, G))
    assert np.all(np.abs(out.mean(0) - p) < 5 * se)
    # u at the top of [0, 1) never picks a zero-probability class
    a2 = np.array([[0.0, 0.0, -1e4, 0.0, -1e4, -1e4]])
    o2 = np.empty_like(a2)
    cpu.categorical_inverse_cdf_sample(a2, np.array([[1 - 1e-17, 1 - 1e-17]]), K, o2)
    assert np.array_equal(o2, [[0, 1, 0, 1, 0, 0]])


def test_gumbel_softmax_forward():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(R, D))
    gum = -np.log(-np.log(rng.uniform(size=(R, D))))
    out = np.empty_like(a)
    cpu.gumbel_softmax_sample(a, gum, np.array([0.3]), K, out)
    assert_allclose(out, _softmax_groups((a + gum) / 0.3), rtol=RTOL_LIBM)
    cpu.gumbel_softmax_sample(a, gum, 0.3, K, out)  # a plain float temperature works too
    assert_allclose(out, _softmax_groups((a + gum) / 0.3), rtol=RTOL_LIBM)


# ------------------------------------------------------------------ stability


def _extreme_logits(rng, shape):
    a = rng.uniform(-1e4, 1e4, size=shape)
    a.flat[:4] = [-1e4, 1e4, -1e4, 1e4][: a.size]
    return a


def test_extreme_logits_finite_values_and_gradients():
    rng = np.random.default_rng(12)
    a = _extreme_logits(rng, (R, D))
    xb = rng.integers(0, 2, size=(R, D)).astype(float)
    xr = rng.uniform(size=(R, D))
    grow = np.ones(R)
    z = lambda: np.zeros((R, D))
    out = np.empty(R)
    for x in (xb, xr):
        for fwd, bwd in [(cpu.bernoulli_log_prob, cpu.bernoulli_log_prob_bwd),
                         (cpu.probit_log_prob, cpu.probit_log_prob_bwd),
                         (cpu.bernoulli_nll, cpu.bernoulli_nll_bwd)]:
            fwd(a, x, out)
            assert np.all(np.isfinite(out)), fwd
            g1, g2 = z(), z()
            bwd(a, x, grow, g1, g2)
            assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2)), bwd
        for fwd, bwd in [(cpu.categorical_log_prob, cpu.categorical_log_prob_bwd),
                         (cpu.softmax_xent, cpu.softmax_xent_bwd)]:
            fwd(a, x, K, out)
            assert np.all(np.isfinite(out)), fwd
            g1, g2 = z(), z()
            bwd(a, x, K, grow, g1, g2)
            assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2)), bwd
    # exact tail values: log sigma(-1e4) = -1e4, log Phi(-1e4) = scipy's log_ndtr
    one = np.ones((1, 1))
    for fwd, ref in [(cpu.bernoulli_log_prob, special.log_expit(-1e4)),
                     (cpu.probit_log_prob, special.log_ndtr(-1e4))]:
        o = np.empty(1)
        fwd(np.full((1, 1), -1e4), one, o)
        assert_allclose(o[0], ref, rtol=1e-12)
    # relaxations and straight-through
    noise = special.logit(rng.uniform(size=(R, D)))
    gout = rng.normal(size=(R, D))
    for tau in (np.array([0.1]), np.array([2.0])):
        y = np.empty((R, D))
        cpu.binary_concrete_sample(a, noise, tau, y)
        gl, gt = z(), np.zeros(1)
        cpu.binary_concrete_bwd(a, noise, tau, y, gout, gl, gt)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(gl)) and np.isfinite(gt[0])
        gum = -np.log(-np.log(rng.uniform(size=(R, D))))
        cpu.gumbel_softmax_sample(a, gum, tau, K, y)
        gl, gt = z(), np.zeros(1)
        cpu.gumbel_softmax_bwd(a, gum, tau, K, y, gout, gl, gt)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(gl)) and np.isfinite(gt[0])
        assert_allclose(y.reshape(R, G, K).sum(2), 1.0, rtol=1e-14)
    for st in (cpu.bernoulli_st_bwd, cpu.probit_st_bwd):
        gl = z()
        st(a, gout, gl)
        assert np.all(np.isfinite(gl))
    sd, sn = _extreme_logits(rng, (R, 1)), _extreme_logits(rng, (R, M))
    cpu.nce_logistic(sd, sn, np.zeros((R, 1)), np.zeros((R, M)), out)
    gd, gn = np.zeros((R, 1)), np.zeros((R, M))
    cpu.nce_logistic_bwd(sd, sn, np.zeros((R, 1)), np.zeros((R, M)), grow, gd, gn)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(gd)) and np.all(np.isfinite(gn))
