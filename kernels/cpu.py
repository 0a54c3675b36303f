"""CPU array kernels: layers, distributions, costs and optimisers, as ``@njit`` loops.

These are the calls the graph compiler emits, in topological order forward and reverse
order backward, inside one fused nopython step. The conventions are a contract with the
code generator:

* Node values are 2D C-contiguous ``(R, D)`` arrays (R = batch * samples); per-row
  quantities (costs, log-probs) are 1D ``(R,)``; ``W`` is ``(I, O)``, ``b`` is ``(O,)``.
* Hyper-parameters (temperature ``tau``, learning rate, ...) are 1-element 1D arrays, so a
  learnable one can be a view into the parameter vector; a plain float is accepted too.
* Forward kernels overwrite their outputs. Backward kernels accumulate (``+=``) into every
  gradient they receive; a gradient passed with ``shape[0] == 0`` is skipped.
* No allocation: the BLAS products (``blas.gemm``) write into their outputs, the gradients
  accumulating in place (beta = 1).
* dtype-generic: all arrays of one call share float32 or float64; constants are cast to it
  with ``like`` (see ``scalar.py``), so float32 math stays float32.
* ``error_model="numpy"``: a division by zero gives inf/nan instead of raising, and the
  division loops stay free of per-element Python-exception checks (so they vectorise).

Serial loops for now; every per-element formula is a named function of ``scalar.py``
(the categorical kernels call its per-group helpers), shared with the CUDA twin ``gpu.py``.
"""
import numpy as np
from numba import njit

from .blas import gemm

from .scalar import (
    adam_bias_corrections,
    adam_step,
    bernoulli_log_prob_term,
    bernoulli_log_prob_term_sigmoid,
    bernoulli_nll_term,
    bernoulli_score,
    binary_concrete,
    binary_concrete_vjp,
    categorical_icdf_group,
    categorical_log_prob_bwd_group,
    categorical_log_prob_group,
    categorical_sample_group,
    exp,
    gaussian_kl_grad,
    gaussian_kl_std_grad,
    gaussian_kl_std_term,
    gaussian_kl_term,
    gaussian_nll_grad,
    gaussian_nll_term,
    gumbel_softmax_bwd_group,
    gumbel_softmax_group,
    hyper,
    like,
    logsumexp_group,
    momentum_velocity,
    nce_data_cost,
    nce_data_grad,
    nce_noise_cost,
    nce_noise_grad,
    norm_pdf,
    normal_reparam,
    probit_log_odds,
    probit_log_prob_term,
    probit_score,
    relu,
    sigmoid,
    sigmoid_grad,
    softmax_bwd_group,
    softmax_group,
    softmax_xent_bwd_group,
    softmax_xent_group,
    softplus,
    sqrt1p,
    sqrt1p_grad,
    tanh,
    tanh_grad_out,
    threshold,
)


# Elementwise loops vectorise only without libm calls (scalar.fexp & co.) and, for their row
# sums, with reassociation allowed; "contract" lets LLVM fuse multiply-adds. No other fast-math
# flag: NaN and inf keep their meaning.
_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ layers


@njit(**_JIT)
def affine_fwd(x, W, b, out):
    """out = x W + b (BLAS gemm into ``out``, then the bias row)."""
    gemm(x, False, W, False, out, like(out, 0.0))
    R, O = out.shape
    for r in range(R):
        for o in range(O):
            out[r, o] += b[o]


@njit(**_JIT)
def affine_bwd(x, W, gout, gx, gW, gb):
    """gx += gout W^T ; gW += x^T gout (BLAS, accumulating in place) ; gb += sum_r gout[r].
    Each gradient is skipped when its ``shape[0] == 0``."""
    R, O = gout.shape
    if gx.shape[0] != 0:
        gemm(gout, False, W, True, gx, like(gx, 1.0))
    if gW.shape[0] != 0:
        gemm(x, True, gout, False, gW, like(gW, 1.0))
    if gb.shape[0] != 0:
        for r in range(R):
            for o in range(O):
                gb[o] += gout[r, o]


@njit(**_JIT)
def sigmoid_fwd(z, out):
    """out = sigma(z) = 1 / (1 + exp(-z))."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = sigmoid(z[r, j])


@njit(**_JIT)
def sigmoid_bwd(z, out, gout, gz):
    """gz += gout * sigma'(z), with sigma'(z) = sigma(z) sigma(-z) computed from z."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sigmoid_grad(z[r, j])


@njit(**_JIT)
def tanh_fwd(z, out):
    """out = tanh(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = tanh(z[r, j])


@njit(**_JIT)
def tanh_bwd(z, out, gout, gz):
    """gz += gout * (1 - tanh(z)^2)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * tanh_grad_out(out[r, j])


@njit(**_JIT)
def relu_fwd(z, out):
    """out = max(z, 0)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = relu(z[r, j])


@njit(**_JIT)
def relu_bwd(z, out, gout, gz):
    """gz += gout * [z > 0]."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            if z[r, j] > 0:
                gz[r, j] += gout[r, j]


@njit(**_JIT)
def softplus_fwd(z, out):
    """out = log(1 + exp(z)), stable for any z."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = softplus(z[r, j])


@njit(**_JIT)
def softplus_bwd(z, out, gout, gz):
    """gz += gout * sigma(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sigmoid(z[r, j])


@njit(**_JIT)
def sqrt1p_fwd(z, out):
    """out = sqrt(1 + z^2), the scale activation of seed 004 (b) (sigma >= 1)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = sqrt1p(z[r, j])


@njit(**_JIT)
def sqrt1p_bwd(z, out, gout, gz):
    """gz += gout * z / sqrt(1 + z^2) (seed 004 (b))."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sqrt1p_grad(z[r, j])


@njit(**_JIT)
def exp_fwd(z, out):
    """out = exp(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = exp(z[r, j])


@njit(**_JIT)
def exp_bwd(z, out, gout, gz):
    """gz += gout * exp(z) (= gout * out)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * out[r, j]


@njit(**_JIT)
def add_fwd(a, b, out):
    """out = a + b."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = a[r, j] + b[r, j]


@njit(**_JIT)
def add_bwd(gout, ga, gb):
    """ga += gout ; gb += gout (each skippable)."""
    R, D = gout.shape
    if ga.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                ga[r, j] += gout[r, j]
    if gb.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gb[r, j] += gout[r, j]


@njit(**_JIT)
def mul_fwd(a, b, out):
    """out = a * b (elementwise)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = a[r, j] * b[r, j]


@njit(**_JIT)
def mul_bwd(a, b, gout, ga, gb):
    """ga += gout * b ; gb += gout * a (each skippable)."""
    R, D = gout.shape
    if ga.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                ga[r, j] += gout[r, j] * b[r, j]
    if gb.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gb[r, j] += gout[r, j] * a[r, j]


@njit(**_JIT)
def broadcast_rows_fwd(p, out):
    """out[r, :] = p for every row (p is 1D (D,), e.g. a learnable prior logit vector)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = p[j]


@njit(**_JIT)
def broadcast_rows_bwd(gout, gp):
    """gp += sum_r gout[r, :]."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gp[j] += gout[r, j]


@njit(**_JIT)
def copy_fwd(x, out):
    """out = x."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = x[r, j]


@njit(**_JIT)
def copy_bwd(gout, gx):
    """gx += gout (the VJP of copy_fwd)."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gx[r, j] += gout[r, j]


@njit(**_JIT)
def row_sum_fwd(x, out_rows):
    """out_rows[r] = sum_j x[r, j]."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s += x[r, j]
        out_rows[r] = s


@njit(**_JIT)
def row_sum_bwd(grow, gx):
    """gx[r, :] += grow[r]."""
    R, D = gx.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            gx[r, j] += g


# ============================================================================ Bernoulli


@njit(**_JIT)
def bernoulli_sample(logits, noise, out):
    """out = H(a + eps), eps standard logistic: P(out = 1) = sigma(a) (seed 000)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = threshold(logits[r, j], noise[r, j])


@njit(**_JIT)
def bernoulli_log_prob(logits, x, out_rows):
    """out_rows[r] = sum_j x log sigma(a) + (1 - x) log sigma(-a) (x may be relaxed in [0, 1])."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s += bernoulli_log_prob_term(logits[r, j], x[r, j])
        out_rows[r] = s


@njit(**_JIT)
def bernoulli_log_prob_bwd(logits, x, grow, glogits, gx):
    """glogits += grow[r] (x - sigma(a)) ; gx += grow[r] a (d/dx of x a - softplus(a))."""
    R, D = x.shape
    for r in range(R):
        g = grow[r]
        if glogits.shape[0] != 0:
            for j in range(D):
                glogits[r, j] += g * bernoulli_score(logits[r, j], x[r, j])
        if gx.shape[0] != 0:
            for j in range(D):
                gx[r, j] += g * logits[r, j]


@njit(**_JIT)
def _bernoulli_keep(logits, x, out_rows, sig, sign):
    """out_rows[r] = sign * sum_j log p(x | sigma(a)); sig = sigma(a), one exp for both."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            c, sg = bernoulli_log_prob_term_sigmoid(logits[r, j], x[r, j])
            s += c
            sig[r, j] = sg
        out_rows[r] = sign * s


@njit(**_JIT)
def _bernoulli_kept_bwd(logits, x, sig, grow, glogits, gx, sign):
    """glogits += sign grow (x - sig) ; gx += sign grow a (each skippable)."""
    R, D = x.shape
    for r in range(R):
        g = sign * grow[r]
        if glogits.shape[0] != 0:
            for j in range(D):
                glogits[r, j] += g * (x[r, j] - sig[r, j])
        if gx.shape[0] != 0:
            for j in range(D):
                gx[r, j] += g * logits[r, j]


@njit(**_JIT)
def _bernoulli_keep_const(p, x, out_rows, sig, sign):
    """_bernoulli_keep for logits equal in every row, a vector p (D,) (a parameter broadcast to
    the rows): sum_j log p(x | sigma(p_j)) = sum_j x p_j - sum_j softplus(p_j), whose second
    sum and sigma(p_j) are computed once, not once per row; sig[r, :] = sigma(p)."""
    R, D = x.shape
    zero = like(x, 0.0)
    sp = zero
    for j in range(D):
        c, sg = bernoulli_log_prob_term_sigmoid(p[j], zero)   # -softplus(p_j), sigma(p_j)
        sp += c
        sig[0, j] = sg
    for r in range(R):
        s = sp
        for j in range(D):
            s += x[r, j] * p[j]
            sig[r, j] = sig[0, j]
        out_rows[r] = sign * s


@njit(**_JIT)
def bernoulli_log_prob_keep_const(p, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits a vector p (D,) shared by every row."""
    _bernoulli_keep_const(p, x, out_rows, sig, like(x, 1.0))


@njit(**_JIT)
def bernoulli_nll_keep_const(p, t, out_rows, sig):
    """bernoulli_nll_keep with the logits a vector p (D,) shared by every row (a prior)."""
    _bernoulli_keep_const(p, t, out_rows, sig, like(t, -1.0))


@njit(**_JIT)
def bernoulli_log_prob_keep(logits, x, out_rows, sig):
    """bernoulli_log_prob that also keeps sig = sigma(a) for bernoulli_log_prob_kept_bwd: the
    exp of the cost serves its VJP too (the compiler's choice when the logits need a gradient)."""
    _bernoulli_keep(logits, x, out_rows, sig, like(x, 1.0))


@njit(**_JIT)
def bernoulli_log_prob_kept_bwd(logits, x, sig, grow, glogits, gx):
    """bernoulli_log_prob_bwd from the kept sigma(a): glogits += grow (x - sig) ; gx += grow a."""
    _bernoulli_kept_bwd(logits, x, sig, grow, glogits, gx, like(x, 1.0))


@njit(**_JIT)
def bernoulli_nll_keep(logits, t, out_rows, sig):
    """bernoulli_nll (= -bernoulli_log_prob) that also keeps sig = sigma(a)."""
    _bernoulli_keep(logits, t, out_rows, sig, like(t, -1.0))


@njit(**_JIT)
def bernoulli_nll_kept_bwd(logits, t, sig, grow, glogits, gt):
    """bernoulli_nll_bwd from the kept sigma(a): glogits += grow (sig - t) ; gt += -grow a."""
    _bernoulli_kept_bwd(logits, t, sig, grow, glogits, gt, like(t, -1.0))


@njit(**_JIT)
def bernoulli_st_bwd(logits, gx, glogits):
    """Straight-through (seed 000), logistic noise: glogits += gx dF/da = gx sigma(a) sigma(-a)."""
    R, D = gx.shape
    for r in range(R):
        for j in range(D):
            glogits[r, j] += gx[r, j] * sigmoid_grad(logits[r, j])


@njit(**_JIT)
def binary_concrete_sample(logits, noise, tau, out):
    """out = sigma((a + eps) / tau), eps standard logistic (Concrete relaxation, seed 002;
    Maddison et al. 2017)."""
    t = like(out, hyper(tau))
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = binary_concrete(logits[r, j], noise[r, j], t)


@njit(**_JIT)
def binary_concrete_bwd(logits, noise, tau, out, gout, glogits, gtau):
    """Exact VJP of y = sigma(u), u = (a + eps) / tau:
    glogits += gout y (1 - y) / tau ; gtau[0] += sum_{r,j} -gout y (1 - y) u / tau.

    y (1 - y) = sigma'(u) is evaluated from u (no cancellation as y -> 1); both skippable.
    """
    t = like(out, hyper(tau))
    R, D = out.shape
    acc = like(out, 0.0)
    do_a = glogits.shape[0] != 0
    for r in range(R):
        for j in range(D):
            ga, gt = binary_concrete_vjp(logits[r, j], noise[r, j], t, gout[r, j])
            if do_a:
                glogits[r, j] += ga
            acc += gt
    if gtau.shape[0] != 0:
        gtau[0] += acc / t


# ============================================================================ probit


@njit(**_JIT)
def probit_sample(a, noise, out):
    """out = H(a + eps), eps standard normal: P(out = 1) = Phi(a) (seed 000)."""
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
    """Straight-through with Gaussian noise (seed 000): ga += gx dPhi/da = gx phi(a)."""
    R, D = gx.shape
    for r in range(R):
        for j in range(D):
            ga[r, j] += gx[r, j] * norm_pdf(a[r, j])


# ============================================================================ Normal


@njit(**_JIT)
def normal_sample(loc, scale, eps, out):
    """out = mu + sigma eps, the pathwise reparameterisation (seed 000, 003)."""
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
    """out_rows[r] = sum_j -log(2 pi)/2 - log sigma - (x - mu)^2 / (2 sigma^2) (seed 004 f)."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s -= gaussian_nll_term(x[r, j], loc[r, j], scale[r, j])
        out_rows[r] = s


@njit(**_JIT)
def normal_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    """Seed 004 (a): d/dmu = (x - mu)/sigma^2 ; d/dsigma = (x - mu)^2/sigma^3 - 1/sigma ;
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
    """One-hot of argmax_k (a_k + g_k) per group, g standard Gumbel (Gumbel-max trick, seed 003)."""
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
    """out = softmax((a + g) / tau) per group (Gumbel-softmax / Concrete, seed 003;
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


@njit(**_JIT)
def softmax_fwd(z, K, out):
    """out = softmax(z) per group of K columns (max-shifted: exp never overflows)."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            softmax_group(z, r, gi * K, K, out)


@njit(**_JIT)
def softmax_bwd(z, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) per group, y = softmax(z) = out."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            softmax_bwd_group(r, gi * K, K, out, gout, gz)


@njit(**_JIT)
def logsumexp_rows(z, K, out):
    """out[r, g] = log sum_k exp(z[r, g*K + k]), shape (R, G)."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            m, ls = logsumexp_group(z, r, gi * K, K)
            out[r, gi] = m + ls


# ============================================================================ closed-form KL


@njit(**_JIT)
def gaussian_kl_std(mu, sigma, out_rows):
    """KL(N(mu, sigma^2) || N(0, 1)) = sum_j (sigma^2 + mu^2 - 1)/2 - log sigma
    (Kingma & Welling 2014, appendix B; seed 003)."""
    R, D = mu.shape
    for r in range(R):
        s = like(mu, 0.0)
        for j in range(D):
            s += gaussian_kl_std_term(mu[r, j], sigma[r, j])
        out_rows[r] = s


@njit(**_JIT)
def gaussian_kl_std_bwd(mu, sigma, grow, gmu, gsigma):
    """gmu += grow mu ; gsigma += grow (sigma - 1/sigma) (each skippable)."""
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    R, D = mu.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            dm, ds = gaussian_kl_std_grad(mu[r, j], sigma[r, j])
            if do_m:
                gmu[r, j] += g * dm
            if do_s:
                gsigma[r, j] += g * ds


@njit(**_JIT)
def gaussian_kl(mu1, s1, mu2, s2, out_rows):
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) = sum_j log(s2/s1) + (s1^2 + (mu1-mu2)^2)/(2 s2^2) - 1/2."""
    R, D = mu1.shape
    for r in range(R):
        s = like(mu1, 0.0)
        for j in range(D):
            s += gaussian_kl_term(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
        out_rows[r] = s


@njit(**_JIT)
def gaussian_kl_bwd(mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    """d/dmu1 = (mu1-mu2)/s2^2 = -d/dmu2 ; d/ds1 = s1/s2^2 - 1/s1 ;
    d/ds2 = 1/s2 - (s1^2 + (mu1-mu2)^2)/s2^3 ; times grow[r], accumulated, each skippable."""
    do_m1 = gmu1.shape[0] != 0
    do_s1 = gs1.shape[0] != 0
    do_m2 = gmu2.shape[0] != 0
    do_s2 = gs2.shape[0] != 0
    R, D = mu1.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            dm, da, db = gaussian_kl_grad(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
            if do_m1:
                gmu1[r, j] += g * dm
            if do_m2:
                gmu2[r, j] -= g * dm
            if do_s1:
                gs1[r, j] += g * da
            if do_s2:
                gs2[r, j] += g * db


# ============================================================================ costs


@njit(**_JIT)
def bernoulli_nll(logits, t, out_rows):
    """out_rows[r] = sum_j softplus(a) - t a = -log p(t | sigma(a)) (t may be soft)."""
    R, D = t.shape
    for r in range(R):
        s = like(t, 0.0)
        for j in range(D):
            s += bernoulli_nll_term(logits[r, j], t[r, j])
        out_rows[r] = s


@njit(**_JIT)
def bernoulli_nll_bwd(logits, t, grow, glogits, gt):
    """glogits += grow (sigma(a) - t) ; gt += -grow a (each skippable)."""
    R, D = t.shape
    for r in range(R):
        g = grow[r]
        if glogits.shape[0] != 0:
            for j in range(D):
                glogits[r, j] -= g * bernoulli_score(logits[r, j], t[r, j])
        if gt.shape[0] != 0:
            for j in range(D):
                gt[r, j] -= g * logits[r, j]


@njit(**_JIT)
def gaussian_nll(mu, sigma, t, out_rows):
    """out_rows[r] = sum_j log(2 pi)/2 + log sigma + (t - mu)^2 / (2 sigma^2) = -f (seed 004)."""
    R, D = t.shape
    for r in range(R):
        s = like(t, 0.0)
        for j in range(D):
            s += gaussian_nll_term(t[r, j], mu[r, j], sigma[r, j])
        out_rows[r] = s


@njit(**_JIT)
def gaussian_nll_bwd(mu, sigma, t, grow, gmu, gsigma, gt):
    """Minus seed 004 (a): gmu += grow (mu - t)/sigma^2 ;
    gsigma += grow (1/sigma - (t - mu)^2/sigma^3) ; gt += grow (t - mu)/sigma^2; skippable."""
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    do_t = gt.shape[0] != 0
    R, D = t.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            q, w = gaussian_nll_grad(t[r, j], mu[r, j], sigma[r, j])
            if do_m:
                gmu[r, j] -= g * q
            if do_s:
                gsigma[r, j] += g * w
            if do_t:
                gt[r, j] += g * q


@njit(**_JIT)
def softmax_xent(logits, t, K, out_rows):
    """out_rows[r] = -sum_g sum_k t_k (a_k - logsumexp_g(a)) (seed 000's softmax head)."""
    R, D = t.shape
    G = D // K
    for r in range(R):
        s = like(t, 0.0)
        for gi in range(G):
            s += softmax_xent_group(logits, t, r, gi * K, K)
        out_rows[r] = s


@njit(**_JIT)
def softmax_xent_bwd(logits, t, K, grow, glogits, gt):
    """glogits += grow (softmax_k(a) sum_i t_i - t_k) ; gt += -grow (a_k - lse); skippable."""
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    R, D = t.shape
    G = D // K
    for r in range(R):
        g = grow[r]
        for gi in range(G):
            softmax_xent_bwd_group(logits, t, r, gi * K, K, g, glogits, gt, do_a, do_t)


@njit(**_JIT)
def nce_logistic(s_data, s_noise, logk_data, logk_noise, out_rows):
    """NCE / negative sampling (seed 003; Gutmann & Hyvarinen 2010, Mikolov et al. 2013):
    out_rows[r] = -sum log sigma(s_d - logk_d) - sum_m log sigma(-(s_n - logk_n))
                = sum softplus(logk_d - s_d) + sum_m softplus(s_n - logk_n)."""
    R, Dd = s_data.shape
    M = s_noise.shape[1]
    for r in range(R):
        s = like(s_data, 0.0)
        for j in range(Dd):
            s += nce_data_cost(s_data[r, j], logk_data[r, j])
        for m in range(M):
            s += nce_noise_cost(s_noise[r, m], logk_noise[r, m])
        out_rows[r] = s


@njit(**_JIT)
def nce_logistic_bwd(s_data, s_noise, logk_data, logk_noise, grow, gs_data, gs_noise):
    """gs_data += -grow sigma(logk_d - s_d) ; gs_noise += grow sigma(s_n - logk_n); skippable."""
    R, Dd = s_data.shape
    M = s_noise.shape[1]
    for r in range(R):
        g = grow[r]
        if gs_data.shape[0] != 0:
            for j in range(Dd):
                gs_data[r, j] += g * nce_data_grad(s_data[r, j], logk_data[r, j])
        if gs_noise.shape[0] != 0:
            for m in range(M):
                gs_noise[r, m] += g * nce_noise_grad(s_noise[r, m], logk_noise[r, m])


# ============================================================================ optimisers


@njit(**_JIT)
def sgd_update(theta, grad, lr):
    """theta -= lr grad (Robbins-Monro step, seed 000; the schedule lives in lr)."""
    a = like(theta, hyper(lr))
    for i in range(theta.shape[0]):
        theta[i] -= a * grad[i]


@njit(**_JIT)
def momentum_update(theta, grad, vel, lr, mu):
    """Heavy-ball momentum (Polyak 1964): vel = mu vel - lr grad ; theta += vel."""
    a = like(theta, hyper(lr))
    m = like(theta, hyper(mu))
    for i in range(theta.shape[0]):
        v = momentum_velocity(vel[i], grad[i], a, m)
        vel[i] = v
        theta[i] += v


@njit(**_JIT)
def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count:
    m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ;
    theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""
    a = like(theta, hyper(lr))
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    ep = like(theta, hyper(eps))
    c1, c2 = adam_bias_corrections(b1, b2, t)
    for i in range(theta.shape[0]):
        delta, mi, vi = adam_step(grad[i], m[i], v[i], a, b1, b2, c1, c2, ep)
        m[i] = mi
        v[i] = vi
        theta[i] -= delta


# the kernels of distributions kept in a module of their own, under the names the lowering calls
from .cpu_laplace import laplace_log_prob, laplace_log_prob_bwd, laplace_sample, laplace_sample_bwd  # noqa: E402,F401
from .cpu_poisson import poisson_log_prob, poisson_log_prob_bwd, poisson_sample  # noqa: E402,F401
