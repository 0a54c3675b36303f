"""Policy "autotune" on the two-layer SBN: wall time of the whole compile(policy="autotune") and
the choice per node, run after run, each run in a fresh process.

A run is "cold" (cache=False: every candidate step compiled anew, as for a graph the user has
just written; the kernel modules come from their cache, warmed by a first process) or "warm"
(the candidates' steps in the on-disk cache of an earlier run). JSON lines:
  {"latent": [200, 200], "mode": "cold", "run": 0, "seconds": ..., "choice": {"h1": ..., "h2": ...},
   "table": [[node, estimator, variance, rows, us_per_step, chosen], ...]}
then one summary line per (latent, mode): median seconds, the target (15 s) and whether every
run chose the same.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/autotune.py [--latent 200,200] [--runs 3] [--modes cold,warm]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

TARGET_S = 15.0

RUN = r"""
import json, sys, time
import ppl                                   # before numpy: ppl sets BLAS to one thread
import numpy as np
from ppl.models import sbn
latent, cache = tuple(json.loads(sys.argv[1])), sys.argv[2] == "warm"
m = sbn.build(latent=latent)
x = sbn.data()["train"]["x"][:sbn.DEFAULTS["batch"]]
t0 = time.perf_counter()
prog = m.compile(policy="autotune", pilot={"x": x}, samples=sbn.DEFAULTS["samples"], cache=cache)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": round(dt, 2), "choice": {n.name: ch.estimator for n, (ch, _) in prog.choices.items()},
                  "table": [[r["node"], r["estimator"], r["variance"], r["rows"], round(r["us_per_step"], 1), r["chosen"]]
                            for r in prog.autotune_table if r["rows"]]}))
"""


def run(latent, mode):
    out = subprocess.run([sys.executable, "-c", RUN, json.dumps(latent), mode], capture_output=True, text=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latent", default="200,200", help="units per layer (default 200,200)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="cold,warm")
    a = ap.parse_args()
    latent = [int(v) for v in a.latent.split(",")]
    run(latent, "warm")                           # kernels and the candidates' steps into the caches
    for mode in a.modes.split(","):
        rows = []
        for i in range(a.runs):
            r = {"latent": latent, "mode": mode, "run": i, **run(latent, mode)}
            rows.append(r)
            print(json.dumps(r), flush=True)
        secs = sorted(r["seconds"] for r in rows)
        same = all(r["choice"] == rows[0]["choice"] for r in rows)
        print(json.dumps({"latent": latent, "mode": mode, "metric": "autotune_seconds", "median": secs[len(secs) // 2],
                          "max": secs[-1], "baseline": TARGET_S, "ratio": round(secs[len(secs) // 2] / TARGET_S, 3),
                          "same_choice_every_run": same}), flush=True)


if __name__ == "__main__":
    main()
