"""Row bookkeeping kernels for the fused step (CPU): tiling rows, row weights, baselines,
enumeration of discrete supports, scalar affine maps.

Rows of a compiled program are laid out as r = ((i * K) + k) * S + c: data row i, sample k of
K, enumeration configuration c of S. These kernels know that layout and nothing of graphs.
Forward kernels overwrite their outputs; backward kernels accumulate (+=).
"""
import math

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ..math.slots import _group_offset, _group_size, _is_group_head, _marginal_signal  # noqa: F401
from ..math.scalar import (baseline_residual_value, like, loo_value, moving_average, scale_shift, score_signal,
                           weighted)


@intrinsic
def flat_view(typingctx, a, off, shape):
    """a[off:off + prod(shape)].reshape(shape) of a C-contiguous 1-D array, without bounds
    checks and without an owner: a step's parameter and state views (offsets from the program's
    layout; the step checks the arrays' lengths once, first). Numba's slice and reshape cost
    ~15 ms of compile per view and a reference count per use."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
        raise TypingError(f"flat_view: a C-contiguous 1-D array is needed, got {a}")
    if not (isinstance(off, types.Integer) and isinstance(shape, types.UniTuple)
            and isinstance(shape.dtype, types.Integer)):
        raise TypingError(f"flat_view: an integer offset and a tuple of integers are needed, got {off}, {shape}")
    ret = types.Array(a.dtype, shape.count, "C")

    def codegen(context, builder, sig, args):
        aty, offty, shty = sig.args
        src = make_array(aty)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aty.dtype)))
        shape = [context.cast(builder, v, shty.dtype, types.intp) for v in cgutils.unpack_tuple(builder, args[2])]
        strides, acc = [], itemsize
        for s in reversed(shape):
            strides.insert(0, acc)
            acc = builder.mul(acc, s)
        data = builder.gep(src.data, [context.cast(builder, args[1], offty, types.intp)])
        out = make_array(sig.return_type)(context, builder)
        populate_array(out, data=data, shape=cgutils.pack_array(builder, shape, intp),
                       strides=cgutils.pack_array(builder, strides, intp), itemsize=itemsize,
                       meminfo=cgutils.get_null_value(src.meminfo.type), parent=None)
        return out._getvalue()

    return ret(a, off, shape), codegen


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def repeat_rows(x, reps, out):
    """out[r] = x[r // reps]: each data row repeated for its samples and configurations."""
    n = out.shape[0]
    for i in range((n + reps - 1) // reps):
        for r in range(i * reps, min((i + 1) * reps, n)):
            for j in range(out.shape[1]):
                out[r, j] = x[i, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def fold_rows(g, reps, out):
    """out[i] += sum of g[r] over the reps rows r // reps = i (the VJP of repeat_rows)."""
    n = g.shape[0]
    for i in range((n + reps - 1) // reps):
        for r in range(i * reps, min((i + 1) * reps, n)):
            for j in range(g.shape[1]):
                out[i, j] += g[r, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def gather_rows(x, reps, idx, out):
    """out[i * n + j] = x[i * reps + idx[j]], n = len(idx): a node's values from its layout (reps rows
    per data row) to a reader's (n rows per data row; idx[j] is the node's row of the reader's
    row j, a whole number in a float array: Lowering.row_map). Rows of a data row that hold
    equal values are kept once (Lowering._data_rows)."""
    n = idx.shape[0]
    for i in range(out.shape[0] // n):
        for j in range(n):
            src = i * reps + int(idx[j])
            for c in range(out.shape[1]):
                out[i * n + j, c] = x[src, c]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def fold_into(g, idx, reps, out):
    """out[i * reps + idx[j]] += g[i * n + j], n = len(idx): the VJP of gather_rows."""
    n = idx.shape[0]
    for i in range(g.shape[0] // n):
        for j in range(n):
            dst = i * reps + int(idx[j])
            for c in range(g.shape[1]):
                out[dst, c] += g[i * n + j, c]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def gather1(x, reps, idx, out):
    """gather_rows of 1D row values (a cost's rows)."""
    n = idx.shape[0]
    for i in range(out.shape[0] // n):
        for j in range(n):
            out[i * n + j] = x[i * reps + int(idx[j])]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def fold1(g, idx, reps, out):
    """out = the VJP of gather1 (overwritten): out[i * reps + m] = sum of g[i * n + j] over idx[j] = m."""
    n = idx.shape[0]
    for r in range(out.shape[0]):
        out[r] = 0.0
    for i in range(g.shape[0] // n):
        for j in range(n):
            out[i * reps + int(idx[j])] += g[i * n + j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def expand_rows(a, reps):
    """In place: a[r] = a[r // reps] for every row, from the last row down (row r // reps is
    read before it is overwritten), so the first R / reps rows spread to all R."""
    n = a.shape[0]
    for i in range((n + reps - 1) // reps - 1, -1, -1):
        for r in range(min((i + 1) * reps, n) - 1, i * reps - 1, -1):
            if r != i:
                for j in range(a.shape[1]):
                    a[r, j] = a[i, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def fill(out, value):
    for r in range(out.shape[0]):
        out[r] = value


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def weighted_total(rw, cost, acc):
    """acc[r] += cost[r]; returns sum_r rw[r] * cost[r] (float64 accumulation); a row of weight 0
    adds nothing, whatever its cost (a configuration of probability 0, an mvd branch: -inf there)."""
    s = 0.0
    for r in range(cost.shape[0]):
        acc[r] += cost[r]
        s += weighted(float(rw[r]), float(cost[r]))
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def add_rows(a, acc):
    for r in range(a.shape[0]):
        acc[r] += a[r]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def enum_bernoulli(stride, out):
    """Bernoulli units set from the enumeration digit c_s = (r // stride) % 2^D: bit j -> unit j."""
    d = out.shape[1]
    size = 1 << d
    for r in range(out.shape[0]):
        c = (r // stride) % size
        for j in range(d):
            out[r, j] = (c >> j) & 1


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def enum_categorical(stride, K, out):
    """One-hot groups set from the enumeration digit c_s = (r // stride) % K^G: base-K digit g -> group g."""
    groups = out.shape[1] // K
    size = K ** groups
    for r in range(out.shape[0]):
        c = (r // stride) % size
        for g in range(groups):
            k = c % K
            c //= K
            for q in range(K):
                out[r, g * K + q] = 1 if q == k else 0


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def mul_exp(lp, rw):
    """rw[r] *= exp(lp[r]): multiply a row weight by the probability of the row's configuration."""
    for r in range(rw.shape[0]):
        rw[r] *= math.exp(lp[r])


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def score_weights(rw, L, b, out):
    """out[r] = rw[r] * (L[r] - b[r]): the score-function learning signal per row."""
    for r in range(out.shape[0]):
        out[r] = score_signal(rw[r], L[r], b[r])


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def loo_baseline(L, K, S, b):
    """Leave-one-out baseline over the K samples of each data row (and configuration):
    b[r] = (sum_k' L[r'] - L[r]) / (K - 1) (Kool et al. 2019; Mnih & Rezende 2016)."""
    n = L.shape[0] // (K * S)
    for i in range(n):
        for c in range(S):
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


@njit(cache=True, error_model="numpy")
def loo_baseline_marginal(L, rw, K, S, strides, sizes, b):
    """Leave-one-out baseline over the K samples of each data row, from each sample's learning
    signal marginalised over the digits (strides, sizes) of the enumerated nodes below the
    scored node: Lbar_k = sum_c rw L / sum_c rw over those digits. Those rows' weights hold
    p(c | the sample's draw), so a per-configuration baseline would depend on the draw it
    multiplies (a biased estimate); b_k = mean of Lbar over the other samples does not. The
    other digits (enumerated parents, antithetic pairs, REBAR rows) keep one group each."""
    n = L.shape[0] // (K * S)
    for i in range(n):
        for c in range(S):
            if _is_group_head(c, strides, sizes):
                _loo_marginal_group(L, rw, K, S, i, c, strides, sizes, b)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def moving_average_baseline(L, rw, state, slot, decay, b, update):
    """b[r] = the running mean held in state[slot] (from earlier steps, so the estimate stays
    unbiased); then, if update, state[slot] <- decay * state[slot] + (1 - decay) * mean_rw(L)."""
    m = state[slot]
    tot = 0.0
    wsum = 0.0
    for r in range(L.shape[0]):   # a row of weight 0 adds nothing (weighted_total)
        b[r] = m
        tot += weighted(rw[r], L[r])
        wsum += rw[r]
    if update:  # the first step seeds the average with the first batch's mean
        state[slot] = moving_average(m, tot, wsum, decay, state[slot + 1] == 0)
        state[slot + 1] = 1


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def linear_baseline_fwd(x, w, offset, b):
    """b[r] += x[r, :] . w[offset: offset + x.shape[1]] (a learned input-dependent baseline, NVIL)."""
    for r in range(x.shape[0]):
        s = 0.0
        for j in range(x.shape[1]):
            s += x[r, j] * w[offset + j]
        b[r] += s


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def linear_baseline_bwd(x, coef, offset, gw):
    """gw[offset + j] += sum_r coef[r] * x[r, j]."""
    for r in range(x.shape[0]):
        c = coef[r]
        for j in range(x.shape[1]):
            gw[offset + j] += c * x[r, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def baseline_residual(rw, L, b, out):
    """out[r] = -2 rw[r] (L[r] - b[r]): d/db of the baseline's loss sum_r rw (L - b)^2."""
    for r in range(out.shape[0]):
        out[r] = baseline_residual_value(rw[r], L[r], b[r])


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def add_sum_to(a, out, index):
    """out[index] += sum_r a[r]."""
    s = 0.0
    for r in range(a.shape[0]):
        s += a[r]
    out[index] += s


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def scale_shift_fwd(x, scale, shift, out):
    """out = scale * x + shift (constants from the model's arithmetic)."""
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, j] = scale_shift(x[r, j], scale, shift)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def scale_shift_bwd(scale, gout, gx):
    for r in range(gout.shape[0]):
        for j in range(gout.shape[1]):
            gx[r, j] += scale * gout[r, j]


def _scale_shift_fwd_row(r, j, x, scale, shift, out):
    out[r, j] = scale_shift(x[r, j], scale, shift)


def _scale_shift_bwd_row(r, j, scale, gout, gx):
    gx[r, j] += scale * gout[r, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def mul_rows(g, w, c):
    """In place: g[r, :] *= c * w[r] (DReG: a draw's cotangent times its normalised weight)."""
    for r in range(g.shape[0]):
        f = c * w[r]
        for j in range(g.shape[1]):
            g[r, j] *= f


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def add_scaled_rows(s, grow, g):
    """g[r, :] += grow[r] * s[r, :] (chains a black box's per-row gradient)."""
    for r in range(s.shape[0]):
        for j in range(s.shape[1]):
            g[r, j] += grow[r] * s[r, j]


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def zero2(a):
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[r, j] = 0


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def zero1(a):
    for r in range(a.shape[0]):
        a[r] = 0


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def all_positive(a):
    """True when every entry is > 0 (NaN counts as not positive)."""
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not a[r, j] > 0:
                return False
    return True


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def all_finite2(a):
    """True when every entry of the 2D a is finite: one branch-free pass (x * 0 is NaN exactly
    for NaN and +-inf, and the sum of those products is 0 otherwise), so it vectorises."""
    if a.shape[0] == 0 or a.shape[1] == 0:
        return True
    z = like(a, 0.0)
    s = z
    if a.flags.c_contiguous:   # one flat loop: one horizontal reduction, not one per row
        f = a.reshape(a.size)
        for i in range(f.shape[0]):
            s += f[i] * z
        return s == z
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += a[r, j] * z
    return s == z


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def all_finite(a):
    for v in a.ravel():
        if not np.isfinite(v):
            return False
    return True


# ------------------------------------------------------------- constants and column maps
@njit(cache=True, error_model="numpy")
def fill2(out, value):
    """out[:, :] = value (a constant node)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] = value


@njit(cache=True, error_model="numpy")
def put_cols(x, off, out):
    """out[:, off:off + x.shape[1]] = x (one input of a concatenation)."""
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, off + j] = x[r, j]


@njit(cache=True, error_model="numpy")
def take_cols(x, off, out):
    """out = x[:, off:off + out.shape[1]] (a column slice)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] = x[r, off + j]


@njit(cache=True, error_model="numpy")
def add_from_cols(g, off, gx):
    """gx += g[:, off:off + gx.shape[1]] (the VJP of put_cols into its input)."""
    for r in range(gx.shape[0]):
        for j in range(gx.shape[1]):
            gx[r, j] += g[r, off + j]


@njit(cache=True, error_model="numpy")
def add_to_cols(g, off, gx):
    """gx[:, off:off + g.shape[1]] += g (the VJP of take_cols into its input)."""
    for r in range(g.shape[0]):
        for j in range(g.shape[1]):
            gx[r, off + j] += g[r, j]


def _fill2_row(r, j, out, value):
    out[r, j] = value


def _take_cols_row(r, j, x, off, out):
    out[r, j] = x[r, off + j]


def _add_to_cols_row(r, j, g, off, gx):
    gx[r, off + j] += g[r, j]


def _add_from_cols_row(r, j, g, off, gx):
    gx[r, j] += g[r, off + j]


def _add_scaled_rows_row(r, j, s, grow, g):
    g[r, j] += grow[r] * s[r, j]


# the cell bodies of hand-written kernels for the row-fused rewrite (kernels/rowcode.py)
ROW = {"scale_shift_fwd": _scale_shift_fwd_row, "scale_shift_bwd": _scale_shift_bwd_row, "fill2": _fill2_row,
       "take_cols": _take_cols_row, "add_to_cols": _add_to_cols_row, "add_from_cols": _add_from_cols_row,
       "add_scaled_rows": _add_scaled_rows_row}


# the importance-weighted bound's kernels are a family declared once (families/bounds.py); the step
# calls them here (rows.<name>)
from ..families.bounds import config_weights, iwae_bound, iwae_swap_one, vimco_baseline  # noqa: E402, F401
