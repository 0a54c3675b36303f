"""Counter-based random numbers: Philox4x32-10 and the noise kinds ppl samples from.

Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC'11, section 4.2 and Table 2) maps a 128-bit counter and a 64-bit key to 128 random bits.
Every value is a pure function of its address, so a batch can be filled by any number of
CPU threads or GPU threads with the same result.  The bodies here use only integer ops,
``math`` and numpy scalar types (no arrays are created), so the CUDA backend can re-jit each
``.py_func`` with ``cuda.jit(device=True)``.

Address -> philox call (the CUDA backend must reproduce this exactly)
    key     = (seed & 0xffffffff, seed >> 32)                  seed: uint64
    counter = (col // LANES, row, stream, step)                each word taken mod 2**32
    words   = philox4x32_10(*counter, *key)  ->  (w0, w1, w2, w3), uint32
    lane    = col % LANES picks the word(s) below.

    kind                       LANES   lane j uses
    uniform / logistic / gumbel
        float32                  4     u  = U32(w_j)
        float64                  2     u  = U64(w_2j, w_2j+1)
    normal (Box-Muller)
        float32                  4     pair p = j // 2: u1 = U32(w_2p), u2 = U32(w_2p+1);
                                       j even -> r cos(t), j odd -> r sin(t)
        float64                  2     u1 = U64(w0, w1), u2 = U64(w2, w3);
                                       j = 0 -> r cos(t), j = 1 -> r sin(t)
                                       with r = sqrt(-2 log u1), t = 2 pi u2 (Box & Muller 1958)

    U32(w)      = ((w >> 9) + 0.5) * 2**-23            float32, grid (2m+1) 2**-24, m < 2**23
    U64(hi, lo) = ((hi << 20 | lo >> 12) + 0.5) * 2**-52   float64, grid (2k+1) 2**-53, k < 2**52
    logistic(u) = log(u) - log1p(-u);   gumbel(u) = -log(-log(u))

Both uniform grids are symmetric about 1/2, exclude 0 and 1, and make 1 - u exact, so every
transform above is finite.  The float32 transforms use the branch-free ``log_f32``,
``log1p_f32`` and ``sincos_2pi_f32`` below (a bit cast, integer ops and short polynomials,
within a few ulp) instead of libm calls: LLVM vectorises them, and they give the same bits on any
target that evaluates float32 ops without contraction into FMA.  The float64 transforms use
``math`` (libm), so they agree across targets up to the libm's last ulp.  Uniforms are
bit-identical on every target.
The float32 Box-Muller tails stop at |z| = sqrt(48 ln 2) ~ 5.77 (float64: ~8.57).

Every function is ``@njit(cache=True, error_model="numpy")``: no Python-style division
checks, so callers' loops vectorise; ``philox4x32_10`` is also ``inline="always"`` (inlined
in numba IR), without which LLVM leaves it as a call in larger loops.  Seeds, streams, rows,
columns and steps are integers; pass a seed above 2**63 - 1 as ``np.uint64``.

Discrete draws: ``bernoulli_logit_*`` is h = [logit + logistic(u) > 0] (the noise that the
straight-through / REBAR estimators reuse); ``bernoulli_prob_*`` is the inverse CDF h = [u < p];
``categorical_gumbel_*`` is argmax_k logits_k + gumbel(row, col=k) (Gumbel-max); and
``categorical_inverse_cdf`` is the smallest k with p_0 + ... + p_k > u * sum(p).
"""
import math

import numpy as np
from numba import njit

# Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, Table 2 / Random123).
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)
PHILOX_ROUNDS = 10

# Values of one kind produced by one philox call (see the module docstring).
LANES_F32 = 4  # uniform, normal, logistic, gumbel in float32
LANES_F64 = 2  # uniform, normal, logistic, gumbel in float64

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_SHIFT20 = np.uint64(20)
_SHIFT12 = np.uint64(12)
_SHIFT9 = np.uint32(9)

_F32_HALF = np.float32(0.5)
_F32_ULP = np.float32(2.0 ** -23)
_F32_M2 = np.float32(-2.0)
_F32_TWO_PI = np.float32(2.0 * math.pi)
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)
_F64_ULP = 2.0 ** -52
_F64_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------- the bijection
@njit(cache=True, error_model="numpy", inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32 with 10 rounds on counter (c0..c3) and key (k0, k1); returns 4 uint32.

    One round (Salmon et al. 2011, eq. for Philox-4xW): with (hi, lo) = the 64-bit product,
    (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
    then the key is bumped by the Weyl constants.  Words are carried in uint64 and masked
    to 32 bits, so the products never overflow and the key wraps mod 2**32.
    """
    x0 = np.uint64(c0) & _MASK32
    x1 = np.uint64(c1) & _MASK32
    x2 = np.uint64(c2) & _MASK32
    x3 = np.uint64(c3) & _MASK32
    y0 = np.uint64(k0) & _MASK32
    y1 = np.uint64(k1) & _MASK32
    for i in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * x0
        p1 = PHILOX_M1 * x2
        x0, x1, x2, x3 = (
            ((p1 >> _SHIFT32) ^ x1 ^ y0) & _MASK32,
            p1 & _MASK32,
            ((p0 >> _SHIFT32) ^ x3 ^ y1) & _MASK32,
            p0 & _MASK32,
        )
        y0 = (y0 + PHILOX_W0) & _MASK32
        y1 = (y1 + PHILOX_W1) & _MASK32
    return np.uint32(x0), np.uint32(x1), np.uint32(x2), np.uint32(x3)


@njit(cache=True, error_model="numpy")
def seed_key(seed):
    """Philox key (k0, k1) = (low, high) 32-bit halves of a uint64 seed, as uint64 words."""
    s = np.uint64(seed)
    return s & _MASK32, (s >> _SHIFT32) & _MASK32


@njit(cache=True, error_model="numpy")
def philox_block(seed, stream, row, block, step):
    """The 4 uint32 words at counter (block, row, stream, step) under the key of `seed`."""
    k0, k1 = seed_key(seed)
    return philox4x32_10(block, row, stream, step, k0, k1)


# ------------------------------------------------------------------ words -> uniform (0, 1)
@njit(cache=True, error_model="numpy")
def uniform_f32_from_word(w):
    """U32: float32 ((w >> 9) + 1/2) 2**-23, in [2**-24, 1 - 2**-24]; exact, never 0 or 1."""
    m = np.int32(np.uint32(w) >> _SHIFT9)
    return (np.float32(m) + _F32_HALF) * _F32_ULP


@njit(cache=True, error_model="numpy")
def uniform_f64_from_words(hi, lo):
    """U64: float64 (k + 1/2) 2**-52 with k = the top 52 of the 64 bits hi:lo; in (0, 1)."""
    k = (np.uint64(hi) << _SHIFT20) | (np.uint64(lo) >> _SHIFT12)
    return (np.float64(np.int64(k)) + 0.5) * _F64_ULP



# ---------------------------------------------- branch-free float32 math (vectorisable)
_LN2_HI_F32 = np.float32(0.693359375)  # ln 2 = HI + LO, HI with 9 significant bits
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_SQRT_HALF_BITS = np.int32(0x3F3504F3)  # bits of float32 sqrt(1/2)
_MANT_MASK = np.int32(0x007FFFFF)
_SHIFT23 = np.int32(23)
_F32_TWO = np.float32(2.0)
_F32_THIRD = np.float32(1.0 / 3.0)
_F32_FIFTH = np.float32(1.0 / 5.0)
_F32_SEVENTH = np.float32(1.0 / 7.0)
_F32_NINTH = np.float32(1.0 / 9.0)
_F32_HALF_PI = np.float32(math.pi / 2.0)
_F32_FOUR = np.float32(4.0)
_S3 = np.float32(-1.0 / 6.0)
_S5 = np.float32(1.0 / 120.0)
_S7 = np.float32(-1.0 / 5040.0)
_S9 = np.float32(1.0 / 362880.0)
_C4 = np.float32(1.0 / 24.0)
_C6 = np.float32(-1.0 / 720.0)
_C8 = np.float32(1.0 / 40320.0)
_C10 = np.float32(-1.0 / 3628800.0)


@njit(cache=True, error_model="numpy")
def log_f32(x):
    """float32 natural log of a positive, finite, normal float32 x (max error ~1-2 ulp).

    x = 2**e f with f in [sqrt(1/2), sqrt(2)) read from the bits; log f = 2 atanh(s),
    s = (f - 1) / (f + 1), |s| < 0.172, by its series to s**9 (truncation < 3e-9 relative);
    e ln 2 is added in two parts so the sum stays exact for large |e|.
    """
    i = np.int32(np.float32(x).view(np.int32) - _SQRT_HALF_BITS)
    e = i >> _SHIFT23  # arithmetic shift: floor division by 2**23
    f = np.int32((i & _MANT_MASK) + _SQRT_HALF_BITS).view(np.float32)
    d = f - _F32_ONE
    s = d / (_F32_TWO + d)
    z = s * s
    r = z * (_F32_THIRD + z * (_F32_FIFTH + z * (_F32_SEVENTH + z * _F32_NINTH)))
    ef = np.float32(e)
    return ef * _LN2_HI_F32 + ((_F32_TWO * s + _F32_TWO * s * r) + ef * _LN2_LO_F32)


@njit(cache=True, error_model="numpy")
def log1p_f32(x):
    """float32 log(1 + x) for x > -1, accurate for tiny |x| (Goldberg 1991, Theorem 4).

    With w = fl(1 + x): log1p(x) = log(w) x / (w - 1), and x itself when w == 1.
    """
    x = np.float32(x)
    w = _F32_ONE + x
    m = w - _F32_ONE
    if m == _F32_ZERO:
        return x
    return log_f32(w) * (x / m)


@njit(cache=True, error_model="numpy")
def sincos_2pi_f32(u):
    """(sin 2 pi u, cos 2 pi u) in float32 for 0 <= u <= 1, branch-free (max error ~1 ulp).

    4 u = q + f with q = round(4 u) (the quadrant) and |f| <= 1/2 exactly; the Taylor
    series of sin and cos at t = f pi / 2 (|t| <= pi / 4, truncation < 2e-9) are then
    rotated by q quarter turns with swaps and sign flips.
    """
    v = np.float32(u) * _F32_FOUR
    q = np.int32(v + _F32_HALF)
    t = (v - np.float32(q)) * _F32_HALF_PI
    z = t * t
    sn = t + t * z * (_S3 + z * (_S5 + z * (_S7 + z * _S9)))
    cs = _F32_ONE - _F32_HALF * z + z * z * (_C4 + z * (_C6 + z * (_C8 + z * _C10)))
    swap = (q & 1) == 1
    a = cs if swap else sn
    b = sn if swap else cs
    sin_v = -a if (q & 2) == 2 else a
    cos_v = -b if ((q + 1) & 2) == 2 else b
    return sin_v, cos_v


# ------------------------------------------------------------- uniform -> other noise kinds
@njit(cache=True, error_model="numpy")
def logistic_from_uniform_f32(u):
    """float32 standard logistic noise logit(u) = log(u / (1 - u)): one log (1 - u is exact for
    the uniform's 24-bit grid, the quotient is rounded once)."""
    return log_f32(u / (np.float32(1.0) - u))


@njit(cache=True, error_model="numpy")
def logistic_from_uniform_f64(u):
    """float64 standard logistic noise log(u) - log1p(-u) = logit(u)."""
    return math.log(u) - math.log1p(-u)


@njit(cache=True, error_model="numpy")
def gumbel_from_uniform_f32(u):
    """float32 standard Gumbel (max) noise -log(-log(u))."""
    return -log_f32(-log_f32(u))


@njit(cache=True, error_model="numpy")
def gumbel_from_uniform_f64(u):
    """float64 standard Gumbel (max) noise -log(-log(u))."""
    return -math.log(-math.log(u))


@njit(cache=True, error_model="numpy")
def box_muller_f32(u1, u2):
    """Two independent float32 N(0, 1) from two uniforms: r (cos t, sin t), r = sqrt(-2 log u1)."""
    r = math.sqrt(_F32_M2 * log_f32(u1))
    sn, cs = sincos_2pi_f32(u2)
    return r * cs, r * sn


@njit(cache=True, error_model="numpy")
def bernoulli_from_uniform_f32(logit, u):
    """float32 1 if logit + logistic(u) > 0 else 0 (the logistic-noise Bernoulli)."""
    if np.float32(logit) + logistic_from_uniform_f32(u) > _F32_ZERO:
        return _F32_ONE
    return _F32_ZERO


@njit(cache=True, error_model="numpy")
def bernoulli_from_uniform_f64(logit, u):
    """float64 1 if logit + logistic(u) > 0 else 0 (the logistic-noise Bernoulli)."""
    if np.float64(logit) + logistic_from_uniform_f64(u) > 0.0:
        return 1.0
    return 0.0


@njit(cache=True, error_model="numpy")
def box_muller_f64(u1, u2):
    """Two independent float64 N(0, 1) from two uniforms: r (cos t, sin t), r = sqrt(-2 log u1)."""
    r = math.sqrt(-2.0 * math.log(u1))
    t = _F64_TWO_PI * u2
    return r * math.cos(t), r * math.sin(t)


@njit(cache=True, error_model="numpy")
def bernoulli_prob_from_uniform_f32(p, u):
    """float32 1 if u < p else 0 (the inverse-CDF Bernoulli), p rounded to float32 first."""
    if u < np.float32(p):
        return _F32_ONE
    return _F32_ZERO


@njit(cache=True, error_model="numpy")
def bernoulli_prob_from_uniform_f64(p, u):
    """float64 1 if u < p else 0 (the inverse-CDF Bernoulli)."""
    if u < np.float64(p):
        return 1.0
    return 0.0


# ------------------------------------------------------------------- addressed scalar draws
@njit(cache=True, error_model="numpy")
def _words(seed, stream, row, col, step, lanes):
    k0, k1 = seed_key(seed)
    return philox4x32_10(col // lanes, row, stream, step, k0, k1)


@njit(cache=True, error_model="numpy")
def _pick4(w0, w1, w2, w3, j):
    if j == 0:
        return w0
    if j == 1:
        return w1
    if j == 2:
        return w2
    return w3


@njit(cache=True, error_model="numpy")
def uniform_f32(seed, stream, row, col, step):
    """float32 U(0, 1) at (seed, stream, row, col, step); 4 lanes per philox call."""
    w0, w1, w2, w3 = _words(seed, stream, row, col, step, LANES_F32)
    return uniform_f32_from_word(_pick4(w0, w1, w2, w3, col % LANES_F32))


@njit(cache=True, error_model="numpy")
def uniform_f64(seed, stream, row, col, step):
    """float64 U(0, 1) at (seed, stream, row, col, step); 2 lanes per philox call."""
    w0, w1, w2, w3 = _words(seed, stream, row, col, step, LANES_F64)
    if col % LANES_F64 == 0:
        return uniform_f64_from_words(w0, w1)
    return uniform_f64_from_words(w2, w3)


@njit(cache=True, error_model="numpy")
def normal_f32(seed, stream, row, col, step):
    """float32 N(0, 1) by Box-Muller; 4 lanes per philox call (2 pairs)."""
    w0, w1, w2, w3 = _words(seed, stream, row, col, step, LANES_F32)
    j = col % LANES_F32
    if j < 2:
        z0, z1 = box_muller_f32(uniform_f32_from_word(w0), uniform_f32_from_word(w1))
    else:
        z0, z1 = box_muller_f32(uniform_f32_from_word(w2), uniform_f32_from_word(w3))
    if j % 2 == 0:
        return z0
    return z1


@njit(cache=True, error_model="numpy")
def normal_f64(seed, stream, row, col, step):
    """float64 N(0, 1) by Box-Muller; 2 lanes per philox call (1 pair)."""
    w0, w1, w2, w3 = _words(seed, stream, row, col, step, LANES_F64)
    z0, z1 = box_muller_f64(uniform_f64_from_words(w0, w1), uniform_f64_from_words(w2, w3))
    if col % LANES_F64 == 0:
        return z0
    return z1


@njit(cache=True, error_model="numpy")
def logistic_f32(seed, stream, row, col, step):
    """float32 standard logistic noise logit(u), u = uniform_f32 at the same address."""
    return logistic_from_uniform_f32(uniform_f32(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def logistic_f64(seed, stream, row, col, step):
    """float64 standard logistic noise logit(u), u = uniform_f64 at the same address."""
    return logistic_from_uniform_f64(uniform_f64(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def gumbel_f32(seed, stream, row, col, step):
    """float32 standard Gumbel noise -log(-log u), u = uniform_f32 at the same address."""
    return gumbel_from_uniform_f32(uniform_f32(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def gumbel_f64(seed, stream, row, col, step):
    """float64 standard Gumbel noise -log(-log u), u = uniform_f64 at the same address."""
    return gumbel_from_uniform_f64(uniform_f64(seed, stream, row, col, step))


# ------------------------------------------------------------------------- discrete draws
@njit(cache=True, error_model="numpy")
def bernoulli_logit_f32(logit, seed, stream, row, col, step):
    """float32 1 if logit + logistic_f32(address) > 0 else 0: h ~ Bernoulli(sigmoid(logit))."""
    return bernoulli_from_uniform_f32(logit, uniform_f32(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def bernoulli_logit_f64(logit, seed, stream, row, col, step):
    """float64 1 if logit + logistic_f64(address) > 0 else 0: h ~ Bernoulli(sigmoid(logit))."""
    return bernoulli_from_uniform_f64(logit, uniform_f64(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def bernoulli_prob_f32(p, seed, stream, row, col, step):
    """float32 1 if uniform_f32(address) < p else 0 (inverse CDF): h ~ Bernoulli(p)."""
    return bernoulli_prob_from_uniform_f32(p, uniform_f32(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def bernoulli_prob_f64(p, seed, stream, row, col, step):
    """float64 1 if uniform_f64(address) < p else 0 (inverse CDF): h ~ Bernoulli(p)."""
    return bernoulli_prob_from_uniform_f64(p, uniform_f64(seed, stream, row, col, step))


@njit(cache=True, error_model="numpy")
def categorical_gumbel_f32(logits, seed, stream, row, step):
    """Gumbel-max: argmax_k logits[k] + gumbel_f32(seed, stream, row, k, step) (float32 noise)."""
    best = 0
    best_v = np.float32(logits[0]) + gumbel_f32(seed, stream, row, 0, step)
    for k in range(1, logits.shape[0]):
        v = np.float32(logits[k]) + gumbel_f32(seed, stream, row, k, step)
        if v > best_v:
            best, best_v = k, v
    return best


@njit(cache=True, error_model="numpy")
def categorical_gumbel_f64(logits, seed, stream, row, step):
    """Gumbel-max: argmax_k logits[k] + gumbel_f64(seed, stream, row, k, step) (float64 noise)."""
    best = 0
    best_v = np.float64(logits[0]) + gumbel_f64(seed, stream, row, 0, step)
    for k in range(1, logits.shape[0]):
        v = np.float64(logits[k]) + gumbel_f64(seed, stream, row, k, step)
        if v > best_v:
            best, best_v = k, v
    return best


@njit(cache=True, error_model="numpy")
def categorical_inverse_cdf(probs, u):
    """Smallest k with probs[0] + ... + probs[k] > u * sum(probs) (probs >= 0, unnormalised ok).

    If rounding leaves the target at or above the running sum, the last k with probs[k] > 0
    is returned, so a zero-probability category is never drawn.
    """
    n = probs.shape[0]
    total = 0.0
    for k in range(n):
        total += probs[k]
    target = u * total
    acc = 0.0
    last = 0
    for k in range(n):
        if probs[k] > 0.0:
            last = k
            acc += probs[k]
            if acc > target:
                return k
    return last


@njit(cache=True, error_model="numpy")
def categorical_icdf_f32(probs, seed, stream, row, step):
    """Categorical draw by inverse CDF with the float32 uniform at (seed, stream, row, 0, step)."""
    return categorical_inverse_cdf(probs, uniform_f32(seed, stream, row, 0, step))


@njit(cache=True, error_model="numpy")
def categorical_icdf_f64(probs, seed, stream, row, step):
    """Categorical draw by inverse CDF with the float64 uniform at (seed, stream, row, 0, step)."""
    return categorical_inverse_cdf(probs, uniform_f64(seed, stream, row, 0, step))
