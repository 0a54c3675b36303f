"""The REBAR / RELAX toy problem per estimator: b ~ Bernoulli(sigmoid(theta)), minimise E[(b - t)^2].

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/toy.py [--steps 5000] [--seeds 5]

For t = 0.45 and t = 0.499: theta0 = 0, one sample per step, Adam lr 0.01, `--steps` steps,
`--seeds` seeds, the whole loop in nopython (the compiled step + Adam called from @njit).
Reports per estimator the median over seeds of the final sigmoid(theta) (optimum: 0) and
log10 of the single-sample gradient variance at theta = 0 and theta = -2 over 20000 draws,
with fresh estimator state and, for estimators with a learned control variate (REBAR, RELAX),
also after 2000 Adam steps on the control variate alone at that theta ("_tuned_cv"). Baseline of each line: REINFORCE (score, no baseline) in the same run;
ratio = baseline / ours (> 1: we end closer to the optimum / have less variance).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from ppl.kernels.cpu.core import adam_update  # noqa: E402
from ppl.models import toy_bernoulli  # noqa: E402

ESTIMATORS = [("reinforce", ("score", {"baseline": "none"})), ("score_ma", ("score", {"baseline": "moving_average"})),
              ("arm", "arm"), ("disarm", "disarm"), ("rebar", "rebar"), ("relax", "relax"),
              ("straight_through", "straight_through"), ("concrete", "concrete"), ("enumerate", "enumerate")]


@numba.njit
def train(entry, n, seed, theta, grad, state, ws2, ws1, inputs, B, m, v):
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, seed, t, 1)
        adam_update(theta, grad, m, v, 0.01, 0.9, 0.999, 1e-8, t + 1)


@numba.njit
def train_control_variate(entry, n, theta, grad, state, ws2, ws1, inputs, B, m, v):
    """Adam on the estimator's own parameters only (theta, entry 0, held fixed)."""
    for t in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(5), t, 1)
        grad[0] = 0.0
        adam_update(theta, grad, m, v, 0.01, 0.9, 0.999, 1e-8, t + 1)


@numba.njit
def grad_draws(entry, n, theta, grad, state, ws2, ws1, inputs, B, out):
    for i in range(n):
        entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(99), i, 1)
        out[i] = grad[0]


def emit(case, metric, value, unit, baseline=None, better="lower"):
    ratio = None
    if baseline is not None and value != 0:
        ratio = baseline / value if better == "lower" else value / baseline
    print(json.dumps({"bench": "toy", "case": case, "metric": metric, "value": value, "unit": unit,
                      "baseline": baseline, "ratio": None if ratio is None else round(ratio, 3)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    for t in (0.45, 0.499):
        results = {}
        for label, spec in ESTIMATORS:
            prog = toy_bernoulli.build(t=t, theta0=0.0).compile(estimators=spec, dtype=np.float64)
            init_theta, init_state = prog.theta.copy(), prog.state.copy()
            finals = []
            for s in range(args.seeds):
                prog.theta[:], prog.state[:] = init_theta, init_state
                a = prog.args(batch=1)
                m, v = np.zeros_like(prog.theta), np.zeros_like(prog.theta)
                train(prog.entry, args.steps, np.uint64(1000 + s), *a, m, v)
                finals.append(1 / (1 + np.exp(-prog.params["theta"][0])))
            logvar, tuned = {}, {}
            learns = len(prog.theta) > 1  # a control variate / temperature to tune
            for th in (0.0, -2.0):
                for store, n_tune in ((logvar, 0), (tuned, 2000 if learns else 0)):
                    prog.theta[:], prog.state[:] = init_theta, init_state
                    prog.params["theta"] = np.array([th])
                    a = prog.args(batch=1)
                    if n_tune:
                        train_control_variate(prog.entry, n_tune, *a, np.zeros_like(prog.theta),
                                              np.zeros_like(prog.theta))
                    out = np.empty(20000)
                    grad_draws(prog.entry, len(out), *a, out)
                    var = out.var(ddof=1)
                    store[th] = float(np.log10(var)) if var > 0 else float("-inf")
            results[label] = (float(np.median(finals)), logvar, tuned if learns else None)
        base_p, base_lv, _ = results["reinforce"]
        for label, (p, lv, tuned) in results.items():
            emit(f"t={t}/{label}", "median_final_sigmoid_theta", round(p, 5), "probability", round(base_p, 5))
            for th in (0.0, -2.0):
                for name, table in (("", lv), ("_tuned_cv", tuned)):
                    if table is None:
                        continue
                    val = table[th]
                    diff = round(base_lv[th] - val, 2) if np.isfinite(val) else None
                    print(json.dumps({"bench": "toy", "case": f"t={t}/{label}",
                                      "metric": f"log10_grad_var_theta={th}{name}",
                                      "value": round(val, 2) if np.isfinite(val) else "-inf", "unit": "log10",
                                      "baseline": round(base_lv[th], 2), "ratio": None,
                                      "below_baseline_by": diff}), flush=True)


if __name__ == "__main__":
    main()
