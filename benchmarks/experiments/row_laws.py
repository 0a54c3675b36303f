"""Width-1 graphs of each law, of estimators row-fused from their array code alone, and of a
user's simulation (black boxes and user layers): the row-fused step against the array kernels'
step of the same graph, in one process, alternating (medians of --rounds rounds of --calls
compiled calls).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/row_laws.py [--rounds 11] [--calls 100000] [--cases user]

The graphs are tests/lowering/test_rowfused_lowering.py's (one latent unit fed by affine maps of a data
input, a decoder and a log q term) and, as `user/<graph>`, tests/lowering/test_rowfused_user_functions.py's
(`bernoulli`: two Bernoulli units, a user layer and a gradient-free black-box cost; `normal`: a
Normal unit, a user layer with its VJP and a black box with its gradient), at batch 8, float32.
`--cases user` times only the cases whose name starts with `user`. JSON lines: value = the
row-fused step (ns), baseline = the array step (ns), ratio = baseline / value (> 1: row-fused is
faster).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "lowering"))
from test_rowfused_lowering import _row_graph  # noqa: E402
from test_rowfused_user_functions import _graph as _user_graph  # noqa: E402

CASES = [("normal", "pathwise"), ("laplace", "pathwise"), ("gamma", "pathwise"), ("poisson", "score"),
         ("bernoulli", "disarm"), ("bernoulli", "reinmax"), ("bernoulli", "gapped_st"),
         ("user/bernoulli", "score"), ("user/bernoulli", "disarm"), ("user/normal", "pathwise")]


def _graph(kind):
    return _user_graph(kind[len("user/"):]) if kind.startswith("user/") else _row_graph(kind)


def _timer(prog, x):
    a = prog.args({"x": x})
    step = prog.entry

    @njit
    def loop(theta, grad, state, ws2, ws1, inputs, B, n):
        s = 0.0
        for t in range(n):
            s += step(theta, grad, state, ws2, ws1, inputs, B, np.uint64(1), t, 1)
        return s

    loop(*a, 10)
    return lambda n: (lambda t0: (loop(*a, n), (time.perf_counter() - t0) / n * 1e9)[1])(time.perf_counter())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--cases", default="", help="time only the cases whose name starts with this")
    args = ap.parse_args()
    x = np.linspace(-1.5, 2.0, 8, dtype=np.float32)[:, None]
    for kind, est in (c for c in CASES if c[0].startswith(args.cases)):
        runs = {low: _timer(_graph(kind).compile(estimators=est, dtype=np.float32, lowering=low), x)
                for low in ("row-fused", "arrays")}
        times = {low: [] for low in runs}
        for r in range(args.rounds):
            for low in (("row-fused", "arrays") if r % 2 == 0 else ("arrays", "row-fused")):
                times[low].append(runs[low](args.calls))
        value, base = statistics.median(times["row-fused"]), statistics.median(times["arrays"])
        print(json.dumps({"bench": "row_laws", "case": f"{kind}/{est}/batch=8", "metric": "step", "value": round(value, 1),
                          "unit": "ns", "baseline": round(base, 1), "ratio": round(base / value, 2)}), flush=True)


if __name__ == "__main__":
    main()
