"""ppl.check_grad: a user layer's VJP and a black box's gradient against central differences.

The contract it checks is the step's: the VJP / gradient WRITES its buffers g_i (the step passes
them holding stale values). The oracle is the definition of the derivative (central differences
in float64, error O(eps^2) ~ 1e-12 here); the tests show that the check passes correct
functions, fails an adding VJP, a partial write, a wrong black-box gradient and a gradient off by
0.1% (the test of the test: the tolerance rtol = 1e-4 is tight enough to see a 0.1% error), and
that the adding VJP really makes the compiled step's gradient wrong (the bug the check catches).
"""
import numpy as np
import pytest
from numba import njit

import ppl
from ppl import Affine, Model


@njit
def mul_tanh(a, b, out):
    for j in range(out.shape[0]):
        out[j] = np.tanh(a[j]) * b[j]


@njit
def mul_tanh_vjp(a, b, out, gout, ga, gb):
    for j in range(out.shape[0]):
        t = np.tanh(a[j])
        ga[j] = gout[j] * (1.0 - t * t) * b[j]
        gb[j] = gout[j] * t


@njit
def mul_tanh_vjp_adds(a, b, out, gout, ga, gb):          # as PyTorch users write it
    for j in range(out.shape[0]):
        t = np.tanh(a[j])
        ga[j] += gout[j] * (1.0 - t * t) * b[j]
        gb[j] += gout[j] * t


@njit
def mul_tanh_vjp_partial(a, b, out, gout, ga, gb):       # forgets gb's last entry
    for j in range(out.shape[0]):
        t = np.tanh(a[j])
        ga[j] = gout[j] * (1.0 - t * t) * b[j]
        if j < out.shape[0] - 1:
            gb[j] = gout[j] * t


@njit
def mul_tanh_vjp_off(a, b, out, gout, ga, gb):           # 0.1% too large in ga
    for j in range(out.shape[0]):
        t = np.tanh(a[j])
        ga[j] = 1.001 * gout[j] * (1.0 - t * t) * b[j]
        gb[j] = gout[j] * t


@njit
def cost(z):
    return np.sum(np.sin(z) * z)


@njit
def cost_grad(z, g):
    for j in range(z.shape[0]):
        g[j] = np.cos(z[j]) * z[j] + np.sin(z[j])


@njit
def cost_grad_wrong(z, g):                                # the product rule's second term missing
    for j in range(z.shape[0]):
        g[j] = np.cos(z[j]) * z[j]


@njit
def cost_grad_adds(z, g):
    for j in range(z.shape[0]):
        g[j] += np.cos(z[j]) * z[j] + np.sin(z[j])


def layer_model(vjp):
    with Model("cg_layer") as m:
        x = m.input("x", 4)
        a, b = Affine(x, 3, name="a"), Affine(x, 3, name="b")
        u = ppl.layer(mul_tanh, [a, b], 3, vjp=vjp, name="u")
        m.cost("c", ppl.total(u * u))
    return m, u


def test_correct_layer_vjp_and_black_box_gradient_pass():
    _, u = layer_model(mul_tanh_vjp)
    r = ppl.check_grad(u)
    assert r.ok and r.max_error < 1e-8, r
    rows = [np.linspace(-1, 1, 5), np.linspace(2, 3, 5)]
    assert ppl.check_grad(mul_tanh, rows, grad=mul_tanh_vjp, width=5)
    assert ppl.check_grad(cost, [np.linspace(-2, 2, 6)], grad=cost_grad)
    with Model("cg_bb") as m:
        z = ppl.Normal("z", loc=ppl.param("loc", 4), scale=1.0)
        head = ppl.blackbox(cost, [z], grad=cost_grad)
        m.cost("sim", head)
    assert ppl.check_grad(head).ok


def test_a_vjp_that_adds_is_refused_by_name():
    _, u = layer_model(mul_tanh_vjp_adds)
    with pytest.raises(ppl.ModelError, match=r"layer 'u': vjp adds into g_1, .* vjp must WRITE every entry of g_1"):
        ppl.check_grad(u)
    with pytest.raises(ppl.ModelError, match=r"black box: grad adds into g_1"):
        ppl.check_grad(cost, np.ones(3), grad=cost_grad_adds)
    with pytest.raises(ppl.ModelError, match=r"vjp leaves entries \[2\] unwritten in g_2"):
        ppl.check_grad(layer_model(mul_tanh_vjp_partial)[1])


def test_a_wrong_gradient_fails_against_central_differences():
    with pytest.raises(ppl.ModelError, match=r"black box: grad gives .* for d/d row_1\[\d\] at checked row 0; "
                                             r"central differences give"):
        ppl.check_grad(cost, [np.linspace(-2, 2, 6)], grad=cost_grad_wrong)
    # the test of the test: a 0.1% error in one input's VJP is seen; the result names it
    r = ppl.check_grad(layer_model(mul_tanh_vjp_off)[1], raise_error=False)
    assert not r.ok and r.worst[0] == 0 and "layer 'u': vjp gives" in r.message, r


def test_the_adding_vjp_makes_the_step_wrong():
    """What the check guards against: the step's scratch rows keep the previous call's values, so
    an adding VJP's gradient changes from call to call at the same draw; the writing one's not."""
    x = {"x": np.random.default_rng(0).standard_normal((5, 4))}
    grads = {}
    for name, vjp in (("writes", mul_tanh_vjp), ("adds", mul_tanh_vjp_adds)):
        prog = layer_model(vjp)[0].compile(dtype=np.float64)
        prog.theta[:] = np.random.default_rng(1).normal(0, 0.5, prog.theta.shape)
        grads[name] = [prog.grad(x, seed=3)[1]["a.W"] for _ in range(2)]
    np.testing.assert_array_equal(grads["writes"][0], grads["writes"][1])
    np.testing.assert_array_equal(grads["writes"][0], grads["adds"][0])      # zeroed workspace at first
    assert not np.allclose(grads["adds"][0], grads["adds"][1])               # then stale values added


def test_check_grad_arguments():
    with pytest.raises(ppl.ModelError, match=r"pass rows=\[row_1, ...\]"):
        ppl.check_grad(cost, grad=cost_grad)
    with pytest.raises(ppl.ModelError, match=r"no gradient to check"):
        ppl.check_grad(layer_model(None)[1])
    with pytest.raises(ppl.ModelError, match=r"rows\[0\] has 2 columns; input 1 has width 3"):
        ppl.check_grad(layer_model(mul_tanh_vjp)[1], rows=[np.ones(2), np.ones(3)])
    with pytest.raises(ppl.ModelError, match=r"give one array per input \(2\), got 1"):
        ppl.check_grad(layer_model(mul_tanh_vjp)[1], rows=[np.ones(3)])
    with pytest.raises(ppl.ModelError, match=r"rows\[0\] is not an array of numbers"):
        ppl.check_grad(cost, ["a"], grad=cost_grad)
    with pytest.raises(ppl.ModelError, match=r"same number of rows, got \[2, 1\]"):
        ppl.check_grad(mul_tanh, [np.ones((2, 3)), np.ones(3)], grad=mul_tanh_vjp, width=3)
    with pytest.raises(ppl.ModelError, match=r"NaN / inf"):
        ppl.check_grad(cost, [np.array([np.nan])], grad=cost_grad)
    with pytest.raises(ppl.ModelError, match=r"is a affine node"):
        ppl.check_grad(layer_model(mul_tanh_vjp)[0].nodes["a"])
    with pytest.raises(ppl.ModelError, match=r"@njit"):
        ppl.check_grad(lambda z: 0.0, [np.ones(2)], grad=cost_grad)
