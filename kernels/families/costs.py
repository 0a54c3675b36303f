"""The closed-form KL terms and the cost heads: gaussian_kl_std, gaussian_kl, bernoulli_nll,
gaussian_nll, softmax_xent, nce_logistic and their ``*_bwd`` VJPs (the kept-sigmoid
``bernoulli_nll_keep*`` are in ``families/bernoulli.py``).

The conventions are ``cpu/core.py``'s, which re-exports every kernel here (the generated step calls
``core.<name>``). Declared once (kernels/declare.py): every kernel is a row body, its row sum or
its row's gradients (each skippable gradient tested once per row; one CUDA thread per row, the
sums over j in the CPU's order); the per-element formulas are ``scalar.py``'s.
"""
from ..declare import rows
from ..math.scalar import (
    bernoulli_nll_term,
    bernoulli_score,
    gaussian_kl_grad,
    gaussian_kl_std_grad,
    gaussian_kl_std_term,
    gaussian_kl_term,
    gaussian_nll_grad,
    gaussian_nll_term,
    like,
    nce_data_cost,
    nce_data_grad,
    nce_noise_cost,
    nce_noise_grad,
)
from ..math.groups import softmax_xent_bwd_group, softmax_xent_group


# ============================================================================ closed-form KL


@rows("mu")
def gaussian_kl_std(r, mu, sigma, out_rows):
    """KL(N(mu, sigma^2) || N(0, 1)) = sum_j (sigma^2 + mu^2 - 1)/2 - log sigma
    (Kingma & Welling 2014, appendix B)."""
    s = like(mu, 0.0)
    for j in range(mu.shape[1]):
        s += gaussian_kl_std_term(mu[r, j], sigma[r, j])
    out_rows[r] = s


@rows("mu")
def gaussian_kl_std_bwd(r, mu, sigma, grow, gmu, gsigma):
    """gmu += grow mu ; gsigma += grow (sigma - 1/sigma) (each skippable)."""
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    g = grow[r]
    for j in range(mu.shape[1]):
        dm, ds = gaussian_kl_std_grad(mu[r, j], sigma[r, j])
        if do_m:
            gmu[r, j] += g * dm
        if do_s:
            gsigma[r, j] += g * ds


@rows("mu1")
def gaussian_kl(r, mu1, s1, mu2, s2, out_rows):
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) = sum_j log(s2/s1) + (s1^2 + (mu1-mu2)^2)/(2 s2^2) - 1/2."""
    s = like(mu1, 0.0)
    for j in range(mu1.shape[1]):
        s += gaussian_kl_term(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
    out_rows[r] = s


@rows("mu1")
def gaussian_kl_bwd(r, mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    """d/dmu1 = (mu1-mu2)/s2^2 = -d/dmu2 ; d/ds1 = s1/s2^2 - 1/s1 ;
    d/ds2 = 1/s2 - (s1^2 + (mu1-mu2)^2)/s2^3 ; times grow[r], accumulated, each skippable."""
    do_m1 = gmu1.shape[0] != 0
    do_s1 = gs1.shape[0] != 0
    do_m2 = gmu2.shape[0] != 0
    do_s2 = gs2.shape[0] != 0
    g = grow[r]
    for j in range(mu1.shape[1]):
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


@rows("t")
def bernoulli_nll(r, logits, t, out_rows):
    """out_rows[r] = sum_j softplus(a) - t a = -log p(t | sigma(a)) (t may be soft)."""
    s = like(t, 0.0)
    for j in range(t.shape[1]):
        s += bernoulli_nll_term(logits[r, j], t[r, j])
    out_rows[r] = s


@rows("t")
def bernoulli_nll_bwd(r, logits, t, grow, glogits, gt):
    """glogits += grow (sigma(a) - t) ; gt += -grow a (each skippable)."""
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(t.shape[1]):
            glogits[r, j] -= g * bernoulli_score(logits[r, j], t[r, j])
    if gt.shape[0] != 0:
        for j in range(t.shape[1]):
            gt[r, j] -= g * logits[r, j]


@rows("t")
def gaussian_nll(r, mu, sigma, t, out_rows):
    """out_rows[r] = sum_j log(2 pi)/2 + log sigma + (t - mu)^2 / (2 sigma^2) = -log N(t; mu, sigma^2)."""
    s = like(t, 0.0)
    for j in range(t.shape[1]):
        s += gaussian_nll_term(t[r, j], mu[r, j], sigma[r, j])
    out_rows[r] = s


@rows("t")
def gaussian_nll_bwd(r, mu, sigma, t, grow, gmu, gsigma, gt):
    """Minus the gradients of log N(t; mu, sigma^2): gmu += grow (mu - t)/sigma^2 ;
    gsigma += grow (1/sigma - (t - mu)^2/sigma^3) ; gt += grow (t - mu)/sigma^2; skippable."""
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    do_t = gt.shape[0] != 0
    g = grow[r]
    for j in range(t.shape[1]):
        q, w = gaussian_nll_grad(t[r, j], mu[r, j], sigma[r, j])
        if do_m:
            gmu[r, j] -= g * q
        if do_s:
            gsigma[r, j] += g * w
        if do_t:
            gt[r, j] += g * q


@rows("t")
def softmax_xent(r, logits, t, K, out_rows):
    """out_rows[r] = -sum_g sum_k t_k (a_k - logsumexp_g(a)) (softmax cross-entropy head)."""
    s = like(t, 0.0)
    for gi in range(t.shape[1] // K):
        s += softmax_xent_group(logits, t, r, gi * K, K)
    out_rows[r] = s


@rows("t")
def softmax_xent_bwd(r, logits, t, K, grow, glogits, gt):
    """glogits += grow (softmax_k(a) sum_i t_i - t_k) ; gt += -grow (a_k - lse); skippable."""
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    g = grow[r]
    for gi in range(t.shape[1] // K):
        softmax_xent_bwd_group(logits, t, r, gi * K, K, g, glogits, gt, do_a, do_t)


@rows("s_data")
def nce_logistic(r, s_data, s_noise, logk_data, logk_noise, out_rows):
    """NCE / negative sampling (Gutmann & Hyvarinen 2010, Mikolov et al. 2013):
    out_rows[r] = -sum log sigma(s_d - logk_d) - sum_m log sigma(-(s_n - logk_n))
                = sum softplus(logk_d - s_d) + sum_m softplus(s_n - logk_n)."""
    s = like(s_data, 0.0)
    for j in range(s_data.shape[1]):
        s += nce_data_cost(s_data[r, j], logk_data[r, j])
    for m in range(s_noise.shape[1]):
        s += nce_noise_cost(s_noise[r, m], logk_noise[r, m])
    out_rows[r] = s


@rows("s_data")
def nce_logistic_bwd(r, s_data, s_noise, logk_data, logk_noise, grow, gs_data, gs_noise):
    """gs_data += -grow sigma(logk_d - s_d) ; gs_noise += grow sigma(s_n - logk_n); skippable."""
    g = grow[r]
    if gs_data.shape[0] != 0:
        for j in range(s_data.shape[1]):
            gs_data[r, j] += g * nce_data_grad(s_data[r, j], logk_data[r, j])
    if gs_noise.shape[0] != 0:
        for m in range(s_noise.shape[1]):
            gs_noise[r, m] += g * nce_noise_grad(s_noise[r, m], logk_noise[r, m])


R, D, K, M = 4, 6, 3, 3   # rows, columns (G = 2 groups of K), NCE noise samples
G = D // K
PARITY = {
    "gaussian_kl_std": lambda g: (g.x(R, D), g.pos(R, D), g.out(R)),
    "gaussian_kl_std_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "gaussian_kl": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.out(R)),
    "gaussian_kl_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R),
                                  g.x(R, D), g.x(R, D), g.skip(2), g.x(R, D)),
    "bernoulli_nll": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R)),
    "bernoulli_nll_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "gaussian_nll": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "gaussian_nll_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D),
                                   g.x(R, D), g.x(R, D)),
    "softmax_xent": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.out(R)),
    "softmax_xent_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.x(R), g.x(R, D),
                                   g.x(R, D)),
    "nce_logistic": lambda g: (g.x(R, D), g.x(R, M), g.x(R, D), g.x(R, M), g.out(R)),
    "nce_logistic_bwd": lambda g: (g.x(R, D), g.x(R, M), g.x(R, D), g.x(R, M), g.x(R),
                                   g.x(R, D), g.x(R, M)),
}
