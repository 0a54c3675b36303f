"""A pair kernel's unit loop with its partner row's distance a variable: `disarm_grad` and
`arm_grad` (kernels/families/antithetic.py, 64 rows of 32 units, float32, the digit (stride 1,
off 1, span 2)) called in a loop of an @njit function with the layout as constants and as int64
variables, with LLVM's runtime alias checks hoisted (`_link.HOIST_RUNTIME_CHECKS = True`, LLVM's
default) and not (ppl's default for kernels that take a `stride` or `off`).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/pair_distance.py [--rounds 5] [--calls 20000]

Each variant runs in a fresh process on an empty cache folder of its own. One JSON line per
kernel and variant: value = us per call (median of the rounds), baseline = the same kernel with
its layout as constants in the same process, ratio = value / baseline. With `stride` and `off` in
`_link.PLAIN_PARAMS` the constants compile as int64 too (the two forms are one specialisation);
run it with a tree's own Python to compare with a tree where they were literal. (A loop of a
user's own function links the kernel in; a generated step calls it by symbol instead.)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
from numba import njit
from ppl.kernels import _link
_link.HOIST_RUNTIME_CHECKS = {hoist}
from ppl.kernels.families.antithetic import arm_grad, disarm_grad

R, D, N, ROUNDS = 64, 32, {calls}, {rounds}
rng = np.random.default_rng(0)
a = rng.standard_normal((R, D)).astype(np.float32)
b = (rng.random((R, D)) < 0.5).astype(np.float32)
u = rng.random((R, D)).astype(np.float32)
L, rw, ga = rng.standard_normal(R).astype(np.float32), np.ones(R, np.float32), np.zeros((R, D), np.float32)

@njit
def disarm_constants(n, a, b, u, L, rw, ga, stride, off, span):
    for _ in range(n):
        disarm_grad(a, b, L, rw, 1, 1, 2, ga)

@njit
def disarm_variables(n, a, b, u, L, rw, ga, stride, off, span):
    for _ in range(n):
        disarm_grad(a, b, L, rw, stride, off, span, ga)

@njit
def arm_constants(n, a, b, u, L, rw, ga, stride, off, span):
    for _ in range(n):
        arm_grad(u, L, rw, 1, 1, 2, ga)

@njit
def arm_variables(n, a, b, u, L, rw, ga, stride, off, span):
    for _ in range(n):
        arm_grad(u, L, rw, stride, off, span, ga)

fs = dict(disarm_constants=disarm_constants, disarm_variables=disarm_variables,
          arm_constants=arm_constants, arm_variables=arm_variables)
for f in fs.values():
    f(1, a, b, u, L, rw, ga, 1, 1, 2)
times = {{k: [] for k in fs}}
for _ in range(ROUNDS):
    for k, f in fs.items():
        t = time.perf_counter()
        f(N, a, b, u, L, rw, ga, 1, 1, 2)
        times[k].append((time.perf_counter() - t) / N * 1e6)
print(json.dumps({{k: sorted(v)[len(v) // 2] for k, v in times.items()}}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    for hoist in (False, True):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "PPL_CACHE_DIR": cache, "OPENBLAS_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD.format(hoist=hoist, calls=args.calls, rounds=args.rounds)],
                                 env=env, capture_output=True, text=True, check=True).stdout
        us = json.loads(out.strip().splitlines()[-1])
        for kernel in ("disarm", "arm"):
            base = us[f"{kernel}_constants"]
            for form in ("constants", "variables"):
                v = us[f"{kernel}_{form}"]
                print(json.dumps({"bench": "pair_distance", "case": f"{kernel}_grad/{form}/hoisted={hoist}",
                                  "metric": "call", "value": round(v, 3), "unit": "us", "baseline": round(base, 3),
                                  "ratio": round(v / base, 3)}), flush=True)


if __name__ == "__main__":
    main()
