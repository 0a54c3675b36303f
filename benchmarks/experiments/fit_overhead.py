"""What `ppl.fit` costs per step over the raw fused step in the user's own @njit loop.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/fit_overhead.py [--rounds 7] [--batches 1,32,256]

The same training (the 64-32 SBN of the digits, float32, Adam, the batches of `fit`) three ways,
alternating in one process, medians of the rounds:
  raw       an @njit loop: gather the batch rows, the step (prog.entry), adam_update
  fit       ppl.fit (its nopython loop; progress bar off)
  fit_py    ppl.fit(nopython=False): one Python call per step (the reference loop)
One JSON line per (estimator, batch, way): value = us per step, baseline = raw, ratio =
value / raw; the "overhead" metric is (fit - raw) / raw (the target: <= 10% at batch 32).
Compile time is kept apart (every way runs once before the rounds).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.data import Batches  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.kernels.cpu.core import adam_update  # noqa: E402
from ppl.models import sbn  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peers
from peers import median_rounds, steps_for  # noqa: E402  (benchmarks/)


@numba.njit
def raw_loop(entry, t0, n, X, rows, theta, grad, state, ws2, ws1, inputs, B, m, v):
    xb = inputs[0]
    for s in range(n):
        for i in range(B):
            r = rows[s * B + i]
            for j in range(X.shape[1]):
                xb[i, j] = X[r, j]
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(0), t0 + s, 1)
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t0 + s + 1)


def emit(case, metric, value, baseline=None, unit="us/step", ratio=None, **extra):
    rec = {"bench": "fit_overhead", "case": case, "metric": metric, "value": round(value, 3), "unit": unit,
           "baseline": None if baseline is None else round(baseline, 3),
           "ratio": None if ratio is None else round(ratio, 3)}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--estimators", default="score,disarm")
    ap.add_argument("--seconds", type=float, default=0.5, help="aim of one timed run")
    args = ap.parse_args()
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    for est in args.estimators.split(","):
        for B in (int(b) for b in args.batches.split(",")):
            prog = sbn.build(latent=(32,)).compile(estimators=est, dtype=np.float32)
            batches = Batches({"x": X}, B, seed=0, dtype=np.float32)
            a = prog.args({"x": np.zeros((B, 64), np.float32)})
            m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
            opt = {"fit": ppl.optim.Adam(1e-3), "fit_py": ppl.optim.Adam(1e-3)}

            def run_raw(n):   # the rows of fit's batches, then one nopython call
                raw_loop(prog.entry, 0, n, X, batches.rows(0, n), *a, m, v)

            def run_fit(n, way):
                fit(prog, {"x": X}, opt[way], steps=n, batch_size=B, progress=False, nopython=(way == "fit"),
                    split_rows=False)

            ways = {"raw": run_raw, "fit": lambda n: run_fit(n, "fit"), "fit_py": lambda n: run_fit(n, "fit_py")}
            for f in ways.values():   # compile everything first
                f(2)
            n = steps_for(run_raw, args.seconds)
            med = median_rounds(ways, n, args.rounds)
            case = f"sbn64-32/{est}/batch={B}"
            emit(case, "raw", med["raw"], steps=n)
            for k in ("fit", "fit_py"):
                emit(case, k, med[k], med["raw"], ratio=med[k] / med["raw"], steps=n)
            emit(case, "overhead", (med["fit"] - med["raw"]) / med["raw"] * 100, unit="%",
                 per_step_us=round(med["fit"] - med["raw"], 3),
                 python_loop_overhead_pct=round((med["fit_py"] - med["raw"]) / med["raw"] * 100, 1))


if __name__ == "__main__":
    main()
