"""Log-space reductions and their VJPs: the log-sum-exp of a row's columns and the log-space
matrix-vector product out_k = log sum_j exp(a_j + B_jk) (one step of the forward algorithm of
a Markov chain summed out, ppl/language/markov.py).

Each is a row body (kernels/declare.py): the maximum is taken out before the exponentials, so
no exp overflows and a row of very negative terms keeps its relative accuracy. Conventions:
a NaN term makes the result NaN; a result of -inf (every term -inf: probability 0) is -inf and
sends no cotangent; a result of +inf is +inf and sends NaN (no finite derivative).

The matrix-vector product's CPU kernels are written by hand over blocks of rows, the block's
columns copied to rows first (`_columns`): a row's J x K terms are a few dozen scalars, and only a
loop over rows vectorises its exponentials. They compute what the row bodies do, in the same
order (the same numbers); the row bodies are the CUDA kernels, a thread per row (`CUDA`).
"""
import numpy as np
from numba import njit

from ..declare import cuda_launcher, rows
from ..math.scalar import fexp, flog, like

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
BLOCK = 128   # rows a block: its columns' copies stay in the L1 cache


@rows("x")
def log_sum_exp_fwd(r, x, out_rows):
    """out_rows[r] = log sum_j exp(x[r, j])."""
    m = x[r, 0]
    for j in range(1, x.shape[1]):
        if x[r, j] > m:
            m = x[r, j]
    if m - m == like(m, 0.0):   # finite
        s = like(m, 0.0)
        for j in range(x.shape[1]):
            s += fexp(x[r, j] - m)
        out_rows[r] = m + flog(s)
    else:   # +-inf, or NaN: the result; a NaN anywhere makes it NaN
        for j in range(x.shape[1]):
            if x[r, j] != x[r, j]:
                m = x[r, j]
        out_rows[r] = m


@rows("gx")
def log_sum_exp_bwd(r, x, out_rows, grow, gx):
    """gx[r, j] += grow[r] exp(x[r, j] - out_rows[r]) (the softmax of the row)."""
    o = out_rows[r]
    g = grow[r]
    if o - o == like(o, 0.0):
        for j in range(gx.shape[1]):
            gx[r, j] += g * fexp(x[r, j] - o)
    elif not o < like(o, 0.0):   # +inf or NaN (not -inf): no finite derivative
        for j in range(gx.shape[1]):
            gx[r, j] += g * (o - o)


def _log_matvec_fwd_row(r, a, b, out):
    """out[r, k] = log sum_j exp(a[r, j] + b[r, j K + k]), K = out's width (b: J rows of K, j-major)."""
    K = out.shape[1]
    for k in range(K):
        m = a[r, 0] + b[r, k]
        for j in range(1, a.shape[1]):
            v = a[r, j] + b[r, j * K + k]
            if v > m:
                m = v
        if m - m == like(m, 0.0):
            s = like(m, 0.0)
            for j in range(a.shape[1]):
                s += fexp(a[r, j] + b[r, j * K + k] - m)
            out[r, k] = m + flog(s)
        else:
            for j in range(a.shape[1]):
                v = a[r, j] + b[r, j * K + k]
                if v != v:
                    m = v
            out[r, k] = m


def _log_matvec_bwd_row(r, a, b, out, gout, ga, gb):
    """w_jk = gout[r, k] exp(a_j + B_jk - out[r, k]); ga[r, j] += sum_k w_jk ; gb[r, j K + k] += w_jk
    (each skippable)."""
    K = gout.shape[1]
    for k in range(K):
        o = out[r, k]
        g = gout[r, k]
        if o - o == like(o, 0.0):
            for j in range(a.shape[1]):
                w = g * fexp(a[r, j] + b[r, j * K + k] - o)
                if ga.shape[0] != 0:
                    ga[r, j] += w
                if gb.shape[0] != 0:
                    gb[r, j * K + k] += w
        elif not o < like(o, 0.0):
            for j in range(a.shape[1]):
                if ga.shape[0] != 0:
                    ga[r, j] += g * (o - o)
                if gb.shape[0] != 0:
                    gb[r, j * K + k] += g * (o - o)


_fwd_row = njit(**_JIT)(_log_matvec_fwd_row)   # a row's answer where its maximum is not finite


@njit(**_JIT)
def _columns(x, r0, n, cols):
    """cols[q, i] = x[r0 + i, q] for the block's n rows."""
    for i in range(n):
        for q in range(x.shape[1]):
            cols[q, i] = x[r0 + i, q]


@njit(**_JIT)
def log_matvec_fwd(a, b, out):
    """out[r, k] = log sum_j exp(a[r, j] + b[r, j K + k]), K = out's width (b: J rows of K, j-major):
    `_log_matvec_fwd_row` over blocks of rows, each exponential's loop over the block's rows."""
    J, K = a.shape[1], out.shape[1]
    work = np.empty((J + J * K + 2) * BLOCK, a.dtype)   # one allocation a call
    a_cols, b_cols = work[:J * BLOCK].reshape((J, BLOCK)), work[J * BLOCK:(J + J * K) * BLOCK].reshape((J * K, BLOCK))
    m, s = work[(J + J * K) * BLOCK:(J + J * K + 1) * BLOCK], work[(J + J * K + 1) * BLOCK:]
    for r0 in range(0, out.shape[0], BLOCK):
        n = min(BLOCK, out.shape[0] - r0)
        _columns(a, r0, n, a_cols)
        _columns(b, r0, n, b_cols)
        for k in range(K):
            for i in range(n):
                m[i] = a_cols[0, i] + b_cols[k, i]
            for j in range(1, J):
                for i in range(n):
                    v = a_cols[j, i] + b_cols[j * K + k, i]
                    m[i] = v if v > m[i] else m[i]
            for i in range(n):
                s[i] = like(m[i], 0.0)
            for j in range(J):
                for i in range(n):
                    s[i] += fexp(a_cols[j, i] + b_cols[j * K + k, i] - m[i])
            for i in range(n):
                out[r0 + i, k] = m[i] + flog(s[i])
            for i in range(n):
                if not m[i] - m[i] == like(m[i], 0.0):   # +-inf or NaN: the row body's own answer
                    _fwd_row(r0 + i, a, b, out)


@njit(**_JIT)
def log_matvec_bwd(a, b, out, gout, ga, gb):
    """w_jk = gout[r, k] exp(a_j + B_jk - out[r, k]); ga[r, j] += sum_k w_jk ; gb[r, j K + k] += w_jk
    (each skippable): `_log_matvec_bwd_row` over blocks of rows, the exponentials' loops over the
    block's rows; a non-finite out sends what the row body sends (nothing for -inf, else NaN)."""
    J, K = a.shape[1], gout.shape[1]
    n2 = 2 * (J + J * K) * BLOCK
    work = np.empty(n2 + 3 * BLOCK, a.dtype)   # one allocation a call
    a_cols, b_cols = work[:J * BLOCK].reshape((J, BLOCK)), work[J * BLOCK:(J + J * K) * BLOCK].reshape((J * K, BLOCK))
    ga_cols = work[(J + J * K) * BLOCK:(2 * J + J * K) * BLOCK].reshape((J, BLOCK))
    gb_cols = work[(2 * J + J * K) * BLOCK:n2].reshape((J * K, BLOCK))
    o, g, w = work[n2:n2 + BLOCK], work[n2 + BLOCK:n2 + 2 * BLOCK], work[n2 + 2 * BLOCK:]
    zero = like(a, 0.0)
    for r0 in range(0, gout.shape[0], BLOCK):
        n = min(BLOCK, gout.shape[0] - r0)
        _columns(a, r0, n, a_cols)
        _columns(b, r0, n, b_cols)
        if ga.shape[0] != 0:
            _columns(ga, r0, n, ga_cols)
        if gb.shape[0] != 0:
            _columns(gb, r0, n, gb_cols)
        for k in range(K):
            for i in range(n):
                o[i] = out[r0 + i, k]
                g[i] = gout[r0 + i, k]
            for j in range(J):
                for i in range(n):
                    oi = o[i]
                    wi = g[i] * fexp(a_cols[j, i] + b_cols[j * K + k, i] - oi)
                    w[i] = wi if oi - oi == zero else (zero if oi < zero else g[i] * (oi - oi))
                if ga.shape[0] != 0:
                    for i in range(n):
                        ga_cols[j, i] += w[i]
                if gb.shape[0] != 0:
                    for i in range(n):
                        gb_cols[j * K + k, i] += w[i]
        for i in range(n):
            if ga.shape[0] != 0:
                for j in range(J):
                    ga[r0 + i, j] = ga_cols[j, i]
            if gb.shape[0] != 0:
                for q in range(J * K):
                    gb[r0 + i, q] = gb_cols[q, i]


CUDA = {   # hand-written on the CPU over blocks of rows: a thread per row on a device
    "log_matvec_fwd": lambda: cuda_launcher(log_matvec_fwd, "rows", _log_matvec_fwd_row, "out"),
    "log_matvec_bwd": lambda: cuda_launcher(log_matvec_bwd, "rows", _log_matvec_bwd_row, "gout"),
}


R, J, K = 4, 3, 2
PARITY = {
    "log_sum_exp_fwd": lambda g: (g.x(R, J), g.out(R)),
    "log_sum_exp_bwd": lambda g: (g.x(R, J), g.x(R), g.x(R), g.x(R, J)),
    "log_matvec_fwd": lambda g: (g.x(R, J), g.x(R, J * K), g.out(R, K)),
    "log_matvec_bwd": lambda g: (g.x(R, J), g.x(R, J * K), g.x(R, K), g.x(R, K), g.x(R, J), g.x(R, J * K)),
}
