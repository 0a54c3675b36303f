"""The CUDA target's RELAX set, the twin of ``cpu/relax.py``: the CUDA twins of the family declared
once for it (``families/relax.py``), and the launchers of its backward kernels and LAX's
(``families/lax.py``), which the families name in their ``CUDA``.

The per-row math is the families' own ``@njit`` row functions (``_relax_row``,
``_relax_categorical_row``, ``_lax_row``; the paper form's ``_relax_paper_row`` and
``_relax_paper_categorical_row``, a thread per drawn row of REBAR's layout, whose eta and
temperature terms go to two more columns of the scratch), re-jitted by ``device()``. The backward kernels run
one thread per row with its work vectors in ``cuda.local.array``,
so they have compile-time limits: at most ``MAX_UNITS`` units per node (D, all groups of a
categorical node together) and at most ``MAX_HIDDEN`` hidden units of the control variate
(H); a launcher raises ``ValueError`` naming the limit when a call exceeds it. The phi
gradient is a sum over rows: each row writes its contribution to a row of a device scratch
(R x P, float64, kept per shape), then one thread per parameter adds the rows in row order,
so the result is deterministic.
"""
import math

import numpy as np
from numba import cuda, float64

from ..families import relax as X
from ..families.rebar import CONFIGS
from .device import device
from .rebar import _check_configs
from .rows import zero2
from ..native.launch import run as _run
from ..registry import items

MAX_UNITS = 128    # D: units of one RELAX node (local work vectors per thread)
MAX_HIDDEN = 128   # H: hidden units of the RELAX control variate

_relax_row = device(X._relax_row)
_relax_categorical_row = device(X._relax_categorical_row)

_SCRATCH = {}


def _scratch(R, P):
    """A zeroed R x P float64 device array (one per shape, reused across calls)."""
    buf = _SCRATCH.get((R, P))
    if buf is None:
        buf = cuda.device_array((R, P), dtype=np.float64)
        _SCRATCH[(R, P)] = buf
    zero2(buf)
    return buf


def _check_limits(name, D, H, kind="RELAX"):
    if D > MAX_UNITS:
        raise ValueError(f"gpu_relax.{name}: the node has {D} units; the CUDA {kind} kernels support at most "
                         f"MAX_UNITS = {MAX_UNITS} units per node (use target='cpu' for wider nodes)")
    if H > MAX_HIDDEN:
        raise ValueError(f"gpu_relax.{name}: the control variate has {H} hidden units; the CUDA {kind} kernels "
                         f"support at most MAX_HIDDEN = {MAX_HIDDEN} (use target='cpu' or a smaller hidden size)")


def _rows_then_summed(kernel, R, gphi, train, *args):
    """Run a backward kernel over the R rows, each row writing its phi gradient to its row of a
    zeroed scratch (the kernel's last two arguments: the scratch and train); with train, add the
    rows into gphi in row order (deterministic)."""
    if R == 0:
        return
    gp = _scratch(R, gphi.shape[0] if train else 1)
    _run(kernel, R, *args, gp, bool(train))
    if train:
        _run(_sum_rows_into, gphi.shape[0], gp, gphi)


def _sum_rows_into_body(p, buf, out):
    R, P = buf.shape
    acc = 0.0
    for r in range(R):
        acc += buf[r, p]
    out[p] += acc


_sum_rows_into = items(_sum_rows_into_body, "buf.shape[1]")


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


def relax_bwd_launcher():
    def relax_bwd(a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train):
        R, D = a.shape
        _check_limits("relax_bwd", D, H)
        _rows_then_summed(_relax_bwd, R, gphi, train, a, u, v, b, L, rw, ctx, phi, H, ga)
    relax_bwd.__doc__ = X.relax_bwd.__doc__
    relax_bwd.__kernels__ = [_relax_bwd, _sum_rows_into]
    return relax_bwd


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


def relax_categorical_bwd_launcher():
    def relax_categorical_bwd(a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train):
        R, D = a.shape
        _check_limits("relax_categorical_bwd", D, H)
        _rows_then_summed(_relax_categorical_bwd, R, gphi, train, a, u, v, b, L, rw, ctx, phi, H, K, ga)
    relax_categorical_bwd.__doc__ = X.relax_categorical_bwd.__doc__
    relax_categorical_bwd.__kernels__ = [_relax_categorical_bwd, _sum_rows_into]
    return relax_categorical_bwd


# ----- the paper's form (REBAR's rows plus r): a thread per drawn row; its phi gradient and its
# (d/deta, d/dlog lam) terms go to its row of the scratch (P + 2 wide), summed in row order
_relax_paper_row = device(X._relax_paper_row)
_relax_paper_categorical_row = device(X._relax_paper_categorical_row)
_slot_local = device(X.slot_local)


def _relax_paper_bwd_body(r, a, u, v, y, L, rw, gs, stride, off, span, eta, loglam, delta, ctx, phi, H, ga, gp,
                          train, lam_rows):
    if _slot_local(r, stride, span) != 0:
        return
    lam = math.exp(loglam[0])
    inv1 = 1.0 / lam
    inv2 = 1.0 / (lam * math.exp(delta))
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
    ux = cuda.local.array(MAX_HIDDEN, float64)
    pre = cuda.local.array(MAX_HIDDEN, float64)
    P = gp.shape[1] - 2
    de, dl = _relax_paper_row(r, r + off * stride, a, u, v, y, L, rw, gs, stride, ctx, phi, H, eta[0], inv1, inv2,
                              delta, ga, gp[r], train, lam_rows, z, zt, dzt, gz, gzt, g, q, h, s, ht, st, ux, pre)
    gp[r, P] = de
    gp[r, P + 1] = dl


_relax_paper_bwd = items(_relax_paper_bwd_body, "a.shape[0]")


def _relax_paper_categorical_bwd_body(r, a, u, v, L, rw, gs, stride, off, span, K, eta, loglam, delta, ctx, phi, H,
                                      ga, gp, train, lam_rows):
    if _slot_local(r, stride, span) != 0:
        return
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z = cuda.local.array(MAX_UNITS, float64)
    zt = cuda.local.array(MAX_UNITS, float64)
    th = cuda.local.array(MAX_UNITS, float64)
    cc = cuda.local.array(MAX_UNITS, float64)
    bb = cuda.local.array(MAX_UNITS, float64)
    c1 = cuda.local.array(MAX_UNITS, float64)
    c2 = cuda.local.array(MAX_UNITS, float64)
    c3 = cuda.local.array(MAX_UNITS, float64)
    c4 = cuda.local.array(MAX_UNITS, float64)
    gz = cuda.local.array(MAX_UNITS, float64)
    gzt = cuda.local.array(MAX_UNITS, float64)
    g = cuda.local.array(MAX_UNITS, float64)
    q = cuda.local.array(MAX_UNITS, float64)
    yk = cuda.local.array(MAX_UNITS, float64)
    gk = cuda.local.array(MAX_UNITS, float64)
    h = cuda.local.array(MAX_HIDDEN, float64)
    s = cuda.local.array(MAX_HIDDEN, float64)
    ht = cuda.local.array(MAX_HIDDEN, float64)
    st = cuda.local.array(MAX_HIDDEN, float64)
    ux = cuda.local.array(MAX_HIDDEN, float64)
    pre = cuda.local.array(MAX_HIDDEN, float64)
    P = gp.shape[1] - 2
    de, dl = _relax_paper_categorical_row(r, r + off * stride, a, u, v, L, rw, gs, stride, K, ctx, phi, H, eta[0], lam,
                                          lam2, delta, ga, gp[r], train, lam_rows, z, zt, th, cc, bb, c1, c2, c3, c4,
                                          gz, gzt, g, q, yk, gk, h, s, ht, st, ux, pre)
    gp[r, P] = de
    gp[r, P + 1] = dl


_relax_paper_categorical_bwd = items(_relax_paper_categorical_bwd_body, "a.shape[0]")


def _sum_paper_body(p, buf, gphi, geta, glam, train, lam_rows):
    R, W = buf.shape
    acc = 0.0
    for r in range(R):
        acc += buf[r, p]
    if p < W - 2:
        if train:
            gphi[p] += acc
    elif p == W - 2:
        if train:
            geta[0] += acc
    elif lam_rows:
        glam[0] += acc


_sum_paper = items(_sum_paper_body, "buf.shape[1]")


def _paper_rows_then_summed(kernel, R, gphi, geta, glam, train, lam_rows, *args):
    if R == 0:
        return
    gp = _scratch(R, gphi.shape[0] + 2)
    _run(kernel, R, *args, gp, bool(train), bool(lam_rows))
    if train:
        _run(_sum_paper, gphi.shape[0] + 2, gp, gphi, geta, glam, bool(train), bool(lam_rows))


def relax_paper_bwd_launcher():
    def relax_paper_bwd(a, u, v, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ctx, phi, H, ga, geta,
                        glam, gphi, train):
        _check_limits("relax_paper_bwd", a.shape[1], H)
        _check_configs("relax_paper_bwd", configs, "relax")
        _paper_rows_then_summed(_relax_paper_bwd, a.shape[0], gphi, geta, glam, train, train and configs == CONFIGS,
                                a, u, v, y, L, rw, gs, stride, off, span, eta, loglam, delta, ctx, phi, H, ga)
    relax_paper_bwd.__doc__ = X.relax_paper_bwd.__doc__
    relax_paper_bwd.__kernels__ = [_relax_paper_bwd, _sum_paper]
    return relax_paper_bwd


def relax_paper_categorical_bwd_launcher():
    def relax_paper_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ctx, phi, H,
                                    ga, geta, glam, gphi, train):
        _check_limits("relax_paper_categorical_bwd", a.shape[1], H)
        _check_configs("relax_paper_categorical_bwd", configs, "relax")
        _paper_rows_then_summed(_relax_paper_categorical_bwd, a.shape[0], gphi, geta, glam, train,
                                train and configs == CONFIGS, a, u, v, L, rw, gs, stride, off, span, K, eta, loglam,
                                delta, ctx, phi, H, ga)
    relax_paper_categorical_bwd.__doc__ = X.relax_paper_categorical_bwd.__doc__
    relax_paper_categorical_bwd.__kernels__ = [_relax_paper_categorical_bwd, _sum_paper]
    return relax_paper_categorical_bwd


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
        _check_limits("lax_normal_bwd", D, H, kind="LAX")
        _rows_then_summed(row, R, gphi, train, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale)
    lax_normal_bwd.__doc__ = lax.lax_normal_bwd.__doc__
    lax_normal_bwd.__kernels__ = [row, _sum_rows_into]
    return lax_normal_bwd


from ..declare import cuda_twin as _cuda_twin  # noqa: E402  (after the makers its family names)

globals().update(_cuda_twin(X))
