"""What a second core buys `ppl.fit` at paper scale: NumPy's OpenBLAS (the library the kernels'
products call, kernels/native/blas.py) at one thread against two, alternating in one process.

    python benchmarks/experiments/cores.py [--rounds 7] [--cases sbn784-200,sbn64-32] [--batches 50,256]

The thread count is switched between rounds (`ppl.kernels.native.blas.set_threads`, the library's own
setter), so both ways run in the same sitting on the same data.
Cases: the linear SBN 784-200 (and 784-200-200) on the 784-pixel timing stand-in of
benchmarks/jax_peers.py, and the 64-32 SBN of the digits (a small size, to see whether a second
thread helps or hurts there); at batch 256 the noise fills also run on Numba's threads. One JSON line per (case, estimator):
value = us per step with two BLAS threads, baseline = one thread, ratio = baseline / value
(> 1: the second core pays), and the CPU time / wall time of each way.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.kernels.native import blas  # noqa: E402
from ppl.models import sbn  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peers, jax_peers
from peers import steps_for  # noqa: E402  (benchmarks/)


def data(case):
    if case.startswith("sbn784"):
        from jax_peers import digits784   # noqa: E402  (benchmarks/)
        return digits784()
    return np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)


def latent(case):
    return tuple(int(w) for w in case.split("-")[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cases", default="sbn784-200,sbn784-200-200,sbn64-32")
    ap.add_argument("--estimators", default="straight_through,score,disarm")
    ap.add_argument("--batches", default="50,256", help="batches of the 784-pixel cases")
    ap.add_argument("--small-batches", default="32,256", help="batches of sbn64-32")
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    if blas.get_threads() is None:
        print(json.dumps({"bench": "cores", "case": "all", "metric": "skipped", "value": None, "unit": None,
                          "baseline": None, "ratio": None, "reason": "NumPy's bundled OpenBLAS not found"}))
        return
    for case in args.cases.split(","):
        X = data(case)
        batches = args.batches if case.startswith("sbn784") else args.small_batches
        for B, est in ((int(b), e) for b in batches.split(",") for e in args.estimators.split(",")):
            prog = sbn.build(latent=latent(case), pixels=X.shape[1]).compile(estimators=est, dtype=np.float32)
            opt = ppl.optim.Adam(1e-3)

            def run(n):
                fit(prog, {"x": X}, opt, steps=n, batch_size=B, progress=False, nopython=True)

            run(2)
            n = steps_for(run, args.seconds, probe=50)
            wall = {1: [], 2: []}
            cpu = {1: [], 2: []}
            for _ in range(args.rounds):
                for threads in (1, 2):
                    blas.set_threads(threads)
                    c0, t0 = time.process_time(), time.perf_counter()
                    run(n)
                    wall[threads].append((time.perf_counter() - t0) / n * 1e6)
                    cpu[threads].append((time.process_time() - c0) / n * 1e6)
            blas.set_threads(1)
            one, two = float(np.median(wall[1])), float(np.median(wall[2]))
            print(json.dumps({"bench": "cores", "case": f"{case}/{est}/batch={B}", "metric": "us_per_step",
                              "value": round(two, 2), "unit": "us/step", "baseline": round(one, 2),
                              "ratio": round(one / two, 3), "cpu_per_wall_1": round(np.median(cpu[1]) / one, 2),
                              "cpu_per_wall_2": round(np.median(cpu[2]) / two, 2), "steps": n,
                              "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
