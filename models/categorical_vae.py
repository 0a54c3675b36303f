"""Discrete VAE with groups of K-way categorical latents on the binarized digits
(Jang et al. 2017; Maddison et al. 2017).

q(z | x): `groups` one-hot categorical variables of `classes` values from a tanh MLP encoder;
p(z): a learned factorised categorical prior; p(x | z): Bernoulli pixels from a tanh MLP
decoder. Costs -log p(x | z), log q(z | x) and -log p(z) (a softmax cross-entropy of the prior
logits against the one-hot z), so the objective is -ELBO. Any estimator that applies to a
Categorical node can train it: gumbel_softmax (the default here), straight_through, score,
and those added to the registry later (REBAR, RELAX).

    ppl train categorical_vae                       # 8 groups x K=4, Gumbel-softmax tau=0.5
    ppl compare categorical_vae --estimators gumbel_softmax,straight_through,score

Evaluation is NumPy with hard categorical draws (the relaxation is a training device only):
the test ELBO over 100 draws per image and the importance-weighted bound with K = 100.
"""
import numpy as np

import ppl
from ppl.data import digits

from ._numpy import affine, by_rows, log_bernoulli, log_softmax, logsumexp, params64, sample_categorical

DEFAULTS = dict(steps=3000, batch=32, lr=1e-3, optimizer="adam", dtype="float32", samples=1, policy="unbiased",
                estimators="gumbel_softmax")
HEADLINE = "test_elbo"
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


def log_weights(prog, x, samples=100, seed=0) -> np.ndarray:
    """(N, samples) log p(x, z) - log q(z | x) with hard z ~ q(z | x), in float64."""
    P, K = params64(prog), prog.model.config["classes"]
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    logits = affine(P, "enc", np.tanh(affine(P, "enc_h", x)))[:, None, :]
    logits = np.broadcast_to(logits, (x.shape[0], samples, logits.shape[-1]))
    z = sample_categorical(logits, K, rng)
    logq = (z * log_softmax(logits, K)).sum(-1)
    logp = (z * log_softmax(P["prior"], K)).sum(-1)
    recon = log_bernoulli(x[:, None, :], affine(P, "dec", np.tanh(affine(P, "dec_h", z))))
    return recon + logp - logq


def evaluate(prog, d, samples=100, seed=0) -> dict:
    lw = by_rows(lambda xb, s: log_weights(prog, xb, samples, s), d["test"]["x"], samples, seed)
    return {"test_elbo": float(lw.mean()),
            f"test_iwae_{samples}": float((logsumexp(lw, 1) - np.log(samples)).mean())}
