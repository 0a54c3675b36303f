"""Kernel micro-benchmarks: ppl's Philox sampling fills against NumPy's Generator, and the
affine forward + backward kernels against plain NumPy, in the same run.

Run ``python benchmarks/experiments/kernels.py``.  Prints one JSON line per measurement:
{"bench": "kernels", "case": ..., "metric": "median_ms", "value": ours, "unit": "ms",
 "baseline": numpy_ms, "ratio": numpy_ms / ours_ms, "threads": numba threads}
plus one line with the compile (or cache-load) time of the warm-up, reported separately.
Each case is timed with numba.set_num_threads(1) and (2) (NumPy's generator is serial in
both), as the median of REPEATS alternating ours / baseline repetitions on 10**7 float32.

Adding cases: write a function ``my_cases() -> list[Case]`` (each Case has a name, our
callable, the baseline callable; preallocate everything outside the callables) and append
it to CASES below; ``main()`` warms up, times and prints them like the sampling cases.
"""
import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: keep BLAS baselines single-threaded

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable, NamedTuple  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from ppl.kernels.cpu.core import affine_bwd, affine_fwd  # noqa: E402
from ppl.kernels.cpu.noise import (  # noqa: E402
    fill_bernoulli_logit,
    fill_bernoulli_prob,
    fill_normal,
    fill_uniform,
)

N_ROWS, N_COLS = 10_000, 1_000  # 10**7 values
REPEATS = 9  # alternating repetitions per case and thread count (median reported)
THREADS = (1, 2)
LOGIT = 0.3  # the fixed logit of the Bernoulli cases


class Case(NamedTuple):
    name: str
    ours: Callable[[int], object]  # called with the repetition index (used as the RNG step)
    baseline: Callable[[int], object]


def emit(**fields):
    print(json.dumps({"bench": "kernels", **fields}), flush=True)


# ----------------------------------------------------------------------------- sampling
def sampling_cases():
    """Bernoulli, uniform and normal sampling of 10**7 float32 values."""
    shape = (N_ROWS, N_COLS)
    gen = np.random.default_rng(0)
    out = np.empty(shape, np.float32)
    u = np.empty(shape, np.float32)
    h_bool = np.empty(shape, np.bool_)
    logits = np.full(shape, LOGIT, np.float32)
    probs = np.full(shape, 1.0 / (1.0 + np.exp(-LOGIT)), np.float32)

    def numpy_bernoulli(i):
        # generous to NumPy: sigmoid(logit) precomputed, a bool result instead of float32
        np.less(gen.random(dtype=np.float32, out=u), probs, out=h_bool)

    return [
        Case("bernoulli_logit_f32",  # h = [logit + logistic noise > 0]
             lambda i: fill_bernoulli_logit(out, logits, 1, 0, i), numpy_bernoulli),
        Case("bernoulli_prob_f32",  # h = [u < p]
             lambda i: fill_bernoulli_prob(out, probs, 1, 0, i), numpy_bernoulli),
        Case("uniform_f32",
             lambda i: fill_uniform(out, 1, 0, i),
             lambda i: gen.random(dtype=np.float32, out=u)),
        Case("normal_f32",  # Box-Muller vs NumPy's ziggurat
             lambda i: fill_normal(out, 1, 0, i),
             lambda i: gen.standard_normal(dtype=np.float32, out=u)),
    ]


# ----------------------------------------------------------------------------- affine
AFFINE_CALLS = 1000  # forward + backward calls per timed repetition (each is microseconds)


@numba.njit
def _affine_loop(n, x, W, b, out, gout, gx, gW, gb):
    for _ in range(n):
        affine_fwd(x, W, b, out)
        affine_bwd(x, W, gout, gx, gW, gb)


def affine_cases():
    """Affine 64 -> 32 forward + backward (gx, gW, gb) at batch 32 and 256, float32,
    AFFINE_CALLS calls per repetition: our BLAS kernels vs the same products in plain NumPy."""
    cases = []
    rng = np.random.default_rng(0)
    for batch in (32, 256):
        x = rng.standard_normal((batch, 64)).astype(np.float32)
        W = rng.standard_normal((64, 32)).astype(np.float32)
        b = np.zeros(32, np.float32)
        out = np.empty((batch, 32), np.float32)
        gout = rng.standard_normal((batch, 32)).astype(np.float32)
        gx, gW, gb = np.zeros_like(x), np.zeros_like(W), np.zeros_like(b)

        def ours(i, x=x, W=W, b=b, out=out, gout=gout, gx=gx, gW=gW, gb=gb):
            _affine_loop(AFFINE_CALLS, x, W, b, out, gout, gx, gW, gb)

        def numpy_affine(i, x=x, W=W, b=b, gout=gout, gx=gx, gW=gW, gb=gb):
            for _ in range(AFFINE_CALLS):
                y = x @ W + b
                gx += gout @ W.T
                gW += x.T @ gout
                gb += gout.sum(0)
            return y

        cases.append(Case(f"affine_fwd_bwd_64x32_batch{batch}_x{AFFINE_CALLS}", ours, numpy_affine))
    return cases


# Case builders, run in this order.
CASES = [sampling_cases, affine_cases]


# ------------------------------------------------------------------------------ driver
def _ms(fn, i):
    t0 = time.perf_counter()
    fn(i)
    return 1e3 * (time.perf_counter() - t0)


def measure(case, repeats=REPEATS):
    """Median ms of ours and of the baseline over `repeats` alternating repetitions."""
    ours, base = [], []
    for i in range(repeats):
        ours.append(_ms(case.ours, i))
        base.append(_ms(case.baseline, i))
    return statistics.median(ours), statistics.median(base)


def main():
    cases = [c for build in CASES for c in build()]
    t0 = time.perf_counter()
    for c in cases:  # warm-up: compile (or load from numba's cache) every kernel
        c.ours(0)
        c.baseline(0)
    emit(case="warmup_compile", metric="seconds", value=round(time.perf_counter() - t0, 3),
         unit="s")
    available = numba.config.NUMBA_NUM_THREADS
    for n_threads in THREADS:
        if n_threads > available:
            continue
        numba.set_num_threads(n_threads)
        for c in cases:
            c.ours(0)  # wake the thread pool at this size
            ours, base = measure(c)
            emit(case=f"{c.name}_t{n_threads}", metric="median_ms", value=round(ours, 3),
                 unit="ms", baseline=round(base, 3), ratio=round(base / ours, 3),
                 threads=n_threads)
    numba.set_num_threads(available)


if __name__ == "__main__":
    main()
