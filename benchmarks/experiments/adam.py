"""Adam's update: ppl's float32 kernel (16 lanes, the division by a reciprocal estimate and a
Newton step where the CPU has AVX-512; kernels/native/simd.py) against the exact loop the library
keeps as its fallback (families/optim.py's _adam_moments_exact: scalar_optim.adam_step per parameter, a division
and a square root each), alternating in one process, medians of the rounds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/adam.py [--sizes 4224,314784] [--rounds 7]

Sizes: the 64-32 SBN's parameters (4,224) and the 784-200 SBN's (314,784). One JSON line per
size: value = ppl's adam_update (us per update), baseline = the exact loop, ratio = baseline /
value (> 1: faster); `lanes` says whether the vector path was taken (0: it was not).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from ppl.kernels.families.optim import _adam_moments_exact, adam_update  # noqa: E402
from ppl.kernels.math.scalar import hyper, like  # noqa: E402
from ppl.kernels.math.optim import adam_bias_corrections  # noqa: E402
from ppl.kernels.native.simd import LANES  # noqa: E402


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def exact_update(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """adam_update as it was: its hyper-parameters, then families/optim.py's _adam_moments_exact."""
    a, b1, b2, ep = like(theta, hyper(lr)), like(theta, hyper(beta1)), like(theta, hyper(beta2)), like(theta, hyper(eps))
    c1, c2 = adam_bias_corrections(b1, b2, t)
    _adam_moments_exact(theta, grad, m, v, a, b1, b2, c1, c2, ep)


@njit(cache=True)
def run_fast(theta, grad, m, v, n):
    for i in range(n):
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, i + 1)


@njit(cache=True)
def run_exact(theta, grad, m, v, n):
    for i in range(n):
        exact_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, i + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4224,314784")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.2, help="aim of one timed run")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for P in (int(s) for s in args.sizes.split(",")):
        arrays = [rng.normal(size=P).astype(np.float32), (rng.normal(size=P) * 1e-2).astype(np.float32),
                  np.zeros(P, np.float32), np.zeros(P, np.float32)]
        ways = {"ppl": run_fast, "exact": run_exact}
        for f in ways.values():
            f(*[a.copy() for a in arrays], 2)
        t0 = time.perf_counter()
        run_exact(*[a.copy() for a in arrays], 10)
        n = max(10, int(args.seconds / max((time.perf_counter() - t0) / 10, 1e-9)))
        times = {k: [] for k in ways}
        for _ in range(args.rounds):
            for k, f in ways.items():
                a = [x.copy() for x in arrays]
                t0 = time.perf_counter()
                f(*a, n)
                times[k].append((time.perf_counter() - t0) / n * 1e6)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(json.dumps({"bench": "adam", "case": f"float32/params={P}", "metric": "us_per_update",
                          "value": round(med["ppl"], 3), "unit": "us", "baseline": round(med["exact"], 3),
                          "ratio": round(med["exact"] / med["ppl"], 3), "lanes": LANES, "updates": n,
                          "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
