"""The README's main job on a new machine: `ppl train MODEL` with an empty cache folder, wall time,
its new steps' kernels compiled by one process (PPL_COMPILE_JOBS=1, the baseline) against two
(PPL_COMPILE_JOBS=2: a helper process typing the training step from its last kernel call back,
then the evaluation program's, ppl/compiler/ahead.py), alternating in each round; then a second
bundled model on the same cache.

    python benchmarks/cold_start.py [--rounds 2] [--models sbn,gaussian_vae]

JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: value = two processes'
median wall seconds, baseline = one process's, ratio = baseline / value (> 1: faster).
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


def run(model: str, cache: str, jobs: int) -> float:
    env = {**os.environ, "PPL_CACHE_DIR": cache, "PPL_COMPILE_JOBS": str(jobs)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ppl.cli", "train", model, "--quiet"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="sbn,gaussian_vae", help="the first runs cold, the rest on its cache")
    args = ap.parse_args()
    models = args.models.split(",")
    walls = {(m, j): [] for m in models for j in (1, 2)}
    for _ in range(args.rounds):
        for jobs in (1, 2):
            cache = tempfile.mkdtemp(prefix="ppl_cold_")
            try:
                for m in models:
                    walls[m, jobs].append(run(m, cache, jobs))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    for i, m in enumerate(models):
        one, two = statistics.median(walls[m, 1]), statistics.median(walls[m, 2])
        print(json.dumps({"bench": "cold_start", "case": m if i == 0 else f"{m} after {models[0]}",
                          "metric": "wall_s", "value": round(two, 2), "unit": "s", "baseline": round(one, 2),
                          "ratio": round(one / two, 3), "runs_1": [round(w, 2) for w in walls[m, 1]],
                          "runs_2": [round(w, 2) for w in walls[m, 2]], "load": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
