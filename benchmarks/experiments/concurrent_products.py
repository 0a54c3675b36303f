"""A third way to give the step a second core at paper scale: run a layer's two independent
backward products at once, one on each thread (task parallelism, as XLA's runtime may schedule
independent operations), against the ways the step has: one BLAS thread and two (fit's
`blas_threads`). A measurement of the idea before building it: alternating in one process.

    python benchmarks/experiments/concurrent_products.py [--rounds 9] [--batch 50]

A layer y = h W^T + b with cotangent g (batch x out) needs two products that do not depend on
each other: the weight gradient g^T h (out x in) and the input cotangent g W (batch x in).
Microseconds per pair:
  one_thread   both products in turn, BLAS at one thread (the default)
  blas_two     both in turn, BLAS at two threads
  concurrent   one product on each of two Numba threads (a parallel loop of two iterations),
               BLAS at one thread inside each
  split        each product in turn, its output halved over two Numba threads (the weight
               gradient by rows, the input cotangent by columns; BLAS at one thread): what
               ppl's own two-thread split of every product, paired or not, would give
Shapes: the 784-pixel SBN's decoder (in 200, out 784) and the 200 x 200 layer of 784-200-200.

Each way runs in a process of its own, the ways alternating round by round: in one process the
threads a way leaves spinning (OpenBLAS's after a two-thread call, the OpenMP workers after a
parallel loop) slow the way timed next, which reversed this comparison when it was measured so.

A calibration line first (split_rows.py's): the same arithmetic loop twice on one thread against
once on each of two threads; its ratio is what this machine's second core gives compute that
shares nothing (1.0: nothing, 2.0: a full core).

JSON lines: value = concurrent, baseline = blas_two, ratio = baseline / value (> 1: concurrent
products would beat two BLAS threads); the other figures ride along.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ppl.kernels.native import blas  # noqa: E402
from ppl.kernels.native.blas import NO_TRANS, ROW_MAJOR, TRANS, gemm  # noqa: E402
from ppl.kernels.native.blas import _sgemm  # noqa: E402  (the CBLAS call itself: views with leading dimensions)
from split_rows import _arith, _arith_two  # noqa: E402  (benchmarks/experiments/, the script's folder)

SHAPES = {"decoder 200->784": (200, 784), "layer 200->200": (200, 200)}


@njit(cache=True)
def in_turn(g, h, W, gW, gh, n):
    for _ in range(n):
        gemm(g, True, h, False, gW, 1.0)    # weight gradient, accumulated
        gemm(g, False, W, False, gh, 0.0)   # input cotangent


@njit(cache=True, parallel=True)
def at_once(g, h, W, gW, gh, n):
    for _ in range(n):
        for k in prange(2):
            if k == 0:
                gemm(g, True, h, False, gW, 1.0)
            else:
                gemm(g, False, W, False, gh, 0.0)


@njit(cache=True, inline="always")
def gemm_view(a, ta, b, tb, c, beta):
    """c = op(a) op(b) + beta c for float32 row-major views with unit inner stride (leading
    dimensions from the row strides), e.g. a block of columns."""
    K = a.shape[0] if ta else a.shape[1]
    _sgemm(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, c.shape[0], c.shape[1], K,
           np.float32(1.0), a.ctypes, a.strides[0] // 4, b.ctypes, b.strides[0] // 4, np.float32(beta),
           c.ctypes, c.strides[0] // 4)


@njit(cache=True, parallel=True)
def halves(g, h, W, gW, gh, n):
    o = gW.shape[0] // 2
    i = gh.shape[1] // 2
    for _ in range(n):
        for k in prange(2):   # the weight gradient: half its rows on each thread
            if k == 0:
                gemm_view(g[:, :o], True, h, False, gW[:o], 1.0)
            else:
                gemm_view(g[:, o:], True, h, False, gW[o:], 1.0)
        for k in prange(2):   # the input cotangent: half its columns on each thread
            if k == 0:
                gemm_view(g, False, W[:, :i], False, gh[:, :i], 0.0)
            else:
                gemm_view(g, False, W[:, i:], False, gh[:, i:], 0.0)


def emit(case, value, baseline, **extra):
    rec = {"bench": "concurrent_products", "case": case, "metric": "us_per_pair", "value": round(value, 2),
           "unit": "us", "baseline": round(baseline, 2), "ratio": round(baseline / value, 3)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


WAYS = {"one_thread": (in_turn, 1), "blas_two": (in_turn, 2), "concurrent": (at_once, 1), "split": (halves, 1)}


def time_way(way, batch, calls):
    """One process's figures: us per pair of each shape for `way` (the best of three runs)."""
    fn, threads = WAYS[way]
    blas.set_threads(threads)
    rng = np.random.default_rng(1)
    out = {}
    for name, (n_in, n_out) in SHAPES.items():
        g = rng.standard_normal((batch, n_out)).astype(np.float32)
        h = rng.standard_normal((batch, n_in)).astype(np.float32)
        W = rng.standard_normal((n_out, n_in)).astype(np.float32)
        gW = np.zeros((n_out, n_in), np.float32)
        gh = np.zeros((batch, n_in), np.float32)
        fn(g, h, W, gW, gh, 2)
        gW0, gh0 = np.zeros_like(gW), np.zeros_like(gh)
        in_turn(g, h, W, gW0, gh0, 1)
        gW[:] = 0.0
        fn(g, h, W, gW, gh, 1)
        if not (np.allclose(gW, gW0, rtol=1e-4, atol=1e-3) and np.allclose(gh, gh0, rtol=1e-4, atol=1e-3)):
            raise AssertionError(f"{way}: the products differ from in_turn's")
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            fn(g, h, W, gW, gh, calls)
            best = min(best, (time.perf_counter() - t0) / calls * 1e6)
        out[name] = best
    return out


def calibrate(rounds):
    a, b = np.random.default_rng(0).random((2, 4096), dtype=np.float32)
    _arith(a, 1)
    _arith_two(a, b, 1)
    cal = {"two_on_one": [], "one_on_each": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        _arith(a, 2000)
        _arith(b, 2000)
        cal["two_on_one"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _arith_two(a, b, 2000)
        cal["one_on_each"].append(time.perf_counter() - t0)
    one, each = (float(np.median(v)) * 1e3 for v in cal.values())
    rec = {"bench": "concurrent_products", "case": "calibration: an exp loop, twice on one thread / once on each of two",
           "metric": "ms", "value": round(each, 2), "unit": "ms", "baseline": round(one, 2),
           "ratio": round(one / each, 3), "threading_layer": numba.threading_layer()}
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--way", choices=sorted(WAYS), help=argparse.SUPPRESS)   # a worker process
    args = ap.parse_args()
    if args.way:
        print(json.dumps(time_way(args.way, args.batch, args.calls)))
        return
    print(json.dumps({"bench": "concurrent_products", "case": "versions", "metric": "info",
                      "numba_threads": numba.get_num_threads(), "cores": blas.cores()}), flush=True)
    calibrate(args.rounds)
    times = {w: {s: [] for s in SHAPES} for w in WAYS}
    cmd = [sys.executable, os.path.abspath(__file__), "--batch", str(args.batch), "--calls", str(args.calls)]
    for _ in range(args.rounds):
        for way in WAYS:
            res = json.loads(subprocess.run(cmd + ["--way", way], capture_output=True, text=True,
                                            check=True).stdout.strip().splitlines()[-1])
            for s, us in res.items():
                times[way][s].append(us)
    for s in SHAPES:
        med = {w: float(np.median(times[w][s])) for w in WAYS}
        emit(f"{s}, batch {args.batch}", med["concurrent"], med["blas_two"],
             **{w: round(v, 2) for w, v in med.items()}, rounds=args.rounds, calls=args.calls)


if __name__ == "__main__":
    main()
