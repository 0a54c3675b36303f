"""The parallel kernels of ppl's parts (kernels/native/parts.py), compiled (or loaded from the cache)
only when a process first asks for parts of a dtype (`use`).

Each is a Numba parallel loop over the parts, wrapped in a C function (`@cfunc`) whose address
goes to the parts table: the generated step and the optimiser call it through that address, so
their own compiled code never depends on these kernels. Arguments cross as C values: arrays as
data pointers of C-contiguous buffers (with their shapes), flags and counts as int64.
"""
import time

import numpy as np
from numba import carray, cfunc, njit, prange, types

from ..families.optim import adam_moments
from ..native import parts
from ..native.blas import _slice_gemm, part_cut


@njit(cache=True, parallel=True)
def split_gemm(a, ta, b, tb, c, beta, k, step, by_cols):
    """c = op(a) op(b) + beta c in k slices of `step` columns (by_cols) or rows of c, at once."""
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
def _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step, cols):
    A = carray(a, (K, M) if ta else (M, K))
    B = carray(b, (N, K) if tb else (K, N))
    split_gemm(A, ta != 0, B, tb != 0, carray(c, (M, N)), beta, k, step, cols != 0)


@njit(cache=True)
def _adam_c(theta, grad, m, v, n, a, b1, b2, c1, c2, ep, k, step):
    arrays = (carray(theta, (n,)), carray(grad, (n,)), carray(m, (n,)), carray(v, (n,)))
    adam_ranges(*arrays, a, b1, b2, c1, c2, ep, k, step)


# the C entry points, one per kind and dtype (module-level functions: cached by name)
def sgemm_parts(ta, tb, M, N, K, a, b, beta, c, k, step, cols):
    _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step, cols)


def dgemm_parts(ta, tb, M, N, K, a, b, beta, c, k, step, cols):
    _gemm_c(ta, tb, M, N, K, a, b, beta, c, k, step, cols)


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
    g = cfunc(types.void(_I, _I, _I, _I, _I, p, p, f, p, _I, _I, _I), cache=True)(gemm)
    a = cfunc(types.void(p, p, p, p, _I, f, f, f, f, f, f, _I, _I), cache=True)(adam)
    parts.bind_slot("gemm", dtype, g.address)
    parts.bind_slot("adam", dtype, a.address)
    _BOUND[dtype] = (g, a)


# ----- the way of each product shape, measured where the process runs (parts.way)
CALIBRATE_SECONDS = 3e-4   # one timing of a way: at least this long (a run of products)
CALIBRATE_ROUNDS = 3       # the ways alternate this many times; each way's median counts


@njit(cache=True)
def _run_way(a, ta, b, tb, c, beta, k, step, cols, reps):
    """reps products c = op(a) op(b) + beta c cut in k slices of `step` (cols: columns), or whole
    on this thread (k = 1)."""
    for _ in range(reps):
        if k < 2:
            _slice_gemm(a, ta, b, tb, c, beta, 0, c.shape[0], False)
        else:
            split_gemm(a, ta, b, tb, c, beta, k, step, cols)


def _timed(args, reps):
    t = time.perf_counter()
    _run_way(*args, reps)
    return (time.perf_counter() - t) / reps


def calibrate(dtype="float32"):
    """Measure the way of each product shape the kernels met in parts with none measured
    (parts.recorded): its output's rows cut in the current count of parts, its columns, or the
    product whole on one thread, alternating CALIBRATE_ROUNDS times; the fastest by median is
    set (parts.set_way) for the rest of the process. Returns the number of shapes measured
    (0 with parts off or dtype's kernels not bound)."""
    n, dtype = parts.get_parts(), np.dtype(dtype).name
    if n < 2 or dtype not in _BOUND:
        return 0
    f = np.dtype(dtype).type
    rng = np.random.default_rng(0)
    shapes = parts.recorded()
    for M, N, K, ta, tb in shapes:
        a = rng.random((K, M) if ta else (M, K)).astype(f)
        b = rng.random((N, K) if tb else (K, N)).astype(f)
        c = np.zeros((M, N), f)
        ways = {parts.WHOLE: (a, ta, b, tb, c, f(0), 1, 1, False)}
        for way in (parts.ROWS, parts.COLS):
            k, step = part_cut(M, N, K, way == parts.COLS, n)   # the cut the kernels make
            if k >= 2:
                ways[way] = (a, ta, b, tb, c, f(0), k, step, way == parts.COLS)
        runs = {w: [] for w in ways}
        if len(ways) > 1:
            reps = {w: max(1, int(CALIBRATE_SECONDS / max(_timed(args, 1), 1e-7))) for w, args in ways.items()}
            for _ in range(CALIBRATE_ROUNDS):
                for w, args in ways.items():
                    runs[w].append(_timed(args, reps[w]))
        best = min(ways, key=lambda w: float(np.median(runs[w])) if runs[w] else 0.0)
        parts.set_way(M, N, K, ta, tb, best)
    return len(shapes)
