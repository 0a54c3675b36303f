"""Generate models/data/digits.npz: the UCI optical-recognition hand-written digits, binarized.

Run once, by hand, where scikit-learn is installed (it ships a copy of the UCI data set);
the runtime reads only the .npz, so scikit-learn is not a dependency of ppl:

    pip install scikit-learn && python scripts/make_digits.py

The 1797 8x8 images (grey levels 0..16) are binarized at pixel > 7 and split by a fixed
permutation (numpy seed 0) into 1500 training and 297 test images. Stored compactly: the
binary pixels bit-packed (np.packbits, 8 bytes per image) and the labels as uint8.
"""
from pathlib import Path

import numpy as np

SEED, N_TRAIN, THRESHOLD = 0, 1500, 7


def main() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.data > THRESHOLD).astype(np.uint8)  # (1797, 64)
    labels = d.target.astype(np.uint8)
    perm = np.random.default_rng(SEED).permutation(len(images))
    images, labels = images[perm], labels[perm]
    out = Path(__file__).resolve().parent.parent / "models" / "data" / "digits.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        train_bits=np.packbits(images[:N_TRAIN], axis=1), train_labels=labels[:N_TRAIN],
        test_bits=np.packbits(images[N_TRAIN:], axis=1), test_labels=labels[N_TRAIN:],
        pixels=np.array(64, np.int64), threshold=np.array(THRESHOLD, np.int64), seed=np.array(SEED, np.int64))
    print(f"wrote {out} ({out.stat().st_size} bytes): {N_TRAIN} train / {len(images) - N_TRAIN} test")


if __name__ == "__main__":
    main()
