"""CUDA twin of ``cpu/rows.py``: row bookkeeping (tiling, row weights, baselines,
enumeration digits, scalar affine maps) as host launchers over device arrays.

Rows are laid out r = ((i * K) + k) * S + c as on the CPU. Formulas come from ``scalar.py``
through ``device()``. Functions that return a value on the CPU return it here too: a
one-block reduction (``gpu_core.block_sum``, deterministic) writes it to a device scratch
word that is copied back. ``moving_average_baseline`` updates ``state`` on the device.
"""
import math

import numpy as np
from numba import cuda

from ..cpu import rows as cpu_rows
from ..math import scalar as S
from ..math.scalar import like
from . import products
from .device import device
from ..native.launch import block_sum, scratch, single_block
from ..native.launch import run as _run
from ..registry import cells, items

_score_signal = device(S.score_signal)
_weighted = device(S.weighted)
_loo_value = device(S.loo_value)
_baseline_residual_value = device(S.baseline_residual_value)
_moving_average = device(S.moving_average)
_scale_shift = device(S.scale_shift)
_loo_marginal_group = device(cpu_rows._loo_marginal_group)
_is_group_head = device(cpu_rows._is_group_head)


def _repeat_rows_body(r, j, x, reps, out):
    R, D = out.shape
    out[r, j] = x[r // reps, j]


_repeat_rows = cells(_repeat_rows_body, "out")


def flat_view(a, off, shape):
    """cpu_rows.flat_view's twin: a[off:off + prod(shape)] of a device array, reshaped."""
    n = 1
    for s in shape:
        n *= s
    return a[off:off + n].reshape(shape)


def repeat_rows(x, reps, out):
    """out[r] = x[r // reps]."""
    _run(_repeat_rows, out.shape[0] * out.shape[1], x, reps, out)


def _fold_rows_body(b, j, g, reps, out):
    B, D = out.shape
    s = out[b, j]
    for r in range(b * reps, (b + 1) * reps):
        s += g[r, j]
    out[b, j] = s


_fold_rows = cells(_fold_rows_body, "out")


def fold_rows(g, reps, out):
    """out[i] += sum of g[r] over the reps rows r // reps = i (the VJP of repeat_rows)."""
    _run(_fold_rows, out.shape[0] * out.shape[1], g, reps, out)


def _gather_rows_body(r, c, x, reps, idx, out):
    R, D = out.shape
    n = idx.shape[0]
    i = r // n
    out[r, c] = x[i * reps + int(idx[r - i * n]), c]


_gather_rows = cells(_gather_rows_body, "out")


def gather_rows(x, reps, idx, out):
    """out[i * n + j] = x[i * reps + idx[j]], n = idx.shape[0] (cpu_rows.gather_rows)."""
    _run(_gather_rows, out.shape[0] * out.shape[1], x, reps, idx, out)


def _fold_into_body(r, c, g, idx, reps, out):
    Rd, D = out.shape
    n = idx.shape[0]
    i = r // reps
    m = r - i * reps
    s = out[r, c]
    for j in range(n):
        if int(idx[j]) == m:
            s += g[i * n + j, c]
    out[r, c] = s


_fold_into = cells(_fold_into_body, "out")


def fold_into(g, idx, reps, out):
    """out[i * reps + idx[j]] += g[i * n + j] (cpu_rows.fold_into)."""
    _run(_fold_into, out.shape[0] * out.shape[1], g, idx, reps, out)


def _gather1_body(r, x, reps, idx, out):
    n = idx.shape[0]
    i = r // n
    out[r] = x[i * reps + int(idx[r - i * n])]


_gather1 = items(_gather1_body, "out.shape[0]")


def gather1(x, reps, idx, out):
    _run(_gather1, out.shape[0], x, reps, idx, out)


def _fold1_body(r, g, idx, reps, out):
    n = idx.shape[0]
    i = r // reps
    m = r - i * reps
    s = like(out, 0.0)   # in out's precision, as the CPU accumulates
    for j in range(n):
        if int(idx[j]) == m:
            s += g[i * n + j]
    out[r] = s


_fold1 = items(_fold1_body, "out.shape[0]")


def fold1(g, idx, reps, out):
    """out[i * reps + m] = sum of g[i * n + j] over idx[j] = m (overwritten; cpu_rows.fold1)."""
    _run(_fold1, out.shape[0], g, idx, reps, out)


def expand_rows(a, reps):
    """In place: a[r] = a[r // reps] for every row (the first R / reps rows spread to all R)."""
    products.spread_rows(a, reps)


def _fill_body(r, out, value):
    out[r] = value


_fill = items(_fill_body, "out.shape[0]")


def fill(out, value):
    """out[r] = value (a 1D array)."""
    _run(_fill, out.shape[0], out, value)


@cuda.jit
def _weighted_total(rw, cost, acc, res):
    s = 0.0
    for r in range(cuda.threadIdx.x, cost.shape[0], cuda.blockDim.x):
        acc[r] += cost[r]
        s += _weighted(np.float64(rw[r]), np.float64(cost[r]))
    total = block_sum(s)
    if cuda.threadIdx.x == 0:
        res[0] = total


def weighted_total(rw, cost, acc):
    """acc[r] += cost[r]; returns sum_r rw[r] * cost[r] (float64, copied to the host)."""
    res = scratch()
    single_block(_weighted_total, cost.shape[0])(rw, cost, acc, res)
    return float(res.copy_to_host()[0])


def _add_rows_body(r, a, acc):
    acc[r] += a[r]


_add_rows = items(_add_rows_body, "a.shape[0]")


def add_rows(a, acc):
    """acc[r] += a[r]."""
    _run(_add_rows, a.shape[0], a, acc)


def _enum_bernoulli_body(r, j, stride, out):
    R, D = out.shape
    size = 1 << D
    c = (r // stride) % size
    out[r, j] = (c >> j) & 1


_enum_bernoulli = cells(_enum_bernoulli_body, "out")


def enum_bernoulli(stride, out):
    """Bernoulli units from the enumeration digit (r // stride) % 2^D: bit j -> unit j."""
    _run(_enum_bernoulli, out.shape[0] * out.shape[1], stride, out)


def _enum_categorical_body(r, stride, K, out):
    R, D = out.shape
    groups = D // K
    size = K ** groups
    c = (r // stride) % size
    for g in range(groups):
        k = c % K
        c //= K
        for q in range(K):
            out[r, g * K + q] = 1 if q == k else 0


_enum_categorical = items(_enum_categorical_body, "out.shape[0]")


def enum_categorical(stride, K, out):
    """One-hot groups from the base-K enumeration digit (r // stride) % K^G."""
    _run(_enum_categorical, out.shape[0], stride, K, out)


def _mul_exp_body(r, lp, rw):
    rw[r] *= math.exp(lp[r])


_mul_exp = items(_mul_exp_body, "rw.shape[0]")


def mul_exp(lp, rw):
    """rw[r] *= exp(lp[r])."""
    _run(_mul_exp, rw.shape[0], lp, rw)


def _score_weights_body(r, rw, L, b, out):
    out[r] = _score_signal(rw[r], L[r], b[r])


_score_weights = items(_score_weights_body, "out.shape[0]")


def score_weights(rw, L, b, out):
    """out[r] = rw[r] * (L[r] - b[r])."""
    _run(_score_weights, out.shape[0], rw, L, b, out)


def _loo_baseline_body(q, L, K, S, b):
    n = L.shape[0] // (K * S)
    i = q // S
    c = q - i * S
    tot = 0.0
    for k in range(K):
        tot += L[(i * K + k) * S + c]
    for k in range(K):
        r = (i * K + k) * S + c
        b[r] = _loo_value(tot, L[r], K)


_loo_baseline = items(_loo_baseline_body, "(L.shape[0] // (K * S)) * S")


def loo_baseline(L, K, S, b):
    """Leave-one-out baseline over the K samples of each data row and configuration."""
    _run(_loo_baseline, (L.shape[0] // (K * S)) * S, L, K, S, b)


def _loo_baseline_marginal_body(q, L, rw, K, S, strides, sizes, b):
    n = L.shape[0] // (K * S)
    i = q // S
    c = q - i * S
    if _is_group_head(c, strides, sizes):
        _loo_marginal_group(L, rw, K, S, i, c, strides, sizes, b)


_loo_baseline_marginal = items(_loo_baseline_marginal_body, "(L.shape[0] // (K * S)) * S")


def loo_baseline_marginal(L, rw, K, S, strides, sizes, b):
    """Leave-one-out baseline from each sample's signal marginalised over the enumerated
    digits (strides, sizes) below the scored node; see cpu_rows.loo_baseline_marginal."""
    _run(_loo_baseline_marginal, (L.shape[0] // (K * S)) * S, L, rw, K, S, strides, sizes, b)


@cuda.jit
def _moving_average_baseline(L, rw, state, slot, decay, b, update):
    m = state[slot]
    tot = 0.0
    wsum = 0.0
    for r in range(cuda.threadIdx.x, L.shape[0], cuda.blockDim.x):
        b[r] = m
        tot += _weighted(rw[r], L[r])
        wsum += rw[r]
    tot = block_sum(tot)
    wsum = block_sum(wsum)  # every thread has read state[slot] before thread 0 writes it
    if update and cuda.threadIdx.x == 0:
        state[slot] = _moving_average(m, tot, wsum, decay, state[slot + 1] == 0)
        state[slot + 1] = 1


def moving_average_baseline(L, rw, state, slot, decay, b, update):
    """b[r] = the running mean in state[slot]; then, if update, fold in this batch's
    rw-weighted mean of L (state[slot + 1] marks that the average was seeded)."""
    single_block(_moving_average_baseline, L.shape[0])(L, rw, state, slot, decay, b, update)


def _linear_baseline_fwd_body(r, x, w, offset, b):
    R, D = x.shape
    s = 0.0
    for j in range(D):
        s += x[r, j] * w[offset + j]
    b[r] += s


_linear_baseline_fwd = items(_linear_baseline_fwd_body, "x.shape[0]")


def linear_baseline_fwd(x, w, offset, b):
    """b[r] += x[r, :] . w[offset: offset + x.shape[1]]."""
    _run(_linear_baseline_fwd, x.shape[0], x, w, offset, b)


def _linear_baseline_bwd_body(j, x, coef, offset, gw):
    R, D = x.shape
    for r in range(R):
        gw[offset + j] += coef[r] * x[r, j]


_linear_baseline_bwd = items(_linear_baseline_bwd_body, "x.shape[1]")


def linear_baseline_bwd(x, coef, offset, gw):
    """gw[offset + j] += sum_r coef[r] * x[r, j] (rows in order, one thread per column)."""
    _run(_linear_baseline_bwd, x.shape[1], x, coef, offset, gw)


def _baseline_residual_body(r, rw, L, b, out):
    out[r] = _baseline_residual_value(rw[r], L[r], b[r])


_baseline_residual = items(_baseline_residual_body, "out.shape[0]")


def baseline_residual(rw, L, b, out):
    """out[r] = -2 rw[r] (L[r] - b[r])."""
    _run(_baseline_residual, out.shape[0], rw, L, b, out)


@cuda.jit
def _add_sum_to(a, out, index):
    s = 0.0
    for r in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        s += a[r]
    total = block_sum(s)
    if cuda.threadIdx.x == 0:
        out[index] += total


def add_sum_to(a, out, index):
    """out[index] += sum_r a[r]."""
    single_block(_add_sum_to, a.shape[0])(a, out, index)


def _scale_shift_fwd_body(r, j, x, scale, shift, out):
    R, D = x.shape
    out[r, j] = _scale_shift(x[r, j], scale, shift)


_scale_shift_fwd = cells(_scale_shift_fwd_body, "x")


def scale_shift_fwd(x, scale, shift, out):
    """out = scale * x + shift."""
    _run(_scale_shift_fwd, x.shape[0] * x.shape[1], x, scale, shift, out)


def _scale_shift_bwd_body(r, j, scale, gout, gx):
    R, D = gout.shape
    gx[r, j] += scale * gout[r, j]


_scale_shift_bwd = cells(_scale_shift_bwd_body, "gout")


def scale_shift_bwd(scale, gout, gx):
    """gx += scale * gout."""
    _run(_scale_shift_bwd, gout.shape[0] * gout.shape[1], scale, gout, gx)


def _mul_rows_body(r, j, g, w, c):
    R, D = g.shape
    g[r, j] *= c * w[r]


_mul_rows = cells(_mul_rows_body, "g")


def mul_rows(g, w, c):
    """In place: g[r, :] *= c * w[r]."""
    _run(_mul_rows, g.shape[0] * g.shape[1], g, w, c)


def _add_scaled_rows_body(r, j, s, grow, g):
    R, D = s.shape
    g[r, j] += grow[r] * s[r, j]


_add_scaled_rows = cells(_add_scaled_rows_body, "s")


def add_scaled_rows(s, grow, g):
    """g[r, :] += grow[r] * s[r, :]."""
    _run(_add_scaled_rows, s.shape[0] * s.shape[1], s, grow, g)


def _zero2_body(r, j_, a):
    R, D = a.shape
    i = r * a.shape[1] + j_
    a[r, i - r * D] = 0


_zero2 = cells(_zero2_body, "a")


def zero2(a):
    """a[:, :] = 0."""
    _run(_zero2, a.shape[0] * a.shape[1], a)


def _zero1_body(r, a):
    a[r] = 0


_zero1 = items(_zero1_body, "a.shape[0]")


def zero1(a):
    """a[:] = 0."""
    _run(_zero1, a.shape[0], a)


@cuda.jit
def _count_not_positive(a, res):
    R, D = a.shape
    n = 0.0
    for i in range(cuda.threadIdx.x, R * D, cuda.blockDim.x):
        r = i // D
        if not a[r, i - r * D] > 0:
            n += 1.0
    total = block_sum(n)
    if cuda.threadIdx.x == 0:
        res[0] = total


def all_positive(a):
    """True when every entry of the 2D a is > 0 (NaN counts as not positive)."""
    res = scratch()
    single_block(_count_not_positive, a.shape[0] * a.shape[1])(a, res)
    return bool(res.copy_to_host()[0] == 0)


def all_finite(a):
    """True when every entry of a (any shape, C-contiguous) is finite."""
    flat = a.reshape(a.size) if a.ndim != 1 else a
    res = scratch()
    products.count_not_finite(flat, res)
    return bool(res.copy_to_host()[0] == 0)


def all_finite2(a):
    """True when every entry of the 2D a is finite (the CPU twin's name)."""
    return all_finite(a)


# ------------------------------------------------------------- constants and column maps
def _fill2_body(r, j_, out, value):
    R, D = out.shape
    i = r * out.shape[1] + j_
    out[r, i - r * D] = value


_fill2 = cells(_fill2_body, "out")


def fill2(out, value):
    """out[:, :] = value (a constant node)."""
    _run(_fill2, out.shape[0] * out.shape[1], out, value)


def _put_cols_body(r, j_, x, off, out):
    R, D = x.shape
    i = r * x.shape[1] + j_
    out[r, off + i - r * D] = x[r, i - r * D]


_put_cols = cells(_put_cols_body, "x")


def put_cols(x, off, out):
    """out[:, off:off + x.shape[1]] = x (one input of a concatenation)."""
    _run(_put_cols, x.shape[0] * x.shape[1], x, off, out)


def _take_cols_body(r, j_, x, off, out):
    R, D = out.shape
    i = r * out.shape[1] + j_
    out[r, i - r * D] = x[r, off + i - r * D]


_take_cols = cells(_take_cols_body, "out")


def take_cols(x, off, out):
    """out = x[:, off:off + out.shape[1]] (a column slice)."""
    _run(_take_cols, out.shape[0] * out.shape[1], x, off, out)


def _add_from_cols_body(r, j_, g, off, gx):
    R, D = gx.shape
    i = r * gx.shape[1] + j_
    gx[r, i - r * D] += g[r, off + i - r * D]


_add_from_cols = cells(_add_from_cols_body, "gx")


def add_from_cols(g, off, gx):
    """gx += g[:, off:off + gx.shape[1]] (the VJP of put_cols into its input)."""
    _run(_add_from_cols, gx.shape[0] * gx.shape[1], g, off, gx)


def _add_to_cols_body(r, j_, g, off, gx):
    R, D = g.shape
    i = r * g.shape[1] + j_
    gx[r, off + i - r * D] += g[r, i - r * D]


_add_to_cols = cells(_add_to_cols_body, "g")


def add_to_cols(g, off, gx):
    """gx[:, off:off + g.shape[1]] += g (the VJP of take_cols into its input)."""
    _run(_add_to_cols, g.shape[0] * g.shape[1], g, off, gx)


from ..cpu import rows as _cpu_twin  # noqa: E402
from ..declare import cuda_twin as _cuda_twin  # noqa: E402
from ..families import bounds as _bounds  # noqa: E402
from ..registry import include as _include  # noqa: E402
from ..registry import link as _link  # noqa: E402

globals().update(_cuda_twin(_bounds))   # the importance-weighted bound's family: the step calls it as rows.*

_link("rows", _cpu_twin, globals())
_include("rows", "bounds")
