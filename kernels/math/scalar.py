"""Scalar math shared by the CPU and CUDA kernels.

Every function here takes and returns scalars, uses only ``math`` and scalar arithmetic,
allocates nothing, and is ``@njit(cache=True)``; the CUDA target re-jits the same source
from ``.py_func`` as device functions (``kernels/cuda/device.py``), so the math is written once
for both targets. The per-group helpers (softmax groups of K columns), which also read and
write array elements, are in ``scalar_groups.py``.

Precision: a Python float literal is float64 in Numba and would silently promote float32
math to float64. Every constant is therefore written ``like(x, c)``: ``c`` cast to the
precision of ``x`` (a scalar or an array) at compile time, so float32 inputs stay float32.

``error_model="numpy"``: division by zero gives inf/nan (as on the GPU), not an exception.

Stability: the logistic functions share one ``exp(-|x|)`` and never overflow; ``log_ndtr``
switches to the asymptotic (Laplace) series of the Mills ratio for x < -10, so it is finite
and accurate down to x = -1e4 and beyond.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .poly import exp_f32, exp_f64, log1p_unit_f32, tanh_f32
from .rng import log1p_f32, log_f32

_LOG_NDTR_TAIL = -10.0  # below this, log Phi(x) uses the asymptotic series (see log_ndtr)
_TAIL_TERMS = 20  # series terms: truncation < 1e-16 relative at x = -10


def like(x, c):
    """Constant ``c`` in the floating-point precision of ``x`` (scalar or array). Compiled code
    (CPU and CUDA alike: ``overload`` registers for the generic target) gets the overload below;
    this pure-Python body runs when the source runs uncompiled, e.g. in the CUDA simulator, and
    casts the same way (a float32 NumPy scalar stays float32)."""
    if getattr(x, "dtype", None) == np.float32:
        return np.float32(c)
    return np.float64(c)


def hyper(h):
    """Value of a hyper-parameter given as a 1-element array (or a plain number).

    Arrays let a learnable hyper-parameter be a view into the parameter vector (on the GPU a
    device array, read inside the kernel). Pure-Python body: used uncompiled (simulator).
    """
    return h[0] if hasattr(h, "shape") else h


@overload(hyper)
def _hyper_overload(h):
    if isinstance(h, types.Array):
        return lambda h: h[0]
    return lambda h: h


@overload(like)
def _like_overload(x, c):
    t = x.dtype if isinstance(x, types.Array) else x
    if isinstance(t, types.Float) and t.bitwidth == 32:
        return lambda x, c: np.float32(c)
    return lambda x, c: np.float64(c)


def _by_precision(name, doc, f32, f64, py32=None, py64=None):
    """A function of one float computed by `f32` for float32 and by `f64` (libm's, or a compiled
    one) otherwise. Compiled code picks the implementation from the argument's type (an overload,
    so every numba target, CPU and CUDA, gets it); the pure-Python body (run by the CUDA
    simulator) evaluates `py64` (default `f64`), and `py32` (default `py64`) in double rounded to
    float32."""
    py64 = py64 or f64
    py32 = py32 or py64

    def f(x):
        if isinstance(x, np.float32):
            return np.float32(py32(float(x)))
        return py64(x)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc

    @overload(f)
    def _overload(x):
        single = isinstance(x, types.Float) and x.bitwidth == 32
        impl = (lambda x: f32(x)) if single else (lambda x: f64(x))
        # named after the function and the precision: every closure of this factory otherwise has
        # one qualified name, and two of them compiled by two processes could get one symbol in
        # the kernels those processes cache (kernels/cpu/noise.py, `_named`)
        impl.__name__ = impl.__qualname__ = f"{name}_{'f32' if single else 'f64'}"
        return impl

    return f


fexp = _by_precision("fexp", "exp in the precision of x (float32: exp_f32, clamped to [-87, 88]; float64: "
                     "exp_f64), without libm.", exp_f32, exp_f64,
                     py32=lambda x: math.exp(min(max(x, -87.0), 88.0)), py64=math.exp)
flog = _by_precision("flog", "log in the precision of x (float32: without libm).", log_f32, math.log)
flog1p = _by_precision("flog1p", "log1p in the precision of x (float32: without libm).", log1p_f32, math.log1p)
flog1p_unit = _by_precision("flog1p_unit", "log(1 + e) for e in [0, 1] in the precision of e (float32: "
                            "without libm, branch-free).", log1p_unit_f32, math.log1p)
ftanh = _by_precision("ftanh", "tanh in the precision of z (float32: tanh_f32, branch-free).", tanh_f32,
                      math.tanh)

# ---------------------------------------------------------------------------- logistic


@njit(cache=True, error_model="numpy")
def logistic_parts(x):
    """(e, l) with e = exp(-|x|) and l = log1p(e): the one exp every logistic function needs.

    sigmoid, log_sigmoid and softplus are all cheap rational/log expressions of these two,
    written without branches (min / max / select) so that loops over them vectorise.
    """
    e = fexp(-abs(x))
    return e, flog1p_unit(e)


@njit(cache=True, error_model="numpy")
def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)), evaluated with exp(-|x|) so it never overflows."""
    e = fexp(-abs(x))
    one = like(x, 1.0)
    return (one if x >= 0 else e) / (one + e)


@njit(cache=True, error_model="numpy")
def log_sigmoid(x):
    """log sigma(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); exact for |x| -> inf."""
    e, l = logistic_parts(x)
    return min(x, like(x, 0.0)) - l


@njit(cache=True, error_model="numpy")
def softplus(x):
    """softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    e, l = logistic_parts(x)
    return max(x, like(x, 0.0)) + l


@njit(cache=True, error_model="numpy")
def sigmoid_log_sigmoids(x):
    """(sigma(x), log sigma(x), log sigma(-x)) from a single exp.

    Used by Bernoulli log-probabilities and their gradients (log p(x|a) =
    x log sigma(a) + (1 - x) log sigma(-a), d/da = x - sigma(a)).
    """
    e, l = logistic_parts(x)
    one = like(x, 1.0)
    zero = like(x, 0.0)
    return (one if x >= 0 else e) / (one + e), min(x, zero) - l, min(-x, zero) - l


@njit(cache=True, error_model="numpy")
def sigmoid_grad(x):
    """d sigma / dx = sigma(x) sigma(-x) = e / (1 + e)^2 with e = exp(-|x|) (no cancellation).

    This is the logistic-noise density, the straight-through derivative for logistic noise (Bengio et al. 2013).
    """
    e = fexp(-abs(x))
    d = like(x, 1.0) + e
    return e / (d * d)


@njit(cache=True, error_model="numpy")
def log0(x):
    """log x of a float64 x >= 0, -inf at 0 (libm's value spelled out: the CUDA simulator's Python
    math raises there); NaN below 0 and at NaN."""
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan


@njit(cache=True, error_model="numpy")
def log1m(x):
    """log(1 - x) of a float64 x <= 1 (log1p(-x): accurate for small x), -inf at 1; NaN above 1."""
    if x < 1.0:
        return math.log1p(-x)
    return -math.inf if x == 1.0 else math.nan


@njit(cache=True, error_model="numpy")
def logit(p):
    """logit(p) = log p - log(1 - p), the inverse of sigmoid (+-inf at p = 1, 0)."""
    return flog(p) - flog1p(-p)


# ---------------------------------------------------------------------------- sqrt1p


@njit(cache=True, error_model="numpy")
def sqrt1p(z):
    """sigma(z) = sqrt(1 + z^2), the regression scale; hypot avoids overflow of z^2 for large |z|."""
    return math.hypot(like(z, 1.0), z)


@njit(cache=True, error_model="numpy")
def sqrt1p_grad(z):
    """d sqrt(1 + z^2) / dz = z / sqrt(1 + z^2); tends to sign(z), |.| < 1."""
    return z / math.hypot(like(z, 1.0), z)


# ---------------------------------------------------------------------------- normal


@njit(cache=True, error_model="numpy")
def norm_pdf(x):
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the standard normal density."""
    return fexp(like(x, -0.5) * x * x) * like(x, 0.3989422804014327)


@njit(cache=True, error_model="numpy")
def log_norm_pdf(x):
    """log phi(x) = -x^2 / 2 - log(2 pi) / 2."""
    return like(x, -0.5) * x * x - like(x, 0.9189385332046728)


@njit(cache=True, error_model="numpy")
def ndtr(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2; erfc keeps the lower tail relatively accurate."""
    return like(x, 0.5) * math.erfc(-x * like(x, 0.7071067811865476))


@njit(cache=True, error_model="numpy")
def mills_series(x):
    """S(x) = sum_n (-1)^n (2n-1)!! / x^(2n), the asymptotic series of x Phi(x) / -phi(x).

    Phi(x) ~ phi(x) / (-x) * S(x) for x -> -inf (Abramowitz & Stegun 26.2.12); Horner form
    S = 1 - z (1 - 3 z (1 - 5 z (...))) with z = 1 / x^2. Used only for x < -10.
    """
    one = like(x, 1.0)
    two = like(x, 2.0)
    z = one / (x * x)
    c = like(x, 2.0 * _TAIL_TERMS - 1.0)
    acc = one
    for _ in range(_TAIL_TERMS):
        acc = one - c * z * acc
        c -= two
    return acc


@njit(cache=True, error_model="numpy")
def log_ndtr(x):
    """log Phi(x), finite and accurate for all x (Abramowitz & Stegun 26.2.12 in the tail).

    x > 0: log1p(-Phi(-x)); -10 < x <= 0: log Phi(x);
    x <= -10: -x^2/2 - log(-x) - log(2 pi)/2 + log S(x) (the asymptotic series).
    """
    if x > 0:
        return math.log1p(-ndtr(-x))
    if x > like(x, _LOG_NDTR_TAIL):
        return math.log(ndtr(x))
    return log_norm_pdf(x) - math.log(-x) + math.log(mills_series(x))


@njit(cache=True, error_model="numpy")
def log_ndtr_grad(x):
    """d log Phi(x) / dx = phi(x) / Phi(x) (the inverse Mills ratio); -x / S(x) for x <= -10.

    Finite for every finite x; tends to -x as x -> -inf and to 0 as x -> +inf.
    """
    if x > like(x, _LOG_NDTR_TAIL):
        return norm_pdf(x) / ndtr(x)
    return -x / mills_series(x)


# ---------------------------------------------------------------------------- activations
# Each array kernel (cpu/core.py, cuda/core.py) applies these per element; nothing else holds a formula.


@njit(cache=True, error_model="numpy")
def tanh(z):
    """tanh(z) in the precision of z (float32: branch-free, without libm; see tanh_f32)."""
    return ftanh(z)


@njit(cache=True, error_model="numpy")
def tanh_grad_out(y):
    """d tanh / dz = 1 - y^2 from the output y = tanh(z)."""
    return like(y, 1.0) - y * y


@njit(cache=True, error_model="numpy")
def relu(z):
    """max(z, 0); NaN stays NaN (a comparison with NaN is False: the select keeps z)."""
    zero = like(z, 0.0)
    return zero if z <= zero else z


@njit(cache=True, error_model="numpy")
def exp(z):
    """exp(z) (the positive-scale activation)."""
    return fexp(z)


# ---------------------------------------------------------------------------- samplers


@njit(cache=True, error_model="numpy")
def threshold(a, eps):
    """H(a + eps) in the precision of a: a Bernoulli (logistic eps) or probit (normal eps)
    unit from its noise (binary stochastic neuron)."""
    if a + eps > 0:
        return like(a, 1.0)
    return like(a, 0.0)


@njit(cache=True, error_model="numpy")
def uniform_threshold(q, u):
    """[u > q] in the precision of q: a Bernoulli(1 - q) unit from uniform noise u in (0, 1);
    with q = sigma(-a) the event a + logit(u) > 0 of threshold's logistic noise from the same u.
    A NaN q gives NaN, not a silent 0."""
    if q != q:
        return q
    if u > q:
        return like(q, 1.0)
    return like(q, 0.0)


@njit(cache=True, error_model="numpy")
def normal_reparam(loc, scale, eps):
    """mu + sigma eps, the pathwise reparameterisation (Kingma & Welling 2014)."""
    return loc + scale * eps


@njit(cache=True, error_model="numpy")
def binary_concrete(a, eps, t):
    """sigma((a + eps) / tau), the binary Concrete relaxation (Maddison et al. 2017)."""
    return sigmoid((a + eps) / t)


@njit(cache=True, error_model="numpy")
def binary_concrete_vjp(a, eps, t, gout):
    """(d/da, tau * d/dtau) of gout * sigma(u), u = (a + eps) / tau:
    (gu / tau, -gu u) with gu = gout sigma'(u); the caller divides the tau sum by tau once."""
    u = (a + eps) / t
    gu = gout * sigmoid_grad(u)
    return gu / t, -(gu * u)


# ---------------------------------------------------------------------------- log-densities


@njit(cache=True, error_model="numpy")
def bernoulli_log_prob_term(a, x):
    """x log sigma(a) + (1 - x) log sigma(-a) (x may be relaxed in [0, 1])."""
    _, lp, lm = sigmoid_log_sigmoids(a)
    return x * lp + (like(x, 1.0) - x) * lm


@njit(cache=True, error_model="numpy")
def bernoulli_log_prob_term_sigmoid(a, x):
    """(x log sigma(a) + (1 - x) log sigma(-a), sigma(a)) from one exp, the first written as
    x a - softplus(a) (the same function, exact in the tails: -1e4 at a = -1e4, x = 1)."""
    e, l = logistic_parts(a)
    one = like(a, 1.0)
    return x * a - (max(a, like(a, 0.0)) + l), (one if a >= 0 else e) / (one + e)


@njit(cache=True, error_model="numpy")
def bernoulli_score(a, x):
    """d/da of the Bernoulli log-probability: x - sigma(a)."""
    return x - sigmoid(a)


@njit(cache=True, error_model="numpy")
def bernoulli_nll_term(a, t):
    """-log p(t | sigma(a)) = softplus(a) - t a."""
    return softplus(a) - t * a


@njit(cache=True, error_model="numpy")
def probit_log_prob_term(a, x):
    """x log Phi(a) + (1 - x) log Phi(-a) (stable log_ndtr tails)."""
    return x * log_ndtr(a) + (like(x, 1.0) - x) * log_ndtr(-a)


@njit(cache=True, error_model="numpy")
def probit_score(a, x):
    """d/da of the probit log-probability: x M(a) - (1 - x) M(-a), M = phi / Phi."""
    return x * log_ndtr_grad(a) - (like(x, 1.0) - x) * log_ndtr_grad(-a)


@njit(cache=True, error_model="numpy")
def probit_log_odds(a):
    """d/dx of the probit log-probability: log Phi(a) - log Phi(-a)."""
    return log_ndtr(a) - log_ndtr(-a)


@njit(cache=True, error_model="numpy")
def gaussian_nll_term(t, mu, sigma):
    """-log N(t; mu, sigma^2) = log(2 pi)/2 + log sigma + (t - mu)^2 / (2 sigma^2), the Gaussian NLL."""
    d = (t - mu) / sigma
    return like(t, 0.9189385332046728) + flog(sigma) + like(t, 0.5) * d * d


@njit(cache=True, error_model="numpy")
def gaussian_nll_grad(t, mu, sigma):
    """(d/dt, d/dsigma) of gaussian_nll_term: ((t - mu)/sigma^2, (1 - d^2)/sigma), d = (t - mu)/sigma;
    d/dmu = -d/dt (the log-likelihood gradients, negated)."""
    d = (t - mu) / sigma
    return d / sigma, (like(t, 1.0) - d * d) / sigma


@njit(cache=True, error_model="numpy")
def gaussian_kl_std_term(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) per unit: (sigma^2 + mu^2 - 1)/2 - log sigma
    (Kingma & Welling 2014, appendix B)."""
    return like(mu, 0.5) * (sigma * sigma + mu * mu - like(mu, 1.0)) - flog(sigma)


@njit(cache=True, error_model="numpy")
def gaussian_kl_std_grad(mu, sigma):
    """(d/dmu, d/dsigma) of gaussian_kl_std_term: (mu, sigma - 1/sigma)."""
    return mu, sigma - like(mu, 1.0) / sigma


@njit(cache=True, error_model="numpy")
def gaussian_kl_term(mu1, s1, mu2, s2):
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) per unit: log(s2/s1) + (s1^2 + (mu1-mu2)^2)/(2 s2^2) - 1/2."""
    half = like(mu1, 0.5)
    d = mu1 - mu2
    return flog(s2 / s1) + half * (s1 * s1 + d * d) / (s2 * s2) - half


@njit(cache=True, error_model="numpy")
def gaussian_kl_grad(mu1, s1, mu2, s2):
    """(d/dmu1, d/ds1, d/ds2) of gaussian_kl_term; d/dmu2 = -d/dmu1:
    ((mu1-mu2)/s2^2, s1/s2^2 - 1/s1, (1 - (s1^2 + (mu1-mu2)^2)/s2^2) / s2)."""
    one = like(mu1, 1.0)
    d = mu1 - mu2
    ib2 = one / (s2 * s2)
    return d * ib2, s1 * ib2 - one / s1, (one - (s1 * s1 + d * d) * ib2) / s2


@njit(cache=True, error_model="numpy")
def nce_data_cost(s, logk):
    """-log sigma(s - log k) = softplus(log k - s) for a data score (Gutmann & Hyvarinen 2010)."""
    return softplus(logk - s)


@njit(cache=True, error_model="numpy")
def nce_data_grad(s, logk):
    """d/ds of nce_data_cost: -sigma(log k - s)."""
    return -sigmoid(logk - s)


@njit(cache=True, error_model="numpy")
def nce_noise_cost(s, logk):
    """-log sigma(-(s - log k)) = softplus(s - log k) for a noise score."""
    return softplus(s - logk)


@njit(cache=True, error_model="numpy")
def nce_noise_grad(s, logk):
    """d/ds of nce_noise_cost: sigma(s - log k)."""
    return sigmoid(s - logk)


# ---------------------------------------------------------------------- row bookkeeping
# Formulas of the row / baseline / antithetic kernels. They keep the CPU row kernels' float64
# literals (those kernels work in float64 whatever the dtype), so no ``like`` here.


@njit(cache=True, error_model="numpy", inline="always")
def weighted(rw, x):
    """rw x, a row's weighted share: 0 on a row of weight 0 whatever x (its cost may be -inf)."""
    return rw * x if rw != 0 else rw * 0


@njit(cache=True, error_model="numpy")
def score_signal(rw, L, b):
    """rw (L - b): the score-function learning signal of a row (weighted)."""
    return weighted(rw, L - b)


@njit(cache=True, error_model="numpy")
def loo_value(tot, L, K):
    """(sum_k L_k - L) / (K - 1): the leave-one-out baseline (Kool et al. 2019)."""
    return (tot - L) / (K - 1)


@njit(cache=True, error_model="numpy")
def baseline_residual_value(rw, L, b):
    """-2 rw (L - b): d/db of a learned baseline's loss rw (L - b)^2."""
    return -2.0 * rw * (L - b)


@njit(cache=True, error_model="numpy")
def moving_average(m, tot, wsum, decay, first):
    """Running baseline update: the weighted batch mean tot / wsum (0 when wsum <= 0) seeds
    the average on the first step, afterwards decay m + (1 - decay) mean."""
    mean = tot / wsum if wsum > 0 else 0.0
    return mean if first else decay * m + (1.0 - decay) * mean


@njit(cache=True, error_model="numpy")
def scale_shift(x, scale, shift):
    """scale x + shift (constants of the model's arithmetic)."""
    return scale * x + shift


@njit(cache=True, error_model="numpy")
def antithetic_bit(a, u, tilde):
    """ARM / DisARM pair unit: 1[u < sigma(a)], or its antithetic 1[u > sigma(-a)] if tilde."""
    if tilde:
        return 1 if u > sigmoid(-a) else 0
    return 1 if u < sigmoid(a) else 0


@njit(cache=True, error_model="numpy")
def arm_coef(diff, u):
    """ARM (Yin & Zhou 2019): (f(b~) - f(b)) (u - 1/2)."""
    return diff * (u - 0.5)


@njit(cache=True, error_model="numpy", inline="always")
def disarm_coef(half_diff, a, b):
    """DisARM (Dong et al. 2020), for b != b~: 1/2 (f(b~) - f(b)) (-1)^b sigma(|a|)."""
    c = half_diff * sigmoid(math.fabs(a))
    return -c if b > like(b, 0.5) else c


@njit(cache=True, error_model="numpy", inline="always")
def disarm_pair_coef(half_diff, a, b, b1):
    """disarm_coef where b != b~ and 0 where they agree, by selects (no branch: a row loop
    over the units vectorises); half_diff, a, b in one precision."""
    c = disarm_coef(half_diff, a, b)
    return c if b != b1 else like(a, 0.0)
