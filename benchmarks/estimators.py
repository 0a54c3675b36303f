"""Every estimator on the SBN 64-32 (the core model) at batch 32 on the binarized digits:
gradient variance (sum over all model-parameter entries of the per-entry variance of one
estimate, at the same initial parameters, after `--warmup` steps that tune only each
estimator's own parameters and state: learned baselines, control variates, REBAR's eta and
temperature, running means) and time per step (gradient + Adam, from an @njit
loop), in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/estimators.py [--draws 300]

JSON lines; the baseline of each line is the score function with a moving-average baseline
measured in the same run: ratio = baseline / ours (> 1: less variance / faster).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from ppl import diagnostics  # noqa: E402
from ppl.data import digits  # noqa: E402
from ppl.kernels.cpu import adam_update  # noqa: E402

from sbn_step import build  # noqa: E402

ESTIMATORS = [("score+ma", ("score", {"baseline": "moving_average"})), ("score+learned", ("score", {"baseline": "learned"})),
              ("arm", "arm"), ("disarm", "disarm"), ("rebar", "rebar"), ("relax", "relax"),
              ("straight_through", "straight_through"), ("concrete", "concrete")]


@numba.njit
def steps(entry, n, theta, grad, state, ws2, ws1, inputs, B, m, v):
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(3), t, 1)
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t + 1)


def step_time(prog, x, reps=7, n=200):
    a = prog.args({"x": x})
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    theta0, state0 = prog.theta.copy(), prog.state.copy()
    steps(prog.entry, 2, *a, m, v)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        steps(prog.entry, n, *a, m, v)
        ts.append((time.perf_counter() - t0) / n * 1e6)
    prog.theta[:], prog.state[:] = theta0, state0
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=500)
    args = ap.parse_args()
    x = digits()["train_x"][:32].astype(np.float32)
    specs = [s for _, s in ESTIMATORS]
    stats = diagnostics.gradient_stats(build(), {"x": x}, specs, draws=args.draws, exact=False,
                                         warmup=args.warmup, dtype=np.float32)
    res = {}
    for (label, spec), st in zip(ESTIMATORS, stats):
        prog = build().compile(estimators=spec, dtype=np.float32)
        res[label] = (st.total_variance, step_time(prog, x))
    bv, bt = res["score+ma"]
    for label, (var, us) in res.items():
        for metric, val, base, unit in (("grad_variance", var, bv, "sum of variances"),
                                        ("median_step_us", us, bt, "us")):
            print(json.dumps({"bench": "estimators", "case": f"sbn64-32/batch=32/{label}", "metric": metric,
                              "value": round(val, 4), "unit": unit, "baseline": round(base, 4),
                              "ratio": round(base / val, 3)}), flush=True)


if __name__ == "__main__":
    main()
