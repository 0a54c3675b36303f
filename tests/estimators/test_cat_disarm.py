"""Categorical DisARM (ppl/estimators/cat_disarm.py, kernels/families/cat_antithetic.py) against
independent NumPy oracles, float64.

- The coupling and the estimate on fixed noise against a direct NumPy implementation (argsort,
  stick probabilities, first firing position; the importance weight pi(x) pi(y) / q(x, y) with q
  enumerated position by position over the four bit events of the pair, not the kernel's
  product formula): draws identical, gradients within rtol 1e-10.
- Exactness: sum_{x, y} q(x, y) * estimate(x, y) equals d/da E f (= pi (f - pi . f)) to 1e-12,
  q's marginals are pi, for K = 2..6 with ties and a dominant class (the ascending order keeps
  every parting pair in q's support); K = 2 is DisARM's sigma(|a1 - a0|) (Dong et al. 2020).
- float32: finite, close to float64, NaN in a signal stays NaN.
- Whole programs: unbiased with stated power (tests/stats.py: the projection ratio within 4 SE
  of 1, and the estimates scaled by 1.05 / 0.95 must fail) on the mixed layer pairs of
  tests/estimators/test_mixed_matrix.py (cat_disarm over disarm, over score, over enumerate -- the
  marginalised kernel --, and disarm over cat_disarm); the two-group categorical model is in
  tests/estimators/test_estimators_unbiased.py's CAT_CASES. The CUDA program (simulator) matches the CPU one.
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.kernels.families import cat_antithetic as C

from test_mixed_matrix import run_pair


# ------------------------------------------------------------------ NumPy reference
def softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def sticks(a):
    """(order, p): the classes in ascending order of logits (ties by index), stick probabilities."""
    order = np.argsort(a, kind="stable")
    pi = softmax(a)[order]
    tail = np.cumsum(pi[::-1])[::-1]
    return order, pi / tail


def ref_pair(a, u):
    """(x, y): the first position with u < p, the first with u > 1 - p (the last class if none)."""
    order, p = sticks(a)
    K = len(a)
    fire_x = [i for i in range(K - 1) if u[i] < p[i]] + [K - 1]
    fire_y = [i for i in range(K - 1) if u[i] > 1 - p[i]] + [K - 1]
    return order[fire_x[0]], order[fire_y[0]]


def ref_q(a):
    """q(x, y) of the coupling, by enumeration of the pair's bits position by position."""
    order, p = sticks(a)
    K = len(a)
    q = np.zeros((K, K))

    def walk(i, x, y, prob):   # x / y: the class decided so far, or None
        if prob == 0.0:
            return
        if i == K - 1 or (x is not None and y is not None):
            q[order[i] if x is None else x, order[i] if y is None else y] += prob
            return
        pi_ = p[i]
        # bit events of one shared uniform: (b, b~) = (1[u < p], 1[u > 1 - p])
        for b, bt, pr in ((1, 1, max(0.0, 2 * pi_ - 1)), (1, 0, min(pi_, 1 - pi_)), (0, 1, min(pi_, 1 - pi_)),
                          (0, 0, max(0.0, 1 - 2 * pi_))):
            nx = x if x is not None else (order[i] if b else None)
            ny = y if y is not None else (order[i] if bt else None)
            walk(i + 1, nx, ny, prob * pr)

    walk(0, None, None, 1.0)
    return q


def ref_estimate(a, x, y, fx, fy):
    """1/2 pi(x) pi(y) / q(x, y) (f(x) - f(y)) (e_x - e_y)."""
    g = np.zeros(len(a))
    if x != y:
        pi = softmax(a)
        w = pi[x] * pi[y] / ref_q(a)[x, y]
        g[x] += 0.5 * w * (fx - fy)
        g[y] -= 0.5 * w * (fx - fy)
    return g


# ------------------------------------------------------------------ kernels against the reference
def _pairs_input(rng, rows, G, K, dtype=np.float64):
    """`rows` drawn rows, each a pair at stride 1 sharing its logits and uniforms."""
    a = np.repeat(rng.normal(0, 1.5, (rows, G * K)), 2, axis=0)
    a[0, :K] = [0.3] * K   # ties
    a[2, :K] = np.r_[4.0, np.zeros(K - 1)]   # a dominant class (p > 1/2 in the natural order)
    a[1], a[3] = a[0], a[2]
    u = np.repeat(rng.uniform(0, 1, (rows, G * K)), 2, axis=0)
    return a.astype(dtype), u.astype(dtype)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_fixed_noise_matches_numpy(K):
    rng = np.random.default_rng(K)
    rows, G = 40, 2
    a, u = _pairs_input(rng, rows, G, K)
    v = np.full(a.shape, 7.0)
    C.cat_antithetic_sample(a, u, 1, 1, 2, K, v)
    L = rng.normal(size=2 * rows)
    rw = rng.uniform(0.5, 2.0, 2 * rows)
    ga = rng.normal(size=a.shape)
    want = ga.copy()
    C.cat_disarm_grad(a, v, L, rw, 1, 1, 2, K, ga)
    parted = 0
    for r in range(0, 2 * rows, 2):
        for g in range(G):
            s = slice(g * K, (g + 1) * K)
            x, y = ref_pair(a[r, s], u[r, s])
            np.testing.assert_array_equal(v[r, s], np.eye(K)[x])
            np.testing.assert_array_equal(v[r + 1, s], np.eye(K)[y])
            est = ref_estimate(a[r, s], x, y, L[r], L[r + 1])
            want[r, s] += rw[r] * est
            want[r + 1, s] += rw[r + 1] * est
            parted += x != y
    assert parted > rows // 3
    np.testing.assert_allclose(ga, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("K", [2, 3, 4, 6])
def test_expectation_is_the_exact_gradient(K):
    """sum_{x,y} q(x,y) estimate(x,y) = pi (f - pi . f); the kernel's weight is pi pi / q."""
    rng = np.random.default_rng(10 + K)
    cases = [rng.normal(0, 2, K) for _ in range(4)] + [np.full(K, 0.7), np.r_[5.0, np.zeros(K - 1)],
                                                      np.r_[np.zeros(K - 1), -3.0]]
    for a in cases:
        f = rng.normal(size=K)
        pi = softmax(a)
        q = ref_q(a)
        np.testing.assert_allclose(q.sum(1), pi, rtol=1e-12)   # both members are Categorical(pi)
        np.testing.assert_allclose(q.sum(0), pi, rtol=1e-12)
        mean = np.zeros(K)
        A = a[None, :].repeat(2, 0)
        for x in range(K):
            for y in range(K):
                if q[x, y] == 0:
                    assert x == y or pi[x] * pi[y] == 0   # every parting pair is in the support
                    continue
                v = np.zeros((2, K))
                v[0, x], v[1, y] = 1, 1
                ga = np.zeros((2, K))
                C.cat_disarm_grad(A, v, np.array([f[x], f[y]]), np.array([0.5, 0.5]), 1, 1, 2, K, ga)
                mean += q[x, y] * ga.sum(0)
                if K == 2 and x != y:   # DisARM: 1/2 (f(x) - f(y)) sigma(|a1 - a0|) (e_x - e_y)
                    s = 1 / (1 + np.exp(-abs(a[1] - a[0])))
                    np.testing.assert_allclose(ga.sum(0)[x], 0.5 * (f[x] - f[y]) * s, rtol=1e-12)
        np.testing.assert_allclose(mean, pi * (f - pi @ f), rtol=1e-10, atol=1e-13)


def test_float32_finite_and_nan_stays_nan():
    rng = np.random.default_rng(3)
    K, rows = 4, 30
    a, u = _pairs_input(rng, rows, 3, K)
    a *= 8   # wide logits
    L = rng.normal(size=2 * rows)
    rw = np.full(2 * rows, 0.5)
    out = {}
    for dt in (np.float64, np.float32):
        v = np.zeros(a.shape, dt)
        C.cat_antithetic_sample(a.astype(dt), u.astype(dt), 1, 1, 2, K, v)
        ga = np.zeros(a.shape, dt)
        C.cat_disarm_grad(a.astype(dt), v, L.astype(dt), rw.astype(dt), 1, 1, 2, K, ga)
        assert np.isfinite(ga).all() and ga.dtype == dt
        out[dt] = (v, ga)
    same = (out[np.float32][0] == out[np.float64][0]).all(1)   # rows whose draws agree (nearly all)
    assert same.mean() > 0.9
    pair_same = same[0::2] & same[1::2]
    rows_ok = np.repeat(pair_same, 2)
    np.testing.assert_allclose(out[np.float32][1][rows_ok], out[np.float64][1][rows_ok], rtol=2e-5, atol=1e-6)
    v, _ = out[np.float32]
    cls = v.reshape(2 * rows, 3, K).argmax(2)
    parted = cls[0::2] != cls[1::2]
    r = 2 * int(np.flatnonzero(parted.any(1))[0])   # the first pair that parts somewhere
    L32 = L.astype(np.float32)
    L32[r] = np.nan
    ga = np.zeros(a.shape, np.float32)
    C.cat_disarm_grad(a.astype(np.float32), v, L32, rw.astype(np.float32), 1, 1, 2, K, ga)
    for g in range(3):
        nans = np.isnan(ga[r:r + 2, g * K:(g + 1) * K]).sum()
        assert nans == (4 if parted[r // 2, g] else 0)   # x's and y's entries of both rows
    assert np.isfinite(np.delete(ga, [r, r + 1], axis=0)).all()


# ------------------------------------------------------------------ whole programs
@pytest.mark.slow
@pytest.mark.parametrize("layers,pe,ce", [("CB", "cat_disarm", "disarm"), ("CB", "cat_disarm", "score"),
                                          ("CB", "cat_disarm", "enumerate"), ("BC", "disarm", "cat_disarm")],
                         ids=["cat_disarm-disarm", "cat_disarm-score", "cat_disarm-enumerate", "disarm-cat_disarm"])
def test_mixed_pairs_are_unbiased(layers, pe, ce):
    """Stacked with other estimators (tests/estimators/test_mixed_matrix.py's layer pairs, samples 2):
    every parameter against tests/exact.py; detects a 5% bias (stats.assert_unbiased)."""
    run_pair(layers, pe, ce, 2)


def test_refused_where_it_does_not_apply():
    with Model("cd_bern") as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="e"))
        m.cost("c", ppl.total(h))
    with pytest.raises(ppl.ModelError, match=r"'h'.*cat_disarm.*disarm"):
        m.compile(estimators={"h": "cat_disarm"})


@pytest.mark.cuda
def test_cuda_program_matches_cpu():
    """The CUDA program (the twins of kernels/families/cat_antithetic.py; the simulator without a
    GPU) gives the CPU program's loss and gradient on the same seed, with an enumerated node below
    (marginal kernel)."""
    from test_mixed_matrix import DATA, build
    for ce in ("score", "enumerate"):
        est = {"h1": "cat_disarm", "h2": ce}
        cpu = build("CB", f"cd_cpu_{ce}").compile(dtype=np.float64, estimators=est, samples=2, seed=1)
        gpu = build("CB", f"cd_gpu_{ce}").compile(dtype=np.float64, estimators=est, samples=2, seed=1, target="cuda")
        assert "core.cat_disarm_grad" in gpu.source
        for seed in (0, 7):
            lc, gc = cpu.grad(DATA, seed=seed)
            lg, gg = gpu.grad(DATA, seed=seed)
            assert lg == pytest.approx(lc, rel=1e-9)
            for k in gc:
                np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
