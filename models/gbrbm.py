"""A Gaussian-Bernoulli RBM trained as an unnormalised model by noise-contrastive
estimation (Gutmann & Hyvarinen 2010) on continuous data.

With unit visible variances the free energy is
    F(v) = 1/2 |v - b|^2 - sum_j softplus(c_j + (W^T v)_j),
and log p(v) = -F(v) - log Z. NCE treats log Z as a parameter (`logZ`) and fits
s(v) = -F(v) - logZ by logistic regression of data rows (label 1) against k noise rows per
data row (label 0) drawn from a Gaussian q fitted to the data: the loss per row is the
Bernoulli NLL of the label with logit s(v) - log(k q(v)).

    ppl train gbrbm

Data: a 2-D mixture of four Gaussians (well separated), 4000 training and 1000 test points.
Reports the held-out NCE loss, the accuracy of telling data from noise, and a sample check:
Gibbs samples of the trained RBM (h | v Bernoulli, v | h Gaussian) against the data's mean,
covariance and mixture-component occupancy.
"""
import numpy as np

import ppl

DEFAULTS = dict(steps=3000, batch=128, lr=1e-2, optimizer="adam", dtype="float64", samples=1, policy="measured")
HEADLINE = "test_nce_loss"
BETTER = "lower"   # which way the headline metric improves (ppl compare says so)
CENTRES = np.array([[-2.5, -2.5], [-2.5, 2.5], [2.5, -2.5], [2.5, 2.5]])
NOISE_K = 4


def build(dim=2, hidden=8) -> ppl.Model:
    with ppl.Model("gbrbm") as m:
        v = m.input("v", dim)
        label = m.input("label", 1)
        logkq = m.input("logkq", 1)
        b = ppl.param("b", dim)
        d = v - b
        free_energy = 0.5 * ppl.rowsum(d * d) - ppl.rowsum(ppl.softplus(ppl.Affine(v, hidden, name="W")))
        logZ = ppl.param("logZ", 1, init=2.0)
        s = -1.0 * free_energy - logZ
        m.cost("nce", ppl.bernoulli_nll(s - logkq, target=label))
    return m


def mixture(n, rng):
    c = CENTRES[rng.integers(len(CENTRES), size=n)]
    return c + 0.6 * rng.standard_normal((n, 2))


def data(seed=0, dtype=np.float64, k=NOISE_K) -> dict:
    rng = np.random.default_rng(seed)
    train, test = mixture(4000, rng), mixture(1000, rng)
    mu, cov = train.mean(0), np.cov(train.T) * 1.2   # a slightly wider Gaussian noise
    L = np.linalg.cholesky(cov)
    icov = np.linalg.inv(cov)
    logdet = np.linalg.slogdet(cov)[1]

    def logq(x):
        dx = x - mu
        return -0.5 * np.einsum("ni,ij,nj->n", dx, icov, dx) - 0.5 * logdet - np.log(2 * np.pi)

    def rows(x):
        noise = mu + rng.standard_normal((x.shape[0] * k, 2)) @ L.T
        v = np.concatenate([x, noise])
        y = np.concatenate([np.ones(len(x)), np.zeros(len(noise))])
        perm = rng.permutation(len(v))
        return {"v": v[perm].astype(dtype), "label": y[perm, None].astype(dtype),
                "logkq": (np.log(k) + logq(v[perm]))[:, None].astype(dtype)}

    return {"train": rows(train), "test": rows(test), "test_points": test}


def gibbs(P, n, steps, rng):
    """Block Gibbs sampling of the RBM: h | v ~ Bernoulli(sigmoid(c + W^T v)), v | h ~ N(b + W h, I)."""
    W, c, b = P["W.W"], P["W.b"], P["b"]
    v = rng.standard_normal((n, W.shape[0])) * 3
    for _ in range(steps):
        h = (rng.random((n, W.shape[1])) < 1 / (1 + np.exp(-(c + v @ W)))).astype(float)
        v = b + h @ W.T + rng.standard_normal(v.shape)
    return v


def evaluate(prog, d, seed=0) -> dict:
    te = d["test"]
    loss = prog.loss(te, seed=0)
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    v = te["v"].astype(np.float64)
    F = 0.5 * ((v - P["b"]) ** 2).sum(1) - np.logaddexp(0, P["W.b"] + v @ P["W.W"]).sum(1)
    s = -F - P["logZ"][0] - te["logkq"][:, 0]
    acc = float(np.mean((s > 0) == (te["label"][:, 0] > 0.5)))
    samples = gibbs(P, 2000, 200, np.random.default_rng(seed))
    pts = d["test_points"]
    occ = lambda x: np.bincount(np.argmin(((x[:, None, :] - CENTRES) ** 2).sum(-1), 1), minlength=4) / len(x)
    return {"test_nce_loss": float(loss), "data_vs_noise_accuracy": acc,
            "sample_mean_error": float(np.abs(samples.mean(0) - pts.mean(0)).max()),
            "sample_cov_error": float(np.abs(np.cov(samples.T) - np.cov(pts.T)).max()),
            "occupancy_error": float(np.abs(occ(samples) - occ(pts)).max())}
