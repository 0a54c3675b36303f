"""Scalar math (kernels/math/scalar.py) against scipy.special, plus stability properties.

Tolerances (float64, relative, where the reference is a normal number; absolute 1e-300
where the reference underflows):
  sigmoid, log_sigmoid, softplus, sqrt1p, logistic helpers   1e-14
  norm_pdf                                                   1e-13 (exp of -x^2/2: x^2 eps)
  ndtr, log_ndtr                                             1e-12 (erfc at x/sqrt2: x^2 eps)
over a grid of |x| from 1e-8 to 1e4, dense around the branch switches (0, -10).
float32 specialisations return float32 and match float64 within 1e-5 relative.
Hypothesis properties run derandomized (a fixed example sequence).
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba import njit
from numpy.testing import assert_allclose
from scipy import special

from ppl.kernels.math import scalar as S

_pos = np.logspace(-8, 4, 700)
GRID = np.unique(np.concatenate([-_pos, [0.0], _pos, np.linspace(-12, 12, 481),
                                 -10 + np.linspace(-1e-6, 1e-6, 21)]))
PROPS = settings(max_examples=300, deadline=None, derandomize=True)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def vec(f, xs, dtype=np.float64):
    """Apply a jitted scalar function elementwise (from a jitted loop, as kernels do)."""
    return _apply(f, np.asarray(xs, dtype))


@njit
def _apply_impl(f, xs, out):
    for i in range(xs.shape[0]):
        out[i] = f(xs[i])


def _apply(f, xs):
    out = np.empty_like(xs)
    _apply_impl(f, xs, out)
    return out


def assert_rel(v, ref, rtol):
    v, ref = np.asarray(v), np.asarray(ref)
    assert np.all(np.isfinite(v))
    normal = np.abs(ref) > 1e-300
    assert_allclose(v[normal], ref[normal], rtol=rtol, atol=0)
    assert np.all(np.abs(v[~normal] - ref[~normal]) <= 1e-300)


REFERENCES = [
    ("sigmoid", S.sigmoid, special.expit, 1e-14),
    ("log_sigmoid", S.log_sigmoid, special.log_expit, 1e-14),
    ("softplus", S.softplus, lambda x: np.logaddexp(0.0, x), 1e-14),
    ("sigmoid_grad", S.sigmoid_grad, lambda x: special.expit(x) * special.expit(-x), 1e-14),
    ("sqrt1p", S.sqrt1p, lambda z: np.sqrt(1 + z * z), 1e-14),
    ("sqrt1p_grad", S.sqrt1p_grad, lambda z: z / np.sqrt(1 + z * z), 1e-14),
    ("norm_pdf", S.norm_pdf, lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi), 1e-13),
    ("ndtr", S.ndtr, special.ndtr, 1e-12),
    ("log_ndtr", S.log_ndtr, special.log_ndtr, 1e-12),
]


@pytest.mark.parametrize("name,f,ref,rtol", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_against_scipy_on_grid(name, f, ref, rtol):
    got, want = vec(f, GRID), ref(GRID)
    assert_rel(got, want, rtol)


def test_extreme_arguments_stay_finite_and_exact():
    assert S.log_sigmoid(-1e4) == -1e4 and S.log_sigmoid(1e4) == 0.0
    assert S.softplus(1e4) == 1e4 and S.softplus(-1e4) == 0.0
    assert S.sigmoid(-1e4) == 0.0 and S.sigmoid(1e4) == 1.0
    assert S.sqrt1p(1e200) == 1e200 and S.sqrt1p_grad(-1e200) == -1.0  # no z^2 overflow
    for x in (-1e4, -1e3, -50.0, -20.0):
        assert_allclose(S.log_ndtr(x), special.log_ndtr(x), rtol=1e-13)
    assert S.log_ndtr(1e4) == 0.0
    assert_allclose(S.log_ndtr(-1e5), -0.5e10 - math.log(1e5) - 0.5 * math.log(2 * math.pi), rtol=1e-15)


def test_log_ndtr_grad_is_the_mills_ratio():
    x = np.concatenate([-np.logspace(-3, 4, 200), np.linspace(-12, 12, 97), np.logspace(-3, 1.5, 50)])
    g = vec(S.log_ndtr_grad, x)
    # exp(log phi - log Phi) is exact enough away from catastrophic cancellation (|x| < 30)
    m = np.abs(x) < 30
    ref = np.exp(-0.5 * x[m] ** 2 - 0.5 * np.log(2 * np.pi) - special.log_ndtr(x[m]))
    assert_allclose(g[m], ref, rtol=1e-11)
    # asymptotically phi/Phi = -x / (1 - 1/x^2 + 3/x^4 - ...) = -x - 1/x + 2/x^3 - 10/x^5 + O(x^-7)
    far = x < -100
    xf = x[far]
    assert_allclose(g[far], -xf - 1 / xf + 2 / xf**3 - 10 / xf**5, rtol=1e-13)
    # central differences of scipy's log_ndtr, across the -10 branch switch
    for x0 in (-30.0, -10.0 - 1e-9, -10.0 + 1e-9, -3.0, 0.0, 4.0):
        h = 1e-5
        fd = (special.log_ndtr(x0 + h) - special.log_ndtr(x0 - h)) / (2 * h)
        assert_allclose(S.log_ndtr_grad(x0), fd, rtol=1e-8)


def test_logit_inverts_sigmoid():
    p = np.linspace(1e-6, 1 - 1e-6, 101)
    assert_allclose(vec(S.logit, p), special.logit(p), rtol=1e-12, atol=1e-15)
    x = np.linspace(-20, 20, 81)
    assert_allclose(vec(S.logit, vec(S.sigmoid, x)), x, rtol=1e-7, atol=1e-9)
    assert S.logit(0.0) == -math.inf and S.logit(1.0) == math.inf


def test_fused_logistic_helpers_agree():
    for x in GRID[::7]:
        s, lp, lm = S.sigmoid_log_sigmoids(x)
        assert s == S.sigmoid(x) and lp == S.log_sigmoid(x) and lm == S.log_sigmoid(-x)
        e, l = S.logistic_parts(x)
        assert e == S.exp_f64(-abs(x)) and l == math.log1p(e)   # the one exp: fexp


@pytest.mark.parametrize("name,f,ref,rtol", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_float32_stays_float32_and_matches(name, f, ref, rtol):
    x32 = np.linspace(-8, 8, 161).astype(np.float32)
    v32 = vec(f, x32, np.float32)
    v64 = vec(f, x32.astype(np.float64))
    assert v32.dtype == np.float32
    sig = [s for s in f.nopython_signatures if str(s.args[0]) == "float32"]
    assert sig and str(sig[0].return_type) == "float32", f.nopython_signatures
    assert_allclose(v32, v64, rtol=1e-5, atol=1e-30)


def test_float32_log_ndtr_finite_in_far_tail():
    # Phi(-14) underflows float32 (< 1e-38); the asymptotic branch keeps log Phi finite
    for x in (-14.0, -40.0, -1e4):
        v = S.log_ndtr(np.float32(x))
        assert np.isfinite(v)
        assert_allclose(v, special.log_ndtr(x), rtol=1e-6)
        assert np.isfinite(S.log_ndtr_grad(np.float32(x)))


# ---------------------------------------------------------------- hypothesis properties


@PROPS
@given(finite)
def test_log_sigmoid_difference_is_x(x):
    assert abs((S.log_sigmoid(x) - S.log_sigmoid(-x)) - x) <= 4e-16 * max(1.0, abs(x))


@PROPS
@given(finite)
def test_softplus_difference_is_x(x):
    assert abs((S.softplus(x) - S.softplus(-x)) - x) <= 4e-16 * max(1.0, abs(x))


@PROPS
@given(finite)
def test_sigmoid_symmetry(x):
    assert abs(S.sigmoid(x) + S.sigmoid(-x) - 1.0) <= 2.3e-16
    assert 0.0 <= S.sigmoid(x) <= 1.0


@PROPS
@given(finite)
def test_softplus_positive_and_above_relu(x):
    v = S.softplus(x)
    assert math.isfinite(v) and v >= 0.0 and v >= x


@PROPS
@given(finite, finite)
def test_log_ndtr_monotone_finite_nonpositive(x, y):
    x, y = min(x, y), max(x, y)
    assume(y - x >= 1e-6 * (1.0 + abs(x)))
    lx, ly = S.log_ndtr(x), S.log_ndtr(y)
    assert math.isfinite(lx) and math.isfinite(ly)
    assert lx <= ly <= 0.0
    gx = S.log_ndtr_grad(x)
    assert math.isfinite(gx) and gx >= 0.0


@PROPS
@given(finite)
def test_log_ndtr_symmetry(x):
    # Phi(x) + Phi(-x) = 1, checked through exp where both are representable
    assume(abs(x) < 30)
    assert abs(math.exp(S.log_ndtr(x)) + math.exp(S.log_ndtr(-x)) - 1.0) <= 1e-15


@PROPS
@given(st.floats(-1e150, 1e150, allow_nan=False))
def test_sqrt1p_bounds(z):
    s = S.sqrt1p(z)
    assert s >= 1.0 and s >= abs(z)
    assert abs(S.sqrt1p_grad(z)) <= 1.0


def test_float32_log1p_unit_has_no_subnormal_work_and_keeps_nan():
    """log1p_unit_f32 (the float32 softplus / log-sigmoid core) returns e itself below 2^-24,
    where log(1 + e) = e to float32 precision, instead of running its series on s = e / (2 + e),
    whose square is subnormal for e < 1e-19 (saturated logits: the CPU's slow path). Accurate
    on both sides of the switch; a NaN stays NaN."""
    e = np.float32(np.concatenate([np.logspace(-38, 0, 400), 2.0**-24 * np.array([0.5, 1 - 2**-10, 1.0, 1 + 2**-10, 2.0])]))
    got = vec(S.log1p_unit_f32, e, np.float32)
    ref = np.log1p(e.astype(np.float64))
    assert got.dtype == np.float32
    assert np.all(np.abs(got - ref) <= 2 * np.spacing(ref.astype(np.float32)))
    small = e < 2.0**-24
    assert np.array_equal(got[small], e[small])
    assert np.isnan(S.log1p_unit_f32(np.float32(np.nan)))


def _ulps(got, ref):
    """|got - ref| in units of the last place of ref rounded to float32 (ref in float64)."""
    return np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)


def test_float64_exp_within_one_ulp_over_its_whole_range():
    """exp_f64 (the compiled float64 exp of every kernel, fexp) against exp in long double
    (x87's 64-bit mantissa: an oracle 11 bits finer than the result) on 10^6 points over
    [-745.2, 709.8], the subnormal results included: within 1 ulp of the exact value (fdlibm's
    bound); inf above ln DBL_MAX, 0 below the smallest subnormal, NaN for NaN, exp(+-0) = 1."""
    rng = np.random.default_rng(11)
    x = np.concatenate([np.linspace(-745.13, 709.78, 500_001), rng.uniform(-3, 3, 300_000),
                        rng.uniform(-745.13, -708, 100_000), rng.uniform(700, 709.78, 100_000)])
    got = vec(S.exp_f64, x)
    exact = np.exp(x.astype(np.longdouble))
    err = np.abs(got.astype(np.longdouble) - exact) / np.spacing(exact.astype(np.float64)).astype(np.longdouble)
    assert float(err.max()) <= 1.0
    special_x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.79, 710.0, 1e6, -745.14, -746.0, -1e6])
    want = np.array([np.nan, np.inf, 0.0, 1.0, 1.0, np.inf, np.inf, np.inf, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(vec(S.exp_f64, special_x), want)
    assert vec(S.exp_f64, np.array([-745.13]))[0] == 5e-324   # the smallest subnormal, rounded once
    assert np.longdouble(1.0) + np.finfo(np.longdouble).eps != 1.0 and np.finfo(np.longdouble).nmant >= 63


def test_float32_exp_and_logistic_core_within_stated_ulps():
    """The float32 polynomials against float64 NumPy on 10^6 points: exp_f32 over its whole
    range [-87, 88] within 1 ulp (stated: about 2), log1p_unit_f32 over [0, 1] within 3 ulp, and
    softplus / sigmoid built on them within 4 / 3 ulp; a polynomial coefficient off in its 5th
    digit fails this (the earlier tests allow 1e-5 relative)."""
    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(-87, 88, 400_001), rng.uniform(-2, 2, 200_000)]).astype(np.float32)
    assert _ulps(vec(S.exp_f32, x, np.float32), np.exp(x.astype(np.float64))).max() <= 1.0
    e = np.concatenate([np.linspace(0, 1, 200_001), np.logspace(-30, 0, 100_000)]).astype(np.float32)
    assert _ulps(vec(S.log1p_unit_f32, e, np.float32), np.log1p(e.astype(np.float64))).max() <= 3.0
    z = np.linspace(-80, 80, 200_001).astype(np.float32)
    z64 = z.astype(np.float64)
    assert _ulps(vec(S.softplus, z, np.float32), np.logaddexp(0.0, z64)).max() <= 4.0
    assert _ulps(vec(S.sigmoid, z, np.float32), special.expit(z64)).max() <= 3.0
