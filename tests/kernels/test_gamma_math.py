"""Gamma, Beta and Dirichlet numerics (kernels/math/gamma.py) against scipy and mpmath.

Stated bounds (float64 unless said):
  quantile          P(a, z) = u (Q(a, z) = 1 - u for u > 1/2) within 1e-12 relative, for a in
                    [1e-3, 1e4], u in [1e-7, 1 - 1e-7] wherever z is a normal number; log z
                    within 1e-12 max(1, |log z|) of scipy.special.gammaincinv; float32 draws are
                    the float64 quantile of the same float32 inputs within 1 ulp
  Newton            at most 6 evaluations of P per quantile on that grid
  dz/dalpha         within 1e-12 relative (float64) and 1e-6 (float32) of central differences
                    of the mpmath quantile at 60 digits (13 a log-spaced over [1e-3, 1e4], 7 u);
                    d log z / dalpha the same where z underflows
  dP/dalpha, psi    within 1e-12 relative of mpmath / scipy.special.psi
Distribution checks are Kolmogorov-Smirnov tests at n = 50000 draws, accepted at p > 1e-3;
each states its power by failing (p < 1e-3) on the same draws distorted: every Gamma case on a
5% error in the shape (draws of Gamma(1.05 a) from the same uniforms), and a >= 0.5 also on a 5%
error in the scale (z * 1.05). At a <= 0.1 a 5% scale error moves the CDF by less than 0.004,
which no KS test at this n detects; the KS distance needed at p = 1e-3 is ~0.0087.
"""
import math

import numpy as np
import pytest
from numba import cuda, njit
from scipy import special
from scipy import stats as sps

from ppl.kernels.math import gamma as G
from ppl.kernels.cuda.device import device

import oracles

N = 50_000
P_OK = 1e-3
TINY64 = np.finfo(np.float64).tiny
TINY32 = np.finfo(np.float32).tiny
ALPHA_GRID = np.logspace(-3, 4, 29)
U_GRID = np.concatenate([[1e-7, 1e-5, 1e-3], np.linspace(0.01, 0.99, 49), 1 - np.array([1e-3, 1e-5, 1e-7])])


@njit
def _map2(f, x, y, out):
    for i in range(x.shape[0]):
        out[i] = f(x[i], y[i])


def vec2(f, x, y, dtype=np.float64):
    x, y = np.broadcast_arrays(np.asarray(x, dtype), np.asarray(y, dtype))
    out = np.empty(x.shape, dtype)
    _map2(f, np.ascontiguousarray(x).ravel(), np.ascontiguousarray(y).ravel(), out.reshape(-1))
    return out


@njit
def _beta_draws(ua, ub, a, b, out):
    for i in range(ua.shape[0]):
        out[i] = G.beta_icdf(ua[i], ub[i], a, b)


@njit
def _dirichlet_draws(alpha, u, out):
    for r in range(u.shape[0]):
        G.dirichlet_sample_group(alpha, u, r, 0, u.shape[1], out)


def uniforms(n, dtype, seed):
    """The program's uniform grid: (k + 1/2) 2^-24 in float32, (k + 1/2) 2^-53 in float64."""
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return ((rng.integers(0, 2**23, n) + 0.5) * 2.0**-23).astype(np.float32)
    return (rng.integers(0, 2**52, n) + 0.5) * 2.0**-52


def log_gamma_cdf(w, a):
    """P(a, e^w), with P = e^(a w) / Gamma(a + 1) (1 + O(e^w)) where e^w underflows."""
    x = np.exp(w)
    return np.where(w > -700, special.gammainc(a, x), np.exp(a * w - special.gammaln(a + 1)))


# ------------------------------------------------------------------------------ quantile


def test_quantile_inverts_P_and_matches_gammaincinv():
    a, u = np.meshgrid(ALPHA_GRID, U_GRID)
    w = vec2(G.gamma_log_icdf, u, a)
    z = np.exp(w)
    ok = z > TINY64
    upper = u > 0.5
    got = np.where(upper, vec2(G.gamma_inc_upper, a, z), vec2(G.gamma_inc, a, z))
    want = np.where(upper, 1 - u, u)
    assert np.max(np.abs(got / want - 1)[ok]) < 1e-12
    sp = np.where(upper, special.gammaincc(a, z), special.gammainc(a, z))
    assert np.max(np.abs(sp / want - 1)[ok]) < 1e-12
    ref = special.gammaincinv(a, u)
    m = ok & (ref > 0)
    assert np.max((np.abs(w - np.log(np.where(m, ref, 1.0))) / np.maximum(1, np.abs(w)))[m]) < 1e-12
    assert np.all(np.isfinite(w))


def test_newton_steps_are_few(monkeypatch):
    """The quantile's P evaluations, counted on the uncompiled source (the loop the CUDA simulator
    runs) over 13 alphas x 20 u: at most 6 (measured 5: the first guesses are close)."""
    calls = [0]
    inner = G._log_pq

    def counted(a, w):
        calls[0] += 1
        return inner(a, w)

    monkeypatch.setattr(G, "_log_pq", counted)
    worst = 0
    for a in np.logspace(-3, 4, 13):
        for u in U_GRID[::4]:
            calls[0] = 0
            G._log_icdf.py_func(a, u)
            worst = max(worst, calls[0])
    assert worst <= 6


def test_float32_draws_are_rounded_float64_quantiles():
    a = np.logspace(-3, 4, 15).astype(np.float32)
    u = np.float32(U_GRID)
    A, U = np.meshgrid(a, u)
    z32 = vec2(G.gamma_icdf, U, A, np.float32)
    assert z32.dtype == np.float32
    z64 = np.maximum(vec2(G.gamma_icdf, U.astype(np.float64), A.astype(np.float64)), TINY32)
    ulp = np.spacing(z64.astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(z32 - z64) <= ulp)
    sig = [s for s in G.gamma_icdf.nopython_signatures if str(s.args[0]) == "float32"]
    assert str(sig[0].return_type) == "float32"


@pytest.mark.parametrize("dtype,tiny", [(np.float64, TINY64), (np.float32, TINY32)])
def test_tiny_alpha_underflow_is_clamped_and_finite(dtype, tiny):
    """alpha = 1e-3: the quantile is below the smallest normal number with probability
    P(a, tiny) = 0.49 (float64), 0.92 (float32); those draws are tiny itself: all draws > 0,
    their log-density and gradients finite, log z exact (gamma_log_icdf), never NaN."""
    a = dtype(1e-3)
    u = uniforms(20_000, dtype, 3)
    z = vec2(G.gamma_icdf, u, a, dtype)
    assert z.dtype == dtype and np.all(z >= tiny)
    frac = np.mean(z == tiny)
    p = math.exp(1e-3 * math.log(tiny) - special.gammaln(1.001))
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / len(u))
    w = vec2(G.gamma_log_icdf, u, a, dtype)
    assert np.all(np.isfinite(w)) and w.min() < -1e4
    assert np.all(np.isfinite(vec2(lambda_lp, z, a, dtype)))
    dz = vec2(G.gamma_icdf_dalpha, z, a, dtype)
    dw = vec2(G.gamma_log_icdf_dalpha, w, a, dtype)
    assert np.all(np.isfinite(dz)) and np.all(dz >= 0) and np.all(np.isfinite(dw))


@njit
def lambda_lp(x, a):
    return G.gamma_log_prob(x, a, a / a)


# ------------------------------------------------------------------------------ KS tests


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("a", [1e-3, 0.1, 0.5, 1.0, 3.7, 100.0, 1e4])
def test_gamma_draws_ks(a, dtype):
    """KS against scipy.stats.gamma (log space at a = 1e-3, where most draws underflow), and
    the same test failing on a 5% shape error (and a 5% scale error for a >= 0.5)."""
    u = uniforms(N, dtype, int(a * 1000) % 997)
    at = dtype(a)
    if a < 0.01:
        w = vec2(G.gamma_log_icdf, u, at, dtype).astype(np.float64)
        assert sps.kstest(w, lambda t: log_gamma_cdf(t, float(at))).pvalue > P_OK
        bad = vec2(G.gamma_log_icdf, u, dtype(1.05 * a), dtype).astype(np.float64)
        assert sps.kstest(bad, lambda t: log_gamma_cdf(t, float(at))).pvalue < P_OK
        return
    z = vec2(G.gamma_icdf, u, at, dtype).astype(np.float64)
    cdf = sps.gamma(float(at)).cdf
    assert sps.kstest(z, cdf).pvalue > P_OK
    bad = vec2(G.gamma_icdf, u, dtype(1.05 * a), dtype).astype(np.float64)
    assert sps.kstest(bad, cdf).pvalue < P_OK
    if a >= 0.5:
        assert sps.kstest(z * 1.05, cdf).pvalue < P_OK


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("a,b", [(0.5, 0.5), (2.0, 5.0), (0.1, 3.0), (50.0, 20.0)])
def test_beta_draws_ks(a, b, dtype):
    """Beta(a, b) = G_a / (G_a + G_b) against scipy.stats.beta; power: Beta(1.05 a, b) from the
    same uniforms fails."""
    ua, ub = uniforms(N, dtype, 11), uniforms(N, dtype, 12)
    x = np.empty(N, dtype)
    _beta_draws(ua, ub, dtype(a), dtype(b), x)
    assert np.all((x > 0) & (x < 1))
    cdf = sps.beta(float(dtype(a)), float(dtype(b))).cdf
    assert sps.kstest(x.astype(np.float64), cdf).pvalue > P_OK
    _beta_draws(ua, ub, dtype(1.05 * a), dtype(b), x)
    assert sps.kstest(x.astype(np.float64), cdf).pvalue < P_OK


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dirichlet_marginals_ks(dtype):
    """Dirichlet(0.3, 1.5, 4): x_k ~ Beta(alpha_k, A - alpha_k), each KS-tested; power: alpha_0
    5% too large fails on the first marginal. The rows sum to 1."""
    alpha = np.array([0.3, 1.5, 4.0])
    u = uniforms(3 * N, dtype, 21).reshape(N, 3)
    out = np.empty((N, 3), dtype)
    _dirichlet_draws(np.tile(alpha.astype(dtype), (N, 1)), u, out)
    assert np.all(out > 0)
    assert np.max(np.abs(out.astype(np.float64).sum(1) - 1)) < (1e-14 if dtype == np.float64 else 1e-6)
    A = alpha.sum()
    for k in range(3):
        assert sps.kstest(out[:, k].astype(np.float64), sps.beta(alpha[k], A - alpha[k]).cdf).pvalue > P_OK
    bad = alpha * np.array([1.05, 1.0, 1.0])
    _dirichlet_draws(np.tile(bad.astype(dtype), (N, 1)), u, out)
    assert sps.kstest(out[:, 0].astype(np.float64), sps.beta(alpha[0], A - alpha[0]).cdf).pvalue < P_OK


# ------------------------------------------------------------------------------ gradients

GRAD_ALPHAS = np.logspace(-3, 4, 13)
GRAD_US = np.array([1e-7, 1e-3, 0.1, 0.5, 0.9, 1 - 1e-3, 1 - 1e-7])


@pytest.mark.parametrize("dtype,bound", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_implicit_gradient_against_mpmath(dtype, bound):
    """dz/dalpha (where z is a normal number of dtype) and d log z/dalpha (everywhere) against
    central differences of the 60-digit quantile at the same (dtype-rounded) u, alpha.
    Measured (benchmarks/experiments/gamma_grad_accuracy.py): float64 <= 3.4e-13, float32 <= 2.4e-7."""
    worst = 0.0
    for a in GRAD_ALPHAS:
        at = dtype(a)
        for u in GRAD_US:
            ut = dtype(u)
            w = dtype(G.gamma_log_icdf(ut, at))     # numba returns a float32 result as a Python float
            d, wm = oracles.gamma_log_icdf_dalpha_mp(float(ut), float(at), float(w))
            d, wm = float(d), float(wm)
            worst = max(worst, abs(float(G.gamma_log_icdf_dalpha(w, at)) / d - 1))
            if wm > math.log(np.finfo(dtype).tiny):
                dz = dtype(G.gamma_icdf_dalpha(dtype(G.gamma_icdf(ut, at)), at))
                worst = max(worst, abs(float(dz) / (math.exp(wm) * d) - 1))
    assert worst < bound, worst


def test_gamma_inc_dalpha_and_digamma_against_mpmath():
    import mpmath as mp
    with mp.workdps(40):
        for a in (1e-3, 0.3, 1.0, 7.5, 150.0, 5000.0):
            for x in (1e-5 * a, 0.5 * a, a, a + 1.5, 2 * a + 3, 10 * a + 30):
                ref = mp.diff(lambda t: mp.gammainc(t, 0, x, regularized=True), mp.mpf(a))
                got = G.gamma_inc_dalpha(a, x)
                assert abs(got - float(ref)) <= 1e-12 * abs(float(ref)) + 1e-300, (a, x)
                assert abs(G.gamma_inc(a, x) - special.gammainc(a, x)) <= 1e-13 * special.gammainc(a, x) + 1e-300
    xs = np.concatenate([np.logspace(-4, 6, 200), [9.999, 10.0, 10.001]])
    got = np.array([G.digamma(x) for x in xs])
    assert np.max(np.abs(got - special.psi(xs)) / np.maximum(1, np.abs(special.psi(xs)))) < 1e-13


def test_gamma_log_prob_and_grad():
    rng = np.random.default_rng(5)
    x, a, b = rng.gamma(2.0, 2.0, 200) + 1e-3, np.exp(rng.normal(0, 2, 200)), np.exp(rng.normal(0, 1, 200))
    for xi, ai, bi in zip(x, a, b):
        assert abs(G.gamma_log_prob(xi, ai, bi) - sps.gamma(ai, scale=1 / bi).logpdf(xi)) < 1e-11 * max(
            1, abs(G.gamma_log_prob(xi, ai, bi)))
        ga, gb, gx = G.gamma_log_prob_grad(xi, ai, bi)
        h = 1e-6
        for g, f in ((ga, lambda t: G.gamma_log_prob(xi, ai + t, bi)), (gb, lambda t: G.gamma_log_prob(xi, ai, bi + t)),
                     (gx, lambda t: G.gamma_log_prob(xi + t, ai, bi))):
            fd = (f(h * ai) - f(-h * ai)) / (2 * h * ai) if g is ga else (f(h * 1e-2) - f(-h * 1e-2)) / (2e-2 * h)
            assert abs(g - fd) < 1e-5 * max(1, abs(g))
    assert G.gamma_log_prob(0.0, 0.5, 1.0) == np.inf and G.gamma_log_prob(0.0, 2.0, 1.0) == -np.inf
    assert G.gamma_log_prob(0.0, 1.0, 2.0) == math.log(2.0) and G.gamma_log_prob(-1.0, 2.0, 1.0) == -np.inf


def test_beta_gradients_and_log_prob():
    """dx/da, dx/db of a Beta draw by the chain rule over the implicit Gamma gradients, against
    central differences of beta_icdf (h = 1e-6 a: ~1e-9 relative) at fixed uniforms."""
    for a, b in ((1e-2, 0.7), (0.5, 0.5), (3.0, 40.0), (800.0, 5.0)):
        for ua, ub in ((0.1, 0.8), (0.5, 0.5), (0.97, 0.02)):
            x, da, db = G.beta_icdf_grad(ua, ub, a, b)
            assert x == G.beta_icdf(ua, ub, a, b)
            fa = (G.beta_icdf(ua, ub, a * (1 + 1e-6), b) - G.beta_icdf(ua, ub, a * (1 - 1e-6), b)) / (2e-6 * a)
            fb = (G.beta_icdf(ua, ub, a, b * (1 + 1e-6)) - G.beta_icdf(ua, ub, a, b * (1 - 1e-6))) / (2e-6 * b)
            scale = x * (1 - x) / min(a, b) + 1e-300
            assert abs(da - fa) < 1e-6 * max(abs(fa), scale) and abs(db - fb) < 1e-6 * max(abs(fb), scale)
    for x, a, b in ((0.3, 0.5, 2.0), (1e-8, 3.0, 0.2), (0.999, 40.0, 1.0)):
        assert abs(G.beta_log_prob(x, a, b) - sps.beta(a, b).logpdf(x)) < 1e-11 * max(1, abs(sps.beta(a, b).logpdf(x)))
        ga, gb, gx = G.beta_log_prob_grad(x, a, b)
        h = 1e-7
        assert abs(ga - (G.beta_log_prob(x, a + h, b) - G.beta_log_prob(x, a - h, b)) / (2 * h)) < 1e-6 * max(1, abs(ga))
        assert abs(gb - (G.beta_log_prob(x, a, b + h) - G.beta_log_prob(x, a, b - h)) / (2 * h)) < 1e-6 * max(1, abs(gb))
        hx = h * min(x, 1 - x)
        assert abs(gx - (G.beta_log_prob(x + hx, a, b) - G.beta_log_prob(x - hx, a, b)) / (2 * hx)) < 1e-5 * max(1, abs(gx))


@njit
def _dir_vjp(alpha, u, x, gout, galpha):
    G.dirichlet_sample_vjp_group(alpha, u, x, gout, 0, 0, u.shape[1], galpha)


@njit
def _dir_lp(alpha, x, g, galpha, gx):
    G.dirichlet_log_prob_grad_group(alpha, x, g, 0, 0, x.shape[1], galpha, gx)
    return G.dirichlet_log_prob_group(alpha, x, 0, 0, x.shape[1])


def test_dirichlet_gradients_and_log_prob():
    """The sampler's VJP against central differences of sum_i gout_i x_i(alpha); the
    log-density against scipy.stats.dirichlet and its partials against central differences."""
    alpha = np.array([[0.05, 1.5, 4.0, 300.0]])
    u = np.array([[0.9, 0.8, 0.05, 0.6]])
    gout = np.array([[0.7, -1.2, 0.4, 2.0]])
    x = np.empty_like(u)
    _dirichlet_draws(alpha, u, x)
    galpha = np.zeros_like(u)
    _dir_vjp(alpha, u, x, gout, galpha)
    for j in range(4):
        h = 1e-6 * alpha[0, j]
        xp, xm = np.empty_like(u), np.empty_like(u)
        ap, am = alpha.copy(), alpha.copy()
        ap[0, j] += h
        am[0, j] -= h
        _dirichlet_draws(ap, u, xp)
        _dirichlet_draws(am, u, xm)
        fd = ((xp - xm) * gout).sum() / (2 * h)
        assert abs(galpha[0, j] - fd) < 1e-6 * max(abs(fd), 1e-12), (j, galpha[0, j], fd)
    x = np.array([[0.1, 0.2, 0.3, 0.4]])
    alpha = np.array([[0.5, 1.0, 2.5, 7.0]])
    galpha, gx = np.zeros_like(x), np.zeros_like(x)
    lp = _dir_lp(alpha, x, 1.0, galpha, gx)
    assert abs(lp - sps.dirichlet(alpha[0]).logpdf(x[0])) < 1e-12 * abs(lp)
    for arr, grad in ((alpha, galpha), (x, gx)):
        for j in range(4):
            h = 1e-7
            p, m = arr.copy(), arr.copy()
            p[0, j] += h
            m[0, j] -= h
            z = np.zeros_like(x)
            fp = _dir_lp(p if arr is alpha else alpha, p if arr is x else x, 0.0, z, z)
            fm = _dir_lp(m if arr is alpha else alpha, m if arr is x else x, 0.0, z, z)
            assert abs(grad[0, j] - (fp - fm) / (2 * h)) < 1e-6 * max(1, abs(grad[0, j]))


# ------------------------------------------------------------------------------ bad input

BAD = [0.0, -1.0, np.nan, np.inf]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", BAD)
def test_bad_parameters_give_nan(bad, dtype):
    """alpha (a, b, rate) <= 0, NaN or inf gives NaN from every function, never a number."""
    t, one, half = dtype(bad), dtype(1.0), dtype(0.5)
    for v in (G.gamma_icdf(half, t), G.gamma_log_icdf(half, t), G.gamma_icdf_dalpha(one, t),
              G.gamma_log_icdf_dalpha(one, t), G.gamma_inc(t, one), G.gamma_inc_upper(t, one),
              G.gamma_inc_dalpha(t, one), G.gamma_log_prob(one, t, one), G.gamma_log_prob(one, one, t),
              *G.gamma_log_prob_grad(one, t, one), *G.gamma_log_prob_grad(one, one, t),
              G.beta_icdf(half, half, t, one), G.beta_icdf(half, half, one, t), *G.beta_icdf_grad(half, half, t, one),
              G.beta_log_prob(half, t, one), *G.beta_log_prob_grad(half, one, t)):
        assert np.isnan(v), v
    alpha = np.array([[1.0, bad, 2.0]], dtype)
    out = np.empty((1, 3), dtype)
    _dirichlet_draws(alpha, np.full((1, 3), 0.5, dtype), out)
    assert np.all(np.isnan(out))
    galpha, gx = np.zeros((1, 3), dtype), np.zeros((1, 3), dtype)
    assert np.isnan(_dir_lp(alpha, np.full((1, 3), dtype(1 / 3)), dtype(1.0), galpha, gx))
    assert np.isnan(galpha[0, 1]) and np.isnan(gx[0, 1])
    assert np.isnan(G.gamma_icdf(dtype(np.nan), one)) and np.isnan(G.gamma_inc(one, dtype(np.nan)))


# ------------------------------------------------------------------------------ CUDA


SCALAR_CASES = [
    ("gamma_icdf", (0.3, 2.5)), ("gamma_log_icdf", (1e-6, 0.01)), ("gamma_icdf_dalpha", (1.7, 2.5)),
    ("gamma_log_icdf_dalpha", (-30.0, 0.01)), ("gamma_inc", (2.5, 1.7)), ("gamma_inc_upper", (2.5, 9.0)),
    ("gamma_inc_dalpha", (2.5, 9.0)), ("gamma_log_prob", (1.7, 2.5, 0.8)), ("digamma", (0.3,)),
    ("beta_icdf", (0.3, 0.8, 2.0, 0.5)), ("beta_log_prob", (0.3, 2.0, 0.5)),
]
TUPLE_CASES = [("gamma_log_prob_grad", (1.7, 2.5, 0.8)), ("beta_icdf_grad", (0.3, 0.8, 2.0, 0.5)),
               ("beta_log_prob_grad", (0.3, 2.0, 0.5))]


def _kernel(dev, nargs, n):
    """A one-thread kernel writing dev(a[0], .., a[nargs-1]) (n results) to out."""
    if nargs == 1:
        def body(a):
            return dev(a[0])
    elif nargs == 2:
        def body(a):
            return dev(a[0], a[1])
    elif nargs == 3:
        def body(a):
            return dev(a[0], a[1], a[2])
    else:
        def body(a):
            return dev(a[0], a[1], a[2], a[3])
    call = cuda.jit(device=True)(body)
    if n == 1:
        @cuda.jit
        def k(a, out):
            out[0] = call(a)
    else:
        @cuda.jit
        def k(a, out):
            r0, r1, r2 = call(a)
            out[0] = r0
            out[1] = r1
            out[2] = r2
    return k


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_device_versions_agree(dtype):
    """Every function compiles through device() and gives the CPU's results (the CUDA
    simulator runs the uncompiled source: a float64 check of the same formulas)."""
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for name, args in SCALAR_CASES + TUPLE_CASES:
        cpu = getattr(G, name)
        dev = device(cpu)
        n = 1 if (name, args) in SCALAR_CASES else 3
        k = _kernel(dev, len(args), n)
        a = np.array(args, dtype)
        out = np.zeros(n, dtype)
        k[1, 1](a, out)
        want = np.atleast_1d(np.array(cpu(*[dtype(v) for v in args]), np.float64))
        np.testing.assert_allclose(out.astype(np.float64), want, rtol=rtol)
    alpha = np.array([[0.3, 1.5, 4.0]], dtype)
    u = np.array([[0.2, 0.7, 0.4]], dtype)
    want, got = np.empty((1, 3), dtype), np.zeros((1, 3), dtype)
    _dirichlet_draws(alpha, u, want)
    dsample = device(G.dirichlet_sample_group)

    @cuda.jit
    def dk(alpha, u, out):
        dsample(alpha, u, 0, 0, 3, out)

    dk[1, 1](alpha, u, got)
    np.testing.assert_allclose(got, want, rtol=rtol)
