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
from ppl.ops import OPS

DECLARED = sorted(f.OP.kind for f in families.modules() if getattr(f, "OP", None) is not None)
NUMPY = {"log": np.log}
X = np.random.default_rng(0).normal(size=(5, 3))


def test_every_declared_op_has_an_oracle_here():
    assert DECLARED, "no op declared in kernels/families"
    assert set(DECLARED) <= set(NUMPY), f"add the NumPy function of {set(DECLARED) - set(NUMPY)} to NUMPY"


def build(kind, width, name):
    with Model(name) as m:
        x = m.input("x", width)
        a = ppl.exp(Affine(x, width, name="a"))            # positive, for ops with a positive domain
        z = ppl.Normal("z", getattr(ppl, kind)(a + 0.5), 0.3)
        m.cost("sq", ppl.total(z * z))
    return m


@pytest.mark.parametrize("kind", DECLARED)
def test_a_declared_op_values_gradients_and_both_lowerings(kind):
    assert OPS[kind].unary and getattr(ppl, kind).__doc__ == OPS[kind].doc and kind in ppl.__all__
    arrays = build(kind, 3, f"op_{kind}").compile(dtype=np.float64, estimators="pathwise")
    data = {"x": X}
    s = arrays.sample(data, seed=1)
    a = np.exp(X @ arrays.params["a.W"] + arrays.params["a.b"])
    node = next(k for k in s if k.startswith(kind))
    np.testing.assert_allclose(s[node], NUMPY[kind](a + 0.5), rtol=1e-12)
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


def test_log_of_a_negative_value_is_nan_not_clipped():
    from ppl.kernels.cpu.core import log_value
    assert np.isnan(log_value(-1.0)) and log_value(0.0) == -np.inf and np.isnan(log_value(np.nan))
