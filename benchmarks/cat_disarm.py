"""Categorical DisARM against the score function with the leave-one-out baseline at equal
function evaluations, on the bundled categorical VAE (models/categorical_vae.py, 8 groups x 4
classes, the digits).

    OPENBLAS_NUM_THREADS=1 python benchmarks/cat_disarm.py [--draws 300] [--train 2000]

Equal evaluations: cat_disarm with `samples=K` evaluates the decoder on 2K rows per data row
(K antithetic pairs), score-LOO with `samples=2K` on 2K rows. Gradient variance: the summed
per-entry variance of the model parameters' gradient over `--draws` draws at batch 32 (the first
32 training images), float64, every program at the same parameters (ppl.diagnostics.gradient_draws:
draw s at seed DRAW_SEED + s), reported for all model parameters and for the encoder's (the only
ones whose gradient the estimators differ in beyond sampling); at the initial parameters and after
`--train` Adam steps of the VAE trained by score-LOO (samples 2). The projection ratio of each
estimator's mean on score-LOO's mean (with its SE) checks that both estimate the same gradient.
JSON lines; ratio = score-LOO's variance / cat_disarm's (> 1: cat_disarm has less variance).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import diagnostics  # noqa: E402
from ppl.fit import fit  # noqa: E402
from ppl.models import categorical_vae  # noqa: E402


def emit(case, metric, value, unit, baseline=None, **extra):
    print(json.dumps({"bench": "cat_disarm", "case": case, "metric": metric, "value": value, "unit": unit,
                      "baseline": baseline,
                      "ratio": None if baseline is None or not value else round(baseline / value, 3), **extra}),
          flush=True)


def variances(G, enc):
    tot = sum(v.var(0, ddof=1).sum() for v in G.values())
    e = sum(G[k].var(0, ddof=1).sum() for k in G if k.startswith(enc))
    return float(tot), float(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--pairs", default="1,2")
    args = ap.parse_args()
    d = categorical_vae.data(dtype=np.float64)
    x = {"x": np.ascontiguousarray(d["train"]["x"][:32])}
    model = categorical_vae.build()
    ref = model.compile(estimators=("score", {"baseline": "loo"}), samples=2, dtype=np.float64, seed=0)
    params = {"init": {k: prog_v.copy() for k, prog_v in ref.params.items()}}
    if args.train:
        t0 = time.perf_counter()
        fit(ref, d["train"], ppl.optim.Adam(1e-3), steps=args.train, batch_size=32, progress=False)
        params[f"trained{args.train}"] = {k: v.copy() for k, v in ref.params.items()}
        print(f"# trained {args.train} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    for n in (int(p) for p in args.pairs.split(",")):
        progs = {"cat_disarm": model.compile(estimators="cat_disarm", samples=n, dtype=np.float64, seed=0),
                 "score_loo": model.compile(estimators=("score", {"baseline": "loo"}), samples=2 * n,
                                            dtype=np.float64, seed=0)}
        for where, P in params.items():
            G, var = {}, {}
            for name, prog in progs.items():
                for k, v in P.items():
                    if k in prog.params:
                        prog.params[k] = v
                prog.grad(x, seed=0)   # compiled before the clock starts
                t0 = time.perf_counter()
                G[name] = diagnostics.gradient_draws(prog, x, args.draws)
                dt = (time.perf_counter() - t0) / args.draws
                var[name] = variances(G[name], "enc")
                emit(f"{where} {2 * n} evals/row", f"step_us {name}", round(dt * 1e6, 1), "us")
            ref_mean = np.concatenate([G["score_loo"][k].mean(0).ravel() for k in G["score_loo"]])
            for name in progs:
                flat = np.concatenate([G[name][k].reshape(args.draws, -1) for k in G[name]], axis=1)
                proj = flat @ ref_mean / (ref_mean @ ref_mean)
                emit(f"{where} {2 * n} evals/row", f"projection on score-LOO's mean {name}", round(float(proj.mean()), 4),
                     "ratio", se=round(float(proj.std(ddof=1) / np.sqrt(args.draws)), 4))
            for i, part in enumerate(("all model parameters", "encoder (enc_h, enc)")):
                emit(f"{where} {2 * n} evals/row", f"grad_variance {part}", var["cat_disarm"][i], "sum of variances",
                     baseline=var["score_loo"][i], samples_cat_disarm=n, samples_score=2 * n, draws=args.draws)


if __name__ == "__main__":
    main()
