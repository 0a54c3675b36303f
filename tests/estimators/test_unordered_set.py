"""The unordered set estimator (ppl/estimators/unordered_set.py, kernels/families/unordered_set.py)
against independent NumPy oracles, float64.

- Fixed noise against a direct NumPy implementation of the paper's formulas: the set is the
  Gumbel-top-k (argsort), p(S) and the leave-one-out probabilities p^{D \\ s}(S \\ s) summed over
  every ordering of the set (not the kernel's subset recursion in log space); gradients within
  rtol 1e-10, the row weights' estimate of E f too.
- Exactness: the estimate averaged over every ordered draw without replacement (probability
  prod p(b_i) / (1 - sum_{j<i} p(b_j))) is d/da E f = pi (f - pi . f), and the weighted rows'
  sum is E f, to 1e-12 (k = 2 .. K).
- float32 finite and close; NaN in a signal stays NaN.
- Whole programs: unbiased with stated power (tests/stats.py: the projection ratio within 4 SE of
  1; the estimates scaled by 1.05 / 0.95 must fail) on a one-group model and on mixed layer pairs
  (tests/estimators/test_mixed_matrix.py: over disarm / LOO score / enumerate, under enumerate and a
  moving-average score); refusals (several groups, k, an ancestor comparing rows) name the fix;
  the CUDA program (simulator) matches the CPU one.
"""
import itertools

import numpy as np
import pytest

import ppl
from ppl import Affine, Categorical, Model
from ppl.kernels.families import unordered_set as U

import exact
import stats
from test_mixed_matrix import DATA, build, run_pair


# ------------------------------------------------------------------ NumPy reference
def softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def p_set(p, S, excl=()):
    """Probability that sampling without replacement from the classes outside `excl`
    (renormalised) draws the set S first: a sum over S's orderings."""
    base = 1.0 - sum(p[e] for e in excl)
    tot = 0.0
    for perm in itertools.permutations(S):
        pr, used = 1.0, 0.0
        for s in perm:
            pr *= p[s] / (base - used)
            used += p[s]
        tot += pr
    return tot


def ref_estimate(a, S, f):
    """(gradient, value): sum_s p(s) R(S, s) [(f(s) - b_s) d log p(s)/da, f(s)] with the built-in
    baseline b_s = sum_{s'} p(s') R^{D \\ s}(S, s') f(s') (R^{D \\ s}(S, s) = 1)."""
    p = softmax(a)
    g, val = np.zeros(len(a)), 0.0
    pS = p_set(p, S)
    for s in S:
        rest = [t for t in S if t != s]
        w = p[s] * p_set(p, rest, (s,)) / pS
        b = p[s] * f[s]
        for s2 in rest:
            b += p[s2] * p_set(p, [t for t in rest if t != s2], (s, s2)) / p_set(p, rest, (s,)) * f[s2]
        dlogp = -p.copy()
        dlogp[s] += 1
        g += w * (f[s] - b) * dlogp
        val += w * f[s]
    return g, val


def run_kernels(a, gum, k, L, rw0, dtype=np.float64):
    """Sets of k rows at stride 1 (a and gum: one row per set)."""
    K = a.shape[1]
    A, Gm = np.repeat(a, k, axis=0).astype(dtype), np.repeat(gum, k, axis=0).astype(dtype)
    ws = np.zeros((A.shape[0], U.table_width(k)), dtype)
    v = np.full(A.shape, 7.0, dtype)
    rw = np.full(A.shape[0], rw0, dtype)
    U.us_forward(A, Gm, 1, k, K, ws, v, rw)
    ga = np.zeros(A.shape, dtype)
    U.us_grad(A, ws, L.astype(dtype), rw, 1, k, K, ga)
    return v, rw, ga


# ------------------------------------------------------------------ kernels against the reference
@pytest.mark.parametrize("K,k", [(3, 2), (5, 3), (6, 4), (4, 4)])
def test_fixed_noise_matches_numpy(K, k):
    rng = np.random.default_rng(K * 10 + k)
    n = 12
    a = rng.normal(0, 1.5, (n, K))
    a[0] = 0.4   # ties
    a[1, 0] = 6.0   # a dominant class
    gum = rng.gumbel(size=(n, K))
    L = rng.normal(size=n * k)
    v, rw, ga = run_kernels(a, gum, k, L, 0.3)
    for i in range(n):
        rows = slice(i * k, (i + 1) * k)
        S = list(np.argsort(-(a[i] + gum[i]), kind="stable")[:k])
        np.testing.assert_array_equal(v[rows], np.eye(K)[S])
        f = np.zeros(K)
        f[S] = L[rows]
        g, val = ref_estimate(a[i], S, f)
        np.testing.assert_allclose(ga[rows].sum(0), 0.3 * g, rtol=1e-10, atol=1e-15)
        assert np.isclose((rw[rows] * L[rows]).sum(), 0.3 * val, rtol=1e-10)


@pytest.mark.parametrize("K", [3, 4, 5])
def test_expectation_is_the_exact_gradient(K):
    """Averaged over every ordered draw without replacement: the exact gradient and E f."""
    rng = np.random.default_rng(K)
    for a in (rng.normal(0, 1.5, K), np.r_[4.0, np.zeros(K - 1)]):
        f = rng.normal(size=K)
        p = softmax(a)
        for k in range(2, K + 1):
            G, V = np.zeros(K), 0.0
            for tup in itertools.permutations(range(K), k):
                pr, used = 1.0, 0.0
                for s in tup:
                    pr *= p[s] / (1 - used)
                    used += p[s]
                # Gumbel noise that makes `tup` the top-k in order: keys k, k-1, ..., 1, the rest below
                gum = np.full(K, -50.0)
                gum[list(tup)] = np.arange(k, 0, -1) * 100.0
                v, rw, ga = run_kernels(a[None], (gum - a)[None], k, f[list(tup)], 1.0)
                np.testing.assert_array_equal(v.argmax(1), tup)
                G += pr * ga.sum(0)
                V += pr * (rw * f[list(tup)]).sum()
            np.testing.assert_allclose(G, p * (f - p @ f), rtol=1e-10, atol=1e-13)
            assert V == pytest.approx(p @ f, rel=1e-12)


def test_float32_finite_and_nan_stays_nan():
    rng = np.random.default_rng(7)
    n, K, k = 40, 6, 3
    a, gum = rng.normal(0, 4, (n, K)), rng.gumbel(size=(n, K))
    L = rng.normal(size=n * k)
    v64, rw64, g64 = run_kernels(a, gum, k, L, 0.5)
    v32, rw32, g32 = run_kernels(a, gum, k, L, 0.5, np.float32)
    assert np.isfinite(g32).all() and g32.dtype == np.float32
    np.testing.assert_array_equal(v32, v64)
    np.testing.assert_allclose(rw32, rw64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5 * np.abs(g64).max())
    L[4] = np.nan   # row 4 belongs to set 1 (rows 3..5): its three rows become NaN, the others not
    _, _, g = run_kernels(a, gum, k, L, 0.5, np.float32)
    assert np.isnan(g[3:6]).all() and np.isfinite(np.delete(g, [3, 4, 5], axis=0)).all()


# ------------------------------------------------------------------ whole programs
def one_group_model(name="us_one"):
    with Model(name) as m:
        x = m.input("x", 3)
        z = Categorical("z", logits=Affine(x, 5, name="enc"), classes=5)
        y = ppl.tanh(Affine(z, 2, name="dec"))
        m.cost("f", ppl.total(y * y))
        m.cost("lp", ppl.log_prob(z))
    return m


X = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0]])


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 4])
def test_one_group_unbiased(k):
    m = one_group_model(f"us_one_{k}")
    prog = m.compile(dtype=np.float64, estimators=("unordered_set", {"k": k}), seed=5)
    names = list(exact.model_params(prog))
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(m, P, {"x": X}), names)
    G = stats.draws(prog, {"x": X}, names, 200, 100)
    r = stats.assert_unbiased(G, e, f"one group unordered_set k={k}")
    print(f"one group k={k}:", r)


US2 = ("unordered_set", {"k": 2})
MOVING = ("score", {"baseline": "moving_average"})


@pytest.mark.slow
@pytest.mark.parametrize("layers,pe,ce,samples", [("CB", US2, "disarm", 2), ("CB", US2, "score", 2),
                                                  ("CB", US2, "enumerate", 1), ("BC", "enumerate", US2, 2),
                                                  ("BC", MOVING, US2, 1)],
                         ids=["us-disarm", "us-score_loo", "us-enumerate", "enumerate-us", "score_ma-us"])
def test_mixed_pairs_are_unbiased(layers, pe, ce, samples):
    """Stacked with other estimators (tests/estimators/test_mixed_matrix.py's layer pairs, one group of 3
    classes, k = 2): every parameter against tests/exact.py; detects a 5% bias."""
    run_pair(layers, pe, ce, samples)


def test_refusals_name_the_fix():
    with Model("us_groups") as m:
        x = m.input("x", 3)
        z = Categorical("z", logits=Affine(x, 6, name="enc"), classes=3)
        m.cost("f", ppl.total(z))
    with pytest.raises(ppl.ModelError, match=r"'z'.*2 groups.*its own node"):
        m.compile(estimators={"z": "unordered_set"})
    with pytest.raises(ppl.ModelError, match=r"'z'.*option k.*from 2 to 5"):
        one_group_model("us_k").compile(estimators={"z": ("unordered_set", {"k": 1})})
    for above in ("disarm", "score"):   # score: samples 2, the leave-one-out baseline
        with pytest.raises(ppl.ModelError, match=r"'h2'.*cannot sit below 'h1'.*'moving_average'"):
            build("BC", f"us_refused_{above}").compile(estimators={"h1": above, "h2": US2}, samples=2)


@pytest.mark.cuda
def test_cuda_program_matches_cpu():
    """The CUDA program (the twins of kernels/families/unordered_set.py; the simulator without a
    GPU) gives the CPU program's loss and gradient on the same seed, over a DisARM child."""
    est = {"h1": US2, "h2": "disarm"}
    cpu = build("CB", "us_cpu").compile(dtype=np.float64, estimators=est, samples=2, seed=1)
    gpu = build("CB", "us_gpu").compile(dtype=np.float64, estimators=est, samples=2, seed=1, target="cuda")
    assert "core.us_grad" in gpu.source
    for seed in (0, 7):
        lc, gc = cpu.grad(DATA, seed=seed)
        lg, gg = gpu.grad(DATA, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
