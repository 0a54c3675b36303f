"""Heteroscedastic probabilistic regression: t ~ N(mu(x), sigma(x)^2) with
sigma = sqrt(1 + z^2), z = v . features, declared with m.observe (the cost is the Gaussian NLL): the
mean and variance network of Nix & Weigend 1994.

hidden=0 is the linear heteroscedastic regression model (mu = w . x + b, z = v . x + c); hidden > 0 puts a tanh
feature layer in front of both heads. Data: `ppl.data.heteroscedastic` (x ~ U(-3, 3),
mu = 3 sin x + x, sigma = sqrt(1 + x^2)), 2000 training and 1000 test points, so the test NLL
can be compared with that of the true mu and sigma.

    ppl train prob_regression                      # tanh 32 features, Adam 1e-2, 3000 steps

Reports the test NLL (per point), the NLL of the ground truth, and calibration: the
fraction of test targets inside the predicted central 68.27% and 95.45% intervals.
"""
import numpy as np

import ppl
from ppl.training.data import heteroscedastic

DEFAULTS = dict(steps=3000, batch=64, lr=1e-2, optimizer="adam", dtype="float64", samples=1, policy="measured")
HEADLINE = "test_nll"
BETTER = "lower"   # which way the headline metric improves (ppl compare says so)


def build(hidden=32) -> ppl.Model:
    hidden = int(hidden)
    with ppl.Model(f"prob_regression_{hidden}") as m:
        x = m.input("x", 1)
        t = m.input("t", 1)
        f = ppl.tanh(ppl.Affine(x, hidden, name="features")) if hidden > 0 else x
        mu = ppl.Affine(f, 1, name="mu")
        sigma = ppl.sqrt1p(ppl.Affine(f, 1, name="z"), name="sigma")
        m.observe("nll", ppl.dist.Normal(mu, sigma), t)          # the likelihood p(t | x): cost -log p
    return m


def data(seed=0, dtype=np.float64, n_train=2000, n_test=1000) -> dict:
    tr = heteroscedastic(n_train, seed=seed, dtype=dtype)
    te = heteroscedastic(n_test, seed=seed + 10_000, dtype=dtype)
    return {"train": {"x": tr["x"], "t": tr["t"]}, "test": {"x": te["x"], "t": te["t"]},
            "test_truth": {"mu": te["mu"], "sigma": te["sigma"]}}


def _nll(t, mu, sigma):
    return float(np.mean(0.5 * np.log(2 * np.pi) + np.log(sigma) + 0.5 * ((t - mu) / sigma) ** 2))


def predict(prog, x) -> tuple:
    """(mu, sigma) per row of x, from the compiled program's forward pass (no target needed;
    prog.predict({"x": x})["t"] draws targets)."""
    v = prog.sample({"x": x}, nodes=["mu", "sigma"])
    return v["mu"].astype(np.float64), v["sigma"].astype(np.float64)


def evaluate(prog, d) -> dict:
    te = d["test"]
    t = te["t"].astype(np.float64)
    mu, sigma = predict(prog, te["x"])
    z = np.abs(t - mu) / sigma
    out = {"test_nll": _nll(t, mu, sigma), "coverage_68": float(np.mean(z <= 1.0)),
           "coverage_95": float(np.mean(z <= 2.0))}
    if "test_truth" in d:
        out["true_nll"] = _nll(t, d["test_truth"]["mu"], d["test_truth"]["sigma"])
    return out
