"""The harness the kernel tests share (tests/kernels/test_kernels_core.py, test_kernels_dists.py,
test_kernels_costs.py): the array sizes, the case format and its two checkers, and a NumPy
softmax oracle. Not a test module: imported by the test modules as `kernel_cases`, as they
import tests/exact.py.

* Backward kernels against central finite differences of their forward (float64, h = 1e-6,
  rtol 1e-6, atol 1e-8), through one generic helper (`check_vjp`) that also checks accumulation
  (two calls give twice the gradient) and skipping (a gradient passed with shape[0] == 0 is
  left alone and the others are unchanged).
* float32 forward and backward match float64 within 1e-5 relative (+ small atol) (`check_float32`).
"""
import numpy as np
from numpy.testing import assert_allclose
from scipy import special

R, D, K, I = 4, 6, 3, 5  # rows, columns, classes per group (G = D // K = 2), affine inputs
G = D // K
M = 3  # NCE noise samples


def skip(a):
    """The generator's 'no gradient wanted' marker: an empty array of the same ndim."""
    return np.empty((0,) * a.ndim, a.dtype)


# ------------------------------------------------------------------ the cases
# Each case: inputs(rng) -> dict of float64 arrays; fwd(inp) -> output (allocates the output,
# calls the kernel); bwd(inp, gout, g) calls the backward kernel with gradient dict g;
# wrt: inputs differentiated by the backward kernel (g has exactly these keys).


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _rows_out(x):
    return np.empty(x.shape[0], x.dtype)


def _softmax_groups(a):
    return special.softmax(a.reshape(a.shape[0], -1, K), axis=2).reshape(a.shape)


def check_vjp(case, seed=0, h=1e-6, rtol=1e-6, atol=1e-8):
    """Backward kernel == central finite differences of the forward (float64), accumulates,
    and honours the skip marker for every gradient."""
    rng = np.random.default_rng(seed)
    inp = case["inputs"](rng)
    fwd, bwd, wrt = case["fwd"], case["bwd"], case["wrt"]
    y = fwd(inp)
    w = rng.normal(size=y.shape)  # random cotangent: checks the full VJP, not one column
    grads = {k: np.zeros_like(inp[k]) for k in wrt}
    bwd(inp, w, grads)
    for k in wrt:
        x = inp[k]
        fd = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + h
            lp = np.sum(w * fwd(inp))
            x[idx] = old - h
            lm = np.sum(w * fwd(inp))
            x[idx] = old
            fd[idx] = (lp - lm) / (2 * h)
        assert_allclose(grads[k], fd, rtol=rtol, atol=atol, err_msg=f"d/d{k}")
    # accumulation: a second call adds the same gradient again
    first = {k: v.copy() for k, v in grads.items()}
    bwd(inp, w, grads)
    for k in wrt:
        assert_allclose(grads[k], 2 * first[k], rtol=1e-14, atol=0, err_msg=f"accumulate d/d{k}")
    # skipping: each gradient in turn passed as an empty array; the others are unchanged
    if len(wrt) > 1:
        for k in wrt:
            g = {j: (skip(inp[j]) if j == k else np.zeros_like(inp[j])) for j in wrt}
            bwd(inp, w, g)
            for j in wrt:
                if j != k:
                    assert_allclose(g[j], first[j], rtol=1e-14, atol=0, err_msg=f"skip {k}")


def check_float32(case):
    """A case's forward and backward in float32 agree with float64 (rtol 1e-5, atol 1e-5 * scale)."""
    rng = np.random.default_rng(1)
    inp64 = case["inputs"](rng)
    inp32 = {k: v.astype(np.float32) for k, v in inp64.items()}
    inp64 = {k: v.astype(np.float64) for k, v in inp32.items()}  # identical inputs
    y64 = case["fwd"](inp64)
    y32 = case["fwd"](inp32)
    assert y32.dtype == np.float32
    scale = np.max(np.abs(y64))
    assert_allclose(y32, y64, rtol=1e-5, atol=1e-5 * scale)
    w = rng.normal(size=y64.shape)
    g64 = {k: np.zeros_like(inp64[k]) for k in case["wrt"]}
    g32 = {k: np.zeros_like(inp32[k]) for k in case["wrt"]}
    case["bwd"](inp64, w, g64)
    case["bwd"](inp32, w.astype(np.float32), g32)
    for k in case["wrt"]:
        assert g32[k].dtype == np.float32
        assert_allclose(g32[k], g64[k], rtol=1e-5, atol=1e-5 * max(np.max(np.abs(g64[k])), 1.0))
