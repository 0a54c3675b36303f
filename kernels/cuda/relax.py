"""CUDA twin of ``cpu/relax.py``: RELAX for Bernoulli and categorical units.

The per-unit, per-group and per-row math is ``cpu_relax``'s own ``@njit`` helpers
(``_relax_bit``, ``_relax_categorical_group``, ``_relax_row``, ``_relax_categorical_row``, and
through them ``_cv`` ... and ``kernels/math/conditional.py``), re-jitted by ``device()``; the CPU
kernels are loops over the very same helpers.

The backward kernels run one thread per row with its work vectors in ``cuda.local.array``,
so they have compile-time limits: at most ``MAX_UNITS`` units per node (D, all groups of a
categorical node together) and at most ``MAX_HIDDEN`` hidden units of the control variate
(H); a launcher raises ``ValueError`` naming the limit when a call exceeds it. The phi
gradient is a sum over rows: each row writes its contribution to a row of a device scratch
(R x P, float64, kept per shape), then one thread per parameter adds the rows in row order,
so the result is deterministic.
"""
import numpy as np
from numba import cuda, float64

from ..cpu import relax as X
from .device import device
from ..native.launch import run as _run
from ..registry import cells, items

MAX_UNITS = 128    # D: units of one RELAX node (local work vectors per thread)
MAX_HIDDEN = 128   # H: hidden units of the RELAX control variate

_relax_bit = device(X._relax_bit)
_relax_categorical_group = device(X._relax_categorical_group)
_relax_row = device(X._relax_row)
_relax_categorical_row = device(X._relax_categorical_row)

_SCRATCH = {}


def _scratch(R, P):
    """A zeroed R x P float64 device array (one per shape, reused across calls)."""
    buf = _SCRATCH.get((R, P))
    if buf is None:
        buf = cuda.device_array((R, P), dtype=np.float64)
        _SCRATCH[(R, P)] = buf
    _run(_zero2, R * P, buf)
    return buf


def _check_limits(name, D, H):
    if D > MAX_UNITS:
        raise ValueError(f"gpu_relax.{name}: the node has {D} units; the CUDA RELAX kernels support at most "
                         f"MAX_UNITS = {MAX_UNITS} units per node (use target='cpu' for wider nodes)")
    if H > MAX_HIDDEN:
        raise ValueError(f"gpu_relax.{name}: the control variate has {H} hidden units; the CUDA RELAX kernels "
                         f"support at most MAX_HIDDEN = {MAX_HIDDEN} (use target='cpu' or a smaller hidden size)")


def _zero2_body(r, j_, buf):
    R, P = buf.shape
    i = r * buf.shape[1] + j_
    buf[r, i - r * P] = 0.0


_zero2 = cells(_zero2_body, "buf")


def _sum_rows_into_body(p, buf, out):
    R, P = buf.shape
    acc = 0.0
    for r in range(R):
        acc += buf[r, p]
    out[p] += acc


_sum_rows_into = items(_sum_rows_into_body, "buf.shape[1]")


def _relax_sample_body(r, j, a, u, out):
    R, D = out.shape
    out[r, j] = _relax_bit(a[r, j], u[r, j])


_relax_sample = cells(_relax_sample_body, "out")


def relax_sample(a, u, out):
    """b = 1[a + logit(u) > 0] = 1[u > sigmoid(-a)]."""
    _run(_relax_sample, out.shape[0] * out.shape[1], a, u, out)


def _relax_bwd_body(r, a, u, v, b, L, rw, ctx, phi, H, ga, gp, train):
    z = cuda.local.array(MAX_UNITS, float64)
    zt = cuda.local.array(MAX_UNITS, float64)
    dzt = cuda.local.array(MAX_UNITS, float64)
    gz = cuda.local.array(MAX_UNITS, float64)
    gzt = cuda.local.array(MAX_UNITS, float64)
    g = cuda.local.array(MAX_UNITS, float64)
    q = cuda.local.array(MAX_UNITS, float64)
    h = cuda.local.array(MAX_HIDDEN, float64)
    s = cuda.local.array(MAX_HIDDEN, float64)
    ht = cuda.local.array(MAX_HIDDEN, float64)
    st = cuda.local.array(MAX_HIDDEN, float64)
    _relax_row(r, a, u, v, b, L, rw, ctx, phi, H, ga, gp[r], train, z, zt, dzt, gz, gzt, g, q, h, s, ht, st)


_relax_bwd = items(_relax_bwd_body, "a.shape[0]")


def relax_bwd(a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train):
    """Accumulate rw[r] * g_a into ga and, if train, the variance gradient into gphi."""
    R, D = a.shape
    _check_limits("relax_bwd", D, H)
    if R == 0:
        return
    gp = _scratch(R, gphi.shape[0] if train else 1)
    _run(_relax_bwd, R, a, u, v, b, L, rw, ctx, phi, H, ga, gp, bool(train))
    if train:
        _run(_sum_rows_into, gphi.shape[0], gp, gphi)


def _copy_cols_body(r, j, src, dst, offset):
    R, D = src.shape
    dst[r, offset + j] = src[r, j]


_copy_cols = cells(_copy_cols_body, "src")


def copy_cols(src, dst, offset):
    """dst[:, offset:offset + src.shape[1]] = src."""
    _run(_copy_cols, src.shape[0] * src.shape[1], src, dst, offset)


def _relax_categorical_sample_body(i, a, u, K, out):
    R = out.shape[0]
    G = out.shape[1] // K
    r = i // G
    _relax_categorical_group(a, u, r, (i - r * G) * K, K, out)


_relax_categorical_sample = items(_relax_categorical_sample_body, "(out.shape[0]) * (out.shape[1] // K)")


def relax_categorical_sample(a, u, K, out):
    """One-hot argmax_k (a_k + g_k) per group of K, g = -log(-log u) Gumbel."""
    _run(_relax_categorical_sample, out.shape[0] * (out.shape[1] // K), a, u, K, out)


def _relax_categorical_bwd_body(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gp, train):
    z = cuda.local.array(MAX_UNITS, float64)
    zt = cuda.local.array(MAX_UNITS, float64)
    th = cuda.local.array(MAX_UNITS, float64)
    cc = cuda.local.array(MAX_UNITS, float64)
    gz = cuda.local.array(MAX_UNITS, float64)
    gzt = cuda.local.array(MAX_UNITS, float64)
    sc = cuda.local.array(MAX_UNITS, float64)
    g = cuda.local.array(MAX_UNITS, float64)
    q = cuda.local.array(MAX_UNITS, float64)
    h = cuda.local.array(MAX_HIDDEN, float64)
    s = cuda.local.array(MAX_HIDDEN, float64)
    ht = cuda.local.array(MAX_HIDDEN, float64)
    st = cuda.local.array(MAX_HIDDEN, float64)
    _relax_categorical_row(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gp[r], train,
                           z, zt, th, cc, gz, gzt, sc, g, q, h, s, ht, st)


_relax_categorical_bwd = items(_relax_categorical_bwd_body, "a.shape[0]")


def relax_categorical_bwd(a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train):
    """RELAX for groups of K categorical units (see cpu_relax.relax_categorical_bwd)."""
    R, D = a.shape
    _check_limits("relax_categorical_bwd", D, H)
    if R == 0:
        return
    gp = _scratch(R, gphi.shape[0] if train else 1)
    _run(_relax_categorical_bwd, R, a, u, v, b, L, rw, ctx, phi, H, K, ga, gp, bool(train))
    if train:
        _run(_sum_rows_into, gphi.shape[0], gp, gphi)


def _lax_normal_bwd_launcher():
    """kernels/families/lax.py's lax_normal_bwd on CUDA (the family's `CUDA` names this maker):
    one thread per row running its `_lax_row` (re-jitted by device()) with its work vectors in
    cuda.local.array; with train, each row's phi gradient goes to its row of a scratch, then one
    thread per parameter sums the rows in row order."""
    import types
    from ..families import lax
    body = types.FunctionType(lax._lax_normal_bwd_row.__code__, {**vars(lax), "cuda": cuda, "float64": float64,
                                                                 "MAX_UNITS": MAX_UNITS, "MAX_HIDDEN": MAX_HIDDEN},
                              "_lax_normal_bwd_row")
    row = items(body, "x.shape[0]")

    def lax_normal_bwd(x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gphi, train):
        R, D = x.shape
        if D > MAX_UNITS:
            raise ValueError(f"lax_normal_bwd: the node has {D} units; the CUDA LAX kernel supports at most "
                             f"MAX_UNITS = {MAX_UNITS} units per node (use target='cpu' for wider nodes)")
        if H > MAX_HIDDEN:
            raise ValueError(f"lax_normal_bwd: the control variate has {H} hidden units; the CUDA LAX kernel "
                             f"supports at most MAX_HIDDEN = {MAX_HIDDEN} (use target='cpu' or a smaller hidden "
                             f"size)")
        if R == 0:
            return
        gp = _scratch(R, gphi.shape[0] if train else 1)
        _run(row, R, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp, bool(train))
        if train:
            _run(_sum_rows_into, gphi.shape[0], gp, gphi)
    lax_normal_bwd.__doc__ = lax.lax_normal_bwd.__doc__
    lax_normal_bwd.__kernels__ = [row, _sum_rows_into]
    return lax_normal_bwd


from ..cpu import relax as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("relax", _cpu_twin, globals())
