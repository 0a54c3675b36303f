"""What computing each layer once per class of equal rows buys (ppl.lowering.rows.plan_rows):
the gradient step of the paper-scale SBNs with the merge against the layout before it (only the
data-row sub-graph on one row per data row: every estimator's `shares_rows` off), both compiled
in this process and timed in alternating rounds (medians of N steps each), float32, batch 50,
the 784-pixel stand-in data of jax_peers.py.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/row_classes.py [--cases sbn784-200-200,sbn784-200]
        [--estimators rebar_fixed,rebar,disarm,straight_through,score] [--rounds 7] [--steps 20]

One JSON line per case and estimator: the merged step (value) against the unmerged one
(baseline), ratio = baseline / value (> 1: the merge is faster), and the rows each layout
evaluates per data row for the widest product (the x-decoder).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ppl.estimators import REGISTRY  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: jax_peers
from jax_peers import build, digits784  # noqa: E402  (benchmarks/)


def compiled(case, est, merge):
    shares = {k: e.shares_rows for k, e in REGISTRY.items()}
    try:
        if not merge:
            for e in REGISTRY.values():
                e.shares_rows = False
        opts = ("rebar", {"train": False}) if est == "rebar_fixed" else est
        return build(case).compile(estimators=opts, samples=1, dtype=np.float32)
    finally:
        for k, e in REGISTRY.items():
            e.shares_rows = shares[k]


def decoder_rows(prog):
    """Rows per data row of the widest layer's values (the x-decoder's logits)."""
    _, (_, _, rows) = max(((n, v) for n, v in prog.layout.values.items() if v[0] == "ws2"),
                          key=lambda nv: prog.model.nodes[nv[0]].width)
    return max(rows) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="sbn784-200-200,sbn784-200")
    ap.add_argument("--estimators", default="rebar_fixed,rebar,disarm,straight_through,score")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    X = digits784()[:args.batch]
    for case in args.cases.split(","):
        for est in args.estimators.split(","):
            progs = {}
            for merge in (False, True):
                p = compiled(case, est, merge)
                a = p.args({"x": X})
                p.entry(*a, np.uint64(1), np.int64(0), 1)   # compiled and warm
                progs[merge] = (p, a)
            times = {False: [], True: []}
            for _ in range(args.rounds):
                for merge in (False, True):
                    p, a = progs[merge]
                    t0 = time.perf_counter()
                    for t in range(args.steps):
                        p.entry(*a, np.uint64(1), np.int64(t), 1)
                    times[merge].append((time.perf_counter() - t0) / args.steps * 1e6)
            new, old = float(np.median(times[True])), float(np.median(times[False]))
            print(json.dumps({"bench": "row_classes", "case": f"{case}/{est}/batch={args.batch}",
                              "metric": "step", "value": round(new, 1), "unit": "us",
                              "baseline": round(old, 1), "ratio": round(old / new, 3),
                              "decoder_rows": [decoder_rows(progs[False][0]), decoder_rows(progs[True][0])],
                              "rows_per_data_row": progs[True][0].rows_per_data_row}), flush=True)


if __name__ == "__main__":
    main()
