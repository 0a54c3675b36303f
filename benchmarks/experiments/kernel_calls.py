"""The generated step calling the array kernels (ppl's default, kernels/_link.py) against linking
their code into it (Numba's default): compile time of a new graph and time per training step.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/kernel_calls.py [--rounds 5] [--what compile,step]

Both ways in ONE process, alternating, medians of the rounds (the kernels are loaded once, as in
a session that compiles graph after graph):
  compile   a new graph (renamed each time, so its step source is new) built, compiled and
            run once: the seconds to its first gradient (the kernels already in the process)
  step      the 64-32 SBN (float32, Adam) in the user's own @njit loop (benchmarks/experiments/fit_overhead.py's
            raw loop), us per step at batch 1 and 32
One JSON line per case: value = calls (the default), baseline = linked, ratio = value / baseline
(< 1: calling is faster).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ppl.training.data import Batches  # noqa: E402
from ppl.kernels import _link  # noqa: E402
from ppl.models import sbn  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peers
from fit_overhead import raw_loop  # noqa: E402  (benchmarks/experiments/, the script's folder)
from peers import median_rounds, steps_for  # noqa: E402

COMPILE_CASES = {   # case -> (model builder, compile options)
    "sbn 64-32 (DisARM, K = 4)": (lambda: sbn.build(latent=(32,)), {"samples": 4}),
    "sbn 64-32-32 nonlinear": (lambda: sbn.build(latent=(32, 32), nonlinear=True), {"samples": 1}),
    "sbn 64-32-16 REBAR": (lambda: sbn.build(latent=(32, 16)), {"estimators": "rebar"}),
}
WAYS = {"calls": True, "linked": False}


def emit(case, metric, value, baseline, unit):
    print(json.dumps({"bench": "kernel_calls", "case": case, "metric": metric, "value": round(value, 3),
                      "unit": unit, "baseline": round(baseline, 3), "ratio": round(value / baseline, 3)}),
          flush=True)


def compile_once(build, options, way, tag):
    m = build()
    m.name = f"kc_{way}_{tag}_{os.getpid()}"
    _link.CALL_KERNELS = WAYS[way]
    try:
        t0 = time.perf_counter()
        prog = m.compile(dtype=np.float32, **options)
        prog.grad({"x": np.zeros((4, 64), np.float32)})
        return time.perf_counter() - t0
    finally:
        _link.CALL_KERNELS = True


def bench_compile(rounds):
    for case, (build, options) in COMPILE_CASES.items():
        compile_once(build, options, "calls", "warm")   # the kernels this graph calls, loaded once
        times = {w: [] for w in WAYS}
        for r in range(rounds):
            for way in WAYS:
                times[way].append(compile_once(build, options, way, r))
        med = {w: float(np.median(t)) for w, t in times.items()}
        emit(case, "new graph to first gradient", med["calls"], med["linked"], "s")


def bench_step(rounds, estimators=("score", "disarm"), batches=(1, 32)):
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    for est in estimators:
        for B in batches:
            runners = {}
            for way in WAYS:
                m = sbn.build(latent=(32,))
                m.name = f"kc_step_{way}_{est}_{B}"
                prog = m.compile(estimators=est, dtype=np.float32)
                rows = Batches({"x": X}, B, seed=0, dtype=np.float32)
                a = prog.args({"x": np.zeros((B, 64), np.float32)})
                mv = (np.zeros_like(prog.theta), np.zeros_like(prog.theta))

                def run(n, prog=prog, a=a, mv=mv, rows=rows):
                    raw_loop(prog.entry, 0, n, X, rows.rows(0, n), *a, *mv)
                _link.CALL_KERNELS = WAYS[way]
                try:
                    run(2)   # Numba compiles the step (and the loop) on this first call
                finally:
                    _link.CALL_KERNELS = True
                runners[way] = run
            n = steps_for(runners["linked"], 0.5)
            med = median_rounds(runners, n, rounds)
            emit(f"sbn64-32/{est}/batch={B}", "step", med["calls"], med["linked"], "us/step")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--what", default="compile,step")
    args = ap.parse_args()
    what = args.what.split(",")
    if "compile" in what:
        bench_compile(args.rounds)
    if "step" in what:
        bench_step(args.rounds)


if __name__ == "__main__":
    main()
