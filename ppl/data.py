"""Data for the ready models: the bundled binarized digits, a loader for the user's own MNIST
files, synthetic generators with known ground truth, and a minibatch sampler.

    d = ppl.data.digits()                  # {"train_x", "train_y", "test_x", "test_y"}
    d = ppl.data.load_mnist("train-images-idx3-ubyte", labels="train-labels-idx1-ubyte")

The digits are the UCI optical-recognition hand-written digits (8x8, 1797 images, grey levels
0..16), binarized at pixel > 7 and split by a fixed permutation into 1500 training and 297
test images (scripts/make_digits.py made the bundled file; no scikit-learn at runtime).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .dsl import ModelError



def _digits_path() -> Path:
    """The bundled file: ppl.models' package data when installed, models/data in a checkout."""
    try:
        from importlib.resources import files
        p = files("ppl.models").joinpath("data", "digits.npz")
        if p.is_file():
            return Path(str(p))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    alt = Path(__file__).resolve().parent.parent / "models" / "data" / "digits.npz"
    if alt.is_file():
        return alt
    raise ModelError("the bundled digits file (ppl/models/data/digits.npz) is missing from this installation; "
                     "reinstall ppl, or regenerate it with `python scripts/make_digits.py` (needs scikit-learn)")


def digits(dtype=np.float32) -> dict:
    """The binarized digits: train_x (1500, 64), test_x (297, 64) in {0, 1} as `dtype`;
    train_y, test_y integer labels 0..9 (int64)."""
    with np.load(_digits_path()) as f:
        n = int(f["pixels"])
        out = {}
        for split in ("train", "test"):
            out[f"{split}_x"] = np.unpackbits(f[f"{split}_bits"], axis=1)[:, :n].astype(dtype)
            out[f"{split}_y"] = f[f"{split}_labels"].astype(np.int64)
    return out


def one_hot(labels, classes: int = 10, dtype=np.float32) -> np.ndarray:
    """(N,) integer labels -> (N, classes) one-hot rows."""
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= classes)):
        raise ModelError(f"one_hot: labels must be a 1D array of integers in [0, {classes}), got shape {y.shape}"
                         + (f" with range [{y.min()}, {y.max()}]" if y.size else ""))
    out = np.zeros((y.shape[0], classes), dtype)
    out[np.arange(y.shape[0]), y.astype(np.int64)] = 1
    return out


# --------------------------------------------------------------------------- the user's MNIST files
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX file (the MNIST format; .gz accepted): magic 0x0000TTDD, D big-endian int32 sizes, data."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"read_idx: no file at {path}; give the path of an IDX file such as "
                         f"train-images-idx3-ubyte(.gz)")
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ModelError(f"read_idx: {path} is not an IDX file (bad magic number {raw[:4].hex()}); MNIST files "
                         f"start with 0x00000803 (images) or 0x00000801 (labels)")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).astype(np.int64)
    dt = np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    need = int(np.prod(dims)) * dt.itemsize
    if len(raw) - start != need:
        raise ModelError(f"read_idx: {path} declares shape {tuple(dims)} ({need} bytes of data) but holds "
                         f"{len(raw) - start}; the file is truncated or not an IDX file")
    return np.frombuffer(raw, dt, offset=start).reshape(tuple(dims)).astype(dt.newbyteorder("="))


def load_mnist(images, labels=None, binarize: float | None = 127.0, dtype=np.float32) -> dict:
    """The user's own MNIST-style data as {"x": (N, H*W), "y": (N,)} (y only when labels are given).

    images: an IDX image file (e.g. train-images-idx3-ubyte[.gz]) or an .npz holding arrays
    "x" or "images" (and optionally "y" / "labels"). Pixels are binarized at > `binarize`
    (None keeps grey levels scaled to [0, 1])."""
    path = Path(images)
    y = None
    if path.suffix == ".npz":
        if not path.is_file():
            raise ModelError(f"load_mnist: no file at {path}")
        with np.load(path) as f:
            key = next((k for k in ("x", "images", "x_train") if k in f.files), None)
            if key is None:
                raise ModelError(f"load_mnist: {path} holds {f.files}; store the images as 'x' or 'images' "
                                 f"(and the labels as 'y' or 'labels')")
            x = np.asarray(f[key])
            lk = next((k for k in ("y", "labels", "y_train") if k in f.files), None)
            y = None if lk is None else np.asarray(f[lk])
    else:
        x = read_idx(path)
    if labels is not None:
        y = read_idx(labels) if Path(labels).suffix != ".npz" else np.load(labels)["y"]
    if x.ndim < 2:
        raise ModelError(f"load_mnist: images must have at least 2 dimensions (N, pixels...), got {x.shape}")
    x = x.reshape(x.shape[0], -1)
    scale = 255.0 if x.dtype == np.uint8 or x.max(initial=0) > 1 else 1.0
    out = {"x": ((x > binarize) if binarize is not None else x / scale).astype(dtype)}
    if y is not None:
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ModelError(f"load_mnist: {x.shape[0]} images but {y.shape[0]} labels; give matching files")
        out["y"] = y
    return out


def write_idx(path, array) -> None:
    """Write an array as an IDX file (uint8, int32 or float64 payloads); the inverse of read_idx."""
    a = np.asarray(array)
    codes = {np.dtype(np.uint8): (0x08, np.uint8), np.dtype(np.int32): (0x0C, ">i4"),
             np.dtype(np.float64): (0x0E, ">f8")}
    if a.dtype not in codes:
        raise ModelError(f"write_idx: dtype {a.dtype} is not supported; use uint8, int32 or float64")
    code, dt = codes[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + np.array(a.shape, ">i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(head + a.astype(dt).tobytes())


# --------------------------------------------------------------------------- synthetic data
def heteroscedastic(n: int = 1000, seed: int = 0, dtype=np.float64) -> dict:
    """1D regression with input-dependent noise (seed 004's setting), known ground truth:
    x ~ U(-3, 3), t = mu(x) + sigma(x) eps, eps ~ N(0, 1), with mu(x) = 3 sin(x) + x and
    sigma(x) = sqrt(1 + x^2) -- exactly seed 004's scale activation of z = x, so the model
    family contains the truth. Returns x (n, 1), t (n, 1) and the true mu, sigma (n, 1)."""
    if int(n) < 1:
        raise ModelError(f"heteroscedastic: n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, (int(n), 1))
    mu = 3.0 * np.sin(x) + x
    sigma = np.sqrt(1.0 + x ** 2)
    t = mu + sigma * rng.standard_normal(x.shape)
    return {"x": x.astype(dtype), "t": t.astype(dtype), "mu": mu.astype(dtype), "sigma": sigma.astype(dtype)}


def cooccurrence_corpus(vocab: int = 40, clusters: int = 8, tokens: int = 20000, window: int = 2,
                        p_stay: float = 0.9, seed: int = 0) -> dict:
    """A token stream with planted co-occurrence structure: words are split into `clusters`
    equal groups; the stream stays in the current group with probability p_stay, drawing words
    with Zipf-like frequencies. Returns the stream, the (centre, context) pairs within
    `window`, the unigram counts and `group` (the planted neighbours: same group)."""
    if vocab % clusters or vocab < 2 * clusters:
        raise ModelError(f"cooccurrence_corpus: vocab={vocab} must be a multiple of clusters={clusters} with at "
                         f"least 2 words per cluster")
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(clusters), vocab // clusters)
    members = [np.flatnonzero(group == c) for c in range(clusters)]
    within = 1.0 / np.arange(1, vocab // clusters + 1)
    within /= within.sum()
    stream = np.empty(int(tokens), np.int64)
    c = 0
    for i in range(stream.shape[0]):
        if rng.random() > p_stay:
            c = int(rng.integers(clusters))
        stream[i] = members[c][rng.choice(within.shape[0], p=within)]
    centre, context = [], []
    for off in range(1, int(window) + 1):
        centre += [stream[:-off], stream[off:]]
        context += [stream[off:], stream[:-off]]
    return {"stream": stream, "centre": np.concatenate(centre), "context": np.concatenate(context),
            "counts": np.bincount(stream, minlength=vocab), "group": group}


# --------------------------------------------------------------------------- minibatches
class Batches:
    """Minibatches of the rows of a dict of equally long arrays: shuffled epochs, reproducible
    from a seed, and resumable (the batch at step t depends only on the seed and t)."""

    def __init__(self, data: dict, batch_size: int, seed: int = 0, dtype=None):
        if not isinstance(data, dict) or not data:
            raise ModelError("data must be a non-empty dict {input name: (N, width) array}")
        arrays = {k: np.asarray(v) for k, v in data.items()}
        lens = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(lens.values())) != 1:
            raise ModelError(f"data arrays must have the same number of rows, got {lens}")
        self.n = next(iter(lens.values()))
        if int(batch_size) < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = min(int(batch_size), self.n)
        self.arrays = {k: np.ascontiguousarray(a, dtype=dtype or a.dtype) for k, a in arrays.items()}
        self.seed = int(seed)
        self.per_epoch = self.n // self.batch_size
        self._perm_epoch, self._perm = -1, None

    def __call__(self, t: int) -> dict:
        """The batch of step t: epoch t // per_epoch of a fresh permutation seeded by (seed, epoch)."""
        epoch, j = divmod(int(t), self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        idx = self._perm[j * self.batch_size:(j + 1) * self.batch_size]
        return {k: a[idx] for k, a in self.arrays.items()}
