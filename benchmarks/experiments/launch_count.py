"""Launches per CUDA training step: the kernels and cuBLAS calls one step of a CUDA program makes
(the nodes of the captured step's graph), with the CUDA step's launches joined as the printer
joins them (lowering/launches.py) and without the joins of declared kernels ("before": the
bias written inside its product, a drawn row's noise filled then spread, no `rows.fused`, a
bias's gradient summed by its layer's call).

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/experiments/launch_count.py [--cases sbn784-200,sbn784-200-200]
        [--estimators straight_through,score,disarm,rebar] [--batch 50]
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/experiments/launch_count.py --simulations sir,queue,inventory,branching

The simulations (benchmarks/simulations.py's ppl models, each a `ppl.scan` of its T steps, the
default estimators) are counted three ways: no joins ("before"), joins with each loop block's
kernels launched at every step ("steps"), and a loop block as one kernel where it may be
("joined": rows.stepped).

Runs in Numba's CUDA simulator: nothing is computed. Every launch (kernels/native/launch.py's
`configured`) and every cuBLAS call is counted and skipped, the products taken as cuBLAS takes
them on a GPU (a bias written by a launch of its own, column sums as a product). The count is the
step's own (mode 1, given its sink: no copy back), not fit's gather and its last kernel (check, update, record: 2 more).
One JSON line per (case, estimator, way).
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402


class Counter:
    """Counts launches and cuBLAS calls by kernel name, running none of them."""

    def __init__(self):
        self.by = collections.Counter()

    def configured(self, kernel, grid, block):
        fn = getattr(kernel, "fn", None)   # a generated kernel (kernels/registry.py): its body's name
        name = getattr(fn if fn is not None else getattr(kernel, "py_func", kernel), "__name__", type(kernel).__name__)

        def launch(*args):
            self.by[name] += 1
        return launch

    def gemm(self, plan):
        self.by["cublas_gemm"] += 1


def instrument(counter):
    """Every ppl.kernels module's `configured` (native.launch's, or the last counter's: `==`, as
    two reads of a bound method are two objects) routed to `counter`."""
    from ppl.kernels.cuda import cublas
    from ppl.kernels.native import launch
    original = launch.configured
    for name, mod in list(sys.modules.items()):
        if name.startswith("ppl.kernels") and getattr(mod, "configured", None) == original:
            mod.configured = counter.configured
    cublas.plan = lambda *a: ("plan",)
    cublas.sums_plan = lambda *a: ("plan",)
    cublas.gemm = counter.gemm


def count(prog, X, B):
    return count_on(prog, {"x": X[:B]})


def count_on(prog, data, batch=None):
    """The launches of one gradient step of `prog` on `data` (`batch` rows drawn where it has no
    inputs), counted by kernel, none of them run."""
    from numba import cuda
    counter = Counter()
    a = prog.args(data or None, batch)
    sink = cuda.to_device(np.zeros(int(prog.module.SINK_WORDS), np.float64))
    instrument(counter)
    prog.module.step(*a, np.uint64(1), np.int64(0), 1, sink)
    return counter.by


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="sbn784-200,sbn784-200-200")
    ap.add_argument("--estimators", default="straight_through,score,disarm,rebar")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--simulations", help="simulation problems to count instead (comma-separated)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if args.simulations:
        simulations(args.simulations.split(","), args.batch)
        return
    import jax_peers as jp
    from ppl.lowering import launches
    joined = (launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last)
    none = (lambda s, per: s, lambda s: s, lambda s: s, lambda s: s)
    X = jp.digits784()
    for case in args.cases.split(","):
        for est in args.estimators.split(","):
            counts = {}
            for way in ("before", "joined"):
                launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last = (
                    joined if way == "joined" else none)
                prog = jp.build(case).compile(estimators=jp.ESTIMATORS[est], dtype=np.float32, target="cuda",
                                              **jp.COMPILE.get(est, {}))
                counts[way] = count(prog, X, args.batch)
                print(json.dumps({"bench": "launch_count", "case": f"{case}/{est}", "metric": "launches_per_step",
                                  "way": way, "value": sum(counts[way].values()),
                                  "kernels": dict(counts[way].most_common())}), flush=True)
            launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last = joined


def simulations(names, B):
    import simulations as sims
    from ppl.lowering import launches
    real = (launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last, launches.stepped)
    none = (lambda s, per: s, lambda s: s, lambda s: s, lambda s: s)
    for name in names:
        spec, T = sims.PPL[name], sims.PROBLEMS[name].T
        counts = {}
        for way in ("before", "steps", "joined"):
            if way == "before":
                launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last = none
            if way != "joined":
                launches.stepped = lambda s, per: s
            prog = spec.build(T, f"count_{way}").compile(dtype=np.float32, target="cuda")
            launches.fused, launches.bias_apart, launches.spread_noise, launches.sums_last, launches.stepped = real
            counts[way] = count_on(prog, spec.data(B))
            chosen = sorted({c[0].estimator for c in prog.choices.values()})
            print(json.dumps({"bench": "launch_count", "case": f"{name}/T={T}", "metric": "launches_per_step",
                              "way": way, "value": sum(counts[way].values()), "estimators": chosen,
                              "kernels": dict(counts[way].most_common(6))}), flush=True)


if __name__ == "__main__":
    main()
