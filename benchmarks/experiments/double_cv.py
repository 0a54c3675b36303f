"""double_cv against disarm and score with the leave-one-out baseline on the bundled SBN (models/sbn.py,
linear 64-32, and the two-layer 32,32), at equal evaluations of the downstream graph per data row:
E = 2 (double_cv and score-loo with samples 2, disarm with samples 1: one antithetic pair) and
E = 4 (samples 4 / 4 / 2). Measure: the encoder gradient's variance (sum over the entries of
q1.* (and q2.*) of the per-entry variance of one estimate) over `--draws` draws at batch 32, at
the initial parameters and after `--train` Adam steps (1e-3, disarm, samples 2): the same
parameters for every estimator. double_cv at alpha = -1 (the Taylor coefficient, the default),
alpha trained alone for `--tune` steps (Adam 0.01 on its variance gradient, the model held fixed:
diagnostics.tune_estimator), and the alpha of least variance at those parameters (best_alpha:
one alpha for every node, the bound a trained alpha reaches on the one-layer model).

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/double_cv.py [--draws 400] [--train 3000] [--tune 500]

JSON lines: ratio = the other estimator's variance / double_cv's (> 1: double_cv has less), with
a bootstrap standard error over the draws (resampled jointly: the draws are paired by seed), and
each encoder layer's share (per_layer: q1, q2).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.runtime import diagnostics  # noqa: E402
from ppl.training.data import digits  # noqa: E402
from ppl.models import sbn  # noqa: E402


def specs(E):
    return {f"double_cv(alpha=-1),K={E}": (("double_cv", {"alpha": -1.0, "train": False}), E),
            f"double_cv(trained alpha),K={E}": (("double_cv", {"alpha": -1.0, "train": True}), E),
            f"score-loo,K={E}": (("score", {"baseline": "loo"}), E),
            f"disarm,K={E // 2}": ("disarm", E // 2)}


def best_alpha(g0, g1):
    """The estimate is linear in alpha and score-loo is alpha = 0 on the same draws (same seeds,
    tests/estimators/test_double_cv.py), so with C = g(0) - g(-1), Var(g(alpha)) = V0 + 2 alpha cov(g0, C) +
    alpha^2 Var(C): the alpha of least variance at these parameters and that variance (what a
    trained alpha could reach at best)."""
    C = g0 - g1
    g0c, Cc = g0 - g0.mean(0), C - C.mean(0)
    vc, cov = float((Cc * Cc).sum()), float((g0c * Cc).sum())
    a = -cov / vc
    return a, float(((g0c + a * Cc) ** 2).sum() / (len(g0) - 1))


def encoder_draws(prog, x, draws):
    """(draws, entries) of the encoder gradient, and the column range of each layer's entries."""
    G = diagnostics.gradient_draws(prog, {"x": x}, draws)
    cols, layers, at = [], {}, 0
    for k in sorted(k for k in G if k.startswith("q")):
        cols.append(G[k].reshape(draws, -1))
        lo = layers.get(k.split(".")[0], (at, at))[0]
        at += cols[-1].shape[1]
        layers[k.split(".")[0]] = (lo, at)
    return np.concatenate(cols, axis=1), layers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--tune", type=int, default=500, help="steps training alpha alone (trained alpha)")
    args = ap.parse_args()
    d = digits(np.float64)
    x = d["train_x"][:32]
    rng = np.random.default_rng(0)
    for latent in ((32,), (32, 32)):
        m = sbn.build(latent=latent)
        ref = m.compile(estimators="disarm", samples=2, dtype=np.float64, seed=0)
        P0 = {k: ref.params[k].copy() for k in ref.model_param_names()}
        ppl.fit(ref, {"x": d["train_x"]}, ppl.optim.make("adam", 1e-3), steps=args.train, batch_size=32, seed=1,
                progress=False)
        P1 = {k: ref.params[k].copy() for k in ref.model_param_names()}
        for when, P in (("init", P0), (f"after {args.train} steps", P1)):
            for E in (2, 4):
                V = {}
                for label, (spec, K) in specs(E).items():
                    prog = m.compile(estimators=spec, samples=K, dtype=np.float64, seed=0)
                    for k, v in P.items():
                        prog.params[k] = v
                    if "trained" in label:   # alpha trained on its variance gradient, the model held fixed
                        diagnostics.tune_estimator(prog, {"x": x}, args.tune)
                        trained = {k: round(float(prog.params[k][0]), 3) for k in prog.params
                                   if k.startswith("double_cv.")}
                    V[label], layers = encoder_draws(prog, x, args.draws)
                var = {k: float(v.var(0, ddof=1).sum()) for k, v in V.items()}
                per_layer = {k: {q: round(float(v[:, lo:hi].var(0, ddof=1).sum()), 4) for q, (lo, hi) in layers.items()}
                             for k, v in V.items()}
                idx = [rng.integers(0, args.draws, args.draws) for _ in range(args.boot)]
                ours = f"double_cv(alpha=-1),K={E}"
                a, vbest = best_alpha(V[f"score-loo,K={E}"], V[ours])
                print(json.dumps({"bench": "double_cv", "case": f"sbn{'-'.join(map(str, latent))}/{when}/E={E}",
                                  "estimator": "double_cv(best alpha)", "alpha": round(a, 3),
                                  "metric": "encoder_grad_variance", "value": round(vbest, 6),
                                  "loo_over_best": round(var[f"score-loo,K={E}"] / vbest, 3),
                                  "disarm_over_best": round(var[f"disarm,K={E // 2}"] / vbest, 3)}), flush=True)
                for label in V:
                    boot = [V[label][i].var(0, ddof=1).sum() / V[ours][i].var(0, ddof=1).sum() for i in idx]
                    print(json.dumps({"bench": "double_cv", "case": f"sbn{'-'.join(map(str, latent))}/{when}/E={E}",
                                      "estimator": label, "metric": "encoder_grad_variance",
                                      "value": round(var[label], 6), "double_cv": round(var[ours], 6),
                                      "ratio": round(var[label] / var[ours], 3),
                                      "ratio_se": round(float(np.std(boot)), 3), "per_layer": per_layer[label],
                                      **({"alpha": trained} if "trained" in label else {})}),
                          flush=True)


if __name__ == "__main__":
    main()
