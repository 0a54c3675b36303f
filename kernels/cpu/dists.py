"""CPU kernels of the distributions, as ``@njit`` loops: sample, log-prob and their VJPs for
Bernoulli (with straight-through, binary concrete and the ``*_keep`` / ``*_kept_bwd`` variants
that keep sigma(a) for the VJP), probit, Normal and Categorical (Gumbel-max, inverse CDF,
Gumbel-softmax).

``bernoulli_nll_keep``, ``bernoulli_nll_keep_const`` and ``bernoulli_nll_kept_bwd`` (the
Bernoulli cost head's kept-sigmoid variants) are here too, beside the ``_bernoulli_keep*``
helpers they share with the log-prob kernels. The conventions are ``cpu/core.py``'s, which
re-exports every public name here (the generated step calls ``core.<name>``); the CUDA twin
is ``cuda/dists.py``.
"""
from numba import njit

from ..math.scalar import (
    bernoulli_log_prob_term,
    bernoulli_log_prob_term_sigmoid,
    bernoulli_score,
    binary_concrete,
    binary_concrete_vjp,
    gaussian_nll_grad,
    gaussian_nll_term,
    hyper,
    like,
    norm_pdf,
    normal_reparam,
    probit_log_odds,
    probit_log_prob_term,
    probit_score,
    sigmoid,
    sigmoid_grad,
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


# ============================================================================ Bernoulli


@njit(**_JIT)
def bernoulli_sample(logits, noise, out):
    """out = H(a + eps), eps standard logistic: P(out = 1) = sigma(a) (binary stochastic neuron)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = threshold(logits[r, j], noise[r, j])


@njit(**_JIT)
def bernoulli_sample_rep(logits, reps, u, out):
    """bernoulli_sample with the logits given once per data row (B rows), each repeated on `reps`
    drawn rows, from uniform noise: out = [u > sigma(-a)], the event a + logit(u) > 0 of
    bernoulli_sample's logistic noise made from the same u, so a data row's sigma costs one exp
    per unit instead of a log per drawn unit. The first drawn row of a data row holds sigma(-a)
    meanwhile. A NaN logit gives NaN values (not a silent 0)."""
    R, D = out.shape
    one, zero = like(u, 1.0), like(u, 0.0)
    for i in range(R // reps):
        r0 = i * reps
        nan = False
        for j in range(D):
            q = sigmoid(-logits[i, j])
            nan |= q != q
            out[r0, j] = q
        for r in range(r0 + 1, r0 + reps):
            for j in range(D):
                out[r, j] = one if u[r, j] > out[r0, j] else zero
        for j in range(D):
            out[r0, j] = one if u[r0, j] > out[r0, j] else zero
        if nan:
            for r in range(r0, r0 + reps):
                for j in range(D):
                    if logits[i, j] != logits[i, j]:
                        out[r, j] = logits[i, j]


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
    for r in range(R):   # a pure reduction, apart from the copies below, vectorises (2.5 -> 0.7 us at 160 x 32)
        s = zero
        for j in range(D):
            s += x[r, j] * p[j]
        out_rows[r] = sign * (s + sp)
    for r in range(1, R):
        for j in range(D):
            sig[r, j] = sig[0, j]


@njit(**_JIT)
def bernoulli_log_prob_keep_const(p, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits a vector p (D,) shared by every row."""
    _bernoulli_keep_const(p, x, out_rows, sig, like(x, 1.0))


@njit(**_JIT)
def bernoulli_nll_keep_const(p, t, out_rows, sig):
    """bernoulli_nll_keep with the logits a vector p (D,) shared by every row (a prior)."""
    _bernoulli_keep_const(p, t, out_rows, sig, like(t, -1.0))


@njit(**_JIT)
def _bernoulli_keep_rep(logits, reps, x, out_rows, sig, sign):
    """_bernoulli_keep for logits that are equal on each data row's `reps` rows, given once per
    data row (logits (B, D), x (B reps, D): a node of the data-row sub-graph): sum_j log p(x | sigma(a))
    = sum_j x a_j - sum_j softplus(a_j), whose second sum and sig = sigma(a) (B rows) are computed
    once per data row, not once per drawn row (the K draws of a multi-sample program)."""
    B, D = logits.shape
    zero = like(x, 0.0)
    for i in range(B):
        sp = zero
        for j in range(D):
            c, sg = bernoulli_log_prob_term_sigmoid(logits[i, j], zero)   # -softplus(a_j), sigma(a_j)
            sp += c
            sig[i, j] = sg
        for r in range(i * reps, (i + 1) * reps):
            s = zero
            for j in range(D):
                s += x[r, j] * logits[i, j]
            out_rows[r] = sign * (s + sp)


@njit(**_JIT)
def _bernoulli_kept_bwd_rep(logits, reps, x, sig, grow, glogits, gx, sign):
    """_bernoulli_kept_bwd from _bernoulli_keep_rep's sigma (B rows; row r reads data row r // reps):
    glogits += sign grow (x - sig) ; gx += sign grow a, on the B reps rows (each skippable)."""
    R, D = x.shape
    for r in range(R):
        i = r // reps
        g = sign * grow[r]
        if glogits.shape[0] != 0:
            for j in range(D):
                glogits[r, j] += g * (x[r, j] - sig[i, j])
        if gx.shape[0] != 0:
            for j in range(D):
                gx[r, j] += g * logits[i, j]


@njit(**_JIT)
def bernoulli_log_prob_keep_rep(logits, reps, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits given once per data row, each repeated on `reps`
    drawn rows (sig: B rows)."""
    _bernoulli_keep_rep(logits, reps, x, out_rows, sig, like(x, 1.0))


@njit(**_JIT)
def bernoulli_log_prob_kept_bwd_rep(logits, reps, x, sig, grow, glogits, gx):
    """bernoulli_log_prob_kept_bwd from bernoulli_log_prob_keep_rep's sigma (B rows)."""
    _bernoulli_kept_bwd_rep(logits, reps, x, sig, grow, glogits, gx, like(x, 1.0))


@njit(**_JIT)
def bernoulli_nll_keep_rep(logits, reps, t, out_rows, sig):
    """bernoulli_nll_keep with the logits given once per data row, each repeated on `reps` rows."""
    _bernoulli_keep_rep(logits, reps, t, out_rows, sig, like(t, -1.0))


@njit(**_JIT)
def bernoulli_nll_kept_bwd_rep(logits, reps, t, sig, grow, glogits, gt):
    """bernoulli_nll_kept_bwd from bernoulli_nll_keep_rep's sigma (B rows)."""
    _bernoulli_kept_bwd_rep(logits, reps, t, sig, grow, glogits, gt, like(t, -1.0))


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
    """Straight-through (Bengio et al. 2013), logistic noise: glogits += gx dF/da = gx sigma(a) sigma(-a)."""
    R, D = gx.shape
    for r in range(R):
        for j in range(D):
            glogits[r, j] += gx[r, j] * sigmoid_grad(logits[r, j])


@njit(**_JIT)
def binary_concrete_sample(logits, noise, tau, out):
    """out = sigma((a + eps) / tau), eps standard logistic (Concrete relaxation;
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
