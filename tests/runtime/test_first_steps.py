"""A new step's first calls from Python, interpreted over its compiled kernels (ppl/runtime/first_steps.py):
the same losses and gradients bit for bit as the compiled step (the oracle: the same program with
the interpreter off), before and after the step is compiled, and the cases that take the compiled
step at once."""
import uuid

import numpy as np
import pytest
from numba import njit

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.kernels.cpu import rows
from ppl.runtime import first_steps
from small_models import DATA

# stacked layers under different estimators: DisARM, the score function with its baseline, a
# Gaussian's reparameterisation and a categorical's straight-through
ESTIMATORS = {"h1": "disarm", "h2": "score", "z": "pathwise", "c": "straight_through"}


def mixed(name):
    with Model(name) as m:
        x = m.input("x", 3)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="a1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="a2"))
        z = ppl.Normal("z", loc=Affine(h2, 2, name="mu"), scale=ppl.softplus(Affine(h1, 2, name="sd")))
        c = ppl.Categorical("c", logits=Affine(z, 3, name="cl"))
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        m.cost("lpz", ppl.log_prob(z))
        m.cost("nll", ppl.bernoulli_nll(Affine(ppl.concat([c, z]), 3, name="dec"), target=x))
    return m


def _pair(name, monkeypatch):
    name = f"{name}_{uuid.uuid4().hex[:8]}"   # a step the disk cache does not hold yet (a rerun's)
    prog = mixed(name).compile(dtype=np.float64, estimators=ESTIMATORS)
    monkeypatch.setenv(first_steps.ENV, "0")
    ref = mixed(name + "_ref").compile(dtype=np.float64, estimators=ESTIMATORS)
    ref.grad(DATA, seed=1, step=0)   # compiled: the interpreter is off for it
    ref.theta[:] = prog.theta   # both from the same point (ref's first call moved its state)
    ref.state[:] = prog.state
    monkeypatch.delenv(first_steps.ENV)
    return prog, ref


def _same(prog, ref, seed, step):
    a, ga = prog.grad(DATA, seed=seed, step=step)
    b, gb = ref.grad(DATA, seed=seed, step=step)
    return a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_the_first_calls_are_interpreted_and_give_the_compiled_steps_bits(monkeypatch):
    prog, ref = _pair("fs_mixed", monkeypatch)
    for t in range(4):
        assert _same(prog, ref, 7, t), f"step {t}"
    assert isinstance(prog._first_steps, first_steps.FirstSteps)
    assert len(prog.module.step.overloads) == 0, "the interpreted calls compiled the step"
    assert prog.loss(DATA, seed=3) == ref.loss(DATA, seed=3)
    prog._first_steps.budget = prog._first_steps.calls + 1   # the count spent: the next calls compile it
    for t in range(4, 8):
        assert _same(prog, ref, 7, t), f"step {t}"
    assert len(prog.module.step.overloads) == 1
    assert not _same_seeded(prog, ref), "the test of the test: another seed's gradient is told apart"


def _same_seeded(prog, ref):
    a, ga = prog.grad(DATA, seed=11, step=20)
    b, gb = ref.grad(DATA, seed=12, step=20)
    return a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_a_nan_parameter_is_refused_by_the_interpreted_step_as_by_the_compiled_one(monkeypatch):
    prog, ref = _pair("fs_nan", monkeypatch)
    for p in (prog, ref):
        p.params["a1.b"][0] = np.nan
    errors = []
    for p in (prog, ref):
        with pytest.raises(ppl.ModelError) as e:
            p.grad(DATA, seed=0, step=0)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "NaN" in errors[0]
    assert isinstance(prog._first_steps, first_steps.FirstSteps)


@pytest.mark.parametrize("checkpoint", [False, 2])
def test_a_scans_step_is_interpreted_with_the_compiled_steps_bits_and_compiled_by_its_time(checkpoint,
                                                                                             monkeypatch):
    """A step with loops of its own (a scan's, a checkpointed scan's segments; DisARM and the score
    function on stacked nodes in the loop): the same bits as the compiled step, then compiled once
    the interpreted calls' own time reaches the compile's expected cost."""
    def build(name):
        with Model(name) as m:
            x = m.input("x", 2)

            def body(s, x_t):
                up = Bernoulli("up", logits=Affine(s, 1, name="g") + x_t)
                h = Bernoulli("h", logits=Affine(ppl.concat([s, up]), 1, name="k"))
                m.cost("step", ppl.total(0.5 * (s * s) + 0.2 * h))
                return ppl.tanh(s + 2.0 * up - h), up
            last, ups = ppl.scan(body, Affine(x, 1, name="start"), xs=x, length=2, checkpoint=checkpoint)
            m.cost("end", ppl.total(last * last + 0.3 * ppl.rowsum(ups)))
        return m.compile(dtype=np.float64, estimators={"up": "disarm", "h": "score"})

    name = f"fs_scan_{uuid.uuid4().hex[:8]}"
    data = {"x": np.random.default_rng(2).normal(size=(5, 2))}
    monkeypatch.setenv(first_steps.ENV, "0")
    ref = build(name + "_ref")
    ref.grad(data, seed=1, step=0)
    monkeypatch.delenv(first_steps.ENV)
    prog = build(name)
    ref.theta[:], ref.state[:] = prog.theta, prog.state

    def same(seed, t):
        (a, ga), (b, gb) = prog.grad(data, seed=seed, step=t), ref.grad(data, seed=seed, step=t)
        return a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)
    for t in range(3):
        assert same(5, t), f"step {t}"
    first = prog._first_steps
    assert isinstance(first, first_steps.FirstSteps) and first.budget_s is not None
    assert len(prog.module.step.overloads) == 0, "the interpreted calls compiled the step"
    assert first.spent_s > 0 and not first.spent
    first.spent_s = first.budget_s   # its time spent: the next calls compile it
    for t in range(3, 6):
        assert same(5, t), f"step {t}"
    assert len(prog.module.step.overloads) == 1
    a, ga = prog.grad(data, seed=5, step=9)
    b, gb = ref.grad(data, seed=6, step=9)
    assert a != b, "the test of the test: another seed's loss is told apart"


def test_the_checked_entry_and_the_switch_take_the_compiled_step(monkeypatch):
    checked = mixed("fs_checked").compile(dtype=np.float64, estimators=ESTIMATORS).check_steps()
    checked.grad(DATA, seed=0, step=0)
    assert checked._first_steps is False
    monkeypatch.setenv(first_steps.ENV, "0")
    off = mixed("fs_off").compile(dtype=np.float64, estimators=ESTIMATORS)
    off.grad(DATA, seed=0, step=0)
    assert off._first_steps is False and len(off.module.step.overloads) == 1


def test_the_rent_or_buy_count():
    """Compiled once the interpreter's extra cost (PER_SITE_S a kernel call) reaches the compile's
    expected cost (COMPILE_PER_TYPING times the typing's time)."""
    f = first_steps.FirstSteps(None, lambda: 0.0, sites=100, typing_s=0.3)
    assert f.budget == int(first_steps.COMPILE_PER_TYPING * 0.3 / (100 * first_steps.PER_SITE_S))
    f.budget = 2
    f()
    assert not f.spent
    f()
    assert f.spent


def test_a_short_fit_trains_interpreted_what_the_compiled_step_trains(monkeypatch):
    """fit's per-step loop (a short fit's default) runs the interpreted step too: the same losses and
    parameters bit for bit as with the interpreter off, and no step compiled."""
    name = f"fs_fit_{uuid.uuid4().hex[:8]}"
    runs = []
    for off in ("1", "0"):
        monkeypatch.setenv(first_steps.ENV, off)
        prog = mixed(name + off).compile(dtype=np.float64, estimators=ESTIMATORS)
        h = ppl.fit(prog, DATA, ppl.optim.Adam(0.05), steps=30, batch_size=2, seed=4, progress=False)
        runs.append((prog, np.asarray(h.loss)))
    (a, la), (b, lb) = runs
    assert isinstance(a._first_steps, first_steps.FirstSteps) and len(a.module.step.overloads) == 0
    assert len(b.module.step.overloads) == 1
    assert np.array_equal(la, lb) and np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, mixed(name + "x").compile(dtype=np.float64, estimators=ESTIMATORS).theta)


@njit
def _int_loop(a, out):
    for i in range(a.shape[0] // 2):
        rows.zero1(out[i * 2:(i + 1) * 2])


@njit
def _float_loop(a, out):
    for i in range(a.shape[0]):
        out[i] = a[i] * 0.5


@njit
def _entry_loop(a, out):
    for i in range(a.shape[0]):
        out[i] += a[i]


def test_a_loop_doing_float_work_keeps_the_step_compiled():
    """A loop of the interpreted step may only do integer work (slices, a segment's bounds) beside
    its kernel calls: a float product or an array's entry in its arithmetic refuses the interpreter
    (Python would sum in another order than the compiled loop may)."""
    made = first_steps._bound_source(_int_loop)
    assert made is not None and made[2] is True and list(made[1].values()) == [rows.zero1]
    assert first_steps._bound_source(_float_loop) is None
    assert first_steps._bound_source(_entry_loop) is None
