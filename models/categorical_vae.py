"""Discrete VAE with groups of K-way categorical latents on the binarized digits
(Jang et al. 2017; Maddison et al. 2017).

q(z | x): `groups` one-hot categorical variables of `classes` values from a tanh MLP encoder;
p(z): a learned factorised categorical prior; p(x | z): Bernoulli pixels from a tanh MLP
decoder. Declared with m.latent / m.observe: the derived costs are -log p(x | z), log q(z | x)
and -log p(z) (the categorical likelihood of the one-hot z under the prior logits), so the
objective is -ELBO. Any estimator that applies to a
Categorical node can train it: gumbel_softmax (the default here), straight_through, score,
and those added to the registry later (REBAR, RELAX).

    ppl train categorical_vae                       # 8 groups x K=4, Gumbel-softmax tau=0.5
    ppl compare categorical_vae --estimators gumbel_softmax,straight_through,score

Evaluation (`prog.evaluate`) with hard categorical draws (the relaxation is a training device
only): the test ELBO over 100 draws per image and the importance-weighted bound with K = 100.
"""
import numpy as np

import ppl
from ppl.training.data import digits

DEFAULTS = dict(steps=3000, batch=32, lr=1e-3, optimizer="adam", dtype="float32", samples=1, policy="measured",
                estimators="gumbel_softmax")
HEADLINE = "test_elbo"
BETTER = "higher"   # which way the headline metric improves (ppl compare says so)
DATA_WIDTHS = {"x": "pixels"}  # the build() option `ppl train --data` sets to the data's width


def build(groups=8, classes=4, hidden=64, pixels=64) -> ppl.Model:
    G, K, H = int(groups), int(classes), int(hidden)
    with ppl.Model(f"categorical_vae_{G}x{K}_{H}") as m:
        x = m.input("x", pixels)
        z = ppl.Categorical("z", logits=ppl.Affine(ppl.tanh(ppl.Affine(x, H, name="enc_h")), G * K, name="enc"),
                            classes=K)                                               # the guide q(z | x)
        prior = ppl.dist.Categorical(logits=ppl.param("prior", G * K, 0.0), classes=K)   # p(z)
        dec = ppl.Affine(ppl.tanh(ppl.Affine(z, H, name="dec_h")), pixels, name="dec")
        m.observe("recon", ppl.dist.Bernoulli(logits=dec), x)                        # p(x | z)
        m.latent(z, prior)
    m.config = dict(groups=G, classes=K)
    return m


def data(seed=0, dtype=np.float32) -> dict:
    d = digits(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}


def evaluate(prog, d, samples=100, seed=0) -> dict:
    """The test ELBO and IWAE(samples) from prog.evaluate: hard categorical draws whatever
    estimator trained the model (a relaxation is a training device only)."""
    return {"test_elbo": prog.evaluate(d["test"], "elbo", samples=samples, seed=seed),
            f"test_iwae_{samples}": prog.evaluate(d["test"], "iwae", samples=samples, seed=seed)}
