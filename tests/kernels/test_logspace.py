"""kernels/families/logspace.py: the log-space matrix-vector product's CPU kernels (blocks of rows,
each exponential's loop over the block's rows) against its row bodies (the CUDA kernels' code) and
against scipy's logsumexp and the softmax weights in NumPy."""
import numpy as np
import pytest
from numba import njit
from scipy.special import logsumexp

from ppl.kernels.families import logspace

FWD_ROW, BWD_ROW = njit(logspace._log_matvec_fwd_row), njit(logspace._log_matvec_bwd_row)


def _case(rows, J, K, dtype, seed=0):
    """a (rows, J), b (rows, J K) with a row of each kind of non-finite term where there are rows
    enough: every a_j + B_jk -inf, a NaN, a +inf, some -inf terms."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 3, (rows, J)), rng.normal(0, 3, (rows, J * K))
    special = {}
    if rows > 8:
        a[1] = -np.inf
        a[3, 0] = np.nan
        b[5, K - 1] = np.inf
        a[7, : J - 1] = -np.inf
        special = {"-inf": 1, "nan": 3, "+inf": 5}
    return a.astype(dtype), b.astype(dtype), special


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, J, K", [(1, 4, 3), (9, 1, 1), (logspace.BLOCK - 1, 2, 5),
                                        (logspace.BLOCK + 3, 4, 3), (2 * logspace.BLOCK + 5, 3, 4)])
def test_the_blocks_give_the_row_bodies_numbers_bit_for_bit(dtype, rows, J, K):
    """Every output and cotangent equals the row body's (the same sums in the same order), across
    blocks, with non-finite rows and with either cotangent skipped (0 rows)."""
    a, b, _ = _case(rows, J, K, dtype)
    out, ref = np.zeros((rows, K), dtype), np.zeros((rows, K), dtype)
    logspace.log_matvec_fwd(a, b, out)
    for r in range(rows):
        FWD_ROW(r, a, b, ref)
    assert np.array_equal(out, ref, equal_nan=True)
    rng = np.random.default_rng(1)
    gout = rng.normal(size=(rows, K)).astype(dtype)
    for skip in (None, "ga", "gb"):
        ga, gb = rng.normal(size=(rows, J)).astype(dtype), rng.normal(size=(rows, J * K)).astype(dtype)
        ga = np.zeros((0, J), dtype) if skip == "ga" else ga
        gb = np.zeros((0, J * K), dtype) if skip == "gb" else gb
        ga_ref, gb_ref = ga.copy(), gb.copy()
        logspace.log_matvec_bwd(a, b, out, gout, ga, gb)
        for r in range(rows):
            BWD_ROW(r, a, b, out, gout, ga_ref, gb_ref)
        assert np.array_equal(ga, ga_ref, equal_nan=True) and np.array_equal(gb, gb_ref, equal_nan=True), skip


def test_values_and_cotangents_against_scipy_and_the_softmax():
    """Oracle: scipy.special.logsumexp for out, w_jk = gout_k exp(a_j + B_jk - out_k) in NumPy for
    the cotangents; the conventions for non-finite rows (-inf: -inf and no cotangent; NaN: NaN;
    +inf: +inf and NaN cotangents). Test of the test: the first row's cotangent scaled by 1.05
    is told apart."""
    rows, J, K = logspace.BLOCK + 20, 4, 3
    a, b, special = _case(rows, J, K, np.float64, seed=2)
    v = a[:, :, None] + b.reshape(rows, J, K)
    out = np.zeros((rows, K))
    logspace.log_matvec_fwd(a, b, out)
    finite = [r for r in range(rows) if r not in special.values()]
    with np.errstate(invalid="ignore"):
        ref = logsumexp(v, axis=1)
    assert np.allclose(out[finite], ref[finite], rtol=1e-13, atol=0)
    assert np.all(out[special["-inf"]] == -np.inf) and np.all(np.isnan(out[special["nan"]]))
    assert out[special["+inf"], K - 1] == np.inf
    gout = np.random.default_rng(3).normal(size=(rows, K))
    ga, gb = np.zeros((rows, J)), np.zeros((rows, J * K))
    logspace.log_matvec_bwd(a, b, out, gout, ga, gb)
    w = gout[finite][:, None, :] * np.exp(v[finite] - out[finite][:, None, :])
    assert np.allclose(ga[finite], w.sum(2), rtol=1e-12, atol=1e-300)
    assert np.allclose(gb[finite], w.reshape(len(finite), J * K), rtol=1e-12, atol=1e-300)
    assert not np.allclose(1.05 * ga[finite[0]], w[0].sum(1), rtol=1e-12)
    assert np.all(ga[special["-inf"]] == 0) and np.all(gb[special["-inf"]] == 0)
    assert np.all(np.isnan(ga[special["nan"]])) and np.all(np.isnan(ga[special["+inf"]]))
