"""The compiled step called from a user's own @njit simulation loop, with a non-differentiable
black-box simulator as the cost: 1000 gradient steps without leaving nopython mode."""
import numba
import pytest
import numpy as np

import ppl
from ppl import Model, Normal
from ppl.kernels.cpu.core import adam_update

TARGET = np.array([1.5, -0.5])


@numba.njit
def simulator(z):
    """A piecewise-constant (so gradient-free) simulator: distance of the quantised input to a target."""
    return abs(np.floor(2 * z[0]) / 2 - 1.5) + abs(np.floor(2 * z[1]) / 2 + 0.5)


@numba.njit
def user_loop(step, theta, grad, state, ws2, ws1, inputs, B, m, v, n_steps):
    losses = np.empty(n_steps)
    for t in range(n_steps):
        losses[t] = step(theta, grad, state, ws2, ws1, inputs, B, np.uint64(123), t, 1)
        adam_update(theta, grad, m, v, 0.02, 0.9, 0.999, 1e-8, t + 1)
    return losses


def test_user_njit_loop_improves_a_blackbox_objective():
    with Model("simulated") as mdl:
        loc = ppl.param("loc", 2, init=0.0)
        z = Normal("z", loc=loc, scale=ppl.softplus(ppl.param("scale", 2, init=-0.4)))
        mdl.cost("sim", ppl.blackbox(simulator, [z]))
    prog = mdl.compile(dtype=np.float64)  # the black box forces the score function (with a moving-average baseline)
    assert "black box" in prog.explain()

    before = np.mean([prog.loss(batch=256, seed=s) for s in range(20)])
    theta, grad, state, ws2, ws1, inputs, B = prog.args(batch=16)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    losses = user_loop(prog.entry, theta, grad, state, ws2, ws1, inputs, B, m, v, 1000)
    after = np.mean([prog.loss(batch=256, seed=1000 + s) for s in range(20)])

    assert np.all(np.isfinite(losses))
    # the expected simulator cost falls from ~1.9 to well under half of it (0 is the optimum)
    assert after < 0.5 * before, (before, after)
    assert np.linalg.norm(prog.params["loc"] - (TARGET + 0.25)) < 0.6, prog.params["loc"]
    assert losses[-100:].mean() < losses[:100].mean()


def test_nonpositive_scale_is_a_clear_error():
    with Model("badscale") as mdl:
        z = Normal("z", loc=ppl.param("loc", 2), scale=ppl.param("s", 2, init=-1.0))
        mdl.cost("f", ppl.total(z * z))
    prog = mdl.compile(dtype=np.float64)
    with pytest.raises(ValueError, match="Normal 'z': scale 's' has values <= 0"):
        prog.grad(batch=2)


@numba.njit
def allocating_simulator(z):
    """A black box that allocates (needs Numba's runtime in the step that calls it)."""
    a = np.empty(z.shape[0])
    for i in range(z.shape[0]):
        a[i] = (z[i] - 1.0) ** 2
    return a.sum()


def test_step_checks_the_lengths_of_its_arrays():
    """The step's parameter and state views are unchecked (kernels/cpu_rows.flat_view), so the
    step checks theta, grad and state once, first, with an error that names them."""
    with Model("lencheck") as mdl:
        x = mdl.input("x", 3)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 2, name="enc"))
        mdl.cost("nll", ppl.bernoulli_nll(ppl.Affine(h, 3, name="dec"), target=x))
    prog = mdl.compile(dtype=np.float64, estimators="disarm", lowering="arrays")
    theta, grad, state, ws2, ws1, inputs, B = prog.args({"x": np.ones((4, 3))})
    loss = prog.entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(0), 0, 1)
    assert np.isfinite(loss)
    for short in ((theta[:-1], grad), (theta, grad[:-1]), (np.zeros(len(theta) + 1), np.zeros(len(theta) + 1))):
        with pytest.raises(ppl.ModelError, match=f"theta and grad must have {len(theta)} entries"):
            prog.entry(short[0], short[1], state, ws2, ws1, inputs, B, np.uint64(0), 0, 1)


def test_reference_counting_off_only_where_it_is_safe():
    """A step of kernel calls runs without Numba's reference counts (ppl/compiler/pipeline.py) while the
    kernels it compiles keep theirs; a step that calls a user's function keeps them (the user's
    code may allocate), and runs."""
    from ppl.kernels.cpu import core as cpu
    with Model("nrt_kernels") as mdl:
        x = mdl.input("x", 3)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 2, name="enc"))
        mdl.cost("nll", ppl.bernoulli_nll(ppl.Affine(h, 3, name="dec"), target=x))
    prog = mdl.compile(dtype=np.float64, estimators="score", lowering="arrays")
    assert "_nrt=False" in prog.source
    loss, g = prog.grad({"x": np.ones((4, 3))})
    assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in g.values())
    assert cpu.affine_fwd.targetoptions.get("_nrt") is True

    with Model("nrt_user") as mdl:
        z = Normal("z", loc=ppl.param("loc", 2, init=0.0), scale=ppl.softplus(ppl.param("s", 2, init=0.0)))
        mdl.cost("sim", ppl.blackbox(allocating_simulator, [z]))
    prog = mdl.compile(dtype=np.float64)
    assert "_nrt=False" not in prog.source
    loss, g = prog.grad(batch=8)
    assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in g.values())
