"""CUDA twin of ``cpu_poisson.py`` (same names and arguments); the scalar formulas are the CPU
module's, re-jitted for the device by ``device()``."""
from numba import cuda

from . import cpu_poisson as C
from .device import device
from .gpu_core import run
from .scalar import like
from .registry import cells, items

_inverse_cdf = device(C._inverse_cdf)
_log_prob_term = device(C._log_prob_term)


def _cells(kernel, a, *args):
    """Launch ``kernel(*args)`` over the cells of the 2D array ``a``."""
    run(kernel, a.shape[0] * a.shape[1], *args)


def _sample_body(r, j, rate, u, out):
    R, D = out.shape
    out[r, j] = _inverse_cdf(rate[r, j], u[r, j])


_sample = cells(_sample_body, "out")


def poisson_sample(rate, u, out):
    """out = the Poisson(rate) count at uniform u (inverse CDF)."""
    _cells(_sample, out, rate, u, out)


def _log_prob_body(r, rate, x, out_rows):
    R, D = x.shape
    s = like(x, 0.0)
    for j in range(D):
        s += _log_prob_term(x[r, j], rate[r, j])
    out_rows[r] = s


_log_prob = items(_log_prob_body, "x.shape[0]")


def poisson_log_prob(rate, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | rate[r, j])."""
    run(_log_prob, x.shape[0], rate, x, out_rows)


def _log_prob_bwd_body(r, j, rate, x, grow, grate):
    R, D = x.shape
    grate[r, j] += grow[r] * (x[r, j] / rate[r, j] - like(x, 1.0))


_log_prob_bwd = cells(_log_prob_bwd_body, "x")


def poisson_log_prob_bwd(rate, x, grow, grate, gx):
    """grate += grow[r] (x / rate - 1) (skippable); gx is not touched."""
    if grate.shape[0] != 0:
        _cells(_log_prob_bwd, x, rate, x, grow, grate)


from . import cpu_poisson as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("poisson", _cpu_twin, globals())
