"""kernels/native/blas.py: c = op(a) op(b) + beta c against NumPy, for every transpose combination,
both precisions, the np.dot fallback that stands in when NumPy's OpenBLAS is not found, and
strided (non-contiguous) views."""
import contextlib
import ctypes
import os

import numpy as np
import pytest

from ppl.kernels.native import blas

SHAPES = [(5, 7, 3), (1, 1, 1), (33, 64, 17), (4, 0, 3)]   # (M, K, N)


def _operands(rng, M, K, N, ta, tb, dtype):
    a = rng.normal(size=(K, M) if ta else (M, K)).astype(dtype)
    b = rng.normal(size=(N, K) if tb else (K, N)).astype(dtype)
    c = rng.normal(size=(M, N)).astype(dtype)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, c, ref


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_gemm_matches_numpy(ta, tb, beta, dtype):
    rng = np.random.default_rng(0)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for M, K, N in SHAPES:
        a, b, c, ref = _operands(rng, M, K, N, ta, tb, dtype)
        want = ref + beta * c
        blas.matmul_into(a, ta, b, tb, c, dtype(beta))
        np.testing.assert_allclose(c, want, rtol=tol, atol=tol * max(K, 1))


@pytest.mark.parametrize("dtype,ctype", [(np.float64, ctypes.c_double), (np.float32, ctypes.c_float)])
def test_fallback_matches_numpy(dtype, ctype):
    """The cfunc bound in place of NumPy's OpenBLAS when it is missing: same contract."""
    f = blas._fallback(blas.types.float32 if dtype == np.float32 else blas.types.float64)
    P = ctypes.POINTER(ctype)
    rng = np.random.default_rng(1)
    for ta in (False, True):
        for tb in (False, True):
            a, b, c, ref = _operands(rng, 6, 5, 4, ta, tb, dtype)
            want = ref + 0.5 * c
            f.ctypes(blas.ROW_MAJOR, blas.TRANS if ta else blas.NO_TRANS, blas.TRANS if tb else blas.NO_TRANS,
                     6, 4, 5, 1.0, a.ctypes.data_as(P), a.shape[1], b.ctypes.data_as(P), b.shape[1], 0.5,
                     c.ctypes.data_as(P), c.shape[1])
            np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)


def test_strided_views_and_shape_errors():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(8, 10))[:, ::2]          # not contiguous: the np.dot route
    b = rng.normal(size=(5, 3))
    c = np.ones((8, 3))
    blas.matmul_into(a, False, b, False, c, 1.0)
    np.testing.assert_allclose(c, a @ b + 1, rtol=1e-12)
    with pytest.raises(ValueError, match="shapes of op"):
        blas.matmul_into(np.ones((3, 4)), False, np.ones((5, 2)), False, np.ones((3, 2)), 0.0)


def test_numpy_openblas_is_used_here():
    """NumPy's wheels bundle the library; if this fails the fallback is in use (slower)."""
    assert blas.SOURCE == "numpy's OpenBLAS"


def test_corename_reads_the_kernel_set_openblas_chose():
    """corename() names the kernels NumPy's OpenBLAS loaded (benchmarks record it): the CPU's,
    or the ones OPENBLAS_CORETYPE names when it is set before the library loads."""
    import platform
    import subprocess
    import sys

    import llvmlite.binding as llvm
    name = blas.corename()
    assert isinstance(name, str) and name
    features = llvm.get_host_cpu_features()
    if platform.machine() != "x86_64" or not (features.get("avx2") and features.get("fma")):
        pytest.skip("OpenBLAS loads Haswell's kernels only where the CPU runs them (x86_64, AVX2, FMA)")
    code = "from ppl.kernels.native import blas; print(blas.corename())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OPENBLAS_CORETYPE": "Haswell"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "Haswell"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_products_in_parts_match_the_whole(ta, tb, dtype):
    """ppl's own parts (kernels/native/parts.py): a product large enough is cut in slices of its
    output's longer side while its shape has no measured way (columns at 50 x 784 x 200, rows at
    784 x 50 x 200), and of its rows or its columns as set for its shape, in two and in three
    uneven slices; every entry is written (c starts as NaN with beta = 0) and equals the whole
    product's up to rounding; beta = 1 accumulates. The slices' count and length by the rule."""
    from ppl.kernels.cpu import part_kernels
    from ppl.kernels.native import parts
    assert parts.split(200, 2, 13) == (2, 112)     # lengths on 16-entry boundaries: 112 + 88
    assert parts.split(200, 3, 13) == (3, 80)      # 80 + 80 + 40
    assert parts.split(200, 2, 150) == (1, 200)    # a slice would be under its grain: whole
    rng = np.random.default_rng(1)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    prev = parts.get_parts()
    parts.clear_ways()
    try:
        for M, K, N in [(50, 784, 200), (784, 50, 200), (50, 200, 784)]:
            assert blas.PART_MIN <= M * N * K // 2
            a, b, c0, ref = _operands(rng, M, K, N, ta, tb, dtype)
            for n in (2, 3):
                part_kernels.use(n, dtypes=(dtype,))
                for way in (parts.UNMEASURED, parts.ROWS, parts.COLS):
                    assert parts.set_way(M, N, K, ta, tb, way)
                    c = np.full((M, N), np.nan, dtype)
                    blas.matmul_into(a, ta, b, tb, c, dtype(0.0))
                    np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * K)
                    c = c0.copy()
                    blas.matmul_into(a, ta, b, tb, c, dtype(1.0))
                    np.testing.assert_allclose(c, ref + c0, rtol=tol, atol=tol * K)
    finally:
        parts.set_parts(prev)
        parts.clear_ways()


def test_parts_count_is_checked_and_read_by_compiled_code():
    """set_parts refuses what is not a count >= 1; compiled code (a cached kernel reads it the
    same way) sees the count in force when it runs, not when it was compiled."""
    from numba import njit
    from ppl.kernels.native import parts

    @njit
    def read():
        return parts.parts()

    assert read() == parts.get_parts() == 1
    prev = parts.set_parts(3)
    try:
        assert read() == 3
    finally:
        parts.set_parts(prev)
    assert read() == 1
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n must be >= 1"):
            parts.set_parts(bad)
    for bad in (True, 2.5, "2"):
        with pytest.raises(TypeError, match="integer"):
            parts.set_parts(bad)
    assert parts.get_parts() == 1


@contextlib.contextmanager
def _stand_in_slot():
    """A stand-in bound in float64's gemm slot (it writes its slices' count k, length and side
    into c: 1000 k + step + 0.5 cols), the ways' table empty; both restored after."""
    from numba import carray, cfunc, types
    from ppl.kernels.native import parts
    P, I = types.CPointer(types.float64), types.int64

    @cfunc(types.void(I, I, I, I, I, P, P, types.float64, P, I, I, I))
    def stand_in(ta, tb, M, N, K, a, b, beta, c, k, step, cols):
        C = carray(c, (M, N))
        for i in range(M):
            for j in range(N):
                C[i, j] = 1000.0 * k + step + 0.5 * cols

    index = parts.SLOTS[("gemm", "float64")]
    before, prev = parts._TABLE[index], parts.get_parts()
    parts.clear_ways()   # (a fit earlier in this process may have measured these shapes)
    try:
        parts.bind_slot("gemm", "float64", stand_in.address)
        yield parts
    finally:
        parts._TABLE[index] = before
        parts._COUNT.value = prev
        parts.clear_ways()


def test_a_large_product_calls_the_kernel_in_its_parts_slot():
    """The dispatch itself: with a stand-in bound in float64's gemm slot, a product over the
    grain reaches it with the slices' count and length of the rule (it writes them into c); a
    product under the grain, or any product at parts = 1, is computed whole."""
    rng = np.random.default_rng(2)
    with _stand_in_slot() as parts:
        for n, want in ((2, 2000.0 + 112.5), (3, 3000.0 + 80.5)):   # columns: the longer side
            parts._COUNT.value = n
            a, b, c, ref = _operands(rng, 50, 784, 200, False, False, np.float64)
            blas.matmul_into(a, False, b, False, c, 0.0)
            assert np.all(c == want), (n, c[0, 0])
            a, b, c, ref = _operands(rng, 5, 7, 3, False, False, np.float64)   # under the grain
            blas.matmul_into(a, False, b, False, c, 0.0)
            np.testing.assert_allclose(c, ref, rtol=1e-12)
        parts._COUNT.value = 1
        a, b, c, ref = _operands(rng, 50, 784, 200, False, False, np.float64)
        blas.matmul_into(a, False, b, False, c, 0.0)
        np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-9)


def test_a_products_way_is_read_per_shape_and_recorded_until_measured():
    """The ways' table (parts.way): a shape the kernels meet in parts with no way is cut on its
    output's longer side and recorded; a way set for it (rows, columns, whole) is what the next
    product of that shape takes, with the count and length of slices of that side; other shapes
    keep their own; a way outside the four is refused by name."""
    from ppl.kernels.native import parts
    rng = np.random.default_rng(3)
    with _stand_in_slot() as parts:
        parts._COUNT.value = 2
        a, b, c, ref = _operands(rng, 50, 784, 200, False, False, np.float64)
        blas.matmul_into(a, False, b, False, c, 0.0)
        assert np.all(c == 2000.0 + 112.5)                         # columns, 112 + 88
        assert parts.recorded() == [(50, 200, 784, False, False)] and parts.ways() == {}
        assert parts.set_way(50, 200, 784, False, False, parts.ROWS)
        blas.matmul_into(a, False, b, False, c, 0.0)
        assert np.all(c == 2000.0 + 32)                            # rows: 50 in 32 + 18
        assert parts.recorded() == [] and parts.ways() == {(50, 200, 784, False, False): parts.ROWS}
        parts.set_way(50, 200, 784, False, False, parts.WHOLE)
        blas.matmul_into(a, False, b, False, c, 0.0)
        np.testing.assert_allclose(c, ref, rtol=1e-12, atol=1e-9)  # whole: the BLAS, not the slot
        a2, b2, c2, _ = _operands(rng, 784, 50, 200, True, False, np.float64)
        blas.matmul_into(a2, True, b2, False, c2, 0.0)
        assert np.all(c2 == 2000.0 + 400)                          # its own shape: rows, the longer side
        assert parts.recorded() == [(784, 200, 50, True, False)]
        with pytest.raises(ValueError, match="way must be one of"):
            parts.set_way(50, 200, 784, False, False, 7)
    assert parts.recorded() == [] and parts.ways() == {}


def test_calibrate_measures_each_recorded_shape_once_and_the_products_stay_exact():
    """part_kernels.calibrate times each recorded shape's ways (rows, columns, whole) and sets the
    fastest; a second call measures nothing; with parts off it measures nothing. The products
    keep the whole product's values under the ways chosen."""
    import numba
    from ppl.kernels.cpu import part_kernels
    from ppl.kernels.native import parts
    if numba.get_num_threads() < 2:
        pytest.skip("ppl's parts need two threads")
    rng = np.random.default_rng(4)
    prev = parts.get_parts()
    parts.clear_ways()
    try:
        part_kernels.use(2, dtypes=(np.float32,))
        ops = [(ta,) + _operands(rng, M, K, N, ta, False, np.float32) for M, K, N, ta in
               [(50, 784, 200, False), (200, 50, 784, True)]]
        for ta, a, b, c, ref in ops:
            blas.matmul_into(a, ta, b, False, c, np.float32(0.0))
        assert len(parts.recorded()) == 2
        parts.set_parts(1)
        assert part_kernels.calibrate(np.float32) == 0 and len(parts.recorded()) == 2
        parts.set_parts(2)
        assert part_kernels.calibrate(np.float32) == 2
        assert parts.recorded() == [] and set(parts.ways().values()) <= {parts.ROWS, parts.COLS, parts.WHOLE}
        assert len(parts.ways()) == 2 and part_kernels.calibrate(np.float32) == 0
        for ta, a, b, c, ref in ops:
            c[:] = np.nan
            blas.matmul_into(a, ta, b, False, c, np.float32(0.0))
            np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5 * 784)
    finally:
        parts.set_parts(prev)
        parts.clear_ways()
