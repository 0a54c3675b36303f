"""`ppl train MODEL --data FILE [--eval-data FILE]`: the user's .npz and MNIST IDX files (written
here by hand, IDX headers included), the test rows, the width taken from the data, and one clear
error per bad file. Every training run is sbn with latent=8 at 64 columns, the program
tests/cli/test_cli.py compiles too, so a test process compiles it once."""
import gzip
import hashlib
import re
import struct

import numpy as np
import pytest

from ppl import ModelError
from ppl.cli import main
from ppl.training.data import user_data

TRAIN = ("train", "sbn", "--model-opt", "latent=8", "--steps", "5", "-q")


def _idx(images):
    """IDX images by hand: magic 0x00000803, three big-endian int32 sizes, the uint8 pixels."""
    return struct.pack(">I", 0x803) + b"".join(struct.pack(">i", n) for n in images.shape) + images.tobytes()


def _bits(rows, seed=0):
    return (np.random.default_rng(seed).random((rows, 64)) < 0.3).astype(np.float32)


def _elbo(out):
    return float(re.search(r"test_elbo\s+(\S+)", out).group(1))


def run_ok(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def run_fail(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err


def test_train_on_npz_train_and_test_arrays(capsys, tmp_path):
    f = tmp_path / "mine.npz"
    np.savez(f, train_x=_bits(180), test_x=_bits(20, seed=1))
    before = hashlib.sha256(f.read_bytes()).hexdigest()
    out = run_ok(capsys, *TRAIN, "--data", str(f))
    assert f"train on {f}:train_x 180x64; test on {f}:test_x 20x64" in out
    assert np.isfinite(_elbo(out)) and _elbo(out) < 0
    assert hashlib.sha256(f.read_bytes()).hexdigest() == before           # only read


def test_train_on_idx_images_and_gzipped_eval_images(capsys, tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(imgs[:30]))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as g:
        g.write(_idx(imgs[30:]))
    out = run_ok(capsys, *TRAIN, "--data", str(tmp_path / "train-images-idx3-ubyte"),
                 "--eval-data", str(tmp_path / "t10k-images-idx3-ubyte.gz"))
    assert "train-images-idx3-ubyte:x 30x64; test on" in out and "t10k-images-idx3-ubyte.gz:x 10x64" in out
    assert np.isfinite(_elbo(out))
    # sbn models its pixels as Bernoulli: bytes binarised at > 127, as the bundled digits at > 7 of 0..16
    d = user_data(tmp_path / "train-images-idx3-ubyte", ["x"], {"x"},
                  eval_path=tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(d["test"]["x"], (imgs[30:].reshape(10, 64) > 127).astype(np.float32))
    grey = user_data(tmp_path / "t10k-images-idx3-ubyte.gz", ["x"])          # an input not Bernoulli-modelled
    np.testing.assert_allclose(grey["train"]["x"], imgs[30:39].reshape(9, 64) / 255.0, rtol=1e-6)


def test_single_x_holds_out_its_last_tenth(tmp_path):
    x = _bits(200)
    np.savez(tmp_path / "x.npz", x=x)
    d = user_data(tmp_path / "x.npz", ["x"], {"x"})
    np.testing.assert_array_equal(d["train"]["x"], x[:180])
    np.testing.assert_array_equal(d["test"]["x"], x[180:])
    assert "last 20 (10% held out)" in d["about"]
    np.savez(tmp_path / "t.npz", x=x[:5])                       # --eval-data: its x is the test set
    d = user_data(tmp_path / "x.npz", ["x"], {"x"}, eval_path=tmp_path / "t.npz")
    assert d["train"]["x"].shape == (200, 64) and d["test"]["x"].shape == (5, 64)


def test_the_data_sets_the_width(capsys, tmp_path):
    np.savez(tmp_path / "w.npz", x=np.zeros((10, 12)))
    err = run_fail(capsys, *TRAIN, "--data", str(tmp_path / "w.npz"), "--model-opt", "pixels=64")
    assert "--model-opt pixels=64, but input 'x'" in err and "has 12 columns" in err


def _files(tmp_path):
    """name -> (file contents written by a function of the path, flags after --data)."""
    def npz(**arrays):
        return lambda p: np.savez(p, **arrays)

    def raw(b):
        return lambda p: p.write_bytes(b)

    nan = _bits(10)
    nan[3, 5] = np.nan
    return {
        "names.npz": (npz(pixels=_bits(10), labels=np.zeros(10)), ()),
        "wide.npz": (npz(x=_bits(10)), ("--eval-data", "narrow.npz")),
        "nan.npz": (npz(train_x=nan, test_x=_bits(5)), ()),
        "grey.npz": (npz(x=_bits(10) * 0.5), ()),
        "bytes.npz": (npz(x=np.full((10, 64), 255, np.uint8)), ()),
        "flat.npz": (npz(x=np.zeros(64)), ()),
        "text.npz": (npz(x=np.array([["a"] * 64] * 3)), ()),
        "bad-magic-idx3-ubyte": (raw(b"\x00\x00\x07\x03" + bytes(40)), ()),
        "short-header-idx3-ubyte": (raw(b"\x00\x00\x08\x03\x00\x00\x00\x02"), ()),
        "short-data-idx3-ubyte": (raw(_idx(np.zeros((2, 8, 8), np.uint8))[:-1]), ()),
        "broken-idx3-ubyte.gz": (raw(b"\x1f\x8b not really gzip"), ()),
        "csv.npz": (raw(b"1,2,3\n4,5,6\n"), ()),
        "missing.npz": (None, ()),
    }


@pytest.mark.parametrize("name,msgs", [
    ("names.npz", ["holds arrays ['labels', 'pixels']", "expected 'x' (or 'train_x' and optionally 'test_x')"]),
    ("wide.npz", ["disagree on its width", "wide.npz:x has 64 columns", "narrow.npz:x has 12 columns"]),
    ("nan.npz", ["array 'train_x' holds 1 NaN / inf values (the first at row 3, column 5)"]),
    ("grey.npz", ["array 'x' is modelled as Bernoulli, so its values must be 0 or 1", "0.5 at row"]),
    ("bytes.npz", ["must be 0 or 1, but it holds 255", "range [255, 255]"]),
    ("flat.npz", ["array 'x' has shape (64,); give (rows, columns)"]),
    ("text.npz", ["array 'x' has dtype <U1; give numbers"]),
    ("bad-magic-idx3-ubyte", ["is not an IDX file (bad magic number 00000703)"]),
    ("short-header-idx3-ubyte", ["declares 3 dimensions but its header is only 8 bytes"]),
    ("short-data-idx3-ubyte", ["declares shape (2, 8, 8) (128 bytes of data) but holds 127"]),
    ("broken-idx3-ubyte.gz", ["cannot read"]),
    ("missing.npz", ["does not exist"]),
    ("csv.npz", ["is not an .npz archive (numpy.savez's zip of arrays)", "numpy.savez(path, x=array"]),
])
def test_bad_data_files_exit_2_naming_file_and_problem(capsys, tmp_path, name, msgs):
    write, flags = _files(tmp_path)[name]
    if write is not None:
        write(tmp_path / name)
    np.savez(tmp_path / "narrow.npz", x=np.zeros((5, 12)))
    err = run_fail(capsys, *TRAIN, "--data", str(tmp_path / name), *[str(tmp_path / f) if f.endswith(".npz")
                                                                     else f for f in flags])
    assert str(tmp_path / name) in err
    for m in msgs:
        assert m in err, err


def test_data_option_errors(capsys, tmp_path):
    np.savez(tmp_path / "x.npz", x=_bits(10))
    assert "--eval-data needs --data" in run_fail(capsys, *TRAIN, "--eval-data", str(tmp_path / "x.npz"))
    err = run_fail(capsys, "train", "prob_regression", "--data", str(tmp_path / "x.npz"))
    assert "prob_regression trains on its own data" in err and "sbn, gaussian_vae, categorical_vae" in err
    err = run_fail(capsys, *TRAIN, "--data", str(tmp_path / "x.npz"), "--model-opt", "colour=red")
    assert "--model-opt colour: sbn has no such option; its options: latent, nonlinear, hidden, pixels" in err
    with pytest.raises(ModelError, match="holds both 'train_x' and 'x'"):
        np.savez(tmp_path / "both.npz", x=_bits(4), train_x=_bits(4))
        user_data(tmp_path / "both.npz", ["x"])
    with pytest.raises(ModelError, match="an IDX file holds one array but the model takes inputs"):
        (tmp_path / "i-idx3-ubyte").write_bytes(_idx(np.zeros((2, 8, 8), np.uint8)))
        user_data(tmp_path / "i-idx3-ubyte", ["x", "y"])


def test_exact_likelihood_in_row_blocks_is_unchanged(monkeypatch):
    """Large test sets are evaluated a block of rows at a time; the exact log-likelihood is
    deterministic, so the blocks must reproduce the one-shot value."""
    import ppl.models.sbn as sbn
    prog = sbn.build(latent=8).compile(dtype=np.float32, samples=4, seed=0)
    x = _bits(50, seed=3)
    whole = sbn.exact_log_likelihood(prog, x)
    monkeypatch.setattr(sbn, "EVAL_BLOCK", 3 * 2 ** 8)                    # blocks of 3 rows
    np.testing.assert_allclose(sbn.exact_log_likelihood(prog, x), whole, rtol=1e-12)
