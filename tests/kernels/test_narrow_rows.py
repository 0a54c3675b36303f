"""Kernels over arrays of one column (a simulation's state, a scalar node) take their own loops:
a cells kernel's one-column twin `<name>_col1` (kernels/declare.py, `narrow`; the CPU step's pass
"narrow cells" calls it), the VJPs of two operands as cells bodies
with a skippable gradient, and slot_local without integer division for a stride of 1 and a span
that is a power of two. Oracle: numpy's elementwise formulas and Python's // and %; each kernel
runs on one column (the general loops and the twin) and on three, so a wrong twin fails."""
import numpy as np
import pytest

import ppl.kernels.cpu.core as core
from ppl.kernels.math.slots import slot_config, slot_local

EMPTY = np.zeros((0, 0))


def _arrays(width, seed=0):
    g = np.random.default_rng(seed)
    a, b = g.normal(size=(11, width)), g.uniform(0.5, 2.0, size=(11, width))
    b[3, 0] = a[3, 0]   # a tie for the extremum
    return a, b


FORWARD = {
    "add_fwd": (lambda k, a, b, o: k.add_fwd(a, b, o), lambda a, b: a + b),
    "mul_fwd": (lambda k, a, b, o: k.mul_fwd(a, b, o), lambda a, b: a * b),
    "div_fwd": (lambda k, a, b, o: k.div_fwd(a, b, o), lambda a, b: a / b),
    "min": (lambda k, a, b, o: k.extremum_fwd(a, b, 1.0, o), np.minimum),
    "max": (lambda k, a, b, o: k.extremum_fwd(a, b, -1.0, o), np.maximum),
    "copy_fwd": (lambda k, a, b, o: k.copy_fwd(a, o), lambda a, b: a),
    "pow_fwd": (lambda k, a, b, o: k.pow_fwd(np.abs(b), 1.5, o), lambda a, b: np.abs(b) ** 1.5),
}


class _Twins:
    """core's kernels by their one-column twins (`<name>_col1`)."""

    def __getattr__(self, name):
        return getattr(core, name + "_col1")


WIDTHS = [(1, "general"), (1, "twin"), (3, "general")]


@pytest.mark.parametrize("width, kernels", WIDTHS)
@pytest.mark.parametrize("name", list(FORWARD))
def test_forward_cells_on_one_column_and_three(name, width, kernels):
    a, b = _arrays(width)
    run, want = FORWARD[name]
    out = np.full_like(a, np.nan)
    run(_Twins() if kernels == "twin" else core, a, b, out)
    np.testing.assert_allclose(out, want(a, b), rtol=1e-15, err_msg=f"{name}, width {width}")


def _vjp_want(name, a, b, g):
    if name == "add_bwd":
        return g, g
    if name == "mul_bwd":
        return g * b, g * a
    if name == "div_bwd":
        return g / b, -g * (a / b) / b
    take_a = a <= b   # extremum_bwd with s = 1 (min): the tie to a
    return np.where(take_a, g, 0.0), np.where(take_a, 0.0, g)


def _vjp_run(k, name, a, b, g, ga, gb):
    if name == "add_bwd":
        k.add_bwd(g, ga, gb)
    elif name == "mul_bwd":
        k.mul_bwd(a, b, g, ga, gb)
    elif name == "div_bwd":
        k.div_bwd(a, b, a / b, g, ga, gb)
    else:
        k.extremum_bwd(a, b, 1.0, g, ga, gb)


@pytest.mark.parametrize("width, kernels", WIDTHS)
@pytest.mark.parametrize("skip", ["none", "a", "b"])
@pytest.mark.parametrize("name", ["add_bwd", "mul_bwd", "div_bwd", "extremum_bwd"])
def test_vjps_accumulate_and_skip_on_one_column_and_three(name, skip, width, kernels):
    a, b = _arrays(width, 1)
    g = np.random.default_rng(2).normal(size=a.shape)
    ga0, gb0 = np.full_like(a, 0.25), np.full_like(a, -0.5)   # the VJPs add to what is there
    ga = EMPTY if skip == "a" else ga0.copy()
    gb = EMPTY if skip == "b" else gb0.copy()
    _vjp_run(_Twins() if kernels == "twin" else core, name, a, b, g, ga, gb)
    wa, wb = _vjp_want(name, a, b, g)
    if skip != "a":
        np.testing.assert_allclose(ga, ga0 + wa, rtol=1e-14, err_msg=f"{name} ga, width {width}")
    if skip != "b":
        np.testing.assert_allclose(gb, gb0 + wb, rtol=1e-14, err_msg=f"{name} gb, width {width}")


def test_slot_local_and_config_equal_the_division_form():
    for stride in (1, 2, 3, 4):
        for span in (1, 2, 3, 4, 5, 8):
            for r in range(70):
                j = (r // stride) % span
                assert slot_local(r, stride, span) == j, (r, stride, span)
                for off, size in ((1, 2), (2, 3)):
                    want = j - off + 1 if off <= j < off + size - 1 else 0
                    assert slot_config(r, stride, off, span, size) == want, (r, stride, off, span, size)


def test_the_cpu_step_calls_the_twin_on_one_column_only():
    """Pass "narrow cells": a cells kernel over a buffer of one column calls `<name>_col1`, over
    three columns the kernel itself; the twin is found in its family module too (where the
    step's symbol records name it, kernels/_link.py)."""
    import ppl
    from ppl import Model
    with Model("narrow_cells") as m:
        x = m.input("x", 1)
        y = m.input("y", 3)
        w = ppl.param("w", 1, 0.5)
        m.cost("f", ppl.total(ppl.exp(w * x) + ppl.rowsum(ppl.exp(y * 0.5))))
    src = m.compile(dtype=np.float64, lowering="arrays").source
    assert "exp_fwd_col1(" in src and "exp_fwd(" in src
    assert core.exp_fwd.__declared__.shape == "cells"
    family = __import__(core.exp_fwd.py_func.__module__, fromlist=["_"])
    assert getattr(family, "exp_fwd_col1") is core.exp_fwd_col1
