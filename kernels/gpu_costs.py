"""CUDA twin of ``cpu_costs.py``: the closed-form KL terms and the cost heads (gaussian_kl_std,
gaussian_kl, bernoulli_nll, gaussian_nll, softmax_xent, nce_logistic and their VJPs) as
host-side launchers with the CPU kernels' names and arguments.

The conventions and the parallel layout are ``gpu.py``'s, which re-exports every public name
here; the kernel makers and launch helpers are ``gpu_core.py``'s.
"""
from numba import cuda

from . import scalar as S
from . import scalar_groups as SG
from .device import device
from .gpu_core import _group_rows, _groups, _launch_cells, _rows2, _run_rows
from .scalar import like
from .registry import cells, items

# device versions of the scalar math (one source with the CPU kernels)
_bernoulli_score = device(S.bernoulli_score)
_bernoulli_nll_term = device(S.bernoulli_nll_term)
_gaussian_nll_term = device(S.gaussian_nll_term)
_gaussian_nll_grad = device(S.gaussian_nll_grad)
_gaussian_kl_std_term = device(S.gaussian_kl_std_term)
_gaussian_kl_std_grad = device(S.gaussian_kl_std_grad)
_gaussian_kl_term = device(S.gaussian_kl_term)
_gaussian_kl_grad = device(S.gaussian_kl_grad)
_nce_data_cost = device(S.nce_data_cost)
_nce_data_grad = device(S.nce_data_grad)
_nce_noise_cost = device(S.nce_noise_cost)
_nce_noise_grad = device(S.nce_noise_grad)
_softmax_xent_group = device(SG.softmax_xent_group)
_softmax_xent_bwd_group = device(SG.softmax_xent_bwd_group)


# ============================================================================ closed-form KL

_gaussian_kl_std = _rows2(_gaussian_kl_std_term)


def gaussian_kl_std(mu, sigma, out_rows):
    """KL(N(mu, sigma^2) || N(0, 1)) summed over a row (Kingma & Welling 2014)."""
    _run_rows(_gaussian_kl_std, mu.shape[0], mu, sigma, out_rows)


def _gaussian_kl_std_bwd_body(r, j, mu, sigma, grow, gmu, gsigma):
    R, D = mu.shape
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    g = grow[r]
    dm, ds = _gaussian_kl_std_grad(mu[r, j], sigma[r, j])
    if do_m:
        gmu[r, j] += g * dm
    if do_s:
        gsigma[r, j] += g * ds


_gaussian_kl_std_bwd = cells(_gaussian_kl_std_bwd_body, "mu")


def gaussian_kl_std_bwd(mu, sigma, grow, gmu, gsigma):
    """gmu += grow mu ; gsigma += grow (sigma - 1/sigma) (each skippable)."""
    _launch_cells(_gaussian_kl_std_bwd, mu, mu, sigma, grow, gmu, gsigma)


def _gaussian_kl_body(r, mu1, s1, mu2, s2, out_rows):
    R, D = mu1.shape
    s = like(mu1, 0.0)
    for j in range(D):
        s += _gaussian_kl_term(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
    out_rows[r] = s


_gaussian_kl = items(_gaussian_kl_body, "mu1.shape[0]")


def gaussian_kl(mu1, s1, mu2, s2, out_rows):
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) summed over a row."""
    _run_rows(_gaussian_kl, mu1.shape[0], mu1, s1, mu2, s2, out_rows)


def _gaussian_kl_bwd_body(r, j, mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    R, D = mu1.shape
    do_m1 = gmu1.shape[0] != 0
    do_s1 = gs1.shape[0] != 0
    do_m2 = gmu2.shape[0] != 0
    do_s2 = gs2.shape[0] != 0
    g = grow[r]
    dm, da, db = _gaussian_kl_grad(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
    if do_m1:
        gmu1[r, j] += g * dm
    if do_m2:
        gmu2[r, j] -= g * dm
    if do_s1:
        gs1[r, j] += g * da
    if do_s2:
        gs2[r, j] += g * db


_gaussian_kl_bwd = cells(_gaussian_kl_bwd_body, "mu1")


def gaussian_kl_bwd(mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    """Gradients of gaussian_kl into all four parameters, times grow[r], each skippable."""
    _launch_cells(_gaussian_kl_bwd, mu1, mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2)


# ============================================================================ costs

_bernoulli_nll = _rows2(_bernoulli_nll_term)


def bernoulli_nll(logits, t, out_rows):
    """out_rows[r] = sum_j softplus(a) - t a."""
    _run_rows(_bernoulli_nll, t.shape[0], logits, t, out_rows)


def _bernoulli_nll_bwd_body(r, j, logits, t, grow, glogits, gt):
    R, D = t.shape
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    g = grow[r]
    if do_a:
        glogits[r, j] -= g * _bernoulli_score(logits[r, j], t[r, j])
    if do_t:
        gt[r, j] -= g * logits[r, j]


_bernoulli_nll_bwd = cells(_bernoulli_nll_bwd_body, "t")


def bernoulli_nll_bwd(logits, t, grow, glogits, gt):
    """glogits += grow (sigma(a) - t) ; gt += -grow a (each skippable)."""
    _launch_cells(_bernoulli_nll_bwd, t, logits, t, grow, glogits, gt)


def _gaussian_nll_body(r, mu, sigma, t, out_rows):
    R, D = t.shape
    s = like(t, 0.0)
    for j in range(D):
        s += _gaussian_nll_term(t[r, j], mu[r, j], sigma[r, j])
    out_rows[r] = s


_gaussian_nll = items(_gaussian_nll_body, "t.shape[0]")


def gaussian_nll(mu, sigma, t, out_rows):
    """out_rows[r] = sum_j -log N(t; mu, sigma^2), the Gaussian NLL."""
    _run_rows(_gaussian_nll, t.shape[0], mu, sigma, t, out_rows)


def _gaussian_nll_bwd_body(r, j, mu, sigma, t, grow, gmu, gsigma, gt):
    R, D = t.shape
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    do_t = gt.shape[0] != 0
    g = grow[r]
    q, w = _gaussian_nll_grad(t[r, j], mu[r, j], sigma[r, j])
    if do_m:
        gmu[r, j] -= g * q
    if do_s:
        gsigma[r, j] += g * w
    if do_t:
        gt[r, j] += g * q


_gaussian_nll_bwd = cells(_gaussian_nll_bwd_body, "t")


def gaussian_nll_bwd(mu, sigma, t, grow, gmu, gsigma, gt):
    """Gradients of gaussian_nll times grow[r], accumulated, each skippable."""
    _launch_cells(_gaussian_nll_bwd, t, mu, sigma, t, grow, gmu, gsigma, gt)


_softmax_xent = _group_rows(_softmax_xent_group)


def softmax_xent(logits, t, K, out_rows):
    """out_rows[r] = -sum_g sum_k t_k (a_k - logsumexp_g(a))."""
    _run_rows(_softmax_xent, t.shape[0], logits, t, K, out_rows)


def _softmax_xent_bwd_body(i, logits, t, K, grow, glogits, gt):
    R, D = t.shape
    G = D // K
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    r = i // G
    _softmax_xent_bwd_group(
        logits, t, r, (i - r * G) * K, K, grow[r], glogits, gt, do_a, do_t)


_softmax_xent_bwd = items(_softmax_xent_bwd_body, "t.shape[0] * (t.shape[1] // K)")


def softmax_xent_bwd(logits, t, K, grow, glogits, gt):
    """glogits += grow (softmax_k(a) sum_i t_i - t_k) ; gt += -grow (a_k - lse); skippable."""
    _run_rows(_softmax_xent_bwd, _groups(t, K), logits, t, K, grow, glogits, gt)


def _nce_logistic_body(r, s_data, s_noise, logk_data, logk_noise, out_rows):
    R, Dd = s_data.shape
    M = s_noise.shape[1]
    s = like(s_data, 0.0)
    for j in range(Dd):
        s += _nce_data_cost(s_data[r, j], logk_data[r, j])
    for m in range(M):
        s += _nce_noise_cost(s_noise[r, m], logk_noise[r, m])
    out_rows[r] = s


_nce_logistic = items(_nce_logistic_body, "s_data.shape[0]")


def nce_logistic(s_data, s_noise, logk_data, logk_noise, out_rows):
    """NCE / negative sampling per row (Gutmann & Hyvarinen 2010, Mikolov et al. 2013)."""
    _run_rows(_nce_logistic, s_data.shape[0], s_data, s_noise, logk_data, logk_noise, out_rows)


def _nce_data_bwd_body(r, j, s_data, logk_data, grow, gs_data):
    R, D = s_data.shape
    gs_data[r, j] += grow[r] * _nce_data_grad(s_data[r, j], logk_data[r, j])


_nce_data_bwd = cells(_nce_data_bwd_body, "s_data")


def _nce_noise_bwd_body(r, m, s_noise, logk_noise, grow, gs_noise):
    R, M = s_noise.shape
    gs_noise[r, m] += grow[r] * _nce_noise_grad(s_noise[r, m], logk_noise[r, m])


_nce_noise_bwd = cells(_nce_noise_bwd_body, "s_noise")


def nce_logistic_bwd(s_data, s_noise, logk_data, logk_noise, grow, gs_data, gs_noise):
    """gs_data += -grow sigma(logk_d - s_d) ; gs_noise += grow sigma(s_n - logk_n); skippable."""
    if gs_data.shape[0] != 0:
        _launch_cells(_nce_data_bwd, s_data, s_data, logk_data, grow, gs_data)
    if gs_noise.shape[0] != 0:
        _launch_cells(_nce_noise_bwd, s_noise, s_noise, logk_noise, grow, gs_noise)


from . import cpu_costs as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("costs", _cpu_twin, globals())
