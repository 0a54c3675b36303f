"""The CUDA target's REBAR set, the twin of ``cpu/rebar.py``: the CUDA twins of the family declared
once for it (``families/rebar.py``), and the launchers of the kernels no loop shape fits, which
the family names in its ``CUDA``: ``rebar_bwd`` / ``rebar_categorical_bwd`` end in the eta and
temperature variance-gradient sums, so they run as ONE block (``single_block``), each thread
taking drawn rows tid, tid + blockDim, ... in order, then a ``block_sum`` tree: a fixed
summation order, so the result is deterministic; a drawn row's thread alone writes its rows of
``ga``. The categorical kernels keep a group's work vectors in ``cuda.local.array``: at most
``MAX_K`` classes per group (``ValueError`` naming the limit otherwise). The per-row math is the
family's own ``@njit`` functions, re-jitted by ``device()``.
"""
import math

from numba import cuda, float64

from ..families import rebar as B
from ..families.rebar import CONFIGS, FIXED_CONFIGS, SEED_EPS  # noqa: F401  (the same layout constants)
from ..math.slots import slot_config as _slot_config, slot_local as _slot_local
from .device import device
from ..native.launch import block_sum, single_block
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


def _check_configs(name, configs):
    if configs != CONFIGS and configs != FIXED_CONFIGS:
        raise ValueError(f"gpu_rebar.{name}: CONFIGS = {CONFIGS} (temperature trained) or FIXED_CONFIGS = "
                         f"{FIXED_CONFIGS} configuration rows, got {configs}")


@cuda.jit
def _rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga, geta, glam, train, lam_rows):
    e = eta[0]
    inv1, inv2 = _inverse_temperatures(loglam, delta, a[0, 0])
    ge = 0.0
    gl = 0.0
    for r0 in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_row(r0, r0 + off * stride, a, sa, dzt, y, L, rw, gs, stride, e, inv1, inv2, delta, ga,
                                train, lam_rows)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if train and cuda.threadIdx.x == 0:
        geta[0] += ge
    if lam_rows and cuda.threadIdx.x == 0:
        glam[0] += gl


def rebar_bwd_launcher():
    def rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ga, geta, glam, train):
        _check_configs("rebar_bwd", configs)
        single_block(_rebar_bwd, a.shape[0])(a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga,
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
def _rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, K, eta, loglam, delta, ga, geta, glam, train,
                           lam_rows):
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
    for r0 in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_categorical_row(r0, r0 + off * stride, a, u, v, L, rw, gs, stride, K, e, lam, lam2,
                                            delta, ga, train, lam_rows, z, zt, th, cc, b, y, gz, c1, c2, c3, c4)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if train and cuda.threadIdx.x == 0:
        geta[0] += ge
    if lam_rows and cuda.threadIdx.x == 0:
        glam[0] += gl


def rebar_categorical_bwd_launcher():
    def rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ga, geta, glam,
                              train):
        _check_k("rebar_categorical_bwd", K)
        _check_configs("rebar_categorical_bwd", configs)
        single_block(_rebar_categorical_bwd, a.shape[0])(a, u, v, L, rw, gs, stride, off, span, K, eta, loglam,
                                                         delta, ga, geta, glam, bool(train),
                                                         bool(train) and configs == CONFIGS)
    rebar_categorical_bwd.__doc__ = B.rebar_categorical_bwd.__doc__
    rebar_categorical_bwd.__kernels__ = []
    return rebar_categorical_bwd


from ..declare import cuda_twin as _cuda_twin  # noqa: E402  (after the makers its family names)

globals().update(_cuda_twin(B))
