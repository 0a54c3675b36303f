"""CUDA twin of ``cpu/dists.py``: the distribution kernels (Bernoulli with straight-through,
binary concrete and the kept-sigmoid variants, probit, Normal, Categorical and Gumbel-softmax)
as host-side launchers with the CPU kernels' names and arguments.

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
    _cells,
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
_sigmoid_grad = device(S.sigmoid_grad)
_norm_pdf = device(S.norm_pdf)
_threshold = device(S.threshold)
_uniform_threshold = device(S.uniform_threshold)
_sigmoid = device(S.sigmoid)
_normal_reparam = device(S.normal_reparam)
_binary_concrete = device(S.binary_concrete)
_binary_concrete_vjp = device(S.binary_concrete_vjp)
_bernoulli_log_prob_term = device(S.bernoulli_log_prob_term)
_bernoulli_score = device(S.bernoulli_score)
_bernoulli_log_prob_term_sigmoid = device(S.bernoulli_log_prob_term_sigmoid)
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


# ============================================================================ Bernoulli

_threshold_map = _map2(_threshold)
_bernoulli_log_prob = _rows2(_bernoulli_log_prob_term)


def bernoulli_sample(logits, noise, out):
    """out = H(a + eps), eps standard logistic (binary stochastic neuron)."""
    _run_map(_threshold_map, out, logits, noise)


def _bernoulli_sample_rep_body(r, j, logits, reps, u, out):
    R, D = out.shape
    out[r, j] = _uniform_threshold(_sigmoid(-logits[r // reps, j]), u[r, j])


_bernoulli_sample_rep = cells(_bernoulli_sample_rep_body, "out")


def bernoulli_sample_rep(logits, reps, u, out):
    """bernoulli_sample with the logits given once per data row, from uniform noise:
    out = [u > sigma(-a)] (one thread per cell: sigma per cell is no cost on a device)."""
    _run_map(_bernoulli_sample_rep, out, logits, reps, u)


def bernoulli_log_prob(logits, x, out_rows):
    """out_rows[r] = sum_j x log sigma(a) + (1 - x) log sigma(-a)."""
    _run_rows(_bernoulli_log_prob, x.shape[0], logits, x, out_rows)


def _bernoulli_log_prob_bwd_body(r, j, logits, x, grow, glogits, gx):
    R, D = x.shape
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    if do_a:
        glogits[r, j] += g * _bernoulli_score(logits[r, j], x[r, j])
    if do_x:
        gx[r, j] += g * logits[r, j]


_bernoulli_log_prob_bwd = cells(_bernoulli_log_prob_bwd_body, "x")


def bernoulli_log_prob_bwd(logits, x, grow, glogits, gx):
    """glogits += grow (x - sigma(a)) ; gx += grow a (each skippable)."""
    _launch_cells(_bernoulli_log_prob_bwd, x, logits, x, grow, glogits, gx)


@cuda.jit
def _bernoulli_keep(logits, x, out_rows, sig, sign, rs):
    """Row r reads logits row r * rs: rs = 1, or 0 for one logits row shared by every row."""
    R, D = x.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(x, 0.0)
        for j in range(D):
            c, sg = _bernoulli_log_prob_term_sigmoid(logits[r * rs, j], x[r, j])
            s += c
            sig[r, j] = sg
        out_rows[r] = sign * s


def _bernoulli_kept_bwd_body(r, j, logits, x, sig, grow, glogits, gx, sign):
    R, D = x.shape
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = sign * grow[r]
    if do_a:
        glogits[r, j] += g * (x[r, j] - sig[r, j])
    if do_x:
        gx[r, j] += g * logits[r, j]


_bernoulli_kept_bwd = cells(_bernoulli_kept_bwd_body, "x")


def _bernoulli_keep_rep_body(r, logits, reps, x, out_rows, sig, sign):
    """Row r reads logits row r // reps; the first of a data row's rows writes its sig row."""
    R, D = x.shape
    i = r // reps
    s = like(x, 0.0)
    for j in range(D):
        c, sg = _bernoulli_log_prob_term_sigmoid(logits[i, j], x[r, j])
        s += c
        if r == i * reps:
            sig[i, j] = sg
    out_rows[r] = sign * s


_bernoulli_keep_rep = items(_bernoulli_keep_rep_body, "x.shape[0]")


def _bernoulli_kept_bwd_rep_body(r, j, logits, reps, x, sig, grow, glogits, gx, sign):
    R, D = x.shape
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    i = r // reps
    g = sign * grow[r]
    if do_a:
        glogits[r, j] += g * (x[r, j] - sig[i, j])
    if do_x:
        gx[r, j] += g * logits[i, j]


_bernoulli_kept_bwd_rep = cells(_bernoulli_kept_bwd_rep_body, "x")


def bernoulli_log_prob_keep_rep(logits, reps, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits given once per data row (B rows), each repeated on
    `reps` rows; sig has B rows (one thread per row: the CPU kernel's once-per-data-row softplus
    is no saving on a device)."""
    _run_rows(_bernoulli_keep_rep, x.shape[0], logits, reps, x, out_rows, sig, x.dtype.type(1.0))


def bernoulli_log_prob_kept_bwd_rep(logits, reps, x, sig, grow, glogits, gx):
    """bernoulli_log_prob_kept_bwd from bernoulli_log_prob_keep_rep's sigma (B rows)."""
    _launch_cells(_bernoulli_kept_bwd_rep, x, logits, reps, x, sig, grow, glogits, gx, x.dtype.type(1.0))


def bernoulli_nll_keep_rep(logits, reps, t, out_rows, sig):
    """bernoulli_nll_keep with the logits given once per data row, each repeated on `reps` rows."""
    _run_rows(_bernoulli_keep_rep, t.shape[0], logits, reps, t, out_rows, sig, t.dtype.type(-1.0))


def bernoulli_nll_kept_bwd_rep(logits, reps, t, sig, grow, glogits, gt):
    """bernoulli_nll_kept_bwd from bernoulli_nll_keep_rep's sigma (B rows)."""
    _launch_cells(_bernoulli_kept_bwd_rep, t, logits, reps, t, sig, grow, glogits, gt, t.dtype.type(-1.0))


def bernoulli_log_prob_keep_const(p, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits a vector p (D,) shared by every row (one thread
    per row; the CPU kernel's once-per-column work is no saving on a device)."""
    _run_rows(_bernoulli_keep, x.shape[0], p.reshape((1, p.shape[0])), x, out_rows, sig, x.dtype.type(1.0), 0)


def bernoulli_nll_keep_const(p, t, out_rows, sig):
    """bernoulli_nll_keep with the logits a vector p (D,) shared by every row."""
    _run_rows(_bernoulli_keep, t.shape[0], p.reshape((1, p.shape[0])), t, out_rows, sig, t.dtype.type(-1.0), 0)


def bernoulli_log_prob_keep(logits, x, out_rows, sig):
    """bernoulli_log_prob that also keeps sig = sigma(a) for bernoulli_log_prob_kept_bwd."""
    _run_rows(_bernoulli_keep, x.shape[0], logits, x, out_rows, sig, x.dtype.type(1.0), 1)


def bernoulli_log_prob_kept_bwd(logits, x, sig, grow, glogits, gx):
    """glogits += grow (x - sig) ; gx += grow a, from the kept sigma(a) (each skippable)."""
    _launch_cells(_bernoulli_kept_bwd, x, logits, x, sig, grow, glogits, gx, x.dtype.type(1.0))


def bernoulli_nll_keep(logits, t, out_rows, sig):
    """bernoulli_nll (= -bernoulli_log_prob) that also keeps sig = sigma(a)."""
    _run_rows(_bernoulli_keep, t.shape[0], logits, t, out_rows, sig, t.dtype.type(-1.0), 1)


def bernoulli_nll_kept_bwd(logits, t, sig, grow, glogits, gt):
    """glogits += grow (sig - t) ; gt += -grow a, from the kept sigma(a) (each skippable)."""
    _launch_cells(_bernoulli_kept_bwd, t, logits, t, sig, grow, glogits, gt, t.dtype.type(-1.0))


_bernoulli_st = _chain(_sigmoid_grad)


def bernoulli_st_bwd(logits, gx, glogits):
    """Straight-through, logistic noise: glogits += gx sigma'(a)."""
    _launch_cells(_bernoulli_st, gx, logits, gx, glogits)


def _binary_concrete_sample_body(r, j, logits, noise, tau, out):
    t = like(out, hyper(tau))
    R, D = out.shape
    out[r, j] = _binary_concrete(logits[r, j], noise[r, j], t)


_binary_concrete_sample = cells(_binary_concrete_sample_body, "out")


def binary_concrete_sample(logits, noise, tau, out):
    """out = sigma((a + eps) / tau) (Concrete relaxation, Maddison et al. 2017)."""
    _launch_cells(_binary_concrete_sample, out, logits, noise, tau, out)


@cuda.jit
def _binary_concrete_bwd(logits, noise, tau, gout, glogits, gtau):
    t = like(gout, hyper(tau))
    R, D = gout.shape
    do_a = glogits.shape[0] != 0
    acc = like(gout, 0.0)
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        ga, gt = _binary_concrete_vjp(logits[r, j], noise[r, j], t, gout[r, j])
        if do_a:
            glogits[r, j] += ga
        acc += gt
    total = block_sum(acc)
    if cuda.threadIdx.x == 0 and gtau.shape[0] != 0:
        gtau[0] += like(gout, total) / t



def binary_concrete_bwd(logits, noise, tau, out, gout, glogits, gtau):
    """Exact VJP of y = sigma((a + eps) / tau): glogits += gout y (1-y) / tau ;
    gtau[0] += sum -gout y (1-y) u / tau (both skippable)."""
    k = _reducing(_binary_concrete_bwd, _cells(gout), gtau.shape[0] != 0)
    if k is not None:
        k(logits, noise, tau, gout, glogits, gtau)


# ============================================================================ probit

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
