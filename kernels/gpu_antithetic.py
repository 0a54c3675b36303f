"""CUDA twin of ``cpu_antithetic.py``: ARM / DisARM antithetic Bernoulli pair kernels.

A drawn row is a pair of rows (digit 0 and 1 of the row index at ``stride``) sharing one
uniform per unit; the pair rule and the ARM / DisARM coefficients are ``scalar.py``
functions (``antithetic_bit``, ``arm_coef``, ``disarm_coef``) re-jitted by ``device()``.
The gradient kernels run one thread per (digit-0 row, unit), which writes both rows of its
pair, so no two threads touch the same element.
"""
from numba import cuda

from . import cpu_antithetic, cpu_rows
from . import scalar as S
from .device import device
from .gpu_core import run as _run
from .registry import cells, items

_antithetic_bit = device(S.antithetic_bit)
_arm_coef = device(S.arm_coef)
_disarm_coef = device(S.disarm_coef)
_is_group_head = device(cpu_rows._is_group_head)
_arm_pair_marginal = device(cpu_antithetic._arm_pair_marginal)
_disarm_pair_marginal = device(cpu_antithetic._disarm_pair_marginal)


def _antithetic_bernoulli_body(r, j, logits, u, stride, out):
    R, D = out.shape
    out[r, j] = _antithetic_bit(logits[r, j], u[r, j], (r // stride) % 2)


_antithetic_bernoulli = cells(_antithetic_bernoulli_body, "out")


def antithetic_bernoulli(logits, u, stride, out):
    """Digit 0 rows: 1[u < sigma(a)]; digit 1 rows: 1[u > sigma(-a)]."""
    _run(_antithetic_bernoulli, out.shape[0] * out.shape[1], logits, u, stride, out)


@cuda.jit
def _arm_grad(u, L, rw, stride, ga):
    R, D = ga.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        if (r // stride) % 2:
            continue
        r1 = r + stride
        c = _arm_coef(L[r1] - L[r], u[r, j])
        ga[r, j] += rw[r] * c
        ga[r1, j] += rw[r1] * c


def arm_grad(u, L, rw, stride, ga):
    """ARM (Yin & Zhou 2019): both rows of a pair get rw * (f(b~) - f(b)) (u - 1/2)."""
    _run(_arm_grad, ga.shape[0] * ga.shape[1], u, L, rw, stride, ga)


@cuda.jit
def _disarm_grad(logits, b, L, rw, stride, ga):
    R, D = ga.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        if (r // stride) % 2:
            continue
        r1 = r + stride
        if b[r, j] != b[r1, j]:
            c = _disarm_coef(0.5 * (L[r1] - L[r]), logits[r, j], b[r, j])
            ga[r, j] += rw[r] * c
            ga[r1, j] += rw[r1] * c


def disarm_grad(logits, b, L, rw, stride, ga):
    """DisARM (Dong, Mnih & Tucker 2020) pair gradient, where the pair's units differ."""
    _run(_disarm_grad, ga.shape[0] * ga.shape[1], logits, b, L, rw, stride, ga)


def _arm_grad_marginal_body(r, j, u, L, rw, stride, strides, sizes, ga):
    R, D = ga.shape
    if (r // stride) % 2 == 0 and _is_group_head(r, strides, sizes):
        _arm_pair_marginal(u, L, rw, r, r + stride, strides, sizes, j, ga)


_arm_grad_marginal = cells(_arm_grad_marginal_body, "ga")


def arm_grad_marginal(u, L, rw, stride, strides, sizes, ga):
    """ARM with each member's signal marginalised over the enumerated digits (strides, sizes)
    below the node; see cpu_antithetic.arm_grad_marginal. One thread per (group head, unit)."""
    _run(_arm_grad_marginal, ga.shape[0] * ga.shape[1], u, L, rw, stride, strides, sizes, ga)


def _disarm_grad_marginal_body(r, j, logits, b, L, rw, stride, strides, sizes, ga):
    R, D = ga.shape
    if (r // stride) % 2 == 0 and _is_group_head(r, strides, sizes):
        _disarm_pair_marginal(logits, b, L, rw, r, r + stride, strides, sizes, j, ga)


_disarm_grad_marginal = cells(_disarm_grad_marginal_body, "ga")


def disarm_grad_marginal(logits, b, L, rw, stride, strides, sizes, ga):
    """DisARM with each member's signal marginalised over the enumerated digits below the node."""
    _run(_disarm_grad_marginal, ga.shape[0] * ga.shape[1], logits, b, L, rw, stride, strides, sizes, ga)


def _scale_rows_body(r, rw, factor):
    rw[r] *= factor


_scale_rows = items(_scale_rows_body, "rw.shape[0]")


def scale_rows(rw, factor):
    """rw[r] *= factor."""
    _run(_scale_rows, rw.shape[0], rw, factor)


from . import cpu_antithetic as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("antithetic", _cpu_twin, globals())
