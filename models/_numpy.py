"""NumPy reference math of the models' exact oracles (the SBN's enumerated log-likelihood) and
the stochastic classifier's accuracy (float64, independent of the compiled program and of its
estimators). Bounds of the declared models come from Program.evaluate."""
import numpy as np


def softplus(a):
    return np.logaddexp(0.0, a)


def log_bernoulli(b, logits):
    """sum over the last axis of log Bernoulli(b | sigmoid(logits))."""
    return (b * logits - softplus(logits)).sum(-1)


def log_softmax(a, K):
    """log-softmax over consecutive groups of K columns."""
    g = a.reshape(a.shape[:-1] + (-1, K))
    g = g - g.max(-1, keepdims=True)
    return (g - np.log(np.exp(g).sum(-1, keepdims=True))).reshape(a.shape)


def logsumexp(a, axis):
    m = a.max(axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis, keepdims=True))).squeeze(axis)


EVAL_BLOCK = 1 << 23  # float64 elements of the largest (rows, draws, columns) temporary of an evaluation


def params64(prog):
    return {k: np.asarray(v, np.float64) for k, v in prog.params.items()}


def affine(P, name, x):
    return x @ P[f"{name}.W"] + P[f"{name}.b"]
