"""Quality at paper scale against the clock: the SBN 784-200 trained by `ppl.fit` with the auto
policy's estimator (DisARM), by the same training in JAX (the step with optax Adam in one
`jax.jit`, N steps in one `lax.scan`; benchmarks/jax_peers.py's trainer, XLA's default threads)
and in PyTorch (eager, a step per call: benchmarks/torch_models.py's TorchSBN, torch's default
threads), each for --steps steps on the same batches from the same initial parameters, the
held-out objective measured every --eval-every steps by the same evaluator (ppl's: the negative
ELBO per test row, mean of 10 fixed draws).

    pip install -e '.[bench]'
    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/quality.py [--steps 100000] [--eval-every 2500] [--out DIR]

Data: the 784-pixel stand-in of benchmarks/jax_peers.py (the digits upscaled; train 1500 rows,
held-out 297), batch 50. `ppl train sbn --data mnist.npz --model-opt latent=200 --out DIR` writes
the same kind of curve for the real MNIST. Time is training wall time (evaluations excluded,
the first step's compile included); ppl's products use every core (blas_threads), as JAX's do.
JSON lines: one per evaluation (side, step, seconds, heldout), then per peer the time to reach
the held-out objective that every side reaches (the worst side's best; "time_to_target", value
= ppl.fit, baseline = the peer). A peer that is not installed is left out with a "skipped" line.
With --out: quality.csv and quality.png (matplotlib).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.training.data import Batches  # noqa: E402
from ppl.training.fit import fit, heldout_loss  # noqa: E402
from ppl.kernels.native import blas  # noqa: E402
from ppl.models import sbn  # noqa: E402
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: jax_peers, torch_models
from jax_peers import LR, digits784, jax_params, jax_trainer  # noqa: E402  (benchmarks/)

B = 50


def emit(**rec):
    print(json.dumps({"bench": "quality", **rec}), flush=True)


def time_to(curve, target):
    """First seconds at which the held-out objective is <= target, or None."""
    return next((s for s, v in curve if v <= target), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--eval-every", type=int, default=2500)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    X, Xt = digits784("train"), digits784("test")
    build = sbn.build(latent=(200,), pixels=784)
    prog = build.compile(dtype=np.float32, seed=0)
    (est,) = {ch.estimator for ch, _ in prog.choices.values()}   # the auto policy's choice for h1
    init = jax_params(prog)
    cores = blas.cores()
    curves = {}

    # ppl
    hist = fit(prog, {"x": X}, ppl.optim.Adam(LR), steps=args.steps, batch_size=B, progress=False,
               eval_every=args.eval_every, eval_fn=lambda p: heldout_loss(p, {"x": Xt}, 10), blas_threads=cores)
    curves["ppl.fit"] = list(zip(hist.eval_seconds, hist.eval))
    for s, sec, v in zip(hist.eval_steps, hist.eval_seconds, hist.eval):
        emit(case=f"sbn784-200/{est}", side="ppl.fit", step=s, seconds=round(sec, 3), heldout=round(v, 4))

    # JAX, the same initial parameters and batches, evaluated by ppl's evaluator
    order = Batches({"x": X}, B, seed=0, dtype=np.float32).rows(0, args.steps)
    run = jax_trainer({"estimator": est, "two": False, "init": init, "X": X, "order": order, "B": B})["jax_scan"]
    judge = build.compile(dtype=np.float32, seed=0)
    curve, trained, done = [], 0.0, 0
    while done < args.steps:
        n = min(args.eval_every, args.steps - done)
        t0 = time.perf_counter()
        run(n)   # the first call compiles the scan (counted, as ppl's first step is)
        trained += time.perf_counter() - t0
        done += n
        for k, v in run.params().items():
            judge.params[k] = v
        v = heldout_loss(judge, {"x": Xt}, 10)
        curve.append((trained, v))
        emit(case=f"sbn784-200/{est}", side="jax_scan", step=done, seconds=round(trained, 3), heldout=round(v, 4))
    curves["jax_scan"] = curve

    # PyTorch, eager: the same initial parameters, batches and evaluator
    try:
        import torch
        from torch_models import TorchSBN
    except ImportError as e:
        emit(case=f"sbn784-200/{est}", side="torch", metric="skipped", reason=f"{e}; pip install -e '.[bench]'")
    else:
        tm = TorchSBN({"enc.W": init["q1.W"], "enc.b": init["q1.b"], "dec.W": init["p0.W"], "dec.b": init["p0.b"],
                       "prior": init["prior"]}, est, lr=LR, seed=7)
        Xtorch = torch.from_numpy(X)
        rows = torch.from_numpy(order)
        curve, trained, done = [], 0.0, 0
        while done < args.steps:
            n = min(args.eval_every, args.steps - done)
            t0 = time.perf_counter()
            for k in range(done, done + n):
                tm.step(Xtorch[rows[k * B:(k + 1) * B]])
            trained += time.perf_counter() - t0
            done += n
            tp = tm.numpy_params()
            for k, name in (("q1.W", "enc.W"), ("q1.b", "enc.b"), ("p0.W", "dec.W"), ("p0.b", "dec.b"),
                            ("prior", "prior")):
                judge.params[k] = tp[name]
            v = heldout_loss(judge, {"x": Xt}, 10)
            curve.append((trained, v))
            emit(case=f"sbn784-200/{est}", side="torch", step=done, seconds=round(trained, 3), heldout=round(v, 4))
        curves["torch"] = curve

    target = max(min(v for _, v in c) for c in curves.values())   # what every side reaches
    tt = {k: time_to(c, target) for k, c in curves.items()}
    for peer in (k for k in curves if k != "ppl.fit"):
        emit(case=f"sbn784-200/{est}", metric="time_to_target", value=round(tt["ppl.fit"], 2), unit="s",
             baseline=round(tt[peer], 2), ratio=round(tt[peer] / tt["ppl.fit"], 3), peer=peer,
             target_heldout=round(target, 4), steps=args.steps,
             final={k: round(c[-1][1], 4) for k, c in curves.items()},
             total_seconds={k: round(c[-1][0], 2) for k, c in curves.items()})
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "quality.csv", "w") as f:
            f.write("side,seconds,heldout\n")
            f.writelines(f"{k},{s:.4f},{v:.6g}\n" for k, c in curves.items() for s, v in c)
        from ppl.cli import _plot
        _plot(out / "quality.png", {k: (np.array([s for s, _ in c]), np.array([v for _, v in c]))
                                   for k, c in curves.items()},
              "training wall time (s)", "held-out negative ELBO per row", f"SBN 784-200, {est}, batch {B}")


if __name__ == "__main__":
    main()
