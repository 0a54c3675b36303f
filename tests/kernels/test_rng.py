"""Tests for the Philox4x32-10 counter-based RNG (kernels/math/rng.py) and the CPU fills.

Oracles: Random123's published known-answer vectors, a pure-Python Philox written from the
paper, scipy.stats distributions (KS tests, p > 1e-3), exact probabilities (chi-square,
p > 1e-3) and the scalar functions themselves (the fills must match them bit for bit).
All statistical tests use fixed seeds, so they are deterministic.
"""
import math

import numba
import numpy as np
import pytest
from machine import assert_identical
from numba import njit
from scipy import stats

from ppl.kernels.math import rng
from ppl.kernels.cpu.noise import (
    FLAT_CUTOFF,
    fill_bernoulli_logit,
    fill_bernoulli_prob,
    fill_gumbel,
    fill_logistic,
    fill_normal,
    fill_uniform,
)

P_MIN = 1e-3  # every KS / chi-square test must reach this p-value
BIG = (FLAT_CUTOFF // 37 + 1, 37)   # a fill of per-row loops (past the flat loop's size)
M32 = 0xFFFFFFFF
FILLS = {"uniform": fill_uniform, "normal": fill_normal,
         "logistic": fill_logistic, "gumbel": fill_gumbel}
SCALARS = {
    ("uniform", np.float32): rng.uniform_f32, ("uniform", np.float64): rng.uniform_f64,
    ("normal", np.float32): rng.normal_f32, ("normal", np.float64): rng.normal_f64,
    ("logistic", np.float32): rng.logistic_f32, ("logistic", np.float64): rng.logistic_f64,
    ("gumbel", np.float32): rng.gumbel_f32, ("gumbel", np.float64): rng.gumbel_f64,
}
SCIPY = {"uniform": stats.uniform, "normal": stats.norm,
         "logistic": stats.logistic, "gumbel": stats.gumbel_r}


def _fill(kind, shape, dtype, seed=20240611, stream=0, step=0):
    out = np.empty(shape, dtype)
    FILLS[kind](out, seed, stream, step)
    return out


# ------------------------------------------------------------------- (a) known answers
# Random123 known-answer vectors, file tests/kat_vectors of DEShawResearch/random123
# (commit 9545ff64, the three "philox4x32 10" lines): counter[4] key[2] -> output[4].
# Found through the search tool in copies of that file, e.g. the TEST_CASES block of
# E. Sarmas' philox.py (Apache-2.0) and SymmetricChaos/crypto-gui rngs/src/philox.rs.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32, M32, M32, M32), (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    assert tuple(int(w) for w in rng.philox4x32_10(*ctr, *key)) == expected


def _philox_reference(ctr, key):
    """Pure-Python Philox4x32-10 from Salmon et al. (2011), with unbounded ints."""
    c, k = list(ctr), list(key)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & M32, p1 & M32,
             ((p0 >> 32) ^ c[3] ^ k[1]) & M32, p0 & M32]
        k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
    return tuple(c)


def test_philox_matches_python_reference_with_wraparound():
    gen = np.random.default_rng(7)
    words = gen.integers(0, 2**32, size=(200, 6), dtype=np.uint64)
    words[:20] |= np.uint64(0xFFFF0000)  # large words: products and key sums wrap
    for w in words:
        ints = [int(x) for x in w]
        got = tuple(int(x) for x in rng.philox4x32_10(*ints))
        assert got == _philox_reference(ints[:4], ints[4:])


def test_seed_key_and_addressing():
    seed = np.uint64(0x0123456789ABCDEF)
    k0, k1 = rng.seed_key(seed)
    assert (int(k0), int(k1)) == (0x89ABCDEF, 0x01234567)
    words = _philox_reference((5 // 4, 3, 2, 9), (0x89ABCDEF, 0x01234567))
    assert rng.uniform_f32(seed, 2, 3, 5, 9) == rng.uniform_f32_from_word(words[5 % 4])
    words = _philox_reference((5 // 2, 3, 2, 9), (0x89ABCDEF, 0x01234567))
    assert rng.uniform_f64(seed, 2, 3, 5, 9) == rng.uniform_f64_from_words(words[2], words[3])


# ---------------------------------------------------------------------- (b) extremes
def test_uniform_extremes_strictly_inside_unit_interval():
    lo32 = rng.uniform_f32_from_word(np.uint32(0))
    hi32 = rng.uniform_f32_from_word(np.uint32(M32))
    assert lo32 == 2.0**-24 and hi32 == 1.0 - 2.0**-24
    assert float(np.float32(hi32)) == hi32 < 1.0  # representable in float32, not rounded to 1
    lo64 = rng.uniform_f64_from_words(0, 0)
    hi64 = rng.uniform_f64_from_words(M32, M32)
    assert lo64 == 2.0**-53 and hi64 == 1.0 - 2.0**-53
    assert 0.0 < lo64 and hi64 < 1.0
    for u in (lo32, hi32):
        for f in (rng.logistic_from_uniform_f32, rng.gumbel_from_uniform_f32):
            assert math.isfinite(f(np.float32(u)))
    for u in (lo64, hi64):
        for f in (rng.logistic_from_uniform_f64, rng.gumbel_from_uniform_f64):
            assert math.isfinite(f(u))
    z = rng.box_muller_f32(np.float32(lo32), np.float32(hi32))
    assert all(math.isfinite(v) for v in z) and abs(z[0]) < 5.8


def test_float32_math_against_float64_libm():
    x = np.float32(np.exp(np.linspace(-80.0, 80.0, 2001)))
    got = np.array([rng.log_f32(v) for v in x])
    ref = np.log(x.astype(np.float64))
    assert np.all(np.abs(got - ref) <= 2.5 * np.spacing(np.abs(ref).astype(np.float32)))
    u = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    sc = np.array([rng.sincos_2pi_f32(v) for v in u])
    ang = 2.0 * np.pi * u.astype(np.float64)
    assert np.max(np.abs(sc - np.stack([np.sin(ang), np.cos(ang)], 1))) < 2.5 * 2.0**-24
    y = np.float32([-0.999, -0.5, -1e-3, -1e-8, 0.0, 1e-8, 1e-3, 3.0])
    got = np.array([rng.log1p_f32(v) for v in y])
    ref = np.log1p(y.astype(np.float64))
    assert np.all(np.abs(got - ref) <= 4 * np.spacing(np.abs(ref).astype(np.float32)))


# -------------------------------------------------------------- (c) distribution tests
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_ks_against_scipy(kind, dtype):
    x = _fill(kind, (1000, 100), dtype, seed=11 + len(kind), stream=3, step=1).ravel()
    assert x.dtype == dtype and np.all(np.isfinite(x))
    p = stats.kstest(x.astype(np.float64), SCIPY[kind].cdf).pvalue
    assert p > P_MIN, f"{kind} {dtype.__name__}: KS p-value {p}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_chi_square(dtype):
    logits = np.array([-2.0, -0.3, 0.0, 0.7, 3.0])
    n = 40000
    lg = np.repeat(logits[:, None], n, axis=1).astype(dtype)
    p = 1.0 / (1.0 + np.exp(-logits))
    h = np.empty_like(lg)
    fill_bernoulli_logit(h, lg, 5, 1, 0)
    h2 = np.empty_like(lg)
    fill_bernoulli_prob(h2, (1.0 / (1.0 + np.exp(-lg.astype(np.float64)))).astype(dtype), 5, 2, 0)
    for draws in (h, h2):
        assert set(np.unique(draws)) <= {0.0, 1.0}
        for i in range(len(logits)):
            ones = draws[i].sum()
            obs = [n - ones, ones]
            exp = [n * (1 - p[i]), n * p[i]]
            assert stats.chisquare(obs, exp).pvalue > P_MIN, (i, obs, exp)


@njit
def _categorical_counts(logits, probs, n, seed):
    k = logits.shape[0]
    counts = np.zeros((4, k), np.int64)
    for r in range(n):
        counts[0, rng.categorical_gumbel_f64(logits, seed, 0, r, 0)] += 1
        counts[1, rng.categorical_gumbel_f32(logits.astype(np.float32), seed, 1, r, 0)] += 1
        counts[2, rng.categorical_icdf_f64(probs, seed, 2, r, 0)] += 1
        counts[3, rng.categorical_inverse_cdf(probs, rng.uniform_f64(seed, 3, r, 0, 0))] += 1
    return counts


def test_categorical_chi_square_both_methods():
    logits = np.array([0.5, -1.0, 2.0, 0.0, -3.0, 1.2])
    probs = np.exp(logits) / np.exp(logits).sum()
    n = 40000
    counts = _categorical_counts(logits, probs, n, 99)
    for method, c in zip(["gumbel f64", "gumbel f32", "icdf f64", "icdf(u)"], counts):
        p = stats.chisquare(c, n * probs).pvalue
        assert p > P_MIN, f"categorical {method}: chi-square p-value {p}, counts {c}"


def test_inverse_cdf_edges():
    probs = np.array([0.0, 0.25, 0.0, 0.75, 0.0])
    assert rng.categorical_inverse_cdf(probs, 1e-300) == 1
    assert rng.categorical_inverse_cdf(probs, 0.2499) == 1
    assert rng.categorical_inverse_cdf(probs, 0.2501) == 3
    assert rng.categorical_inverse_cdf(probs, 1.0) == 3  # never a zero-probability category
    assert rng.categorical_inverse_cdf(2.0 * probs, 0.5) == 3  # unnormalised is fine


# ------------------------------------------------------------------ (d) reproducibility
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_fill_equals_scalar_function(kind, dtype):
    seed, stream, step = 2**62 + 12345, 4, 77  # both key words non-zero
    out = _fill(kind, (1000, 37), dtype, seed, stream, step)
    f = SCALARS[(kind, dtype)]
    rows = range(0, 1000, 7)  # every column (all lanes and the ragged tail), many rows
    want = np.array([[f(seed, stream, r, c, step) for c in range(37)] for r in rows], dtype)
    np.testing.assert_array_equal(out[list(rows)], want, err_msg=f"fill_{kind} vs the scalar function, {np.dtype(dtype)}")
    np.testing.assert_array_equal(out, _fill(kind, (1000, 37), dtype, seed, stream, step), err_msg=f"fill_{kind} twice")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_flat_fills_of_short_rows_equal_scalar_function(kind, dtype):
    """Rows of a whole number of philox blocks, shorter than FLAT_BLOCKS blocks, are filled by one
    flat loop over several rows (cpu_noise._flat_uniform / _flat_normal), others (a width of 1, 3,
    5, ...) row by row: every value is still the scalar function's at its address, for row counts
    that are no multiple of the rows per pass, from a row0, and a non-contiguous out (the per-row
    path) agrees."""
    seed, stream, step = 2**62 + 12345, 4, 77
    f = SCALARS[(kind, dtype)]
    for shape, row0 in [((37, 4), 0), ((21, 8), 5), ((160, 32), 0), ((9, 36), 3), ((3, 2), 1), ((70, 64), 0),
                        ((50, 1), 2), ((33, 3), 0), ((17, 5), 4), ((12, 7), 1), ((8, 127), 0)]:   # ragged rows
        out = np.empty(shape, dtype)
        FILLS[kind](out, seed, stream, step, row0)
        want = np.array([[f(seed, stream, row0 + r, c, step) for c in range(shape[1])] for r in range(shape[0])], dtype)
        np.testing.assert_array_equal(out, want, err_msg=f"fill_{kind} {shape} row0={row0}, {np.dtype(dtype)}")
        wide = np.empty((shape[0], shape[1] + 4), dtype)
        FILLS[kind](wide[:, :shape[1]], seed, stream, step, row0)   # not C-contiguous: row by row
        np.testing.assert_array_equal(wide[:, :shape[1]], want, err_msg=f"fill_{kind} {shape}, a strided out")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_narrow_fills_equal_scalar_function(kind, dtype):
    """fill_<kind>_narrow (rows narrower than a philox block: the lowering's fill of a scalar
    node) gives the scalar function's value at every address, from a row0; a row as wide as a
    block is refused with the fill to call instead."""
    import ppl.kernels.cpu.noise as cpu_noise
    fill = getattr(cpu_noise, f"fill_{kind}_narrow")
    seed, stream, step = 2**62 + 12345, 4, 77
    f = SCALARS[(kind, dtype)]
    for width in ((1, 2, 3) if dtype == np.float32 else (1,)):
        out = np.empty((41, width), dtype)
        fill(out, seed, stream, step, 5)
        want = np.array([[f(seed, stream, 5 + r, c, step) for c in range(width)] for r in range(41)], dtype)
        np.testing.assert_array_equal(out, want, err_msg=f"fill_{kind}_narrow width {width}, {np.dtype(dtype)}")
    with pytest.raises(ValueError, match="call fill_<kind> for wider rows"):
        fill(np.empty((3, 4 if dtype == np.float32 else 2), dtype), seed, stream, step)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_fills_equal_scalar_functions(dtype):
    gen = np.random.default_rng(3)
    for width in (13, 32):   # the per-row path and the flat one (whole philox blocks)
        logits = gen.normal(size=(60, width)).astype(dtype)
        probs = (1.0 / (1.0 + np.exp(-logits))).astype(dtype)
        h, g = np.empty_like(logits), np.empty_like(logits)
        fill_bernoulli_logit(h, logits, 8, 1, 2)
        fill_bernoulli_prob(g, probs, 8, 1, 2)
        f_logit = rng.bernoulli_logit_f32 if dtype == np.float32 else rng.bernoulli_logit_f64
        f_prob = rng.bernoulli_prob_f32 if dtype == np.float32 else rng.bernoulli_prob_f64
        for r in range(60):
            for c in range(width):
                assert h[r, c] == f_logit(logits[r, c], 8, 1, r, c, 2)
                assert g[r, c] == f_prob(probs[r, c], 8, 1, r, c, 2)
        # the logistic-noise Bernoulli reuses fill_logistic's noise at the same address
        noise = _fill("logistic", (60, width), dtype, 8, 1, 2)
        np.testing.assert_array_equal(h, (logits + noise > 0).astype(dtype))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_identical_with_one_and_two_threads(kind):
    before = numba.get_num_threads()

    def on(threads):
        numba.set_num_threads(threads)
        try:
            return _fill(kind, BIG, np.float64, 5, 6, 7)
        finally:
            numba.set_num_threads(before)
    one, two = on(1), on(2)
    assert_identical(two, one, lambda: on(1), f"fill_{kind} with 1 and 2 threads")


def test_serial_and_parallel_paths_agree():
    small = _fill("normal", (10, 37), np.float64, 1, 2, 3)  # below FLAT_CUTOFF
    big = _fill("normal", BIG, np.float64, 1, 2, 3)  # per-row loops
    np.testing.assert_array_equal(small, big[:10])


def test_streams_steps_rows_seeds_differ():
    base = _fill("uniform", (200, 50), np.float64, 1, 0, 0)
    for other in (_fill("uniform", (200, 50), np.float64, 1, 1, 0),
                  _fill("uniform", (200, 50), np.float64, 1, 0, 1),
                  _fill("uniform", (200, 50), np.float64, 2, 0, 0),
                  _fill("uniform", (200, 50), np.float64, 2**32 + 1, 0, 0)):
        assert np.mean(base == other) < 1e-3
    assert np.mean(base[:-1] == base[1:]) < 1e-3  # rows
    assert len(np.unique(base)) == base.size


# ------------------------------------------------------------------- (e) independence
def test_correlations_within_four_standard_errors():
    z0 = _fill("normal", (1000, 100), np.float64, 42, 0, 0)
    z1 = _fill("normal", (1000, 100), np.float64, 42, 1, 0)
    n = z0.size
    tol = 4.0 / math.sqrt(n)
    assert abs(np.corrcoef(z0.ravel(), z1.ravel())[0, 1]) < tol  # streams 0 and 1
    # adjacent columns: Box-Muller partners (2k, 2k+1) and block neighbours (2k+1, 2k+2)
    a, b = z0[:, 0::2].ravel(), z0[:, 1::2].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.0 / math.sqrt(a.size)
    a, b = z0[:, 1:-1:2].ravel(), z0[:, 2::2].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.0 / math.sqrt(a.size)
    u = _fill("uniform", (1000, 100), np.float32, 42, 0, 0).astype(np.float64)
    a, b = u[:, :-1].ravel(), u[:, 1:].ravel()  # all four float32 lanes of a block
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.0 / math.sqrt(a.size)


# ------------------------------------------------------------ (f) use from user @njit
@njit
def _user_simulation(seed, n):
    """A user's nopython loop: draws noise by address and fills a buffer."""
    acc = 0.0
    for i in range(n):
        acc += rng.normal_f64(seed, 0, i, 0, 0) + rng.uniform_f32(seed, 1, i, 3, 0)
        acc += rng.bernoulli_logit_f64(0.5, seed, 2, i, 0, 0)
    buf = np.empty((4, 9), np.float64)
    fill_gumbel(buf, seed, 5, 0)
    return acc, buf


def test_callable_from_user_njit():
    acc, buf = _user_simulation(3, 500)
    want = sum(rng.normal_f64(3, 0, i, 0, 0) + rng.uniform_f32(3, 1, i, 3, 0)
               + rng.bernoulli_logit_f64(0.5, 3, 2, i, 0, 0) for i in range(500))
    assert acc == pytest.approx(want, rel=1e-12)
    np.testing.assert_array_equal(buf, _fill("gumbel", (4, 9), np.float64, 3, 5, 0))


def test_clear_errors():
    with pytest.raises(numba.core.errors.TypingError, match="float32 or float64"):
        fill_uniform(np.empty((3, 4), np.int64), 1, 0, 0)
    with pytest.raises(numba.core.errors.TypingError, match="2D"):
        fill_uniform(np.empty(5), 1, 0, 0)
    with pytest.raises(ValueError, match="out's shape"):
        fill_bernoulli_prob(np.empty((3, 4)), np.empty((4, 3)), 1, 0, 0)


@pytest.mark.parametrize("kind", ["uniform", "normal", "logistic", "gumbel"])
def test_row0_addresses_rows_of_a_larger_fill(kind):
    """fill(out, ..., row0) writes rows row0 .. row0 + R - 1 of the fill of the whole (a
    data-parallel shard's noise), on the flat and the per-row path; row0 = 0 is the default."""
    for shape in [(40, 13), BIG]:
        whole = _fill(kind, shape, np.float64, 5, 6, 7)
        part = np.empty((shape[0] - 9, shape[1]))
        FILLS[kind](part, 5, 6, 7, 9)
        assert_identical(part, whole[9:], lambda: _fill(kind, shape, np.float64, 5, 6, 7)[9:], f"fill_{kind} from row 9")
        first = np.empty((9, shape[1]))
        FILLS[kind](first, 5, 6, 7, 0)
        assert_identical(first, whole[:9], lambda: _fill(kind, shape, np.float64, 5, 6, 7)[:9], f"fill_{kind} row0=0")
