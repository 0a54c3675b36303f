"""CUDA twin of ``cpu/lax.py``: LAX for Normal units, a launcher with the CPU kernel's name and
arguments. The row math is ``cpu_lax._lax_row`` (and through it RELAX's control-variate helpers)
re-jitted by ``device()``: one thread per row with its work vectors in ``cuda.local.array``, so
the limits are ``gpu_relax``'s (``MAX_UNITS`` units, ``MAX_HIDDEN`` hidden units). The phi
gradient goes through ``gpu_relax``'s per-row scratch, summed in row order (deterministic).
"""
from numba import cuda, float64

from ..cpu import lax as X
from .device import device
from .launch import run as _run
from .relax import MAX_HIDDEN, MAX_UNITS, _scratch, _sum_rows_into
from ..registry import items

_lax_row = device(X._lax_row)


def _lax_normal_bwd_body(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp, train):
    z = cuda.local.array(MAX_UNITS, float64)
    gz = cuda.local.array(MAX_UNITS, float64)
    q = cuda.local.array(MAX_UNITS, float64)
    h = cuda.local.array(MAX_HIDDEN, float64)
    s = cuda.local.array(MAX_HIDDEN, float64)
    _lax_row(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp[r], train, z, gz, q, h, s)


_lax_normal_bwd = items(_lax_normal_bwd_body, "x.shape[0]")


def lax_normal_bwd(x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gphi, train):
    """LAX's estimate into gloc / gscale and, if train, its variance gradient into gphi (see
    cpu_lax.lax_normal_bwd)."""
    R, D = x.shape
    if D > MAX_UNITS:
        raise ValueError(f"gpu_lax.lax_normal_bwd: the node has {D} units; the CUDA LAX kernel supports at most "
                         f"MAX_UNITS = {MAX_UNITS} units per node (use target='cpu' for wider nodes)")
    if H > MAX_HIDDEN:
        raise ValueError(f"gpu_lax.lax_normal_bwd: the control variate has {H} hidden units; the CUDA LAX kernel "
                         f"supports at most MAX_HIDDEN = {MAX_HIDDEN} (use target='cpu' or a smaller hidden size)")
    if R == 0:
        return
    gp = _scratch(R, gphi.shape[0] if train else 1)
    _run(_lax_normal_bwd, R, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp, bool(train))
    if train:
        _run(_sum_rows_into, gphi.shape[0], gp, gphi)


from ..cpu import lax as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("lax", _cpu_twin, globals())
