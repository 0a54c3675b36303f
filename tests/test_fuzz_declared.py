"""Property-based fuzzing of declared models (m.latent / m.observe) over the laws and plates:
a latent of a random prior (every law an automatic guide covers) with a random automatic guide
(normal or delta), observed through a random likelihood (every law that takes data of its own),
without a plate, in the data plate, or drawn per group of a plate of groups; float32 or float64.
Each is valid: it compiles and trains a few steps to a finite loss and finite parameters (a
refusal or a raw error fails). Derandomized, no example database;
PPL_FUZZ_EXAMPLES=N runs N models (each compiles a program: seconds)."""
import os

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import ppl
from ppl import ModelError, dist

N = int(os.environ.get("PPL_FUZZ_EXAMPLES", "5"))
SETTINGS = dict(derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck), max_examples=N)

PRIORS = {   # name -> (prior, its latent's width)
    "normal": (lambda: dist.Normal(0.0, 1.0), 2), "laplace": (lambda: dist.Laplace(0.0, 1.0), 1),
    "student_t": (lambda: dist.StudentT(3.0, 0.0, 1.0), 1), "gamma": (lambda: dist.Gamma(2.0, 1.0), 2),
    "exponential": (lambda: dist.Exponential(1.0), 1), "half_normal": (lambda: dist.HalfNormal(1.0), 1),
    "half_cauchy": (lambda: dist.HalfCauchy(1.0), 1), "lognormal": (lambda: dist.LogNormal(0.0, 1.0), 1),
    "beta": (lambda: dist.Beta(2.0, 2.0), 1), "dirichlet": (lambda: dist.Dirichlet(1.5, classes=3), 3),
}
POS = lambda u: ppl.softplus(u) + 0.2   # noqa: E731
LIKELIHOODS = {   # name -> (spec from u, a real node of width 1; data maker of n rows)
    "normal": (lambda u: dist.Normal(u, 1.0), lambda r, n: r.normal(size=(n, 1))),
    "laplace": (lambda u: dist.Laplace(u, 1.0), lambda r, n: r.laplace(size=(n, 1))),
    "student_t": (lambda u: dist.StudentT(4.0, u, 1.0), lambda r, n: r.standard_t(4, size=(n, 1))),
    "poisson": (lambda u: dist.Poisson(POS(u)), lambda r, n: r.poisson(2.0, size=(n, 1)).astype(float)),
    "binomial": (lambda u: dist.Binomial(5.0, logits=u), lambda r, n: r.binomial(5, 0.4, size=(n, 1)).astype(float)),
    "geometric": (lambda u: dist.Geometric(probs=ppl.sigmoid(u)), lambda r, n: r.geometric(0.4, size=(n, 1)) - 1.0),
    "bernoulli": (lambda u: dist.Bernoulli(logits=u), lambda r, n: (r.random((n, 1)) < 0.3).astype(float)),
    "gamma": (lambda u: dist.Gamma(POS(u), 1.0), lambda r, n: r.gamma(2.0, size=(n, 1))),
    "exponential": (lambda u: dist.Exponential(POS(u)), lambda r, n: r.exponential(size=(n, 1))),
    "half_normal": (lambda u: dist.HalfNormal(POS(u)), lambda r, n: np.abs(r.normal(size=(n, 1))) + 1e-3),
    "lognormal": (lambda u: dist.LogNormal(u, 1.0), lambda r, n: r.lognormal(size=(n, 1))),
    "beta": (lambda u: dist.Beta(POS(u), 2.0), lambda r, n: r.beta(2.0, 2.0, size=(n, 1))),
}


@st.composite
def models(draw):
    return dict(prior=draw(st.sampled_from(sorted(PRIORS))), lik=draw(st.sampled_from(sorted(LIKELIHOODS))),
                plate=draw(st.sampled_from(["none", "data", "groups"])), guide=draw(st.sampled_from(["normal", "delta"])),
                dtype=draw(st.sampled_from([np.float32, np.float64])))


def build(spec):
    prior, width = PRIORS[spec["prior"]]
    lik, _ = LIKELIHOODS[spec["lik"]]
    with ppl.Model("fuzz_declared") as m:
        y, g = m.input("y", 1), m.input("g", 1)
        w = m.latent("w", dist.Normal(0.0, 1.0)) if spec["plate"] != "none" else None   # a global latent too

        def latent():
            z = m.latent("z", prior(), width=None if spec["prior"] == "dirichlet" else width, guide=spec["guide"])
            return ppl.rowsum(z) * 0.5 + (w if w is not None else 0.0)

        def observe(u):
            with m.plate("data"):
                m.observe("lik", lik(u), y)
        if spec["plate"] == "groups":   # z per group, the rows in the data plate inside
            with m.plate("groups", size=3, index=g):
                observe(latent())
        elif spec["plate"] == "data":   # z global, the rows in the data plate
            observe(latent())
        else:
            m.observe("lik", lik(latent()), y)
    return m


@settings(**SETTINGS)
@given(models())
def test_declared_models_over_the_laws_and_plates_train(spec):
    r = np.random.default_rng(0)
    n = 12
    data = {"y": LIKELIHOODS[spec["lik"]][1](r, n), "g": (np.arange(n) % 3)[:, None].astype(float)}
    try:
        m = build(spec)
        prog = m.compile(dtype=spec["dtype"])
        hist = ppl.fit(prog, data, ppl.optim.Adam(0.01), steps=3, batch_size=6, progress=False, keep_losses=True)
    except ModelError as e:   # refused: by name, with its reason (none of these is expected: each is valid)
        raise AssertionError(f"{spec}: a valid model refused: {e}") from e
    assert np.all(np.isfinite(hist.loss)), (spec, hist.loss)
    assert np.all(np.isfinite(prog.theta)), spec
