"""The layers' kernels (kernels/cpu/core.py: affine, activations, elementwise maps, row sums,
softmax and log-sum-exp) against NumPy / SciPy, and every float32 kernel of the step's `core`
namespace checked for double-precision arithmetic.

* Forward kernels against NumPy / scipy.special (float64, rtol 1e-12 unless stated).
* Backward kernels against central finite differences of their forward, float32 against
  float64 (tests/kernel_cases.py's `check_vjp`, `check_float32`).
* The float32 compilations of every kernel (the layers', tests/kernels/test_kernels_dists.py's and
  tests/kernels/test_kernels_costs.py's cases) contain no double-precision arithmetic at all.
* The kernels are callable from a user's nopython code.
"""
import re

import numpy as np
import pytest
from numba import njit, typeof
from numpy.testing import assert_allclose
from scipy import special, stats

from ppl.kernels.cpu import core as cpu
from ppl.kernels.numba_compat import optimised_ir

# against NumPy / SciPy references of transcendental formulas: 1e-9, not 1e-12; this machine now
# and then computes libm results ~1e-11 off in every process for minutes (tests/conftest.py;
# seen 3e-11 and 4.5e-11 here), and a wrong formula misses by far more
from machine import RTOL_LIBM  # noqa: E402  (this machine's libm windows; tests/machine.py)

from kernel_cases import D, G, I, K, R, _softmax_groups, check_float32, check_vjp


def _unary(name, lo=-3.0, hi=3.0):
    fwd_k = getattr(cpu, name + "_fwd")
    bwd_k = getattr(cpu, name + "_bwd")

    def inputs(rng):
        z = rng.uniform(lo, hi, size=(R, D))
        if name == "relu":  # keep clear of the kink for finite differences
            z = np.where(np.abs(z) < 0.1, 0.5, z)
        return {"z": z}

    def fwd(i):
        out = np.empty_like(i["z"])
        fwd_k(i["z"], out)
        return out

    def bwd(i, gout, g):
        bwd_k(i["z"], fwd(i), gout, g["z"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["z"])


def _affine():
    def inputs(rng):
        return {"x": rng.normal(size=(R, I)), "W": rng.normal(size=(I, D)), "b": rng.normal(size=D)}

    def fwd(i):
        out = np.empty((R, D), i["x"].dtype)
        cpu.affine_fwd(i["x"], i["W"], i["b"], out)
        return out

    def bwd(i, gout, g):
        cpu.affine_bwd(i["x"], i["W"], gout, g["x"], g["W"], g["b"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["x", "W", "b"])


def _binary(name):
    fwd_k = getattr(cpu, name + "_fwd")

    def inputs(rng):
        return {"a": rng.normal(size=(R, D)), "b": rng.normal(size=(R, D))}

    def fwd(i):
        out = np.empty_like(i["a"])
        fwd_k(i["a"], i["b"], out)
        return out

    def bwd(i, gout, g):
        if name == "add":
            cpu.add_bwd(gout, g["a"], g["b"])
        else:
            cpu.mul_bwd(i["a"], i["b"], gout, g["a"], g["b"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "b"])


def _simple(fwd_k, bwd_k, shape_in, out_shape):
    def inputs(rng):
        return {"x": rng.normal(size=shape_in)}

    def fwd(i):
        out = np.empty(out_shape, i["x"].dtype)
        fwd_k(i["x"], out)
        return out

    def bwd(i, gout, g):
        bwd_k(gout, g["x"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["x"])


def _rowsum():
    d = _simple(cpu.row_sum_fwd, cpu.row_sum_bwd, (R, D), (R,))
    return d


def _softmax():
    def inputs(rng):
        return {"z": rng.normal(scale=2, size=(R, D))}

    def fwd(i):
        out = np.empty_like(i["z"])
        cpu.softmax_fwd(i["z"], K, out)
        return out

    def bwd(i, gout, g):
        cpu.softmax_bwd(i["z"], K, fwd(i), gout, g["z"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["z"])


def _logsumexp():
    def inputs(rng):
        return {"z": rng.normal(scale=2, size=(R, D))}

    def fwd(i):
        out = np.empty((R, G), i["z"].dtype)
        cpu.logsumexp_rows(i["z"], K, out)
        return out

    def bwd(i, gout, g):  # d lse_g / dz_k = softmax_k: the VJP via softmax_fwd
        y = np.empty_like(i["z"])
        cpu.softmax_fwd(i["z"], K, y)
        g["z"] += y * np.repeat(gout, K, axis=1)

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["z"])


CASES = {
    "affine": _affine(),
    **{name: _unary(name) for name in ["sigmoid", "tanh", "relu", "softplus", "sqrt1p", "exp"]},
    "add": _binary("add"),
    "mul": _binary("mul"),
    "broadcast_rows": _simple(cpu.broadcast_rows_fwd, cpu.broadcast_rows_bwd, (D,), (R, D)),
    "copy": _simple(cpu.copy_fwd, cpu.copy_bwd, (R, D), (R, D)),
    "row_sum": _rowsum(),
    "softmax": _softmax(),
    "logsumexp_rows": _logsumexp(),
}


@pytest.mark.parametrize("name", list(CASES))
def test_backward_matches_finite_differences(name):
    check_vjp(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_float32_matches_float64(name):
    """Forward and backward in float32 agree with float64 (rtol 1e-5, atol 1e-5 * scale)."""
    check_float32(CASES[name])


def _native_functions(ir):
    """The nopython function definitions of an LLVM module, without the CPython/cfunc
    wrappers (which box a returned float32 as a Python float, i.e. a double)."""
    defs = ir.split("\ndefine ")[1:]
    return [d for d in defs if "@_ZN7cpython" not in d.split("\n", 1)[0]
            and "@cfunc." not in d.split("\n", 1)[0]]


# Kernels whose float32 specialisation keeps some of its maths in float64 on purpose. The check
# below sees every float32 specialisation compiled in its process, so without this list its
# outcome depended on which tests the process ran first (a test of the CUDA kernels compiles
# these for float32).
FLOAT64_BY_DESIGN = {
    "us_forward": "the unordered set's sequence table in float64 log space (families/unordered_set.py's docstring)",
    "us_grad": "the same table and its log-normaliser, in float64",
    "arm_grad": "ARM's coefficient (u - 1/2) with scalar.arm_coef's float64 1/2 (the row-fused steps share it)",
    "arm_grad_marginal": "the members' marginal signals sum rw L / sum rw in float64 (kernels/math/slots.py: _marginal_signal)",
    "disarm_grad_marginal": "the same marginal signals, in float64",
    "cat_disarm_grad_marginal": "the same marginal signals, in float64",
}
# families whose kernels compute in float64 by design for every program dtype (each module's docstring);
# the suite's other tests compile them in float32 in the same process, in an order the run decides
FLOAT64_FAMILIES = {
    "bounds": "the importance-weighted bound's log-mean-exp, its swapped-out bounds and its mean",
    "arms": "pi^(1/m) and the debiasing factor 1 / (1 - rho)",
    "dcv": "alpha's variance gradient, a sum of products",
    "poisson": "the inverse CDF of the count (exp(-rate) may underflow without harm)",
    "rodeo": "the Stein terms and the control variate network's sums",
}


def _float64_by_design(name, f) -> bool:
    family = getattr(getattr(f, "py_func", None), "__module__", "").rsplit(".", 1)[-1]
    return name in FLOAT64_BY_DESIGN or family in FLOAT64_FAMILIES


def _optimised_ir(f, sig):
    """The code that runs, with the kernel's own options (fastmath, error model); for a kernel
    loaded from the disk cache the cache's copy of the optimised module (`inspect_llvm` cannot
    show it), instead of compiling the kernel again (0.3 s a kernel, ~20 s for this test's 60-odd)."""
    return optimised_ir(f, sig)


def test_float32_code_has_no_double_precision():
    """Every kernel compiled for float32 (by the cases' checks, run again here) does its math in
    float32: the optimised LLVM IR of the float32 specialisation mentions no `double` at all.
    (Cached code is read from the cache's copy of that IR, `_optimised_ir`; a float32 kernel that
    keeps float64 by design shows that the IR read is the real one.)"""
    from test_kernels_costs import COSTS   # the cost heads' cases (tests/kernels/test_kernels_costs.py)
    from test_kernels_dists import CASES as DISTS   # the distributions' (tests/kernels/test_kernels_dists.py)
    for case in [*CASES.values(), *DISTS.values(), *COSTS.values()]:  # every float32 specialisation exists here
        check_float32(case)
    checked = 0
    for name in dir(cpu):
        f = getattr(cpu, name)
        if not hasattr(f, "signatures") or _float64_by_design(name, f):
            continue
        for sig in f.signatures:
            arrays = [a for a in sig if hasattr(a, "dtype")]
            # only float32 specialisations: other tests in the session may have compiled the
            # same kernel with float64 scalars (e.g. a Python-float learning rate), whose cast
            # to float32 is a legitimate `double` in the IR
            scalars_ok = all(str(a) not in ("float64", "double") for a in sig if not hasattr(a, "dtype"))
            if arrays and scalars_ok and all(str(a.dtype) == "float32" for a in arrays):
                for fn in _native_functions(_optimised_ir(f, sig)):
                    assert not re.search(r"\bdouble\b", fn), f"{name}{sig} computes in float64"
                checked += 1
    assert checked >= 40
    # the IR read shows a `double` where a float32 kernel has one: ARM's float64 1/2 (FLOAT64_BY_DESIGN)
    z = np.zeros((2, 3), np.float32)
    args = (z, z[:, 0].copy(), z[:, 0].copy(), 1, 1, 2, z.copy())
    cpu.arm_grad(*args)
    ir = _optimised_ir(cpu.arm_grad, tuple(typeof(a) for a in args))
    assert any(re.search(r"\bdouble\b", fn) for fn in _native_functions(ir))


# ------------------------------------------------------------------ forward oracles


def test_layers_forward():
    rng = np.random.default_rng(2)
    x, W, b = rng.normal(size=(R, I)), rng.normal(size=(I, D)), rng.normal(size=D)
    assert_allclose(CASES["affine"]["fwd"]({"x": x, "W": W, "b": b}), x @ W + b, rtol=1e-12)
    z = rng.uniform(-5, 5, size=(R, D))
    refs = {
        "sigmoid": special.expit(z),
        "tanh": np.tanh(z),
        "relu": np.maximum(z, 0),
        "softplus": np.logaddexp(0, z),
        "sqrt1p": np.sqrt(1 + z * z),
        "exp": np.exp(z),
    }
    for name, ref in refs.items():
        out = np.full_like(z, np.nan)  # forward overwrites
        getattr(cpu, name + "_fwd")(z, out)
        assert_allclose(out, ref, rtol=1e-13, atol=1e-300, err_msg=name)
    a, c = rng.normal(size=(R, D)), rng.normal(size=(R, D))
    out = np.empty_like(a)
    cpu.add_fwd(a, c, out)
    assert_allclose(out, a + c, rtol=1e-15)
    cpu.mul_fwd(a, c, out)
    assert_allclose(out, a * c, rtol=1e-15)
    cpu.copy_fwd(a, out)
    assert np.array_equal(out, a)
    cpu.broadcast_rows_fwd(b, out)
    assert np.array_equal(out, np.broadcast_to(b, (R, D)))
    rows = np.empty(R)
    cpu.row_sum_fwd(a, rows)
    assert_allclose(rows, a.sum(1), rtol=1e-14)


def test_affine_skips_gx_and_accumulates():
    rng = np.random.default_rng(3)
    x, W, gout = rng.normal(size=(R, I)), rng.normal(size=(I, D)), rng.normal(size=(R, D))
    gW, gb = np.ones((I, D)), np.ones(D)
    cpu.affine_bwd(x, W, gout, np.empty((0, 0)), gW, gb)
    assert_allclose(gW, 1 + x.T @ gout, rtol=1e-13)
    assert_allclose(gb, 1 + gout.sum(0), rtol=1e-13)


def test_softmax_and_logsumexp_forward():
    rng = np.random.default_rng(15)
    z = rng.normal(scale=3, size=(R, D))
    z[0, :K] = [1e4, -1e4, 9999.0]  # no overflow
    out, lse = np.empty_like(z), np.empty((R, G))
    cpu.softmax_fwd(z, K, out)
    assert_allclose(out, _softmax_groups(z), rtol=1e-13, atol=1e-300)
    cpu.logsumexp_rows(z, K, lse)
    assert_allclose(lse, special.logsumexp(z.reshape(R, G, K), axis=2), rtol=1e-14)


# ------------------------------------------------------------------ embedding


def test_kernels_callable_from_user_njit_code():
    """The fused step (and a user's simulation) calls the kernels from nopython code."""

    @njit
    def step(a, x, grow, glogits, gx, out):
        cpu.bernoulli_log_prob(a, x, out)
        cpu.bernoulli_log_prob_bwd(a, x, grow, glogits, gx)
        return out.sum()

    rng = np.random.default_rng(14)
    a, x = rng.normal(size=(R, D)), rng.integers(0, 2, size=(R, D)).astype(float)
    ga = np.zeros((R, D))
    total = step(a, x, np.ones(R), ga, np.empty((0, 0)), np.empty(R))
    assert_allclose(total, stats.bernoulli.logpmf(x, special.expit(a)).sum(), rtol=RTOL_LIBM)
    assert_allclose(ga, x - special.expit(a), rtol=RTOL_LIBM)
