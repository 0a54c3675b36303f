"""CPU vs GPU step time for the SBN 64-32 and the Gaussian VAE 64-32-8 at large batches.

    OPENBLAS_NUM_THREADS=1 python benchmarks/gpu.py [--batches 1024,4096,16384,65536]

Needs an NVIDIA GPU (and numba's CUDA driver support); without one it prints a JSON line
saying so and exits 0. For each model and batch: median step time (gradient + Adam) on the
CPU program and on the CUDA program compiled from the same graph, in one run, and samples
(data rows) per second. baseline = CPU, ratio = CPU time / GPU time. The simulator
(NUMBA_ENABLE_CUDASIM=1) is refused: its timings mean nothing.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def emit(**kw):
    print(json.dumps({"bench": "gpu", **kw}), flush=True)


def median_step(prog, opt, data, reps, n):
    a = prog.args(data)  # the batch is copied (to the device) once
    ts = []
    for r in range(reps):
        t0 = time.perf_counter()
        for t in range(n):
            prog.entry(*a, np.uint64(1), np.int64(r * n + t), 1)
            opt.step(prog)
        if getattr(prog, "target", "cpu") == "cuda":
            from numba import cuda
            cuda.synchronize()
        ts.append((time.perf_counter() - t0) / n)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1024,4096,16384,65536")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        emit(case="-", metric="skipped", value="the CUDA simulator is on; unset NUMBA_ENABLE_CUDASIM to time a GPU")
        return 0
    from numba import cuda
    if not cuda.is_available():
        emit(case="-", metric="skipped", value="no CUDA device found: this benchmark needs an NVIDIA GPU")
        return 0
    import ppl
    from ppl.training.data import digits
    from ppl.models import gaussian_vae
    sys.path.insert(0, os.path.dirname(__file__))
    from sbn_step import build as sbn_build

    x0 = digits()["train_x"].astype(np.float32)
    for name, build in (("sbn64-32", sbn_build), ("gaussian_vae64-32-8", gaussian_vae.build)):
        progs = {t: build().compile(dtype=np.float32, target=t) for t in ("cpu", "cuda")}
        for B in (int(b) for b in args.batches.split(",")):
            data = {"x": x0[np.arange(B) % len(x0)]}
            times = {}
            for t, prog in progs.items():
                opt = ppl.optim.Adam(lr=1e-3)
                n = max(3, 20000 // B)
                median_step(prog, opt, data, 1, 2)  # warm-up: compile, allocate workspaces
                times[t] = median_step(prog, opt, data, args.reps, n)
            emit(case=f"{name}/batch={B}", metric="median_step_ms", value=round(times["cuda"] * 1e3, 4), unit="ms",
                 baseline=round(times["cpu"] * 1e3, 4), ratio=round(times["cpu"] / times["cuda"], 2))
            emit(case=f"{name}/batch={B}", metric="rows_per_s", value=round(B / times["cuda"]), unit="rows/s",
                 baseline=round(B / times["cpu"]), ratio=round(times["cpu"] / times["cuda"], 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
