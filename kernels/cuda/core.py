"""CUDA twin of ``cpu/core.py``: the same public functions, names and arguments, as host-side
launchers over numba CUDA device arrays (the generated step binds ``core`` to this module).
The layer and softmax kernels are defined here; the other families are in the twins of the
CPU modules, re-exported at the bottom under their names: the CUDA twins of ``families/``. The kernel makers (``_map1``,
``_rows2``, ...) and launch helpers they all share are in ``gpu_core.py``.

Every per-element formula is a ``scalar.py`` function re-jitted for the device by
``device()`` (``kernels/cuda/device.py``); the kernels here only index arrays, loop, chain
(``gout *``) and accumulate. Conventions are cpu/core.py's: forward kernels overwrite, backward
kernels accumulate (``+=``), a gradient with ``shape[0] == 0`` is skipped, hyper-parameters
are 1-element (device) arrays or plain numbers, all arrays of a call share float32/float64.

Parallel layout (grid-stride loops, block size from ``gpu_config``):
* elementwise kernels: one thread per (r, j);
* per-row sums (log-probs, costs): one thread per row, summing j in the CPU's order, so
  they give the CPU's bits whenever the scalar functions do;
* softmax-group kernels: one thread per (row, group), running the scalar_groups.py helper;
* affine products: one thread per output element (inner loop over the shared index);
  column sums (bias, broadcast) one thread per column, rows in order;
* a tau gradient (a sum over all elements) is reduced in ONE block (``block_sum``), so it
  is deterministic; without a tau gradient the same kernel runs on the full grid.
"""
from numba import cuda

from ..math import scalar as S
from ..math import groups as SG
from .device import device
from .launch import _acc, _cells, _chain, _groups, _map1, _mul_acc, _run_map, _run_rows, launch
from ..math.scalar import like
from ..registry import cells, items

# device versions of the scalar math (one source with the CPU kernels)
_sigmoid = device(S.sigmoid)
_sigmoid_grad = device(S.sigmoid_grad)
_softplus = device(S.softplus)
_sqrt1p = device(S.sqrt1p)
_sqrt1p_grad = device(S.sqrt1p_grad)
_tanh = device(S.tanh)
_tanh_grad_out = device(S.tanh_grad_out)
_relu = device(S.relu)
_exp = device(S.exp)
_logsumexp_group = device(SG.logsumexp_group)
_softmax_group = device(SG.softmax_group)
_softmax_bwd_group = device(SG.softmax_bwd_group)


# ============================================================================ layers


def _affine_fwd_body(r, o, x, W, b, out):
    R, O = out.shape
    I = x.shape[1]
    s = like(out, 0.0)
    for q in range(I):
        s += x[r, q] * W[q, o]
    out[r, o] = s + b[o]


_affine_fwd = cells(_affine_fwd_body, "out")


def _affine_bwd_x_body(r, q, W, gout, gx):
    R, I = gx.shape
    O = gout.shape[1]
    s = like(gx, 0.0)
    for o in range(O):
        s += gout[r, o] * W[q, o]
    gx[r, q] += s


_affine_bwd_x = cells(_affine_bwd_x_body, "gx")


def _affine_bwd_W_body(q, o, x, gout, gW):
    I, O = gW.shape
    R = gout.shape[0]
    s = like(gW, 0.0)
    for r in range(R):
        s += x[r, q] * gout[r, o]
    gW[q, o] += s


_affine_bwd_W = cells(_affine_bwd_W_body, "gW")


def _column_sums_body(o, gout, gb):
    """gb[o] += sum_r gout[r, o], rows in order (as the CPU loop adds them)."""
    R, O = gout.shape
    for r in range(R):
        gb[o] += gout[r, o]


_column_sums = items(_column_sums_body, "gout.shape[1]")


def affine_fwd(x, W, b, out):
    """out = x W + b."""
    k = launch(_affine_fwd, _cells(out))
    if k is not None:
        k(x, W, b, out)


def affine_bwd(x, W, gout, gx, gW, gb):
    """gx += gout W^T ; gW += x^T gout ; gb += sum_r gout[r] (each skippable)."""
    if gx.shape[0] != 0:
        k = launch(_affine_bwd_x, _cells(gx))
        if k is not None:
            k(W, gout, gx)
    if gW.shape[0] != 0:
        k = launch(_affine_bwd_W, _cells(gW))
        if k is not None:
            k(x, gout, gW)
    if gb.shape[0] != 0:
        k = launch(_column_sums, gb.shape[0])
        if k is not None:
            k(gout, gb)


_sigmoid_fwd = _map1(_sigmoid)
_sigmoid_bwd = _chain(_sigmoid_grad)
_tanh_fwd = _map1(_tanh)
_tanh_bwd = _chain(_tanh_grad_out)
_relu_fwd = _map1(_relu)
_softplus_fwd = _map1(_softplus)
_softplus_bwd = _chain(_sigmoid)
_sqrt1p_fwd = _map1(_sqrt1p)
_sqrt1p_bwd = _chain(_sqrt1p_grad)
_exp_fwd = _map1(_exp)



def sigmoid_fwd(z, out):
    """out = sigma(z)."""
    _run_map(_sigmoid_fwd, out, z)


def sigmoid_bwd(z, out, gout, gz):
    """gz += gout * sigma'(z)."""
    _run_map(_sigmoid_bwd, gz, z, gout)


def tanh_fwd(z, out):
    """out = tanh(z)."""
    _run_map(_tanh_fwd, out, z)


def tanh_bwd(z, out, gout, gz):
    """gz += gout * (1 - tanh(z)^2), from out."""
    _run_map(_tanh_bwd, gz, out, gout)


def relu_fwd(z, out):
    """out = max(z, 0)."""
    _run_map(_relu_fwd, out, z)


def _relu_bwd_body(r, j, z, gout, gz):
    R, D = gout.shape
    if z[r, j] > 0:
        gz[r, j] += gout[r, j]


_relu_bwd = cells(_relu_bwd_body, "gout")


def relu_bwd(z, out, gout, gz):
    """gz += gout * [z > 0]."""
    _run_map(_relu_bwd, gz, z, gout)


def softplus_fwd(z, out):
    """out = log(1 + exp(z))."""
    _run_map(_softplus_fwd, out, z)


def softplus_bwd(z, out, gout, gz):
    """gz += gout * sigma(z)."""
    _run_map(_softplus_bwd, gz, z, gout)


def sqrt1p_fwd(z, out):
    """out = sqrt(1 + z^2), the heteroscedastic-regression scale activation."""
    _run_map(_sqrt1p_fwd, out, z)


def sqrt1p_bwd(z, out, gout, gz):
    """gz += gout * z / sqrt(1 + z^2)."""
    _run_map(_sqrt1p_bwd, gz, z, gout)


def exp_fwd(z, out):
    """out = exp(z)."""
    _run_map(_exp_fwd, out, z)



def exp_bwd(z, out, gout, gz):
    """gz += gout * exp(z) (= gout * out)."""
    _run_map(_mul_acc, gz, gout, out)


def _add_body(r, j, a, b, out):
    R, D = out.shape
    out[r, j] = a[r, j] + b[r, j]


_add = cells(_add_body, "out")



def _mul_body(r, j, a, b, out):
    R, D = out.shape
    out[r, j] = a[r, j] * b[r, j]


_mul = cells(_mul_body, "out")


def add_fwd(a, b, out):
    """out = a + b."""
    _run_map(_add, out, a, b)


def add_bwd(gout, ga, gb):
    """ga += gout ; gb += gout (each skippable)."""
    if ga.shape[0] != 0:
        _run_map(_acc, ga, gout)
    if gb.shape[0] != 0:
        _run_map(_acc, gb, gout)


def _div_body(r, j, a, b, out):
    R, D = out.shape
    out[r, j] = a[r, j] / b[r, j]


_div = cells(_div_body, "out")


def _div_acc_body(r, j, a, b, out):
    """out += a / b."""
    R, D = out.shape
    out[r, j] += a[r, j] / b[r, j]


_div_acc = cells(_div_acc_body, "out")


def _div_bwd_den_body(r, j, b, q, gout, gb):
    """gb -= gout * q / b."""
    R, D = gb.shape
    gb[r, j] -= gout[r, j] * q[r, j] / b[r, j]


_div_bwd_den = cells(_div_bwd_den_body, "gb")


def _pow_body(r, j, x, p, out):
    R, D = out.shape
    out[r, j] = x[r, j] ** p


_pow = cells(_pow_body, "out")


def _pow_bwd_body(r, j, x, p, gout, gx):
    R, D = gx.shape
    gx[r, j] += gout[r, j] * p * x[r, j] ** (p - 1.0)


_pow_bwd = cells(_pow_bwd_body, "gx")


def div_fwd(a, b, out):
    """out = a / b (elementwise)."""
    _run_map(_div, out, a, b)


def div_bwd(a, b, out, gout, ga, gb):
    """ga += gout / b ; gb -= gout * out / b (each skippable)."""
    if ga.shape[0] != 0:
        _run_map(_div_acc, ga, gout, b)
    if gb.shape[0] != 0:
        _run_map(_div_bwd_den, gb, b, out, gout)


def pow_fwd(x, p, out):
    """out = x ** p for a constant p."""
    _run_map(_pow, out, x, p)


def pow_bwd(x, p, out, gout, gx):
    """gx += gout * p * x ** (p - 1)."""
    _run_map(_pow_bwd, gx, x, p, gout)


def mul_fwd(a, b, out):
    """out = a * b (elementwise)."""
    _run_map(_mul, out, a, b)


def mul_bwd(a, b, gout, ga, gb):
    """ga += gout * b ; gb += gout * a (each skippable)."""
    if ga.shape[0] != 0:
        _run_map(_mul_acc, ga, gout, b)
    if gb.shape[0] != 0:
        _run_map(_mul_acc, gb, gout, a)


def _broadcast_rows_body(r, j_, p, out):
    R, D = out.shape
    i = r * out.shape[1] + j_
    out[r, i - r * D] = p[i - r * D]


_broadcast_rows = cells(_broadcast_rows_body, "out")


def broadcast_rows_fwd(p, out):
    """out[r, :] = p for every row."""
    _run_map(_broadcast_rows, out, p)


def broadcast_rows_bwd(gout, gp):
    """gp += sum_r gout[r, :]."""
    k = launch(_column_sums, gp.shape[0])
    if k is not None:
        k(gout, gp)


def _copy_body(r, j, x, out):
    R, D = out.shape
    out[r, j] = x[r, j]


_copy = cells(_copy_body, "out")


def copy_fwd(x, out):
    """out = x."""
    _run_map(_copy, out, x)


def copy_bwd(gout, gx):
    """gx += gout."""
    _run_map(_acc, gx, gout)


def _row_sum_body(r, x, out_rows):
    R, D = x.shape
    s = like(x, 0.0)
    for j in range(D):
        s += x[r, j]
    out_rows[r] = s


_row_sum = items(_row_sum_body, "x.shape[0]")


def _row_spread_acc_body(r, j_, grow, gx):
    R, D = gx.shape
    i = r * gx.shape[1] + j_
    gx[r, i - r * D] += grow[r]


_row_spread_acc = cells(_row_spread_acc_body, "gx")


def row_sum_fwd(x, out_rows):
    """out_rows[r] = sum_j x[r, j]."""
    k = launch(_row_sum, x.shape[0])
    if k is not None:
        k(x, out_rows)


def row_sum_bwd(grow, gx):
    """gx[r, :] += grow[r]."""
    _run_map(_row_spread_acc, gx, grow)


# ============================================================================ softmax
# One thread per (row, group): r = i // G, group gi = i % G, columns gi*K .. gi*K + K - 1.


def _softmax_fwd_body(i, z, K, out):
    R, D = z.shape
    G = D // K
    r = i // G
    _softmax_group(z, r, (i - r * G) * K, K, out)


_softmax_fwd = items(_softmax_fwd_body, "z.shape[0] * (z.shape[1] // K)")


def softmax_fwd(z, K, out):
    """out = softmax(z) per group of K columns."""
    _run_rows(_softmax_fwd, _groups(z, K), z, K, out)


def _softmax_bwd_body(i, K, out, gout, gz):
    R, D = out.shape
    G = D // K
    r = i // G
    _softmax_bwd_group(r, (i - r * G) * K, K, out, gout, gz)


_softmax_bwd = items(_softmax_bwd_body, "out.shape[0] * (out.shape[1] // K)")


def softmax_bwd(z, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) per group, y = out."""
    _run_rows(_softmax_bwd, _groups(z, K), K, out, gout, gz)


def _logsumexp_rows_body(i, z, K, out):
    R, D = z.shape
    G = D // K
    r = i // G
    gi = i - r * G
    m, ls = _logsumexp_group(z, r, gi * K, K)
    out[r, gi] = m + ls


_logsumexp_rows = items(_logsumexp_rows_body, "z.shape[0] * (z.shape[1] // K)")


def logsumexp_rows(z, K, out):
    """out[r, g] = log sum_k exp(z[r, g*K + k])."""
    _run_rows(_logsumexp_rows, _groups(z, K), z, K, out)


# the kernels of the other families, kept in modules of their own, under the names the lowering calls
from .. import families as _families  # noqa: E402
from ..declare import cuda_twin as _cuda_twin  # noqa: E402

_FAMILIES = {}   # family -> {name: CUDA launcher} of the families declared once (kernels/families/)
for _family in _families.modules():   # cuda_twin registers both targets of each kernel
    _fam = _family.__name__.rsplit(".", 1)[1]
    _FAMILIES[_fam] = _cuda_twin(_family)
    globals().update(_FAMILIES[_fam])


from ..cpu import core as _cpu_twin  # noqa: E402
from ..registry import include as _include  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("core", _cpu_twin, globals())
_include("core", *_FAMILIES)
