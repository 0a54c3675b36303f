"""CUDA twin of cpu_bounds.py (re-exported by gpu_rows, which the CUDA step binds as rows): the
importance-weighted bound, VIMCO's baselines, local ARM / DisARM's signals, the configuration
weights, over the CPU module's per-row helpers retargeted by device()."""
from numba import cuda

from . import cpu_bounds
from .device import device
from .gpu_core import block_sum, scratch, single_block
from .gpu_core import run as _run
from .registry import items

_iwae_row = device(cpu_bounds._iwae_row)
_vimco_row = device(cpu_bounds._vimco_row)
_swap_one_row = device(cpu_bounds._swap_one_row)


@cuda.jit
def _iwae_bound(tot, K, S, rw, ell, res):
    n = tot.shape[0] // (K * S)
    s = 0.0
    for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        s += _iwae_row(tot, K, S, i, n, rw, ell)
    total = block_sum(s)
    if cuda.threadIdx.x == 0:
        res[0] = total / n


def iwae_bound(tot, K, S, rw, ell):
    """The importance-weighted bound of each data row's K draws (see cpu_rows.iwae_bound): ell and
    the normalised weights / n written per row; returns the mean bound (copied to the host)."""
    res = scratch()
    single_block(_iwae_bound, tot.shape[0] // (K * S))(tot, K, S, rw, ell, res)
    return float(res.copy_to_host()[0])


def _vimco_baseline_body(i, tot, K, S, b):
    _vimco_row(tot, K, S, i, b)


_vimco_baseline = items(_vimco_baseline_body, "tot.shape[0] // (K * S)")


def vimco_baseline(tot, K, S, b):
    """VIMCO's leave-one-out baselines of the bound (see cpu_rows.vimco_baseline)."""
    _run(_vimco_baseline, tot.shape[0] // (K * S), tot, K, S, b)


def _iwae_swap_one_body(i, tot, ell, K, S, stride, out):
    _swap_one_row(tot, ell, K, S, stride, i, out)


_iwae_swap_one = items(_iwae_swap_one_body, "tot.shape[0] // (K * S)")


def iwae_swap_one(tot, ell, K, S, stride, out):
    """Local ARM / DisARM's signals (see cpu_rows.iwae_swap_one)."""
    _run(_iwae_swap_one, tot.shape[0] // (K * S), tot, ell, K, S, stride, out)


def _config_weights_body(r, S, c0, c1, value, out):
    c = r % S
    out[r] = value if c == c0 or c == c1 else 0.0


_config_weights = items(_config_weights_body, "out.shape[0]")


def config_weights(S, c0, c1, value, out):
    """out[r] = value on the rows of configuration c0 or c1 (r % S), 0 elsewhere."""
    _run(_config_weights, out.shape[0], S, c0, c1, value, out)


from .registry import link as _link  # noqa: E402

_link("rows", cpu_bounds, globals())
