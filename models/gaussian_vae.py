"""Gaussian VAE on the binarized digits (Kingma & Welling 2014).

Encoder x -> tanh(Affine 32) -> (loc, scale = softplus(Affine)) of 8 Gaussian latents;
z = loc + scale * eps (pathwise); decoder z -> tanh(Affine 32) -> Bernoulli logits of the 64
pixels; p(z) = N(0, I). Declared with m.latent / m.observe: the derived costs are the
reconstruction NLL and the closed-form KL(q(z|x) || N(0, I)) (kl="sampled": log q(z | x) -
log p(z) of each draw), so the objective is -ELBO.

    ppl train gaussian_vae                         # 64-32-8 tanh, Adam 3e-3, batch 32, 3000 steps

Evaluation (`prog.evaluate`): the test ELBO, the mean over test images of the single-sample
ELBO averaged over 100 draws, and the importance-weighted bound with K = 100.
"""
import numpy as np

import ppl
from ppl.training.data import digits

DEFAULTS = dict(steps=3000, batch=32, lr=3e-3, optimizer="adam", dtype="float32", samples=1, policy="measured")
HEADLINE = "test_elbo"
BETTER = "higher"   # which way the headline metric improves (ppl compare says so)
DATA_WIDTHS = {"x": "pixels"}  # the build() option `ppl train --data` sets to the data's width


def build(hidden=32, latent=8, pixels=64, kl="analytic") -> ppl.Model:
    """kl: "analytic" (the closed-form KL to N(0, I)) or "sampled" (log q(z | x) - log p(z) of each
    draw: the costs then form a log weight per draw, as the importance-weighted bound needs)."""
    if kl not in ("analytic", "sampled"):
        raise ValueError(f"kl must be 'analytic' or 'sampled', got {kl!r}")
    with ppl.Model(f"gaussian_vae_{pixels}_{hidden}_{latent}" + ("_sampled" if kl == "sampled" else "")) as m:
        x = m.input("x", pixels)
        e = ppl.tanh(ppl.Affine(x, int(hidden), name="enc"))
        loc = ppl.Affine(e, int(latent), name="loc")
        scale = ppl.softplus(ppl.Affine(e, int(latent), name="scale"))
        z = ppl.Normal("z", loc=loc, scale=scale)                  # the guide q(z | x)
        d = ppl.tanh(ppl.Affine(z, int(hidden), name="dec"))
        m.observe("recon", ppl.dist.Bernoulli(logits=ppl.Affine(d, pixels, name="out")), x)   # p(x | z)
        m.latent(z, ppl.dist.Normal(0.0, 1.0), kl=kl)                # p(z) = N(0, I)
    return m


def data(seed=0, dtype=np.float32) -> dict:
    d = digits(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}


def evaluate(prog, d, samples=100, seed=0) -> dict:
    """The test ELBO and IWAE(samples) from prog.evaluate (per-draw terms log q(z | x) - log p(z)
    whatever KL form trained the model; the same for a program of the bound)."""
    return {"test_elbo": prog.evaluate(d["test"], "elbo", samples=samples, seed=seed),
            f"test_iwae_{samples}": prog.evaluate(d["test"], "iwae", samples=samples, seed=seed)}
