"""CUDA twin of ``cpu.py``: the same public functions, names and arguments, as host-side
launchers over numba CUDA device arrays (the generated step binds ``K_`` to this module).

Every per-element formula is a ``scalar.py`` function re-jitted for the device by
``device()`` (``kernels/device.py``); the kernels here only index arrays, loop, chain
(``gout *``) and accumulate. Conventions are cpu.py's: forward kernels overwrite, backward
kernels accumulate (``+=``), a gradient with ``shape[0] == 0`` is skipped, hyper-parameters
are 1-element (device) arrays or plain numbers, all arrays of a call share float32/float64.

Parallel layout (grid-stride loops, block size from ``gpu_config``):
* elementwise kernels: one thread per (r, j);
* per-row sums (log-probs, costs): one thread per row, summing j in the CPU's order, so
  they give the CPU's bits whenever the scalar functions do;
* softmax-group kernels: one thread per (row, group), running the scalar.py group helper;
* affine products: one thread per output element (inner loop over the shared index);
  column sums (bias, broadcast) one thread per column, rows in order;
* a tau gradient (a sum over all elements) is reduced in ONE block (``block_sum``), so it
  is deterministic; without a tau gradient the same kernel runs on the full grid.
"""
from numba import cuda

from . import scalar as S
from .device import device
from .gpu_core import block_sum, launch, run, single_block
from .scalar import hyper, like

# device versions of the scalar math (one source with the CPU kernels)
_sigmoid = device(S.sigmoid)
_sigmoid_grad = device(S.sigmoid_grad)
_softplus = device(S.softplus)
_sqrt1p = device(S.sqrt1p)
_sqrt1p_grad = device(S.sqrt1p_grad)
_tanh = device(S.tanh)
_tanh_grad_out = device(S.tanh_grad_out)
_relu = device(S.relu)
_exp = device(S.exp)
_norm_pdf = device(S.norm_pdf)
_threshold = device(S.threshold)
_normal_reparam = device(S.normal_reparam)
_binary_concrete = device(S.binary_concrete)
_binary_concrete_vjp = device(S.binary_concrete_vjp)
_bernoulli_log_prob_term = device(S.bernoulli_log_prob_term)
_bernoulli_score = device(S.bernoulli_score)
_bernoulli_nll_term = device(S.bernoulli_nll_term)
_bernoulli_log_prob_term_sigmoid = device(S.bernoulli_log_prob_term_sigmoid)
_probit_log_prob_term = device(S.probit_log_prob_term)
_probit_score = device(S.probit_score)
_probit_log_odds = device(S.probit_log_odds)
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
_momentum_velocity = device(S.momentum_velocity)
_adam_bias_corrections = device(S.adam_bias_corrections)
_adam_step = device(S.adam_step)
_logsumexp_group = device(S.logsumexp_group)
_categorical_sample_group = device(S.categorical_sample_group)
_categorical_icdf_group = device(S.categorical_icdf_group)
_categorical_log_prob_group = device(S.categorical_log_prob_group)
_categorical_log_prob_bwd_group = device(S.categorical_log_prob_bwd_group)
_gumbel_softmax_group = device(S.gumbel_softmax_group)
_gumbel_softmax_bwd_group = device(S.gumbel_softmax_bwd_group)
_softmax_group = device(S.softmax_group)
_softmax_bwd_group = device(S.softmax_bwd_group)
_softmax_xent_group = device(S.softmax_xent_group)
_softmax_xent_bwd_group = device(S.softmax_xent_bwd_group)


def _cells(a):
    return a.shape[0] * a.shape[1]


# ============================================================================ kernel makers


def _map1(f):
    """out[r, j] = f(a[r, j])."""

    @cuda.jit
    def k(a, out):
        R, D = out.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            out[r, j] = f(a[r, j])

    return k


def _map2(f):
    """out[r, j] = f(a[r, j], b[r, j])."""

    @cuda.jit
    def k(a, b, out):
        R, D = out.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            out[r, j] = f(a[r, j], b[r, j])

    return k


def _chain(f):
    """gx[r, j] += gout[r, j] * f(a[r, j]) (the VJP of an elementwise map)."""

    @cuda.jit
    def k(a, gout, gx):
        R, D = gout.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            gx[r, j] += gout[r, j] * f(a[r, j])

    return k


def _rows2(f):
    """out_rows[r] = sum_j f(a[r, j], x[r, j]) (one thread per row, j in order)."""

    @cuda.jit
    def k(a, x, out_rows):
        R, D = x.shape
        for r in range(cuda.grid(1), R, cuda.gridsize(1)):
            s = like(x, 0.0)
            for j in range(D):
                s += f(a[r, j], x[r, j])
            out_rows[r] = s

    return k


def _group_rows(f):
    """out_rows[r] = sum_g f(a, x, r, g*K, K) over the G = D // K groups of a row."""

    @cuda.jit
    def k(a, x, K, out_rows):
        R, D = x.shape
        G = D // K
        for r in range(cuda.grid(1), R, cuda.gridsize(1)):
            s = like(x, 0.0)
            for gi in range(G):
                s += f(a, x, r, gi * K, K)
            out_rows[r] = s

    return k


# ============================================================================ layers


@cuda.jit
def _affine_fwd(x, W, b, out):
    R, O = out.shape
    I = x.shape[1]
    for i in range(cuda.grid(1), R * O, cuda.gridsize(1)):
        r = i // O
        o = i - r * O
        s = like(out, 0.0)
        for q in range(I):
            s += x[r, q] * W[q, o]
        out[r, o] = s + b[o]


@cuda.jit
def _affine_bwd_x(W, gout, gx):
    R, I = gx.shape
    O = gout.shape[1]
    for i in range(cuda.grid(1), R * I, cuda.gridsize(1)):
        r = i // I
        q = i - r * I
        s = like(gx, 0.0)
        for o in range(O):
            s += gout[r, o] * W[q, o]
        gx[r, q] += s


@cuda.jit
def _affine_bwd_W(x, gout, gW):
    I, O = gW.shape
    R = gout.shape[0]
    for i in range(cuda.grid(1), I * O, cuda.gridsize(1)):
        q = i // O
        o = i - q * O
        s = like(gW, 0.0)
        for r in range(R):
            s += x[r, q] * gout[r, o]
        gW[q, o] += s


@cuda.jit
def _column_sums(gout, gb):
    """gb[o] += sum_r gout[r, o], rows in order (as the CPU loop adds them)."""
    R, O = gout.shape
    for o in range(cuda.grid(1), O, cuda.gridsize(1)):
        for r in range(R):
            gb[o] += gout[r, o]


def affine_fwd(x, W, b, out):
    """out = x W + b."""
    k = launch(_affine_fwd, _cells(out))
    if k is not None:
        k(x, W, b, out)


def affine_bwd(x, W, gout, gx, gW, gb):
    """gx += gout W^T ; gW += x^T gout ; gb += sum_r gout[r] (each skippable)."""
    if gx.shape[0] != 0:
        k = launch(_affine_bwd_x, _cells(gx))
        if k is not None:
            k(W, gout, gx)
    if gW.shape[0] != 0:
        k = launch(_affine_bwd_W, _cells(gW))
        if k is not None:
            k(x, gout, gW)
    if gb.shape[0] != 0:
        k = launch(_column_sums, gb.shape[0])
        if k is not None:
            k(gout, gb)


_sigmoid_fwd = _map1(_sigmoid)
_sigmoid_bwd = _chain(_sigmoid_grad)
_tanh_fwd = _map1(_tanh)
_tanh_bwd = _chain(_tanh_grad_out)
_relu_fwd = _map1(_relu)
_softplus_fwd = _map1(_softplus)
_softplus_bwd = _chain(_sigmoid)
_sqrt1p_fwd = _map1(_sqrt1p)
_sqrt1p_bwd = _chain(_sqrt1p_grad)
_exp_fwd = _map1(_exp)


def _run_map(kernel, out, *args):
    """Launch ``kernel(*args, out)`` over the cells of the 2D ``out``."""
    k = launch(kernel, _cells(out))
    if k is not None:
        k(*args, out)


def _launch_cells(kernel, shape_of, *args):
    """Launch ``kernel(*args)`` over the cells of the 2D array ``shape_of``."""
    k = launch(kernel, _cells(shape_of))
    if k is not None:
        k(*args)


def sigmoid_fwd(z, out):
    """out = sigma(z)."""
    _run_map(_sigmoid_fwd, out, z)


def sigmoid_bwd(z, out, gout, gz):
    """gz += gout * sigma'(z)."""
    _run_map(_sigmoid_bwd, gz, z, gout)


def tanh_fwd(z, out):
    """out = tanh(z)."""
    _run_map(_tanh_fwd, out, z)


def tanh_bwd(z, out, gout, gz):
    """gz += gout * (1 - tanh(z)^2), from out."""
    _run_map(_tanh_bwd, gz, out, gout)


def relu_fwd(z, out):
    """out = max(z, 0)."""
    _run_map(_relu_fwd, out, z)


@cuda.jit
def _relu_bwd(z, gout, gz):
    R, D = gout.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        if z[r, j] > 0:
            gz[r, j] += gout[r, j]


def relu_bwd(z, out, gout, gz):
    """gz += gout * [z > 0]."""
    _run_map(_relu_bwd, gz, z, gout)


def softplus_fwd(z, out):
    """out = log(1 + exp(z))."""
    _run_map(_softplus_fwd, out, z)


def softplus_bwd(z, out, gout, gz):
    """gz += gout * sigma(z)."""
    _run_map(_softplus_bwd, gz, z, gout)


def sqrt1p_fwd(z, out):
    """out = sqrt(1 + z^2) (seed 004 (b))."""
    _run_map(_sqrt1p_fwd, out, z)


def sqrt1p_bwd(z, out, gout, gz):
    """gz += gout * z / sqrt(1 + z^2)."""
    _run_map(_sqrt1p_bwd, gz, z, gout)


def exp_fwd(z, out):
    """out = exp(z)."""
    _run_map(_exp_fwd, out, z)


@cuda.jit
def _mul_acc(a, b, out):
    """out[r, j] += a[r, j] * b[r, j]."""
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] += a[r, j] * b[r, j]


def exp_bwd(z, out, gout, gz):
    """gz += gout * exp(z) (= gout * out)."""
    _run_map(_mul_acc, gz, gout, out)


@cuda.jit
def _add(a, b, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = a[r, j] + b[r, j]


@cuda.jit
def _acc(a, out):
    """out[r, j] += a[r, j]."""
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] += a[r, j]


@cuda.jit
def _mul(a, b, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = a[r, j] * b[r, j]


def add_fwd(a, b, out):
    """out = a + b."""
    _run_map(_add, out, a, b)


def add_bwd(gout, ga, gb):
    """ga += gout ; gb += gout (each skippable)."""
    if ga.shape[0] != 0:
        _run_map(_acc, ga, gout)
    if gb.shape[0] != 0:
        _run_map(_acc, gb, gout)


def mul_fwd(a, b, out):
    """out = a * b (elementwise)."""
    _run_map(_mul, out, a, b)


def mul_bwd(a, b, gout, ga, gb):
    """ga += gout * b ; gb += gout * a (each skippable)."""
    if ga.shape[0] != 0:
        _run_map(_mul_acc, ga, gout, b)
    if gb.shape[0] != 0:
        _run_map(_mul_acc, gb, gout, a)


@cuda.jit
def _broadcast_rows(p, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        out[r, i - r * D] = p[i - r * D]


def broadcast_rows_fwd(p, out):
    """out[r, :] = p for every row."""
    _run_map(_broadcast_rows, out, p)


def broadcast_rows_bwd(gout, gp):
    """gp += sum_r gout[r, :]."""
    k = launch(_column_sums, gp.shape[0])
    if k is not None:
        k(gout, gp)


@cuda.jit
def _copy(x, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = x[r, j]


def copy_fwd(x, out):
    """out = x."""
    _run_map(_copy, out, x)


def copy_bwd(gout, gx):
    """gx += gout."""
    _run_map(_acc, gx, gout)


@cuda.jit
def _row_sum(x, out_rows):
    R, D = x.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(x, 0.0)
        for j in range(D):
            s += x[r, j]
        out_rows[r] = s


@cuda.jit
def _row_spread_acc(grow, gx):
    R, D = gx.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        gx[r, i - r * D] += grow[r]


def row_sum_fwd(x, out_rows):
    """out_rows[r] = sum_j x[r, j]."""
    k = launch(_row_sum, x.shape[0])
    if k is not None:
        k(x, out_rows)


def row_sum_bwd(grow, gx):
    """gx[r, :] += grow[r]."""
    _run_map(_row_spread_acc, gx, grow)


_run_rows = run   # over n_rows items (rows, groups or vector entries)


# ============================================================================ Bernoulli

_threshold_map = _map2(_threshold)
_bernoulli_log_prob = _rows2(_bernoulli_log_prob_term)


def bernoulli_sample(logits, noise, out):
    """out = H(a + eps), eps standard logistic (seed 000)."""
    _run_map(_threshold_map, out, logits, noise)


def bernoulli_log_prob(logits, x, out_rows):
    """out_rows[r] = sum_j x log sigma(a) + (1 - x) log sigma(-a)."""
    _run_rows(_bernoulli_log_prob, x.shape[0], logits, x, out_rows)


@cuda.jit
def _bernoulli_log_prob_bwd(logits, x, grow, glogits, gx):
    R, D = x.shape
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        if do_a:
            glogits[r, j] += g * _bernoulli_score(logits[r, j], x[r, j])
        if do_x:
            gx[r, j] += g * logits[r, j]


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


@cuda.jit
def _bernoulli_kept_bwd(logits, x, sig, grow, glogits, gx, sign):
    R, D = x.shape
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = sign * grow[r]
        if do_a:
            glogits[r, j] += g * (x[r, j] - sig[r, j])
        if do_x:
            gx[r, j] += g * logits[r, j]


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


@cuda.jit
def _binary_concrete_sample(logits, noise, tau, out):
    t = like(out, hyper(tau))
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = _binary_concrete(logits[r, j], noise[r, j], t)


def binary_concrete_sample(logits, noise, tau, out):
    """out = sigma((a + eps) / tau) (Concrete relaxation, seed 002)."""
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


def _reducing(kernel, n, wants_sum):
    """One block when a grand total is wanted (deterministic block_sum), else the full grid."""
    if wants_sum:
        return single_block(kernel, n)
    return launch(kernel, n)


def binary_concrete_bwd(logits, noise, tau, out, gout, glogits, gtau):
    """Exact VJP of y = sigma((a + eps) / tau): glogits += gout y (1-y) / tau ;
    gtau[0] += sum -gout y (1-y) u / tau (both skippable)."""
    k = _reducing(_binary_concrete_bwd, _cells(gout), gtau.shape[0] != 0)
    if k is not None:
        k(logits, noise, tau, gout, glogits, gtau)


# ============================================================================ probit

_probit_log_prob = _rows2(_probit_log_prob_term)


def probit_sample(a, noise, out):
    """out = H(a + eps), eps standard normal (seed 000)."""
    _run_map(_threshold_map, out, a, noise)


def probit_log_prob(a, x, out_rows):
    """out_rows[r] = sum_j x log Phi(a) + (1 - x) log Phi(-a)."""
    _run_rows(_probit_log_prob, x.shape[0], a, x, out_rows)


@cuda.jit
def _probit_log_prob_bwd(a, x, grow, ga, gx):
    R, D = x.shape
    do_a = ga.shape[0] != 0
    do_x = gx.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        if do_a:
            ga[r, j] += g * _probit_score(a[r, j], x[r, j])
        if do_x:
            gx[r, j] += g * _probit_log_odds(a[r, j])


def probit_log_prob_bwd(a, x, grow, ga, gx):
    """ga += grow (x M(a) - (1 - x) M(-a)) ; gx += grow (log Phi(a) - log Phi(-a))."""
    _launch_cells(_probit_log_prob_bwd, x, a, x, grow, ga, gx)


_probit_st = _chain(_norm_pdf)


def probit_st_bwd(a, gx, ga):
    """Straight-through, Gaussian noise: ga += gx phi(a)."""
    _launch_cells(_probit_st, gx, a, gx, ga)


# ============================================================================ Normal


@cuda.jit
def _normal_sample(loc, scale, eps, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = _normal_reparam(loc[r, j], scale[r, j], eps[r, j])


def normal_sample(loc, scale, eps, out):
    """out = mu + sigma eps (pathwise)."""
    _launch_cells(_normal_sample, out, loc, scale, eps, out)


def normal_sample_bwd(eps, gout, gloc, gscale):
    """gloc += gout ; gscale += gout eps (each skippable)."""
    if gloc.shape[0] != 0:
        _run_map(_acc, gloc, gout)
    if gscale.shape[0] != 0:
        _run_map(_mul_acc, gscale, gout, eps)


@cuda.jit
def _normal_log_prob(loc, scale, x, out_rows):
    R, D = x.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(x, 0.0)
        for j in range(D):
            s -= _gaussian_nll_term(x[r, j], loc[r, j], scale[r, j])
        out_rows[r] = s


def normal_log_prob(loc, scale, x, out_rows):
    """out_rows[r] = sum_j log N(x; mu, sigma^2) (seed 004 f)."""
    _run_rows(_normal_log_prob, x.shape[0], loc, scale, x, out_rows)


@cuda.jit
def _normal_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    R, D = x.shape
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        q, w = _gaussian_nll_grad(x[r, j], loc[r, j], scale[r, j])
        if do_l:
            gloc[r, j] += g * q
        if do_s:
            gscale[r, j] -= g * w
        if do_x:
            gx[r, j] -= g * q


def normal_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    """Seed 004 (a) gradients of log N(x; mu, sigma^2) times grow[r], accumulated, skippable."""
    _launch_cells(_normal_log_prob_bwd, x, loc, scale, x, grow, gloc, gscale, gx)


# ============================================================================ Categorical
# One thread per (row, group): r = i // G, group gi = i % G, columns gi*K .. gi*K + K - 1.


def _groups(a, K):
    return a.shape[0] * (a.shape[1] // K)


@cuda.jit
def _categorical_sample(logits, gumbel, K, out):
    R, D = out.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _categorical_sample_group(logits, gumbel, r, (i - r * G) * K, K, out)


def categorical_sample(logits, gumbel, K, out):
    """One-hot of argmax_k (a_k + g_k) per group (Gumbel-max, seed 003)."""
    _run_rows(_categorical_sample, _groups(out, K), logits, gumbel, K, out)


@cuda.jit
def _categorical_inverse_cdf_sample(logits, u, K, out):
    R, D = out.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        gi = i - r * G
        _categorical_icdf_group(logits, u[r, gi], r, gi * K, K, out)


def categorical_inverse_cdf_sample(logits, u, K, out):
    """One-hot of the smallest k with sum_{i<=k} softmax(a)_i > u[r, g] (inverse CDF)."""
    _run_rows(_categorical_inverse_cdf_sample, _groups(out, K), logits, u, K, out)


_categorical_log_prob = _group_rows(_categorical_log_prob_group)


def categorical_log_prob(logits, x, K, out_rows):
    """out_rows[r] = sum_g sum_k x_k (a_k - logsumexp_g(a))."""
    _run_rows(_categorical_log_prob, x.shape[0], logits, x, K, out_rows)


@cuda.jit
def _categorical_log_prob_bwd(logits, x, K, grow, glogits, gx):
    R, D = x.shape
    G = D // K
    do_a = glogits.shape[0] != 0
    do_x = gx.shape[0] != 0
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _categorical_log_prob_bwd_group(
            logits, x, r, (i - r * G) * K, K, grow[r], glogits, gx, do_a, do_x)


def categorical_log_prob_bwd(logits, x, K, grow, glogits, gx):
    """glogits += grow (x_k - softmax_k(a) sum_i x_i) ; gx += grow (a_k - lse); skippable."""
    _run_rows(_categorical_log_prob_bwd, _groups(x, K), logits, x, K, grow, glogits, gx)


@cuda.jit
def _gumbel_softmax_sample(logits, gumbel, tau, K, out):
    t = like(out, hyper(tau))
    R, D = out.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _gumbel_softmax_group(logits, gumbel, t, r, (i - r * G) * K, K, out)


def gumbel_softmax_sample(logits, gumbel, tau, K, out):
    """out = softmax((a + g) / tau) per group (Gumbel-softmax, seed 003)."""
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


@cuda.jit
def _softmax_fwd(z, K, out):
    R, D = z.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _softmax_group(z, r, (i - r * G) * K, K, out)


def softmax_fwd(z, K, out):
    """out = softmax(z) per group of K columns."""
    _run_rows(_softmax_fwd, _groups(z, K), z, K, out)


@cuda.jit
def _softmax_bwd(K, out, gout, gz):
    R, D = out.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _softmax_bwd_group(r, (i - r * G) * K, K, out, gout, gz)


def softmax_bwd(z, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) per group, y = out."""
    _run_rows(_softmax_bwd, _groups(z, K), K, out, gout, gz)


@cuda.jit
def _logsumexp_rows(z, K, out):
    R, D = z.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        gi = i - r * G
        m, ls = _logsumexp_group(z, r, gi * K, K)
        out[r, gi] = m + ls


def logsumexp_rows(z, K, out):
    """out[r, g] = log sum_k exp(z[r, g*K + k])."""
    _run_rows(_logsumexp_rows, _groups(z, K), z, K, out)


# ============================================================================ closed-form KL

_gaussian_kl_std = _rows2(_gaussian_kl_std_term)


def gaussian_kl_std(mu, sigma, out_rows):
    """KL(N(mu, sigma^2) || N(0, 1)) summed over a row (Kingma & Welling 2014)."""
    _run_rows(_gaussian_kl_std, mu.shape[0], mu, sigma, out_rows)


@cuda.jit
def _gaussian_kl_std_bwd(mu, sigma, grow, gmu, gsigma):
    R, D = mu.shape
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        dm, ds = _gaussian_kl_std_grad(mu[r, j], sigma[r, j])
        if do_m:
            gmu[r, j] += g * dm
        if do_s:
            gsigma[r, j] += g * ds


def gaussian_kl_std_bwd(mu, sigma, grow, gmu, gsigma):
    """gmu += grow mu ; gsigma += grow (sigma - 1/sigma) (each skippable)."""
    _launch_cells(_gaussian_kl_std_bwd, mu, mu, sigma, grow, gmu, gsigma)


@cuda.jit
def _gaussian_kl(mu1, s1, mu2, s2, out_rows):
    R, D = mu1.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(mu1, 0.0)
        for j in range(D):
            s += _gaussian_kl_term(mu1[r, j], s1[r, j], mu2[r, j], s2[r, j])
        out_rows[r] = s


def gaussian_kl(mu1, s1, mu2, s2, out_rows):
    """KL(N(mu1, s1^2) || N(mu2, s2^2)) summed over a row."""
    _run_rows(_gaussian_kl, mu1.shape[0], mu1, s1, mu2, s2, out_rows)


@cuda.jit
def _gaussian_kl_bwd(mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    R, D = mu1.shape
    do_m1 = gmu1.shape[0] != 0
    do_s1 = gs1.shape[0] != 0
    do_m2 = gmu2.shape[0] != 0
    do_s2 = gs2.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
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


def gaussian_kl_bwd(mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2):
    """Gradients of gaussian_kl into all four parameters, times grow[r], each skippable."""
    _launch_cells(_gaussian_kl_bwd, mu1, mu1, s1, mu2, s2, grow, gmu1, gs1, gmu2, gs2)


# ============================================================================ costs

_bernoulli_nll = _rows2(_bernoulli_nll_term)


def bernoulli_nll(logits, t, out_rows):
    """out_rows[r] = sum_j softplus(a) - t a."""
    _run_rows(_bernoulli_nll, t.shape[0], logits, t, out_rows)


@cuda.jit
def _bernoulli_nll_bwd(logits, t, grow, glogits, gt):
    R, D = t.shape
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        if do_a:
            glogits[r, j] -= g * _bernoulli_score(logits[r, j], t[r, j])
        if do_t:
            gt[r, j] -= g * logits[r, j]


def bernoulli_nll_bwd(logits, t, grow, glogits, gt):
    """glogits += grow (sigma(a) - t) ; gt += -grow a (each skippable)."""
    _launch_cells(_bernoulli_nll_bwd, t, logits, t, grow, glogits, gt)


@cuda.jit
def _gaussian_nll(mu, sigma, t, out_rows):
    R, D = t.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(t, 0.0)
        for j in range(D):
            s += _gaussian_nll_term(t[r, j], mu[r, j], sigma[r, j])
        out_rows[r] = s


def gaussian_nll(mu, sigma, t, out_rows):
    """out_rows[r] = sum_j -log N(t; mu, sigma^2) (seed 004)."""
    _run_rows(_gaussian_nll, t.shape[0], mu, sigma, t, out_rows)


@cuda.jit
def _gaussian_nll_bwd(mu, sigma, t, grow, gmu, gsigma, gt):
    R, D = t.shape
    do_m = gmu.shape[0] != 0
    do_s = gsigma.shape[0] != 0
    do_t = gt.shape[0] != 0
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g = grow[r]
        q, w = _gaussian_nll_grad(t[r, j], mu[r, j], sigma[r, j])
        if do_m:
            gmu[r, j] -= g * q
        if do_s:
            gsigma[r, j] += g * w
        if do_t:
            gt[r, j] += g * q


def gaussian_nll_bwd(mu, sigma, t, grow, gmu, gsigma, gt):
    """Gradients of gaussian_nll times grow[r], accumulated, each skippable."""
    _launch_cells(_gaussian_nll_bwd, t, mu, sigma, t, grow, gmu, gsigma, gt)


_softmax_xent = _group_rows(_softmax_xent_group)


def softmax_xent(logits, t, K, out_rows):
    """out_rows[r] = -sum_g sum_k t_k (a_k - logsumexp_g(a))."""
    _run_rows(_softmax_xent, t.shape[0], logits, t, K, out_rows)


@cuda.jit
def _softmax_xent_bwd(logits, t, K, grow, glogits, gt):
    R, D = t.shape
    G = D // K
    do_a = glogits.shape[0] != 0
    do_t = gt.shape[0] != 0
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        _softmax_xent_bwd_group(
            logits, t, r, (i - r * G) * K, K, grow[r], glogits, gt, do_a, do_t)


def softmax_xent_bwd(logits, t, K, grow, glogits, gt):
    """glogits += grow (softmax_k(a) sum_i t_i - t_k) ; gt += -grow (a_k - lse); skippable."""
    _run_rows(_softmax_xent_bwd, _groups(t, K), logits, t, K, grow, glogits, gt)


@cuda.jit
def _nce_logistic(s_data, s_noise, logk_data, logk_noise, out_rows):
    R, Dd = s_data.shape
    M = s_noise.shape[1]
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = like(s_data, 0.0)
        for j in range(Dd):
            s += _nce_data_cost(s_data[r, j], logk_data[r, j])
        for m in range(M):
            s += _nce_noise_cost(s_noise[r, m], logk_noise[r, m])
        out_rows[r] = s


def nce_logistic(s_data, s_noise, logk_data, logk_noise, out_rows):
    """NCE / negative sampling per row (Gutmann & Hyvarinen 2010, Mikolov et al. 2013)."""
    _run_rows(_nce_logistic, s_data.shape[0], s_data, s_noise, logk_data, logk_noise, out_rows)


@cuda.jit
def _nce_data_bwd(s_data, logk_data, grow, gs_data):
    R, D = s_data.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        gs_data[r, j] += grow[r] * _nce_data_grad(s_data[r, j], logk_data[r, j])


@cuda.jit
def _nce_noise_bwd(s_noise, logk_noise, grow, gs_noise):
    R, M = s_noise.shape
    for i in range(cuda.grid(1), R * M, cuda.gridsize(1)):
        r = i // M
        m = i - r * M
        gs_noise[r, m] += grow[r] * _nce_noise_grad(s_noise[r, m], logk_noise[r, m])


def nce_logistic_bwd(s_data, s_noise, logk_data, logk_noise, grow, gs_data, gs_noise):
    """gs_data += -grow sigma(logk_d - s_d) ; gs_noise += grow sigma(s_n - logk_n); skippable."""
    if gs_data.shape[0] != 0:
        _launch_cells(_nce_data_bwd, s_data, s_data, logk_data, grow, gs_data)
    if gs_noise.shape[0] != 0:
        _launch_cells(_nce_noise_bwd, s_noise, s_noise, logk_noise, grow, gs_noise)


# ============================================================================ optimisers


@cuda.jit
def _sgd(theta, grad, lr):
    a = like(theta, hyper(lr))
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        theta[i] -= a * grad[i]


def sgd_update(theta, grad, lr):
    """theta -= lr grad (Robbins-Monro step; the schedule lives in lr)."""
    _run_rows(_sgd, theta.shape[0], theta, grad, lr)


@cuda.jit
def _momentum(theta, grad, vel, lr, mu):
    a = like(theta, hyper(lr))
    m = like(theta, hyper(mu))
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        v = _momentum_velocity(vel[i], grad[i], a, m)
        vel[i] = v
        theta[i] += v


def momentum_update(theta, grad, vel, lr, mu):
    """Heavy-ball momentum (Polyak 1964): vel = mu vel - lr grad ; theta += vel."""
    _run_rows(_momentum, theta.shape[0], theta, grad, vel, lr, mu)


@cuda.jit
def _adam(theta, grad, m, v, lr, beta1, beta2, eps, t):
    a = like(theta, hyper(lr))
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    ep = like(theta, hyper(eps))
    c1, c2 = _adam_bias_corrections(b1, b2, t)
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        delta, mi, vi = _adam_step(grad[i], m[i], v[i], a, b1, b2, c1, c2, ep)
        m[i] = mi
        v[i] = vi
        theta[i] -= delta


def adam_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Adam (Kingma & Ba 2015, Algorithm 1), t = 1-based step count."""
    _run_rows(_adam, theta.shape[0], theta, grad, m, v, lr, beta1, beta2, eps, t)


# the kernels of distributions kept in a module of their own, under the names the lowering calls
from .gpu_laplace import laplace_log_prob, laplace_log_prob_bwd, laplace_sample, laplace_sample_bwd  # noqa: E402,F401
from .gpu_poisson import poisson_log_prob, poisson_log_prob_bwd, poisson_sample  # noqa: E402,F401
