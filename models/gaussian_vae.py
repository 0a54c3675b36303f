"""Gaussian VAE on the binarized digits (Kingma & Welling 2014).

Encoder x -> tanh(Affine 32) -> (loc, scale = softplus(Affine)) of 8 Gaussian latents;
z = loc + scale * eps (pathwise); decoder z -> tanh(Affine 32) -> Bernoulli logits of the 64
pixels. Costs: the reconstruction NLL and the closed-form KL(q(z|x) || N(0, I)),
so the objective is -ELBO.

    ppl train gaussian_vae                         # 64-32-8 tanh, Adam 3e-3, batch 32, 3000 steps

Evaluation: the test ELBO, the mean over test images of the single-sample ELBO averaged over
100 draws (the forward pass is exact for pathwise nodes, so the program's own loss is used).
"""
import numpy as np

import ppl
from ppl.data import digits

DEFAULTS = dict(steps=3000, batch=32, lr=3e-3, optimizer="adam", dtype="float32", samples=1, policy="unbiased")
HEADLINE = "test_elbo"
DATA_WIDTHS = {"x": "pixels"}  # the build() option `ppl train --data` sets to the data's width


def build(hidden=32, latent=8, pixels=64) -> ppl.Model:
    with ppl.Model(f"gaussian_vae_{pixels}_{hidden}_{latent}") as m:
        x = m.input("x", pixels)
        e = ppl.tanh(ppl.Affine(x, int(hidden), name="enc"))
        loc = ppl.Affine(e, int(latent), name="loc")
        scale = ppl.softplus(ppl.Affine(e, int(latent), name="scale"))
        z = ppl.Normal("z", loc=loc, scale=scale)
        d = ppl.tanh(ppl.Affine(z, int(hidden), name="dec"))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(d, pixels, name="out"), target=x))
        m.cost("kl", ppl.gaussian_kl(loc, scale))
    return m


def data(seed=0, dtype=np.float32) -> dict:
    d = digits(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}


def evaluate(prog, d, samples=100, seed=0) -> dict:
    base = 2 ** 41 + 1000 * int(seed)
    return {"test_elbo": -float(np.mean([prog.loss(d["test"], seed=base + k) for k in range(samples)]))}
