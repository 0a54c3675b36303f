"""Categorical units: logits (R, G*K), G independent groups of K classes per row, group g the
columns g*K .. g*K+K-1, a value one-hot (or relaxed) per group. The samples (Gumbel-max, inverse
CDF), the log-probability and its VJP, and the Gumbel-softmax (Concrete) relaxation and its exact
VJP (Jang et al. 2017, Maddison et al. 2017).

Declared once (kernels/declare.py): the samplers and the VJPs are group bodies (one CUDA thread
per group), the log-probability a row body; the per-group math is kernels/math/groups.py's.
``gumbel_softmax_bwd``'s temperature gradient is a sum over every group: a hand-written CPU
kernel, and on CUDA ONE block summing the per-group body (a deterministic ``block_sum``) or, the
temperature's gradient skipped, the grid over the groups (`CUDA`). The conventions are
cpu/core.py's: forward kernels overwrite, backward kernels accumulate (+=) and skip a gradient
passed with 0 rows; tau is a 1-element array or a number.
"""
from numba import njit

from ..declare import groups, rows
from ..math.groups import (
    categorical_icdf_group,
    categorical_log_prob_bwd_group,
    categorical_log_prob_group,
    categorical_sample_group,
    gumbel_softmax_bwd_group,
    gumbel_softmax_group,
)
from ..math.scalar import hyper, like

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@groups("out")
def categorical_sample(r, g, logits, gumbel, K, out):
    """One-hot of argmax_k (a_k + g_k) per group, g standard Gumbel (Gumbel-max trick)."""
    categorical_sample_group(logits, gumbel, r, g * K, K, out)


@groups("out")
def categorical_inverse_cdf_sample(r, g, logits, u, K, out):
    """One-hot of the smallest k with sum_{i<=k} softmax(a)_i > u[r, g] (inverse CDF).

    u is (R, G) uniform in [0, 1). Rounding can leave the cumulative sum short of u near 1:
    then the last class with non-zero probability is taken.
    """
    categorical_icdf_group(logits, u[r, g], r, g * K, K, out)


@rows("x")
def categorical_log_prob(r, logits, x, K, out_rows):
    """out_rows[r] = sum_g sum_k x_k (a_k - logsumexp_g(a)) (x one-hot or relaxed)."""
    s = like(x, 0.0)
    for g in range(x.shape[1] // K):
        s += categorical_log_prob_group(logits, x, r, g * K, K)
    out_rows[r] = s


@groups("x")
def categorical_log_prob_bwd(r, g, logits, x, K, grow, glogits, gx):
    """glogits += grow (x_k - softmax_k(a) sum_i x_i) ; gx += grow (a_k - lse); skippable."""
    categorical_log_prob_bwd_group(logits, x, r, g * K, K, grow[r], glogits, gx,
                                   glogits.shape[0] != 0, gx.shape[0] != 0)


@groups("out")
def gumbel_softmax_sample(r, g, logits, gumbel, tau, K, out):
    """out = softmax((a + g) / tau) per group (Gumbel-softmax / Concrete;
    Jang et al. 2017, Maddison et al. 2017)."""
    gumbel_softmax_group(logits, gumbel, like(out, hyper(tau)), r, g * K, K, out)


@njit(**_JIT)
def gumbel_softmax_bwd(logits, gumbel, tau, K, out, gout, glogits, gtau):
    """Exact VJP of y = softmax(u), u = (a + g) / tau, per group:
    gu_k = y_k (gout_k - sum_i gout_i y_i) ; glogits += gu / tau ;
    gtau[0] += -sum gu_k (u_k - max u) / tau (sum_k gu_k = 0, so the shift is exact and
    keeps the product finite for huge logits). Both skippable."""
    t = like(out, hyper(tau))
    do_a = glogits.shape[0] != 0
    acc = like(out, 0.0)
    R, D = out.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            acc += gumbel_softmax_bwd_group(
                logits, gumbel, t, r, gi * K, K, out, gout, glogits, do_a)
    if gtau.shape[0] != 0:
        gtau[0] += acc / t


def _gumbel_softmax_bwd_item(i, logits, gumbel, tau, K, out, gout, glogits, gtau):
    """Group i (row-major) of gumbel_softmax_bwd on CUDA: its glogits terms added; returns its
    term of the temperature's gradient (before the division by tau)."""
    G = out.shape[1] // K
    r = i // G
    return gumbel_softmax_bwd_group(logits, gumbel, like(out, hyper(tau)), r, (i - r * G) * K, K, out, gout,
                                    glogits, glogits.shape[0] != 0)


def _gumbel_softmax_bwd_cuda():
    """gumbel_softmax_bwd's CUDA launcher: with the temperature's gradient, ONE block sums the
    groups' terms in float64 (block_sum, a fixed order) and thread 0 adds total / tau to gtau[0];
    without it, the grid over the groups."""
    from ..native.launch import run, single_block
    from ..registry import block, items
    n = "out.shape[0] * (out.shape[1] // K)"
    total = block(_gumbel_softmax_bwd_item, n, result="res[0] + like(out, total) / like(out, hyper(tau))")
    group = items(_gumbel_softmax_bwd_item, n)

    def gumbel_softmax_bwd(logits, gumbel, tau, K, out, gout, glogits, gtau):
        n = out.shape[0] * (out.shape[1] // K)
        if gtau.shape[0] != 0:
            single_block(total, n)(logits, gumbel, tau, K, out, gout, glogits, gtau, gtau)
        else:
            run(group, n, logits, gumbel, tau, K, out, gout, glogits, gtau)
    gumbel_softmax_bwd.__doc__ = globals()["gumbel_softmax_bwd"].__doc__
    gumbel_softmax_bwd.__kernels__ = [total, group]
    return gumbel_softmax_bwd


CUDA = {"gumbel_softmax_bwd": _gumbel_softmax_bwd_cuda}   # hand-written on the CPU: its CUDA launcher's maker


def _bwd_case(g):
    """gumbel_softmax_bwd's arguments at a sample of the CPU kernel's."""
    logits, gum, tau = g.x(R, D), g.x(R, D), g.h(0.5)
    out = g.out(R, D)
    gumbel_softmax_sample(logits, gum, tau, K, out)
    return (logits, gum, tau, K, out, g.x(R, D), g.x(R, D), g.x(1))


R, D, K = 4, 6, 3   # G = 2 groups of K per row
G = D // K
PARITY = {
    "categorical_sample": lambda g: (g.x(R, D), g.x(R, D), K, g.out(R, D)),
    "categorical_inverse_cdf_sample": lambda g: (g.x(R, D), g.u(R, G), K, g.out(R, D)),
    "categorical_log_prob": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.out(R)),
    "categorical_log_prob_bwd": lambda g: (g.x(R, D), g.onehot(R, G, K), K, g.x(R), g.x(R, D), g.x(R, D)),
    "gumbel_softmax_sample": lambda g: (g.x(R, D), g.x(R, D), g.h(0.5), K, g.out(R, D)),
    "gumbel_softmax_bwd": _bwd_case,
}
