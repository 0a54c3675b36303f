"""Eight schools (Rubin 1981) with automatic guides: how far the mean-field posterior is from
the exact one, against a quadrature reference.

    OPENBLAS_NUM_THREADS=1 python benchmarks/eight_schools.py [--steps 6000] [--seeds 3]

Model (non-centred): mu ~ N(0, 5^2), tau ~ HalfCauchy(5) (both automatic guides: a Normal for
mu, a log-normal for tau), eta_j ~ N(0, 1) per school in a plate of groups (its automatic guide
a table of 8 rows), y_j ~ N(mu + tau eta_j, sigma_j^2). The exact posterior marginals of tau
and mu by quadrature: with mu and eta integrated out, y ~ N(0, 25 1 1' + diag(sigma^2 + tau^2)),
so p(tau | y) is one-dimensional (scipy.integrate.quad over tau), and E[mu | y] = E[E[mu | tau,
y] | y]. One JSON line per seed: the guide's E[tau], E[mu] (200,000 draws) against the exact
ones, and the relative gap of E[tau] (mean-field guides are known to under-disperse: the gap
is a property of the family, not of the fit, and is stated, not tested).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import integrate, stats  # noqa: E402

import ppl  # noqa: E402
from ppl.language import dist  # noqa: E402

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
MU_SD, TAU_SCALE = 5.0, 5.0


def exact():
    """(E[tau | y], E[mu | y]) by quadrature over tau."""
    def marginal(tau):   # p(y | tau) p(tau), mu and eta integrated out
        cov = MU_SD ** 2 + np.diag(SIGMA ** 2 + tau ** 2)
        return stats.multivariate_normal(np.zeros(8), cov).pdf(Y) * stats.halfcauchy(scale=TAU_SCALE).pdf(tau)

    def mu_given(tau):
        w = 1.0 / (SIGMA ** 2 + tau ** 2)
        return (w @ Y) / (1 / MU_SD ** 2 + w.sum())
    z = integrate.quad(marginal, 0, np.inf, limit=200)[0]
    e_tau = integrate.quad(lambda t: t * marginal(t), 0, np.inf, limit=200)[0] / z
    e_mu = integrate.quad(lambda t: mu_given(t) * marginal(t), 0, np.inf, limit=200)[0] / z
    return e_tau, e_mu


def model():
    with ppl.Model("eight_schools") as m:
        y, sigma, school = m.input("y", 1), m.input("sigma", 1), m.input("school", 1)
        mu = m.latent("mu", dist.Normal(0.0, MU_SD))
        tau = m.latent("tau", dist.HalfCauchy(TAU_SCALE))
        with m.plate("schools", size=8, index=school):
            eta = m.latent("eta", dist.Normal(0.0, 1.0))
            with m.plate("data"):
                m.observe("lik", dist.Normal(mu + tau * eta, sigma), y)
    return m


def run(seed, steps):
    data = {"y": Y[:, None], "sigma": SIGMA[:, None], "school": np.arange(8.0)[:, None]}
    prog = model().compile(dtype=np.float64, samples=32, seed=seed)
    t0 = time.perf_counter()
    opt = ppl.optim.Adam(ppl.optim.cosine_decay(0.03, steps=steps, final=0.01, warmup=100))
    ppl.fit(prog, data, opt, steps=steps, batch_size=8, progress=False, seed=seed)
    fit_s = time.perf_counter() - t0
    d = prog.predict(None, ["tau", "mu"], num_samples=200_000, batch=1)
    return prog, float(d["tau"].mean()), float(d["mu"].mean()), fit_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    e_tau, e_mu = exact()
    for seed in range(a.seeds):
        prog, q_tau, q_mu, fit_s = run(seed, a.steps)
        print(json.dumps({"bench": "eight_schools", "seed": seed, "steps": a.steps, "guide": "automatic mean-field",
                          "E_tau": round(q_tau, 4), "E_tau_exact": round(e_tau, 4),
                          "tau_gap": round(q_tau / e_tau - 1, 4), "E_mu": round(q_mu, 4),
                          "E_mu_exact": round(e_mu, 4), "fit_s": round(fit_s, 2)}), flush=True)


if __name__ == "__main__":
    main()
