"""Poisson factor analysis with Gamma latents (Gamma-Poisson matrix factorisation, as in Zhou et
al. 2012 and the deep exponential families of Ranganath et al. 2015), amortised as a VAE.

Counts x (V columns) ~ Poisson(rate = softplus(Affine(z))), z ~ Gamma(1, 1) per factor (K of
them); the guide q(z | x) = Gamma(softplus(Affine(e)), softplus(Affine(e))), e = tanh(Affine(log
(1 + x))), differentiated pathwise by implicit reparameterisation. The -log p heads of both
laws come from their log-densities (ppl.dist.Poisson, ppl.dist.Gamma).

Data: counts drawn from a ground-truth model of the same family (K_true = 4 non-negative
factors over V = 24 words, 2,000 rows, 500 held out), so the held-out bound can be compared
with the truth's (`true_loglik`, the exact log-likelihood of the test rows given the true
factor activations, an upper reference no amortised model reaches).

    ppl train poisson_factor                      # Adam 1e-2, batch 64, 3000 steps
"""
import numpy as np
from scipy import stats

import ppl

DEFAULTS = dict(steps=3000, batch=64, lr=1e-2, optimizer="adam", dtype="float32", samples=1, policy="measured")
HEADLINE = "test_elbo"
BETTER = "higher"   # which way the headline metric improves (ppl compare says so)
DATA_WIDTHS = {"x": "words"}
V, K_TRUE, N, N_TEST = 24, 4, 2000, 500


def build(words=V, factors=4, hidden=32) -> ppl.Model:
    with ppl.Model(f"poisson_factor_{words}_{factors}_{hidden}") as m:
        x = m.input("x", words)
        e = ppl.tanh(ppl.Affine(ppl.log(x + 1.0), int(hidden), name="enc"))
        conc = ppl.softplus(ppl.Affine(e, int(factors), name="conc")) + 0.05
        rate = ppl.softplus(ppl.Affine(e, int(factors), name="rate")) + 0.05
        z = ppl.Gamma("z", conc, rate)                                              # q(z | x)
        m.latent(z, ppl.dist.Gamma(1.0, 1.0))                                        # p(z)
        m.observe("counts", ppl.dist.Poisson(ppl.softplus(ppl.Affine(z, words, name="dec")) + 1e-3), x)   # p(x | z)
    return m


def _truth(seed):
    rng = np.random.default_rng(1000 + seed)
    W = rng.gamma(0.3, 3.0, (K_TRUE, V))            # sparse non-negative factors
    z = rng.gamma(1.0, 1.0, (N, K_TRUE))
    rate = z @ W + 0.05
    return rng.poisson(rate).astype(np.float64), rate


def data(seed=0, dtype=np.float32) -> dict:
    x, rate = _truth(seed)
    x = x.astype(dtype)
    return {"train": {"x": x[:-N_TEST]}, "test": {"x": x[-N_TEST:]}, "true_rate": rate[-N_TEST:]}


def evaluate(prog, d, samples=100, seed=0) -> dict:
    """The held-out ELBO and IWAE(samples) per row, and the truth's log-likelihood given its own
    factor activations (a reference above any bound on log p(x))."""
    out = {"test_elbo": prog.evaluate(d["test"], "elbo", samples=samples, seed=seed),
           f"test_iwae_{samples}": prog.evaluate(d["test"], "iwae", samples=samples, seed=seed)}
    if "true_rate" in d:
        out["true_loglik"] = float(stats.poisson.logpmf(d["test"]["x"], d["true_rate"]).sum(1).mean())
    return out
