"""CUDA twin of ``cpu_dcv.py``: the double control variate estimate for Bernoulli units, a
host-side launcher with the CPU kernel's name and arguments. The math is ``cpu_dcv``'s own
``_dcv_group`` re-jitted by ``device()``: one thread per (data row, configuration group),
grid-stride; the groups own disjoint rows, so every thread writes its own cells only and the
sums over a group's samples and units run in the CPU kernel's order.
"""
from numba import cuda

from . import cpu_dcv as C
from . import cpu_rows
from .device import device
from .gpu_core import run as _run
from .scalar import hyper
from .registry import items

_dcv_group = device(C._dcv_group)
_is_group_head = device(cpu_rows._is_group_head)


def _double_cv_grad_body(q, logits, b, L, g, rw, K, S, strides, sizes, alpha, train, T, W, Cb, Gm, ga, gal):
    n = L.shape[0] // (K * S)
    al = hyper(alpha)
    i = q // S
    c = q - i * S
    if _is_group_head(c, strides, sizes):
        _dcv_group(logits, b, L, g, rw, K, S, i, c, strides, sizes, al, train, T, W, Cb, Gm, ga, gal)


_double_cv_grad = items(_double_cv_grad_body, "(L.shape[0] // (K * S)) * S")


def double_cv_grad(logits, b, L, g, rw, K, S, strides, sizes, alpha, train, T, W, Cb, Gm, ga, gal):
    """ga += the double control variate estimate (and alpha's variance gradient per group into gal
    with `train`); see cpu_dcv.double_cv_grad."""
    _run(_double_cv_grad, (L.shape[0] // (K * S)) * S, logits, b, L, g, rw, K, S, strides, sizes, alpha, train, T,
         W, Cb, Gm, ga, gal)


from . import cpu_dcv as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("dcv", _cpu_twin, globals())
