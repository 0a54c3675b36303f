"""rodeo against score with the leave-one-out baseline, DisARM and ARMS on the bundled SBN
(models/sbn.py, linear 64-32, one layer), at equal evaluations of the downstream graph per data
row: E = 2 (rodeo and score-loo with samples 2, disarm with samples 1: one antithetic pair; ARMS
at n = 2 is DisARM) and E = 4 (samples 4 / 4, disarm samples 2, arms n = 4 with samples 1).
Measure: the encoder gradient's variance (sum over the q1.* entries of the per-entry variance of
one estimate) over `--draws` draws at batch 32, at the initial parameters and after `--train`
Adam steps (1e-3, disarm, samples 2): the same parameters for every estimator. rodeo's network
is trained alone for `--tune` steps at those parameters (Adam 0.01 on its variance gradient, the
model held fixed: diagnostics.tune_estimator; `fit` trains it with the model the same way); at
its initial value rodeo is score-loo on the same draws.

    OPENBLAS_NUM_THREADS=1 python benchmarks/rodeo.py [--draws 400] [--train 2000] [--tune 1000]

JSON lines: ratio = the other estimator's variance / rodeo's (> 1: rodeo has less), with a
bootstrap standard error over the draws (resampled jointly: the draws are paired by seed).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import diagnostics  # noqa: E402
from ppl.training.data import digits  # noqa: E402
from ppl.models import sbn  # noqa: E402


def specs(E, hidden):
    out = {f"rodeo,K={E}": (("rodeo", {"hidden": hidden}), E), f"score-loo,K={E}": (("score", {"baseline": "loo"}), E),
           f"disarm,K={E // 2}": ("disarm", E // 2)}
    if E > 2:
        out[f"arms(n={E}),K=1"] = (("arms", {"n": E}), 1)
    return out


def encoder_draws(prog, x, draws):
    G = diagnostics.gradient_draws(prog, {"x": x}, draws)
    return np.concatenate([G[k].reshape(draws, -1) for k in sorted(G) if k.startswith("q")], axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--tune", type=int, default=1000, help="steps training rodeo's network alone")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--boot", type=int, default=200)
    args = ap.parse_args()
    d = digits(np.float64)
    x = d["train_x"][:32]
    rng = np.random.default_rng(0)
    m = sbn.build(latent=(32,))
    ref = m.compile(estimators="disarm", samples=2, dtype=np.float64, seed=0)
    P0 = {k: ref.params[k].copy() for k in ref.model_param_names()}
    ppl.fit(ref, {"x": d["train_x"]}, ppl.optim.make("adam", 1e-3), steps=args.train, batch_size=32, seed=1,
            progress=False)
    P1 = {k: ref.params[k].copy() for k in ref.model_param_names()}
    for when, P in (("init", P0), (f"after {args.train} steps", P1)):
        for E in (2, 4):
            V = {}
            for label, (spec, K) in specs(E, args.hidden).items():
                prog = m.compile(estimators=spec, samples=K, dtype=np.float64, seed=0)
                for k, v in P.items():
                    prog.params[k] = v
                if label.startswith("rodeo"):
                    diagnostics.tune_estimator(prog, {"x": x}, args.tune)
                V[label] = encoder_draws(prog, x, args.draws)
            ours = f"rodeo,K={E}"
            var = {k: float(v.var(0, ddof=1).sum()) for k, v in V.items()}
            idx = [rng.integers(0, args.draws, args.draws) for _ in range(args.boot)]
            for label in V:
                boot = [V[label][i].var(0, ddof=1).sum() / V[ours][i].var(0, ddof=1).sum() for i in idx]
                print(json.dumps({"bench": "rodeo", "case": f"sbn32/{when}/E={E}", "estimator": label,
                                  "metric": "encoder_grad_variance", "value": round(var[label], 6),
                                  "rodeo": round(var[ours], 6), "ratio": round(var[label] / var[ours], 3),
                                  "ratio_se": round(float(np.std(boot)), 3)}), flush=True)


if __name__ == "__main__":
    main()
