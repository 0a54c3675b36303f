"""Stochastic derivatives law by law: the std per sample of `stochastic_derivative`, the score
function (its default running baseline) and mvd on one node of each law the estimator draws,
against the exact gradient.

Each problem: theta (a `ppl.param` of 1 entry) -> the law's parameter -> x (one unit, or one
group of 4 classes) -> f(x) = (x - c)^2 (a categorical: (class - c)^2), so f is nonlinear in x
and the jump's difference f(y) - f(x) depends on the draw. The exact d E[f] / d theta sums f
over the support with scipy.stats' pmf (Poisson and Geometric up to a tail below 1e-15), its
derivative by central differences of that exact sum (h = 1e-5). Every estimator's alternative
configurations share the draw's uniform (common random numbers: a count's alternative is its
inverse-CDF neighbour), so this table is also the check of the coupling per law: an estimate
whose alternative were drawn afresh would show the variance of the draw's f, not of the jump.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sd_laws.py --rounds 200 --batch 1000

JSON lines: per (law, estimator) the bias as a z-score, the std per sample, us per sample and the
std ratio to the score function's.
"""
import argparse
import json
import math
import os
import time

import numpy as np
from scipy import special, stats

import ppl
from simulations import estimator_spec

K = 4   # the categoricals' classes


def _sig(a):
    return float(special.expit(a))


def _ramp(th):
    """The logits theta k / K of the classes k = 0 .. K - 1 (a node of K columns)."""
    return ppl.concat([th * (k / K) for k in range(K)])


# law: (theta's value, the ppl node from theta, its support and pmf given theta, c)
def _cat_logits(t):
    lg = t * np.arange(K) / K
    return special.softmax(lg)


def _cat_probs(t):
    w = np.exp(t * np.arange(K) / K)   # weights, not normalised: the law normalises
    return w / w.sum()


LAWS = {
    "bernoulli_logits": (0.3, lambda th: ppl.Bernoulli("x", logits=th),
                         lambda t: (np.arange(2), np.array([1 - _sig(t), _sig(t)])), 0.8),
    "bernoulli_probs": (0.3, lambda th: ppl.Bernoulli("x", probs=ppl.sigmoid(th)),
                        lambda t: (np.arange(2), np.array([1 - _sig(t), _sig(t)])), 0.8),
    "binomial_probs": (0.2, lambda th: ppl.Binomial("x", 10.0, probs=ppl.sigmoid(th)),
                       lambda t: (np.arange(11), stats.binom.pmf(np.arange(11), 10, _sig(t))), 3.0),
    "binomial_logits": (0.2, lambda th: ppl.Binomial("x", 10.0, logits=th),
                        lambda t: (np.arange(11), stats.binom.pmf(np.arange(11), 10, _sig(t))), 3.0),
    "poisson": (1.0, lambda th: ppl.Poisson("x", ppl.exp(th)),
                lambda t: (np.arange(80), stats.poisson.pmf(np.arange(80), math.exp(t))), 1.0),
    "geometric_probs": (0.0, lambda th: ppl.Geometric("x", probs=ppl.sigmoid(th)),
                        lambda t: (np.arange(200), stats.geom.pmf(np.arange(200) + 1, _sig(t))), 2.0),
    "geometric_logits": (0.0, lambda th: ppl.Geometric("x", logits=th),
                         lambda t: (np.arange(200), stats.geom.pmf(np.arange(200) + 1, _sig(t))), 2.0),
    "categorical_logits": (0.5, lambda th: ppl.Categorical("x", logits=_ramp(th)),
                           lambda t: (np.arange(K), _cat_logits(t)), 1.0),
    "categorical_probs": (0.5, lambda th: ppl.Categorical("x", probs=ppl.exp(_ramp(th))),
                          lambda t: (np.arange(K), _cat_probs(t)), 1.0),
}
ESTIMATORS = ("stochastic_derivative", "score", "mvd")


def exact(law):
    t0, _, pmf, c = LAWS[law]

    def mean(t):
        x, p = pmf(t)
        return float(p @ (x - c) ** 2)
    h = 1e-5
    return (mean(t0 + h) - mean(t0 - h)) / (2 * h)


def model(law):
    t0, node, _, c = LAWS[law]
    with ppl.Model(f"sd_law_{law}") as m:
        x0 = m.input("x0", 1)
        th = ppl.param("theta", 1, t0)
        x = node(th + 0.0 * x0)   # theta on every row (one row per sample)
        if law.startswith("categorical"):
            x = ppl.rowsum(x * ppl.concat([ppl.const(float(k), 1) for k in range(K)]))   # the class
        m.cost("f", ppl.total((x - c) * (x - c)))
    return m


def run(law, rounds, batch, estimators=ESTIMATORS):
    ref = exact(law)
    out = {}
    for est in estimators:
        try:
            prog = model(law).compile(estimators={"x": estimator_spec(est)}, dtype=np.float64)
        except ppl.ModelError as e:
            print(json.dumps({"bench": "sd_laws", "case": f"{law}/{est}", "refused": str(e)}), flush=True)
            continue
        B = max(8, batch // prog.rows_per_data_row)
        data = {"x0": np.zeros((B, 1))}
        prog.grad(data, seed=0)
        g, ts = [], []
        for r in range(rounds):
            t = time.perf_counter()
            _, gr = prog.grad(data, seed=1 + r)
            ts.append(time.perf_counter() - t)
            g.append(float(gr["theta"][0]))
        g = np.array(g)
        se = max(g.std(ddof=1) / math.sqrt(rounds), 1e-9 * max(1.0, abs(ref)))   # mvd can be exact
        out[est] = {"bench": "sd_laws", "case": f"{law}/{est}", "law": law, "estimator": est, "exact": ref,
                    "mean": float(g.mean()), "bias_z": (float(g.mean()) - ref) / se,
                    "std_per_sample": float(g.std(ddof=1) * math.sqrt(B)),
                    "us_per_sample": float(np.median(ts)) / B * 1e6, "rows_per_sample": prog.rows_per_data_row}
    score = out.get("score", {}).get("std_per_sample")
    for o in out.values():
        o["std_over_score"] = o["std_per_sample"] / score if score else None
        print(json.dumps(o), flush=True)
    return out


def main(argv=None):
    # the steady state: a new scan's first calls would run interpreted over its kernels until the
    # step's compile pays (ppl/runtime/first_steps.py); this times, and compiles at once, the compiled step
    os.environ.setdefault("PPL_FIRST_STEPS", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--laws", default=",".join(LAWS))
    ap.add_argument("--estimators", default=",".join(ESTIMATORS),
                    help='comma-separated; an option after a colon, e.g. "stochastic_derivative:control=none"')
    a = ap.parse_args(argv)
    for law in a.laws.split(","):
        run(law, a.rounds, a.batch, a.estimators.split(","))


if __name__ == "__main__":
    main()
