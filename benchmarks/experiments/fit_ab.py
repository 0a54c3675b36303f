"""`ppl.fit` with its defaults (the threads it chooses itself), two builds of ppl, timed in turns:
the paper-scale SBN of benchmarks/jax_peers.py on the 784-pixel digits, each fit in a fresh
process of each side's own Python (its own install), 200 untimed steps and then `--steps` timed
ones twice (the better counts), the sides alternating round by round. For a change to fit's
parallel setting, whose choice is made while the run goes.

    env -u OPENBLAS_NUM_THREADS python benchmarks/experiments/fit_ab.py --old-python OLD/.venv/bin/python \
        [--cases straight_through:200,score:200,disarm:200,straight_through:200-200] [--rounds 2] [--steps 3000]

A case is ESTIMATOR:LATENT (layer widths, "-" between layers; `rebar`: REBAR with eta and the
temperature fixed). JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: value =
this Python's median us per step over the rounds, baseline = the old Python's, ratio = value /
baseline (< 1: faster now); the rounds' figures ride along.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import sys, time
import ppl
import numpy as np
from ppl.models import sbn
from ppl.training.fit import fit
sys.path.insert(0, BENCH)
from jax_peers import digits784
X = np.ascontiguousarray(digits784(), np.float32)
est, latent, steps = sys.argv[1], tuple(int(v) for v in sys.argv[2].split("-")), int(sys.argv[3])
prog = sbn.build(latent=latent, pixels=784).compile(
    estimators=("rebar", {"train": False}) if est == "rebar" else est, dtype=np.float32, seed=1)
opt = ppl.optim.Adam(1e-3)
fit(prog, {"x": X}, opt, steps=200, batch_size=50, progress=False)
best = float("inf")
for _ in range(2):
    time.sleep(0.3)   # a thread pool of the run before goes to sleep
    t = time.perf_counter()
    fit(prog, {"x": X}, opt, steps=steps, batch_size=50, progress=False)
    best = min(best, (time.perf_counter() - t) / steps * 1e6)
print(best)
'''


def run(python, case, steps):
    est, latent = case.split(":")
    bench = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")}
    out = subprocess.run([python, "-c", CHILD.replace("BENCH", repr(bench)), est, latent, str(steps)],
                         capture_output=True, text=True, check=True, env=env,
                         cwd=tempfile.gettempdir())   # not a checkout: `python -c` imports from its folder
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-python", required=True)
    ap.add_argument("--cases", default="straight_through:200,score:200,disarm:200,straight_through:200-200")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    sides = {"new": sys.executable, "old": args.old_python}
    times = {(c, s): [] for c in args.cases.split(",") for s in sides}
    for _ in range(args.rounds):
        for case in args.cases.split(","):
            for side, python in sides.items():
                times[(case, side)].append(run(python, case, args.steps))
    for case in args.cases.split(","):
        new, old = (statistics.median(times[(case, s)]) for s in ("new", "old"))
        print(json.dumps({"bench": "fit_ab", "case": case, "metric": "us_per_step", "value": round(new, 1),
                          "unit": "us/step", "baseline": round(old, 1), "ratio": round(new / old, 3),
                          "rounds_new": [round(v, 1) for v in times[(case, "new")]],
                          "rounds_old": [round(v, 1) for v in times[(case, "old")]]}), flush=True)


if __name__ == "__main__":
    main()
