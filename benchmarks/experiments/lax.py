"""LAX (estimators="lax") against score with a moving-average baseline on a Normal node behind a
black box: the variance of the gradient of (loc, scale) as the control variate c_phi trains.

Model (tests/estimators/test_lax.py's): z ~ N(mu, softplus(s)^2), 2 units, mu = (0.3, -0.5), s = (0.2, -0.4),
one black-box cost f(z): 'quad' (z0 - 0.5)^2 + 0.3 z1^2, or 'exp' exp(0.5 z0 - 0.3 z1). Figure: the
trace of the covariance of the (mu, s) gradient of one estimate at batch 1 over `--draws` draws
(seeds 10^5 .. ), after n steps of Adam (0.01, batch 8) on phi alone, the model held fixed (what
`fit` does to phi alongside the model). score's moving average is warmed up for 200 steps first.
pathwise on the same f written with differentiable ops ('quad' only) is the floor a gradient of f
would give. ratio = lax / score, with a bootstrap SE over the draws (resampled jointly: both
estimators' draws at one seed share the node's noise).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/lax.py [--draws 4000] [--steps 0,500,2000,5000]
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import Model, Normal  # noqa: E402
from ppl.kernels.cpu.core import adam_update  # noqa: E402


@numba.njit
def quad(z):
    return (z[0] - 0.5) ** 2 + 0.3 * z[1] * z[1]


@numba.njit
def expf(z):
    return math.exp(0.5 * z[0] - 0.3 * z[1])


def build(f, differentiable=False):
    with Model("lax_bench_" + f) as m:
        mu = ppl.param("mu", 2, init=np.array([0.3, -0.5]))
        s = ppl.param("s", 2, init=np.array([0.2, -0.4]))
        z = Normal("z", loc=mu, scale=ppl.softplus(s))
        if differentiable:
            d0, z1 = z[:, 0:1] + (-0.5), z[:, 1:2]
            m.cost("f0", ppl.total(d0 * d0))
            m.cost("f1", ppl.total(0.3 * (z1 * z1)))
        else:
            m.cost("f", ppl.blackbox({"quad": quad, "exp": expf}[f], [z]))
    return m


def draws(prog, n):
    out = np.empty((n, 4))
    for i in range(n):
        g = prog.grad(batch=1, seed=10 ** 5 + i)[1]
        out[i] = np.concatenate([g["mu"], g["s"]])
    return out


def trace_var(G):
    return float(G.var(0, ddof=1).sum())


def ratio_se(A, B, boots=200, seed=0):
    rng = np.random.default_rng(seed)
    n = len(A)
    r = [trace_var(A[i]) / trace_var(B[i]) for i in (rng.integers(0, n, n) for _ in range(boots))]
    return float(np.std(r, ddof=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--steps", default="0,500,2000,5000")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    for f in ("quad", "exp"):
        score = build(f).compile(dtype=np.float64, estimators=("score", {"baseline": "moving_average"}))
        for t in range(200):
            score.grad(batch=8, seed=2 * 10 ** 6 + t)
        S = draws(score, args.draws)
        floor = trace_var(draws(build(f, True).compile(dtype=np.float64, estimators="pathwise"), args.draws)) \
            if f == "quad" else None
        prog = build(f).compile(dtype=np.float64, estimators="lax")
        model = slice(0, 4)
        m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
        done = 0
        for n in steps:
            for t in range(done, n):
                prog.grad(batch=8, seed=10 ** 6 + t)
                prog.grad_buffer[model] = 0
                adam_update(prog.theta, prog.grad_buffer, m, v, 0.01, 0.9, 0.999, 1e-8, t + 1)
            done = n
            L = draws(prog, args.draws)
            print(json.dumps({"f": f, "phi_steps": n, "lax": round(trace_var(L), 4), "score_ma": round(trace_var(S), 4),
                              "ratio": round(trace_var(L) / trace_var(S), 4), "ratio_se": round(ratio_se(L, S), 4),
                              "pathwise": None if floor is None else round(floor, 4), "draws": args.draws}),
                  flush=True)


if __name__ == "__main__":
    main()
