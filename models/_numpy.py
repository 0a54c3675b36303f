"""NumPy reference math shared by the models' evaluations (float64, independent of the
compiled program and of its estimators: relaxed estimators change the training forward pass,
never the evaluation)."""
import numpy as np


def softplus(a):
    return np.logaddexp(0.0, a)


def log_bernoulli(b, logits):
    """sum over the last axis of log Bernoulli(b | sigmoid(logits))."""
    return (b * logits - softplus(logits)).sum(-1)


def sample_bernoulli(logits, rng):
    return (rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)


def log_softmax(a, K):
    """log-softmax over consecutive groups of K columns."""
    g = a.reshape(a.shape[:-1] + (-1, K))
    g = g - g.max(-1, keepdims=True)
    return (g - np.log(np.exp(g).sum(-1, keepdims=True))).reshape(a.shape)


def sample_categorical(logits, K, rng):
    """One-hot draws per group of K columns (Gumbel-max)."""
    g = logits.reshape(logits.shape[:-1] + (-1, K)) - np.log(-np.log(rng.random(logits.shape[:-1] + (
        logits.shape[-1] // K, K))))
    out = np.zeros(g.shape)
    np.put_along_axis(out, g.argmax(-1)[..., None], 1.0, -1)
    return out.reshape(logits.shape)


def logsumexp(a, axis):
    m = a.max(axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis, keepdims=True))).squeeze(axis)


EVAL_BLOCK = 1 << 23  # float64 elements of the largest (rows, draws, columns) temporary of an evaluation


def by_rows(fn, x, draws, seed=0):
    """fn(block of rows of x, seed + first row) concatenated: bounded memory on large test sets
    (MNIST with 100 draws per image). One block, so fn(x, seed) itself, for the bundled digits."""
    rows = max(1, EVAL_BLOCK // (draws * x.shape[1]))
    return np.concatenate([fn(x[i:i + rows], seed + i) for i in range(0, x.shape[0], rows)])


def params64(prog):
    return {k: np.asarray(v, np.float64) for k, v in prog.params.items()}


def affine(P, name, x):
    return x @ P[f"{name}.W"] + P[f"{name}.b"]
