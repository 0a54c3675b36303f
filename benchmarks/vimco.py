"""The importance-weighted bound on the 64-32 SBN: ppl's VIMCO against plain PyTorch VIMCO (the
same estimator, benchmarks/torch_models.py), alternating in one process, and the gradient
variance of each estimator of the bound.

    pip install -e '.[bench]'
    OPENBLAS_NUM_THREADS=1 python benchmarks/vimco.py [--batches 32,256] [--samples 5] [--rounds 7] [--check]

Cases (float32, Adam 1e-3, the digits): the linear SBN of benchmarks/peers.py, K = --samples draws
per data row, objective -log (1/K sum_k exp(-C_k)).
  us_per_step   value = ppl.fit (estimators="vimco" or "local_disarm", objective="iwae", its
                nopython loop),
                baseline = PyTorch eager (one thread, one step per call: sample, costs, the
                bound, VIMCO's baselines, backward, torch.optim.Adam), ratio = baseline / value
  grad_variance the summed per-entry variance of the model parameters' gradient over 200 draws
                at batch 32 (parameters after 500 VIMCO steps), per estimator of the bound: vimco,
                local DisARM, local ARM, score with a moving-average baseline, score without
                baseline; with the step time of each (us, float64 raw step)
--check: ppl's and PyTorch's VIMCO gradients at the same parameters agree in mean (400 draws
each, float64: largest per-entry |z| of the difference and the projection ratio).
The strongest peer, JAX (jit + lax.scan): `python benchmarks/jax_peers.py --estimators vimco`.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.models import sbn  # noqa: E402
from peers import build_sbn, calibrate  # noqa: E402  (benchmarks/, the script's folder)

LR = 1e-3


def emit(case, metric, value, unit, baseline=None, **extra):
    print(json.dumps({"bench": "vimco", "case": case, "metric": metric, "value": value, "unit": unit,
                      "baseline": baseline,
                      "ratio": None if baseline is None or not value else round(baseline / value, 3), **extra}),
          flush=True)


def program(K, estimators="vimco", dtype=np.float32):
    return build_sbn().compile(estimators=estimators, samples=K, objective="iwae", dtype=dtype)


def check(X, K):
    import torch
    from torch_models import TorchSBN
    prog = program(K, dtype=np.float64)
    prog.theta[:] = np.random.default_rng(0).normal(0.0, 0.3, prog.theta.shape)
    init = {k: np.array(v) for k, v in prog.params.items()}
    names = list(init)
    x = np.ascontiguousarray(X[:16], np.float64)
    G = np.array([np.concatenate([np.ravel(g[k]) for k in names]) for g in
                  (prog.grad({"x": x}, seed=s)[1] for s in range(400))])
    tm = TorchSBN(init, "vimco", dtype=torch.float64, samples=K)
    xt = torch.from_numpy(x)
    H = []
    for _ in range(400):
        for t in tm.P.values():
            t.grad = None
        tm.grads(xt)
        H.append(np.concatenate([tm.P[k].grad.numpy().ravel() for k in names]))
    H = np.array(H)
    z = (G.mean(0) - H.mean(0)) / (np.sqrt(G.var(0) / len(G) + H.var(0) / len(H)) + 1e-300)
    m = G.mean(0)
    emit(f"sbn64-32/vimco/K={K}", "check_torch_vs_ppl", round(float(np.abs(z).max()), 2), "max |z|",
         projection=round(float(H.mean(0) @ m / (m @ m)), 4), entries=int(len(m)),
         variance_ratio=round(float(H.var(0).sum() / G.var(0).sum()), 3))


def timing(X, K, B, rounds, seconds, est="vimco"):
    import torch
    from torch_models import TorchSBN
    torch.set_num_threads(1)
    prog = program(K, est)
    init = {k: np.array(v) for k, v in prog.params.items()}
    opt = ppl.optim.Adam(LR)

    def ours(n):
        fit(prog, {"x": X}, opt, steps=n, batch_size=B, progress=False, nopython=True, blas_threads=1)

    tm = TorchSBN(init, "vimco", lr=LR, samples=K)
    rng = np.random.default_rng(0)
    xs = [torch.from_numpy(np.ascontiguousarray(X[rng.choice(len(X), B, replace=False)])) for _ in range(16)]

    def theirs(n):
        for i in range(n):
            tm.step(xs[i % len(xs)])

    ours(2)
    theirs(3)
    n_ours, n_theirs = calibrate(ours, seconds), calibrate(theirs, seconds)
    t = {"ppl": [], "torch": []}
    for _ in range(rounds):
        for name, fn, n in (("ppl", ours, n_ours), ("torch", theirs, n_theirs)):
            t0 = time.perf_counter()
            fn(n)
            t[name].append((time.perf_counter() - t0) / n * 1e6)
    med = {k: float(np.median(v)) for k, v in t.items()}
    emit(f"sbn64-32/{est}/K={K}/batch={B}", "us_per_step", round(med["ppl"], 2), "us/step", round(med["torch"], 2),
         peer="torch eager VIMCO, 1 thread", rounds=rounds, steps={"ppl": n_ours, "torch": n_theirs})


def variances(X, K, draws=200, B=32):
    trained = program(K)
    fit(trained, {"x": X}, ppl.optim.Adam(LR), steps=500, batch_size=B, progress=False)
    at = {k: np.array(v) for k, v in trained.params.items()}
    x = np.ascontiguousarray(X[:B])
    for label, est in (("vimco", "vimco"), ("local_disarm", "local_disarm"), ("local_arm", "local_arm"),
                       ("score_moving_average", ("score", {"baseline": "moving_average"})),
                       ("score_no_baseline", ("score", {"baseline": "none"}))):
        prog = program(K, est, dtype=np.float64)
        for k, v in at.items():
            if k in prog.params:
                prog.params[k][...] = v
        names = [k for k in at if k in prog.params and not k.startswith("baseline.")]
        for s in range(20):   # a moving average settles on the signal first
            prog.grad({"x": x}, seed=10_000 + s)
        G = np.array([np.concatenate([np.ravel(g[k]) for k in names]) for g in
                      (prog.grad({"x": x}, seed=s)[1] for s in range(draws))])
        a = prog.args({"x": x})
        t0 = time.perf_counter()
        for s in range(200):
            prog.entry(*a, np.uint64(1), np.int64(s), 1)
        us = (time.perf_counter() - t0) / 200 * 1e6
        emit(f"sbn64-32/K={K}/batch={B}/{label}", "grad_variance", float(G.var(0, ddof=1).sum()), "sum of variances",
             draws=draws, step_us=round(us, 1), rows_per_data_row=prog.rows_per_data_row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,256")
    ap.add_argument("--estimators", default="vimco,local_disarm", help="ppl's estimators timed against torch VIMCO")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--variances-only", action="store_true")
    args = ap.parse_args()
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    try:
        import torch  # noqa: F401
    except ImportError:
        emit("all", "skipped", None, None, reason="torch not installed; pip install -e '.[bench]'")
        return
    if args.check:
        check(X, args.samples)
        return
    for B in (int(b) for b in args.batches.split(",")) if not args.variances_only else ():
        for est in args.estimators.split(","):
            timing(X, args.samples, B, args.rounds, args.seconds, est)
    variances(X, args.samples)


if __name__ == "__main__":
    main()
