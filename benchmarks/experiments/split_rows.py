"""What splitting a batch's rows over two threads would buy at paper scale, against the two ways
the step can use the second core today: one BLAS thread (the default) and two (fit's
`blas_threads`). A measurement of the idea before building it: alternating in one process.

    python benchmarks/experiments/split_rows.py [--rounds 11] [--cases 200,200-200] [--batch 50]

Per (case, estimator), microseconds per raw step (the generated @njit step, no optimiser):
  one_thread      the step on the whole batch, BLAS at one thread
  blas_two        the same step, BLAS at two threads
  split_two       the step on each half of the batch, the halves at once on two Numba threads
                  (a parallel loop of two iterations, each with its own gradient, state copy and
                  workspaces; BLAS at one thread), then the two gradients averaged
  half_alone      the step on one half alone (what perfect sharing would cost)
split_two is an upper bound of a real split: the halves draw the same noise streams (a real
split needs a row offset in every noise fill, to draw what the whole batch draws) and their
states (moving-average baselines) are not merged.

A calibration line first: the same arithmetic loop (an exp per element, L1-resident) twice
on one thread against once on each of two threads; its ratio is what this machine's second
core gives compute that shares nothing (1.0: nothing, 2.0: a full core).

JSON lines: value = split_two, baseline = blas_two (the way fit has now), ratio = baseline / value
(> 1: the split would be faster than two BLAS threads); the other figures ride along.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ppl.kernels.native import blas  # noqa: E402
from ppl.models import sbn  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: jax_peers
from jax_peers import digits784  # noqa: E402  (benchmarks/)


@njit(fastmath={"reassoc", "contract"})
def _arith(a, n):
    s = np.float32(0)
    for _ in range(n):
        for i in range(a.shape[0]):
            a[i] = a[i] * np.float32(0.999) + np.float32(0.001)
            s += np.exp(a[i])
    return s


@njit(parallel=True)
def _arith_two(a, b, n):
    out = np.zeros(2, np.float32)
    for i in prange(2):
        if i == 0:
            out[0] = _arith(a, n)
        else:
            out[1] = _arith(b, n)
    return out


@njit(parallel=True)
def split_step(step, theta, g0, g1, s0, s1, w20, w10, w21, w11, in0, in1, h, seed, t):
    """The step on two halves of h rows at once (one per thread), gradients averaged into g0."""
    for i in prange(2):
        if i == 0:
            step(theta, g0, s0, w20, w10, in0, h, seed, t, 1)
        else:
            step(theta, g1, s1, w21, w11, in1, h, seed, t, 1)
    for j in range(g0.shape[0]):
        g0[j] = np.float32(0.5) * (g0[j] + g1[j])


def calibrate(rounds):
    a, b = np.ones(4096, np.float32), np.ones(4096, np.float32)
    _arith(a, 1)
    _arith_two(a, b, 1)
    one, two = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _arith(a, 1000)
        _arith(b, 1000)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _arith_two(a, b, 1000)
        two.append(time.perf_counter() - t0)
    one, two = float(np.median(one)), float(np.median(two))
    print(json.dumps({"bench": "split_rows", "case": "calibration/exp loop", "metric": "ms",
                      "value": round(two * 1e3, 2), "unit": "ms", "baseline": round(one * 1e3, 2),
                      "ratio": round(one / two, 3)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--cases", default="200,200-200")
    ap.add_argument("--estimators", default="straight_through,score,disarm,rebar")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    if blas.get_threads() is None:
        print(json.dumps({"bench": "split_rows", "case": "all", "metric": "skipped", "value": None, "unit": None,
                          "baseline": None, "ratio": None, "reason": "NumPy's bundled OpenBLAS not found"}))
        return
    calibrate(args.rounds)
    X = digits784()
    B, h = args.batch, args.batch // 2
    for case in args.cases.split(","):
        latent = tuple(int(w) for w in case.split("-"))
        for est in args.estimators.split(","):
            spec = ("rebar", {"train": False}) if est == "rebar" else est
            prog = sbn.build(latent=latent, pixels=784).compile(estimators=spec, dtype=np.float32)
            step, theta = prog.entry, prog.theta
            whole = prog.args({"x": X[:B]})
            ws = prog.workspace(h)
            ws_b = (tuple(a.copy() for a in ws[0]), tuple(a.copy() for a in ws[1]))
            in0, in1 = (np.ascontiguousarray(X[:h]),), (np.ascontiguousarray(X[h:2 * h]),)
            g0, g1 = np.zeros_like(theta), np.zeros_like(theta)
            s0, s1 = prog.state.copy(), prog.state.copy()
            seed = np.uint64(1)

            def ways(n):
                def one(threads):
                    blas.set_threads(threads)
                    t0 = time.perf_counter()
                    for k in range(n):
                        step(*whole, seed, np.int64(k), 1)
                    return (time.perf_counter() - t0) / n * 1e6

                def split():
                    blas.set_threads(1)
                    t0 = time.perf_counter()
                    for k in range(n):
                        split_step(step, theta, g0, g1, s0, s1, ws[0], ws[1], ws_b[0], ws_b[1], in0, in1, h,
                                   seed, np.int64(k))
                    return (time.perf_counter() - t0) / n * 1e6

                def half():
                    blas.set_threads(1)
                    t0 = time.perf_counter()
                    for k in range(n):
                        step(theta, g0, s0, ws[0], ws[1], in0, h, seed, np.int64(k), 1)
                    return (time.perf_counter() - t0) / n * 1e6
                return {"one_thread": lambda: one(1), "blas_two": lambda: one(2), "split_two": split,
                        "half_alone": half}

            warm = ways(3)
            for f in warm.values():
                f()
            timed = ways(args.steps)
            res = {k: [] for k in timed}
            for _ in range(args.rounds):
                for k, f in timed.items():
                    res[k].append(f())
            blas.set_threads(1)
            m = {k: round(float(np.median(v)), 1) for k, v in res.items()}
            print(json.dumps({"bench": "split_rows", "case": f"sbn784-{case}/{est}/batch={B}", "metric": "us_per_step",
                              "value": m["split_two"], "unit": "us/step", "baseline": m["blas_two"],
                              "ratio": round(m["blas_two"] / m["split_two"], 3), **m,
                              "blas_two_gain": round(m["one_thread"] / m["blas_two"], 3),
                              "split_two_gain": round(m["one_thread"] / m["split_two"], 3),
                              "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
