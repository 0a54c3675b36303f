"""Elementwise ops declared in one file (kernels/families/<op>.py, kernels/declare.unary): the op
table entry, the DSL constructor ppl.<op>, both lowerings and the CUDA twin come from the
file. Checked for every such op the way every op is checked (tests/tables/test_layer_ops.py): values
against NumPy (oracle), gradients against central differences at fixed noise (float64,
h = 1e-6, 1e-6 relative), the row-fused lowering against the array lowering, the CUDA program
against the CPU one (simulator without a GPU); the parity of its kernels runs in
tests/kernels/test_gpu_kernels.py.
"""
import numpy as np
import pytest

import exact
import ppl
from ppl import Affine, Model
from ppl.kernels import families
from ppl.kernels.declare import ops
from ppl.ops import OPS

OPS_DECLARED = {op.kind: op for f in families.modules() for op in ops(f)}
DECLARED = sorted(OPS_DECLARED)
NUMPY = {"log": np.log, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
         "softplus": lambda v: np.log1p(np.exp(v)), "exp": np.exp, "sqrt1p": lambda v: np.sqrt(1 + v * v)}
X = np.random.default_rng(0).normal(size=(5, 3))


def test_every_declared_op_has_an_oracle_here():
    assert DECLARED, "no op declared in kernels/families"
    assert set(DECLARED) <= set(NUMPY), f"add the NumPy function of {set(DECLARED) - set(NUMPY)} to NUMPY"


def build(kind, width, name):
    with Model(name) as m:
        x = m.input("x", width)
        a = ppl.exp(Affine(x, width, name="a"))            # positive, for ops with a positive domain
        z = ppl.Normal("z", getattr(ppl, kind)(a + 0.5, name="the_op"), 0.3)
        m.cost("sq", ppl.total(z * z))
    return m


@pytest.mark.parametrize("kind", DECLARED)
def test_a_declared_op_values_gradients_and_both_lowerings(kind):
    assert OPS[kind].unary and getattr(ppl, kind).__doc__ == OPS[kind].doc and kind in ppl.__all__
    arrays = build(kind, 3, f"op_{kind}").compile(dtype=np.float64, estimators="pathwise")
    data = {"x": X}
    s = arrays.sample(data, seed=1)
    a = np.exp(X @ arrays.params["a.W"] + arrays.params["a.b"])
    np.testing.assert_allclose(s["the_op"], NUMPY[kind](a + 0.5), rtol=1e-12)
    exact.assert_step_gradient(arrays, data)
    # width 1: the row-fused lowering, against the array lowering of the same graph
    x1 = {"x": X[:, :1]}
    fused = build(kind, 1, f"op1_{kind}").compile(dtype=np.float64, estimators="pathwise")
    plain = build(kind, 1, f"op1_{kind}").compile(dtype=np.float64, estimators="pathwise", lowering="arrays")
    assert "row-fused" in fused.explain() and "row-fused" not in plain.explain()
    plain.theta[:] = fused.theta
    lf, gf = fused.grad(x1, seed=3)
    lp, gp = plain.grad(x1, seed=3)
    assert lf == pytest.approx(lp, rel=1e-12)
    for k in gf:
        np.testing.assert_allclose(gf[k], gp[k], rtol=1e-10)


@pytest.mark.cuda
@pytest.mark.parametrize("kind", DECLARED)
def test_a_declared_op_on_the_cuda_target(kind):
    cpu = build(kind, 3, f"opc_{kind}").compile(dtype=np.float64, estimators="pathwise")
    gpu = build(kind, 3, f"opc_{kind}").compile(dtype=np.float64, estimators="pathwise", target="cuda")
    gpu.theta[:] = cpu.theta
    lc, gc = cpu.grad({"x": X}, seed=2)
    lg, gg = gpu.grad({"x": X}, seed=2)
    assert lg == pytest.approx(lc, rel=1e-10)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", DECLARED)
def test_price_second_order_kernel_against_central_differences(kind):
    """<kind>_d12 (Price's rule, from the op's declared first and second derivatives) against
    central differences of the op's own forward kernel in float64 (h = 1e-4: the second
    difference is good to ~1e-7 relative; rtol 1e-6), through a chain x = a + b t with
    d1x = b, d2x = c: d1 = f'(x) b, d2 = f''(x) b^2 + f'(x) c. relu away from its kink."""
    op = OPS_DECLARED[kind]
    assert op.d12 is not None and OPS[kind].price is not None
    rng = np.random.default_rng(1)
    x = rng.uniform(0.2, 2.0, (3, 4)) * (1 if kind == "log" else rng.choice([-1, 1], (3, 4)))
    b, c = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    d1, d2 = np.zeros_like(x), np.zeros_like(x)
    op.d12(x, b, c, d1, d2)
    h = 1e-4

    def f(v):
        out = np.zeros_like(v)
        op.fwd(v, out)
        return out
    fp, f0, fm = f(x + h), f(x), f(x - h)
    g1, g2 = (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h ** 2
    np.testing.assert_allclose(d1, g1 * b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d2, g2 * b * b + g1 * c, rtol=1e-5, atol=1e-6)


def test_relu_carries_a_nan_to_its_gradient():
    from ppl.kernels.cpu.core import relu_bwd, relu_fwd
    x = np.array([[np.nan, -1.0, 2.0]])
    out, g = np.zeros_like(x), np.zeros_like(x)
    relu_fwd(x, out)
    relu_bwd(x, out, np.ones_like(x), g)
    assert np.isnan(out[0, 0]) and np.isnan(g[0, 0]) and g[0, 1] == 0 and g[0, 2] == 1


def test_log_of_a_negative_value_is_nan_not_clipped():
    from ppl.kernels.cpu.core import log_value
    assert np.isnan(log_value(-1.0)) and log_value(0.0) == -np.inf and np.isnan(log_value(np.nan))
