"""The raw step's noise is a function of (seed, t): the same step counter twice is the same
draw (documented at Program.entry). prog.check_steps() refuses a gradient step whose t does not
increase under one seed, from Python (prog.grad) and from a user's @njit loop (prog.entry),
with t exact beyond float32's integers; loss-only calls, a new seed and fit are unaffected."""
import numpy as np
import pytest
from numba import njit

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.language import dist

X = (np.random.default_rng(0).random((8, 6)) > 0.5).astype(np.float32)


def small_sbn():
    with Model("check_steps") as m:
        x = m.input("x", 6)
        h = Bernoulli("h", logits=Affine(x, 4, name="enc"))
        m.latent(h, dist.Bernoulli(logits=ppl.param("prior", 4)))
        m.observe("recon", dist.Bernoulli(logits=Affine(h, 6, name="dec")), x)
    return m.compile(estimators="disarm")   # no state: a draw is a function of (seed, t)


@njit
def loop(step, theta, grad, state, ws2, ws1, inputs, B, seed, ts):
    total = 0.0
    for t in ts:
        total += step(theta, grad, state, ws2, ws1, inputs, B, seed, t, 1)
    return total


def test_the_same_step_counter_is_the_same_draw():
    prog = small_sbn()
    (l0, g0), (l1, g1), (l2, g2) = (prog.grad(X, seed=3, step=s) for s in (4, 4, 5))
    assert l0 == l1 and all(np.array_equal(g0[k], g1[k]) for k in g0)          # repeated noise
    assert l0 != l2 and not np.array_equal(g0["enc.W"], g2["enc.W"])


def test_check_steps_refuses_a_repeated_counter():
    prog = small_sbn().check_steps()
    prog.grad(X, step=0)
    prog.loss(X, step=0)                                                       # loss only: allowed
    with pytest.raises(ppl.ModelError, match=r"check_steps: the step counter t=0 does not increase \(the previous "
                                             r"gradient step under seed 0 had t=0\).*pass t = the iteration number"):
        prog.grad(X, step=0)
    prog.grad(X, step=1)
    prog.grad(X, seed=1, step=0)                                               # another seed: other noise
    big = 2 ** 40 + 1                                                          # beyond float32's integers
    prog.grad(X, seed=2, step=big)
    with pytest.raises(ppl.ModelError, match=f"t={big} does not increase"):
        prog.grad(X, seed=2, step=big)
    prog.grad(X, seed=2, step=big + 1)
    # a user's @njit loop: entry and args taken after check_steps()
    args = prog.args(X)
    loop(prog.entry, *args, np.uint64(9), np.arange(5, dtype=np.int64))
    with pytest.raises(ppl.ModelError, match=r"t=3 does not increase .*seed 9 had t=4"):
        loop(prog.entry, *args, np.uint64(9), np.array([3], np.int64))
    with pytest.raises(ppl.ModelError, match=r"t=7 does not increase .*seed 9 had t=7"):
        loop(prog.entry, *args, np.uint64(9), np.array([6, 7, 7], np.int64))
    # off again: the raw step, repeated counters allowed; the guard leaves the draws unchanged
    prog.check_steps(False)
    assert prog.entry is prog.module.step and len(prog.args(X)[4]) == len(args[4]) - 1
    ref = prog.grad(X, seed=4, step=2)
    assert prog.grad(X, seed=4, step=2)[0] == ref[0]
    prog.check_steps()
    assert prog.grad(X, seed=4, step=2)[0] == ref[0]
    with pytest.raises(ppl.ModelError, match=r"on must be True or False"):
        prog.check_steps("yes")


def test_fit_runs_under_check_steps():
    prog = small_sbn().check_steps()
    hist = ppl.fit(prog, {"x": X}, ppl.optim.Adam(1e-2), steps=30, batch_size=4, progress=False)
    assert hist.steps == 30 and np.isfinite(hist.last_loss)
