"""The conditional noise REBAR and RELAX need: z~ drawn given the hard sample has the law of
z given that sample (two-sample KS tests against rejection-filtered draws of z, p > 1e-3),
and dz~/da matches central finite differences."""
import numpy as np
import pytest
from scipy import stats

from ppl.kernels.math import conditional as C


@pytest.mark.parametrize("a", [-2.0, 0.3, 1.5])
def test_logistic_given_bernoulli_law(a):
    rng = np.random.default_rng(1)
    n = 40000
    z = a + rng.logistic(size=n)
    b = (z > 0).astype(float)
    v = rng.random(n)
    zt = np.array([C.logistic_given_bernoulli(a, vi, bi)[0] for vi, bi in zip(v, b)])
    for side in (0.0, 1.0):
        ref = z[b == side]
        got = zt[b == side]
        assert ((got > 0) == (side == 1.0)).all()
        assert stats.ks_2samp(ref, got).pvalue > 1e-3, (a, side)


def test_logistic_given_bernoulli_derivative():
    for a in (-3.0, -0.2, 0.7, 4.0):
        for v in (0.05, 0.5, 0.93):
            for b in (0.0, 1.0):
                eps = 1e-6
                fd = (C.logistic_given_bernoulli(a + eps, v, b)[0] - C.logistic_given_bernoulli(a - eps, v, b)[0]) / (2 * eps)
                assert abs(fd - C.logistic_given_bernoulli(a, v, b)[1]) < 1e-7


def test_log_one_minus_uniform_is_exact_on_the_uniform_grid():
    """logistic_given_bernoulli takes log(1 - v) for log1p(-v). That holds because 1 - v is exact
    on ppl's float32 uniforms ((m + 1/2) 2^-23, rng.uniform_f32_from_word). Every one of the 2^23
    uniforms is made by the generator from a word and checked: 1 - v is exact, and log_f32(1 - v)
    is within 2 ulp of float64's log1p(-v) (log_f32's own accuracy). A change of the grid that
    breaks this fails here."""
    import numba
    from ppl.kernels.math.rng import log_f32, uniform_f32_from_word

    @numba.njit
    def grid_and_logs(m):
        v = np.empty(m.size, np.float32)
        lg = np.empty(m.size, np.float32)
        for i in range(m.size):
            v[i] = uniform_f32_from_word(np.uint32(m[i]) << np.uint32(9))
            lg[i] = log_f32(np.float32(1.0) - v[i])
        return v, lg

    v, got = grid_and_logs(np.arange(2 ** 23, dtype=np.uint32))
    assert np.array_equal((np.float32(1.0) - v).astype(np.float64), 1.0 - v.astype(np.float64))
    ref = np.log1p(-v.astype(np.float64))
    ulp = np.abs(got - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 2.0, ulp.max()


def test_gumbel_given_argmax_law():
    rng = np.random.default_rng(2)
    a = np.array([0.5, -1.0, 1.2])
    n = 30000
    z = a + rng.gumbel(size=(n, 3))
    k = z.argmax(1)
    v = rng.random((n, 3))
    zt = np.empty((n, 3))
    for i in range(n):
        C.gumbel_given_argmax(a, v[i], k[i], zt[i])
    assert (zt.argmax(1) == k).all()
    for cls in range(3):
        for comp in range(3):
            ref, got = z[k == cls, comp], zt[k == cls, comp]
            assert stats.ks_2samp(ref, got).pvalue > 1e-3, (cls, comp)


def test_array_forms_match_scalar():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6))
    v = rng.random((4, 6))
    b = (rng.random((4, 6)) > 0.5).astype(float)
    out = np.empty_like(a)
    C.fill_logistic_given_bernoulli(a, v, b, out)
    assert np.allclose(out, [[C.logistic_given_bernoulli(a[r, j], v[r, j], b[r, j])[0] for j in range(6)]
                             for r in range(4)])
    onehot = np.zeros((4, 6))
    onehot[np.arange(4), [0, 1, 2, 0]] = 1
    onehot[np.arange(4), [3, 5, 4, 4]] = 1
    C.fill_gumbel_given_argmax(a, v, onehot, 3, out)
    for r in range(4):
        for g in range(2):
            assert out[r, 3 * g: 3 * g + 3].argmax() == onehot[r, 3 * g: 3 * g + 3].argmax()
