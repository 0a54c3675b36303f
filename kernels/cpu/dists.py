"""CPU kernels of the distributions, as ``@njit`` loops: sample, log-prob and their VJPs for
probit, Normal and Categorical (Gumbel-max, inverse CDF, Gumbel-softmax). Bernoulli's are declared
once in ``families/bernoulli.py``. The conventions are ``cpu/core.py``'s, which re-exports every
public name here (the generated step calls ``core.<name>``); the CUDA twin is ``cuda/dists.py``.
"""
from numba import njit

from ..math.scalar import (
    gaussian_nll_grad,
    gaussian_nll_term,
    hyper,
    like,
    norm_pdf,
    normal_reparam,
    probit_log_odds,
    probit_log_prob_term,
    probit_score,
    threshold,
)
from ..math.groups import (
    categorical_icdf_group,
    categorical_log_prob_bwd_group,
    categorical_log_prob_group,
    categorical_sample_group,
    gumbel_softmax_bwd_group,
    gumbel_softmax_group,
)

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ probit


@njit(**_JIT)
def probit_sample(a, noise, out):
    """out = H(a + eps), eps standard normal: P(out = 1) = Phi(a) (binary stochastic neuron)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = threshold(a[r, j], noise[r, j])


@njit(**_JIT)
def probit_log_prob(a, x, out_rows):
    """out_rows[r] = sum_j x log Phi(a) + (1 - x) log Phi(-a) (stable log_ndtr tails)."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s += probit_log_prob_term(a[r, j], x[r, j])
        out_rows[r] = s


@njit(**_JIT)
def probit_log_prob_bwd(a, x, grow, ga, gx):
    """ga += grow (x M(a) - (1 - x) M(-a)), M = phi / Phi (inverse Mills ratio);
    gx += grow (log Phi(a) - log Phi(-a)). Both skippable."""
    R, D = x.shape
    for r in range(R):
        g = grow[r]
        if ga.shape[0] != 0:
            for j in range(D):
                ga[r, j] += g * probit_score(a[r, j], x[r, j])
        if gx.shape[0] != 0:
            for j in range(D):
                gx[r, j] += g * probit_log_odds(a[r, j])


@njit(**_JIT)
def probit_st_bwd(a, gx, ga):
    """Straight-through with Gaussian noise (Bengio et al. 2013): ga += gx dPhi/da = gx phi(a)."""
    R, D = gx.shape
    for r in range(R):
        for j in range(D):
            ga[r, j] += gx[r, j] * norm_pdf(a[r, j])


# ============================================================================ Normal


@njit(**_JIT)
def normal_sample(loc, scale, eps, out):
    """out = mu + sigma eps, the pathwise reparameterisation (Kingma & Welling 2014)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = normal_reparam(loc[r, j], scale[r, j], eps[r, j])


@njit(**_JIT)
def normal_sample_bwd(eps, gout, gloc, gscale):
    """gloc += gout ; gscale += gout eps (each skippable)."""
    R, D = gout.shape
    if gloc.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gloc[r, j] += gout[r, j]
    if gscale.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gscale[r, j] += gout[r, j] * eps[r, j]


@njit(**_JIT)
def normal_log_prob(loc, scale, x, out_rows):
    """out_rows[r] = sum_j -log(2 pi)/2 - log sigma - (x - mu)^2 / (2 sigma^2), the Gaussian log-likelihood."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s -= gaussian_nll_term(x[r, j], loc[r, j], scale[r, j])
        out_rows[r] = s


@njit(**_JIT)
def normal_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    """Gradients of log N(x; mu, sigma^2): d/dmu = (x - mu)/sigma^2 ; d/dsigma = (x - mu)^2/sigma^3 - 1/sigma ;
    d/dx = -(x - mu)/sigma^2; each times grow[r], accumulated, each skippable."""
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    R, D = x.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            # log N = -gaussian_nll_term: d/dx = -q, d/dmu = q, d/dsigma = -w
            q, w = gaussian_nll_grad(x[r, j], loc[r, j], scale[r, j])
            if do_l:
                gloc[r, j] += g * q
            if do_s:
                gscale[r, j] -= g * w
            if do_x:
                gx[r, j] -= g * q


# ============================================================================ Categorical
# Logits (R, G*K): G independent groups of K classes, group g = columns g*K .. g*K+K-1.


@njit(**_JIT)
def categorical_sample(logits, gumbel, K, out):
    """One-hot of argmax_k (a_k + g_k) per group, g standard Gumbel (Gumbel-max trick)."""
    R, D = out.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            categorical_sample_group(logits, gumbel, r, gi * K, K, out)


@njit(**_JIT)
def categorical_inverse_cdf_sample(logits, u, K, out):
    """One-hot of the smallest k with sum_{i<=k} softmax(a)_i > u[r, g] (inverse CDF).

    u is (R, G) uniform in [0, 1). Rounding can leave the cumulative sum short of u near 1:
    then the last class with non-zero probability is taken.
    """
    R, D = out.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            categorical_icdf_group(logits, u[r, gi], r, gi * K, K, out)


@njit(**_JIT)
def categorical_log_prob(logits, x, K, out_rows):
    """out_rows[r] = sum_g sum_k x_k (a_k - logsumexp_g(a)) (x one-hot or relaxed)."""
    R, D = x.shape
    G = D // K
    for r in range(R):
        s = like(x, 0.0)
        for gi in range(G):
            s += categorical_log_prob_group(logits, x, r, gi * K, K)
        out_rows[r] = s


@njit(**_JIT)
def categorical_log_prob_bwd(logits, x, K, grow, glogits, gx):
    """glogits += grow (x_k - softmax_k(a) sum_i x_i) ; gx += grow (a_k - lse); skippable."""
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    R, D = x.shape
    G = D // K
    for r in range(R):
        g = grow[r]
        for gi in range(G):
            categorical_log_prob_bwd_group(logits, x, r, gi * K, K, g, glogits, gx, do_a, do_x)


@njit(**_JIT)
def gumbel_softmax_sample(logits, gumbel, tau, K, out):
    """out = softmax((a + g) / tau) per group (Gumbel-softmax / Concrete;
    Jang et al. 2017, Maddison et al. 2017)."""
    t = like(out, hyper(tau))
    R, D = out.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            gumbel_softmax_group(logits, gumbel, t, r, gi * K, K, out)


@njit(**_JIT)
def gumbel_softmax_bwd(logits, gumbel, tau, K, out, gout, glogits, gtau):
    """Exact VJP of y = softmax(u), u = (a + g) / tau, per group:
    gu_k = y_k (gout_k - sum_i gout_i y_i) ; glogits += gu / tau ;
    gtau[0] += -sum gu_k (u_k - max u) / tau (sum_k gu_k = 0, so the shift is exact and
    keeps the product finite for huge logits). Both skippable."""
    t = like(out, hyper(tau))
    do_a = glogits.shape[0] != 0
    acc = like(out, 0.0)
    R, D = out.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            acc += gumbel_softmax_bwd_group(
                logits, gumbel, t, r, gi * K, K, out, gout, glogits, do_a)
    if gtau.shape[0] != 0:
        gtau[0] += acc / t
