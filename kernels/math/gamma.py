"""Gamma, Beta and Dirichlet scalar numerics with implicit reparameterisation gradients, for
the CPU and CUDA kernels (scalar.py's rules: @njit(cache=True), error_model="numpy", no
allocation, helpers called by their global name for device(); the *_group helpers read and write
one (row, group) of an array like scalar_groups.py). Every function computes in float64 and
returns in the precision of its first floating argument (like): float32 callers get the float64
result rounded once (on the GPU, float64 arithmetic).

Draws: a Gamma(alpha, 1) variate is the inverse CDF of one uniform u in (0, 1),
z = P^{-1}(alpha, u), P(a, x) = gamma(a, x) / Gamma(a) the regularised lower incomplete gamma
function, Q = 1 - P; Gamma(alpha, rate) is z / rate. Beta(a, b) = G_a / (G_a + G_b) and
Dirichlet = G_k / sum_j G_j, one uniform per Gamma (Devroye 1986, ch. IX).

P and Q: the series P = x^a e^-x / Gamma(a + 1) S, S = sum_n x^n / ((a+1)...(a+n)), for x < a + 1,
else the continued fraction Q = x^a e^-x / Gamma(a) C (A&S 6.5.31, Cephes igamc's recurrence); at
most MAXIT terms. The prefactor log(x p(x)) = a log x - x - lgamma(a) (p the Gamma(a, 1) density)
is, for a >= 10, log(a / 2 pi) / 2 - s(a) + a log1pmx((x - a) / a), s the Stirling series of
lgamma, log1pmx(t) = log(1 + t) - t: the direct form cancels terms of size a log a near x = a.

Quantile: Newton in w = log z, which never underflows, on log P(a, e^w) = log u (u <= 1/2) or
log Q(a, e^w) = log(1 - u). Both are concave in w (the log of a Gamma variate has the
log-concave density e^(a w - e^w) / Gamma(a)), with slopes x p(x) / P and -x p(x) / Q, so Newton
moves monotonically onto the root after its first step. As P(a, x) <= x^a / Gamma(a + 1)
(Kummer: e^-x S = M(a, a + 1, -x) <= 1), w_s = (log u + lgamma(a + 1)) / a bounds the root from
below and guesses small z (DiDonato & Morris 1986); the Wilson-Hilferty cube
a (1 - 1/(9a) + n / (3 sqrt a))^3 (n the normal quantile of u, A&S 26.2.23) guesses larger a, and
x = -log(Q Gamma(a)) + (a - 1) log x the far upper tail. Steps stay inside the bracket found so
far (bisection in w otherwise); at most NEWTON_MAXIT of them.

Underflow: for small a, z is below the smallest normal number `tiny` of the dtype with probability
P(a, tiny) ~ tiny^a / Gamma(a + 1): 0.49 in float64 and 0.92 in float32 at a = 1e-3. gamma_icdf
returns max(e^w, tiny) (2.2e-308 / 1.2e-38; TensorFlow Probability clamps its Gamma samples alike),
so every draw is > 0 and its log-density finite; gamma_log_icdf returns w itself;
Beta and Dirichlet draws are normalised in log space (no 0 / 0) and clamped to [tiny, 1 - eps/2]
(Beta), [tiny, 1] (Dirichlet).

Implicit reparameterisation (Figurnov et al. 2018): with P(a, z(a)) = u fixed,
dz/da = -(dP/da)(a, z) / p(z; a), dP/da the series / fraction differentiated forward in a (as
TensorFlow's and JAX's igamma gradient). Divided by x p(x) the prefactors cancel, so
  series:   d log z / da = -(S (log x - psi(a + 1)) + dS/da) / a
  fraction: d log z / da = C (log x - psi(a)) + dC/da
need no exponential: finite for tiny and huge a and where z underflows. psi (digamma): the
recurrence up to x >= 10, then the asymptotic series.

Bad parameters: alpha (a, b, rate) <= 0, infinite or NaN gives NaN from every function, never a
finite number, so the caller's checks catch it; a NaN u or x gives NaN.

Cost: the series and fraction take O(sqrt a) terms near x = a (Temme's uniform asymptotic
expansion, SIAM J. Sci. Stat. Comput. 13 (1992) 1207, would make large a O(1); not used), times
the few Newton steps. References: DiDonato & Morris, ACM TOMS 12 (1986) 377; Abramowitz & Stegun
6.5, 26.2.23; Cephes igam.c; Figurnov, Mohamed & Mnih, NeurIPS 2018.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .scalar import like

MAXIT = 3000          # terms of the series / fraction: ~sqrt(2 a log(1/eps)) are needed near x = a
NEWTON_MAXIT = 20     # Newton steps of the quantile (tests/kernels/test_gamma_math.py counts them)
_EPS = _BIGINV = 2.220446049250313e-16
_BIG = 4503599627370496.0
_HALF_LOG_2PI = 0.9189385332046728
_STIRLING_MIN = 10.0  # a from which the prefactor uses the Stirling form
_NAN = math.nan
_INF = math.inf


def limits(x):
    """(tiny, 1 - eps/2) of x's precision: the smallest normal number and the largest below 1.
    Pure-Python body for uncompiled runs (the CUDA simulator); compiled code uses the overload."""
    if getattr(x, "dtype", None) == np.float32:
        return np.float32(1.1754943508222875e-38), np.float32(1.0 - 2.0**-24)
    return np.float64(2.2250738585072014e-308), np.float64(1.0 - 2.0**-53)


@overload(limits)
def _limits_overload(x):
    t = x.dtype if isinstance(x, types.Array) else x
    if isinstance(t, types.Float) and t.bitwidth == 32:
        return lambda x: (np.float32(1.1754943508222875e-38), np.float32(1.0 - 2.0**-24))
    return lambda x: (np.float64(2.2250738585072014e-308), np.float64(1.0 - 2.0**-53))


# ------------------------------------------------------------------ special functions


@njit(cache=True, error_model="numpy")
def _bad(a):
    """True for a parameter that is not a positive finite number (NaN included)."""
    return not (a > 0.0 and a < _INF)


@njit(cache=True, error_model="numpy")
def digamma(x):
    """psi(x) = d lgamma(x) / dx for x > 0 (NaN for x <= 0 or NaN): psi(x) = psi(x + n) -
    sum 1/(x + k) up to x + n >= 10, then log y - 1/(2y) - sum B_2k / (2k y^2k) (7 terms)."""
    y = np.float64(x)
    if not (y > 0.0):
        return like(x, _NAN)
    r = 0.0
    for _ in range(10):
        if y >= 10.0:
            break
        r -= 1.0 / y
        y += 1.0
    z = 1.0 / (y * y)
    tail = z * (1.0 / 12 - z * (1.0 / 120 - z * (1.0 / 252 - z * (1.0 / 240 - z * (
        1.0 / 132 - z * (691.0 / 32760 - z * (1.0 / 12)))))))
    return like(x, r + math.log(y) - 0.5 / y - tail)


@njit(cache=True, error_model="numpy")
def _stirling_corr(a):
    """lgamma(a) - ((a - 1/2) log a - a + log(2 pi)/2) for a >= 10 (7 terms: < 1e-17)."""
    z = 1.0 / (a * a)
    return (1.0 / 12 - z * (1.0 / 360 - z * (1.0 / 1260 - z * (1.0 / 1680 - z * (
        1.0 / 1188 - z * (691.0 / 360360 - z * (1.0 / 156))))))) / a


@njit(cache=True, error_model="numpy")
def _log1pmx(t, logr):
    """log(1 + t) - t, with logr = log(1 + t) given for |t| >= 1/2; for |t| < 1/2 by
    s = t / (2 + t): -t s + 2 s (s^2/3 + s^4/5 + ...) (no cancellation)."""
    if abs(t) >= 0.5:
        return logr - t
    s = t / (2.0 + t)
    s2, acc = s * s, 0.0
    for k in range(20, 0, -1):       # |s| <= 1/3: s^40 / 41 < 1e-20
        acc = s2 * (1.0 / (2 * k + 1) + acc)
    return -t * s + 2.0 * s * acc


@njit(cache=True, error_model="numpy")
def _log_xpx(a, x, w):
    """log(x p(x)) = a log x - x - lgamma(a), p the Gamma(a, 1) density, w = log x (float64)."""
    if a < _STIRLING_MIN:
        return a * w - x - math.lgamma(a)
    t = (x - a) / a
    return (0.5 * math.log(a) - _HALF_LOG_2PI - _stirling_corr(a)
            + a * _log1pmx(t, w - math.log(a)))


@njit(cache=True, error_model="numpy")
def _series(a, x):
    """(S, dS/da), S = sum_n x^n / ((a+1)...(a+n)); terms t_n = t_{n-1} x / (a + n) and
    dt_n = x / (a + n) (dt_{n-1} - t_{n-1} / (a + n)) (all dt_n <= 0: no cancellation)."""
    t, dt, s, ds = 1.0, 0.0, 1.0, 0.0
    for n in range(1, MAXIT):
        an = a + n
        r = x / an
        dt = r * (dt - t / an)
        t *= r
        s, ds = s + t, ds + dt
        if t <= _EPS * s and abs(dt) <= _EPS * abs(ds):
            break
    return s, ds


@njit(cache=True, error_model="numpy")
def _fraction(a, x):
    """(C, dC/da) with Q(a, x) = x^a e^-x / Gamma(a) C: the continued fraction of A&S 6.5.31
    by its three-term recurrence (Cephes igamc), each p_k, q_k carried with its a-derivative."""
    y, c = 1.0 - a, 0.0
    z = x + y + 1.0
    pkm2, qkm2, pkm1, qkm1 = 1.0, x, x + 1.0, z * x
    dpkm2, dqkm2, dpkm1, dqkm1 = 0.0, 0.0, 0.0, -x
    ans = pkm1 / qkm1
    dans = (dpkm1 - ans * dqkm1) / qkm1
    for _ in range(MAXIT):
        c, y, z = c + 1.0, y + 1.0, z + 2.0
        yc = y * c
        pk = pkm1 * z - pkm2 * yc
        qk = qkm1 * z - qkm2 * yc
        dpk = dpkm1 * z - pkm1 - dpkm2 * yc + pkm2 * c
        dqk = dqkm1 * z - qkm1 - dqkm2 * yc + qkm2 * c
        if qk != 0.0:
            r = pk / qk
            dr = (dpk - r * dqk) / qk
            done = abs(ans - r) <= _EPS * abs(r) and abs(dans - dr) <= _EPS * abs(dr)
            ans, dans = r, dr
            if done:
                break
        pkm2, pkm1, qkm2, qkm1, dpkm2, dpkm1, dqkm2, dqkm1 = pkm1, pk, qkm1, qk, dpkm1, dpk, dqkm1, dqk
        if abs(pk) > _BIG or abs(dpk) > _BIG or abs(dqk) > _BIG:   # rescale (the ratios stay)
            pkm2, pkm1, qkm2, qkm1 = pkm2 * _BIGINV, pkm1 * _BIGINV, qkm2 * _BIGINV, qkm1 * _BIGINV
            dpkm2, dpkm1, dqkm2, dqkm1 = dpkm2 * _BIGINV, dpkm1 * _BIGINV, dqkm2 * _BIGINV, dqkm1 * _BIGINV
    return ans, dans


@njit(cache=True, error_model="numpy")
def _log(x):
    """log x with numba's IEEE results spelled out (-inf at 0, NaN below), so the uncompiled
    source (the CUDA simulator runs it as Python, where log(0) raises) agrees."""
    if x > 0.0:
        return math.log(x)
    return -_INF if x == 0.0 else _NAN


@njit(cache=True, error_model="numpy")
def _log1mexp(l):
    """log(1 - e^l) for l <= 0 (log1p / expm1 by the side of -log 2); -inf at l = 0."""
    if l >= 0.0:
        return -_INF
    if l < -0.6931471805599453:
        return math.log1p(-math.exp(l))
    return math.log(-math.expm1(l))


@njit(cache=True, error_model="numpy")
def _log_pq(a, w):
    """(log P, log Q, log(x p(x))) at x = e^w, float64 a > 0."""
    if w == _INF:
        return 0.0, -_INF, -_INF
    x = math.exp(w)
    lxp = _log_xpx(a, x, w)
    if x < a + 1.0:
        s, _ = _series(a, x)
        lp = lxp - math.log(a) + math.log(s)
        return lp, _log1mexp(lp), lxp
    c, _ = _fraction(a, x)
    lq = lxp + math.log(c)
    return _log1mexp(lq), lq, lxp


@njit(cache=True, error_model="numpy")
def _dlogz(a, w):
    """d log z / da at fixed P(a, z) = u, z = e^w (float64; see the module docstring)."""
    x = math.exp(w)
    if x < a + 1.0:
        s, ds = _series(a, x)
        return -(s * (w - digamma(a + 1.0)) + ds) / a
    c, dc = _fraction(a, x)
    return c * (w - digamma(a)) + dc


# ------------------------------------------------------------------ P and dP/da


@njit(cache=True, error_model="numpy")
def gamma_inc(alpha, x):
    """P(alpha, x), the regularised lower incomplete gamma function (the Gamma(alpha, 1) CDF);
    0 for x <= 0, 1 for x = inf; NaN for a bad alpha or a NaN x."""
    a, xx = np.float64(alpha), np.float64(x)
    if _bad(a) or xx != xx:
        return like(alpha, _NAN)
    if xx <= 0.0:
        return like(alpha, 0.0)
    lp, lq, _ = _log_pq(a, math.log(xx))
    return like(alpha, math.exp(lp))


@njit(cache=True, error_model="numpy")
def gamma_inc_upper(alpha, x):
    """Q(alpha, x) = 1 - P(alpha, x), accurate in the upper tail (not 1 - P)."""
    a, xx = np.float64(alpha), np.float64(x)
    if _bad(a) or xx != xx:
        return like(alpha, _NAN)
    if xx <= 0.0:
        return like(alpha, 1.0)
    lp, lq, _ = _log_pq(a, math.log(xx))
    return like(alpha, math.exp(lq))


@njit(cache=True, error_model="numpy")
def gamma_inc_dalpha(alpha, x):
    """dP(alpha, x) / dalpha at fixed x (<= 0: P falls as alpha grows): the series or continued
    fraction differentiated term by term, times the prefactor; 0 for x <= 0 or x = inf."""
    a, xx = np.float64(alpha), np.float64(x)
    if _bad(a) or xx != xx:
        return like(alpha, _NAN)
    if xx <= 0.0 or xx == _INF:
        return like(alpha, 0.0)
    w = math.log(xx)
    lxp = _log_xpx(a, xx, w)
    if xx < a + 1.0:
        s, ds = _series(a, xx)
        return like(alpha, math.exp(lxp - math.log(a)) * (s * (w - digamma(a + 1.0)) + ds))
    c, dc = _fraction(a, xx)
    return like(alpha, -math.exp(lxp) * (c * (w - digamma(a)) + dc))


# ------------------------------------------------------------------ the quantile


@njit(cache=True, error_model="numpy")
def _ndtri_rough(p):
    """The standard normal quantile within 4.5e-4 (A&S 26.2.23), p in (0, 1)."""
    q = p if p < 0.5 else 1.0 - p
    t = math.sqrt(-2.0 * math.log(q))
    x = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))
    return -x if p < 0.5 else x


@njit(cache=True, error_model="numpy")
def _guess(a, u, lu, lq, ws):
    """First guess of w = log z (module docstring); ws, the lower bound, for small z."""
    w = ws
    if a >= 0.5:
        c = 1.0 / (9.0 * a)
        t = 1.0 - c + _ndtri_rough(u) * math.sqrt(c)
        if t > 0.0:
            w = max(w, math.log(a) + 3.0 * math.log(t))
    if u > 0.5:
        # Q ~ x^(a-1) e^-x / Gamma(a) for large x: x = -log(Q Gamma(a)) + (a - 1) log x
        b = -(lq + math.lgamma(a))
        if b > 1.0:
            x = b
            for _ in range(3):
                x = b + (a - 1.0) * math.log(x)
                if not (x > 1.0):
                    x = 1.0
            w = max(w, math.log(x))
    return w


@njit(cache=True, error_model="numpy")
def _log_icdf(a, u):
    """w = log P^{-1}(a, u) in float64 (Newton in w, bracketed); NaN for bad input."""
    if _bad(a) or u != u:
        return _NAN
    if u <= 0.0:
        return -_INF
    if u >= 1.0:
        return _INF
    lu = math.log(u)
    lq = math.log1p(-u)
    upper = u > 0.5
    ws = (lu + math.lgamma(a + 1.0)) / a
    lo = ws               # root >= ws (the Kummer bound)
    hi = _INF
    w = _guess(a, u, lu, lq, ws)
    for _ in range(NEWTON_MAXIT):
        lp, lqw, lxp = _log_pq(a, w)
        if upper:
            f = lqw - lq              # decreasing in w
            g = -math.exp(lxp - lqw)
            below = f > 0.0
        else:
            f = lp - lu               # increasing in w
            g = math.exp(lxp - lp)
            below = f < 0.0
        if f == 0.0:
            break
        lo, hi = (max(lo, w), hi) if below else (lo, min(hi, w))
        step = -f / g if g != 0.0 and abs(g) < _INF else _NAN
        if abs(step) <= 1e-10 * max(1.0, abs(w)):
            w += step                 # quadratic convergence: the error is now ~ step^2
            break
        wn = w + step
        if not (wn >= lo and wn <= hi):       # outside the bracket, or NaN: bisect
            wn = 0.5 * (lo + hi) if hi < _INF else w + 1.0
        w = min(wn, w + 3.0)          # no long jumps into the far upper tail (log Q from Q ~ 1)
        if hi - lo <= 4.0 * _EPS * max(1.0, abs(w)):
            break
    return w


@njit(cache=True, error_model="numpy")
def gamma_log_icdf(u, alpha):
    """log z, z = P^{-1}(alpha, u) the Gamma(alpha, 1) quantile at u in (0, 1): finite where z
    underflows (about -1.6e4 at alpha = 1e-3, u = 1e-7); -inf at u = 0, +inf at u = 1."""
    return like(u, _log_icdf(np.float64(alpha), np.float64(u)))


@njit(cache=True, error_model="numpy")
def gamma_icdf(u, alpha):
    """z = P^{-1}(alpha, u), the Gamma(alpha, 1) draw from the uniform u, clamped to at least
    the smallest normal number of u's precision (module docstring: Underflow); NaN for a bad
    alpha or a NaN u."""
    w = _log_icdf(np.float64(alpha), np.float64(u))
    if w != w:
        return like(u, _NAN)
    tiny, _ = limits(u)
    z = like(u, math.exp(w))
    return z if z > tiny else tiny


@njit(cache=True, error_model="numpy")
def gamma_log_icdf_dalpha(w, alpha):
    """d log z / dalpha at fixed u, from w = log z (the implicit gradient over z)."""
    a, ww = np.float64(alpha), np.float64(w)
    if _bad(a) or ww != ww or ww == _INF:
        return like(w, _NAN)
    return like(w, _dlogz(a, ww))        # +inf at w = -inf (u = 0)


@njit(cache=True, error_model="numpy")
def gamma_icdf_dalpha(z, alpha):
    """dz/dalpha = -(dP/dalpha)(alpha, z) / p(z; alpha) at fixed u, the implicit
    reparameterisation gradient of a Gamma(alpha, 1) draw z (for Gamma(alpha, rate), z / rate:
    d/dalpha = this / rate, d/drate = -z / rate^2). Computed as z d log z / dalpha (no
    exponentials of the prefactor); 0 at z = 0. At a clamped draw (z = tiny) it is the gradient
    of the quantile at z = tiny, of the order tiny |log tiny| / alpha."""
    a, zz = np.float64(alpha), np.float64(z)
    if _bad(a) or zz != zz:
        return like(z, _NAN)
    return like(z, zz * _dlogz(a, math.log(zz)) if zz > 0.0 else 0.0)


# ------------------------------------------------------------------ Gamma log-density


@njit(cache=True, error_model="numpy")
def gamma_log_prob(x, alpha, rate):
    """log p(x) = alpha log rate + (alpha - 1) log x - rate x - lgamma(alpha) for x > 0;
    -inf for x < 0; at x = 0: +inf (alpha < 1), log rate (alpha = 1), -inf (alpha > 1)."""
    a, b, xx = np.float64(alpha), np.float64(rate), np.float64(x)
    if _bad(a) or _bad(b) or xx != xx:
        return like(x, _NAN)
    if xx < 0.0:
        return like(x, -_INF)
    xl = (a - 1.0) * _log(xx) if a != 1.0 else 0.0
    return like(x, a * math.log(b) + xl - b * xx - math.lgamma(a))


@njit(cache=True, error_model="numpy")
def gamma_log_prob_grad(x, alpha, rate):
    """(d/dalpha, d/drate, d/dx) of gamma_log_prob: (log rate + log x - psi(alpha),
    alpha / rate - x, (alpha - 1) / x - rate); NaN for a bad parameter or x <= 0."""
    a, b, xx = np.float64(alpha), np.float64(rate), np.float64(x)
    if _bad(a) or _bad(b) or not (xx > 0.0):
        n = like(x, _NAN)
        return n, n, n
    return (like(x, math.log(b) + math.log(xx) - digamma(a)), like(x, a / b - xx),
            like(x, (a - 1.0) / xx - b))


# ------------------------------------------------------------------ Beta


@njit(cache=True, error_model="numpy")
def _beta_parts(wa, wb):
    """(x, 1 - x, x (1 - x)) of x = e^wa / (e^wa + e^wb) = sigma(wa - wb), float64, no 0/0."""
    d = wa - wb
    e = math.exp(-abs(d))
    big = 1.0 / (1.0 + e)
    small = e / (1.0 + e)
    x = big if d >= 0.0 else small
    y = small if d >= 0.0 else big
    return x, y, e / ((1.0 + e) * (1.0 + e))


@njit(cache=True, error_model="numpy")
def beta_icdf(ua, ub, a, b):
    """A Beta(a, b) draw G_a / (G_a + G_b) from the uniforms ua, ub of the two Gammas, as
    sigma(log G_a - log G_b), clamped to [tiny, 1 - eps/2] of ua's precision."""
    fa, fb = np.float64(a), np.float64(b)
    wa = _log_icdf(fa, np.float64(ua))
    wb = _log_icdf(fb, np.float64(ub))
    x, _, _ = _beta_parts(wa, wb)
    if x != x:
        return like(ua, _NAN)
    tiny, top = limits(ua)
    xc = like(ua, x)
    return min(max(xc, tiny), top)


@njit(cache=True, error_model="numpy")
def beta_icdf_grad(ua, ub, a, b):
    """(x, dx/da, dx/db) of beta_icdf at fixed ua, ub: with G_a = e^wa, x = sigma(wa - wb),
    dx/da = x (1 - x) dwa/da and dx/db = -x (1 - x) dwb/db (implicit Gamma gradients)."""
    fa, fb = np.float64(a), np.float64(b)
    wa = _log_icdf(fa, np.float64(ua))
    wb = _log_icdf(fb, np.float64(ub))
    x, _, xy = _beta_parts(wa, wb)
    if x != x:
        n = like(ua, _NAN)
        return n, n, n
    tiny, top = limits(ua)
    xc = like(ua, x)
    return (min(max(xc, tiny), top), like(ua, xy * _dlogz(fa, wa)), like(ua, -xy * _dlogz(fb, wb)))


@njit(cache=True, error_model="numpy")
def beta_log_prob(x, a, b):
    """log p(x) = (a - 1) log x + (b - 1) log(1 - x) - log B(a, b) for x in (0, 1);
    -inf outside [0, 1]; NaN for a bad a or b or a NaN x."""
    fa, fb, xx = np.float64(a), np.float64(b), np.float64(x)
    if _bad(fa) or _bad(fb) or xx != xx:
        return like(x, _NAN)
    if xx < 0.0 or xx > 1.0:
        return like(x, -_INF)
    l1 = (fa - 1.0) * _log(xx) if fa != 1.0 else 0.0
    l2 = (fb - 1.0) * (math.log1p(-xx) if xx < 0.5 else _log(1.0 - xx)) if fb != 1.0 else 0.0
    return like(x, l1 + l2 + math.lgamma(fa + fb) - math.lgamma(fa) - math.lgamma(fb))


@njit(cache=True, error_model="numpy")
def beta_log_prob_grad(x, a, b):
    """(d/da, d/db, d/dx) of beta_log_prob: (psi(a + b) - psi(a) + log x,
    psi(a + b) - psi(b) + log(1 - x), (a - 1) / x - (b - 1) / (1 - x)); NaN outside (0, 1)."""
    fa, fb, xx = np.float64(a), np.float64(b), np.float64(x)
    if _bad(fa) or _bad(fb) or not (xx > 0.0 and xx < 1.0):
        n = like(x, _NAN)
        return n, n, n
    pab = digamma(fa + fb)
    return (like(x, pab - digamma(fa) + math.log(xx)), like(x, pab - digamma(fb) + math.log1p(-xx)),
            like(x, (fa - 1.0) / xx - (fb - 1.0) / (1.0 - xx)))


# ------------------------------------------------------------------ Dirichlet (per group)
# A Dirichlet node's (R, G*K) array holds G groups of K components (scalar_groups.py's layout);
# each helper is the body for one (row, group): columns c0 .. c0 + K - 1 of row r.


@njit(cache=True, error_model="numpy")
def dirichlet_sample_group(alpha, u, r, c0, K, out):
    """out[r, c0:c0+K] = the Dirichlet(alpha) draw G_k / sum_j G_j, G_k = P^{-1}(alpha_k, u_k).
    Normalised in log space: out holds w_k - m (m the running maximum of w_k = log G_k, kept
    relative to it so that out's precision is spent near the largest components), then
    exp(.) / sum; components clamped to >= tiny. NaN everywhere if any alpha_k is bad."""
    m, s, bad = -_INF, 0.0, False
    for k in range(K):
        c = c0 + k
        w = _log_icdf(np.float64(alpha[r, c]), np.float64(u[r, c]))
        if w != w:
            bad, w = True, 0.0
        if w > m:
            if m > -_INF:
                sh = w - m
                s = s * math.exp(-sh) + 1.0
                for i in range(k):
                    out[r, c0 + i] = like(out[r, c0], np.float64(out[r, c0 + i]) - sh)
            else:
                s = 1.0
            m = w
            out[r, c] = like(out[r, c0], 0.0)
        else:
            out[r, c] = like(out[r, c0], w - m)
            s += math.exp(w - m)
    tiny, _ = limits(out[r, c0])
    for k in range(K):
        c = c0 + k
        v = like(out[r, c0], math.exp(np.float64(out[r, c])) / s)
        out[r, c] = like(out[r, c0], _NAN) if bad else (v if v > tiny else tiny)


@njit(cache=True, error_model="numpy")
def dirichlet_sample_vjp_group(alpha, u, x, gout, r, c0, K, galpha):
    """galpha[r, c] += sum_i gout_i dx_i/dalpha_c over the group, x the draw from u:
    dx_i/dalpha_j = x_i (delta_ij - x_j) dw_j/dalpha_j, so galpha_j += x_j (gout_j - sum_i
    gout_i x_i) dw_j/dalpha_j. The log-Gammas are w_j = log x_j + L with L = w_k - log x_k
    from one recomputed quantile (k, the largest component): one quantile per group."""
    k = 0
    for j in range(1, K):
        if x[r, c0 + j] > x[r, c0 + k]:
            k = j
    L = _log_icdf(np.float64(alpha[r, c0 + k]), np.float64(u[r, c0 + k])) - math.log(np.float64(x[r, c0 + k]))
    gx = 0.0
    for j in range(K):
        gx += np.float64(gout[r, c0 + j]) * np.float64(x[r, c0 + j])
    for j in range(K):
        c = c0 + j
        xj, a = np.float64(x[r, c]), np.float64(alpha[r, c])
        if _bad(a) or L != L:
            galpha[r, c] += like(galpha[r, c0], _NAN)
            continue
        wj = math.log(xj) + L
        galpha[r, c] += like(galpha[r, c0], xj * (np.float64(gout[r, c]) - gx) * _dlogz(a, wj))


@njit(cache=True, error_model="numpy")
def dirichlet_log_prob_group(alpha, x, r, c0, K):
    """log p(x) = lgamma(sum alpha) - sum lgamma(alpha_k) + sum (alpha_k - 1) log x_k over the
    group (x on the simplex; not checked); NaN if any alpha_k is bad."""
    A, s = 0.0, 0.0
    for k in range(K):
        c = c0 + k
        a = np.float64(alpha[r, c])
        if _bad(a):
            return like(x[r, c0], _NAN)
        A += a
        xl = (a - 1.0) * _log(np.float64(x[r, c])) if a != 1.0 else 0.0
        s += xl - math.lgamma(a)
    return like(x[r, c0], s + math.lgamma(A))


@njit(cache=True, error_model="numpy")
def dirichlet_log_prob_grad_group(alpha, x, g, r, c0, K, galpha, gx):
    """galpha[r, c] += g (psi(sum alpha) - psi(alpha_k) + log x_k) and
    gx[r, c] += g (alpha_k - 1) / x_k over the group (partial derivatives in the free
    coordinates: the simplex constraint is the sampler's, see dirichlet_sample_vjp_group);
    a gradient passed with 0 rows is skipped."""
    do_a, do_x = galpha.shape[0] != 0, gx.shape[0] != 0
    A = 0.0
    for k in range(K):
        A += np.float64(alpha[r, c0 + k])
    pA = digamma(A) if A > 0.0 and A < _INF else _NAN
    gg = np.float64(g)
    for k in range(K):
        c = c0 + k
        a, xk = np.float64(alpha[r, c]), np.float64(x[r, c])
        if _bad(a):
            a = _NAN
        if do_a:
            galpha[r, c] += like(galpha[r, c0], gg * (pA - digamma(a) + _log(xk)))
        if do_x:
            gx[r, c] += like(gx[r, c0], gg * (a - 1.0) / xk)
