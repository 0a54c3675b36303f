"""CUDA twin of ``cpu_laplace.py`` (same names and arguments); the scalar formulas are the CPU
module's, re-jitted for the device by ``device()``."""
from numba import cuda

from . import cpu_laplace as C
from .device import device
from .gpu_core import run
from .scalar import like
from .registry import cells, items

_eps = device(C._eps)
_log_prob_term = device(C._log_prob_term)
_log_prob_grad = device(C._log_prob_grad)


def _cells(kernel, a, *args):
    """Launch ``kernel(*args)`` over the cells of the 2D array ``a``."""
    run(kernel, a.shape[0] * a.shape[1], *args)


def _sample_body(r, j, loc, scale, u, out):
    R, D = out.shape
    out[r, j] = loc[r, j] + scale[r, j] * _eps(u[r, j])


_sample = cells(_sample_body, "out")


def laplace_sample(loc, scale, u, out):
    """out = loc + scale * eps(u) (pathwise)."""
    _cells(_sample, out, loc, scale, u, out)


def _sample_bwd_body(r, j, u, gout, gloc, gscale):
    R, D = gout.shape
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    if do_l:
        gloc[r, j] += gout[r, j]
    if do_s:
        gscale[r, j] += gout[r, j] * _eps(u[r, j])


_sample_bwd = cells(_sample_bwd_body, "gout")


def laplace_sample_bwd(u, gout, gloc, gscale):
    """gloc += gout ; gscale += gout * eps(u) (each skippable)."""
    _cells(_sample_bwd, gout, u, gout, gloc, gscale)


def _log_prob_body(r, loc, scale, x, out_rows):
    R, D = x.shape
    s = like(x, 0.0)
    for j in range(D):
        s += _log_prob_term(x[r, j], loc[r, j], scale[r, j])
    out_rows[r] = s


_log_prob = items(_log_prob_body, "x.shape[0]")


def laplace_log_prob(loc, scale, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | loc, scale)."""
    run(_log_prob, x.shape[0], loc, scale, x, out_rows)


def _log_prob_bwd_body(r, j, loc, scale, x, grow, gloc, gscale, gx):
    R, D = x.shape
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    dl, ds = _log_prob_grad(x[r, j], loc[r, j], scale[r, j])
    if do_l:
        gloc[r, j] += g * dl
    if do_s:
        gscale[r, j] += g * ds
    if do_x:
        gx[r, j] -= g * dl


_log_prob_bwd = cells(_log_prob_bwd_body, "x")


def laplace_log_prob_bwd(loc, scale, x, grow, gloc, gscale, gx):
    """grow[r] times the gradients of log p(x) into gloc, gscale, gx (accumulated, skippable)."""
    _cells(_log_prob_bwd, x, loc, scale, x, grow, gloc, gscale, gx)


from . import cpu_laplace as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("laplace", _cpu_twin, globals())
