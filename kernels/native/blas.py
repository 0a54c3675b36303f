"""Matrix products of the CPU kernels: ``gemm(a, ta, b, tb, c, beta)`` sets
c = op(a) op(b) + beta c (op = transpose when ta / tb), for C-contiguous 2D float32 / float64
arrays, from nopython code, without scratch arrays.

Numba's ``np.dot`` calls SciPy's BLAS. NumPy's wheels carry their own OpenBLAS, which this
module calls instead (its CBLAS ``scipy_cblas_{s,d}gemm64_``, 64-bit integers), because on
the SBN's shapes it was measured faster: x^T g (the weight gradient, 32 x 1280 x 64) 101 -> 62 us,
and 2.7 -> 1.7 us per product at batch 32 (same library thread count; see BENCHMARKS.md).
beta = 1 accumulates into a gradient directly, which also saves the scratch copy. A large
product runs in slices on several threads when ppl's parts are on (kernels/native/parts.py).

The function is bound by name (``ppl_cblas_sgemm`` / ``ppl_cblas_dgemm``, registered with
LLVM on import, before any cached kernel is linked), so kernels calling it cache normally. When
NumPy's library is not found (another NumPy build), the names are bound to ``@cfunc``
fallbacks with the same signature that compute with ``np.dot``, and every result is the same.
"""
import ctypes
import glob
import os

import llvmlite.binding as llvm
import numpy as np
from numba import carray, cfunc, njit, types
from numba.core.errors import TypingError
from numba.extending import overload, register_jitable

from . import parts as _p

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_I32, _I64 = types.int32, types.int64


def _sig(f, ptr=None):
    """CBLAS cblas_?gemm with 64-bit integers: (order, transa, transb, M, N, K, alpha, A, lda,
    B, ldb, beta, C, ldc); pointers as void* for the caller, typed for the fallback's body."""
    ptr = ptr or types.CPointer(f)
    return types.void(_I32, _I32, _I32, _I64, _I64, _I64, f, ptr, _I64, ptr, _I64, f, ptr, _I64)


def _numpy_openblas():
    """NumPy's bundled OpenBLAS (ctypes.CDLL), or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*"))):
        try:
            lib = ctypes.CDLL(path)
            lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_   # noqa: B018  (both present)
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _numpy_cblas():
    """(sgemm, dgemm) addresses in NumPy's bundled OpenBLAS, or None."""
    if _LIB is None:
        return None
    return tuple(ctypes.cast(getattr(_LIB, f"scipy_cblas_{p}gemm64_"), ctypes.c_void_p).value for p in "sd")


DEFAULTED = False   # set by `import ppl`: True when ppl chose one BLAS thread (the user set none)


def get_threads():
    """Threads of the products' BLAS (NumPy's OpenBLAS: OPENBLAS_NUM_THREADS, else every core);
    None with the np.dot fallback."""
    if _LIB is None:
        return None
    return int(_LIB.scipy_openblas_get_num_threads64_())


def corename():
    """The kernel set the products' OpenBLAS chose when it loaded ('Haswell', 'SkylakeX', ...: by
    the CPU, or as OPENBLAS_CORETYPE says), for benchmark records; None with the np.dot fallback."""
    f = getattr(_LIB, "scipy_openblas_get_corename64_", None)
    if f is None:
        return None
    f.restype = ctypes.c_char_p
    return f().decode()


def cores():
    """The CPUs this process may run on (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(n):
    """Set the products' BLAS threads (one process-wide setting of NumPy's OpenBLAS, which also
    serves NumPy's own products); returns the previous count. OpenBLAS keeps small products on
    one thread whatever the count: a second thread pays at paper scale (784-200 SBN at batch 50:
    1.07-1.40x, BENCHMARKS.md) and changes nothing at 64-32."""
    n = int(n)
    if n < 1:
        raise ValueError(f"blas.set_threads: n must be >= 1, got {n}")
    prev = get_threads()
    if _LIB is not None:
        f = _LIB.scipy_openblas_set_num_threads64_
        f.argtypes = [ctypes.c_int]
        f(n)
    return prev


def _fallback(f):
    """A cfunc with the CBLAS row-major gemm signature computing with np.dot (no NumPy BLAS)."""
    @cfunc(_sig(f), cache=True)
    def gemm(order, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc):
        A = carray(a, (K, lda))[:, :M].T if ta == TRANS else carray(a, (M, lda))[:, :K]
        B = carray(b, (N, ldb))[:, :K].T if tb == TRANS else carray(b, (K, ldb))[:, :N]
        C = carray(c, (M, ldc))[:, :N]
        P = np.dot(np.ascontiguousarray(A), np.ascontiguousarray(B))
        for i in range(M):
            for j in range(N):
                C[i, j] = alpha * P[i, j] + beta * C[i, j]
    return gemm


_LIB = _numpy_openblas()
_found = _numpy_cblas()
SOURCE = "numpy's OpenBLAS" if _found else "np.dot fallback"
_FALLBACKS = None if _found else (_fallback(types.float32), _fallback(types.float64))
for _name, _addr in zip(("ppl_cblas_sgemm", "ppl_cblas_dgemm"),
                        _found or tuple(f.address for f in _FALLBACKS)):
    llvm.add_symbol(_name, _addr)

_sgemm = types.ExternalFunction("ppl_cblas_sgemm", _sig(types.float32, types.voidptr))
_dgemm = types.ExternalFunction("ppl_cblas_dgemm", _sig(types.float64, types.voidptr))


@register_jitable
def _packed(x):
    """A C-contiguous copy of a 2D array (plain loops: np.ascontiguousarray of a strided view
    compiles dozens of Numba's helpers)."""
    out = np.empty((x.shape[0], x.shape[1]), x.dtype)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j]
    return out


def _slice_gemm(a, ta, b, tb, c, beta, lo, hi, by_cols):
    """The slice lo:hi of c's columns (by_cols) or rows of c = op(a) op(b) + beta c."""


@overload(_slice_gemm, jit_options=dict(cache=True))
def _slice_gemm_overload(a, ta, b, tb, c, beta, lo, hi, by_cols):
    fn = _sgemm if a.dtype == types.float32 else _dgemm
    cast = np.float32 if a.dtype == types.float32 else np.float64

    def impl(a, ta, b, tb, c, beta, lo, hi, by_cols):
        K = a.shape[0] if ta else a.shape[1]
        if by_cols:   # c[:, lo:hi] = op(a) op(b)[:, lo:hi]
            M, N = c.shape[0], hi - lo
            av = a[:, :]
            bv = b[lo:hi, :] if tb else b[:, lo:hi]
            cv = c[:, lo:hi]
        else:         # c[lo:hi] = op(a)[lo:hi] op(b)
            M, N = hi - lo, c.shape[1]
            av = a[:, lo:hi] if ta else a[lo:hi, :]
            bv = b[:, :]
            cv = c[lo:hi, :]
        fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, M, N, K, cast(1.0),
           av.ctypes, a.shape[1], bv.ctypes, b.shape[1], cast(beta), cv.ctypes, c.shape[1])
    return impl


# ppl's own split of a product (kernels/native/parts.py): c's longer side cut in slices, one product
# each on Numba's threads (part_kernels.split_gemm), the BLAS at one thread inside each. At batch
# 50 on the 784-pixel SBN this beat the BLAS's own two threads on the products whose output has few
# rows (BENCHMARKS.md). The BLAS may block a slice's edges otherwise than the whole product's, so
# float32 entries can differ in rounding, as with the BLAS's own threads.
PART_MIN = 1 << 19   # multiply-adds of one slice at least (a launch costs about a microsecond)


@register_jitable
def part_cut(M, N, K, cols, parts):
    """(slices, their length) of a product c (M x N, inner size K) cut in `parts` along its
    columns (cols) or rows, each slice at least PART_MIN multiply-adds (parts.split)."""
    n, other = (N, M) if cols else (M, N)
    return _p.split(n, parts, max(1, PART_MIN // max(1, other * K)))


@njit(cache=True, no_cpython_wrapper=True)
def _in_parts(slot, a, ta, b, tb, c, beta, M, N, K):
    """gemm through the parts kernel in `slot` when the product reaches two slices' grain, cut on
    the side measured for its shape (parts.way; unmeasured: the longer side), or whole where that
    was measured fastest: True when done (out of line: the inlined gemm of every step keeps one
    load and a branch)."""
    way = _p.way(M, N, K, ta, tb)
    if way == _p.WHOLE:
        return False
    cols = N >= M if way == _p.UNMEASURED else way == _p.COLS
    k, step = part_cut(M, N, K, cols, _p.parts())
    if k < 2:
        return False
    _p.call(slot, (ta, tb, M, N, K, a, b, beta, c, k, step, cols))
    return True


def gemm(a, ta, b, tb, c, beta):
    """c = op(a) op(b) + beta c; op(x) = x.T when its flag is True. C-contiguous 2D arrays of
    one float dtype; the shapes must agree (checked)."""


@overload(gemm, jit_options=dict(cache=True, forceinline=True))   # inlined (the counts around its OpenBLAS call stay)
def _gemm_overload(a, ta, b, tb, c, beta):
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) and x.ndim == 2 for x in arrays):
        raise TypingError("gemm: a, b and c must be 2D arrays")
    if len({x.dtype for x in arrays}) != 1 or a.dtype not in (types.float32, types.float64):
        raise TypingError(f"gemm: a, b, c must share float32 or float64, got {a.dtype}, {b.dtype}, {c.dtype}")
    fn = _sgemm if a.dtype == types.float32 else _dgemm
    cast = np.float32 if a.dtype == types.float32 else np.float64
    slot = _p.slot("gemm", a.dtype)
    if not all(x.layout == "C" for x in arrays):
        def impl_strided(a, ta, b, tb, c, beta):   # strided views: contiguous copies through the same call
            C = _packed(c)
            gemm(_packed(a), ta, _packed(b), tb, C, beta)
            for i in range(c.shape[0]):
                for j in range(c.shape[1]):
                    c[i, j] = C[i, j]
        return impl_strided

    def impl(a, ta, b, tb, c, beta):
        M = a.shape[1] if ta else a.shape[0]
        K = a.shape[0] if ta else a.shape[1]
        N = b.shape[0] if tb else b.shape[1]
        if (b.shape[1] if tb else b.shape[0]) != K or c.shape[0] != M or c.shape[1] != N:
            raise ValueError("gemm: shapes of op(a), op(b) and c do not agree")
        if M == 0 or N == 0:
            return
        if K == 0:
            for i in range(M):
                for j in range(N):
                    c[i, j] = beta * c[i, j]
            return
        if _p.parts() > 1 and _p.bound(slot) and _in_parts(slot, a, ta, b, tb, c, cast(beta), M, N, K):
            return
        fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, M, N, K, cast(1.0),
           a.ctypes, a.shape[1], b.ctypes, b.shape[1], cast(beta), c.ctypes, c.shape[1])
    return impl


@njit(cache=True)
def matmul_into(a, ta, b, tb, c, beta):
    """gemm as a plain @njit function (for tests and user code)."""
    gemm(a, ta, b, tb, c, beta)
