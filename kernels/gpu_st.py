"""CUDA twin of ``cpu_st.py``: the ReinMax, Gumbel-Rao and gapped straight-through backward
kernels, as host-side launchers with the CPU kernels' names and arguments. The math is
``cpu_st``'s own ``@njit`` helpers (``_reinmax_unit``, ``_reinmax_group``, ``_gumbel_rao_term``,
``_gumbel_rao_group``, ``_gapped_unit``, ``_gapped_group``),
re-jitted by ``device()``: one thread per unit (Bernoulli) or per (row, group) (categorical),
grid-stride; every thread writes its own cells only, so nothing is reduced.
"""
from numba import cuda

from . import cpu_st as C
from .device import device
from .gpu_core import _groups, _launch_cells, _run_rows
from .scalar import hyper, like
from .registry import cells, items

_reinmax_unit = device(C._reinmax_unit)
_reinmax_group = device(C._reinmax_group)
_gumbel_rao_term = device(C._gumbel_rao_term)
_gumbel_rao_group = device(C._gumbel_rao_group)
_gapped_unit = device(C._gapped_unit)
_gapped_group = device(C._gapped_group)


def _reinmax_bernoulli_bwd_body(r, j, logits, value, tau, gx, glogits):
    inv = like(gx, 1.0) / like(gx, hyper(tau))
    R, D = gx.shape
    glogits[r, j] += gx[r, j] * _reinmax_unit(logits[r, j], value[r, j], inv)


_reinmax_bernoulli_bwd = cells(_reinmax_bernoulli_bwd_body, "gx")


def reinmax_bernoulli_bwd(logits, value, tau, gx, glogits):
    """ReinMax for Bernoulli units: glogits += gx (2 p1 (1 - p1) - sigma'(a) / 2)."""
    _launch_cells(_reinmax_bernoulli_bwd, gx, logits, value, tau, gx, glogits)


def _reinmax_categorical_bwd_body(i, logits, value, tau, gx, K, glogits):
    t = like(gx, hyper(tau))
    R, D = gx.shape
    G = D // K
    r = i // G
    _reinmax_group(logits, value, t, gx, r, (i - r * G) * K, K, glogits)


_reinmax_categorical_bwd = items(_reinmax_categorical_bwd_body, "gx.shape[0] * (gx.shape[1] // K)")


def reinmax_categorical_bwd(logits, value, tau, gx, K, glogits):
    """ReinMax for categorical groups of K: glogits += 2 J(pi1)^T gx - J(pi0)^T gx / 2."""
    _run_rows(_reinmax_categorical_bwd, _groups(gx, K), logits, value, tau, gx, K, glogits)


def _gumbel_rao_bernoulli_bwd_body(r, j, logits, value, v, tau, n, gx, glogits):
    t = like(gx, hyper(tau))
    w = like(gx, 1.0) / (like(gx, n) * t)
    R, D = gx.shape
    for m in range(n):   # the CPU kernel's order of the n terms
        glogits[r, j] += gx[r, j] * w * _gumbel_rao_term(logits[r, j], value[r, j], v[r, m * D + j], t)


_gumbel_rao_bernoulli_bwd = cells(_gumbel_rao_bernoulli_bwd_body, "gx")


def gumbel_rao_bernoulli_bwd(logits, value, v, tau, n, gx, glogits):
    """Gumbel-Rao for Bernoulli units: glogits += gx / (n tau) sigma'(z~_m / tau), m = 0 .. n-1 in turn."""
    _launch_cells(_gumbel_rao_bernoulli_bwd, gx, logits, value, v, tau, n, gx, glogits)


def _gumbel_rao_categorical_bwd_body(i, logits, value, v, tau, n, gx, K, soft, glogits):
    t = like(gx, hyper(tau))
    R, D = gx.shape
    G = D // K
    r = i // G
    _gumbel_rao_group(logits, value, v, t, n, gx, r, (i - r * G) * K, K, soft, glogits)


_gumbel_rao_categorical_bwd = items(_gumbel_rao_categorical_bwd_body, "gx.shape[0] * (gx.shape[1] // K)")


def gumbel_rao_categorical_bwd(logits, value, v, tau, n, gx, K, soft, glogits):
    """Gumbel-Rao for categorical groups of K: glogits += (1 / (n tau)) sum_m J(y_m)^T gx."""
    _run_rows(_gumbel_rao_categorical_bwd, _groups(gx, K), logits, value, v, tau, n, gx, K, soft, glogits)


def _gapped_st_bernoulli_bwd_body(r, j, logits, value, tau, gap, gx, glogits):
    t = like(gx, hyper(tau))
    gp = like(gx, gap)
    R, D = gx.shape
    glogits[r, j] += gx[r, j] * _gapped_unit(logits[r, j], value[r, j], t, gp)


_gapped_st_bernoulli_bwd = cells(_gapped_st_bernoulli_bwd_body, "gx")


def gapped_st_bernoulli_bwd(logits, value, tau, gap, gx, glogits):
    """Gapped ST for Bernoulli units: glogits += gx sigma'(d / tau) / tau."""
    _launch_cells(_gapped_st_bernoulli_bwd, gx, logits, value, tau, gap, gx, glogits)


def _gapped_st_categorical_bwd_body(i, logits, value, tau, gap, gx, K, glogits):
    t = like(gx, hyper(tau))
    gp = like(gx, gap)
    R, D = gx.shape
    G = D // K
    r = i // G
    _gapped_group(logits, value, t, gp, gx, r, (i - r * G) * K, K, glogits)


_gapped_st_categorical_bwd = items(_gapped_st_categorical_bwd_body, "gx.shape[0] * (gx.shape[1] // K)")


def gapped_st_categorical_bwd(logits, value, tau, gap, gx, K, glogits):
    """Gapped ST for categorical groups of K: glogits += (1 / tau) J(softmax(a' / tau))^T gx."""
    _run_rows(_gapped_st_categorical_bwd, _groups(gx, K), logits, value, tau, gap, gx, K, glogits)


from . import cpu_st as _cpu_twin  # noqa: E402
from .registry import link as _link  # noqa: E402

_link("st", _cpu_twin, globals())
