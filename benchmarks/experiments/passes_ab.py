"""The compiler's passes (compiler.PASSES: analyse ... render, Python only) of two source trees,
timed in turns: for a change that leaves every generated step the same (the golden sources), the
passes are all of a new graph's first step that can move. Each round runs one fresh process per
tree (the tree's ppl first on the path, the same Python and kernels), which builds each case
anew under new names and times run_passes on it (the median of its later builds: the first
pays the imports).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/passes_ab.py --old-tree OLD [--rounds 3]

JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: value = this tree's median
ms over rounds, baseline = the old tree's, ratio = value / baseline (< 1: faster now).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = {"sbn": ("sbn", {}, {"samples": 4}),
         "sbn_2layer_nl": ("sbn", {"latent": (32, 32), "nonlinear": True}, {}),
         "sbn_disarm": ("sbn", {"latent": (32, 16)}, {"estimators": "disarm", "samples": 2}),
         "gaussian_vae": ("gaussian_vae", {}, {}),
         "toy_bernoulli (row-fused)": ("toy_bernoulli", {}, {"dtype": "float64"})}

WORKER = r'''
import json, sys, time
import numpy as np
import ppl
from ppl.compiler.pipeline import Compilation, run_passes
from ppl.compiler.options import CompileOptions
from ppl.models import get
cases, builds = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for name, (mod, b, c) in cases.items():
    if "dtype" in c:
        c["dtype"] = np.dtype(c["dtype"])
    if "latent" in b:
        b["latent"] = tuple(b["latent"])
    ts = []
    for k in range(builds):
        m = get(mod).build(**b)
        m.name = f"{m.name}_ab{k}"
        t = time.perf_counter()
        run_passes(Compilation(m, CompileOptions(**c)))
        ts.append(time.perf_counter() - t)
    out[name] = sorted(ts[1:])[(builds - 1) // 2]
print(json.dumps(out))
'''


def run(tree: str, builds: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", WORKER, json.dumps(CASES), str(builds)], env=env,
                         capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-tree", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--builds", type=int, default=7)
    a = ap.parse_args()
    new, old = {k: [] for k in CASES}, {k: [] for k in CASES}
    for r in range(a.rounds):   # in turns, each tree first in every other round
        order = [(HERE, new), (a.old_tree, old)] if r % 2 else [(a.old_tree, old), (HERE, new)]
        for tree, into in order:
            for k, v in run(tree, a.builds).items():
                into[k].append(v)
    for k in CASES:
        v, b = statistics.median(new[k]) * 1e3, statistics.median(old[k]) * 1e3
        print(json.dumps({"bench": "passes_ab", "case": k, "metric": "passes_ms", "value": round(v, 3),
                          "unit": "ms", "baseline": round(b, 3), "ratio": round(v / b, 3)}))


if __name__ == "__main__":
    main()
