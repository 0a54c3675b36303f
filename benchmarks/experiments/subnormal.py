"""Subnormal floats in the step and in Adam: what saturated units cost.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/subnormal.py [--chunks 8] [--chunk-steps 100000]

Two measurements, JSON lines (us per call / per step; baseline and ratio in the same run):
  kernel    the decoder's Bernoulli likelihood (cpu.bernoulli_nll_keep, 32 x 64, float32) at
            logits of -50, -90 and +90 against logits of -5 (no saturation): a subnormal
            operand or result sends the CPU's floating-point unit to its slow path
  training  the 64-32 SBN with straight-through, batch 1, float32, Adam, in the user's @njit
            loop (benchmarks/experiments/fit_overhead.raw_loop), chunk by chunk of a long run against its
            first chunk: training saturates units, whose tiny gradients (~1e-20) Adam squares
XLA's CPU backend flushes subnormals to zero for the whole computation; ppl's float32 kernels
and Adam avoid producing them instead (kernels/math/scalar.py: log1p_unit_f32, adam_step).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_overhead import raw_loop  # noqa: E402
from ppl.training.data import Batches  # noqa: E402
from ppl.kernels.cpu import core as K  # noqa: E402
from ppl.models import sbn  # noqa: E402


def emit(case, metric, value, baseline, unit):
    print(json.dumps({"bench": "subnormal", "case": case, "metric": metric, "value": round(value, 3),
                      "unit": unit, "baseline": round(baseline, 3), "ratio": round(value / baseline, 3)}), flush=True)


def kernel(rounds=5, calls=2000):
    x = (np.random.default_rng(0).random((32, 64)) < 0.5).astype(np.float32)
    c, sig = np.zeros(32, np.float32), np.zeros((32, 64), np.float32)
    cases = {v: np.full((32, 64), v, np.float32) for v in (-5.0, -50.0, -90.0, 90.0)}
    times = {v: [] for v in cases}
    for lg in cases.values():
        K.bernoulli_nll_keep(lg, x, c, sig)
    for _ in range(rounds):   # alternating
        for v, lg in cases.items():
            t = time.perf_counter()
            for _ in range(calls):
                K.bernoulli_nll_keep(lg, x, c, sig)
            times[v].append((time.perf_counter() - t) / calls * 1e6)
    base = float(np.median(times[-5.0]))
    for v in (-50.0, -90.0, 90.0):
        emit(f"bernoulli_nll_keep/logits={v:g}", "us_per_call", float(np.median(times[v])), base, "us/call")


def training(chunks, steps):
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    prog = sbn.build(latent=(32,)).compile(estimators="straight_through", dtype=np.float32)
    batches = Batches({"x": X}, 1, seed=0, dtype=np.float32)
    a = prog.args({"x": np.zeros((1, 64), np.float32)})
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    raw_loop(prog.entry, 0, 2, X, batches.rows(0, 2), *a, m, v)   # compile
    m[:], v[:] = 0, 0
    base = None
    for k in range(chunks):
        t = time.perf_counter()
        raw_loop(prog.entry, k * steps, steps, X, batches.rows(k * steps, steps), *a, m, v)
        us = (time.perf_counter() - t) / steps * 1e6
        base = us if base is None else base
        emit(f"sbn64-32/straight_through/batch=1/steps={(k + 1) * steps}", "us_per_step", us, base, "us/step")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--chunk-steps", type=int, default=100000)
    args = ap.parse_args()
    kernel()
    training(args.chunks, args.chunk_steps)


if __name__ == "__main__":
    main()
