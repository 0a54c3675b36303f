"""Log-space reductions and their VJPs: the log-sum-exp of a row's columns and the log-space
matrix-vector product out_k = log sum_j exp(a_j + B_jk) (one step of the forward algorithm of
a Markov chain summed out, ppl/language/markov.py).

Both are row bodies (kernels/declare.py): the maximum is taken out before the exponentials, so
no exp overflows and a row of very negative terms keeps its relative accuracy. Conventions:
a NaN term makes the result NaN; a result of -inf (every term -inf: probability 0) is -inf and
sends no cotangent; a result of +inf is +inf and sends NaN (no finite derivative).
"""
from ..declare import rows
from ..math.scalar import fexp, flog, like


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


@rows("out")
def log_matvec_fwd(r, a, b, out):
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


@rows("gout")
def log_matvec_bwd(r, a, b, out, gout, ga, gb):
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


R, J, K = 4, 3, 2
PARITY = {
    "log_sum_exp_fwd": lambda g: (g.x(R, J), g.out(R)),
    "log_sum_exp_bwd": lambda g: (g.x(R, J), g.x(R), g.x(R), g.x(R, J)),
    "log_matvec_fwd": lambda g: (g.x(R, J), g.x(R, J * K), g.out(R, K)),
    "log_matvec_bwd": lambda g: (g.x(R, J), g.x(R, J * K), g.x(R, K), g.x(R, K), g.x(R, J), g.x(R, J * K)),
}
