"""`ppl.fit` with no options against `nopython=True` per step, in a process whose disk cache is
warm (the loop for the step's signature compiled or loaded before the rounds): the <= 15% target.

    python benchmarks/fit_defaults.py [--steps 3000] [--rounds 9]

Cases: the 64-32 SBN of the digits (DisARM at batch 32, straight-through at batch 1) and the
784-200 SBN on the MNIST digits (score, straight-through, DisARM at batch 50), float32, Adam 1e-3.
Each round runs both ways, alternating; medians. One JSON line per case: value = the defaults'
us per step, baseline = nopython=True's, ratio = value / baseline. OPENBLAS_NUM_THREADS is left
unset: fit's defaults choose the threads (nopython=True leaves them to fit's defaults too).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax_peers as jp  # noqa: E402  (benchmarks/: the cases and their estimators)
import ppl  # noqa: E402
from ppl.training.fit import fit  # noqa: E402

CASES = [("sbn64-32", 32, "disarm"), ("sbn64-32", 1, "straight_through"), ("sbn784-200", 50, "score"),
         ("sbn784-200", 50, "straight_through"), ("sbn784-200", 50, "disarm")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    for case, B, est in CASES:
        X = jp.case_data(case)
        prog = jp.build(case).compile(estimators=jp.ESTIMATORS[est], dtype=np.float32)
        opt = ppl.optim.Adam(jp.LR)
        fit(prog, {"x": X}, opt, steps=20, batch_size=B, progress=False, nopython=True)   # the loop, compiled or loaded
        times = {"defaults": [], "nopython": []}
        for _ in range(args.rounds):
            for way in times:
                t0 = time.perf_counter()
                fit(prog, {"x": X}, opt, steps=args.steps, batch_size=B, progress=False,
                    **({"nopython": True} if way == "nopython" else {}))
                times[way].append((time.perf_counter() - t0) / args.steps * 1e6)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(json.dumps({"bench": "fit_defaults", "case": f"{case}/{est}/batch={B}", "metric": "us_per_step",
                          "value": round(med["defaults"], 2), "unit": "us", "baseline": round(med["nopython"], 2),
                          "ratio": round(med["defaults"] / med["nopython"], 3), "steps": args.steps,
                          "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
