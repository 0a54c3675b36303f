"""Skip-gram word embeddings trained by negative sampling or noise-contrastive estimation
(Mikolov et al. 2013; Gutmann & Hyvarinen 2010), on a synthetic corpus with planted
co-occurrence structure (`ppl.data.cooccurrence_corpus`: words in groups, the stream stays in
a group), so that the recovered neighbours can be checked against the truth.

Rows are (centre, word, label): observed (centre, context) pairs with label 1 and, for each,
k pairs (centre, noise word) with label 0, noise words drawn from the unigram^0.75
distribution q. The score is s = <u_centre, v_word>; the loss per row is the logistic loss of
s - log(k q(word)) (NCE) or of s alone (negative sampling, `objective="neg"`), i.e. a
Bernoulli NLL of the label: -log sigmoid(s - log k q) for data, -log sigmoid(log k q - s) for
noise.

    ppl train nce_embeddings

Reports the held-out NCE loss and the neighbour precision: for each word, the fraction of its
nearest neighbours (cosine of u) that share its planted group.
"""
import numpy as np

import ppl
from ppl.training.data import cooccurrence_corpus

DEFAULTS = dict(steps=3000, batch=128, lr=3e-2, optimizer="adam", dtype="float32", samples=1, policy="measured")
HEADLINE = "neighbour_precision"
BETTER = "higher"   # which way the headline metric improves (ppl compare says so)
VOCAB, CLUSTERS, NOISE_K = 40, 8, 4


def build(vocab=VOCAB, dim=8, objective="nce") -> ppl.Model:
    if objective not in ("nce", "neg"):
        raise ppl.ModelError(f"nce_embeddings: objective must be 'nce' or 'neg', got {objective!r}")
    with ppl.Model(f"nce_embeddings_{objective}") as m:
        centre = m.input("centre", vocab)       # one-hot
        word = m.input("word", vocab)           # one-hot: the context word or a noise word
        label = m.input("label", 1)             # 1 for an observed pair, 0 for a noise pair
        logkq = m.input("logkq", 1)             # log(k q(word)); zeros for negative sampling
        u = ppl.Affine(centre, dim, name="u")
        v = ppl.Affine(word, dim, name="v")
        s = ppl.rowdot(u, v, name="score")
        logits = s - logkq if objective == "nce" else s
        m.cost("nce", ppl.bernoulli_nll(logits, target=label))
    return m


def _rows(centre, context, q, k, rng, objective, vocab, dtype):
    n = centre.shape[0]
    noise = rng.choice(vocab, size=(n, k), p=q)
    c = np.concatenate([centre, np.repeat(centre, k)])
    w = np.concatenate([context, noise.ravel()])
    y = np.concatenate([np.ones(n), np.zeros(n * k)])
    eye = np.eye(vocab, dtype=dtype)
    logkq = np.log(k * q[w]) if objective == "nce" else np.zeros(w.shape[0])
    perm = rng.permutation(c.shape[0])
    return {"centre": eye[c[perm]], "word": eye[w[perm]], "label": y[perm, None].astype(dtype),
            "logkq": logkq[perm, None].astype(dtype)}


def data(seed=0, dtype=np.float32, objective="nce", k=NOISE_K) -> dict:
    corpus = cooccurrence_corpus(vocab=VOCAB, clusters=CLUSTERS, tokens=6000, seed=seed)
    q = corpus["counts"] ** 0.75
    q = q / q.sum()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(corpus["centre"].shape[0])
    n_test = idx.shape[0] // 10
    test, train = idx[:n_test], idx[n_test:]
    mk = lambda ii: _rows(corpus["centre"][ii], corpus["context"][ii], q, k, rng, objective, VOCAB, dtype)
    return {"train": mk(train), "test": mk(test), "group": corpus["group"]}


def neighbour_precision(U, group, n=None) -> float:
    """Mean fraction of each word's n nearest neighbours (cosine) in its own planted group."""
    n = n or int(np.bincount(group).min()) - 1
    X = U / np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-12)
    sim = X @ X.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :n]
    return float(np.mean(group[nearest] == group[:, None]))


def evaluate(prog, d) -> dict:
    te = d["test"]
    loss = float(np.mean([prog.loss(te, seed=s) for s in range(1)]))
    U = np.asarray(prog.params["u.W"], np.float64)   # row i: the embedding of word i
    return {"neighbour_precision": neighbour_precision(U, d["group"]), "test_loss": loss}
