"""The Binomial sampler (kernels/families/binomial.py: the inverse CDF of one uniform, searched
from the mode) per draw, against NumPy's binomial generator (BTPE: not an inverse CDF, no common
random numbers) and the Poisson sampler at the same mean (an inverse CDF searched from 0), for
total counts 10 to 10,000: alternating rounds in one process, medians, one JSON line per case.

    python benchmarks/experiments/count_samplers.py [--draws 100000] [--rounds 7]
"""
import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from ppl.kernels.cpu import core


def _time(fn, rounds_out, i):
    t = time.perf_counter()
    fn()
    rounds_out[i].append(time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    R = a.draws
    u = rng.uniform(size=(R, 1))
    for n in (10, 100, 1000, 10_000):
        for p in (0.01, 0.3, 0.5):
            N, P, out = np.full((R, 1), float(n)), np.full((R, 1), p), np.empty((R, 1))
            lam, out2 = np.full((R, 1), n * p), np.empty((R, 1))
            gen = np.random.default_rng(1)
            ways = [lambda: core.binomial_sample(N, P, u, out), lambda: gen.binomial(n, p, size=R),
                    lambda: core.poisson_sample(lam, u, out2)]
            for w in ways:   # compile and warm
                w()
            times = [[], [], []]
            for _ in range(a.rounds):
                for i, w in enumerate(ways):
                    _time(w, times, i)
            ns = [1e9 * float(np.median(t)) / R for t in times]
            case = f"n={n} p={p} (sd {np.sqrt(n * p * (1 - p)):.1f})"
            for way, value in (("binomial_sample", ns[0]), ("poisson_sample, the same mean", ns[2])):
                print(json.dumps({"bench": "count_samplers", "case": f"{way}: {case}", "metric": "time per draw",
                                  "value": round(value, 1), "unit": "ns", "baseline": "numpy Generator.binomial",
                                  "baseline_value": round(ns[1], 1), "ratio": round(value / ns[1], 2)}))


if __name__ == "__main__":
    main()
