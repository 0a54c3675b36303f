"""Float math without libm calls: exp in float32 and float64, log(1 + e) on [0, 1] and tanh in
float32, each branch-free so that a loop over it vectorises (pip's llvmlite has no vector math
library: a libm call per element costs several ns and keeps the loop scalar). scalar.py's fexp,
flog1p_unit and ftanh pick them by precision; like every scalar function they are re-jitted for
the CUDA target from their source (kernels/cuda/device.py).
"""
import numpy as np
from numba import njit

# float32 math without libm calls: pip's llvmlite has no vector math library, so a libm expf /
# log1pf costs several ns per element and stops loops from vectorising; these branch-free
# polynomials keep float32 elementwise kernels arithmetic-bound. float64 has its exp (exp_f64)
# and keeps libm for the rest.
# fastmath "contract" only: LLVM may fuse a multiply and an add into one FMA (rounded once, so
# no less accurate: the same 3-ulp maximum error of log1p(exp(-|x|)) was measured with and
# without it); the kernels' own "contract" flag does not reach these inlined bodies. Their
# loops run ~30% fewer instructions with it.
_E_LOG2E = np.float32(1.4426950408889634)
_E_MAGIC = np.float32(12582912.0)   # 1.5 * 2^23: t + _E_MAGIC rounds t to an integer, held in t's low bits
_E_LN2_HI = np.float32(0.693359375)
_E_LN2_LO = np.float32(-2.12194440e-4)
_E_LO = np.float32(-87.0)        # exp(-87) ~ 1.6e-38: still a normal float32
_E_HI, _E_OVER, _E_INF = np.float32(88.0), np.float32(88.72284), np.float32(np.inf)   # clamp; ln FLT_MAX; overflow
# exp(r) = 1 + r + r^2 q(r) on |r| <= ln 2 / 2, q of degree 4 (minimax for the relative error,
# Lawson's iteration: 3.1e-9, 0.05 ulp of float32, before rounding the coefficients)
_E_Q = (np.float32(0.49999994), np.float32(0.16666521), np.float32(0.041668389),
        np.float32(0.0083687101), np.float32(0.0013814613))


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp_f32(x):
    """float32 exp(x) (max error 0.9 ulp, tests/kernels/test_scalar_math.py) for x in [-87, 88], clamped below (no
    denormals) and in (88, ln FLT_MAX], inf above (an overflow, as in float64), NaN for NaN. x = n ln 2 + r,
    |r| <= ln 2 / 2 (Cody-Waite; n rounded by adding 1.5 * 2^23, which leaves n in the sum's low bits: no
    float-int conversions), exp(r) by a degree-6 minimax polynomial, 2^n from the exponent bits."""
    x0 = np.float32(x)
    x = min(max(x0, _E_LO), _E_HI)
    t = x * _E_LOG2E + _E_MAGIC
    n = t - _E_MAGIC
    r = (x - n * _E_LN2_HI) - n * _E_LN2_LO
    p = np.float32(1.0) + r * (np.float32(1.0) + r * (_E_Q[0] + r * (_E_Q[1] + r * (_E_Q[2] + r * (
        _E_Q[3] + r * _E_Q[4])))))
    two_n = np.int32((np.float32(t).view(np.int32) + np.int32(127)) << np.int32(23)).view(np.float32)
    return p * two_n if x0 <= _E_OVER else x0 * _E_INF   # NaN: NaN; above ln FLT_MAX: inf


# float64 exp without libm (libm's exp is a call per element, ~4.5 ns, and stops a loop from
# vectorising): fdlibm's method. x = k ln 2 + r, |r| <= ln 2 / 2 (Cody-Waite with ln 2 in two parts,
# the high one with trailing zero bits so that k ln2_hi is exact; k rounded by adding 1.5 * 2^52,
# which leaves k in the sum's low bits: no float-int conversions); exp(r) = 1 + 2 r / (2 - c) with
# c = r - r^2 P(r^2), P of degree 5 (Remez, fdlibm's coefficients: error < 1 ulp); 2^k as two factors
# built from exponent bits, so that a result near overflow (k = 1024) or subnormal (k < -1022) is
# rounded once.
_D_LOG2E = 1.4426950408889634
_D_MAGIC = 6755399441055744.0   # 1.5 * 2^52
_D_MAGIC_BITS = 4843621399236968448   # _D_MAGIC's bits as an int64
_D_LN2_HI, _D_LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_D_P = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
        -1.65339022054652515390e-06, 4.13813679705723846039e-08)
_D_OVER, _D_UNDER = 709.782712893383973096, -745.13321910194110842   # ln DBL_MAX; below: rounds to 0


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp_f64(x0):
    """float64 exp(x) without libm (max error 1 ulp against libm's, tests/kernels/test_scalar_math.py),
    branch-free so that a loop over it vectorises: inf above ln DBL_MAX, 0 below the smallest
    subnormal, subnormal results rounded once, NaN for NaN."""
    x = min(max(x0, -746.0), 710.0)
    t = x * _D_LOG2E + _D_MAGIC
    k = t - _D_MAGIC
    hi = x - k * _D_LN2_HI
    lo = k * _D_LN2_LO
    r = hi - lo
    s = r * r
    c = r - s * (_D_P[0] + s * (_D_P[1] + s * (_D_P[2] + s * (_D_P[3] + s * _D_P[4]))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    kb = np.float64(t).view(np.int64) - np.int64(_D_MAGIC_BITS)   # k, from t's low bits
    k1 = kb >> np.int64(1)
    s1 = np.int64((k1 + np.int64(1023)) << np.int64(52)).view(np.float64)
    s2 = np.int64((kb - k1 + np.int64(1023)) << np.int64(52)).view(np.float64)
    v = y * s1 * s2
    v = v if x0 <= _D_OVER else np.inf
    v = v if x0 >= _D_UNDER else 0.0
    return v if x0 == x0 else x0


# log(1 + e) = 2 s (1 + z P(z)), z = s^2 in [0, 1/9], P of degree 3 (minimax, Lawson: 4.6e-9
# relative before rounding the coefficients; the Taylor series needs degree 6 for as much)
_L1P = (np.float32(0.33333206), np.float32(0.2001085), np.float32(0.13999569), np.float32(0.14012232))
_L1P_TINY = np.float32(2.0**-24)   # below it log(1 + e) = e to float32 precision (error e^2 / 2)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def log1p_unit_f32(e):
    """float32 log(1 + e) for e in [0, 1], branch-free and without libm: log(1 + e) =
    2 atanh(s) with s = e / (2 + e) in [0, 1/3], by a minimax polynomial in s^2 (relative error
    < 5e-9 before rounding); accurate for tiny e (no cancellation), and a loop over it vectorises.
    Below 2^-24 the result is e itself, and the polynomial runs on 2^-24 instead: for a saturated
    logit (exp(-|x|) < 1e-14) s * s is a denormal, and arithmetic on denormals takes the
    CPU's slow path (a Bernoulli likelihood at logits of -50 ran 30x slower). A NaN stays NaN."""
    big = e >= _L1P_TINY
    s = (e if big else _L1P_TINY) / (np.float32(2.0) + (e if big else _L1P_TINY))
    z = s * s
    p = _L1P[0] + z * (_L1P[1] + z * (_L1P[2] + z * _L1P[3]))
    return np.float32(2.0) * s * (np.float32(1.0) + z * p) if big else e


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def tanh_f32(z):
    """float32 tanh(z) = sign(z) (1 - e) / (1 + e), e = exp(-2|z|), with the odd series
    z - z^3/3 + 2 z^5/15 - 17 z^7/315 for |z| < 0.125 (no cancellation; truncation < 1e-9
    relative). Both are computed and one selected, so loops vectorise (max error ~2 ulp)."""
    a = abs(z)
    one = np.float32(1.0)
    e = exp_f32(np.float32(-2.0) * a)
    big = (one - e) / (one + e)
    z2 = z * z
    small = a * (one + z2 * (np.float32(-1.0 / 3.0) + z2 * (np.float32(2.0 / 15.0) + z2 * np.float32(-17.0 / 315.0))))
    t = small if a < np.float32(0.125) else big
    return t if z >= np.float32(0.0) else -t
