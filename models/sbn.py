"""Sigmoid belief net trained as a VAE on the binarized digits (Neal 1992; Mnih & Gregor 2014).

Generative model p(h_L) p(h_{L-1} | h_L) ... p(x | h_1) of layers of Bernoulli units;
inference network (the guide) q(h_1 | x) q(h_2 | h_1) ...; declared with m.latent / m.observe,
so the compiler derives the costs -log p(x | h_1), -log p(h_l | h_{l+1}), -log p(h_L) and
log q(h_l | .): the objective is -ELBO.
Linear variant: every conditional is one Affine layer; nonlinear: an Affine-tanh-Affine MLP.

    ppl train sbn                                  # linear 64-32, Adam 1e-3, 3000 steps
    ppl train sbn --model-opt latent=32,32 --model-opt nonlinear=1
    ppl train sbn --data mnist.npz --model-opt latent=200,200   # your data: train_x / test_x, or x

Evaluation (`prog.evaluate`, hard Bernoulli draws of the guide, so it is the same whatever
estimator trained the model): the test ELBO (mean over test images of the single-sample ELBO
averaged over 100 draws), the importance-weighted bound with K = 100 (Burda et al. 2016), and
the exact log-likelihood, in NumPy by enumerating the latent configurations when there are <= 16.
"""
import numpy as np

import ppl
from ppl.training.data import digits

from ._numpy import EVAL_BLOCK, affine, log_bernoulli, logsumexp, params64

DEFAULTS = dict(steps=3000, batch=32, lr=1e-3, optimizer="adam", dtype="float32", samples=4, policy="measured")
HEADLINE = "test_elbo"
BETTER = "higher"   # which way the headline metric improves (ppl compare says so)
DATA_WIDTHS = {"x": "pixels"}  # the build() option `ppl train --data` sets to the data's width
MAX_EXACT = 16


def _net(inp, out, name, nonlinear, hidden):
    if nonlinear:
        return ppl.Affine(ppl.tanh(ppl.Affine(inp, hidden, name=f"{name}_h")), out, name=name)
    return ppl.Affine(inp, out, name=name)


def build(latent=(32,), nonlinear=False, hidden=64, pixels=64) -> ppl.Model:
    """latent: units per stochastic layer, from the data side (one or two layers, e.g. (32,) or (32, 32))."""
    latent = tuple(int(n) for n in (latent if isinstance(latent, (tuple, list)) else (latent,)))
    if not 1 <= len(latent) <= 2 or min(latent) < 1:
        raise ppl.ModelError(f"sbn: latent must give 1 or 2 stochastic layers of >= 1 units, got {latent}")
    nonlinear = bool(int(nonlinear)) if isinstance(nonlinear, str) else bool(nonlinear)
    name = f"sbn_{'nl' if nonlinear else 'lin'}_{'_'.join(map(str, latent))}"
    with ppl.Model(name) as m:
        x = m.input("x", pixels)
        hs, prev = [], x
        for l, n in enumerate(latent, 1):          # the guide q(h_1 | x) q(h_2 | h_1)
            h = ppl.Bernoulli(f"h{l}", logits=_net(prev, n, f"q{l}", nonlinear, hidden))
            hs.append(h)
            prev = h
        # the generative model p(h_L) ... p(h_1 | h_2) p(x | h_1)
        m.observe("recon", ppl.dist.Bernoulli(logits=_net(hs[0], pixels, "p0", nonlinear, hidden)), x)
        for l in range(1, len(latent)):
            m.latent(hs[l - 1], ppl.dist.Bernoulli(logits=_net(hs[l], latent[l - 1], f"p{l}", nonlinear, hidden)))
        m.latent(hs[-1], ppl.dist.Bernoulli(logits=ppl.param("prior", latent[-1], 0.0)))
    m.config = dict(latent=latent, nonlinear=nonlinear, hidden=int(hidden), pixels=int(pixels))
    return m


def data(seed=0, dtype=np.float32) -> dict:
    d = digits(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}


def _mlp(P, name, x, nonlinear):
    return affine(P, name, np.tanh(affine(P, f"{name}_h", x)) if nonlinear else x)


def log_joint(P, cfg, x, hs):
    """log p(x, h_1, ..., h_L) for matching leading axes."""
    nl, L = cfg["nonlinear"], len(cfg["latent"])
    out = log_bernoulli(x, _mlp(P, "p0", hs[0], nl))
    for l in range(1, L):
        out = out + log_bernoulli(hs[l - 1], _mlp(P, f"p{l}", hs[l], nl))
    return out + log_bernoulli(hs[-1], P["prior"])


def exact_log_likelihood(prog, x) -> np.ndarray:
    """log p(x) per row, summing over every latent configuration (total latent units <= 16)."""
    P, cfg = params64(prog), prog.model.config
    sizes = cfg["latent"]
    n = sum(sizes)
    if n > MAX_EXACT:
        raise ppl.ModelError(f"sbn: exact likelihood enumerates 2^{n} configurations; only latent sizes "
                             f"totalling <= {MAX_EXACT} are supported (use the importance-weighted bound)")
    conf = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    hs = np.split(conf, np.cumsum(sizes)[:-1], axis=1)
    prior = log_joint(P, cfg, np.zeros((2 ** n, cfg["pixels"])), hs)           # log p(h), x-free part ...
    dec = _mlp(P, "p0", hs[0], cfg["nonlinear"])
    prior = prior - log_bernoulli(np.zeros_like(dec), dec)                    # ... minus log p(x=0 | h)
    norm = np.logaddexp(0.0, dec).sum(1)[None, :]
    x = np.asarray(x, np.float64)
    rows = max(1, EVAL_BLOCK // 2 ** n)                                        # (rows, 2^n) log p(x | h) at a time
    return np.concatenate([logsumexp(x[i:i + rows] @ dec.T - norm + prior[None, :], axis=1)
                           for i in range(0, x.shape[0], rows)])


def evaluate(prog, d, samples=100, seed=0) -> dict:
    """The test ELBO and IWAE(samples) from prog.evaluate (hard draws of the guide, whatever
    estimator trained it), and the exact log-likelihood when it can be enumerated."""
    x = d["test"]["x"]
    out = {"test_elbo": prog.evaluate(d["test"], "elbo", samples=samples, seed=seed),
           f"test_iwae_{samples}": prog.evaluate(d["test"], "iwae", samples=samples, seed=seed)}
    if sum(prog.model.config["latent"]) <= MAX_EXACT:
        out["test_exact_ll"] = float(exact_log_likelihood(prog, x).mean())
    return out
