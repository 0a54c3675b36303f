"""Bernoulli units with the logit link, P(b = 1) = sigma(a): the sample (logistic noise, or
uniform noise with the logits given once per data row), the log-probability and its VJP,
straight-through's backward, the binary Concrete relaxation, and the kept-sigmoid variants.

Kept sigmoid: ``*_keep`` computes sig = sigma(a) beside the log-probability (one exp for both)
and ``*_kept_bwd`` reads it for the VJP (the compiler's choice when the logits need a
gradient). ``bernoulli_nll_keep*`` are the Bernoulli cost head's (sign -1: -log p); their rows
are ``bernoulli_log_prob_keep*``'s. ``_rep``: the logits are given once per data row (B rows),
each repeated on ``reps`` drawn rows, so sigma and softplus are computed once per data row;
``_const``: the logits are one vector p (D,) shared by every row (a parameter broadcast).

Declared once (kernels/declare.py): the per-cell and per-row bodies are both targets' kernels.
Three CPU kernels share work across rows and keep their loops: ``bernoulli_sample_rep`` and
``*_keep_rep`` are item bodies over the data rows, whose CUDA kernels are per-cell and per-row
bodies of their own (a thread per data row would idle a device); ``*_keep_const`` is a
hand-written CPU kernel (sigma(p) once, then a reduction that vectorises), its CUDA kernel a
per-row body. ``binary_concrete_bwd``'s temperature gradient is a sum over every cell: a
hand-written CPU kernel, and on CUDA ONE block summing the per-cell body (a deterministic
``block_sum``) or, the temperature's gradient skipped, the grid over the cells (`CUDA`).
Conventions are cpu/core.py's: forward kernels overwrite, backward kernels accumulate (+=) and
skip a gradient passed with 0 rows; tau is a 1-element array or a number.
"""
from numba import njit

from ..declare import cells, cuda_launcher, items, rows
from ..math.scalar import (
    bernoulli_log_prob_term,
    bernoulli_log_prob_term_sigmoid,
    bernoulli_score,
    binary_concrete,
    binary_concrete_vjp,
    hyper,
    like,
    sigmoid,
    sigmoid_grad,
    threshold,
    uniform_threshold,
)

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ sample, log-prob


@cells("out")
def bernoulli_sample(r, j, logits, noise, out):
    """out = H(a + eps), eps standard logistic: P(out = 1) = sigma(a) (binary stochastic neuron)."""
    out[r, j] = threshold(logits[r, j], noise[r, j])


@items("out.shape[0] // reps")
def bernoulli_sample_rep(i, logits, reps, u, out):
    """bernoulli_sample with the logits given once per data row (B rows), each repeated on `reps`
    drawn rows, from uniform noise: out = [u > sigma(-a)], the event a + logit(u) > 0 of
    bernoulli_sample's logistic noise made from the same u, so a data row's sigma costs one exp
    per unit instead of a log per drawn unit. The first drawn row of a data row holds sigma(-a)
    meanwhile. A NaN logit gives NaN values (not a silent 0)."""
    D = out.shape[1]
    one, zero = like(u, 1.0), like(u, 0.0)
    r0 = i * reps
    nan = False
    for j in range(D):
        q = sigmoid(-logits[i, j])
        nan |= q != q
        out[r0, j] = q
    for r in range(r0 + 1, r0 + reps):
        for j in range(D):
            out[r, j] = one if u[r, j] > out[r0, j] else zero
    for j in range(D):
        out[r0, j] = one if u[r0, j] > out[r0, j] else zero
    if nan:
        for r in range(r0, r0 + reps):
            for j in range(D):
                if logits[i, j] != logits[i, j]:
                    out[r, j] = logits[i, j]


def _sample_rep_cell(r, j, logits, reps, u, out):
    """bernoulli_sample_rep's CUDA body: one thread per cell (sigma per cell costs a device nothing)."""
    out[r, j] = uniform_threshold(sigmoid(-logits[r // reps, j]), u[r, j])


@rows("x")
def bernoulli_log_prob(r, logits, x, out_rows):
    """out_rows[r] = sum_j x log sigma(a) + (1 - x) log sigma(-a) (x may be relaxed in [0, 1])."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += bernoulli_log_prob_term(logits[r, j], x[r, j])
    out_rows[r] = s


@rows("x")
def bernoulli_log_prob_bwd(r, logits, x, grow, glogits, gx):
    """glogits += grow[r] (x - sigma(a)) ; gx += grow[r] a (d/dx of x a - softplus(a))."""
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(x.shape[1]):
            glogits[r, j] += g * bernoulli_score(logits[r, j], x[r, j])
    if gx.shape[0] != 0:
        for j in range(x.shape[1]):
            gx[r, j] += g * logits[r, j]


# ============================================================================ kept sigmoid


# The bodies are written out per sign (1: log p, -1: the cost head's -log p): a shared row helper
# taking the sign, called from the pasted loop, compiled to loops 10-30% shorter than the
# hand-written kernels'; written out, the machine code differs from theirs only in register
# allocation and the zero-column path, and the timings are theirs (benchmarks/experiments/declared_kernels.py).


@rows("x")
def bernoulli_log_prob_keep(r, logits, x, out_rows, sig):
    """bernoulli_log_prob that also keeps sig = sigma(a) for bernoulli_log_prob_kept_bwd: the
    exp of the cost serves its VJP too (the compiler's choice when the logits need a gradient)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[r, j], x[r, j])
        s += c
        sig[r, j] = sg
    out_rows[r] = s


@rows("x")
def bernoulli_log_prob_kept_bwd(r, logits, x, sig, grow, glogits, gx):
    """bernoulli_log_prob_bwd from the kept sigma(a): glogits += grow (x - sig) ; gx += grow a."""
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(x.shape[1]):
            glogits[r, j] += g * (x[r, j] - sig[r, j])
    if gx.shape[0] != 0:
        for j in range(x.shape[1]):
            gx[r, j] += g * logits[r, j]


@rows("t")
def bernoulli_nll_keep(r, logits, t, out_rows, sig):
    """bernoulli_nll (= -bernoulli_log_prob) that also keeps sig = sigma(a)."""
    s = like(t, 0.0)
    for j in range(t.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[r, j], t[r, j])
        s += c
        sig[r, j] = sg
    out_rows[r] = -s


@rows("t")
def bernoulli_nll_kept_bwd(r, logits, t, sig, grow, glogits, gt):
    """bernoulli_nll_bwd from the kept sigma(a): glogits += grow (sig - t) ; gt += -grow a."""
    g = -grow[r]
    if glogits.shape[0] != 0:
        for j in range(t.shape[1]):
            glogits[r, j] += g * (t[r, j] - sig[r, j])
    if gt.shape[0] != 0:
        for j in range(t.shape[1]):
            gt[r, j] += g * logits[r, j]


@items("logits.shape[0]")
def bernoulli_log_prob_keep_rep(i, logits, reps, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits given once per data row (logits (B, D), x (B reps,
    D): a node of the data-row sub-graph), each repeated on `reps` drawn rows: sum_j log p(x |
    sigma(a)) = sum_j x a_j - sum_j softplus(a_j), whose second sum and sig = sigma(a) (B rows) are
    computed once per data row, not once per drawn row (the K draws of a multi-sample program)."""
    D = logits.shape[1]
    zero = like(x, 0.0)
    sp = zero
    for j in range(D):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[i, j], zero)   # -softplus(a_j), sigma(a_j)
        sp += c
        sig[i, j] = sg
    for r in range(i * reps, (i + 1) * reps):
        s = zero
        for j in range(D):
            s += x[r, j] * logits[i, j]
        out_rows[r] = s + sp


@items("logits.shape[0]")
def bernoulli_nll_keep_rep(i, logits, reps, t, out_rows, sig):
    """bernoulli_nll_keep with the logits given once per data row, each repeated on `reps` rows."""
    D = logits.shape[1]
    zero = like(t, 0.0)
    sp = zero
    for j in range(D):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[i, j], zero)
        sp += c
        sig[i, j] = sg
    for r in range(i * reps, (i + 1) * reps):
        s = zero
        for j in range(D):
            s += t[r, j] * logits[i, j]
        out_rows[r] = -(s + sp)


def _log_prob_keep_rep_row(r, logits, reps, x, out_rows, sig):
    """The CUDA body of bernoulli_log_prob_keep_rep, a row body (kernels/lanes.py spreads it over
    a warp): drawn row r reads data row r // reps; the first of a data row's rows writes its sig row."""
    i = r // reps
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[i, j], x[r, j])
        s += c
        if r == i * reps:
            sig[i, j] = sg
    out_rows[r] = s


def _nll_keep_rep_row(r, logits, reps, t, out_rows, sig):
    """The CUDA body of bernoulli_nll_keep_rep (as _log_prob_keep_rep_row, negated)."""
    i = r // reps
    s = like(t, 0.0)
    for j in range(t.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(logits[i, j], t[r, j])
        s += c
        if r == i * reps:
            sig[i, j] = sg
    out_rows[r] = -s


@rows("x")
def bernoulli_log_prob_kept_bwd_rep(r, logits, reps, x, sig, grow, glogits, gx):
    """bernoulli_log_prob_kept_bwd from bernoulli_log_prob_keep_rep's sigma (B rows; row r reads
    data row r // reps): glogits += grow (x - sig) ; gx += grow a (each skippable)."""
    i = r // reps
    g = grow[r]
    if glogits.shape[0] != 0:
        for j in range(x.shape[1]):
            glogits[r, j] += g * (x[r, j] - sig[i, j])
    if gx.shape[0] != 0:
        for j in range(x.shape[1]):
            gx[r, j] += g * logits[i, j]


@rows("t")
def bernoulli_nll_kept_bwd_rep(r, logits, reps, t, sig, grow, glogits, gt):
    """bernoulli_nll_kept_bwd from bernoulli_nll_keep_rep's sigma (B rows)."""
    i = r // reps
    g = -grow[r]
    if glogits.shape[0] != 0:
        for j in range(t.shape[1]):
            glogits[r, j] += g * (t[r, j] - sig[i, j])
    if gt.shape[0] != 0:
        for j in range(t.shape[1]):
            gt[r, j] += g * logits[i, j]


@njit(**_JIT)
def _keep_const(p, x, out_rows, sig, sign):
    """The *_keep_const kernels: sum_j log p(x | sigma(p_j)) = sum_j x p_j - sum_j softplus(p_j),
    whose second sum and sigma(p_j) are computed once, not once per row; sig[r, :] = sigma(p)."""
    R, D = x.shape
    zero = like(x, 0.0)
    sp = zero
    for j in range(D):
        c, sg = bernoulli_log_prob_term_sigmoid(p[j], zero)   # -softplus(p_j), sigma(p_j)
        sp += c
        sig[0, j] = sg
    for r in range(R):   # a pure reduction, apart from the copies below, vectorises (2.5 -> 0.7 us at 160 x 32)
        s = zero
        for j in range(D):
            s += x[r, j] * p[j]
        out_rows[r] = sign * (s + sp)
    for r in range(1, R):
        for j in range(D):
            sig[r, j] = sig[0, j]


@njit(**_JIT)
def bernoulli_log_prob_keep_const(p, x, out_rows, sig):
    """bernoulli_log_prob_keep with the logits a vector p (D,) shared by every row."""
    _keep_const(p, x, out_rows, sig, like(x, 1.0))


@njit(**_JIT)
def bernoulli_nll_keep_const(p, t, out_rows, sig):
    """bernoulli_nll_keep with the logits a vector p (D,) shared by every row (a prior)."""
    _keep_const(p, t, out_rows, sig, like(t, -1.0))


def _log_prob_keep_const_row(r, p, x, out_rows, sig):
    """The CUDA body of bernoulli_log_prob_keep_const, a row body (the CPU kernel's once-per-column
    work is no saving on a device)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(p[j], x[r, j])
        s += c
        sig[r, j] = sg
    out_rows[r] = s


def _nll_keep_const_row(r, p, t, out_rows, sig):
    """The CUDA body of bernoulli_nll_keep_const (as _log_prob_keep_const_row, negated)."""
    s = like(t, 0.0)
    for j in range(t.shape[1]):
        c, sg = bernoulli_log_prob_term_sigmoid(p[j], t[r, j])
        s += c
        sig[r, j] = sg
    out_rows[r] = -s


# ============================================================================ straight-through, binary Concrete


@cells("gx")
def bernoulli_st_bwd(r, j, logits, gx, glogits):
    """Straight-through (Bengio et al. 2013), logistic noise: glogits += gx dF/da = gx sigma(a) sigma(-a)."""
    glogits[r, j] += gx[r, j] * sigmoid_grad(logits[r, j])


@rows("out")
def binary_concrete_sample(r, logits, noise, tau, out):
    """out = sigma((a + eps) / tau), eps standard logistic (Concrete relaxation;
    Maddison et al. 2017)."""
    t = like(out, hyper(tau))
    for j in range(out.shape[1]):
        out[r, j] = binary_concrete(logits[r, j], noise[r, j], t)


@njit(**_JIT)
def binary_concrete_bwd(logits, noise, tau, out, gout, glogits, gtau):
    """Exact VJP of y = sigma(u), u = (a + eps) / tau:
    glogits += gout y (1 - y) / tau ; gtau[0] += sum_{r,j} -gout y (1 - y) u / tau.

    y (1 - y) = sigma'(u) is evaluated from u (no cancellation as y -> 1); both skippable.
    """
    t = like(out, hyper(tau))
    R, D = out.shape
    acc = like(out, 0.0)
    do_a = glogits.shape[0] != 0
    for r in range(R):
        for j in range(D):
            ga, gt = binary_concrete_vjp(logits[r, j], noise[r, j], t, gout[r, j])
            if do_a:
                glogits[r, j] += ga
            acc += gt
    if gtau.shape[0] != 0:
        gtau[0] += acc / t


def _binary_concrete_bwd_row(r, j, logits, noise, tau, out, gout, glogits, gtau):
    """binary_concrete_bwd's cell (r, j) for the row-fused rewrite (kernels/rowcode.py)."""
    t = like(out, hyper(tau))
    ga, gt = binary_concrete_vjp(logits[r, j], noise[r, j], t, gout[r, j])
    if glogits.shape[0] != 0:
        glogits[r, j] += ga
    if gtau.shape[0] != 0:
        gtau[0] += gt / t


ROW = {"binary_concrete_bwd": _binary_concrete_bwd_row}


def _binary_concrete_bwd_item(i, logits, noise, tau, out, gout, glogits, gtau):
    """Cell i (row-major) of binary_concrete_bwd on CUDA: its glogits term added; returns its
    term of the temperature's gradient (before the division by tau)."""
    D = gout.shape[1]
    r = i // D
    j = i - r * D
    ga, gt = binary_concrete_vjp(logits[r, j], noise[r, j], like(gout, hyper(tau)), gout[r, j])
    if glogits.shape[0] != 0:
        glogits[r, j] += ga
    return gt


def _binary_concrete_bwd_cuda():
    """binary_concrete_bwd's CUDA launcher: with the temperature's gradient, ONE block sums the
    cells' terms in float64 (block_sum, a fixed order) and thread 0 adds total / tau to gtau[0];
    without it, the grid over the cells."""
    from ..native.launch import run, single_block
    from ..registry import block, items as each_item
    n = "gout.shape[0] * gout.shape[1]"
    total = block(_binary_concrete_bwd_item, n, result="res[0] + like(gout, total) / like(gout, hyper(tau))")
    cell = each_item(_binary_concrete_bwd_item, n)

    def binary_concrete_bwd(logits, noise, tau, out, gout, glogits, gtau):
        n = gout.shape[0] * gout.shape[1]
        if gtau.shape[0] != 0:
            single_block(total, n)(logits, noise, tau, out, gout, glogits, gtau, gtau)
        else:
            run(cell, n, logits, noise, tau, out, gout, glogits, gtau)
    binary_concrete_bwd.__doc__ = globals()["binary_concrete_bwd"].__doc__
    binary_concrete_bwd.__kernels__ = [total, cell]
    return binary_concrete_bwd


# the CUDA launchers of the kernels whose CPU loop is not the device's (module docstring)
CUDA = {
    "bernoulli_sample_rep": lambda: cuda_launcher(bernoulli_sample_rep, "cells", _sample_rep_cell, "out"),
    "bernoulli_log_prob_keep_rep": lambda: cuda_launcher(bernoulli_log_prob_keep_rep, "rows",
                                                         _log_prob_keep_rep_row, "x"),
    "bernoulli_nll_keep_rep": lambda: cuda_launcher(bernoulli_nll_keep_rep, "rows", _nll_keep_rep_row, "t"),
    "bernoulli_log_prob_keep_const": lambda: cuda_launcher(bernoulli_log_prob_keep_const, "rows",
                                                           _log_prob_keep_const_row, "x"),
    "bernoulli_nll_keep_const": lambda: cuda_launcher(bernoulli_nll_keep_const, "rows", _nll_keep_const_row, "t"),
    "binary_concrete_bwd": _binary_concrete_bwd_cuda,
}

R, D = 4, 6
B = R // 2   # _rep: logits once per data row, each repeated on 2 rows; the kept sigma has B rows
PARITY = {
    "bernoulli_sample": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "bernoulli_sample_rep": lambda g: (3 * g.x(B, D), 2, g.u(R, D), g.out(R, D)),
    "bernoulli_log_prob": lambda g: (3 * g.x(R, D), g.u(R, D), g.out(R)),
    "bernoulli_log_prob_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_log_prob_keep": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_log_prob_kept_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_nll_keep": lambda g: (3 * g.x(R, D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_nll_kept_bwd": lambda g: (g.x(R, D), g.bits(R, D), g.u(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_log_prob_keep_const": lambda g: (3 * g.x(D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_nll_keep_const": lambda g: (3 * g.x(D), g.bits(R, D), g.out(R), g.out(R, D)),
    "bernoulli_log_prob_keep_rep": lambda g: (3 * g.x(B, D), 2, g.bits(R, D), g.out(R), g.out(B, D)),
    "bernoulli_nll_keep_rep": lambda g: (3 * g.x(B, D), 2, g.bits(R, D), g.out(R), g.out(B, D)),
    "bernoulli_log_prob_kept_bwd_rep": lambda g: (g.x(B, D), 2, g.bits(R, D), g.u(B, D), g.x(R), g.x(R, D),
                                                  g.x(R, D)),
    "bernoulli_nll_kept_bwd_rep": lambda g: (g.x(B, D), 2, g.bits(R, D), g.u(B, D), g.x(R), g.x(R, D), g.x(R, D)),
    "bernoulli_st_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D)),
    "binary_concrete_sample": lambda g: (g.x(R, D), g.x(R, D), g.h(0.7), g.out(R, D)),
    "binary_concrete_bwd": lambda g: (g.x(R, D), g.x(R, D), g.h(0.7), g.u(R, D), g.x(R, D), g.x(R, D), g.x(1)),
}
