"""Backward kernels of the straight-through family beyond plain ST (CPU): ReinMax, the
Gumbel-Rao estimator and the gapped straight-through estimator, for logit-link Bernoulli units
and categorical groups. The forward pass of each is the ordinary hard sample; these kernels
only say what reaches the logits.

ReinMax (Liu et al., NeurIPS 2023, "Bridging Discrete and Backpropagation: Straight-Through
and Beyond", Heun's method in place of ST's forward Euler step): for one group with logits a,
one-hot sample D and cotangent g of D,
    pi0 = softmax(a),  pi1 = (D + softmax(a / tau)) / 2,
    ga += 2 J(pi1)^T g - J(pi0)^T g / 2,      J(p)^T g = p * (g - <p, g>)
(the softmax Jacobian at p). A Bernoulli unit is the two-class case with logits (a, 0):
    ga += g (2 p1 (1 - p1) - sigma'(a) / 2),  p1 = (b + sigma(a / tau)) / 2.

Gumbel-Rao (Paulus et al., ICLR 2021): the straight-through Gumbel-softmax backward
(1 / tau) J(softmax((a + G) / tau))^T g averaged over n draws of the Gumbel noise G given the
hard sample D (its conditional expectation given D: a Rao-Blackwellisation, so the mean is
ST-Gumbel-softmax's and the variance is lower). The noise is held fixed under d/da, as the
estimator's definition E[d softmax_tau(a + G)/da | D] reads (a derivative through the
conditional draw's dependence on a would change the mean). Per draw m, uniforms v (columns
m * D + c of the (R, n * D) buffer) give, with E_i = -log v_i and lth_i = log softmax(a)_i,
    d_i = (a + G~)_i - (a + G~)_b = -softplus(log E_i - log E_b - lth_i)   (i != b),  d_b = 0,
the conditional Gumbel of kernels/math/conditional.py (the maximum, class b, is Gumbel at
logsumexp(a), the others truncated below it) written relative to the maximum, so
softmax((a + G~) / tau) = softmax(d / tau) never overflows. A Bernoulli unit uses the
conditional logistic z~ = a + L~ given b (conditional.logistic_given_bernoulli) and the
binary Concrete's slope: ga += g / (n tau) sum_m sigma'(z~_m / tau).

Gapped straight-through (Fan et al., ICML 2022, GST-1.0): the Gumbel-softmax backward at a
deterministic perturbation of the logits chosen from the sample D alone: the chosen logit is
raised to the maximum m = max_k a_k and every other one lowered to at most m - gap,
    a'_b = m,  a'_i = min(a_i, m - gap)  (i != b),   ga += (1 / tau) J(softmax(a' / tau))^T g,
the movements held fixed under d/da. A Bernoulli unit (logits (a, 0)) has
a'_0 - a'_1 = max(a, gap) if b = 1 else min(a, -gap): ga += g sigma'(that / tau) / tau.

Conventions are cpu/core.py's (declared once, kernels/declare.py: re-exported by cpu/core.py and, as
CUDA twins of the same bodies, by cuda/core.py): backward kernels accumulate (+=) into the logits'
gradient; tau is a 1-element array (a state view) or a number; constants are in the precision
of the arrays. Every kernel is a row body (one CUDA thread per row): the temperature is read
once per row and the columns (or groups of K) are looped over inside, as the hand-written
kernels did, so the unit loops vectorise.
"""
from numba import njit

from ..math.conditional import logistic_given_bernoulli
from ..declare import rows
from ..math.scalar import fexp, flog, hyper, like, sigmoid, sigmoid_grad, softplus
from ..math.groups import logsumexp_group


# ============================================================================ ReinMax


@njit(cache=True, error_model="numpy", inline="always")   # inlined: the unit loop vectorises
def _reinmax_unit(a, b, inv_tau):
    """d ReinMax / d a per unit of cotangent: 2 p1 (1 - p1) - sigma'(a) / 2, p1 = (b + sigma(a / tau)) / 2."""
    half = like(a, 0.5)
    p1 = half * (b + sigmoid(a * inv_tau))
    return like(a, 2.0) * p1 * (like(a, 1.0) - p1) - half * sigmoid_grad(a)


@njit(cache=True, error_model="numpy")
def _reinmax_group(a, x, t, gx, r, c0, K, ga):
    """ga[r, c0:c0+K] += 2 J(pi1)^T g - J(pi0)^T g / 2 for one group (logits a, one-hot x,
    cotangent gx, temperature t). softmax(a / t) shares softmax(a)'s maximum (t > 0)."""
    m, l0 = logsumexp_group(a, r, c0, K)
    zero = like(t, 0.0)
    half = like(t, 0.5)
    s1 = zero
    for k in range(K):
        s1 += fexp((a[r, c0 + k] - m) / t)
    l1 = flog(s1)
    s0 = zero
    s1 = zero
    for k in range(K):
        c = c0 + k
        d = a[r, c] - m
        s0 += fexp(d - l0) * gx[r, c]
        s1 += half * (x[r, c] + fexp(d / t - l1)) * gx[r, c]
    for k in range(K):
        c = c0 + k
        d = a[r, c] - m
        p0 = fexp(d - l0)
        p1 = half * (x[r, c] + fexp(d / t - l1))
        ga[r, c] += like(t, 2.0) * p1 * (gx[r, c] - s1) - half * p0 * (gx[r, c] - s0)


@rows("gx")
def reinmax_bernoulli_bwd(r, logits, value, tau, gx, glogits):
    """ReinMax for Bernoulli units (the two-class case, logits (a, 0)):
    glogits += gx (2 p1 (1 - p1) - sigma'(a) / 2), p1 = (value + sigma(a / tau)) / 2."""
    inv = like(gx, 1.0) / like(gx, hyper(tau))
    for j in range(gx.shape[1]):
        glogits[r, j] += gx[r, j] * _reinmax_unit(logits[r, j], value[r, j], inv)


@rows("gx")
def reinmax_categorical_bwd(r, logits, value, tau, gx, K, glogits):
    """ReinMax for categorical groups of K: glogits += 2 J(pi1)^T gx - J(pi0)^T gx / 2 per group,
    pi0 = softmax(a), pi1 = (value + softmax(a / tau)) / 2."""
    t = like(gx, hyper(tau))
    for c0 in range(0, gx.shape[1], K):
        _reinmax_group(logits, value, t, gx, r, c0, K, glogits)


# ============================================================================ Gumbel-Rao


@njit(cache=True, error_model="numpy", inline="always")   # inlined: the unit loop vectorises
def _gumbel_rao_term(a, b, v, t):
    """sigma'(z~ / t) for one logistic draw z~ = a + L~ given the hard value b (uniform v)."""
    return sigmoid_grad(logistic_given_bernoulli(a, v, b)[0] / t)


@njit(cache=True, error_model="numpy")
def _gumbel_rao_group(a, x, v, t, n, gx, r, c0, K, soft, ga):
    """ga[r, c0:c0+K] += (1 / (n t)) sum_m J(y_m)^T gx, y_m = softmax(d_m / t), d_m the
    conditional Gumbel-perturbed logits given the one-hot x, relative to their maximum
    (module docstring); soft[r, c0:c0+K] holds y of the last draw (scratch)."""
    D = v.shape[1] // n
    m0, l0 = logsumexp_group(a, r, c0, K)
    kb = 0
    nan = like(t, 0.0)   # 0, or NaN when a logit is NaN or infinite (float32's clamped exp would hide it)
    for k in range(K):
        nan += a[r, c0 + k] - a[r, c0 + k]
        if x[r, c0 + k] > like(t, 0.5):
            kb = k
    w = like(t, 1.0) / (like(t, n) * t)
    for m in range(n):
        base = m * D + c0
        leb = flog(-flog(v[r, base + kb]))
        s = like(t, 0.0)
        dot = like(t, 0.0)
        for k in range(K):
            d = like(t, 0.0)
            if k != kb:
                d = -softplus(flog(-flog(v[r, base + k])) - leb - ((a[r, c0 + k] - m0) - l0))
            e = fexp(d / t)
            soft[r, c0 + k] = e
            s += e
            dot += e * gx[r, c0 + k]
        dot /= s
        for k in range(K):
            c = c0 + k
            y = soft[r, c] / s
            soft[r, c] = y
            ga[r, c] += w * y * (gx[r, c] - dot) + nan


@rows("gx")
def gumbel_rao_bernoulli_bwd(r, logits, value, v, tau, n, gx, glogits):
    """Gumbel-Rao for Bernoulli units: glogits += gx / (n tau) sigma'(z~_m / tau) for m = 0 .. n-1
    in turn, z~_m the logistic-perturbed logit given the hard value (uniforms v of shape (R, n * D))."""
    t = like(gx, hyper(tau))
    w = like(gx, 1.0) / (like(gx, n) * t)
    D = gx.shape[1]
    for m in range(n):
        for j in range(D):
            glogits[r, j] += gx[r, j] * w * _gumbel_rao_term(logits[r, j], value[r, j], v[r, m * D + j], t)


@rows("gx")
def gumbel_rao_categorical_bwd(r, logits, value, v, tau, n, gx, K, soft, glogits):
    """Gumbel-Rao for categorical groups of K: glogits += (1 / (n tau)) sum_m J(y_m)^T gx per group,
    y_m = softmax((a + G~_m) / tau), G~_m Gumbel given the one-hot value (uniforms v of shape
    (R, n * D)); soft (R, D) is scratch (the last draw's y, row r written by row r only)."""
    t = like(gx, hyper(tau))
    for c0 in range(0, gx.shape[1], K):
        _gumbel_rao_group(logits, value, v, t, n, gx, r, c0, K, soft, glogits)


# ============================================================================ gapped ST


@njit(cache=True, error_model="numpy", inline="always")   # inlined: the unit loop vectorises
def _gapped_unit(a, b, t, gap):
    """(1 / t) sigma'(d / t), d = max(a, gap) if b else min(a, -gap): the binary case of GST."""
    d = max(a, gap) if b > like(a, 0.5) else min(a, -gap)
    return sigmoid_grad(d / t) / t + (a - a)   # (a - a): NaN stays NaN where max / min would drop it


@njit(cache=True, error_model="numpy")
def _gapped_group(a, x, t, gap, gx, r, c0, K, ga):
    """ga[r, c0:c0+K] += (1 / t) J(y)^T gx, y = softmax(a' / t), a'_b = max a, a'_i =
    min(a_i, max a - gap): exponents relative to the maximum a'_b, so y never overflows."""
    m = a[r, c0]
    nan = like(t, 0.0)   # 0, or NaN when a logit is NaN or infinite
    kb = 0
    for k in range(K):
        v = a[r, c0 + k]
        nan += v - v
        if v > m:
            m = v
        if x[r, c0 + k] > like(t, 0.5):
            kb = k
    s = like(t, 0.0)
    dot = like(t, 0.0)
    for k in range(K):
        d = like(t, 0.0) if k == kb else min(a[r, c0 + k] - m, -gap)
        e = fexp(d / t)
        s += e
        dot += e * gx[r, c0 + k]
    dot /= s
    w = like(t, 1.0) / (s * t)
    for k in range(K):
        c = c0 + k
        d = like(t, 0.0) if k == kb else min(a[r, c] - m, -gap)
        ga[r, c] += w * fexp(d / t) * (gx[r, c] - dot) + nan


@rows("gx")
def gapped_st_bernoulli_bwd(r, logits, value, tau, gap, gx, glogits):
    """Gapped ST for Bernoulli units: glogits += gx sigma'(d / tau) / tau, d = max(a, gap) if the
    value is 1 else min(a, -gap)."""
    t = like(gx, hyper(tau))
    gp = like(gx, gap)
    for j in range(gx.shape[1]):
        glogits[r, j] += gx[r, j] * _gapped_unit(logits[r, j], value[r, j], t, gp)


@rows("gx")
def gapped_st_categorical_bwd(r, logits, value, tau, gap, gx, K, glogits):
    """Gapped ST for categorical groups of K: glogits += (1 / tau) J(softmax(a' / tau))^T gx, a' the
    logits with the chosen one raised to the maximum and the others lowered to at most max - gap."""
    t = like(gx, hyper(tau))
    gp = like(gx, gap)
    for c0 in range(0, gx.shape[1], K):
        _gapped_group(logits, value, t, gp, gx, r, c0, K, glogits)


R, D, K = 4, 6, 3   # G = 2 groups of K per row; Gumbel-Rao: 3 conditional draws per unit
G = D // K
PARITY = {
    "reinmax_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.h(1.3), g.x(R, D), g.x(R, D)),
    "reinmax_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.h(1.3), g.x(R, D), K, g.x(R, D)),
    "gumbel_rao_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, 3 * D), g.h(0.7), 3, g.x(R, D),
                                           g.x(R, D)),
    "gumbel_rao_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.u(R, 3 * D), g.h(0.7), 3, g.x(R, D),
                                             K, g.out(R, D), g.x(R, D)),
    "gapped_st_bernoulli_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.h(0.8), 0.6, g.x(R, D), g.x(R, D)),
    "gapped_st_categorical_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), g.h(0.8), 0.6, g.x(R, D), K, g.x(R, D)),
}
