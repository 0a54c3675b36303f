"""Simulations with discrete randomness on the GPU: many independent samples of a `ppl.scan`
simulation as the rows of one CUDA training step, against the plain @njit simulator and ppl's CPU
target on the same machine.

    python benchmarks/gpu_simulations.py [--problems sir,queue,inventory,branching]
        [--batches 1024,16384] [--rounds 3] [--seconds 0.3]
    python benchmarks/gpu_simulations.py --check   # the script's own path, tiny, also under the simulator

The problems, models and data of benchmarks/simulations.py (float64, their default estimators on
each target, T steps each). For each (problem, batch of B samples), alternating rounds in one
process, medians of us per sample:
  ppl_cuda   ppl.fit of the model compiled with target="cuda" (SGD at a rate of 1e-9: a gradient
             estimate of B samples and an update each step), timed by its slope (a call of n
             steps against one of 3n), divided by B; its loop blocks are one kernel each where
             they may be (lowering/stepped.py)
  ppl_cpu    the same on the CPU target, the library's defaults
  plain      the plain @njit simulator, B samples (the value only: no derivative)

One JSON line per (problem, batch): value = ppl_cuda, baseline = plain, ratio = baseline / value
(> 1: a derivative on the GPU costs less than a plain sample on the CPU); ppl_cpu and cpu_ratio =
ppl_cpu / ppl_cuda ride along, and the gradients of the two targets at the same seed
(`parity_max_rel`, relative to the CPU's). Needs an NVIDIA GPU; without one it prints a JSON
line saying so and exits 0.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gpu import no_gpu  # noqa: E402


def emit(case, metric, value=None, **kw):
    print(json.dumps({"bench": "gpu_simulations", "case": case, "metric": metric, "value": value, **kw}),
          flush=True)


def fit_timer(prog, data, B):
    """steps(n) -> seconds of ppl.fit of n steps on the B samples (each step all of them)."""
    import ppl

    def steps(n):
        t0 = time.perf_counter()
        ppl.fit(prog, data, ppl.optim.SGD(lr=1e-9), steps=n, batch_size=B, progress=False)
        return time.perf_counter() - t0
    return steps


def slope_us(steps, n, B):
    """us per sample of one step: the n-step call against the 3n-step call."""
    return (steps(3 * n) - steps(n)) / (2 * n) / B * 1e6


def run_problem(args, name, sims):
    spec, pr = sims.PPL[name], sims.PROBLEMS[name]
    T = args.T or pr.T
    progs = {t: spec.build(T, f"gpu_{t}_{T}").compile(dtype=np.float64, target=t) for t in ("cuda", "cpu")}
    small = spec.data(64)
    (lc, gc), (lg, gg) = (progs[t].grad(small, seed=3) for t in ("cpu", "cuda"))
    scale = max(float(np.max(np.abs(g))) for g in gc.values()) or 1.0
    parity = max(float(np.max(np.abs(gg[k] - gc[k]))) for k in gc) / scale
    for B in args.batches:
        data = spec.data(B)
        timers = {t: fit_timer(progs[t], data, B) for t in progs}
        n = {}
        for t, fn in timers.items():   # warm (compile, capture), then steps for about `seconds`
            fn(2)
            per = max(fn(4) / 4, 1e-6)
            n[t] = max(2, min(2000, int(args.seconds / per / 3)))
        times = {"ppl_cuda": [], "ppl_cpu": [], "plain": []}
        pr.simulate_batch(n=B, seed=0)
        for r in range(args.rounds):
            times["ppl_cuda"].append(slope_us(timers["cuda"], n["cuda"], B))
            times["ppl_cpu"].append(slope_us(timers["cpu"], n["cpu"], B))
            t0 = time.perf_counter()
            pr.simulate_batch(n=B, seed=1 + r)
            times["plain"].append((time.perf_counter() - t0) / B * 1e6)
        med = {k: float(np.median(v)) for k, v in times.items()}
        emit(f"{name}/T={T}/batch={B}", "us_per_sample", med["ppl_cuda"], unit="us", baseline=med["plain"],
             ratio=med["plain"] / med["ppl_cuda"], ppl_cpu=med["ppl_cpu"], cpu_ratio=med["ppl_cpu"] / med["ppl_cuda"],
             steps_per_call=n, rounds=args.rounds, parity_max_rel=parity, loss_rel=abs(lg - lc) / max(abs(lc), 1e-30),
             estimators=sorted({c[0].estimator for c in progs["cuda"].choices.values()}),
             stepped=progs["cuda"].source.count("rows.stepped("), loops=progs["cuda"].source.count("for it_ in"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="sir,queue,inventory,branching")
    ap.add_argument("--batches", default="1024,16384")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3, help="aim of one timed call of each way")
    ap.add_argument("--T", type=int, default=None, help="steps of every problem (default: each problem's own)")
    ap.add_argument("--check", action="store_true", help="tiny: the script's own path, in the simulator too")
    args = ap.parse_args()
    if args.check:
        args.problems, args.batches, args.rounds, args.seconds, args.T = "branching", "8", 1, 0.0, 3
    args.batches = [int(b) for b in str(args.batches).split(",")]
    why = no_gpu(allow_simulator=args.check)
    if why is not None:
        emit("all", "skipped", reason=why)
        return
    sys.path.insert(0, os.path.join(HERE))
    import simulations as sims
    for name in args.problems.split(","):
        run_problem(args, name, sims)


if __name__ == "__main__":
    main()
