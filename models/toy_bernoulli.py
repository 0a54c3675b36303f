"""The REBAR / RELAX toy problem: b ~ Bernoulli(sigmoid(theta)), minimise E[(b - t)^2], one sample per step.

The exact objective is p (1 - t)^2 + (1 - p) t^2 with p = sigmoid(theta); its gradient
(1 - 2t) p (1 - p) is tiny next to the noise of a single-sample estimate when t is near 1/2
(t = 0.501 by default, optimum p -> 1), which makes it a hard test of an estimator's
variance (Tucker et al. 2017; Grathwohl et al. 2018).

    ppl train toy_bernoulli --estimator score --steps 2000 --lr 0.01
    ppl compare toy_bernoulli --estimators score,straight_through,concrete

The model has no data inputs: it is called with batch=1 (one draw per step).
"""
import numpy as np

import ppl

DEFAULTS = dict(steps=2000, batch=1, lr=0.01, optimizer="adam", dtype="float64", samples=1, policy="measured")
HEADLINE = "exact_objective"
BETTER = "lower"   # which way the headline metric improves (ppl compare says so)


def build(t=0.501, theta0=0.0) -> ppl.Model:
    t = float(t)
    with ppl.Model("toy_bernoulli") as m:
        theta = ppl.param("theta", 1, init=float(theta0))
        b = ppl.Bernoulli("b", logits=theta)
        m.cost("sq", ppl.total((b - t) * (b - t)))
    m.config = dict(t=t)
    return m


def data(seed=0, dtype=np.float64) -> dict:
    return {"train": None, "test": None}


def exact_objective(theta: float, t: float) -> float:
    p = 1.0 / (1.0 + np.exp(-theta))
    return float(p * (1 - t) ** 2 + (1 - p) * t ** 2)


def evaluate(prog, d=None) -> dict:
    t = prog.model.config["t"]
    theta = float(prog.params["theta"][0])
    best = min(t, 1 - t) ** 2
    return {"exact_objective": exact_objective(theta, t), "optimum": best,
            "p": float(1 / (1 + np.exp(-theta)))}
