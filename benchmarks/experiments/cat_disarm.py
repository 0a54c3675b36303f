"""Categorical DisARM (and, on a one-group VAE, the unordered set estimator) against the score
function with the leave-one-out baseline at equal function evaluations, on the bundled
categorical VAE (models/categorical_vae.py, by default 8 groups x 4 classes, the digits).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/cat_disarm.py [--draws 300] [--train 2000]
    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/cat_disarm.py --groups 1 --classes 16   # + unordered_set

Equal evaluations: cat_disarm with `samples=K` evaluates the decoder on 2K rows per data row
(K antithetic pairs), score-LOO with `samples=2K` on 2K rows, unordered_set (one group only) with
k = 2K classes without replacement and samples 1 on 2K rows. Gradient variance: the summed
per-entry variance of the model parameters' gradient over `--draws` draws at batch 32 (the first
32 training images), float64, every program at the same parameters (ppl.diagnostics.gradient_draws:
draw s at seed DRAW_SEED + s), reported for all model parameters and for the encoder's (the only
ones whose gradient the estimators differ in beyond sampling); at the initial parameters and after
`--train` Adam steps of the VAE trained by score-LOO (samples 2). The projection ratio of each
estimator's mean on a reference mean of score-LOO from other seeds (|mu|^2 estimated as
m.m - tr(Cov)/draws; SE of both means combined) checks that they estimate the same gradient.
JSON lines; ratio = score-LOO's variance / the estimator's (> 1: less variance than score-LOO).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.runtime import diagnostics  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
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
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--classes", type=int, default=4)
    args = ap.parse_args()
    d = categorical_vae.data(dtype=np.float64)
    x = {"x": np.ascontiguousarray(d["train"]["x"][:32])}
    model = categorical_vae.build(groups=args.groups, classes=args.classes)
    trainer = model.compile(estimators=("score", {"baseline": "loo"}), samples=2, dtype=np.float64, seed=0)
    params = {"init": {k: v.copy() for k, v in trainer.params.items()}}
    if args.train:
        t0 = time.perf_counter()
        fit(trainer, d["train"], ppl.optim.Adam(1e-3), steps=args.train, batch_size=32, progress=False)
        params[f"trained{args.train}"] = {k: v.copy() for k, v in trainer.params.items()}
        print(f"# trained {args.train} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    for n in (int(p) for p in args.pairs.split(",")):
        progs = {"cat_disarm": model.compile(estimators="cat_disarm", samples=n, dtype=np.float64, seed=0),
                 "score_loo": model.compile(estimators=("score", {"baseline": "loo"}), samples=2 * n,
                                            dtype=np.float64, seed=0)}
        if args.groups == 1:
            progs["unordered_set"] = model.compile(estimators=("unordered_set", {"k": 2 * n}), dtype=np.float64,
                                                   seed=0)
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
            # projection on a reference mean m of score-LOO from other seeds (independent of every measured
            # draw; the same seeds would correlate the draws with m): |mu|^2 estimated as m.m - tr(Cov)/draws
            sc = progs["score_loo"]
            R0 = np.array([np.concatenate([np.ravel(g[k]) for k in G["score_loo"]])
                            for g in (sc.grad(x, seed=10**6 + s)[1] for s in range(args.draws))])
            m = R0.mean(0)
            norm2 = m @ m - R0.var(0, ddof=1).sum() / args.draws
            for name in progs:
                flat = np.concatenate([G[name][k].reshape(args.draws, -1) for k in G[name]], axis=1)
                proj = flat @ m / norm2
                emit(f"{where} {2 * n} evals/row", f"projection on score-LOO's mean {name}", round(float(proj.mean()), 4),
                     "ratio", se=round(float(np.hypot(proj.std(ddof=1), (R0 @ m / norm2).std(ddof=1))
                                             / np.sqrt(args.draws)), 4))
            for name in progs:
                if name == "score_loo":
                    continue
                for i, part in enumerate(("all model parameters", "encoder (enc_h, enc)")):
                    emit(f"{where} {2 * n} evals/row", f"grad_variance {part} {name}", var[name][i],
                         "sum of variances", baseline=var["score_loo"][i], samples_score=2 * n, draws=args.draws)


if __name__ == "__main__":
    main()
