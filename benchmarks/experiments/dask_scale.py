"""ppl.distributed on this machine: sweep throughput (runs / s) and sharded moments (draws / s)
on a LocalCluster of 2 worker processes against one, alternating, medians.

    pip install -e '.[distributed]'
    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/dask_scale.py [--rounds 3] [--tasks 8] [--steps 3000]

Cases:
  sweep    the 64-32 SBN (its defaults: batch 32, K = 4 samples), --tasks runs of --steps steps
           (estimators disarm / score / straight_through / rebar in turn, seeds 0..), each run one
           task; value = runs / s on 2 workers, baseline = on 1 worker, ratio = value / baseline
           (higher is better: the speed-up). Clusters are started and warmed (every worker has
           compiled every estimator's step) before the clock starts.
  moments  gradient moments of the same SBN (DisARM, batch 32) over --draws draws; value = draws
           / s on 2 workers, baseline = in this process, serially.
  data_parallel  the 784-200 SBN (DisARM, random binary pixels), batches --dp-batches: us per
           step of fit_data_parallel on 2 workers (value) against fit in this process at one BLAS
           thread (baseline; the same training, ratio = baseline / value) and at every core
           (baseline_all_cores), --dp-steps steps each after a warm-up; and periodic averaging
           every 10 steps (average_every=10, 5 x --dp-steps steps).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ppl.training.distributed import moments, open_client, sweep  # noqa: E402
from ppl.models import sbn  # noqa: E402

ESTIMATORS = ["disarm", "score", "straight_through", "rebar"]


def emit(case, metric, value, unit, baseline, **extra):
    """ratio = how many times better value is than baseline (rates: value / baseline; times:
    baseline / value)."""
    ratio = value / baseline if unit.endswith("/s") else baseline / value
    print(json.dumps({"bench": "distributed", "case": case, "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": round(baseline, 3), "ratio": round(ratio, 3), **extra}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--draws", type=int, default=20000)
    ap.add_argument("--dp-batches", default="256,1024,4096")
    ap.add_argument("--dp-steps", type=int, default=20)
    a = ap.parse_args()
    if a.tasks % len(ESTIMATORS):
        ap.error(f"--tasks must be a multiple of {len(ESTIMATORS)} (one run per estimator and seed)")
    clients = {n: open_client(workers=n) for n in (1, 2)}
    try:
        for n, (c, _) in clients.items():   # warm: every worker compiles every step once
            sweep("sbn", ESTIMATORS, 1, {"steps": 2}, client=c, progress=False)
            c.run(lambda: None)
        rate = {1: [], 2: []}
        for r in range(a.rounds):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):     # alternate which goes first
                c = clients[n][0]
                t0 = time.perf_counter()
                rows = sweep("sbn", ESTIMATORS, a.tasks // len(ESTIMATORS), {"steps": a.steps}, client=c,
                             progress=False)
                dt = time.perf_counter() - t0
                assert all(r["error"] is None for r in rows), [r["error"] for r in rows]
                rate[n].append(len(rows) / dt)
        emit(f"sbn64-32/{a.tasks} runs x {a.steps} steps", "runs_per_s", float(np.median(rate[2])), "runs/s",
             float(np.median(rate[1])), workers=2, baseline_workers=1, rounds=a.rounds)
        prog = sbn.build().compile(estimators="disarm", samples=1, seed=0)
        data = {"x": sbn.data(seed=0)["train"]["x"][:32]}
        moments(prog, data, 200, client=clients[2][0], progress=False)          # warm the workers
        dr = {"here": [], 2: []}
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            moments(prog, data, a.draws, progress=False, draws_per_task=a.draws // 16)
            dr["here"].append(a.draws / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            moments(prog, data, a.draws, client=clients[2][0], progress=False)
            dr[2].append(a.draws / (time.perf_counter() - t0))
        emit(f"sbn64-32/disarm batch 32/{a.draws} draws", "draws_per_s", float(np.median(dr[2])), "draws/s",
             float(np.median(dr["here"])), workers=2, baseline_is="serial, in this process", rounds=a.rounds)
        data_parallel(clients[2][0], [int(b) for b in a.dp_batches.split(",")], a.dp_steps, a.rounds)
    finally:
        for c, close in clients.values():
            close()


def data_parallel(client, batches, steps, rounds):
    from ppl.training.distributed import fit_data_parallel
    from ppl.training.fit import fit
    from ppl.training.optim import Adam
    X = (np.random.default_rng(0).random((8192, 784)) < 0.3).astype(np.float32)
    prog = sbn.build(pixels=784, latent=(200,)).compile(estimators="disarm", seed=0)
    for B in batches:
        fit_data_parallel(prog, {"x": X}, Adam(1e-3), 2, B, client=client, progress=False)   # warm the workers
        fit(prog, {"x": X}, Adam(1e-3), steps=2, batch_size=B, progress=False)
        t = {"dp": [], "avg": [], "one": [], "all": []}
        for _ in range(rounds):
            h = fit_data_parallel(prog, {"x": X}, Adam(1e-3), steps + 1, B, client=client, progress=False)
            t["dp"].append(h.step_time)
            h = fit_data_parallel(prog, {"x": X}, Adam(1e-3), 5 * steps, B, client=client, average_every=10,
                                  progress=False)
            t["avg"].append(h.step_time)
            for key, threads in (("one", 1), ("all", os.cpu_count())):
                h = fit(prog, {"x": X}, Adam(1e-3), steps=steps + 1, batch_size=B, progress=False, nopython=False,
                        blas_threads=threads)
                t[key].append(h.step_time)
        med = {k: 1e6 * float(np.median(v)) for k, v in t.items()}
        emit(f"sbn784-200/disarm/batch {B}", "us_per_step", med["dp"], "us", med["one"], workers=2,
             baseline_is="fit in this process, 1 BLAS thread", baseline_all_cores=round(med["all"], 1),
             ratio_all_cores=round(med["all"] / med["dp"], 3), rounds=rounds)
        emit(f"sbn784-200/disarm/batch {B}/averaging every 10 steps", "us_per_step", med["avg"], "us", med["one"],
             workers=2, baseline_is="fit in this process, 1 BLAS thread", baseline_all_cores=round(med["all"], 1),
             ratio_all_cores=round(med["all"] / med["avg"], 3), rounds=rounds)


if __name__ == "__main__":
    main()
