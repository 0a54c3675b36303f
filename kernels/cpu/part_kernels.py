"""The parallel kernels of ppl's parts (kernels/native/parts.py), compiled (or loaded from the cache)
only when a process first asks for parts of a dtype (`use`).

Each is a Numba parallel loop over the parts, wrapped in a C function (`@cfunc`) whose address
goes to the parts table: the generated step and the optimiser call it through that address, so
their own compiled code never depends on these kernels. Arguments cross as C values: arrays as
data pointers of C-contiguous buffers (with their shapes), flags and counts as int64.
"""
import numpy as np
from numba import carray, cfunc, njit, prange, types

from ..families.optim import adam_moments
from ..native import parts
from ..native.blas import _slice_gemm


@njit(cache=True, parallel=True)
def split_gemm(a, ta, b, tb, c, beta, k, step):
    """c = op(a) op(b) + beta c in k slices of `step` entries of c's longer side, at once."""
    by_cols = c.shape[1] >= c.shape[0]
    n = c.shape[1] if by_cols else c.shape[0]
    for p in prange(k):
        lo, hi = parts.span(p, step, n)
        if hi > lo:
            _slice_gemm(a, ta, b, tb, c, beta, lo, hi, by_cols)


@njit(cache=True, parallel=True)
def adam_ranges(theta, grad, m, v, a, b1, b2, c1, c2, ep, k, step):
    """adam_moments on k ranges of `step` entries at once."""
    n = theta.shape[0]
    for p in prange(k):
        lo, hi = parts.span(p, step, n)
        if hi > lo:
            adam_moments(theta[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], a, b1, b2, c1, c2, ep)


@njit(cache=True)
def _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step):
    A = carray(a, (K, M) if ta else (M, K))
    B = carray(b, (N, K) if tb else (K, N))
    split_gemm(A, ta != 0, B, tb != 0, carray(c, (M, N)), beta, k, step)


@njit(cache=True)
def _adam_c(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step):
    arrays = (carray(theta, (n,)), carray(grad, (n,)), carray(m, (n,)), carray(v, (n,)))
    adam_ranges(*arrays, a, b1, b2, c1, c2, ep, k, step)


# the C entry points, one per kind and dtype (module-level functions: cached by name)
def sgemm_parts(ta, tb, M, N, K, a, b, beta, c, k, step):
    _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step)


def dgemm_parts(ta, tb, M, N, K, a, b, beta, c, k, step):
    _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step)


def sadam_parts(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step):
    _adam_c(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step)


def dadam_parts(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step):
    _adam_c(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step)


_I = types.int64
_ENTRIES = {"float32": (types.float32, sgemm_parts, sadam_parts), "float64": (types.float64, dgemm_parts, dadam_parts)}
_BOUND = {}   # dtype -> its cfuncs (kept alive: the table holds their addresses)


def use(n, dtypes=("float32",)):
    """Split large work in n parts (parts.set_parts) with the kernels of `dtypes` bound first
    (compiled, or loaded from the cache, the first time a process asks); returns the previous
    count."""
    prev = parts.set_parts(n)   # checked first; until a dtype is bound its work runs whole
    if n > 1:
        for d in dtypes:
            bind(np.dtype(d).name)
    return prev


def bind(dtype: str):
    """Compile (or load) dtype's kernels and put their addresses in the parts table."""
    if dtype in _BOUND or dtype not in _ENTRIES:
        return
    f, gemm, adam = _ENTRIES[dtype]
    p = types.CPointer(f)
    g = cfunc(types.void(_I, _I, _I, _I, _I, p, p, f, p, _I, _I), cache=True)(gemm)
    a = cfunc(types.void(p, p, p, p, _I, f, f, f, f, f, f, _I, _I), cache=True)(adam)
    parts.bind_slot("gemm", dtype, g.address)
    parts.bind_slot("adam", dtype, a.address)
    _BOUND[dtype] = (g, a)
