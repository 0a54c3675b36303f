"""The bundled VAEs' log weights log p(x, h) - log q(h | x) written directly in NumPy (float64),
at given draws h: the oracle of prog.log_weights / evaluate (tests/language/test_declare.py). These are
the models' former hand-written evaluations, with the draws taken from the program instead of
a NumPy generator."""
import numpy as np

from ppl.models import sbn as sbn_model
from ppl.models._numpy import affine as _affine, log_bernoulli, log_softmax


def log_normal(z, loc, scale):
    return (-0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2).sum(-1)


def sbn(P, cfg, x, hs):
    """log p(x, h) (the model's NumPy log joint, which its exact likelihood enumerates) - log q(h | x)."""
    out = sbn_model.log_joint(P, cfg, x, hs)
    prev = x
    for l in range(len(cfg["latent"])):
        out = out - log_bernoulli(hs[l], sbn_model._mlp(P, f"q{l + 1}", prev, cfg["nonlinear"]))
        prev = hs[l]
    return out


def gaussian_vae(P, x, z):
    e = np.tanh(_affine(P, "enc", x))
    loc, scale = _affine(P, "loc", e), np.logaddexp(0.0, _affine(P, "scale", e))
    recon = log_bernoulli(x, _affine(P, "out", np.tanh(_affine(P, "dec", z))))
    return recon + log_normal(z, 0.0, 1.0) - log_normal(z, loc, scale)


def categorical_vae(P, K, x, z):
    logits = _affine(P, "enc", np.tanh(_affine(P, "enc_h", x)))
    logq = (z * log_softmax(logits, K)).sum(-1)
    logp = (z * log_softmax(P["prior"], K)).sum(-1)
    return log_bernoulli(x, _affine(P, "dec", np.tanh(_affine(P, "dec_h", z)))) + logp - logq


def log_weights(name, prog, x, draws, S):
    """(rows, S) log weights of model `name` at the draws {node: (rows * S, width)} (row i * S + s)."""
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    xs = np.repeat(np.asarray(x, np.float64), S, axis=0)
    if name == "sbn":
        cfg = prog.model.config
        lw = sbn(P, cfg, xs, [draws[f"h{l + 1}"] for l in range(len(cfg["latent"]))])
    elif name == "gaussian_vae":
        lw = gaussian_vae(P, xs, draws["z"])
    else:
        lw = categorical_vae(P, prog.model.config["classes"], xs, draws["z"])
    return lw.reshape(-1, S)
