"""What the CUDA target's next steps can stand on, on a real GPU: graph capture and cuBLAS products.

    python benchmarks/experiments/gpu_probe.py [--launches 30] [--reps 200]

Each part prints one JSON line (an "error" field where a part fails, and the others go on):
  versions       numba, numba-cuda, cuda.core, cupy, jax
  eager          --launches small numba-cuda kernel launches, us per launch (the baseline)
  cupy_capture   the same launches on a cupy stream under capture (numba-cuda on
                 cuda.external_stream), replayed as one graph: us per replay, right or not
  core_capture   the same through cuda.core's graph builder passed as the launch stream
  cupy_matmul    a (batch, 784) x (784, 200) float32 product on numba-cuda device arrays (zero-copy
                 through __cuda_array_interface__): us, and relative error against float64
  jax_matmul     the same product by JAX at its default precision: us, relative error (says
                 whether JAX's default is TF32 on this GPU)
  mixed_capture  a cupy product and numba-cuda kernels captured together and replayed
  cublas_capture cuBLAS's sgemm called directly (cupy's low-level binding, its handle on the
                 capturing stream) with numba-cuda kernels under capture: whether the product is
                 in the graph (the output zeroed, then one replay: in_graph), us per replay and
                 eager, relative error; FP32 and TF32 math modes
  cublas_direct  libcublas's own entry points through ctypes (found by cuda.pathfinder, the
                 nvidia wheels or the loader), a handle with its own workspace on cuda.core's
                 graph builder's stream: a layer's three products (X W, X^T G, G W^T) on
                 numba-cuda arrays checked against float64, captured with a numba-cuda kernel:
                 in_graph, us per replay and eager, per batch and math mode
Needs an NVIDIA GPU (the simulator is refused).
"""
import argparse
import json
import os
import time
import traceback

import numpy as np


def emit(part, **kw):
    print(json.dumps({"bench": "gpu_probe", "part": part, **kw}), flush=True)


def attempt(part, fn):
    try:
        fn()
    except Exception as exc:  # a probe: report and go on
        emit(part, error=f"{type(exc).__name__}: {exc}", where=traceback.format_exc(limit=3)[-600:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=30)
    ap.add_argument("--reps", type=int, default=200)
    a = ap.parse_args()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise SystemExit("gpu_probe needs a real GPU")
    from numba import cuda
    import numba

    def versions():
        out = {"numba": numba.__version__}
        for name in ("numba_cuda", "cuda.core", "cupy", "jax"):
            try:
                mod = __import__(name, fromlist=["_"])
                out[name] = getattr(mod, "__version__", "?")
            except Exception as exc:
                out[name] = f"missing: {exc}"
        emit("versions", **out)

    attempt("versions", versions)

    @cuda.jit
    def axpy(y, x, c):
        i = cuda.grid(1)
        if i < y.size:
            y[i] += c * x[i]

    n = 1 << 16
    x = cuda.to_device(np.ones(n, np.float32))
    y = cuda.to_device(np.zeros(n, np.float32))
    blocks = (n + 255) // 256
    K, R = a.launches, a.reps

    def eager():
        axpy[blocks, 256](y, x, np.float32(1.0))
        cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(R):
            for _ in range(K):
                axpy[blocks, 256](y, x, np.float32(1.0))
        cuda.synchronize()
        emit("eager", us_per_launch=round((time.perf_counter() - t0) / (R * K) * 1e6, 2), launches=K)

    attempt("eager", eager)

    def replay(part, launch_graph, sync, reps=R):
        y.copy_to_device(np.zeros(n, np.float32))
        launch_graph()
        sync()
        ok = float(y.copy_to_host()[0]) == float(K)
        t0 = time.perf_counter()
        for _ in range(reps):
            launch_graph()
        sync()
        dt = (time.perf_counter() - t0) / reps * 1e6
        emit(part, us_per_replay=round(dt, 2), us_per_kernel=round(dt / K, 2), launches=K, right=ok,
             after=float(y.copy_to_host()[0]), expect=float(K * (reps + 1)))

    def cupy_capture():
        import cupy as cp
        s = cp.cuda.Stream(non_blocking=True)
        ns = cuda.external_stream(s.ptr)
        axpy[blocks, 256, ns](y, x, np.float32(0.0))
        s.synchronize()
        s.begin_capture()
        for _ in range(K):
            axpy[blocks, 256, ns](y, x, np.float32(1.0))
        g = s.end_capture()
        replay("cupy_capture", lambda: g.launch(stream=s), s.synchronize)

    attempt("cupy_capture", cupy_capture)

    def core_capture():
        try:
            from cuda.core import Device
        except ImportError:
            from cuda.core.experimental import Device
        dev = Device()
        dev.set_current()
        st = dev.create_stream()
        gb = st.create_graph_builder()
        gb.begin_building()
        for _ in range(K):
            axpy[blocks, 256, gb](y, x, np.float32(1.0))
        gb.end_building()
        g = gb.complete()
        replay("core_capture", lambda: g.launch(st), st.sync)

    attempt("core_capture", core_capture)

    ref = {}

    def product(batch):
        rng = np.random.default_rng(0)
        A = rng.standard_normal((batch, 784)).astype(np.float32)
        W = (rng.standard_normal((784, 200)) / 28).astype(np.float32)
        exact = A.astype(np.float64) @ W.astype(np.float64)
        return A, W, exact

    def cupy_matmul():
        import cupy as cp
        for batch in (50, 4096):
            A, W, exact = product(batch)
            dA, dW = cuda.to_device(A), cuda.to_device(W)
            dC = cuda.device_array((batch, 200), np.float32)
            cA, cW, cC = cp.asarray(dA), cp.asarray(dW), cp.asarray(dC)
            cp.matmul(cA, cW, out=cC)
            cp.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for _ in range(R):
                cp.matmul(cA, cW, out=cC)
            cp.cuda.Device().synchronize()
            dt = (time.perf_counter() - t0) / R * 1e6
            got = dC.copy_to_host()  # written through the shared memory: zero-copy
            err = float(np.abs(got - exact).max() / np.abs(exact).max())
            emit("cupy_matmul", batch=batch, us=round(dt, 2), rel_err=err, zero_copy=bool(np.any(got)))
            ref[batch] = err

    attempt("cupy_matmul", cupy_matmul)

    def jax_matmul():
        import jax
        import jax.numpy as jnp
        f = jax.jit(lambda p, q: p @ q)
        for batch in (50, 4096):
            A, W, exact = product(batch)
            jA, jW = jax.device_put(A), jax.device_put(W)
            f(jA, jW).block_until_ready()
            t0 = time.perf_counter()
            for _ in range(R):
                out = f(jA, jW)
            out.block_until_ready()
            dt = (time.perf_counter() - t0) / R * 1e6
            err = float(np.abs(np.asarray(out) - exact).max() / np.abs(exact).max())
            emit("jax_matmul", batch=batch, us=round(dt, 2), rel_err=err, device=str(jA.devices()),
                 precision=str(jax.config.jax_default_matmul_precision))

    attempt("jax_matmul", jax_matmul)

    def mixed_capture():
        import cupy as cp
        A, W, exact = product(4096)
        dA, dW = cuda.to_device(A), cuda.to_device(W)
        dC = cuda.device_array((4096, 200), np.float32)
        flat = dC.reshape(4096 * 200)
        ones = cuda.to_device(np.ones(4096 * 200, np.float32))
        cA, cW, cC = cp.asarray(dA), cp.asarray(dW), cp.asarray(dC)
        s = cp.cuda.Stream(non_blocking=True)
        ns = cuda.external_stream(s.ptr)
        nb = (4096 * 200 + 255) // 256
        with s:
            cp.matmul(cA, cW, out=cC)
            axpy[nb, 256, ns](flat, ones, np.float32(1.0))
            s.synchronize()
            s.begin_capture()
            cp.matmul(cA, cW, out=cC)
            axpy[nb, 256, ns](flat, ones, np.float32(1.0))
            g = s.end_capture()
        g.launch(stream=s)
        s.synchronize()
        got = dC.copy_to_host()
        err = float(np.abs(got - 1.0 - exact).max() / np.abs(exact).max())
        t0 = time.perf_counter()
        for _ in range(R):
            g.launch(stream=s)
        s.synchronize()
        emit("mixed_capture", us_per_replay=round((time.perf_counter() - t0) / R * 1e6, 2), rel_err=err)

    attempt("mixed_capture", mixed_capture)

    def cublas_capture():
        import cupy as cp
        from cupy_backends.cuda.libs import cublas
        M, Kd, N = 4096, 784, 200
        A, W, exact = product(M)
        dA, dW = cuda.to_device(A), cuda.to_device(W)
        dC = cuda.device_array((M, N), np.float32)
        flat = dC.reshape(M * N)
        ones = cuda.to_device(np.ones(M * N, np.float32))
        nb = (M * N + 255) // 256
        handle = cp.cuda.device.get_cublas_handle()
        one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
        ptr = lambda d: d.__cuda_array_interface__["data"][0]  # noqa: E731
        for mode, name in ((0, "fp32"), (3, "tf32")):   # CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH
            cublas.setMathMode(handle, mode)
            s = cp.cuda.Stream(non_blocking=True)
            ns = cuda.external_stream(s.ptr)
            cublas.setStream(handle, s.ptr)

            def launches():   # row-major C = A W as column-major C^T = W^T A^T, then C += 1
                cublas.sgemm(handle, 0, 0, N, M, Kd, one.ctypes.data, ptr(dW), N, ptr(dA), Kd, zero.ctypes.data,
                             ptr(dC), N)
                axpy[nb, 256, ns](flat, ones, np.float32(1.0))

            launches()
            s.synchronize()
            t0 = time.perf_counter()
            for _ in range(R):
                launches()
            s.synchronize()
            eager = (time.perf_counter() - t0) / R * 1e6
            s.begin_capture()
            launches()
            g = s.end_capture()
            dC.copy_to_device(np.zeros((M, N), np.float32))
            g.launch(stream=s)
            s.synchronize()
            got = dC.copy_to_host() - 1.0
            in_graph = bool(np.abs(got).max() > 0)   # else the product ran once, outside the graph
            err = float(np.abs(got - exact).max() / np.abs(exact).max())
            t0 = time.perf_counter()
            for _ in range(R):
                g.launch(stream=s)
            s.synchronize()
            emit("cublas_capture", math=name, in_graph=in_graph, us_eager=round(eager, 2), rel_err=err,
                 us_per_replay=round((time.perf_counter() - t0) / R * 1e6, 2))
        cublas.setStream(handle, 0)

    attempt("cublas_capture", cublas_capture)
    attempt("cublas_direct", lambda: cublas_direct(cuda, axpy, R))


def load_cublas():
    """libcublas through ctypes: cuda.pathfinder, then the nvidia wheels on sys.path, then the loader."""
    import ctypes
    import ctypes.util
    import glob
    import sys
    try:
        from cuda import pathfinder
        dl = pathfinder.load_nvidia_dynamic_lib("cublas")
        if dl.abs_path:
            return ctypes.CDLL(dl.abs_path), dl.abs_path
    except Exception:
        pass
    for root in sys.path:
        for f in sorted(glob.glob(os.path.join(root, "nvidia", "cu*", "lib", "libcublas.so*"))):
            if "Lt" not in f:
                return ctypes.CDLL(f), f
    name = ctypes.util.find_library("cublas") or "libcublas.so.12"
    return ctypes.CDLL(name), name


def raw_stream(s):
    """The CUstream handle of a cuda.core stream or graph builder, as an int."""
    if hasattr(s, "__cuda_stream__"):
        return int(s.__cuda_stream__()[1])
    return int(getattr(s, "stream", s).handle)


def cublas_direct(cuda, axpy, R):
    import ctypes
    try:
        from cuda.core import Device
    except ImportError:
        from cuda.core.experimental import Device
    lib, path = load_cublas()
    vp, ci = ctypes.c_void_p, ctypes.c_int
    lib.cublasSgemm_v2.argtypes = [vp, ci, ci, ci, ci, ci, vp, vp, ci, vp, ci, vp, vp, ci]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
    lib.cublasSetMathMode.argtypes = [vp, ci]
    version = ctypes.c_int()
    h = vp()
    assert lib.cublasCreate_v2(ctypes.byref(h)) == 0
    lib.cublasGetVersion_v2(h, ctypes.byref(version))
    emit("cublas_direct", lib=path, version=version.value)
    dev = Device(cuda.get_current_device().id)
    dev.set_current()
    work = cuda.device_array(32 << 20, np.uint8)
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
    ptr = lambda d: d.__cuda_array_interface__["data"][0]  # noqa: E731
    rng = np.random.default_rng(0)
    Kd, N = 784, 200

    def check(status, what):
        if status != 0:
            raise RuntimeError(f"{what}: cublas status {status}")

    for M in (50, 4096):
        X = rng.standard_normal((M, Kd)).astype(np.float32)
        W = (rng.standard_normal((Kd, N)) / 28).astype(np.float32)
        G = rng.standard_normal((M, N)).astype(np.float32)
        exact = {"XW": X.astype(np.float64) @ W, "XtG": X.T.astype(np.float64) @ G,
                 "GWt": G.astype(np.float64) @ W.T}
        dX, dW, dG = cuda.to_device(X), cuda.to_device(W), cuda.to_device(G)
        out = {"XW": cuda.device_array((M, N), np.float32), "XtG": cuda.device_array((Kd, N), np.float32),
               "GWt": cuda.device_array((M, Kd), np.float32)}
        flat = out["XW"].reshape(M * N)
        ones = cuda.to_device(np.ones(M * N, np.float32))
        nb = (M * N + 255) // 256

        def products(stream_handle, numba_stream):
            check(lib.cublasSetStream_v2(h, vp(stream_handle)), "setStream")
            check(lib.cublasSetWorkspace_v2(h, vp(ptr(work)), work.size), "setWorkspace")
            # row-major products as column-major ones on the transposes (0: N, 1: T)
            check(lib.cublasSgemm_v2(h, 0, 0, N, M, Kd, ctypes.byref(one), ptr(dW), N, ptr(dX), Kd,
                                     ctypes.byref(zero), ptr(out["XW"]), N), "XW")
            check(lib.cublasSgemm_v2(h, 0, 1, N, Kd, M, ctypes.byref(one), ptr(dG), N, ptr(dX), Kd,
                                     ctypes.byref(zero), ptr(out["XtG"]), N), "XtG")
            check(lib.cublasSgemm_v2(h, 1, 0, Kd, M, N, ctypes.byref(one), ptr(dW), N, ptr(dG), N,
                                     ctypes.byref(zero), ptr(out["GWt"]), Kd), "GWt")
            axpy[nb, 256, numba_stream](flat, ones, np.float32(1.0))

        for mode, name in ((0, "fp32"), (3, "tf32")):
            check(lib.cublasSetMathMode(h, mode), "mathMode")
            st = dev.create_stream()
            ns = cuda.external_stream(raw_stream(st))
            products(raw_stream(st), ns)
            st.sync()
            t0 = time.perf_counter()
            for _ in range(R):
                products(raw_stream(st), ns)
            st.sync()
            eager = (time.perf_counter() - t0) / R * 1e6
            gb = st.create_graph_builder()
            gb.begin_building()
            products(raw_stream(gb), gb)
            gb.end_building()
            g = gb.complete()
            for d in out.values():
                d.copy_to_device(np.zeros(d.shape, np.float32))
            cuda.synchronize()
            g.launch(st)
            st.sync()
            got = {k: d.copy_to_host().astype(np.float64) for k, d in out.items()}
            got["XW"] -= 1.0
            in_graph = all(bool(np.abs(v).max() > 0) for v in got.values())
            err = {k: float(np.abs(got[k] - exact[k]).max() / np.abs(exact[k]).max()) for k in exact}
            t0 = time.perf_counter()
            for _ in range(R):
                g.launch(st)
            st.sync()
            emit("cublas_direct", batch=M, math=name, in_graph=in_graph, us_eager=round(eager, 2),
                 us_per_replay=round((time.perf_counter() - t0) / R * 1e6, 2), rel_err=err)
    lib.cublasDestroy_v2(h)


if __name__ == "__main__":
    main()
