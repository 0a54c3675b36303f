"""Every estimator on the SBN 64-32 (the core model) at batch 32 on the binarized digits:
gradient variance (sum over all model-parameter entries of the per-entry variance of one
estimate, at the same initial parameters, after `--warmup` steps that tune only each
estimator's own parameters and state: learned baselines, control variates, REBAR's eta and
temperature, running means) and time per step (gradient + Adam, from an @njit
loop), in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/estimators.py [--draws 300]

JSON lines; the baseline of each line is the score function with a moving-average baseline
measured in the same run: ratio = baseline / ours (> 1: less variance / faster).

With --model sbn | catvae (the estimator study's table), every applicable estimator old and new on that
model (the SBN 64-32, or the bundled categorical VAE, 8 groups x 4 classes), at equal function
evaluations: 2 downstream rows per data row (samples=2 for single-draw estimators, one pair --
samples=1 -- for arm / disarm / cat_disarm; rebar's samples=1 takes 5 rows, the least it can:
its `rows` field says so), and for each:
  - the gradient variance at initialisation (float64, batch 32, the first 32 training rows,
    `--draws` independent draws with the estimator state reset per draw:
    ppl.diagnostics.gradient_draws; every program at the seed-0 initial parameters), of the
    encoder's parameters (q1.* / enc_h.*, enc.*) and of all model parameters;
  - time per step (gradient + Adam from an @njit loop, float32, batch 32), the estimators
    alternating in `--reps` rounds, the median of each;
  - training curves: Adam 1e-3, batch 32, float32, `--steps` steps, seeds 0 .. `--seeds`-1 (a
    seed sets initialisation, noise and batches); the test ELBO (prog.evaluate(test, "elbo",
    samples=--eval-samples): hard draws whatever estimator trained) every steps/--evals steps;
  - at equal steps: the final test ELBO, mean and sd over seeds; at equal wall clock: the budget
    is the cheapest estimator's `--steps` steps at its median us/step, each estimator's ELBO is
    that at the last evaluation it reaches within the budget at its own median us/step.
Ratio for variances and times: score-loo's / ours (> 1: less variance / faster); for ELBOs
score-loo's / ours (ELBOs are negative: > 1: a higher ELBO than score-loo).

    OPENBLAS_NUM_THREADS=1 python benchmarks/estimators.py --model sbn --steps 4000 --seeds 3
    OPENBLAS_NUM_THREADS=1 python benchmarks/estimators.py --model catvae --steps 4000 --seeds 3
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import ppl  # noqa: E402
from ppl.runtime import diagnostics  # noqa: E402
from ppl.training.fit import fit  # noqa: E402
from ppl.training.data import digits  # noqa: E402
from ppl.kernels.cpu.core import adam_update  # noqa: E402

from sbn_step import build  # noqa: E402

ESTIMATORS = [("score+ma", ("score", {"baseline": "moving_average"})), ("score+learned", ("score", {"baseline": "learned"})),
              ("arm", "arm"), ("disarm", "disarm"), ("rebar", "rebar"), ("relax", "relax"),
              ("straight_through", "straight_through"), ("concrete", "concrete")]


@numba.njit
def steps(entry, n, theta, grad, state, ws2, ws1, inputs, B, m, v):
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(3), t, 1)
        adam_update(theta, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, t + 1)


def step_time(prog, x, reps=7, n=200):
    a = prog.args({"x": x})
    m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
    theta0, state0 = prog.theta.copy(), prog.state.copy()
    steps(prog.entry, 2, *a, m, v)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        steps(prog.entry, n, *a, m, v)
        ts.append((time.perf_counter() - t0) / n * 1e6)
    prog.theta[:], prog.state[:] = theta0, state0
    return float(np.median(ts))


# --------------------------------------------------------------------------- --model: the estimator study's table
LOO = ("score", {"baseline": "loo"})
# label, estimator spec, samples (2 downstream rows per data row; rebar: its least, 5)
MODELS = {
    "sbn": dict(enc=("q1",), estimators=[
        ("score-loo", LOO, 2), ("disarm", "disarm", 1), ("arm", "arm", 1), ("rebar", "rebar", 1),
        ("relax", "relax", 2), ("double_cv", "double_cv", 2), ("straight_through", "straight_through", 2),
        ("reinmax", "reinmax", 2), ("gumbel_rao", "gumbel_rao", 2), ("gapped_st", "gapped_st", 2),
        ("concrete", "concrete", 2)]),
    "catvae": dict(enc=("enc_h", "enc"), estimators=[
        ("score-loo", LOO, 2), ("cat_disarm", "cat_disarm", 1), ("rebar", "rebar", 1), ("relax", "relax", 2),
        ("straight_through", "straight_through", 2), ("gumbel_softmax", "gumbel_softmax", 2),
        ("reinmax", "reinmax", 2), ("gumbel_rao", "gumbel_rao", 2), ("gapped_st", "gapped_st", 2)]),
}
# unordered_set applies only to a one-group categorical node (the set's rows hold one group's
# classes): not to the 8-group VAE; benchmarks/experiments/cat_disarm.py --groups 1 measures it.


def model_of(name):
    from ppl.models import categorical_vae, sbn
    mod = sbn if name == "sbn" else categorical_vae
    return mod.build, mod.data


def emit(model, label, metric, value, unit, baseline=None, **extra):
    ratio = None if baseline is None or not value else round(baseline / value, 3)
    print(json.dumps({"bench": "estimators", "case": f"{model}/batch=32/{label}", "metric": metric,
                      "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, **extra}), flush=True)


def init_variances(build, x, ests, enc, draws):
    """(encoder, all) summed per-entry gradient variance at the seed-0 initial parameters."""
    ref, out = None, {}
    for label, spec, samples in ests:
        prog = build().compile(estimators=spec, samples=samples, dtype=np.float64, seed=0)
        names = prog.model_param_names()
        if ref is None:
            ref = {k: prog.params[k].copy() for k in names}
        for k in names:
            prog.params[k] = ref[k]
        G = diagnostics.gradient_draws(prog, x, draws)
        var = {k: float(v.var(0, ddof=1).sum()) for k, v in G.items()}
        out[label] = (sum(v for k, v in var.items() if k.split(".")[0] in enc), sum(var.values()),
                      prog.rows_per_data_row)
    return out


def step_times(build, x, ests, reps, n=200):
    """Median us per step (gradient + Adam, float32), the estimators alternating in `reps` rounds."""
    progs = {label: build().compile(estimators=spec, samples=samples, dtype=np.float32, seed=0)
             for label, spec, samples in ests}
    run = {}
    for label, prog in progs.items():
        a = prog.args({"x": x})
        m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
        steps(prog.entry, 2, *a, m, v)
        run[label] = (prog.entry, a, m, v)
    ts = {label: [] for label in progs}
    for _ in range(reps):
        for label, (entry, a, m, v) in run.items():
            t0 = time.perf_counter()
            steps(entry, n, *a, m, v)
            ts[label].append((time.perf_counter() - t0) / n * 1e6)
    return {label: float(np.median(t)) for label, t in ts.items()}


def curve(build, d, spec, samples, seed, n_steps, evals, eval_samples):
    """[(step, test ELBO)] at step 0 and every n_steps / evals steps of one training run."""
    prog = build().compile(estimators=spec, samples=samples, dtype=np.float32, seed=seed)
    every = max(1, n_steps // evals)
    out = [(0, prog.evaluate(d["test"], "elbo", samples=eval_samples))]
    hist = fit(prog, d["train"], ppl.optim.Adam(1e-3), steps=n_steps, batch_size=32, seed=seed, progress=False,
               eval_every=every, eval_fn=lambda p: p.evaluate(d["test"], "elbo", samples=eval_samples),
               blas_threads=1)
    return out + list(zip(hist.eval_steps, hist.eval))


def table(model, args):
    build, data = model_of(model)
    spec = MODELS[model]
    ests = [e for e in spec["estimators"] if not args.only or e[0] in args.only.split(",")]
    d = data()
    x32 = np.ascontiguousarray(d["train"]["x"][:32], dtype=np.float32)
    x64 = {"x": np.ascontiguousarray(x32, dtype=np.float64)}
    var = init_variances(build, x64, ests, spec["enc"], args.draws)
    us = step_times(build, x32, ests, args.reps)
    curves = {}
    for label, es, samples in ests:
        t0 = time.perf_counter()
        curves[label] = [curve(build, d, es, samples, s, args.steps, args.evals, args.eval_samples)
                         for s in range(args.seeds)]
        print(f"# {model} {label}: {args.seeds} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    budget = args.steps * min(us.values())            # us: the cheapest estimator's --steps steps
    base = "score-loo"
    final = {k: [c[-1][1] for c in v] for k, v in curves.items()}
    wall = {}
    for label, cs in curves.items():
        reach = budget / us[label]
        wall[label] = [max((st, e) for st, e in c if st <= reach)[1] for c in cs]
    for label, _, samples in ests:
        ve, va, rows = var[label]
        emit(model, label, "grad_variance_encoder_init", round(ve, 4), "sum of variances", round(var[base][0], 4),
             draws=args.draws, samples=samples, rows=rows)
        emit(model, label, "grad_variance_all_init", round(va, 4), "sum of variances", round(var[base][1], 4),
             draws=args.draws, samples=samples, rows=rows)
        emit(model, label, "median_step_us", round(us[label], 1), "us", round(us[base], 1), samples=samples, rows=rows)
        emit(model, label, f"test_elbo_after_{args.steps}_steps", round(float(np.mean(final[label])), 3), "nats",
             round(float(np.mean(final[base])), 3), sd=round(float(np.std(final[label], ddof=1)), 3)
             if args.seeds > 1 else None, seeds=[round(v, 3) for v in final[label]])
        emit(model, label, "test_elbo_equal_wall_clock", round(float(np.mean(wall[label])), 3), "nats",
             round(float(np.mean(wall[base])), 3), budget_s=round(budget * 1e-6, 3),
             steps_reached=int(min(args.steps, budget / us[label]) // max(1, args.steps // args.evals)
                               * max(1, args.steps // args.evals)),
             seeds=[round(v, 3) for v in wall[label]])
        emit(model, label, "test_elbo_curve", None, "nats", None,
             steps=[st for st, _ in curves[label][0]],
             mean=[round(float(np.mean([c[i][1] for c in curves[label]])), 3) for i in range(len(curves[label][0]))])
    if args.markdown:
        print(f"# | estimator | samples (rows) | encoder variance at init | all | us / step | test ELBO after "
              f"{args.steps} steps (mean ± sd, {args.seeds} seeds) | at equal wall clock ({budget * 1e-6:.2f} s) |")
        for label, _, samples in ests:
            ve, va, rows = var[label]
            print(f"# | {label} | {samples} ({rows}) | {ve:.4g} | {va:.4g} | {us[label]:.0f} | "
                  f"{np.mean(final[label]):.2f} ± {np.std(final[label], ddof=1) if args.seeds > 1 else 0:.2f} | "
                  f"{np.mean(wall[label]):.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--model", choices=sorted(MODELS), help="the estimator study's table on this model (module docstring)")
    ap.add_argument("--only", default="", help="with --model: comma-separated labels to run (default: all)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--evals", type=int, default=20, help="test-ELBO evaluations per run")
    ap.add_argument("--eval-samples", type=int, default=100)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--markdown", action="store_true", help="with --model: also print the table (# lines)")
    args = ap.parse_args()
    if args.model:
        return table(args.model, args)
    x = digits()["train_x"][:32].astype(np.float32)
    specs = [s for _, s in ESTIMATORS]
    stats = diagnostics.gradient_stats(build(), {"x": x}, specs, draws=args.draws, exact=False,
                                         warmup=args.warmup, dtype=np.float32)
    res = {}
    for (label, spec), st in zip(ESTIMATORS, stats):
        prog = build().compile(estimators=spec, dtype=np.float32)
        res[label] = (st.total_variance, step_time(prog, x))
    bv, bt = res["score+ma"]
    for label, (var, us) in res.items():
        for metric, val, base, unit in (("grad_variance", var, bv, "sum of variances"),
                                        ("median_step_us", us, bt, "us")):
            print(json.dumps({"bench": "estimators", "case": f"sbn64-32/batch=32/{label}", "metric": metric,
                              "value": round(val, 4), "unit": unit, "baseline": round(base, 4),
                              "ratio": round(base / val, 3)}), flush=True)


if __name__ == "__main__":
    main()
