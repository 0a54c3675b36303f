"""RELAX in its paper's form against REBAR on the nonlinear 784-200-200 SBN (models/sbn.py: two
layers of 200 Bernoulli units, each conditional an Affine-tanh-Affine MLP of `--hidden` units)
trained on the 5,000 MNIST digits of the `bench` extra (benchmarks/mnist_digits.py: binarized at
half intensity, 4,000 training / 1,000 held-out images), the setting of Grathwohl et al. (2018).

Every estimator trains from the same initialisation per seed (Adam `--lr`, batch `--batch`, one
sample per image, float32, equal steps); then, per run:
- the test ELBO and IWAE-100 (models/sbn.py's evaluate: hard draws of the guide);
- the gradient variance of the model's parameters at its own trained model, with its control
  variate as trained (trace of the covariance over `--draws` estimates on 50 held-out images),
  of all of them and of the guide's (`q*`: the parameters the estimators differ on);
- the gradient variance of every estimator at one common point, the first estimator's trained
  model of the seed, each with a fresh control variate tuned alone for `--tune` steps there
  (diagnostics.gradient_stats(params=..., warmup=...)).

    OPENBLAS_NUM_THREADS=1 python benchmarks/relax_paper.py [--steps 6000] [--seeds 0,1,2]
        [--estimators rebar,relax] [--draws 200] [--tune 500]

JSON lines: one per run ("run") and one per seed and estimator at the common point ("common"),
then a summary per estimator ("summary": mean and sd over seeds).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl import diagnostics  # noqa: E402
from ppl.models import sbn  # noqa: E402

from mnist_digits import mnist  # noqa: E402


def build(hidden):
    return sbn.build(latent=(200, 200), nonlinear=True, hidden=hidden, pixels=784)


def train(args, d, spec, seed):
    m = build(args.hidden)
    prog = m.compile(estimators=spec, seed=seed, samples=1, dtype=np.float32)
    t0 = time.perf_counter()
    ppl.fit(prog, d["train"], ppl.optim.Adam(args.lr), steps=args.steps, batch_size=args.batch, seed=seed,
            progress=False)
    seconds = time.perf_counter() - t0
    ev = sbn.evaluate(prog, d, samples=100, seed=0)
    probe = {"x": d["test"]["x"][:50]}
    G = diagnostics.gradient_draws(prog, probe, args.draws, warm=0)
    var = {k: float(v.var(0, ddof=1).sum()) for k, v in G.items()}
    eta = {k: float(v[0]) for k, v in prog.params.items() if k.endswith(".eta")}
    return m, prog, dict(kind="run", estimator=spec, seed=seed, steps=args.steps, seconds=round(seconds, 1),
                         test_elbo=ev["test_elbo"], test_iwae_100=ev["test_iwae_100"], variance_own=sum(var.values()),
                                         variance_own_guide=_guide(var), eta=eta)


def _guide(var):
    """The variance of the guide's parameters (q1.*, q2.*) in {parameter: variance}."""
    return sum(v for k, v in var.items() if k.startswith("q"))


def common(args, m, at, d, specs, seed):
    probe = {"x": d["test"]["x"][:50]}
    stats = diagnostics.gradient_stats(m, probe, specs, draws=args.draws, seed=seed, exact=False, params=at,
                                       warmup=args.tune, warm=0, samples=1, dtype=np.float32)
    return [dict(kind="common", estimator=st.estimator, seed=seed, at=specs[0], tune=args.tune,
                 variance=st.total_variance, variance_guide=_guide({k: float(v.sum()) for k, v in st.var.items()}))
            for st in stats]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--estimators", default="rebar,relax")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=500)
    args = ap.parse_args()
    d = mnist(np.float32)
    specs = args.estimators.split(",")
    runs = []
    for seed in map(int, args.seeds.split(",")):
        first = None
        for spec in specs:
            m, prog, rec = train(args, d, spec, seed)
            first = first or prog
            print(json.dumps(rec), flush=True)
            runs.append(rec)
        for rec in common(args, m, first, d, specs, seed):
            print(json.dumps(rec), flush=True)
            runs.append(rec)
    for spec in specs:
        own = [r for r in runs if r["kind"] == "run" and r["estimator"] == spec]
        com = [r for r in runs if r["kind"] == "common" and r["estimator"] == spec]
        out = {"kind": "summary", "estimator": spec, "seeds": len(own)}
        for key, rs, name in [("test_elbo", own, None), ("test_iwae_100", own, None), ("variance_own", own, None),
                              ("variance_own_guide", own, None), ("variance", com, "variance_common"),
                              ("variance_guide", com, "variance_common_guide")]:
            v = np.array([r[key] for r in rs])
            sd = float(v.std(ddof=1)) if v.size > 1 else float("nan")
            out[name or key] = [round(float(v.mean()), 3), round(sd, 3)]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
