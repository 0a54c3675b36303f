"""kernels/cpu/blas.py: c = op(a) op(b) + beta c against NumPy, for every transpose combination,
both precisions, the np.dot fallback that stands in when NumPy's OpenBLAS is not found, and
strided (non-contiguous) views."""
import ctypes
import os

import numpy as np
import pytest

from ppl.kernels.cpu import blas

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
    code = "from ppl.kernels.cpu import blas; print(blas.corename())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OPENBLAS_CORETYPE": "Haswell"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "Haswell"
