"""Property-based fuzzing of declared models (m.latent / m.observe) over the laws and plates:
a latent of a random prior (every law an automatic guide covers) with a random automatic guide
(normal or delta), observed through a random likelihood (every law that takes data of its own;
the tables are those of `ppl warmup`'s job "laws", which this exercises too),
without a plate, in the data plate, or drawn per group of a plate of groups; float32 or float64.
Each is valid: it compiles and trains a few steps to a finite loss and finite parameters (a
refusal or a raw error fails). Derandomized, no example database;
PPL_FUZZ_EXAMPLES=N runs N models (each compiles a program: seconds)."""
import os

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import ppl
from ppl import ModelError, dist
from ppl.warmup import _law_tables

N = int(os.environ.get("PPL_FUZZ_EXAMPLES", "5"))
SETTINGS = dict(derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck), max_examples=N)

# the laws' tables of `ppl warmup`'s job "laws" (ppl/warmup.py): every law an automatic guide covers as a
# prior, every law with data of its own as a likelihood (of a real node u, with a data maker)
PRIORS, LIKELIHOODS = _law_tables()
WIDTH = {"normal": 2, "gamma": 2}   # a latent of two units for two of them; the simplex: its classes


@st.composite
def models(draw):
    return dict(prior=draw(st.sampled_from(sorted(PRIORS))), lik=draw(st.sampled_from(sorted(LIKELIHOODS))),
                plate=draw(st.sampled_from(["none", "data", "groups"])), guide=draw(st.sampled_from(["normal", "delta"])),
                dtype=draw(st.sampled_from([np.float32, np.float64])))


def build(spec):
    prior, width = PRIORS[spec["prior"]], WIDTH.get(spec["prior"], 1)
    lik, _ = LIKELIHOODS[spec["lik"]]
    with ppl.Model("fuzz_declared") as m:
        y, g = m.input("y", 1), m.input("g", 1)
        w = m.latent("w", dist.Normal(0.0, 1.0)) if spec["plate"] != "none" else None   # a global latent too

        def latent():
            z = m.latent("z", prior, width=None if spec["prior"] == "dirichlet" else width, guide=spec["guide"])
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
