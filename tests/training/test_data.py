"""Data: the bundled digits (shape, binarization, fixed split, package data), the MNIST loader
on tiny IDX / .npz files the test writes (the IDX header is built by hand as the oracle), the
synthetic generators' ground truth, and the minibatch sampler."""
import gzip
import struct
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import ppl
from ppl.training.data import (
    Batches, cooccurrence_corpus, digits, heteroscedastic, load_mnist, one_hot, read_idx, write_idx)

ROOT = Path(__file__).resolve().parents[2]


def test_digits_split_and_binarization():
    d = digits()
    assert d["train_x"].shape == (1500, 64) and d["test_x"].shape == (297, 64)
    assert d["train_y"].shape == (1500,) and d["test_y"].shape == (297,)
    for k in ("train_x", "test_x"):
        assert set(np.unique(d[k])) <= {0.0, 1.0}
    assert 0.25 < d["train_x"].mean() < 0.40       # pixel > 7 of 0..16 grey levels
    assert set(np.unique(d["test_y"])) == set(range(10))
    again = digits(np.float64)
    np.testing.assert_array_equal(again["test_x"], d["test_x"])  # fixed split, not re-drawn


def test_digits_ship_as_package_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/*.npz" in cfg["tool"]["setuptools"]["package-data"]["ppl.models"]
    p = files("ppl.models").joinpath("data", "digits.npz")
    assert p.is_file()
    assert len(p.read_bytes()) < 50_000      # bit-packed: about 10 kB


def _idx_bytes(array, code):
    """Hand-built IDX: two zero bytes, the type code, ndim, big-endian int32 sizes, data."""
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">i", n) for n in array.shape)
    return head + array.tobytes()


def test_load_mnist_idx_and_gz(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    (tmp_path / "img-idx3-ubyte").write_bytes(_idx_bytes(imgs, 0x08))
    (tmp_path / "lab-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x08))
    with gzip.open(tmp_path / "img-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(imgs, 0x08))
    np.testing.assert_array_equal(read_idx(tmp_path / "img-idx3-ubyte"), imgs)
    for name in ("img-idx3-ubyte", "img-idx3-ubyte.gz"):
        d = load_mnist(tmp_path / name, labels=tmp_path / "lab-idx1-ubyte")
        assert d["x"].shape == (5, 12) and d["x"].dtype == np.float32
        np.testing.assert_array_equal(d["x"], (imgs.reshape(5, 12) > 127).astype(np.float32))
        np.testing.assert_array_equal(d["y"], labels)
    grey = load_mnist(tmp_path / "img-idx3-ubyte", binarize=None)["x"]
    np.testing.assert_allclose(grey, imgs.reshape(5, 12) / 255.0, rtol=1e-6)
    write_idx(tmp_path / "w.idx", imgs)
    assert (tmp_path / "w.idx").read_bytes() == _idx_bytes(imgs, 0x08)


def test_load_mnist_npz(tmp_path):
    imgs = (np.arange(2 * 9).reshape(2, 3, 3) * 14).astype(np.uint8)
    np.savez(tmp_path / "mine.npz", images=imgs, labels=np.array([7, 2]))
    d = load_mnist(tmp_path / "mine.npz")
    np.testing.assert_array_equal(d["x"], (imgs.reshape(2, 9) > 127).astype(np.float32))
    np.testing.assert_array_equal(d["y"], [7, 2])


def test_load_mnist_grey_levels_in_unit_range(tmp_path):
    """Images stored as grey levels in [0, 1] are binarised at the same level as bytes (> 127 of
    255), not all to 0; bad pixels are errors, never a silent 0."""
    grey = np.random.default_rng(1).random((4, 6))
    np.savez(tmp_path / "grey.npz", x=grey)
    d = load_mnist(tmp_path / "grey.npz")
    np.testing.assert_array_equal(d["x"], (grey > 127 / 255).astype(np.float32))
    assert 0 < d["x"].sum() < d["x"].size
    np.testing.assert_allclose(load_mnist(tmp_path / "grey.npz", binarize=None)["x"], grey, rtol=1e-6)
    for bad, match in ((np.where(np.eye(4, 6) > 0, np.nan, grey), r"NaN / inf pixels \(the first at image 0, pixel 0\)"),
                       (grey - 1.0, "pixel values in")):
        np.savez(tmp_path / "bad.npz", x=bad)
        with pytest.raises(ppl.ModelError, match=match):
            load_mnist(tmp_path / "bad.npz")


def test_load_mnist_errors_name_the_problem(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ppl.ModelError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    good = _idx_bytes(np.zeros((3, 2, 2), np.uint8), 0x08)
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(ppl.ModelError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(ppl.ModelError, match="no file at"):
        read_idx(tmp_path / "missing")
    (tmp_path / "img").write_bytes(good)
    (tmp_path / "lab").write_bytes(_idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(ppl.ModelError, match="3 images but 2 labels"):
        load_mnist(tmp_path / "img", labels=tmp_path / "lab")
    np.savez(tmp_path / "odd.npz", pixels=np.zeros((2, 4)))
    with pytest.raises(ppl.ModelError, match="store the images as 'x' or 'images'"):
        load_mnist(tmp_path / "odd.npz")


def test_heteroscedastic_ground_truth():
    d = heteroscedastic(20000, seed=1)
    z = (d["t"] - d["mu"]) / d["sigma"]
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.02     # 4 SE at n = 20000
    np.testing.assert_allclose(d["sigma"], np.sqrt(1 + d["x"] ** 2))
    np.testing.assert_array_equal(heteroscedastic(50, seed=3)["t"], heteroscedastic(50, seed=3)["t"])


def test_cooccurrence_corpus_plants_neighbours():
    c = cooccurrence_corpus(vocab=24, clusters=6, tokens=5000, window=2, p_stay=0.9, seed=0)
    same = np.mean(c["group"][c["centre"]] == c["group"][c["context"]])
    assert same > 0.75           # ~ p_stay^window + chance; unplanted text would give ~ 1/6
    assert c["counts"].sum() == 5000 and c["centre"].shape == c["context"].shape
    with pytest.raises(ppl.ModelError, match="multiple of clusters"):
        cooccurrence_corpus(vocab=25, clusters=6)


def test_one_hot_and_batches():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ppl.ModelError, match="integers in"):
        one_hot([3], 3)
    x = np.arange(10.0)[:, None]
    b = Batches({"x": x, "y": -x}, batch_size=3, seed=4)
    assert b.per_epoch == 3
    epoch = np.concatenate([b(t)["x"][:, 0] for t in range(3)])
    assert len(set(epoch)) == 9                              # no repeats within an epoch
    np.testing.assert_array_equal(b(4)["x"], Batches({"x": x, "y": -x}, 3, seed=4)(4)["x"])  # resumable
    np.testing.assert_array_equal(b(5)["y"], -b(5)["x"])
    with pytest.raises(ppl.ModelError, match="same number of rows"):
        Batches({"x": x, "y": x[:5]}, 2)
