"""The kernels' LLVM module optimisation run once against twice (`kernels/_link.KERNEL_PASSES`):
the cold compile it costs and the step time it buys in the process that compiled the kernels.

    python benchmarks/experiments/kernel_passes.py [--rounds 3] [--steps 2000] [--cases sbn|vaes|all]
        [--variant-passes 1] [--no-function-passes] [--variant-if-scalar]

Each run is a fresh process with an empty cache folder (`PPL_COMPILE_JOBS=1`: no compile helper,
`OPENBLAS_NUM_THREADS=1`) that trains the 64-32 SBN of the digits at batch 32, float32, Adam 1e-3,
with score (moving average), DisARM, fixed REBAR, REBAR with its defaults and straight-through in
turn: the first estimator also compiles the kernels the others share. Per estimator it records
the first step's wall time (the compile) and `fit(nopython=True)`'s us per step in that same
process (median of 3 fits). Runs alternate 2 passes (the baseline) and the variant: 1 pass, or
`--variant-passes N`, with `--no-function-passes` also without the per-function passes that run
before a kernel's callees are linked in (`_link.KERNEL_FUNCTION_PASSES`), or `--variant-if-scalar`:
two passes, the second only where the first left no float vector code (the baseline then runs
both always, `_link.SECOND_PASS_IF_SCALAR = False`); medians over rounds.
One JSON line per estimator and metric: value = the variant, baseline = 2 passes, ratio = value /
baseline.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # benchmarks/: jax_peers
SBN = ["sbn64-32/" + e for e in ("score", "disarm", "rebar", "rebar_default", "straight_through")]
VAES = ["gaussian_vae/pathwise", "categorical_vae/score", "categorical_vae/rebar", "categorical_vae/gumbel_rao",
        "categorical_vae/cat_disarm"]

CHILD = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, {here!r})
import jax_peers as jp
import ppl
from ppl.kernels import _link
from ppl.training.fit import fit
_link.KERNEL_PASSES = {passes}
_link.KERNEL_FUNCTION_PASSES = {fn}
_link.SECOND_PASS_IF_SCALAR = {if_scalar}
from ppl.models import get
out = {{}}
for case in {ests!r}:
    model, est = case.split("/")
    if model == "sbn64-32":
        X = jp.case_data("sbn64-32")
        prog = jp.build("sbn64-32").compile(estimators=jp.ESTIMATORS[est], dtype=np.float32)
    else:
        X = get(model).data()["train"]["x"]
        prog = get(model).build().compile(estimators=est, dtype=np.float32)
    opt = ppl.optim.Adam(jp.LR)
    t0 = time.perf_counter()
    fit(prog, {{"x": X}}, opt, steps=1, batch_size=32, progress=False, nopython=True)
    first = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fit(prog, {{"x": X}}, opt, steps={steps}, batch_size=32, progress=False, nopython=True)
        times.append((time.perf_counter() - t0) / {steps} * 1e6)
    out[case] = (first, float(np.median(times)))
print(json.dumps(out))
"""


def run(passes, steps, cases, fn=True, if_scalar=False):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PPL_CACHE_DIR=cache, PPL_COMPILE_JOBS="1", OPENBLAS_NUM_THREADS="1")
        code = CHILD.format(here=HERE, passes=passes, fn=fn, ests=cases, steps=steps, if_scalar=if_scalar)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--cases", choices=("sbn", "vaes", "all"), default="sbn")
    ap.add_argument("--no-function-passes", action="store_true",
                    help="the variant's runs also skip the per-function passes (KERNEL_FUNCTION_PASSES)")
    ap.add_argument("--variant-passes", type=int, default=1, help="the variant's module passes (default 1)")
    ap.add_argument("--variant-if-scalar", action="store_true",
                    help="the variant: 2 passes, the second only where the first left no float vector code "
                         "(_link.SECOND_PASS_IF_SCALAR); the baseline runs both always")
    args = ap.parse_args()
    cases = {"sbn": SBN, "vaes": VAES, "all": SBN + VAES}[args.cases]
    got = {1: [], 2: []}
    for _ in range(args.rounds):
        for passes in (2, 1):
            if passes == 2:
                got[2].append(run(2, args.steps, cases))
            elif args.variant_if_scalar:
                got[1].append(run(2, args.steps, cases, if_scalar=True))
            else:
                got[1].append(run(args.variant_passes, args.steps, cases, fn=not args.no_function_passes))
    for est in cases:
        for j, (metric, unit) in enumerate((("first_step_s", "s"), ("us_per_step", "us"))):
            one = float(np.median([r[est][j] for r in got[1]]))
            two = float(np.median([r[est][j] for r in got[2]]))
            print(json.dumps({"bench": "kernel_passes", "case": f"{est}/batch=32", "metric": metric,
                              "value": round(one, 3 if unit == "s" else 2), "unit": unit,
                              "baseline": round(two, 3 if unit == "s" else 2), "ratio": round(one / two, 3),
                              "each_1": [round(r[est][j], 3) for r in got[1]],
                              "each_2": [round(r[est][j], 3) for r in got[2]]}), flush=True)


if __name__ == "__main__":
    main()
