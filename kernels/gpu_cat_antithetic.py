"""CUDA twin of ``cpu_cat_antithetic.py``: categorical DisARM's coupled pair and its estimate.

The per-group bodies are ``cpu_cat_antithetic``'s own ``@njit`` helpers re-jitted by
``device()``: one thread per (row, group) for the draw, one per (digit-0 row, group) for the
estimate, which writes its group's columns of both rows of the pair (and, with enumerated nodes
below, of every row over their digits), so no two threads touch the same element.
"""
from numba import cuda

from . import cpu_cat_antithetic as C
from . import cpu_rows
from .device import device
from .gpu_core import _groups, _run_rows
from .registry import items

_cat_antithetic_group = device(C._cat_antithetic_group)
_cat_pair_coef = device(C._cat_pair_coef)
_cat_pair_marginal = device(C._cat_pair_marginal)
_is_group_head = device(cpu_rows._is_group_head)
_marginal_signal = device(cpu_rows._marginal_signal)


def _cat_antithetic_sample_body(i, logits, u, stride, K, out):
    R, D = out.shape
    G = D // K
    r = i // G
    _cat_antithetic_group(logits, u, (r // stride) % 2, r, (i - r * G) * K, K, out)


_cat_antithetic_sample = items(_cat_antithetic_sample_body, "out.shape[0] * (out.shape[1] // K)")


def cat_antithetic_sample(logits, u, stride, K, out):
    """Digit 0 rows: the draw x of each group; digit 1 rows: its antithetic partner y."""
    _run_rows(_cat_antithetic_sample, _groups(out, K), logits, u, stride, K, out)


@cuda.jit
def _cat_disarm_grad(logits, v, L, rw, stride, K, ga):
    R, D = ga.shape
    G = D // K
    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):
        r = i // G
        if (r // stride) % 2:
            continue
        r1 = r + stride
        c0 = (i - r * G) * K
        x, y, c = _cat_pair_coef(logits, v, L[r], L[r1], r, r1, c0, K)
        ga[r, c0 + x] += rw[r] * c
        ga[r, c0 + y] -= rw[r] * c
        ga[r1, c0 + x] += rw[r1] * c
        ga[r1, c0 + y] -= rw[r1] * c


def cat_disarm_grad(logits, v, L, rw, stride, K, ga):
    """ga += rw * 1/2 w (f(x) - f(y)) (e_x - e_y) on both rows of each pair, per group."""
    _run_rows(_cat_disarm_grad, _groups(ga, K), logits, v, L, rw, stride, K, ga)


def _cat_disarm_grad_marginal_body(i, logits, v, L, rw, stride, strides, sizes, K, ga):
    R, D = ga.shape
    G = D // K
    r = i // G
    if (r // stride) % 2 == 0 and _is_group_head(r, strides, sizes):
        r1 = r + stride
        f0 = _marginal_signal(L, rw, r, strides, sizes)
        f1 = _marginal_signal(L, rw, r1, strides, sizes)
        _cat_pair_marginal(logits, v, f0, f1, rw, r, r1, strides, sizes, (i - r * G) * K, K, ga)


_cat_disarm_grad_marginal = items(_cat_disarm_grad_marginal_body, "ga.shape[0] * (ga.shape[1] // K)")


def cat_disarm_grad_marginal(logits, v, L, rw, stride, strides, sizes, K, ga):
    """cat_disarm_grad with each member's signal marginalised over the enumerated digits below."""
    _run_rows(_cat_disarm_grad_marginal, _groups(ga, K), logits, v, L, rw, stride, strides, sizes, K, ga)


from . import cpu_cat_antithetic as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("cat_antithetic", _cpu_twin, globals())
