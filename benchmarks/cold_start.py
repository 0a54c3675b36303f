"""The README's main job on a new machine: `ppl train MODEL` with an empty cache folder, wall time;
then a second bundled model on the same cache, and the first model again (warm).

Two ways alternate in each round, each with a cache folder of its own:
- by default, the new steps' kernels compiled by one process (PPL_COMPILE_JOBS=1, the baseline)
  against two (PPL_COMPILE_JOBS=2: a helper process typing the training step from its last kernel
  call back, then the evaluation program's, ppl/compiler/ahead.py);
- with `--against PYTHON`, another installation of ppl (the interpreter of its environment, e.g. an
  older commit's, the baseline) against this one, both with their defaults (nothing set).

    python benchmarks/cold_start.py [--rounds 2] [--models sbn,gaussian_vae] [--against PYTHON]

JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: value = this way's median
wall seconds, baseline = the baseline way's, ratio = baseline / value (> 1: faster).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(python: str, model: str, cache: str, jobs: int | None) -> float:
    env = {**os.environ, "PPL_CACHE_DIR": cache}
    env.pop("PPL_COMPILE_JOBS", None)
    if jobs is not None:
        env["PPL_COMPILE_JOBS"] = str(jobs)
    t0 = time.perf_counter()
    # run in the cache folder: `-m` puts the working directory first on sys.path, and a source tree
    # there would shadow the installation asked for
    subprocess.run([python, "-m", "ppl.cli", "train", model, "--quiet"], env=env, check=True, cwd=cache,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="sbn,gaussian_vae", help="the first runs cold, the rest on its cache")
    ap.add_argument("--against", metavar="PYTHON", help="the baseline: another environment's interpreter")
    args = ap.parse_args()
    models = args.models.split(",")
    if args.against:
        ways = {"baseline": (args.against, None), "value": (sys.executable, None)}
    else:
        ways = {"baseline": (sys.executable, 1), "value": (sys.executable, 2)}
    # the runs of each way: the models in turn on an empty cache folder, then the first one warm
    steps = [(m, m if i == 0 else f"{m} after {models[0]}") for i, m in enumerate(models)]
    steps.append((models[0], f"{models[0]} warm"))
    walls = {(case, way): [] for _, case in steps for way in ways}
    for _ in range(args.rounds):
        for way, (python, jobs) in ways.items():
            cache = tempfile.mkdtemp(prefix="ppl_cold_")
            try:
                for m, case in steps:
                    walls[case, way].append(run(python, m, cache, jobs))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    for _, case in steps:
        base, value = (statistics.median(walls[case, w]) for w in ("baseline", "value"))
        print(json.dumps({"bench": "cold_start", "case": case, "metric": "wall_s", "value": round(value, 2),
                          "unit": "s", "baseline": round(base, 2), "ratio": round(base / value, 3),
                          "runs_baseline": [round(w, 2) for w in walls[case, "baseline"]],
                          "runs_value": [round(w, 2) for w in walls[case, "value"]],
                          "load": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
