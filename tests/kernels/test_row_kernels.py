"""The row bookkeeping kernels (kernels/cpu/rows.py) against NumPy, and their `reps` (rows per
data row) compiled once for every count (kernels/_link.py, PLAIN_PARAMS)."""
import numpy as np
import pytest
from numba import njit, types

from ppl.kernels.cpu import rows


def _data(n, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("reps", [1, 2, 3, 5])
@pytest.mark.parametrize("extra", [0, 2])   # rows past the last whole data row
def test_repeat_fold_and_expand_rows_match_numpy(reps, extra):
    extra = min(extra, reps - 1)
    B = 4
    n = B * reps + extra
    groups = -(-n // reps)
    x = _data(groups)
    out = np.full((n, 3), np.nan)
    rows.repeat_rows(x, reps, out)
    np.testing.assert_array_equal(out, np.repeat(x, reps, axis=0)[:n])

    g = _data(n, seed=1)
    acc = np.ones((groups, 3))
    rows.fold_rows(g, reps, acc)
    want = 1.0 + np.add.reduceat(g, np.arange(0, n, reps), axis=0)
    np.testing.assert_allclose(acc, want, rtol=1e-15, atol=1e-15)

    a = np.full((n, 3), np.nan)
    a[:groups] = x
    rows.expand_rows(a, reps)
    np.testing.assert_array_equal(a, np.repeat(x, reps, axis=0)[:n])



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expand_rows_one_column_and_pairs_match_numpy(dtype):
    """expand_rows' paths (one column, a pair of rows, a last block of fewer rows) against
    np.repeat, with a sentinel past the array that must stay untouched."""
    for width in (1, 2, 5):
        for reps in (1, 2, 3, 4):
            for B in (1, 5):
                for extra in range(reps):
                    n = B * reps + extra
                    groups = -(-n // reps)
                    x = _data(groups, width, seed=reps + extra).astype(dtype)
                    buf = np.full((n + 1, width), np.nan, dtype)
                    buf[:groups] = x
                    buf[n] = -7.0
                    rows.expand_rows(buf[:n], reps)
                    np.testing.assert_array_equal(buf[:n], np.repeat(x, reps, axis=0)[:n])
                    assert np.all(buf[n] == -7.0)

def test_gather_and_fold_rows_between_layouts_match_numpy():
    B, d, idx = 3, 4, np.array([2.0, 0.0, 3.0, 3.0, 1.0])   # 4 rows per data row -> 5
    n = len(idx)
    x = _data(B * d)
    out = np.empty((B * n, 3))
    rows.gather_rows(x, d, idx, out)
    src = (np.arange(B)[:, None] * d + idx.astype(int)[None, :]).ravel()
    np.testing.assert_array_equal(out, x[src])
    g = _data(B * n, seed=2)
    acc = np.zeros((B * d, 3))
    rows.fold_into(g, idx, d, acc)
    want = np.zeros((B * d, 3))
    np.add.at(want, src, g)
    np.testing.assert_allclose(acc, want, rtol=1e-15, atol=1e-15)

    c = np.empty(B * n)
    rows.gather1(x[:, 0].copy(), d, idx, c)
    np.testing.assert_array_equal(c, x[src, 0])
    c1 = np.full(B * d, np.nan)
    rows.fold1(g[:, 0].copy(), idx, d, c1)
    want1 = np.zeros(B * d)
    np.add.at(want1, src, g[:, 0])
    np.testing.assert_allclose(c1, want1, rtol=1e-15, atol=1e-15)


def test_rows_per_data_row_compile_once_for_every_constant_count():
    """A step passes its sample and configuration counts as constants; the kernels taking them as
    `reps` compile one int64 specialisation, not one per count."""
    @njit
    def caller(x, out2, out4, g, acc):
        rows.repeat_rows(x, 2, out2)
        rows.repeat_rows(x, 4, out4)
        rows.fold_rows(g, 2, acc)
        rows.fold_rows(g, 4, acc)

    x = np.zeros((2, 3), np.float32)
    caller(x, np.zeros((4, 3), np.float32), np.zeros((8, 3), np.float32), np.zeros((8, 3), np.float32),
           np.zeros((4, 3), np.float32))
    arrays = (types.float32[:, ::1], types.float32[:, ::1])   # this caller's; other tests may add other layouts
    for kernel in (rows.repeat_rows, rows.fold_rows):
        reps = [sig[1] for sig in kernel.signatures if (sig[0], sig[2]) == arrays]
        assert reps and not any(isinstance(t, types.Literal) for t in reps), (kernel, reps)
        assert len(reps) == 1, (kernel, reps)
