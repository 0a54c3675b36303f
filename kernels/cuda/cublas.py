"""cuBLAS's products on the CUDA target: libcublas's own entry points, called through ctypes.

cuda/products.py's ``matmul`` sends its products here on a real GPU where libcublas can be
loaded; with ``PPL_CUDA_PRODUCTS=tiled``, or where no libcublas is found, it runs its own tiled
kernels. In the CUDA simulator the same calls go to ``emulated_gemm``: BLAS's column-major
definition of ``?gemm`` run by NumPy on the arrays' buffers, with the same arguments (leading
dimensions, transposes, the operands swapped), float32 inputs rounded to TF32 under the TF32
mode. So the simulator takes a GPU's path through the products (the bias written apart, column
sums as ones @ g) and checks the arguments cuBLAS would get.

Float32 products run on the tensor cores in TF32 (10-bit mantissas in, float32 sums: about 3e-4
relative error), as JAX's and XLA's float32 products do by default on GPUs that have them
(compute capability 8.0 and later; cuBLAS keeps float32 on older ones); ``PPL_CUDA_PRODUCTS=fp32``
keeps them in float32. Float64 products are float64 either way. The calls go to the stream ppl's
kernels are launched on (kernels/native/launch.current_stream), so a step captured as a CUDA
graph (runtime/cuda_graph.py) holds its products too; a wrapper that checks for capture and
refuses (cupy's) would not.

* ``gemm_args(a, ta, b, tb, c)``: the column-major ``?gemm`` arguments of the row-major
  c (+)= op(a) op(b), with the arrays in place of their pointers (None where a layout does not
  map: an inner stride that is not the item's size, a size past int32).
* ``plan(a, ta, b, tb, c)``: the device's handle and those arguments where cuBLAS is in use and
  the dtypes are float32 or float64 alike, else None; ``gemm(plan)`` runs them: c += op(a) op(b).
* ``sums_plan(g, out)``: the plan of out += the column sums of g (ones @ g), or None.
* ``why()``: None when cuBLAS is in use, else why not. On a GPU, a libcublas that cannot be
  found or started is said once, in a warning (``PPL_CUDA_PRODUCTS=tiled`` chooses the tiled
  kernels and says nothing).

libcublas is looked up by cuda.pathfinder, then in the nvidia wheels on the path
(``nvidia/cu13/lib``, ``nvidia/cublas/lib``), then by the loader. A handle per device, created
on first use in TF32 mode (or float32's, with ``PPL_CUDA_PRODUCTS=fp32``), with a
workspace of its own (cuBLAS then allocates nothing while a graph is captured). A lock keeps the
handle's stream and workspace with the call that set them.
"""
import ctypes
import ctypes.util
import glob
import os
import sys
import threading
import warnings

import numpy as np

WORKSPACE = 32 << 20   # bytes of the handle's workspace
TF32_MATH = 3          # CUBLAS_TF32_TENSOR_OP_MATH (the default)
FP32_MATH = 0          # CUBLAS_DEFAULT_MATH: float32 products in float32 (PPL_CUDA_PRODUCTS=fp32)
_INT_MAX = 2 ** 31 - 1
_STATE = {}            # "lib", "why", and a (handle, workspace) per device id
EMULATED = "emulated"  # _STATE["lib"] in the CUDA simulator: products by emulated_gemm
_LOCK = threading.Lock()


def _choice():
    raw = os.environ.get("PPL_CUDA_PRODUCTS", "tf32")
    if raw not in ("tf32", "fp32", "tiled"):
        raise ValueError(f"PPL_CUDA_PRODUCTS={raw!r}: the CUDA target's products are 'tf32' (the "
                         "default: cuBLAS, float32 products on tensor cores in TF32 as JAX's are, about "
                         "3e-4 relative error), 'fp32' (cuBLAS, float32 products in float32) or 'tiled' "
                         "(ppl's own kernels, float32 in float32)")
    return raw


def math_mode():
    """cuBLAS's math mode for the handles: TF32's, or float32's with PPL_CUDA_PRODUCTS=fp32."""
    return FP32_MATH if _choice() == "fp32" else TF32_MATH


def _candidates():
    try:
        from cuda import pathfinder
        dl = pathfinder.load_nvidia_dynamic_lib("cublas")
        if getattr(dl, "abs_path", None):
            yield dl.abs_path
    except Exception:   # not installed, or no libcublas where it looks: the next places
        pass
    for root in sys.path:
        for sub in ("cu13", "cu12", "cublas"):
            yield from sorted(glob.glob(os.path.join(root or ".", "nvidia", sub, "lib", "libcublas.so*")),
                              reverse=True)
    found = ctypes.util.find_library("cublas")
    if found:
        yield found


def _load():
    """libcublas with its argument types set, or None (and why) where none loads."""
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        vp, ci, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        gemm = [vp, ci, ci, ci, ci, ci, vp, vp, ci, vp, ci, vp, vp, ci]
        lib.cublasSgemm_v2.argtypes = gemm
        lib.cublasDgemm_v2.argtypes = gemm
        lib.cublasCreate_v2.argtypes = [vp]
        lib.cublasSetStream_v2.argtypes = [vp, vp]
        lib.cublasSetWorkspace_v2.argtypes = [vp, vp, cs]
        lib.cublasSetMathMode.argtypes = [vp, ci]
        return lib, None
    return None, ("no libcublas was found (pip install 'numba-ppl[cuda12]' or "
                  f"'numba-ppl[cuda13]', or a CUDA toolkit on the loader's path){': ' if errors else ''}"
                  + "; ".join(errors))


def _library():
    if "lib" not in _STATE:
        from numba import config
        choice = _choice()
        if choice == "tiled":
            _STATE["lib"], _STATE["why"] = None, "PPL_CUDA_PRODUCTS=tiled"
        elif config.ENABLE_CUDASIM:
            _STATE["lib"], _STATE["why"] = EMULATED, None
        else:
            _STATE["lib"], _STATE["why"] = _load()
            if _STATE["lib"] is None:
                _tell(_STATE["why"])
    return _STATE["lib"]


def _tell(reason):
    warnings.warn(f"ppl's CUDA products run on its own tiled kernels, slower than cuBLAS: {reason} "
                  "(PPL_CUDA_PRODUCTS=tiled chooses them without this warning)", RuntimeWarning, stacklevel=4)


def why():
    """None when the CUDA target's products run on cuBLAS, else the reason they do not."""
    _library()
    return _STATE["why"]


def _device_id():
    from numba import config, cuda
    return 0 if config.ENABLE_CUDASIM else cuda.get_current_device().id


def _handle(lib):
    from numba import cuda
    if lib is EMULATED:
        return EMULATED, None
    dev = _device_id()
    if dev not in _STATE:
        h = ctypes.c_void_p()
        status = lib.cublasCreate_v2(ctypes.byref(h))
        if status != 0:
            _STATE["lib"], _STATE["why"] = None, f"cublasCreate failed (cuBLAS status {status})"
            _tell(_STATE["why"])
            return None
        lib.cublasSetMathMode(h, math_mode())
        _STATE[dev] = (h, cuda.device_array(WORKSPACE, np.uint8))
    return _STATE[dev]


def _rows(x):
    """(ld, ok): the row stride in items of the row-major 2-D x, and whether it maps."""
    item = x.dtype.itemsize
    R, C = x.shape
    if C > 1 and x.strides[1] != item:
        return 0, False
    ld = x.strides[0] // item if R > 1 else C
    return max(ld, C, 1), R <= 1 or (x.strides[0] % item == 0 and ld >= C)


def gemm_args(a, ta, b, tb, c):
    """The column-major ``?gemm`` arguments (transa, transb, m, n, k, A, lda, B, ldb, C, ldc) of
    the row-major c (+)= op(a) op(b), or None where the layout does not map.

    A row-major (R, C) array with row stride ld is, read column-major, the (C, R) array with
    leading dimension ld: its transpose. So c^T = op(b)^T op(a)^T is computed: cuBLAS's first
    operand is b (op 'T' when tb), its second a (op 'T' when ta), m = N and n = M."""
    M, N = c.shape
    K = a.shape[0] if ta else a.shape[1]
    lda, oka = _rows(a)
    ldb, okb = _rows(b)
    ldc, okc = _rows(c)
    if not (oka and okb and okc) or max(M, N, K, lda, ldb, ldc) > _INT_MAX:
        return None
    return int(bool(tb)), int(bool(ta)), N, M, K, b, ldb, a, lda, c, ldc


def _ptr(x):
    return x.__cuda_array_interface__["data"][0]


def _stream_handle():
    from ..native.launch import current_stream
    s = current_stream()
    if s is None:
        return 0
    if hasattr(s, "__cuda_stream__"):
        return int(s.__cuda_stream__()[1])
    h = getattr(s, "handle", s)
    h = getattr(h, "value", h)
    return int(h) if h else 0


def plan(a, ta, b, tb, c):
    """((handle, workspace), gemm_args) where cuBLAS is in use and a, b, c are all float32 or all
    float64, else None."""
    if c.dtype not in (np.float32, np.float64) or a.dtype != c.dtype or b.dtype != c.dtype:
        return None
    lib = _library()
    if lib is None:
        return None
    with _LOCK:
        hw = _handle(lib)
    args = gemm_args(a, ta, b, tb, c)
    return None if hw is None or args is None else (hw, args)


def sums_plan(g, out):
    """The plan of out += the column sums of the 2-D g (ones(R) @ g: cuBLAS's products are
    deterministic), or None where cuBLAS is not in use or out's layout does not map. The ones
    are the device's, grown (outside a capture: the call before it made them) to the rows."""
    if _library() is None or out.dtype not in (np.float32, np.float64) or g.dtype != out.dtype:
        return None
    from numba import cuda
    R = g.shape[0]
    key = ("ones", _device_id(), out.dtype)
    with _LOCK:
        ones = _STATE.get(key)
        if ones is None or ones.shape[0] < R:
            ones = cuda.to_device(np.ones(max(R, 1024, 2 * (0 if ones is None else ones.shape[0])), out.dtype))
            _STATE[key] = ones
    try:
        c = out.reshape(1, out.shape[0])
    except Exception:   # a strided vector: no row-major view
        return None
    return plan(ones[:R].reshape(1, R), False, g, False, c)


def _buffer(x):
    """The NumPy array behind a simulator's device array (or x itself)."""
    return np.asarray(getattr(x, "_ary", x))


def _tf32(x):
    """float32 x rounded to TF32's 10-bit mantissa, to nearest, ties away from zero (as the
    tensor cores take float32 inputs); NaN and infinities kept."""
    bits = x.view(np.uint32)
    rounded = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return np.where(np.isfinite(x), rounded, x)


def emulated_gemm(transa, transb, m, n, k, A, lda, B, ldb, C, ldc, tf32=False):
    """BLAS's ``?gemm`` with alpha = beta = 1 as written for column-major arrays, on the buffers
    of the arrays A, B, C (each one's first item is its pointer): C = op(A) op(B) + C, the product
    summed in float64 and rounded once to C's dtype, then added to C in C's dtype (as cuBLAS adds
    beta C); float32 inputs rounded to TF32 first when tf32; overflow and NaN raise no warning
    (a GPU's arithmetic has none). Nothing outside the m x n entries of
    C at leading dimension ldc is written."""
    from numpy.lib.stride_tricks import as_strided

    def view(x, rows, cols, ld):
        x = _buffer(x)
        return as_strided(x, shape=(rows, cols), strides=(x.itemsize, ld * x.itemsize), writeable=True)
    opA = view(A, k, m, lda).T if transa else view(A, m, k, lda)
    opB = view(B, n, k, ldb).T if transb else view(B, k, n, ldb)
    Cv = view(C, m, n, ldc)
    if tf32 and Cv.dtype == np.float32:
        opA, opB = _tf32(np.ascontiguousarray(opA)), _tf32(np.ascontiguousarray(opB))
    with np.errstate(over="ignore", invalid="ignore"):   # inf and NaN are values here, as on a GPU
        Cv[...] = (opA.astype(np.float64) @ opB.astype(np.float64)).astype(Cv.dtype) + Cv


def gemm(plan):
    """Run a plan on the current launch stream: c += op(a) op(b)."""
    lib = _STATE["lib"]
    (h, work), (ta_, tb_, m, n, k, A, lda, B, ldb, C, ldc) = plan
    if lib is EMULATED:
        emulated_gemm(ta_, tb_, m, n, k, A, lda, B, ldb, C, ldc, tf32=math_mode() == TF32_MATH)
        return
    scalar, call = ((ctypes.c_float, lib.cublasSgemm_v2) if C.dtype == np.float32
                    else (ctypes.c_double, lib.cublasDgemm_v2))
    one = scalar(1.0)
    with _LOCK:
        for status, what in ((lib.cublasSetStream_v2(h, _stream_handle()), "cublasSetStream"),
                             (lib.cublasSetWorkspace_v2(h, _ptr(work), WORKSPACE), "cublasSetWorkspace")):
            if status != 0:
                raise RuntimeError(f"{what} failed (cuBLAS status {status}); PPL_CUDA_PRODUCTS=tiled "
                                   "runs ppl's own products")
        status = call(h, ta_, tb_, m, n, k, ctypes.byref(one), _ptr(A), lda, _ptr(B), ldb,
                      ctypes.byref(one), _ptr(C), ldc)
    if status != 0:
        raise RuntimeError(f"cuBLAS gemm of a {C.shape} product failed (cuBLAS status {status}); "
                           "PPL_CUDA_PRODUCTS=tiled runs ppl's own products")
