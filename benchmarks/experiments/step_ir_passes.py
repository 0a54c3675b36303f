"""The compiler's passes (Python only: analyse ... render) of this tree against another checkout of
ppl, alternating, in fresh processes: what the step IR's records cost or save at compile time.

Each process imports ppl from the tree given (PYTHONPATH), builds every bundled model and the
golden graphs under each policy and a set of estimators (tests/golden.py's cases that render), and
reports the passes' total time and `import ppl`; the step sources are compared by hash, so equal
hashes mean the steps Numba compiles (and runs) are the same. JSON lines: per tree the median
over --rounds of each metric; `ratio` is this tree's over the other's.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/step_ir_passes.py --other ../old-checkout [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import hashlib, json, sys, time
t0 = time.perf_counter()
import ppl
t_import = time.perf_counter() - t0
sys.path.insert(0, sys.argv[1] + "/tests")
import golden
cases = dict(golden.cases())
if hasattr(golden, "unrecorded_calls"):   # time the passes alone: compiler.generate_source, not golden's check
    from ppl.compiler.pipeline import generate_source
    golden.generate_source = generate_source
names = sorted(cases)
h = hashlib.sha256()
t1 = time.perf_counter()
for name in names:
    try:
        src = cases[name]()
    except ppl.ModelError as e:
        src = "refused"
    h.update(golden.canonical(src).encode() if src != "refused" else b"refused")
t2 = time.perf_counter()
print(json.dumps({"import_s": t_import, "passes_s": t2 - t1, "cases": len(names), "sources": h.hexdigest()[:16]}))
"""


def run(tree: str, tests_of: str) -> dict:
    env = dict(os.environ, PYTHONPATH=tree, NUMBA_ENABLE_CUDASIM="1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    out = subprocess.run([sys.executable, "-c", CHILD, tests_of], env=env, capture_output=True, text=True,
                         check=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, help="a checkout of ppl to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    other = os.path.abspath(args.other)
    trees = {"this": HERE, "other": other}
    got = {k: [] for k in trees}
    for r in range(args.rounds):   # alternate, the order swapped each round
        for k in (("this", "other") if r % 2 == 0 else ("other", "this")):
            got[k].append(run(trees[k], trees[k]))   # each tree with its own tests/golden.py (the same cases)
    sources = {k: {x["sources"] for x in v} for k, v in got.items()}
    for metric in ("passes_s", "import_s"):
        this, base = (statistics.median(x[metric] for x in got[k]) for k in ("this", "other"))
        print(json.dumps({"bench": "step_ir_passes", "metric": metric, "value": round(this, 4), "unit": "s",
                          "baseline": round(base, 4), "ratio": round(this / base, 3), "cases": got["this"][0]["cases"],
                          "same_sources": sources["this"] == sources["other"] and len(sources["this"]) == 1}),
              flush=True)


if __name__ == "__main__":
    main()
