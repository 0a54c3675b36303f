"""Where a generated step's time goes: every kernel call of the 64-32 SBN's step timed alone, in
a loop of N calls inside @njit, on the step's own arrays (after one real step), and the whole step
in the same kind of loop (one real step before each timed loop restores the buffers that
accumulating calls grew, e.g. the totals the bound reads). Kernel-level: the calls run hot in L1, so their sum is below the whole
step (the difference: the step's buffers streaming through the cache, its views and calls).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/step_profile.py [--batch 32] [--estimator vimco]
        [--samples 5] [--rounds 5] [--calls 2000] [--parts 2]

--estimator vimco / local_disarm compile objective="iwae"; others the ELBO. One JSON line per call
(us per call, median of the rounds), then the sum and the whole step.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ppl.models import sbn  # noqa: E402
from ppl.targets import CPU_MODULES  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peers, jax_peers
from peers import build_sbn  # noqa: E402  (benchmarks/)

IWAE = ("vimco", "local_disarm", "local_arm")


def emit(case, call, us):
    print(json.dumps({"bench": "step_profile", "case": case, "call": call, "value": round(us, 3),
                      "unit": "us/call"}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--estimator", default="vimco")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--parts", type=int, default=1,
                    help="ppl's own parts of the products (kernels/native/parts.py), their ways measured first")
    ap.add_argument("--case", default="sbn64-32", choices=("sbn64-32", "sbn784-200", "sbn784-200-200"),
                    help="the 784-pixel cases: jax_peers.py's models and timing stand-in")
    args = ap.parse_args()
    est = ("rebar", {"train": False}) if args.estimator == "rebar_fixed" else args.estimator
    opts = dict(estimators=est, samples=args.samples, dtype=np.float32)
    if args.estimator in IWAE:
        opts["objective"] = "iwae"
    if args.case == "sbn64-32":
        prog = build_sbn().compile(**opts)
        X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    else:
        from jax_peers import build, digits784   # noqa: E402  (benchmarks/)
        prog = build(args.case).compile(**opts)
        X = digits784()
    a = prog.args({"x": X[:args.batch]})
    prog.entry(*a, np.uint64(1), np.int64(0), 1)   # every buffer holds a real step's values
    src = prog.source
    body = re.search(r"def step\(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode\):\n(.*?)\n\n\n",
                     src, re.S).group(1).split("\n")
    kernel = "(?:" + "|".join(CPU_MODULES) + r")\."   # a kernel call: the step's module names
    first = next(i for i, ln in enumerate(body) if re.match(r"    (loss = )?" + kernel, ln))
    head = [ln for ln in body[:first] if not ln.startswith(("    #", "    if theta", "        "))]   # the unpacking
    calls = [ln.strip().replace("loss = ", "") for ln in body if re.match(r"    (loss = )?" + kernel, ln)]
    sig = "theta, grad, state, ws2, ws1, inputs, B, seed, t, mode, N"
    fns = [f"@njit\ndef f{j}({sig}):\n    row0 = 0\n" + "\n".join(head)
           + f"\n    for it in range(N):\n        {c}\n    return 0\n" for j, c in enumerate(calls)]
    ns = {}
    exec(src[:src.index("@njit")] + "\n\n".join(fns), ns)   # the step module's own header
    ns_full = {"STEP": prog.entry, "njit": ns["njit"]}
    exec(f"@njit\ndef full({sig}):\n    s = 0.0\n    for it in range(N):\n"
         f"        s += STEP(theta, grad, state, ws2, ws1, inputs, B, seed, t + it, mode)\n    return s\n", ns_full)
    run = list(a) + [np.uint64(1), np.int64(0), 1]
    fs = [(c, ns[f"f{j}"]) for j, c in enumerate(calls)] + [("whole step", ns_full["full"])]
    if args.parts > 1:
        from ppl.kernels.cpu import part_kernels
        part_kernels.use(args.parts, dtypes=("float32",))
        ns_full["full"](*run, 1)
        part_kernels.calibrate("float32")
    for _, f in fs:
        f(*run, 1)
    times = {c: [] for c, _ in fs}
    for _ in range(args.rounds):   # alternating: every call once per round
        for c, f in fs:
            prog.entry(*a, np.uint64(1), np.int64(0), 1)   # undo what earlier loops accumulated (tot_, ...)
            t0 = time.perf_counter()
            f(*run, args.calls)
            times[c].append((time.perf_counter() - t0) / args.calls * 1e6)
    case = f"{args.case}/{args.estimator}/K={args.samples}/batch={args.batch}" + (f"/parts={args.parts}" if args.parts > 1 else "")
    med = {c: float(np.median(v)) for c, v in times.items()}
    for c in calls:
        emit(case, c, med[c])
    emit(case, "sum of the calls", sum(med[c] for c in calls))
    emit(case, "whole step", med["whole step"])


if __name__ == "__main__":
    main()
