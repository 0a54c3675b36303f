"""The CUDA target's REBAR set, the twin of ``cpu/rebar.py``: the CUDA twins of the family declared
once for it (``families/rebar.py``), and the launchers of the kernels no loop shape fits, which
the family names in its ``CUDA``: ``rebar_bwd`` / ``rebar_categorical_bwd`` end in the eta and
temperature variance-gradient sums. The binary one gives each drawn row a warp's lanes (its
columns strided over them: a lane writes its own cells of ``ga`` and adds its columns' terms),
the categorical one a thread per drawn row, over the whole grid; each block's sums by a
``block_sum`` tree into its word of ``partials()``, then ONE block (``_finish``) sums the blocks'
words in order: a fixed summation order for a given batch, so the result is deterministic. The
categorical kernels keep a group's work vectors in ``cuda.local.array``: at most ``MAX_K`` classes
per group (``ValueError`` naming the limit otherwise). The per-row math is the family's own
``@njit`` functions, re-jitted by ``device()``.
"""
import math

import numpy as np
from numba import cuda, float64

from ..families import rebar as B
from ..families.rebar import CONFIGS, FIXED_CONFIGS, SEED_EPS  # noqa: F401  (the same layout constants)
from ..math.slots import slot_config as _slot_config, slot_local as _slot_local
from .device import device
from ..native.config import MAX_BLOCKS
from ..native.launch import LANES, block_sum, configured, grid_for, require_cuda, single_block
from ..native.launch import run as _run
from ..registry import items

MAX_K = 64   # classes per group of a categorical REBAR node (local work vectors per thread)

slot_config = device(_slot_config)
slot_local = device(_slot_local)
_inverse_temperatures = device(B._inverse_temperatures)
_rebar_row = device(B._rebar_row)
_rebar_categorical_forward_row = device(B._rebar_categorical_forward_row)
_rebar_categorical_row = device(B._rebar_categorical_row)


def _check_k(name, K):
    if K > MAX_K:
        raise ValueError(f"gpu_rebar.{name}: groups of K = {K} classes; the CUDA REBAR kernels support at most "
                         f"MAX_K = {MAX_K} classes per group (use target='cpu' for larger groups)")


def _check_configs(name, configs, family="rebar"):
    """A launcher of REBAR's row layout (REBAR's, RELAX's paper form: kernels/cuda/relax.py) given
    CONFIGS or FIXED_CONFIGS rows per drawn row, else a ValueError naming it."""
    if configs != CONFIGS and configs != FIXED_CONFIGS:
        raise ValueError(f"gpu_{family}.{name}: CONFIGS = {CONFIGS} (temperature trained) or FIXED_CONFIGS = "
                         f"{FIXED_CONFIGS} configuration rows, got {configs}")


_PARTIALS = []


def partials():
    """MAX_BLOCKS x 2 float64 words on the device: each block's eta and temperature sums (made
    once, before any capture)."""
    if not _PARTIALS:
        _PARTIALS.append(cuda.device_array((MAX_BLOCKS, 2), dtype=np.float64))
    return _PARTIALS[0]


def _over_rows(kernel, n, args, geta, glam, train, lam_rows):
    """kernel(*args, train, lam_rows, partials) over n threads (a grid-stride loop), then the
    blocks' sums into geta[0] (when train) and glam[0] (when lam_rows), in order."""
    require_cuda()
    blocks, threads = grid_for(max(n, 1))
    part = partials()
    configured(kernel, blocks, threads)(*args, train, lam_rows, part)
    single_block(_finish, blocks)(part, blocks, geta, glam, train, lam_rows)


@cuda.jit
def _finish(part, n, geta, glam, train, lam_rows):
    ge = 0.0
    gl = 0.0
    for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        ge += part[i, 0]
        gl += part[i, 1]
    ge = block_sum(ge)
    gl = block_sum(gl)
    if train and cuda.threadIdx.x == 0:
        geta[0] += ge
    if lam_rows and cuda.threadIdx.x == 0:
        glam[0] += gl


@cuda.jit
def _rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga, train, lam_rows, part):
    e = eta[0]
    inv1, inv2 = _inverse_temperatures(loglam, delta, a[0, 0])
    ge = 0.0
    gl = 0.0
    W = LANES   # a drawn row's columns over a warp's lanes; each lane's terms go to the block's sums
    for i in range(cuda.grid(1), a.shape[0] * W, cuda.gridsize(1)):
        r0 = i // W
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_row(r0, r0 + off * stride, a, sa, dzt, y, L, rw, gs, stride, e, inv1, inv2, delta, ga,
                                train, lam_rows, i - r0 * W, W)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x, 0] = ge
        part[cuda.blockIdx.x, 1] = gl


def rebar_bwd_launcher():
    def rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ga, geta, glam, train):
        _check_configs("rebar_bwd", configs)
        _over_rows(_rebar_bwd, a.shape[0] * LANES, (a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga),
                   geta, glam, bool(train), bool(train) and configs == CONFIGS)
    rebar_bwd.__doc__ = B.rebar_bwd.__doc__
    rebar_bwd.__kernels__ = []
    return rebar_bwd


# ----------------------------------------------------------------------------- categorical
def _rebar_categorical_forward_body(r, a, u, v, stride, off, span, configs, K, loglam, delta, out):
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z = cuda.local.array(MAX_K, float64)
    zt = cuda.local.array(MAX_K, float64)
    th = cuda.local.array(MAX_K, float64)
    cc = cuda.local.array(MAX_K, float64)
    b = cuda.local.array(MAX_K, float64)
    _rebar_categorical_forward_row(r, a, u, v, slot_config(r, stride, off, span, configs), K, lam, lam2, out,
                                   z, zt, th, cc, b)


_rebar_categorical_forward = items(_rebar_categorical_forward_body, "out.shape[0]")


def rebar_categorical_forward_launcher():
    def rebar_categorical_forward(a, u, v, stride, off, span, configs, K, loglam, delta, out):
        _check_k("rebar_categorical_forward", K)
        _run(_rebar_categorical_forward, out.shape[0], a, u, v, stride, off, span, configs, K, loglam, delta, out)
    rebar_categorical_forward.__doc__ = B.rebar_categorical_forward.__doc__
    rebar_categorical_forward.__kernels__ = [_rebar_categorical_forward]
    return rebar_categorical_forward


@cuda.jit
def _rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, K, eta, loglam, delta, ga, train, lam_rows,
                           part):
    e = eta[0]
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z = cuda.local.array(MAX_K, float64)
    zt = cuda.local.array(MAX_K, float64)
    th = cuda.local.array(MAX_K, float64)
    cc = cuda.local.array(MAX_K, float64)
    b = cuda.local.array(MAX_K, float64)
    y = cuda.local.array(MAX_K, float64)
    gz = cuda.local.array(MAX_K, float64)
    c1 = cuda.local.array(MAX_K, float64)
    c2 = cuda.local.array(MAX_K, float64)
    c3 = cuda.local.array(MAX_K, float64)
    c4 = cuda.local.array(MAX_K, float64)
    ge = 0.0
    gl = 0.0
    for r0 in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_categorical_row(r0, r0 + off * stride, a, u, v, L, rw, gs, stride, K, e, lam, lam2,
                                            delta, ga, train, lam_rows, z, zt, th, cc, b, y, gz, c1, c2, c3, c4)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x, 0] = ge
        part[cuda.blockIdx.x, 1] = gl


def rebar_categorical_bwd_launcher():
    def rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ga, geta, glam,
                              train):
        _check_k("rebar_categorical_bwd", K)
        _check_configs("rebar_categorical_bwd", configs)
        args = (a, u, v, L, rw, gs, stride, off, span, K, eta, loglam, delta, ga)
        _over_rows(_rebar_categorical_bwd, a.shape[0], args, geta, glam, bool(train), bool(train) and configs == CONFIGS)
    rebar_categorical_bwd.__doc__ = B.rebar_categorical_bwd.__doc__
    rebar_categorical_bwd.__kernels__ = []
    return rebar_categorical_bwd


from ..declare import cuda_twin as _cuda_twin  # noqa: E402  (after the makers its family names)

globals().update(_cuda_twin(B))
