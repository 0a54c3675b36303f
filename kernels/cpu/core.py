"""CPU array kernels of the layers (affine, activations, elementwise maps, row sums, softmax),
as ``@njit`` loops; the other families are in modules of their own, re-exported here.

These are the calls the graph compiler emits, in topological order forward and reverse
order backward, inside one fused nopython step. The conventions are a contract with the
code generator, and every ``cpu_*`` kernel module follows them:

* Node values are 2D C-contiguous ``(R, D)`` arrays (R = batch * samples); per-row
  quantities (costs, log-probs) are 1D ``(R,)``; ``W`` is ``(I, O)``, ``b`` is ``(O,)``.
* Hyper-parameters (temperature ``tau``, learning rate, ...) are 1-element 1D arrays, so a
  learnable one can be a view into the parameter vector; a plain float is accepted too.
* Forward kernels overwrite their outputs. Backward kernels accumulate (``+=``) into every
  gradient they receive; a gradient passed with ``shape[0] == 0`` is skipped.
* No allocation: the BLAS products (``blas.gemm``) write into their outputs, the gradients
  accumulating in place (beta = 1).
* dtype-generic: all arrays of one call share float32 or float64; constants are cast to it
  with ``like`` (see ``scalar.py``), so float32 math stays float32.
* ``error_model="numpy"``: a division by zero gives inf/nan instead of raising, and the
  division loops stay free of per-element Python-exception checks (so they vectorise).

Serial loops for now; every per-element formula is a named function of ``scalar.py``
(the softmax kernels call the per-group helpers of ``scalar_groups.py``), shared with the
CUDA twin ``cuda/core.py``.

The generated step calls every kernel as ``core.<name>`` with ``core`` this module, so the
kernels kept elsewhere are re-exported at the bottom under their names: the families declared
once in ``families/`` (the optimisers, LAX, the distributions: Bernoulli, probit, Normal, Categorical, Laplace, Poisson, ...; closed-form KL and cost heads, the ReinMax, Gumbel-Rao and gapped-ST backward kernels, ARM / DisARM's and
categorical DisARM's pairs, the unordered set estimator's, double control variates, ...).
"""
from numba import njit

from .blas import gemm

from ..math.scalar import (
    exp,
    like,
    relu,
    sigmoid,
    sigmoid_grad,
    softplus,
    sqrt1p,
    sqrt1p_grad,
    tanh,
    tanh_grad_out,
)
from ..math.groups import logsumexp_group, softmax_bwd_group, softmax_group


# Elementwise loops vectorise only without libm calls (scalar.fexp & co.) and, for their row
# sums, with reassociation allowed; "contract" lets LLVM fuse multiply-adds. No other fast-math
# flag: NaN and inf keep their meaning.
_JIT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


# ============================================================================ layers


@njit(**_JIT)
def affine_fwd(x, W, b, out):
    """out = x W + b (BLAS gemm into ``out``, then the bias row)."""
    gemm(x, False, W, False, out, like(out, 0.0))
    R, O = out.shape
    for r in range(R):
        for o in range(O):
            out[r, o] += b[o]


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


@njit(**_JIT)
def sigmoid_fwd(z, out):
    """out = sigma(z) = 1 / (1 + exp(-z))."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = sigmoid(z[r, j])


@njit(**_JIT)
def sigmoid_bwd(z, out, gout, gz):
    """gz += gout * sigma'(z), with sigma'(z) = sigma(z) sigma(-z) computed from z."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sigmoid_grad(z[r, j])


@njit(**_JIT)
def tanh_fwd(z, out):
    """out = tanh(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = tanh(z[r, j])


@njit(**_JIT)
def tanh_bwd(z, out, gout, gz):
    """gz += gout * (1 - tanh(z)^2)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * tanh_grad_out(out[r, j])


@njit(**_JIT)
def relu_fwd(z, out):
    """out = max(z, 0)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = relu(z[r, j])


@njit(**_JIT)
def relu_bwd(z, out, gout, gz):
    """gz += gout * [z > 0]."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            if z[r, j] > 0:
                gz[r, j] += gout[r, j]


@njit(**_JIT)
def softplus_fwd(z, out):
    """out = log(1 + exp(z)), stable for any z."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = softplus(z[r, j])


@njit(**_JIT)
def softplus_bwd(z, out, gout, gz):
    """gz += gout * sigma(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sigmoid(z[r, j])


@njit(**_JIT)
def sqrt1p_fwd(z, out):
    """out = sqrt(1 + z^2), the scale activation of heteroscedastic regression (sigma >= 1)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = sqrt1p(z[r, j])


@njit(**_JIT)
def sqrt1p_bwd(z, out, gout, gz):
    """gz += gout * z / sqrt(1 + z^2)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * sqrt1p_grad(z[r, j])


@njit(**_JIT)
def exp_fwd(z, out):
    """out = exp(z)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = exp(z[r, j])


@njit(**_JIT)
def exp_bwd(z, out, gout, gz):
    """gz += gout * exp(z) (= gout * out)."""
    R, D = z.shape
    for r in range(R):
        for j in range(D):
            gz[r, j] += gout[r, j] * out[r, j]


@njit(**_JIT)
def add_fwd(a, b, out):
    """out = a + b."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = a[r, j] + b[r, j]


@njit(**_JIT)
def add_bwd(gout, ga, gb):
    """ga += gout ; gb += gout (each skippable)."""
    R, D = gout.shape
    if ga.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                ga[r, j] += gout[r, j]
    if gb.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gb[r, j] += gout[r, j]


@njit(**_JIT)
def div_fwd(a, b, out):
    """out = a / b (elementwise; IEEE division: b = 0 gives +-inf or NaN)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = a[r, j] / b[r, j]


@njit(**_JIT)
def div_bwd(a, b, out, gout, ga, gb):
    """ga += gout / b ; gb -= gout * out / b, out = a / b (each skippable)."""
    R, D = gout.shape
    if ga.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                ga[r, j] += gout[r, j] / b[r, j]
    if gb.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gb[r, j] -= gout[r, j] * out[r, j] / b[r, j]


@njit(**_JIT)
def pow_fwd(x, p, out):
    """out = x ** p for a constant p (x < 0 with a non-integer p gives NaN, 0 ** -1 inf)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = x[r, j] ** p


@njit(**_JIT)
def pow_bwd(x, p, out, gout, gx):
    """gx += gout * p * x ** (p - 1)."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gx[r, j] += gout[r, j] * p * x[r, j] ** (p - 1.0)


@njit(**_JIT)
def mul_fwd(a, b, out):
    """out = a * b (elementwise)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = a[r, j] * b[r, j]


@njit(**_JIT)
def mul_bwd(a, b, gout, ga, gb):
    """ga += gout * b ; gb += gout * a (each skippable)."""
    R, D = gout.shape
    if ga.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                ga[r, j] += gout[r, j] * b[r, j]
    if gb.shape[0] != 0:
        for r in range(R):
            for j in range(D):
                gb[r, j] += gout[r, j] * a[r, j]


@njit(**_JIT)
def broadcast_rows_fwd(p, out):
    """out[r, :] = p for every row (p is 1D (D,), e.g. a learnable prior logit vector)."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = p[j]


@njit(**_JIT)
def broadcast_rows_bwd(gout, gp):
    """gp += sum_r gout[r, :]."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gp[j] += gout[r, j]


@njit(**_JIT)
def copy_fwd(x, out):
    """out = x."""
    R, D = out.shape
    for r in range(R):
        for j in range(D):
            out[r, j] = x[r, j]


@njit(**_JIT)
def copy_bwd(gout, gx):
    """gx += gout (the VJP of copy_fwd)."""
    R, D = gout.shape
    for r in range(R):
        for j in range(D):
            gx[r, j] += gout[r, j]


@njit(**_JIT)
def row_sum_fwd(x, out_rows):
    """out_rows[r] = sum_j x[r, j]."""
    R, D = x.shape
    for r in range(R):
        s = like(x, 0.0)
        for j in range(D):
            s += x[r, j]
        out_rows[r] = s


@njit(**_JIT)
def row_sum_bwd(grow, gx):
    """gx[r, :] += grow[r]."""
    R, D = gx.shape
    for r in range(R):
        g = grow[r]
        for j in range(D):
            gx[r, j] += g


# ============================================================================ softmax
# z (R, G*K): G independent groups of K columns, group g = columns g*K .. g*K+K-1.


@njit(**_JIT)
def softmax_fwd(z, K, out):
    """out = softmax(z) per group of K columns (max-shifted: exp never overflows)."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            softmax_group(z, r, gi * K, K, out)


@njit(**_JIT)
def softmax_bwd(z, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) per group, y = softmax(z) = out."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            softmax_bwd_group(r, gi * K, K, out, gout, gz)


@njit(**_JIT)
def logsumexp_rows(z, K, out):
    """out[r, g] = log sum_k exp(z[r, g*K + k]), shape (R, G)."""
    R, D = z.shape
    G = D // K
    for r in range(R):
        for gi in range(G):
            m, ls = logsumexp_group(z, r, gi * K, K)
            out[r, gi] = m + ls


# the kernels of the other families, kept in modules of their own, under the names the lowering calls
from .. import families as _families  # noqa: E402
from ..declare import exported as _exported  # noqa: E402

for _family in _families.modules():   # the families declared once (kernels/families/)
    globals().update(_exported(_family))
