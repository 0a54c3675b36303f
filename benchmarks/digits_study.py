"""The estimator study on real digits: mvd, DisARM, ARMS, RODEO, double CV and score-LOO on the
linear 784-200 SBN (models/sbn.py, one stochastic layer of 200 Bernoulli units; `--layers 200,200`:
the 784-200-200 SBN, two stochastic layers) and the 5,000 MNIST digits of the bench extra
(ppl.data.mnist5k: binarized at > 127, 4,000 training / 1,000 held-out images).

Part 1, gradient variance at equal evaluations: E rows of the graph below the node per data row
(E = 2: score-loo and rodeo and double_cv with samples 2, disarm with one pair; E = 4: samples 4,
disarm two pairs, arms with n = 4 and samples 1). mvd evaluates 1 + 200 rows per draw (each
unit's flipped branch), so it is compared by variance x rows, the variance of an average of
estimates costing the same rows (autotune's score). The variance is that of the encoder's
gradient (the sum over q1.* (and q2.*) of the per-entry variance of one estimate over `--draws` draws at
batch 50, float64), at the initial parameters and after `--train` DisARM steps (the same
parameters for every estimator). rodeo's network and double_cv's alpha, trained with the model
in a fit, are first trained alone for `--tune` steps at those parameters
(diagnostics.tune_estimator).

Part 2, held-out ELBO curves: each estimator at E = 4 trains the model from the same seed-0
initialisation, Adam `--lr`, batch 50, float32, one BLAS thread, `--steps` steps (mvd, whose step
evaluates 201 rows per image: `--mvd-steps`); the test ELBO (hard draws,
`--eval-samples` per image) every steps / `--evals` steps. A PNG shows the curves against steps
and against training seconds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/digits_study.py [--layers 200 | 200,200] [--draws 200]
        [--train 3000] [--tune 500] [--steps 10000] [--png benchmarks/figures/digits_study.png]

With `--layers 200,200` every estimator draws both layers: the rows per image (each record's
`rows`, the legend's) are those of the two-layer graph, and the case names read sbn784-200-200.

JSON lines: variances with ratio = score-loo's / ours at the same E (> 1: less variance than
score-loo), a bootstrap standard error over the draws (paired by seed); curves with the final
and best test ELBO, us per step, and ratio = score-loo's final ELBO / ours (> 1: higher).
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

from rodeo import encoder_draws  # noqa: E402  (the encoder's gradient draws, benchmarks/rodeo.py)

LOO = ("score", {"baseline": "loo"})
LAYERS, BATCH = (200,), 50   # LAYERS: units per stochastic layer from the data side (--layers)


def variance_specs(E, hidden):
    """label -> (estimator spec, samples) at E rows per data row."""
    out = {"score-loo": (LOO, E), "disarm": ("disarm", E // 2), "rodeo": (("rodeo", {"hidden": hidden}), E),
           "double_cv": ("double_cv", E)}
    if E > 2:
        out["arms"] = (("arms", {"n": E}), 1)
    return out


CURVES = {"score-loo": (LOO, 4), "disarm": ("disarm", 2), "arms": (("arms", {"n": 4}), 1),
          "rodeo": (("rodeo", {"hidden": 8}), 4), "double_cv": ("double_cv", 4), "mvd": ("mvd", 1)}


def emit(**rec):
    print(json.dumps({"bench": "digits_study", **rec}), flush=True)


def arch() -> str:
    """The network's sizes, e.g. 784-200 or 784-200-200."""
    return "-".join(map(str, (784, *LAYERS)))


def model():
    return sbn.build(latent=LAYERS, pixels=784)


def mnist(dtype):
    """ppl.data.mnist5k in the {"train": {"x"}, "test": {"x"}} shape fit takes."""
    d = ppl.data.mnist5k(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}


def at(prog, P):
    for k, v in P.items():
        prog.params[k] = v
    return prog


def variances(d, args, rng):
    x = np.ascontiguousarray(d["train"]["x"][:BATCH], dtype=np.float64)
    m = model()
    ref = m.compile(estimators="disarm", samples=2, dtype=np.float64, seed=0)
    P0 = {k: ref.params[k].copy() for k in ref.model_param_names()}
    t0 = time.perf_counter()
    ppl.fit(ref, {"x": d["train"]["x"].astype(np.float64)}, ppl.optim.Adam(args.lr), steps=args.train,
            batch_size=BATCH, seed=1, progress=False, blas_threads=1)
    print(f"# reference parameters: {args.train} disarm steps in {time.perf_counter() - t0:.0f} s", flush=True)
    P1 = {k: ref.params[k].copy() for k in ref.model_param_names()}
    idx = [rng.integers(0, args.draws, args.draws) for _ in range(args.boot)]
    mvd_prog = m.compile(estimators="mvd", samples=1, dtype=np.float64, seed=0)
    for when, P in (("init", P0), (f"after {args.train} steps", P1)):
        V = {"mvd": encoder_draws(at(mvd_prog, P), x, args.draws)}
        rows = {"mvd": mvd_prog.rows_per_data_row}
        for E in (2, 4):
            for label, (spec, K) in variance_specs(E, args.hidden).items():
                prog = at(m.compile(estimators=spec, samples=K, dtype=np.float64, seed=0), P)
                if label in ("rodeo", "double_cv"):
                    diagnostics.tune_estimator(prog, {"x": x}, args.tune)
                V[f"{label},E={E}"] = encoder_draws(prog, x, args.draws)
                rows[f"{label},E={E}"] = prog.rows_per_data_row
        var = {k: float(v.var(0, ddof=1).sum()) for k, v in V.items()}
        for label in V:
            E = rows[label]
            base = f"score-loo,E={E}" if f"score-loo,E={E}" in V else "score-loo,E=4"
            # variance x rows: the variance of an average of estimates costing the same rows
            score, base_score = var[label] * E, var[base] * rows[base]
            boot = [(V[base][i].var(0, ddof=1).sum() * rows[base]) / (V[label][i].var(0, ddof=1).sum() * E)
                    for i in idx]
            emit(case=f"sbn{arch()}/batch={BATCH}/{when}", estimator=label.split(",")[0], rows=E,
                 metric="encoder_grad_variance", value=round(var[label], 6), unit="sum of variances",
                 variance_x_rows=round(score, 6), baseline=round(base_score, 6), baseline_estimator=base,
                 ratio=round(base_score / score, 3), ratio_se=round(float(np.std(boot)), 3), draws=args.draws)


def step_times(d, rounds):
    """Median us per training step (fit, float32, one BLAS thread) of each estimator of CURVES,
    the estimators alternating in `rounds` rounds: the time axis of the curves."""
    progs = {label: model().compile(estimators=spec, samples=K, dtype=np.float32, seed=0)
             for label, (spec, K) in CURVES.items()}
    n = {label: (20 if label == "mvd" else 300) for label in progs}
    ts = {label: [] for label in progs}
    for r in range(rounds + 1):
        for label, prog in progs.items():
            h = ppl.fit(prog, d["train"], ppl.optim.Adam(1e-4), steps=n[label], batch_size=BATCH, seed=r,
                        progress=False, nopython=True, blas_threads=1)
            if r:   # round 0 compiles
                ts[label].append(h.seconds / (n[label] - 1) * 1e6)
    return {label: float(np.median(t)) for label, t in ts.items()}


def curves(d, args):
    out = {label: [] for label in CURVES}
    for seed in args.seeds:
        for label, (spec, K) in CURVES.items():
            prog = model().compile(estimators=spec, samples=K, dtype=np.float32, seed=seed)
            steps = args.mvd_steps if label == "mvd" else args.steps   # mvd: 201 rows per image
            every = max(1, steps // args.evals)
            ev = lambda p: p.evaluate(d["test"], "elbo", samples=args.eval_samples)  # noqa: E731
            e0 = ev(prog)
            hist = ppl.fit(prog, d["train"], ppl.optim.Adam(args.lr), steps=steps, batch_size=BATCH, seed=seed,
                           progress=False, eval_every=every, eval_fn=ev, blas_threads=1)
            run = dict(seed=seed, steps=[0] + list(hist.eval_steps), elbo=[e0] + [float(v) for v in hist.eval],
                       rows=prog.rows_per_data_row)
            out[label].append(run)
            emit(case=f"sbn{arch()}/batch={BATCH}/E=4", estimator=label, seed=seed, rows=run["rows"],
                 metric="test_elbo_curve", value=round(run["elbo"][-1], 3), unit="nats", steps=run["steps"],
                 curve=[round(v, 3) for v in run["elbo"]])
            print(f"# seed {seed} {label}: {steps} steps, final test ELBO {run['elbo'][-1]:.2f}", flush=True)
    return out


def also(paths, out):
    """Curves of earlier runs (their test_elbo_curve lines) added to `out`."""
    for path in paths:
        for line in open(path):
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("metric") == "test_elbo_curve" and r["estimator"] in out:
                    out[r["estimator"]].append(dict(seed=r["seed"], steps=r["steps"], elbo=r["curve"], rows=r["rows"]))
                elif "curve_steps" in r and r["estimator"] in out:   # an earlier format: seed 0, one line each
                    out[r["estimator"]].append(dict(seed=r.get("seed", 0), steps=r["curve_steps"], elbo=r["curve"],
                                                    rows=r["rows"]))


def summary(out, us):
    """Final test ELBO over the seeds, against score-loo's (ratio > 1: higher)."""
    fin = {label: [run["elbo"][-1] for run in runs] for label, runs in out.items() if runs}
    base = float(np.mean(fin["score-loo"]))
    for label, v in fin.items():
        runs = out[label]
        emit(case=f"sbn{arch()}/batch={BATCH}/E=4", estimator=label, rows=runs[0]["rows"], metric="test_elbo_final",
             value=round(float(np.mean(v)), 3), unit="nats", baseline=round(base, 3), ratio=round(base / np.mean(v), 4),
             sd=round(float(np.std(v, ddof=1)), 3) if len(v) > 1 else None, seeds=sorted(r["seed"] for r in runs),
             steps=runs[0]["steps"][-1], us_per_step=round(us[label], 1) if us else None,
             per_seed=[round(x, 3) for x in v])


def plot(out, us, path, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    lo, hi = np.inf, -np.inf
    for label, runs in out.items():
        if not runs:
            continue
        steps = np.array(runs[0]["steps"])
        mean = np.mean([r["elbo"] for r in runs], axis=0)
        axes[0].plot(steps, mean, label=f"{label} ({runs[0]['rows']} rows, {len(runs)} seeds)")
        if us:
            axes[1].plot(steps * us[label] * 1e-6, mean, label=label)
        tail = mean[steps >= 0.2 * args.steps]
        if label != "mvd" and tail.size:
            lo, hi = min(lo, tail.min()), max(hi, tail.max())
    axes[0].set_xlabel("training step (batch 50)")
    axes[1].set_xlabel("training seconds at the measured step time (one core)")
    axes[0].set_ylabel(f"test ELBO (nats, {args.eval_samples} draws per image)")
    for ax in axes:
        ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{arch()} SBN on 4,000 binarized MNIST digits, Adam {args.lr:g}, batch 50, E = 4 rows per image "
                 f"(mean over seeds)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"# wrote {path}", flush=True)


def layers(value: str) -> tuple:
    """--layers: one or two positive unit counts, comma-separated."""
    try:
        out = tuple(int(v) for v in value.split(",") if v)
    except ValueError:
        out = ()
    if not 1 <= len(out) <= 2 or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give one or two positive unit counts, e.g. 200 or 200,200")
    return out


def main():
    global LAYERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=layers, default=LAYERS, metavar="N[,N]",
                    help="units per stochastic layer from the data side: 200 (784-200, the default) or 200,200 "
                         "(784-200-200)")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--train", type=int, default=3000, help="DisARM steps to the second variance point")
    ap.add_argument("--tune", type=int, default=500, help="steps training rodeo's network / double_cv's alpha alone")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--mvd-steps", type=int, default=600)
    ap.add_argument("--evals", type=int, default=20)
    ap.add_argument("--eval-samples", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0],
                    help="comma-separated seeds of the curves (initialisation, draws, batches)")
    ap.add_argument("--also", nargs="*", default=[], help="JSON lines of earlier runs whose curves to add")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of the step times")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: variance, curves, times")
    ap.add_argument("--png", default="benchmarks/figures/digits_study.png")
    args = ap.parse_args()
    LAYERS = args.layers
    d = mnist(np.float32)
    skip = set(args.skip.split(","))
    if "variance" not in skip:
        variances(d, args, np.random.default_rng(0))
    if "curves" not in skip:
        us = step_times(d, args.rounds) if "times" not in skip else None
        if us:
            for label, v in us.items():
                emit(case=f"sbn{arch()}/batch={BATCH}/E=4", estimator=label, metric="median_step_us", value=round(v, 1),
                     unit="us", rounds=args.rounds)
        out = curves(d, args)
        also(args.also, out)
        summary(out, us)
        plot(out, us, args.png, args)


if __name__ == "__main__":
    main()
