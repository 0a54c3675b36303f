"""CUDA twin of ``cpu_unordered_set.py``: the unordered set estimator's forward (Gumbel-top-k row,
the log-Q table, the row weight) and backward.

The per-row bodies are ``cpu_unordered_set``'s own ``@njit`` helpers re-jitted by ``device()``:
one thread per set (row with digit 0), which writes its table row and its k rows of the value
and weights (forward) or of the gradient (backward); no two threads touch the same element.
"""
from numba import cuda

from . import cpu_unordered_set as C
from .device import device
from .gpu_core import run as _run
from .registry import items

_us_set = device(C._us_set)
_us_grad_set = device(C._us_grad_set)


def _us_forward_body(r, logits, gumbel, stride, k, K, ws, out, rw):
    if (r // stride) % k == 0:
        _us_set(logits, gumbel, stride, k, K, ws, out, rw, r)


_us_forward = items(_us_forward_body, "out.shape[0]")


def us_forward(logits, gumbel, stride, k, K, ws, out, rw):
    """Row t of each set: one-hot of the t-th class of the Gumbel-top-k; rw *= w_{s_t}; the table in
    the set's digit-0 row of ws."""
    _run(_us_forward, out.shape[0], logits, gumbel, stride, k, K, ws, out, rw)


def _us_grad_body(r, logits, ws, L, rw, stride, k, K, ga):
    if (r // stride) % k == 0:
        _us_grad_set(logits, ws, L, rw, stride, k, K, ga, r)


_us_grad = items(_us_grad_body, "ga.shape[0]")


def us_grad(logits, ws, L, rw, stride, k, K, ga):
    """ga[row t] += w_t (f(s_t) - b_t) (e_{s_t} - pi) for each set."""
    _run(_us_grad, ga.shape[0], logits, ws, L, rw, stride, k, K, ga)


from . import cpu_unordered_set as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("unordered_set", _cpu_twin, globals())
