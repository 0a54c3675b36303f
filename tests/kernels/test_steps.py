"""A loop block of the CUDA step as one kernel (`rows.stepped`: lowering/launches.py finds the
blocks, kernels/fusion.py's `steps_source` writes a row's work of every step, kernels/cuda/fused.py
launches it): each row's lanes run all the steps' members in turn.

Oracles: the same program with its loops launched step by step from Python (the printer without
`stepped`), bit for bit, and the CPU program (float64, the same draws) to rounding; a plain NumPy
loop for the lanes test, whose test of the test drops the lanes' meetings."""
import ast
import re
import threading
import time
import warnings

import numpy as np
import pytest

import ppl
from ppl.kernels import fusion
from ppl.lowering import launches

import small_models   # tests/: the graphs the tests share
from test_lanes import W, python_lanes, run_lanes   # tests/kernels/: the lanes helpers over threads


def walk(est_name, T=4):
    """A scan of T steps: each draws a Bernoulli move from the carried position (a simulation)."""
    return small_models.walk(f"steps_walk_{est_name}_{T}", 3, T)


def pair():
    """A scan over x's 3 columns carrying a Normal (pathwise) and a Bernoulli (score, its
    moving-average baseline folded after the loop): the carries' cotangents go back by blocks
    of `if it_ > 0` / `else`, one of them empty."""
    with ppl.Model("steps_pair") as m:
        x = m.input("x", 3)
        a, c, w = ppl.param("a", 1, 0.8), ppl.param("c", 1, 0.5), ppl.param("w", 1, 1.2)

        def body(carry, xt):
            z, b = carry
            z = ppl.Normal("z", a * z + c * b + 0.1 * xt, 0.5)
            b = ppl.Bernoulli("b", logits=w * z)
            m.cost("c", ppl.total(0.5 * ((z - 1.0) * (z - 1.0))))
            return (z, b), b
        z0 = ppl.Affine(x, 1, name="z0")
        (zl, bl), bs = ppl.scan(body, (z0, 0.0 * z0), xs=x)
        m.cost("flags", ppl.total(0.3 * ppl.rowsum(bs)))
        m.cost("end", ppl.total(zl * bl))
    return m


DATA = {"x": np.random.default_rng(4).normal(size=(10, 3))}


def _fit(model, target, est, step=True, monkeypatch=None):
    if not step:
        monkeypatch.setattr(launches, "stepped", lambda stmts, per: stmts)
    prog = model.compile(dtype=np.float64, seed=2, target=target, estimators=est)
    if not step:
        monkeypatch.undo()
    hist = ppl.fit(prog, DATA, ppl.optim.Adam(lr=0.05), steps=4, batch_size=4, progress=False)
    if target == "cuda":
        prog.pull()
    return np.asarray(hist.loss), np.concatenate([prog.theta, prog.state]), prog.source


@pytest.mark.cuda
@pytest.mark.parametrize("case, est, kernels, cpu", [("walk", "straight_through", 2, False), ("walk", "disarm", 1, False),
                                                     ("walk", "score", 2, True), ("pair", "auto", 2, True)])
def test_a_loop_block_as_one_kernel_trains_as_its_steps_do(case, est, kernels, cpu, monkeypatch):
    """fit on the CUDA target with each steppable loop block one launch, against the step's loops
    launched step by step (bit for bit) and, where the kernels' arithmetic is new here (the
    baselines' fold), the CPU program (to rounding): parameters and state (the score's
    moving-average baselines, folded after the loop). DisARM's backward block stays a loop: its
    gradient reads the pair's other row, which another row's lanes write. (The walk's CUDA
    program against the CPU's under DisARM: tests/training/test_device_chunks.py.)"""
    model = walk(est) if case == "walk" else pair()
    one, source = _fit(model, "cuda", est), None
    one, source = one[:2], one[2]
    assert source.count("rows.stepped(") == kernels, source
    assert len(re.findall(r"^\s*for it_ in", source, re.M)) == 2 - kernels   # the step's loops (not its kernels')
    by_steps = _fit(model, "cuda", est, step=False, monkeypatch=monkeypatch)
    assert "rows.stepped(" not in by_steps[2]
    np.testing.assert_array_equal(one[0], by_steps[0])
    np.testing.assert_array_equal(one[1], by_steps[1])
    if cpu:
        on_cpu = _fit(model, "cpu", est)
        np.testing.assert_allclose(one[0], on_cpu[0], rtol=1e-12)
        np.testing.assert_allclose(one[1], on_cpu[1], rtol=1e-12, atol=1e-14)


@pytest.mark.cuda
def test_rows_that_differ_run_the_steps_from_python_and_a_kernel_that_does_not_compile_too(monkeypatch):
    """Steps.rows None (members over different rows): the steps member by member from Python;
    the kernel's compile error: a warning naming the members and the error, once, then the same.
    Both give the kernel's bits."""
    from numba.core.errors import TypingError
    from ppl.kernels.cuda import fused
    want = _fit(walk("straight_through"), "cuda", "straight_through")
    monkeypatch.setattr(fused.Steps, "rows", lambda self, args: None)
    fused._STEPS.clear()
    got = _fit(walk("straight_through"), "cuda", "straight_through")
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_array_equal(want[1], got[1])
    monkeypatch.undo()

    def broken(self, dtype):
        raise TypingError("no such overload")
    monkeypatch.setattr(fused.Steps, "kernel", broken)
    fused._STEPS.clear()
    with pytest.warns(RuntimeWarning, match=r"runs the loop of .* step by step: .*TypingError: no such overload") as w:
        got = _fit(walk("straight_through"), "cuda", "straight_through")
    assert len(w) == 2   # the forward block's and the backward's
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_array_equal(want[1], got[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(walk("straight_through"), "cuda", "straight_through")
    fused._STEPS.clear()


# ----------------------------------------------------------------- the lanes of a row across steps
def _first(r, src, dst):
    for j in range(dst.shape[1]):
        dst[r, j] = src[r, j]


def _rowsum(r, x, out):
    s = 0.0
    for j in range(x.shape[1]):
        s += x[r, j]
    out[r] = s


def _add(r, j, x, tot, y):
    y[r, j] = 0.5 * x[r, j] + 0.01 * tot[r]


def _steps_seg(local, T, sync=True):
    """A loop of T steps over storages a1 (x), a2 (y) of T rows-blocks: x of step 0 is a0's rows,
    of a later step the previous step's y; tot (a3) the row's sum of x (on lane 0, late); y = x / 2 + tot / 100."""
    from ppl.kernels.lanes import lane_body
    helpers = python_lanes(local)

    def late_rowsum(r, x, out):   # the row's total, on lane 0 (a row body without its lanes form), late
        time.sleep(0.01)
        _rowsum(r, x, out)
    views = (("s1", "a1", 0), ("s2", "a2", 0), ("s2m", "a2", -1))
    x, y, prev = "s1", "s2", "s2m"
    members = [("rows", True, ("a0", x), 1, None, "it_ == 0"), ("rows", True, (prev, x), 1, None, "not (it_ == 0)"),
               ("rows", False, (x, "a3"), 0, None, ""), ("cells", False, (x, "a3", y), 2, None, "")]
    glb = dict(helpers, f0=lane_body(_first, helpers), f1=lane_body(_first, helpers), f2=late_rowsum, f3=_add)
    src = fusion.steps_source(T, False, views, members, 4)
    if not sync:
        src = "\n".join(line for line in src.splitlines() if "lanes_sync" not in line) + "\n"
    exec(compile(src, "<steps>", "exec"), glb)
    return glb["seg"]


def test_a_rows_lanes_run_its_steps_meeting_before_each_member():
    """3 rows of 7 columns, 3 steps, 4 lanes a row: each step reads what the row's lanes wrote at
    the step before (the first member's lanes form) and the row sum lane 0 writes late (a row body
    run on lane 0), against a NumPy loop. The test of the test: without the meetings, the other
    lanes read the sum before lane 0 wrote it."""
    T, R, D = 3, 3, 7
    init = np.random.default_rng(0).normal(size=(R, D))
    want, x = [], init
    for _ in range(T):
        y = 0.5 * x + 0.01 * x.sum(axis=1, keepdims=True)
        want.append(y)
        x = y
    for sync in (True, False):
        local = threading.local()
        xs, ys, tot = np.zeros((T * R, D)), np.zeros((T * R, D)), np.zeros(R)
        run_lanes(_steps_seg(local, T, sync), local, (init, xs, ys, tot), R, delay_lane0=0.05)
        ok = np.allclose(ys, np.concatenate(want), rtol=1e-12)
        assert ok == sync, (sync, W)


def test_a_narrow_simulations_rows_take_a_thread_each(monkeypatch):
    """On a GPU (a warp of 32 lanes, blocks of 128): a joined kernel whose arguments are all
    narrower than a warp gives each row one thread (32 rows a warp); with a wide argument, a row
    body's lanes a warp, or the block for few wide rows."""
    from ppl.kernels.native import launch as L
    monkeypatch.setattr(L, "LANES", 32)
    monkeypatch.setattr(L, "BLOCK", 128)
    assert L.joined_lanes(10_000, 1, 3) == 1
    assert L.joined_lanes(10_000, 0, 784) == 32   # a row sum into a 1-D array over 784 columns
    assert L.joined_lanes(50, 784, 784) == 128


def test_a_baseline_folds_after_the_loop_only_where_each_step_has_its_slot():
    """The score's moving-average baseline in a loop block: its row half joins the block's kernel
    and its update folds after it when each step keeps its own slot of the state (the update of
    one step is read by no other); a slot the steps share keeps the loop (a later step reads what
    an earlier one folded in)."""
    from ppl.calls import Buf, Call, KernelRef, StepArg
    from ppl.kernels.cuda import core  # noqa: F401  (registers the CUDA launchers)
    from ppl.lowering import ir

    def block(slot):
        loop = ir.Loop(3, True, {})
        L, rw, b, w = Buf("L"), Buf("rw_"), Buf("b"), Buf("w")
        loop.body = [ir.Stmt(Call(KernelRef("rows", "moving_average_baseline"),
                                  (L, rw, StepArg("state"), slot, 0.9, b, True))),
                     ir.Stmt(Call(KernelRef("rows", "score_weights"), (rw, L, b, w)))]
        return launches.stepped([loop], 1)

    out = block(ir.per_step(2, 4))   # the state slot of step t: 4 + 2 t (its mean and its seeded flag)
    assert len(out) == 1 and str(out[0]).startswith("rows.stepped((3, True, ")
    spec = ast.literal_eval(str(out[0].call.args[0]))
    assert spec[3] == ("rows.baseline_keep", "rows.score_weights")
    assert spec[4] == ((4, 6, 8),)   # the fold's state slots of steps 0, 1, 2
    assert "def fold0(args, it_):" in spec[6] and "return (a0, a1, 0.9, True)" in spec[6]   # rw_, state
    assert "for it_ in range(3 - 1, -1, -1):" in spec[5]   # the kernel's row runs every step, from the last
    assert isinstance(block(4)[0], ir.Loop)   # one slot for every step
    assert isinstance(block(ir.per_step(1, 4))[0], ir.Loop)   # step t's flag is step t + 1's mean


def _launches(prog, data):
    """The kernel launches of one gradient step of a CUDA program (each launch counted, then run)."""
    import sys
    from ppl.kernels.native import launch
    real, count = launch.configured, [0]

    def counting(kernel, grid, block):
        count[0] += 1
        return real(kernel, grid, block)
    mods = [m for name, m in list(sys.modules.items())
            if name.startswith("ppl.kernels") and getattr(m, "configured", None) is real]
    for m in mods:
        m.configured = counting
    try:
        prog.grad(data, seed=1)
    finally:
        for m in mods:
            m.configured = real
    return count[0]


@pytest.mark.cuda
def test_a_steps_launches_do_not_grow_with_the_loops_length(monkeypatch):
    """The walk under the score function (both blocks one kernel, the baseline folded after):
    as many launches for 8 steps as for 4. The test of the test: with the blocks launched step by
    step, 8 steps take more."""
    data = {"x": DATA["x"][:4]}
    n = [_launches(walk("score", T).compile(dtype=np.float64, seed=2, target="cuda", estimators="score"), data)
         for T in (4, 8)]
    assert n[0] == n[1], n
    monkeypatch.setattr(launches, "stepped", lambda stmts, per: stmts)
    m = [_launches(walk("score", T).compile(dtype=np.float64, seed=2, target="cuda", estimators="score"), data)
         for T in (4, 8)]
    assert m[1] > m[0] > n[0], (m, n)
