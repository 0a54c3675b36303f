"""`ppl.fit` with each batch's two halves at once on two threads (`split_rows=True`) against the
same fit on one thread (`split_rows=False`): the 64-32 SBN of the digits, float32, Adam, BLAS at
one thread, the nopython loop.

    python benchmarks/experiments/split_batch.py [--rounds 5] [--batches 64,128,256] [--estimators ...]

Each (way, estimator, batch) is timed in a process of its own, the ways alternating round by
round: in one process the OpenMP workers a split fit leaves spinning would slow the unsplit fit
timed next. One JSON line per (estimator, batch): value = split (us per step), baseline =
unsplit, ratio = baseline / value (> 1: the split is faster); the calibration line first
(split_rows.py's exp loop: what the machine's second core gives at that moment).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ESTIMATORS = {"straight_through": "straight_through", "score": "score", "disarm": "disarm",
              "rebar": ("rebar", {"train": False})}


def time_fit(est, B, split, seconds=0.4):
    """us per step of ppl.fit, best of three runs (the first call compiles)."""
    import ppl
    from ppl.training.fit import fit
    from ppl.models import sbn
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    prog = sbn.build(latent=(32,)).compile(estimators=ESTIMATORS[est], dtype=np.float32)

    def run(n):
        t0 = time.perf_counter()
        fit(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=n, batch_size=B, progress=False, nopython=True,
            blas_threads=1, split_rows=split)
        return time.perf_counter() - t0
    run(20)
    n = max(50, int(100 * seconds / run(100)))
    return min(run(n) for _ in range(3)) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="64,128,256")
    ap.add_argument("--estimators", default=",".join(ESTIMATORS))
    ap.add_argument("--way", default=None, help=argparse.SUPPRESS)   # a worker: "est,B,split"
    args = ap.parse_args()
    if args.way:
        est, B, split = args.way.split(",")
        print(json.dumps(time_fit(est, int(B), split == "1")))
        return
    from split_rows import calibrate   # noqa: E402  (benchmarks/experiments/, the script's folder)
    calibrate(args.rounds)
    for est in args.estimators.split(","):
        for B in (int(b) for b in args.batches.split(",")):
            times = {0: [], 1: []}
            for _ in range(args.rounds):
                for split in (0, 1):
                    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--way", f"{est},{B},{split}"],
                                         capture_output=True, text=True, check=True).stdout
                    times[split].append(json.loads(out.strip().splitlines()[-1]))
            one, two = (float(np.median(times[k])) for k in (0, 1))
            print(json.dumps({"bench": "split_batch", "case": f"sbn64-32/{est}/batch={B}", "metric": "us_per_step",
                              "value": round(two, 2), "unit": "us/step", "baseline": round(one, 2),
                              "ratio": round(one / two, 3), "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
