"""The layers' kernels: the affine map (x W + b) and its VJP, a vector broadcast to every row (a
learnable prior's logits) and its VJP, and the softmax over groups of K columns, its VJP and the
groups' log-sum-exp. z (R, G*K) holds G independent groups of K columns, group g = columns
g*K .. g*K+K-1; the per-group math is kernels/math/groups.py's.

Declared once (kernels/declare.py): the softmax kernels are group bodies (one CUDA thread per
(row, group)), broadcast_rows_fwd a cell body. The affine kernels (and affine_acc, out += x W,
which the CUDA step runs after writing the bias rows) are hand-written on the CPU
(BLAS gemm into their outputs, kernels/native/blas.py) and broadcast_rows_bwd too (a sum over the
rows, added row after row so the loop over the columns vectorises); their CUDA launchers are the
family's `CUDA`: cuda/products.py's tiled products and column sums. Conventions are cpu/core.py's.
"""
from numba import njit

from ..native.blas import gemm
from ..declare import cells, groups
from ..math.groups import logsumexp_group, softmax_bwd_group, softmax_group
from ..math.scalar import like

_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ affine


@njit(**_JIT)
def affine_fwd(x, W, b, out):
    """out = x W + b (BLAS gemm into ``out``, then the bias row)."""
    gemm(x, False, W, False, out, like(out, 0.0))
    R, O = out.shape
    for r in range(R):
        for o in range(O):
            out[r, o] += b[o]


@njit(**_JIT)
def affine_acc(x, W, out):
    """out += x W (BLAS gemm accumulating into ``out``): the CUDA step's affine_fwd after its bias
    row was written into ``out`` (lowering/printer.py; the bias write then joins the kernels before
    it, kernels/cuda/fused.py)."""
    gemm(x, False, W, False, out, like(out, 1.0))


@njit(**_JIT)
def affine_bwd(x, W, gout, gx, gW, gb):
    """gx += gout W^T ; gW += x^T gout (BLAS, accumulating in place) ; gb += sum_r gout[r].
    Each gradient is skipped when its ``shape[0] == 0``."""
    R, O = gout.shape
    if gx.shape[0] != 0:
        gemm(gout, False, W, True, gx, like(gx, 1.0))
    if gW.shape[0] != 0:
        gemm(x, True, gout, False, gW, like(gW, 1.0))
    if gb.shape[0] != 0:
        for r in range(R):
            for o in range(O):
                gb[o] += gout[r, o]


def _affine_fwd_row(r, j, x, W, b, out):
    """affine_fwd's cell (r, j) for the row-fused rewrite (kernels/rowcode.py): b + sum_i x[r, i] W[i, j]."""
    s = b[j]
    for i in range(x.shape[1]):
        s += x[r, i] * W[i, j]
    out[r, j] = s


def _affine_bwd_row(r, x, W, gout, gx, gW, gb):
    """affine_bwd's row r for the row-fused rewrite: its terms of gx, gW and gb (each skippable)."""
    for j in range(gout.shape[1]):
        g = gout[r, j]
        for i in range(x.shape[1]):
            if gW.shape[0] != 0:
                gW[i, j] += g * x[r, i]
            if gx.shape[0] != 0:
                gx[r, i] += g * W[i, j]
        if gb.shape[0] != 0:
            gb[j] += g


# ============================================================================ broadcast rows


@cells("out")
def broadcast_rows_fwd(r, j, p, out):
    """out[r, :] = p for every row (p is 1D (D,), e.g. a learnable prior logit vector)."""
    out[r, j] = p[j]


@njit(**_JIT)
def broadcast_rows_bwd(gout, gp):
    """gp += sum_r gout[r, :]."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gp[j] += gout[r, j]


def _broadcast_rows_bwd_row(r, j, gout, gp):
    """broadcast_rows_bwd's cell (r, j) for the row-fused rewrite: gp[j] += gout[r, j]."""
    gp[j] += gout[r, j]


# the hand-written kernels' bodies for the row-fused rewrite (kernels/rowcode.py)
ROW = {"affine_fwd": _affine_fwd_row, "affine_bwd": _affine_bwd_row, "broadcast_rows_bwd": _broadcast_rows_bwd_row}


# ============================================================================ softmax


@groups("z")
def softmax_fwd(r, g, z, K, out):
    """out = softmax(z) per group of K columns (max-shifted: exp never overflows)."""
    softmax_group(z, r, g * K, K, out)


@groups("z")
def softmax_bwd(r, g, z, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) per group, y = softmax(z) = out."""
    softmax_bwd_group(r, g * K, K, out, gout, gz)


@groups("z")
def logsumexp_rows(r, g, z, K, out):
    """out[r, g] = log sum_k exp(z[r, g*K + k]), shape (R, G)."""
    m, ls = logsumexp_group(z, r, g * K, K)
    out[r, g] = m + ls


# the CUDA launchers of the hand-written CPU kernels: products and column sums, made by
# kernels/cuda/products.py (a target's module, above the families: named, not imported)
CUDA = {
    "affine_fwd": "products.affine_fwd_launcher",
    "affine_acc": "products.affine_acc_launcher",
    "affine_bwd": "products.affine_bwd_launcher",
    "broadcast_rows_bwd": "products.broadcast_rows_bwd_launcher",
}

R, D, K, I = 4, 6, 3, 5   # rows, columns (2 groups of K), affine inputs
G = D // K


def _softmax_bwd_case(g):
    z, out = g.x(R, D), g.out(R, D)
    softmax_fwd(z, K, out)
    return (z, K, out, g.x(R, D), g.x(R, D))


PARITY = {
    "affine_fwd": lambda g: (g.x(R, I), g.x(I, D), g.x(D), g.out(R, D)),
    "affine_acc": lambda g: (g.x(R, I), g.x(I, D), g.x(R, D)),
    "affine_bwd": lambda g: (g.x(R, I), g.x(I, D), g.x(R, D), g.x(R, I), g.x(I, D), g.x(D)),
    "broadcast_rows_fwd": lambda g: (g.x(D), g.out(R, D)),
    "broadcast_rows_bwd": lambda g: (g.x(R, D), g.x(D)),
    "softmax_fwd": lambda g: (g.x(R, D), K, g.out(R, D)),
    "softmax_bwd": _softmax_bwd_case,
    "logsumexp_rows": lambda g: (g.x(R, D), K, g.out(R, G)),
}
