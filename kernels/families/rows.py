"""Row bookkeeping of the fused step: tiling rows, row weights, baselines, enumeration of discrete
supports, scalar affine maps, constants and column maps (the step calls them as rows.<name>).

Rows of a compiled program are laid out as r = ((i * K) + k) * S + c: data row i, sample k of
K, enumeration configuration c of S. These kernels know that layout and nothing of graphs.
Forward kernels overwrite their outputs; backward kernels accumulate (+=).

Declared once (kernels/declare.py). The maps between a node's rows and a reader's
(`gather_rows`, `fold_into`, `fold_rows`) loop over a data row's rows on the CPU, their columns
innermost (a body per output cell there made them 4-5x slower: docs/benchmarks/kernels.md); on a
device each output cell has a thread, summing its sources in the CPU's order. The kernels that return
a value (`weighted_total`, the `all_*` tests) or reduce into one entry (`add_sum_to`,
`moving_average_baseline`), and `expand_rows` (in place, row blocks in an order), are written
by hand on the CPU (`FOLDS`: the folds the row-fused step runs in parts around its row loop);
`CUDA` names their launchers: the registry's one-block sum (`block`,
deterministic) of an item of this file, or a block kernel of kernels/cuda/products.py.
"""
import math

import numpy as np
from numba import njit

from ..declare import block_launcher, cells, count_launcher, cuda_launcher, items, rows
from ..math.scalar import (baseline_residual_value, like, loo_value, moving_average, scale_shift, score_signal,
                           weighted)
from ..math.words import add_word
from ..native.views import flat_cells
from ..math.slots import _group_offset, _group_size, _is_group_head, _marginal_signal

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ------------------------------------------------------------- tiling rows
@cells("out")
def repeat_rows(r, j, x, reps, out):
    """out[r] = x[r // reps]: each data row repeated for its samples and configurations."""
    out[r, j] = x[r // reps, j]


@rows("out")
def fold_rows(i, g, reps, out):
    """out[i] += sum of g[r] over the reps rows r // reps = i (the VJP of repeat_rows)."""
    for r in range(i * reps, min((i + 1) * reps, g.shape[0])):
        for j in range(out.shape[1]):
            out[i, j] += g[r, j]


def _fold_rows_cell(i, j, g, reps, out):
    s = out[i, j]
    for r in range(i * reps, min((i + 1) * reps, g.shape[0])):
        s += g[r, j]
    out[i, j] = s


@items("out.shape[0] // idx.shape[0]")
def gather_rows(i, x, reps, idx, out):
    """out[i * n + j] = x[i * reps + idx[j]], n = len(idx): a node's values from its layout (reps rows
    per data row) to a reader's (n rows per data row; idx[j] is the node's row of the reader's
    row j, a whole number in a float array: Lowering.row_map). Rows of a data row that hold
    equal values are kept once (Lowering._data_rows). One item per data row."""
    n = idx.shape[0]
    for j in range(n):
        src = i * reps + int(idx[j])
        for c in range(out.shape[1]):
            out[i * n + j, c] = x[src, c]


def _gather_rows_cell(r, c, x, reps, idx, out):
    n = idx.shape[0]
    i = r // n
    out[r, c] = x[i * reps + int(idx[r - i * n]), c]


@items("g.shape[0] // idx.shape[0]")
def fold_into(i, g, idx, reps, out):
    """out[i * reps + idx[j]] += g[i * n + j], n = len(idx): the VJP of gather_rows; one item per
    data row (its rows of out are its own)."""
    n = idx.shape[0]
    for j in range(n):
        dst = i * reps + int(idx[j])
        for c in range(g.shape[1]):
            out[dst, c] += g[i * n + j, c]


def _fold_into_cell(r, c, g, idx, reps, out):
    n = idx.shape[0]
    i = r // reps
    m = r - i * reps
    s = out[r, c]
    for j in range(n):   # the reader's rows in order, as the item adds them
        if int(idx[j]) == m:
            s += g[i * n + j, c]
    out[r, c] = s


@items("out.shape[0] // idx.shape[0]")
def gather1(i, x, reps, idx, out):
    """gather_rows of 1D row values (a cost's rows)."""
    n = idx.shape[0]
    for j in range(n):
        out[i * n + j] = x[i * reps + int(idx[j])]


@rows("out")
def fold1(r, g, idx, reps, out):
    """out = the VJP of gather1 (overwritten): out[i * reps + m] = sum of g[i * n + j] over idx[j] = m."""
    n = idx.shape[0]
    i = r // reps
    m = r - i * reps
    s = like(out, 0.0)   # in out's precision
    for j in range(n):
        if int(idx[j]) == m:
            s += g[i * n + j]
    out[r] = s


@njit(**_JIT)
def expand_rows(a, reps):
    """In place: a[r] = a[r // reps] for every row, from the last row down (row r // reps is
    read before it is overwritten), so the first R / reps rows spread to all R. One column (a
    simulation's units) keeps each value in a register for its reps rows, and a pair of rows
    (reps 2) is written without an inner loop: a loop that reads and writes one array does not
    vectorise, and inner loops of one or two trips cost more than the copy
    (docs/benchmarks/simulations.md)."""
    n, w = a.shape
    if reps < 2:
        return
    G = n // reps
    if G * reps != n:   # a last block of fewer rows (no row layout makes one): row by row
        for r in range(n - 1, 0, -1):
            for j in range(w):
                a[r, j] = a[r // reps, j]
        return
    if w == 1:
        f = a[:, 0]
        if reps == 2:
            for i in range(G - 1, -1, -1):
                v = f[i]
                f[2 * i + 1] = v
                f[2 * i] = v
        else:
            for i in range(G - 1, -1, -1):
                v = f[i]
                for k in range(i * reps + reps - 1, i * reps - 1, -1):
                    f[k] = v
        return
    if reps == 2 and w <= 4:   # a few columns (a draw's uniforms): each value read once, written twice
        for i in range(G - 1, -1, -1):
            for j in range(w):
                v = a[i, j]
                a[2 * i + 1, j] = v
                a[2 * i, j] = v
        return
    for i in range(G - 1, -1, -1):   # wider rows: a row's columns copied as one run
        for k in range(i * reps + reps - 1, i * reps - 1, -1):
            if k != i:
                for j in range(w):
                    a[k, j] = a[i, j]


# ------------------------------------------------------------- row weights and costs
@rows("out")
def fill(r, out, value):
    """out[r] = value (a 1D array)."""
    out[r] = value


@njit(**_JIT)
def weighted_total(rw, cost, acc):
    """acc[r] += cost[r]; returns sum_r rw[r] * cost[r] (float64 accumulation); a row of weight 0
    adds nothing, whatever its cost (a configuration of probability 0, an mvd branch: -inf there)."""
    s = 0.0
    for r in range(cost.shape[0]):
        acc[r] += cost[r]
        s += weighted(float(rw[r]), float(cost[r]))
    return s


def _weighted_total_item(r, rw, cost, acc):
    acc[r] += cost[r]
    return weighted(float(rw[r]), float(cost[r]))


@rows("a")
def add_rows(r, a, acc):
    """acc[r] += a[r]."""
    acc[r] += a[r]


@cells("out")
def enum_bernoulli(r, j, stride, out):
    """Bernoulli units set from the enumeration digit c_s = (r // stride) % 2^D: bit j -> unit j."""
    c = (r // stride) % (1 << out.shape[1])
    out[r, j] = (c >> j) & 1


@rows("out")
def enum_categorical(r, stride, K, out):
    """One-hot groups set from the enumeration digit c_s = (r // stride) % K^G: base-K digit g -> group g."""
    groups = out.shape[1] // K
    c = (r // stride) % (K ** groups)
    for g in range(groups):
        k = c % K
        c //= K
        for q in range(K):
            out[r, g * K + q] = 1 if q == k else 0


@rows("rw")
def mul_exp(r, lp, rw):
    """rw[r] *= exp(lp[r]): multiply a row weight by the probability of the row's configuration."""
    rw[r] *= math.exp(lp[r])


@rows("out")
def score_weights(r, rw, L, b, out):
    """out[r] = rw[r] * (L[r] - b[r]): the score-function learning signal per row."""
    out[r] = score_signal(rw[r], L[r], b[r])


# ------------------------------------------------------------- baselines
@items("(L.shape[0] // (K * S)) * S")
def loo_baseline(q, L, K, S, b):
    """Leave-one-out baseline over the K samples of each data row (and configuration):
    b[r] = (sum_k' L[r'] - L[r]) / (K - 1) (Kool et al. 2019; Mnih & Rezende 2016); one item per
    (data row, configuration)."""
    i = q // S
    c = q - i * S
    tot = 0.0
    for k in range(K):
        tot += L[(i * K + k) * S + c]
    for k in range(K):
        r = (i * K + k) * S + c
        b[r] = loo_value(tot, L[r], K)


@njit(cache=True, error_model="numpy")
def _loo_marginal_group(L, rw, K, S, i, c, strides, sizes, b):
    """One (data row i, configuration group c) of `loo_baseline_marginal`; c has every
    marginalised digit 0. Writes b on the group's rows of every sample."""
    tot = 0.0
    for k in range(K):
        base = (i * K + k) * S + c
        lbar = _marginal_signal(L, rw, base, strides, sizes)
        b[base] = lbar   # kept here until every sample's mean is known
        tot += lbar
    for k in range(K):
        base = (i * K + k) * S + c
        val = loo_value(tot, float(b[base]), K)
        for m in range(_group_size(sizes)):
            b[base + _group_offset(m, strides, sizes)] = val


@items("(L.shape[0] // (K * S)) * S")
def loo_baseline_marginal(q, L, rw, K, S, strides, sizes, b):
    """Leave-one-out baseline over the K samples of each data row, from each sample's learning
    signal marginalised over the digits (strides, sizes) of the enumerated nodes below the
    scored node: Lbar_k = sum_c rw L / sum_c rw over those digits. Those rows' weights hold
    p(c | the sample's draw), so a per-configuration baseline would depend on the draw it
    multiplies (a biased estimate); b_k = mean of Lbar over the other samples does not. The
    other digits (enumerated parents, antithetic pairs, REBAR rows) keep one group each."""
    i = q // S
    c = q - i * S
    if _is_group_head(c, strides, sizes):
        _loo_marginal_group(L, rw, K, S, i, c, strides, sizes, b)


@rows("b")
def baseline_keep(r, L, rw, state, state_slot, b, keep):
    """moving_average_baseline's row half, in a loop block run as one CUDA kernel: b[r] = the
    running mean held in state[state_slot]; keep[r] = rw[r] L[r] (weighted), which a fold after the
    loop sums over the rows into state[state_slot] (kernels/cuda/products.py's moving_average_fold)."""
    b[r] = state[state_slot]
    keep[r] = weighted(rw[r], L[r])


@njit(**_JIT)
def moving_average_baseline(L, rw, state, state_slot, decay, b, update):
    """b[r] = the running mean held in state[state_slot] (from earlier steps, so the estimate stays
    unbiased); then, if update, state[state_slot] <- decay * state[state_slot] + (1 - decay) *
    mean_rw(L)."""
    m = state[state_slot]
    tot = 0.0
    wsum = 0.0
    for r in range(L.shape[0]):   # a row of weight 0 adds nothing (weighted_total)
        b[r] = m
        tot += weighted(rw[r], L[r])
        wsum += rw[r]
    if update:  # the first step seeds the average with the first batch's mean
        state[state_slot] = moving_average(m, tot, wsum, decay, state[state_slot + 1] == 0)
        state[state_slot + 1] = 1


@rows("x")
def linear_baseline_fwd(r, x, w, offset, b):
    """b[r] += x[r, :] . w[offset: offset + x.shape[1]] (a learned input-dependent baseline, NVIL)."""
    s = 0.0
    for j in range(x.shape[1]):
        s += x[r, j] * w[offset + j]
    b[r] += s


@items("x.shape[1]")
def linear_baseline_bwd(j, x, coef, offset, gw):
    """gw[offset + j] += sum_r coef[r] * x[r, j] (one item per column, the rows in order)."""
    for r in range(x.shape[0]):
        gw[offset + j] += coef[r] * x[r, j]


@rows("out")
def baseline_residual(r, rw, L, b, out):
    """out[r] = -2 rw[r] (L[r] - b[r]): d/db of the baseline's loss sum_r rw (L - b)^2."""
    out[r] = baseline_residual_value(rw[r], L[r], b[r])


@njit(**_JIT)
def add_sum_to(a, out, index):
    """out[index] += sum_r a[r]."""
    s = 0.0
    for r in range(a.shape[0]):
        s += a[r]
    out[index] += s


def _add_sum_to_item(r, a):
    return a[r]


# ------------------------------------------------------------- scalar affine maps and row scalings
@cells("x")
def scale_shift_fwd(r, j, x, scale, shift, out):
    """out = scale * x + shift (constants from the model's arithmetic)."""
    out[r, j] = scale_shift(x[r, j], scale, shift)


@cells("gout")
def scale_shift_bwd(r, j, scale, gout, gx):
    """gx += scale * gout."""
    gx[r, j] += scale * gout[r, j]


@cells("g")
def mul_rows(r, j, g, w, c):
    """In place: g[r, :] *= c * w[r] (DReG: a draw's cotangent times its normalised weight)."""
    g[r, j] *= c * w[r]


@cells("s")
def add_scaled_rows(r, j, s, grow, g):
    """g[r, :] += grow[r] * s[r, :] (chains a black box's per-row gradient)."""
    g[r, j] += grow[r] * s[r, j]


@cells("a")
def zero2(r, j, a):
    """a[:, :] = 0."""
    a[r, j] = 0


@rows("a")
def zero1(r, a):
    """a[:] = 0."""
    a[r] = 0


# ------------------------------------------------------------- tests of a whole array
@njit(**_JIT)
def all_positive(a):
    """True when every entry is > 0 (NaN counts as not positive)."""
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not a[r, j] > 0:
                return False
    return True


def _not_positive_item(i, a):
    r = i // a.shape[1]
    return 0.0 if a[r, i - r * a.shape[1]] > 0 else 1.0


@njit(**_JIT)
def all_finite2(a):
    """True when every entry of the 2D a is finite: one branch-free pass (x * 0 is NaN exactly
    for NaN and +-inf, and the sum of those products is 0 otherwise), so it vectorises."""
    if a.shape[0] == 0 or a.shape[1] == 0:
        return True
    z = like(a, 0.0)
    s = z
    if a.flags.c_contiguous:   # one flat loop: one horizontal reduction, not one per row
        f = flat_cells(a)
        for i in range(f.shape[0]):
            s += f[i] * z
        return s == z
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += a[r, j] * z
    return s == z


@rows("a")
def all_positive_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a that are not > 0 (NaN among them): all_positive's
    count a row at a time, as the CUDA step checks (a row of its joined kernels: lowering/printer.py)."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if a[r, j] > 0 else 1.0
    if n != 0.0:
        add_word(sink, k, n)


@rows("a")
def all_finite2_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a that are NaN or +-inf: all_finite2's count a row
    at a time, as the CUDA step checks."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if math.isfinite(a[r, j]) else 1.0
    if n != 0.0:
        add_word(sink, k, n)


@njit(**_JIT)
def all_finite(a):
    """True when every entry of a (any shape) is finite."""
    for v in a.ravel():
        if not np.isfinite(v):
            return False
    return True


# ------------------------------------------------------------- constants and column maps
@cells("out")
def fill2(r, j, out, value):
    """out[:, :] = value (a constant node)."""
    out[r, j] = value


@cells("x")
def put_cols(r, j, x, off, out):
    """out[:, off:off + x.shape[1]] = x (one input of a concatenation)."""
    out[r, off + j] = x[r, j]


@cells("out")
def take_cols(r, j, x, off, out):
    """out = x[:, off:off + out.shape[1]] (a column slice)."""
    out[r, j] = x[r, off + j]


@cells("gx")
def add_from_cols(r, j, g, off, gx):
    """gx += g[:, off:off + gx.shape[1]] (the VJP of put_cols into its input)."""
    gx[r, j] += g[r, off + j]


@cells("g")
def add_to_cols(r, j, g, off, gx):
    """gx[:, off:off + g.shape[1]] += g (the VJP of take_cols into its input)."""
    gx[r, off + j] += g[r, j]


# ------------------------------------------------------------- the CUDA launchers of the hand-written kernels
def _add_sum_to_cuda():
    """add_sum_to's CUDA launcher: the one-block sum writes into out[index] itself (its `res`)."""
    from ..native.launch import single_block
    from ..registry import block
    gen = block(_add_sum_to_item, "a.shape[0]", "res[0] + total")

    def add_sum_to(a, out, index):
        single_block(gen, a.shape[0])(a, out[index:index + 1])
    add_sum_to.__doc__, add_sum_to.__kernels__ = globals()["add_sum_to"].__doc__, [gen]
    return add_sum_to


FOLDS = {   # hand-written folds over the rows, their own row-fused form (kernels/rowcode.py): their
    # arrays indexed by a number, not the row
    "moving_average_baseline": ("state",),
}


CUDA = {   # hand-written on the CPU, or a CPU loop of the wrong grain for a device (a data row's rows
    # in one iteration: a thread per cell of the output there): their CUDA launchers' makers (a
    # string: one of kernels/cuda/products.py)
    "fold_rows": lambda: cuda_launcher(fold_rows, "cells", _fold_rows_cell, "out"),
    "gather_rows": lambda: cuda_launcher(gather_rows, "cells", _gather_rows_cell, "out"),
    "fold_into": lambda: cuda_launcher(fold_into, "cells", _fold_into_cell, "out"),
    "weighted_total": block_launcher(weighted_total, _weighted_total_item, "cost.shape[0]"),
    "add_sum_to": _add_sum_to_cuda,
    "all_positive": count_launcher(all_positive, _not_positive_item, "a.shape[0] * a.shape[1]"),
    "all_finite": "products.all_finite_launcher",
    "all_finite2": "products.all_finite_launcher",
    "moving_average_baseline": "products.moving_average_baseline_launcher",
    "expand_rows": "products.expand_rows_launcher",
}


R, D, K = 4, 6, 3
PARITY = {
    "repeat_rows": lambda g: (g.x(2, D), 2, g.out(4, D)),
    "fold_rows": lambda g: (g.x(6, D), 3, g.x(2, D)),
    "expand_rows": lambda g: (g.x(6, D), 3),
    # a node on 3 rows per data row read on 5 (and its cotangent summed back); 4 data rows
    "gather_rows": lambda g: (g.x(12, D), 3, g.rowmap(0, 1, 2, 0, 0), g.out(20, D)),
    "fold_into": lambda g: (g.x(20, D), g.rowmap(0, 1, 2, 0, 0), 3, g.x(12, D)),
    "gather1": lambda g: (g.x(12), 3, g.rowmap(0, 1, 2, 0, 0), g.out(20)),
    "fold1": lambda g: (g.x(20), g.rowmap(0, 1, 2, 0, 0), 3, g.out(12)),
    "fill": lambda g: (g.out(R), 0.25),
    "weighted_total": lambda g: (g.pos(R), g.x(R), g.x(R)),
    "add_rows": lambda g: (g.x(R), g.x(R)),
    "enum_bernoulli": lambda g: (2, g.out(8, 3)),
    "enum_categorical": lambda g: (2, K, g.out(18, D)),
    "mul_exp": lambda g: (g.x(R), g.pos(R)),
    "score_weights": lambda g: (g.pos(R), g.x(R), g.x(R), g.out(R)),
    "loo_baseline": lambda g: (g.x(12), 3, 2, g.out(12)),
    "loo_baseline_marginal": lambda g: (g.x(24), g.pos(24), 3, 4, (2,), (2,), g.out(24)),
    "moving_average_baseline": lambda g: (g.x(R), g.pos(R), np.array([0, 0.3, 0, 0], g.dt),
                                          1, 0.9, g.out(R), True),  # first step: seeds
    "baseline_keep": lambda g: (g.x(R), g.pos(R), np.array([0, 0.3, 0, 0], g.dt), 1, g.out(R), g.out(R)),
    "linear_baseline_fwd": lambda g: (g.x(R, D), g.x(10), 2, g.x(R)),
    "linear_baseline_bwd": lambda g: (g.x(R, D), g.x(R), 2, g.x(10)),
    "baseline_residual": lambda g: (g.pos(R), g.x(R), g.x(R), g.out(R)),
    "add_sum_to": lambda g: (g.x(R), g.x(3), 1),
    "scale_shift_fwd": lambda g: (g.x(R, D), 1.5, -0.25, g.out(R, D)),
    "scale_shift_bwd": lambda g: (1.5, g.x(R, D), g.x(R, D)),
    "add_scaled_rows": lambda g: (g.x(R, D), g.x(R), g.x(R, D)),
    "mul_rows": lambda g: (g.x(R, D), g.pos(R), 3.0),
    "zero2": lambda g: (g.x(R, D),),
    "fill2": lambda g: (g.out(R, D), 0.25),
    "put_cols": lambda g: (g.x(R, 2), 3, g.x(R, D)),
    "take_cols": lambda g: (g.x(R, D), 1, g.out(R, 3)),
    "add_from_cols": lambda g: (g.x(R, D), 2, g.x(R, 3)),
    "add_to_cols": lambda g: (g.x(R, 3), 2, g.x(R, D)),
    "zero1": lambda g: (g.x(R),),
    "all_positive": lambda g: (g.pos(R, D),),
    "all_finite": lambda g: (g.x(R, D),),
    "all_finite2": lambda g: (g.x(R, D),),
    "all_positive_into": lambda g: (np.where(np.arange(D) % 4 == 1, np.nan, g.pos(R, D) - 0.3).astype(g.dt),
                                    np.zeros(3), 1),
    "all_finite2_into": lambda g: (np.where(np.arange(D) == 2, np.inf, g.x(R, D)).astype(g.dt), np.zeros(3), 2),
}
