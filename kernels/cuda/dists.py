"""CUDA twin of ``cpu/dists.py``: the distribution kernels (probit, Normal, Categorical and
Gumbel-softmax; Bernoulli's are declared once in ``families/bernoulli.py``) as host-side launchers with the CPU kernels' names and arguments.

The conventions and the parallel layout are ``cuda/core.py``'s, which re-exports every public name
here (the generated step binds ``core`` to ``gpu``); the kernel makers and launch helpers are
``gpu_core.py``'s.
"""
from numba import cuda

from ..math import scalar as S
from ..math import groups as SG
from .device import device
from .launch import (
    _acc,
    _chain,
    _group_rows,
    _groups,
    _launch_cells,
    _map2,
    _mul_acc,
    _reducing,
    _rows2,
    _run_map,
    _run_rows,
    block_sum,
)
from ..math.scalar import hyper, like
from ..registry import cells, items

# device versions of the scalar math (one source with the CPU kernels)
_norm_pdf = device(S.norm_pdf)
_threshold = device(S.threshold)
_normal_reparam = device(S.normal_reparam)
_probit_log_prob_term = device(S.probit_log_prob_term)
_probit_score = device(S.probit_score)
_probit_log_odds = device(S.probit_log_odds)
_gaussian_nll_term = device(S.gaussian_nll_term)
_gaussian_nll_grad = device(S.gaussian_nll_grad)
_categorical_sample_group = device(SG.categorical_sample_group)
_categorical_icdf_group = device(SG.categorical_icdf_group)
_categorical_log_prob_group = device(SG.categorical_log_prob_group)
_categorical_log_prob_bwd_group = device(SG.categorical_log_prob_bwd_group)
_gumbel_softmax_group = device(SG.gumbel_softmax_group)
_gumbel_softmax_bwd_group = device(SG.gumbel_softmax_bwd_group)


# ============================================================================ probit

_threshold_map = _map2(_threshold)
_probit_log_prob = _rows2(_probit_log_prob_term)


def probit_sample(a, noise, out):
    """out = H(a + eps), eps standard normal (binary stochastic neuron)."""
    _run_map(_threshold_map, out, a, noise)


def probit_log_prob(a, x, out_rows):
    """out_rows[r] = sum_j x log Phi(a) + (1 - x) log Phi(-a)."""
    _run_rows(_probit_log_prob, x.shape[0], a, x, out_rows)


def _probit_log_prob_bwd_body(r, j, a, x, grow, ga, gx):
    R, D = x.shape
    do_a = ga.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    if do_a:
        ga[r, j] += g * _probit_score(a[r, j], x[r, j])
    if do_x:
        gx[r, j] += g * _probit_log_odds(a[r, j])


_probit_log_prob_bwd = cells(_probit_log_prob_bwd_body, "x")


def probit_log_prob_bwd(a, x, grow, ga, gx):
    """ga += grow (x M(a) - (1 - x) M(-a)) ; gx += grow (log Phi(a) - log Phi(-a))."""
    _launch_cells(_probit_log_prob_bwd, x, a, x, grow, ga, gx)


_probit_st = _chain(_norm_pdf)


def probit_st_bwd(a, gx, ga):
    """Straight-through, Gaussian noise: ga += gx phi(a)."""
    _launch_cells(_probit_st, gx, a, gx, ga)


# ============================================================================ Normal


def _normal_sample_body(r, j, loc, scale, eps, out):
    R, D = out.shape
    out[r, j] = _normal_reparam(loc[r, j], scale[r, j], eps[r, j])


_normal_sample = cells(_normal_sample_body, "out")


def normal_sample(loc, scale, eps, out):
    """out = mu + sigma eps (pathwise)."""
    _launch_cells(_normal_sample, out, loc, scale, eps, out)


def normal_sample_bwd(eps, gout, gloc, gscale):
    """gloc += gout ; gscale += gout eps (each skippable)."""
    if gloc.shape[0] != 0:
        _run_map(_acc, gloc, gout)
    if gscale.shape[0] != 0:
        _run_map(_mul_acc, gscale, gout, eps)


def _normal_log_prob_body(r, loc, scale, x, out_rows):
    R, D = x.shape
    s = like(x, 0.0)
    for j in range(D):
        s -= _gaussian_nll_term(x[r, j], loc[r, j], scale[r, j])
    out_rows[r] = s


_normal_log_prob = items(_normal_log_prob_body, "x.shape[0]")


def normal_log_prob(loc, scale, x, out_rows):
    """out_rows[r] = sum_j log N(x; mu, sigma^2), the Gaussian log-likelihood."""
    _run_rows(_normal_log_prob, x.shape[0], loc, scale, x, out_rows)


def _normal_log_prob_bwd_body(r, j, loc, scale, x, grow, gloc, gscale, gx):
    R, D = x.shape
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    q, w = _gaussian_nll_grad(x[r, j], loc[r, j], scale[r, j])
    if do_l:
        gloc[r, j] += g * q
    if do_s:
        gscale[r, j] -= g * w
    if do_x:
        gx[r, j] -= g * q


_normal_log_prob_bwd = cells(_normal_log_prob_bwd_body, "x")


def normal_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    """Gradients of log N(x; mu, sigma^2) times grow[r], accumulated, skippable."""
    _launch_cells(_normal_log_prob_bwd, x, loc, scale, x, grow, gloc, gscale, gx)


# ============================================================================ Categorical
# One thread per (row, group): r = i // G, group gi = i % G, columns gi*K .. gi*K + K - 1.



def _categorical_sample_body(i, logits, gumbel, K, out):
    R, D = out.shape
    G = D // K
    r = i // G
    _categorical_sample_group(logits, gumbel, r, (i - r * G) * K, K, out)


_categorical_sample = items(_categorical_sample_body, "out.shape[0] * (out.shape[1] // K)")


def categorical_sample(logits, gumbel, K, out):
    """One-hot of argmax_k (a_k + g_k) per group (Gumbel-max trick)."""
    _run_rows(_categorical_sample, _groups(out, K), logits, gumbel, K, out)


def _categorical_inverse_cdf_sample_body(i, logits, u, K, out):
    R, D = out.shape
    G = D // K
    r = i // G
    gi = i - r * G
    _categorical_icdf_group(logits, u[r, gi], r, gi * K, K, out)


_categorical_inverse_cdf_sample = items(_categorical_inverse_cdf_sample_body, "out.shape[0] * (out.shape[1] // K)")


def categorical_inverse_cdf_sample(logits, u, K, out):
    """One-hot of the smallest k with sum_{i<=k} softmax(a)_i > u[r, g] (inverse CDF)."""
    _run_rows(_categorical_inverse_cdf_sample, _groups(out, K), logits, u, K, out)


_categorical_log_prob = _group_rows(_categorical_log_prob_group)


def categorical_log_prob(logits, x, K, out_rows):
    """out_rows[r] = sum_g sum_k x_k (a_k - logsumexp_g(a))."""
    _run_rows(_categorical_log_prob, x.shape[0], logits, x, K, out_rows)


def _categorical_log_prob_bwd_body(i, logits, x, K, grow, glogits, gx):
    R, D = x.shape
    G = D // K
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    r = i // G
    _categorical_log_prob_bwd_group(
        logits, x, r, (i - r * G) * K, K, grow[r], glogits, gx, do_a, do_x)


_categorical_log_prob_bwd = items(_categorical_log_prob_bwd_body, "x.shape[0] * (x.shape[1] // K)")


def categorical_log_prob_bwd(logits, x, K, grow, glogits, gx):
    """glogits += grow (x_k - softmax_k(a) sum_i x_i) ; gx += grow (a_k - lse); skippable."""
    _run_rows(_categorical_log_prob_bwd, _groups(x, K), logits, x, K, grow, glogits, gx)


def _gumbel_softmax_sample_body(i, logits, gumbel, tau, K, out):
    t = like(out, hyper(tau))
    R, D = out.shape
    G = D // K
    r = i // G
    _gumbel_softmax_group(logits, gumbel, t, r, (i - r * G) * K, K, out)


_gumbel_softmax_sample = items(_gumbel_softmax_sample_body, "out.shape[0] * (out.shape[1] // K)")


def gumbel_softmax_sample(logits, gumbel, tau, K, out):
    """out = softmax((a + g) / tau) per group (Gumbel-softmax, Jang et al. 2017)."""
    _run_rows(_gumbel_softmax_sample, _groups(out, K), logits, gumbel, tau, K, out)


@cuda.jit
def _gumbel_softmax_bwd(logits, gumbel, tau, K, out, gout, glogits, gtau):
    t = like(out, hyper(tau))
    R, D = out.shape
    G = D // K
    do_a = glogits.shape[0] != 0
    acc = like(out, 0.0)
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        acc += _gumbel_softmax_bwd_group(
            logits, gumbel, t, r, (i - r * G) * K, K, out, gout, glogits, do_a)
    total = block_sum(acc)
    if cuda.threadIdx.x == 0 and gtau.shape[0] != 0:
        gtau[0] += like(out, total) / t


def gumbel_softmax_bwd(logits, gumbel, tau, K, out, gout, glogits, gtau):
    """Exact VJP of the Gumbel-softmax sample into the logits and tau (both skippable)."""
    k = _reducing(_gumbel_softmax_bwd, _groups(out, K), gtau.shape[0] != 0)
    if k is not None:
        k(logits, gumbel, tau, K, out, gout, glogits, gtau)


from ..cpu import dists as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("dists", _cpu_twin, globals())
