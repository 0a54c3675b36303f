"""The double control variate estimator (ppl/estimators/double_cv.py, kernels/families/dcv.py),
float64 unless stated.

1. Correctness at fixed noise: a program's gradient equals a direct NumPy implementation of the
   formula (Titsias & Shi 2022; the module docstring of kernels/families/dcv.py) at the program's
   draws, to rounding (rtol 1e-10), alpha's variance gradient too; alpha = 0 is score with the
   leave-one-out baseline.
2. The kernel on random inputs with a configuration digit below the node (marginalised), float64
   and float32 against NumPy; NaN logits never give a finite gradient.
3. Unbiasedness with stated power (tests/stats.py: the same estimates scaled by 1.05 / 0.95 must
   fail): a one-layer model against exact.py, the two-layer Bernoulli net of
   test_estimators_unbiased.py on both layers, and stacked with other estimators
   (test_mixed_matrix.run_pair: disarm over double_cv, double_cv over score / disarm / enumerate,
   rebar over double_cv; the digits of the nodes below are marginalised, REBAR's rows skipped).
4. Errors (samples < 2, alpha, the IWAE objective), the CUDA program (simulator) against the CPU
   program, and a float32 fit that trains alpha.
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.kernels.families import dcv

import exact
import stats
from test_estimators_unbiased import X4, set_params, tuned_unbiased, two_layer_model
from test_mixed_matrix import run_pair


def one_layer(name="dcv_one"):
    with Model(name) as m:
        x = m.input("x", 4)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        m.cost("lp", ppl.log_prob(h))
        m.cost("rec", ppl.bernoulli_nll(Affine(h, 4, name="dec"), target=x))
    return m


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def dcv_ref(f, G, b, mu, K, alpha):
    """The estimate per draw (rows grouped by data row, K each): (T_k - mean_{j != k} T_j)
    (b_k - mu_k) - alpha G_-k mu_k (1 - mu_k), T_k = f_k + alpha <G_-k, b_k - mu_k>."""
    out = np.zeros_like(b)
    for i in range(len(f) // K):
        s = slice(i * K, (i + 1) * K)
        Gl = (G[s].sum(0) - G[s]) / (K - 1)
        T = f[s] + alpha * (Gl * (b[s] - mu[s])).sum(1)
        out[s] = (T - (T.sum() - T) / (K - 1))[:, None] * (b[s] - mu[s]) - alpha * Gl * mu[s] * (1 - mu[s])
    return out


# ------------------------------------------------------------------ 1. fixed noise, to rounding
@pytest.mark.parametrize("alpha", [-0.7, 0.0])
def test_matches_the_formula_at_fixed_noise(alpha):
    K = 3
    prog = one_layer().compile(dtype=np.float64, estimators=("double_cv", {"alpha": alpha}), samples=K, seed=2)
    P = prog.params
    B = len(X4)
    for seed in (0, 1):
        h = prog.sample({"x": X4}, seed=seed)["h"]
        _, g = prog.grad({"x": X4}, seed=seed)
        xr = np.repeat(X4, K, axis=0)
        A = np.repeat(X4 @ P["enc.W"] + P["enc.b"], K, axis=0)
        mu, s = sigmoid(A), sigmoid(h @ P["dec.W"] + P["dec.b"])
        f = -(xr * np.log(s) + (1 - xr) * np.log(1 - s)).sum(1) + (h * np.log(mu) + (1 - h) * np.log(1 - mu)).sum(1)
        G = (s - xr) @ P["dec.W"].T + A        # df/db: the decoder's nll and d log q(b | a) / db = a
        ga = (dcv_ref(f, G, h, mu, K, alpha) + (h - mu)) / (B * K)   # + the log_prob cost's direct term
        np.testing.assert_allclose(g["enc.W"], xr.T @ ga, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(g["enc.b"], ga.sum(0), rtol=1e-10, atol=1e-14)
        # alpha's gradient: d/dalpha sum_i |v_i|^2, v_i the estimate summed over data row i's draws,
        # linear in alpha: 2 <v_i, v_i(alpha + 1) - v_i(alpha)>
        v0, v1 = (dcv_ref(f, G, h, mu, K, al).reshape(B, K, 3).sum(1) / (B * K) for al in (alpha, alpha + 1))
        np.testing.assert_allclose(g["double_cv.h.alpha"], [2 * (v0 * (v1 - v0)).sum()], rtol=1e-10, atol=1e-300)
        if alpha == 0.0:   # leave-one-out REINFORCE exactly
            loo = one_layer("dcv_loo").compile(dtype=np.float64, estimators=("score", {"baseline": "loo"}),
                                               samples=K, seed=2)
            set_params(loo, {k: np.array(P[k]) for k in prog.model_param_names()})
            _, gl = loo.grad({"x": X4}, seed=seed)
            for k in gl:
                np.testing.assert_allclose(g[k], gl[k], rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ 2. the kernel
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_marginalises_the_digits_below(dtype):
    """Two data rows, K = 3, a digit of size 2 below the node (stride 1: rows r = (i K + k) 2 + c):
    per sample f = sum rw L / sum rw and G = sum g / sum rw over its two rows, the estimate on
    the first row with weight sum rw (the second row's ga untouched)."""
    rng = np.random.default_rng(0)
    n, K, S, D, alpha = 2, 3, 2, 4, -0.6
    R = n * K * S
    a = rng.normal(size=(R, D))
    a[1::2] = a[0::2]                     # the node's logits and value are the same across the digit below
    b = (rng.random((R, D)) < 0.5).astype(float)
    b[1::2] = b[0::2]
    L, g, rw = rng.normal(size=R), rng.normal(size=(R, D)), rng.uniform(0.2, 1.0, R)
    W = rw[0::2] + rw[1::2]
    f = (rw[0::2] * L[0::2] + rw[1::2] * L[1::2]) / W
    G = (g[0::2] + g[1::2]) / W[:, None]
    want = np.zeros((R, D))
    want[0::2] = W[:, None] * dcv_ref(f, G, b[0::2], sigmoid(a[0::2]), K, alpha)
    c = lambda x: np.ascontiguousarray(x, dtype)   # noqa: E731
    args = [c(a), c(b), c(L), c(g), c(rw), K, S, (1,), (2,), np.array([alpha], dtype), False]
    scratch = lambda: [np.zeros(R, dtype), np.zeros(R, dtype), np.zeros(R, dtype), np.zeros((R, D), dtype)]  # noqa
    out = np.full((R, D), 0.5, dtype)
    dcv.double_cv_grad(*args, *scratch(), out, np.zeros(0, dtype))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, 0.5 + want, **tol)
    bad = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in args]
    bad[0][2, 1] = np.nan                 # data row 0, sample 1
    out = np.zeros((R, D), dtype)
    dcv.double_cv_grad(*bad, *scratch(), out, np.zeros(0, dtype))
    assert np.isnan(out[2]).all() and np.isnan(out[0:K * S:2]).any()   # its data row: NaN, never finite
    assert np.all(np.isfinite(out[K * S:]))                               # the other data row: untouched by it


# ------------------------------------------------------------------ 3. unbiased, with stated power
def test_one_layer_is_unbiased():
    m = one_layer("dcv_one_u")
    prog = m.compile(dtype=np.float64, estimators="double_cv", samples=3, seed=4)
    P = exact.model_params(prog)
    tuned_unbiased(prog, {"x": X4}, exact.gradient(m, P, {"x": X4}), "one-layer double_cv K=3")


@pytest.mark.parametrize("K,alpha", [(2, 0.5)])   # alpha = -1 (the default) and K = 3: the tests around
def test_two_layer_is_unbiased(K, alpha, two_layer_exact):
    values, e = two_layer_exact
    prog = two_layer_model().compile(dtype=np.float64, estimators=("double_cv", {"alpha": alpha}), samples=K, seed=3)
    set_params(prog, values)
    tuned_unbiased(prog, {"x": X4}, e, f"two-layer double_cv alpha={alpha} K={K}")


@pytest.fixture(scope="module")
def two_layer_exact():
    from test_estimators_unbiased import exact_two_layer
    prog = two_layer_model().compile(dtype=np.float64, estimators="enumerate", seed=3)
    return {k: v.copy() for k, v in prog.params.items()}, exact_two_layer(prog)


@pytest.mark.parametrize("pe,ce", [("disarm", "double_cv"), ("double_cv", "score"), ("double_cv", "disarm"),
                                   ("double_cv", "enumerate"), ("rebar", "double_cv")])
def test_stacked_with_other_estimators_is_unbiased(pe, ce):
    """Bernoulli -> Bernoulli layers of test_mixed_matrix.py (samples 2), every parameter against
    exact.py, detecting a 5% bias."""
    run_pair("BB", pe, ce, 2)


# ------------------------------------------------------------------ 4. errors, CUDA
def test_errors_name_the_node_and_the_fix():
    with pytest.raises(ppl.ModelError, match=r"'h': estimator 'double_cv' does not apply \(it needs samples >= 2"):
        one_layer("dcv_k1").compile(estimators={"h": "double_cv"})
    with pytest.raises(ppl.ModelError, match="alpha must be a finite number"):
        one_layer("dcv_nan").compile(estimators=("double_cv", {"alpha": float("nan")}), samples=2)
    with pytest.raises(ppl.ModelError, match="not of 'iwae'"):
        one_layer("dcv_iwae").compile(estimators={"h": "double_cv"}, samples=2, objective="iwae")


def stacked(name="dcv_stacked"):
    with Model(name) as m:
        x = m.input("x", 4)
        h1 = Bernoulli("h1", logits=Affine(x, 3, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 3, name="e2"))
        h3 = Bernoulli("h3", logits=Affine(h2, 2, name="e3"))
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("r1", ppl.bernoulli_nll(Affine(h1, 4, name="d1"), target=x))
        m.cost("r3", ppl.total(ppl.tanh(Affine(h2, 2, name="d2")) * ppl.tanh(Affine(h3, 2, name="d3"))))
    return m


@pytest.mark.cuda
def test_cuda_program_matches_cpu():
    """double_cv over disarm over double_cv: the CUDA program (the twins of kernels/families/dcv.py)
    gives the CPU program's loss and gradient on the same seeds (the digit below h1 marginalised on
    both)."""
    est = {"h1": "double_cv", "h2": "disarm", "h3": ("double_cv", {"alpha": -0.5})}
    cpu = stacked().compile(dtype=np.float64, estimators=est, samples=2, seed=1)
    gpu = stacked().compile(dtype=np.float64, estimators=est, samples=2, seed=1, target="cuda")
    assert gpu.target == "cuda" and "core.double_cv_grad" in gpu.source
    for seed in (0, 7):
        lc, gc = cpu.grad({"x": X4}, seed=seed)
        lg, gg = gpu.grad({"x": X4}, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_fit_in_float32_trains_alpha():
    """The default program (float32, alpha trained) through ppl.fit: finite losses, alpha moved
    from its initial -1 and is no model parameter."""
    prog = one_layer("dcv_fit").compile(estimators="double_cv", samples=2, seed=0)
    assert prog.dtype == np.float32 and "double_cv.h.alpha" not in prog.model_param_names()
    hist = ppl.fit(prog, {"x": np.tile(X4, (20, 1)).astype(np.float32)}, ppl.optim.make("adam", 0.01), steps=200,
                   batch_size=8, progress=False)
    assert np.all(np.isfinite(hist.loss))
    a = float(prog.params["double_cv.h.alpha"][0])
    assert np.isfinite(a) and a != -1.0
