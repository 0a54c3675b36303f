"""A chain of random nodes with an estimator that adds rows at every node: DisARM on every node
of a state-dependent walk, 100 steps, as a `ppl.scan` (the body once, a loop block) and, for
shorter chains, unrolled node by node. The extra rows add up (1 + one per node) instead of
multiplying (2^100); this measures what that costs against the score function (one row per
sample): the time per evaluated row, and the first step (compile) time.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/chain_rows.py [--length 100] [--unrolled 10,20] [--rounds 9]

JSON lines: per form and estimator, rows per sample, us per step, us per evaluated row, first
step seconds; `ratio` = DisARM's us per evaluated row / score's (the target: <= 2).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402


def walk(T: int, scanned: bool, tag: str):
    """up_t ~ Bernoulli(sigmoid(w s + b)), s_t = s_{t-1} + 2 up_t - 1, a cost 0.1 s_t^2 per step."""
    with ppl.Model(f"chain_{tag}") as m:
        s0 = m.input("s0", 1)
        w, b = ppl.param("w", 1, -0.3), ppl.param("b", 1, 0.2)

        def step(s, t):
            up = ppl.Bernoulli("up" if scanned else f"up{len(m.costs)}", logits=w * s + b)
            s = s + 2.0 * up - 1.0
            m.cost("c" if scanned else f"c{len(m.costs)}", ppl.total(0.1 * (s * s)))
            return s, None
        if scanned:
            ppl.scan(step, s0, length=T)
        else:
            s = s0
            for _ in range(T):
                s, _ = step(s, None)
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--unrolled", default="10,20", help="lengths of the unrolled chains")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    cases = [("scan", args.length, True)] + [("unrolled", int(T), False) for T in args.unrolled.split(",") if T]
    for form, T, scanned in cases:
        progs = {}
        for est in ("score", "disarm"):
            t0 = time.perf_counter()
            prog = walk(T, scanned, f"{form}{T}_{est}_{os.getpid()}").compile(estimators=est, cache=False)
            data = {"s0": np.zeros((args.batch, 1), np.float32)}
            prog.grad(data, seed=0)
            progs[est] = (prog, data, time.perf_counter() - t0, [])
        for r in range(args.rounds):
            for est, (prog, data, _, times) in progs.items():
                t0 = time.perf_counter()
                prog.grad(data, seed=1 + r)
                times.append(time.perf_counter() - t0)
        per_row = {}
        for est, (prog, data, first, times) in progs.items():
            us = float(np.median(times)) * 1e6
            rows = prog.rows_per_data_row
            per_row[est] = us / (args.batch * rows)
            line = {"bench": "chain_rows", "case": f"{form}/T={T}/{est}", "metric": "us_per_evaluated_row",
                    "value": per_row[est], "unit": "us", "form": form, "T": T, "estimator": est,
                    "rows_per_sample": rows, "explain_rows": f"rows per data row: {rows}" in " ".join(
                        prog.explain().split()),
                    "us_per_step": us, "batch": args.batch, "first_step_s": first, "rounds": args.rounds}
            if est == "disarm":
                line.update(baseline=per_row["score"], ratio=per_row["disarm"] / per_row["score"])
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
