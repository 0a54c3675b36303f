"""The bundled VAEs' log weights log p(x, h) - log q(h | x) written directly in NumPy (float64),
at given draws h: the oracle of prog.log_weights / evaluate (tests/test_declare.py). These are
the models' former hand-written evaluations, with the draws taken from the program instead of
a NumPy generator."""
import numpy as np


def log_bernoulli(b, logits):
    return (b * logits - np.logaddexp(0.0, logits)).sum(-1)


def log_normal(z, loc, scale):
    return (-0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2).sum(-1)


def log_softmax(a, K):
    g = a.reshape(a.shape[:-1] + (-1, K))
    g = g - g.max(-1, keepdims=True)
    return (g - np.log(np.exp(g).sum(-1, keepdims=True))).reshape(a.shape)


def _affine(P, name, x):
    return x @ P[f"{name}.W"] + P[f"{name}.b"]


def _mlp(P, name, x, nonlinear):
    return _affine(P, name, np.tanh(_affine(P, f"{name}_h", x)) if nonlinear else x)


def sbn(P, cfg, x, hs):
    nl, L = cfg["nonlinear"], len(cfg["latent"])
    out = log_bernoulli(x, _mlp(P, "p0", hs[0], nl))
    for l in range(1, L):
        out = out + log_bernoulli(hs[l - 1], _mlp(P, f"p{l}", hs[l], nl))
    out = out + log_bernoulli(hs[-1], P["prior"])
    prev = x
    for l in range(L):
        out = out - log_bernoulli(hs[l], _mlp(P, f"q{l + 1}", prev, nl))
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
