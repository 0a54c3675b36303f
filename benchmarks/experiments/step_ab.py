"""One step, two builds of ppl, timed in turns: each side is a long-lived worker process (its own
Python, so its own install and cache) that compiles a step once (the 64-32 SBN's, or with
`--model toy` the REBAR toy's: one Bernoulli unit, the row-fused lowering) and then times
N calls of it whenever asked; the controller asks the two in turn, many short rounds, so a noisy
shared machine slows both alike. For "step times within 5% of before" between two commits.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/step_ab.py --old-python OLD/.venv/bin/python \
        [--old-cache DIR] [--old-tree OLD] [--estimators disarm,rebar,score,reinmax,vimco] [--rounds 31]
        [--model sbn|toy|MODEL] [--dtype float32|float64]

The SBN is each side's own `benchmarks/peers.build_sbn` (--old-tree: the old checkout); the toy is
`ppl.models.toy_bernoulli` at batch 1; any other name, that bundled model (`--estimators auto`: its
rule table's choice) on its training data's first rows; `first_script:poisson` (or `:coin`), that
script of benchmarks/first_script.py up to its fit, its model on the first rows of its data.

JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: value = this Python's
median us per step, baseline = the old Python's, ratio = value / baseline (< 1: faster now).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

IWAE = ("vimco", "local_disarm", "local_arm")


def serve(estimator: str, samples: int, batch: int, bench_dir: str, model: str = "sbn", dtype: str = "float32"):
    """The worker: compile the step and a loop of it, then time `N` calls per line of stdin."""
    sys.path.insert(0, bench_dir)   # its own tree's benchmarks/, for peers
    import numpy as np
    from numba import njit
    opts = dict(estimators=estimator, samples=samples, dtype=np.dtype(dtype).type)
    if estimator in IWAE:
        opts["objective"] = "iwae"
    if model == "toy":
        from ppl.models import toy_bernoulli
        prog = toy_bernoulli.build(t=0.45, theta0=0.0).compile(**opts)
        a = prog.args(batch=batch)
    elif model.startswith("first_script:"):   # a script of benchmarks/first_script.py up to its fit: its model `m`
        import first_script                       # on the first rows of the arrays named as its inputs
        ns = {}
        exec(getattr(first_script, model.split(":")[1].upper()).split("ppl.fit(")[0], ns)
        prog = ns["m"].compile(**{**opts, "estimators": "auto" if estimator == "auto" else estimator,
                                  "policy": "rules"})
        a = prog.args({k: np.ascontiguousarray(ns[k][:batch], dtype) for k in prog.layout.inputs})
    elif model != "sbn":   # a bundled model on its own data, policy "rules" (one program, its rule table's choice)
        from ppl.models import get
        mod = get(model)
        data = mod.data(0)["train"]
        prog = mod.build().compile(**{**opts, "estimators": "auto" if estimator == "auto" else estimator,
                                      "policy": "rules"})
        a = prog.args({k: np.ascontiguousarray(v[:batch], dtype) for k, v in data.items()})
    else:
        from ppl.models import sbn
        from peers import build_sbn
        prog = build_sbn().compile(**opts)
        x = np.ascontiguousarray(sbn.data()["train"]["x"][:batch], dtype)
        a = prog.args({"x": x})
    step = prog.entry

    @njit
    def loop(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode, n):
        s = 0.0
        for it in range(n):
            s += step(theta, grad, state, ws2, ws1, inputs, B, seed, t + it, mode)
        return s

    run = (*a, np.uint64(1), np.int64(0), 1)
    loop(*run, 1)
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        step(*a, np.uint64(1), np.int64(0), 1)   # the buffers a real step leaves
        t0 = time.perf_counter()
        loop(*run, n)
        print((time.perf_counter() - t0) / n * 1e6, flush=True)


def start(python: str, cache: str | None, tree: str, estimator: str, samples: int, batch: int, model: str,
          dtype: str):
    env = dict(os.environ)
    if cache:
        env["PPL_CACHE_DIR"] = cache
    p = subprocess.Popen([python, __file__, "--serve", estimator, "--samples", str(samples), "--batch", str(batch),
                          "--bench-dir", os.path.join(tree, "benchmarks"), "--model", model, "--dtype", dtype],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{python}: the worker did not start")
    return p


def ask(p, calls: int) -> float:
    p.stdin.write(f"{calls}\n")
    p.stdin.flush()
    return float(p.stdout.readline())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", metavar="ESTIMATOR", help=argparse.SUPPRESS)
    ap.add_argument("--old-python", help="the Python of the other build (its venv)")
    ap.add_argument("--old-cache", default=None, help="that build's PPL_CACHE_DIR")
    ap.add_argument("--old-tree", default=None, help="that build's checkout (default: the Python's venv's parent)")
    ap.add_argument("--bench-dir", help=argparse.SUPPRESS)
    ap.add_argument("--estimators", default="disarm,rebar,score,reinmax,vimco")
    ap.add_argument("--samples", type=int, default=None, help="default: 5 for IWAE estimators, else 1")
    ap.add_argument("--batch", type=int, default=None, help="default: 32 (sbn), 1 (toy)")
    ap.add_argument("--model", default="sbn", help="sbn (benchmarks/peers.py's), toy, a bundled model's name, or "
                                                  "first_script:poisson / first_script:coin")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=500)
    args = ap.parse_args()
    batch = args.batch or (1 if args.model == "toy" else 32)
    if args.serve:
        return serve(args.serve, args.samples or 1, batch, args.bench_dir, args.model, args.dtype)
    if not args.old_python:
        ap.error("--old-python is required")
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this checkout
    old_tree = args.old_tree or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(args.old_python))))
    for est in args.estimators.split(","):
        k = args.samples or (5 if est in IWAE else 1)
        new = start(sys.executable, None, here, est, k, batch, args.model, args.dtype)
        old = start(args.old_python, args.old_cache, old_tree, est, k, batch, args.model, args.dtype)
        times = {"new": [], "old": []}
        try:
            for r in range(args.rounds):
                order = (("new", new), ("old", old)) if r % 2 == 0 else (("old", old), ("new", new))
                for side, p in order:
                    times[side].append(ask(p, args.calls))
        finally:
            for p in (new, old):
                p.stdin.close()
                p.wait()
        value, base = statistics.median(times["new"]), statistics.median(times["old"])
        case = "sbn64-32" if args.model == "sbn" else f"{args.model}/{args.dtype}"
        print(json.dumps({"bench": "step_ab", "case": f"{case}/{est}/K={k}/batch={batch}",
                          "metric": "step", "value": round(value, 3), "unit": "us", "baseline": round(base, 3),
                          "ratio": round(value / base, 4)}), flush=True)


if __name__ == "__main__":
    main()
