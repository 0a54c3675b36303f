"""Where a CUDA program's training step spends its time, kernel by kernel, on a real GPU.

    python benchmarks/experiments/gpu_profile.py [--cases sbn784-200] [--estimators straight_through,disarm]
        [--batches 50,4096] [--steps 20] [--top 40]

For each (case, estimator, batch) of benchmarks/jax_peers.py's SBN cases, on one batch resident
on the device:
  step_us        a step and Adam's step as fit runs them, synchronised once at the end
  graph_us       the same step captured once as a CUDA graph and replayed (fit's chunks replay
                 such a graph; graph_why says why where none could be made)
  kernels        per kernel (cuBLAS's gemm calls as "cublas_gemm"): launches per step, the
                 host's us per step to make the launches, and the device's own us per step
                 (CUDA events around the launch, queued behind a kernel that holds the stream
                 until the host has queued them all, so the host's time is not in it), the
                 device's largest first; dispatch_us and gpu_us their sums
and, apart from the model, the cost of one launch of an empty kernel with 1, 4 and 8 device
array arguments (2,000 launches, one synchronisation), and of fit's per-step batch: the rows
gathered on the host and copied to the device (`prog.args`).
One JSON line each. Needs an NVIDIA GPU (the simulator is refused).
"""
import os

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def emit(case, metric, value=None, **kw):
    print(json.dumps({"bench": "gpu_profile", "case": case, "metric": metric, "value": value, **kw}), flush=True)


def launch_cost(cuda):
    @cuda.jit
    def k1(a):
        pass

    @cuda.jit
    def k4(a, b, c, d):
        pass

    @cuda.jit
    def k8(a, b, c, d, e, f, g, h):
        pass

    arrs = [cuda.device_array((64, 64), np.float32) for _ in range(8)]
    for k, n in ((k1, 1), (k4, 4), (k8, 8)):
        k[1, 32](*arrs[:n])
        cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(2000):
            k[1, 32](*arrs[:n])
        cuda.synchronize()
        emit("empty_kernel", "us_per_launch", round((time.perf_counter() - t0) / 2000 * 1e6, 2), arrays=n)
    from ppl.kernels.native.launch import configured
    from ppl.runtime.cuda_graph import Replay
    for nodes, threads in ((32, 32), (32, 50 * 200), (32, 4096 * 200)):
        blocks = (threads + 255) // 256
        rep = Replay(lambda: [configured(k4, blocks, min(threads, 256))(*arrs[:4]) for _ in range(nodes)])
        if not rep.captured:
            emit("empty_graph", "skipped", rep.why)
            return
        rep.run(10)
        t0 = time.perf_counter()
        rep.run(200)
        emit("empty_graph", "us_per_node", round((time.perf_counter() - t0) / 200 / nodes * 1e6, 2),
             nodes=nodes, threads=threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="sbn784-200")
    ap.add_argument("--estimators", default="straight_through,disarm")
    ap.add_argument("--batches", default="50,4096")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # benchmarks/: gpu, jax_peers
    from gpu import device_steps, no_gpu
    reason = no_gpu()
    if reason:
        emit("-", "skipped", reason)
        return 0
    from numba import cuda
    from numba.cuda import dispatcher as D
    import jax_peers as jp
    import ppl

    launch_cost(cuda)
    from ppl.kernels.cuda import cublas
    from ppl.runtime.cuda_graph import Replay
    stats = collections.defaultdict(lambda: [0, 0.0, 0.0])
    HOLD_NS = 2_000_000
    timing = [False]

    @cuda.jit
    def hold(ns):   # keeps the stream busy while the host queues the launch that is timed
        for _ in range(ns // 1000):
            cuda.nanosleep(1000)

    def timed(name_of, fn):
        def call(*rest):
            if not timing[0]:
                return fn(*rest)
            cuda.synchronize()
            e0, e1 = cuda.event(), cuda.event()
            timing[0] = False
            hold[1, 1](HOLD_NS)
            timing[0] = True
            e0.record()
            t0 = time.perf_counter()
            r = fn(*rest)
            t1 = time.perf_counter()
            e1.record()
            e1.synchronize()
            s = stats[name_of(rest)]
            s[0] += 1
            s[1] += t1 - t0
            s[2] += cuda.event_elapsed_time(e0, e1) * 1e-3
            return r
        return call

    # (self, args, launch configuration), as this Numba passes them
    D.CUDADispatcher.call = timed(lambda rest: getattr(rest[0].py_func, "__name__", str(rest[0])),
                                  D.CUDADispatcher.call)
    cublas.gemm = timed(lambda rest: "cublas_gemm", cublas.gemm)
    for case in args.cases.split(","):
        X = jp.case_data(case)
        for est in args.estimators.split(","):
            prog = jp.build(case).compile(estimators=jp.ESTIMATORS[est], dtype=np.float32, target="cuda",
                                          **jp.COMPILE.get(est, {}))
            opt = ppl.optim.Adam(jp.LR)
            for B in (int(b) for b in args.batches.split(",")):
                steps = device_steps(prog, X[np.arange(B) % len(X)], opt)
                steps(3)
                t0 = time.perf_counter()
                steps(args.steps)
                free = (time.perf_counter() - t0) / args.steps * 1e6
                replay = Replay(steps.one)
                graph = None
                if replay.captured:
                    replay.run(3)
                    t0 = time.perf_counter()
                    replay.run(args.steps)
                    graph = round((time.perf_counter() - t0) / args.steps * 1e6, 1)
                stats.clear()
                timing[0] = True
                steps(args.steps)
                timing[0] = False
                ks = sorted(stats.items(), key=lambda kv: -kv[1][2])
                kernels = {k: [round(c / args.steps, 2), round(s / args.steps * 1e6, 1), round(g / args.steps * 1e6, 1)]
                           for k, (c, s, g) in ks[:args.top]}
                in_kernels = sum(s for _, s, _ in stats.values()) / args.steps * 1e6
                on_gpu = sum(g for _, _, g in stats.values()) / args.steps * 1e6
                t0 = time.perf_counter()
                for _ in range(5):
                    prog.args({"x": X[np.random.default_rng(0).integers(0, len(X), B)]})
                cuda.synchronize()
                batch_us = (time.perf_counter() - t0) / 5 * 1e6
                emit(f"{case}/{est}/batch={B}", "step_us", round(free, 1), graph_us=graph, graph_why=replay.why,
                     dispatch_us=round(in_kernels, 1), gpu_us=round(on_gpu, 1),
                     launches_per_step=round(sum(c for c, _, _ in stats.values()) / args.steps, 1),
                     fit_batch_to_device_us=round(batch_us, 1), kernels=kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
