"""ppl's own parts of a product (kernels/native/parts.py) against the BLAS's own threads, per shape.

The paper-scale SBN's products at batch 50 and 500, float32, each way in a process of its own
(the thread pool a way leaves spinning would slow the next), the ways alternating round by round:
  one      the BLAS at one thread, no parts
  blas2    the BLAS at two threads (fit's default before the parts)
  parts2   two parts at once on Numba's threads, the BLAS at one thread inside each (fit's default)

    python benchmarks/experiments/parts.py [--rounds 3]

Shapes are (M, N, K) of c (M x N) = op(a) op(b) with K the inner size; T marks a transposed
operand (784x200x50T: a weight gradient g^T h). JSON lines: value = parts2's median us per
product, baseline = blas2's, ratio = baseline / value (> 1: the parts are faster); one rides along.
"""
import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = [(50, 200, 784, False, False), (50, 784, 200, False, True), (784, 200, 50, True, False),
          (200, 784, 50, True, False), (200, 200, 50, True, False), (50, 200, 200, False, True),
          (500, 200, 784, False, False), (784, 200, 500, True, False)]


def name(M, N, K, ta, tb):
    return f"{M}x{N}x{K}" + ("T" if ta else "") + ("T" if tb else "")


def child(way):
    """Time every shape under `way` in this process; one JSON dict of medians (us)."""
    import numpy as np
    from numba import njit
    from ppl.kernels.cpu import part_kernels
    from ppl.kernels.native import blas

    @njit(cache=True)
    def loop(a, ta, b, tb, c, n):
        for _ in range(n):
            blas.gemm(a, ta, b, tb, c, 1.0)

    blas.set_threads(2 if way == "blas2" else 1)
    part_kernels.use(2 if way == "parts2" else 1)
    rng = np.random.default_rng(0)
    out = {}
    for M, N, K, ta, tb in SHAPES:
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        c = np.zeros((M, N), np.float32)
        loop(a, ta, b, tb, c, 10)
        n = max(10, int(3e8 / (M * N * K)))
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            loop(a, ta, b, tb, c, n)
            runs.append((time.perf_counter() - t) / n * 1e6)
        out[name(M, N, K, ta, tb)] = float(np.median(runs))
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if "OPENBLAS_NUM_THREADS" in os.environ:
        raise SystemExit("unset OPENBLAS_NUM_THREADS: each way sets the BLAS's threads itself")
    ways = ("one", "blas2", "parts2")
    times = {w: [] for w in ways}
    for _ in range(args.rounds):
        for w in ways:
            out = subprocess.run([sys.executable, __file__, "--child", w], capture_output=True, text=True, check=True)
            times[w].append(json.loads(out.stdout.strip().splitlines()[-1]))
    import statistics
    for shape in SHAPES:
        k = name(*shape)
        med = {w: statistics.median(r[k] for r in times[w]) for w in ways}
        print(json.dumps({"bench": "parts", "case": k, "metric": "us_per_product", "value": round(med["parts2"], 1),
                          "unit": "us", "baseline": round(med["blas2"], 1), "ratio": round(med["blas2"] / med["parts2"], 3),
                          "one": round(med["one"], 1), "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
