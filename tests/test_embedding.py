"""The compiled step called from a user's own @njit simulation loop, with a non-differentiable
black-box simulator as the cost: 1000 gradient steps without leaving nopython mode."""
import numba
import pytest
import numpy as np

import ppl
from ppl import Model, Normal
from ppl.kernels.cpu import adam_update

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
