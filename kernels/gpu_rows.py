"""CUDA twin of ``cpu_rows.py``: row bookkeeping (tiling, row weights, baselines,
enumeration digits, scalar affine maps) as host launchers over device arrays.

Rows are laid out r = ((i * K) + k) * S + c as on the CPU. Formulas come from ``scalar.py``
through ``device()``. Functions that return a value on the CPU return it here too: a
one-block reduction (``gpu_core.block_sum``, deterministic) writes it to a device scratch
word that is copied back. ``moving_average_baseline`` updates ``state`` on the device.
"""
import math

import numpy as np
from numba import cuda

from . import cpu_rows
from . import scalar as S
from .scalar import like
from .device import device
from .gpu_core import block_sum, scratch, single_block
from .gpu_core import run as _run

_score_signal = device(S.score_signal)
_loo_value = device(S.loo_value)
_baseline_residual_value = device(S.baseline_residual_value)
_moving_average = device(S.moving_average)
_scale_shift = device(S.scale_shift)
_loo_marginal_group = device(cpu_rows._loo_marginal_group)
_is_group_head = device(cpu_rows._is_group_head)
_iwae_row = device(cpu_rows._iwae_row)
_vimco_row = device(cpu_rows._vimco_row)
_swap_one_row = device(cpu_rows._swap_one_row)


@cuda.jit
def _repeat_rows(x, reps, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = x[r // reps, j]


def flat_view(a, off, shape):
    """cpu_rows.flat_view's twin: a[off:off + prod(shape)] of a device array, reshaped."""
    n = 1
    for s in shape:
        n *= s
    return a[off:off + n].reshape(shape)


def repeat_rows(x, reps, out):
    """out[r] = x[r // reps]."""
    _run(_repeat_rows, out.shape[0] * out.shape[1], x, reps, out)


@cuda.jit
def _fold_rows(g, reps, out):
    # one thread per output cell sums its reps rows in order (deterministic)
    B, D = out.shape
    for i in range(cuda.grid(1), B * D, cuda.gridsize(1)):
        b = i // D
        j = i - b * D
        s = out[b, j]
        for r in range(b * reps, (b + 1) * reps):
            s += g[r, j]
        out[b, j] = s


def fold_rows(g, reps, out):
    """out[i] += sum of g[r] over the reps rows r // reps = i (the VJP of repeat_rows)."""
    _run(_fold_rows, out.shape[0] * out.shape[1], g, reps, out)


@cuda.jit
def _gather_rows(x, d, idx, out):
    R, D = out.shape
    n = idx.shape[0]
    for t in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = t // D
        c = t - r * D
        i = r // n
        out[r, c] = x[i * d + int(idx[r - i * n]), c]


def gather_rows(x, d, idx, out):
    """out[i * n + j] = x[i * d + idx[j]], n = idx.shape[0] (cpu_rows.gather_rows)."""
    _run(_gather_rows, out.shape[0] * out.shape[1], x, d, idx, out)


@cuda.jit
def _fold_into(g, idx, d, out):
    # one thread per output cell sums the reader's rows that map to it, in order (deterministic)
    Rd, D = out.shape
    n = idx.shape[0]
    for t in range(cuda.grid(1), Rd * D, cuda.gridsize(1)):
        r = t // D
        c = t - r * D
        i = r // d
        m = r - i * d
        s = out[r, c]
        for j in range(n):
            if int(idx[j]) == m:
                s += g[i * n + j, c]
        out[r, c] = s


def fold_into(g, idx, d, out):
    """out[i * d + idx[j]] += g[i * n + j] (cpu_rows.fold_into)."""
    _run(_fold_into, out.shape[0] * out.shape[1], g, idx, d, out)


@cuda.jit
def _gather1(x, d, idx, out):
    n = idx.shape[0]
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        i = r // n
        out[r] = x[i * d + int(idx[r - i * n])]


def gather1(x, d, idx, out):
    _run(_gather1, out.shape[0], x, d, idx, out)


@cuda.jit
def _fold1(g, idx, d, out):
    n = idx.shape[0]
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        i = r // d
        m = r - i * d
        s = like(out, 0.0)   # in out's precision, as the CPU accumulates
        for j in range(n):
            if int(idx[j]) == m:
                s += g[i * n + j]
        out[r] = s


def fold1(g, idx, d, out):
    """out[i * d + m] = sum of g[i * n + j] over idx[j] = m (overwritten; cpu_rows.fold1)."""
    _run(_fold1, out.shape[0], g, idx, d, out)


@cuda.jit
def _expand_rows(a, S):
    # in place: one thread per column walks the rows from the last down, as the CPU does
    R, D = a.shape
    for j in range(cuda.grid(1), D, cuda.gridsize(1)):
        for r in range(R - 1, -1, -1):
            src = r // S
            if src != r:
                a[r, j] = a[src, j]


def expand_rows(a, S):
    """In place: a[r] = a[r // S] for every row (the first R / S rows spread to all R)."""
    _run(_expand_rows, a.shape[1], a, S)


@cuda.jit
def _fill(out, value):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[r] = value


def fill(out, value):
    """out[r] = value (a 1D array)."""
    _run(_fill, out.shape[0], out, value)


@cuda.jit
def _weighted_total(rw, cost, acc, res):
    s = 0.0
    for r in range(cuda.threadIdx.x, cost.shape[0], cuda.blockDim.x):
        acc[r] += cost[r]
        s += np.float64(rw[r]) * np.float64(cost[r])
    total = block_sum(s)
    if cuda.threadIdx.x == 0:
        res[0] = total


def weighted_total(rw, cost, acc):
    """acc[r] += cost[r]; returns sum_r rw[r] * cost[r] (float64, copied to the host)."""
    res = scratch()
    single_block(_weighted_total, cost.shape[0])(rw, cost, acc, res)
    return float(res.copy_to_host()[0])


@cuda.jit
def _iwae_bound(tot, K, S, rw, ell, res):
    n = tot.shape[0] // (K * S)
    s = 0.0
    for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        s += _iwae_row(tot, K, S, i, n, rw, ell)
    total = block_sum(s)
    if cuda.threadIdx.x == 0:
        res[0] = total / n


def iwae_bound(tot, K, S, rw, ell):
    """The importance-weighted bound of each data row's K draws (see cpu_rows.iwae_bound): ell and
    the normalised weights / n written per row; returns the mean bound (copied to the host)."""
    res = scratch()
    single_block(_iwae_bound, tot.shape[0] // (K * S))(tot, K, S, rw, ell, res)
    return float(res.copy_to_host()[0])


@cuda.jit
def _vimco_baseline(tot, K, S, b):
    for i in range(cuda.grid(1), tot.shape[0] // (K * S), cuda.gridsize(1)):
        _vimco_row(tot, K, S, i, b)


def vimco_baseline(tot, K, S, b):
    """VIMCO's leave-one-out baselines of the bound (see cpu_rows.vimco_baseline)."""
    _run(_vimco_baseline, tot.shape[0] // (K * S), tot, K, S, b)


@cuda.jit
def _iwae_swap_one(tot, ell, K, S, stride, out):
    for i in range(cuda.grid(1), tot.shape[0] // (K * S), cuda.gridsize(1)):
        _swap_one_row(tot, ell, K, S, stride, i, out)


def iwae_swap_one(tot, ell, K, S, stride, out):
    """Local ARM / DisARM's signals (see cpu_rows.iwae_swap_one)."""
    _run(_iwae_swap_one, tot.shape[0] // (K * S), tot, ell, K, S, stride, out)


@cuda.jit
def _config_weights(S, c0, c1, value, out):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        c = r % S
        out[r] = value if c == c0 or c == c1 else 0.0


def config_weights(S, c0, c1, value, out):
    """out[r] = value on the rows of configuration c0 or c1 (r % S), 0 elsewhere."""
    _run(_config_weights, out.shape[0], S, c0, c1, value, out)


@cuda.jit
def _add_rows(a, acc):
    for r in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        acc[r] += a[r]


def add_rows(a, acc):
    """acc[r] += a[r]."""
    _run(_add_rows, a.shape[0], a, acc)


@cuda.jit
def _enum_bernoulli(stride, out):
    R, D = out.shape
    size = 1 << D
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        c = (r // stride) % size
        out[r, j] = (c >> j) & 1


def enum_bernoulli(stride, out):
    """Bernoulli units from the enumeration digit (r // stride) % 2^D: bit j -> unit j."""
    _run(_enum_bernoulli, out.shape[0] * out.shape[1], stride, out)


@cuda.jit
def _enum_categorical(stride, K, out):
    R, D = out.shape
    groups = D // K
    size = K ** groups
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        c = (r // stride) % size
        for g in range(groups):
            k = c % K
            c //= K
            for q in range(K):
                out[r, g * K + q] = 1 if q == k else 0


def enum_categorical(stride, K, out):
    """One-hot groups from the base-K enumeration digit (r // stride) % K^G."""
    _run(_enum_categorical, out.shape[0], stride, K, out)


@cuda.jit
def _mul_exp(lp, rw):
    for r in range(cuda.grid(1), rw.shape[0], cuda.gridsize(1)):
        rw[r] *= math.exp(lp[r])


def mul_exp(lp, rw):
    """rw[r] *= exp(lp[r])."""
    _run(_mul_exp, rw.shape[0], lp, rw)


@cuda.jit
def _score_weights(rw, L, b, out):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[r] = _score_signal(rw[r], L[r], b[r])


def score_weights(rw, L, b, out):
    """out[r] = rw[r] * (L[r] - b[r])."""
    _run(_score_weights, out.shape[0], rw, L, b, out)


@cuda.jit
def _loo_baseline(L, K, S, b):
    n = L.shape[0] // (K * S)
    for q in range(cuda.grid(1), n * S, cuda.gridsize(1)):
        i = q // S
        c = q - i * S
        tot = 0.0
        for k in range(K):
            tot += L[(i * K + k) * S + c]
        for k in range(K):
            r = (i * K + k) * S + c
            b[r] = _loo_value(tot, L[r], K)


def loo_baseline(L, K, S, b):
    """Leave-one-out baseline over the K samples of each data row and configuration."""
    _run(_loo_baseline, (L.shape[0] // (K * S)) * S, L, K, S, b)


@cuda.jit
def _loo_baseline_marginal(L, rw, K, S, strides, sizes, b):
    n = L.shape[0] // (K * S)
    for q in range(cuda.grid(1), n * S, cuda.gridsize(1)):
        i = q // S
        c = q - i * S
        if _is_group_head(c, strides, sizes):
            _loo_marginal_group(L, rw, K, S, i, c, strides, sizes, b)


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
        tot += rw[r] * L[r]
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


@cuda.jit
def _linear_baseline_fwd(x, w, offset, b):
    R, D = x.shape
    for r in range(cuda.grid(1), R, cuda.gridsize(1)):
        s = 0.0
        for j in range(D):
            s += x[r, j] * w[offset + j]
        b[r] += s


def linear_baseline_fwd(x, w, offset, b):
    """b[r] += x[r, :] . w[offset: offset + x.shape[1]]."""
    _run(_linear_baseline_fwd, x.shape[0], x, w, offset, b)


@cuda.jit
def _linear_baseline_bwd(x, coef, offset, gw):
    R, D = x.shape
    for j in range(cuda.grid(1), D, cuda.gridsize(1)):
        for r in range(R):
            gw[offset + j] += coef[r] * x[r, j]


def linear_baseline_bwd(x, coef, offset, gw):
    """gw[offset + j] += sum_r coef[r] * x[r, j] (rows in order, one thread per column)."""
    _run(_linear_baseline_bwd, x.shape[1], x, coef, offset, gw)


@cuda.jit
def _baseline_residual(rw, L, b, out):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[r] = _baseline_residual_value(rw[r], L[r], b[r])


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


@cuda.jit
def _scale_shift_fwd(x, scale, shift, out):
    R, D = x.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] = _scale_shift(x[r, j], scale, shift)


def scale_shift_fwd(x, scale, shift, out):
    """out = scale * x + shift."""
    _run(_scale_shift_fwd, x.shape[0] * x.shape[1], x, scale, shift, out)


@cuda.jit
def _scale_shift_bwd(scale, gout, gx):
    R, D = gout.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        gx[r, j] += scale * gout[r, j]


def scale_shift_bwd(scale, gout, gx):
    """gx += scale * gout."""
    _run(_scale_shift_bwd, gout.shape[0] * gout.shape[1], scale, gout, gx)


@cuda.jit
def _mul_rows(g, w, c):
    R, D = g.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g[r, j] *= c * w[r]


def mul_rows(g, w, c):
    """In place: g[r, :] *= c * w[r]."""
    _run(_mul_rows, g.shape[0] * g.shape[1], g, w, c)


@cuda.jit
def _add_scaled_rows(s, grow, g):
    R, D = s.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        g[r, j] += grow[r] * s[r, j]


def add_scaled_rows(s, grow, g):
    """g[r, :] += grow[r] * s[r, :]."""
    _run(_add_scaled_rows, s.shape[0] * s.shape[1], s, grow, g)


@cuda.jit
def _zero2(a):
    R, D = a.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        a[r, i - r * D] = 0


def zero2(a):
    """a[:, :] = 0."""
    _run(_zero2, a.shape[0] * a.shape[1], a)


@cuda.jit
def _zero1(a):
    for r in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[r] = 0


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


@cuda.jit
def _count_not_finite(a, res):
    n = 0.0
    for i in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        if not math.isfinite(a[i]):
            n += 1.0
    total = block_sum(n)
    if cuda.threadIdx.x == 0:
        res[0] = total


def all_finite(a):
    """True when every entry of a (any shape, C-contiguous) is finite."""
    flat = a.reshape(a.size) if a.ndim != 1 else a
    res = scratch()
    single_block(_count_not_finite, flat.shape[0])(flat, res)
    return bool(res.copy_to_host()[0] == 0)


def all_finite2(a):
    """True when every entry of the 2D a is finite (the CPU twin's name)."""
    return all_finite(a)


# ------------------------------------------------------------- constants and column maps
@cuda.jit
def _fill2(out, value):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        out[r, i - r * D] = value


def fill2(out, value):
    """out[:, :] = value (a constant node)."""
    _run(_fill2, out.shape[0] * out.shape[1], out, value)


@cuda.jit
def _put_cols(x, off, out):
    R, D = x.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        out[r, off + i - r * D] = x[r, i - r * D]


def put_cols(x, off, out):
    """out[:, off:off + x.shape[1]] = x (one input of a concatenation)."""
    _run(_put_cols, x.shape[0] * x.shape[1], x, off, out)


@cuda.jit
def _take_cols(x, off, out):
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        out[r, i - r * D] = x[r, off + i - r * D]


def take_cols(x, off, out):
    """out = x[:, off:off + out.shape[1]] (a column slice)."""
    _run(_take_cols, out.shape[0] * out.shape[1], x, off, out)


@cuda.jit
def _add_from_cols(g, off, gx):
    R, D = gx.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        gx[r, i - r * D] += g[r, off + i - r * D]


def add_from_cols(g, off, gx):
    """gx += g[:, off:off + gx.shape[1]] (the VJP of put_cols into its input)."""
    _run(_add_from_cols, gx.shape[0] * gx.shape[1], g, off, gx)


@cuda.jit
def _add_to_cols(g, off, gx):
    R, D = g.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        gx[r, off + i - r * D] += g[r, i - r * D]


def add_to_cols(g, off, gx):
    """gx[:, off:off + g.shape[1]] += g (the VJP of take_cols into its input)."""
    _run(_add_to_cols, g.shape[0] * g.shape[1], g, off, gx)
