"""Kernels over arrays of one column (a simulation's state, a scalar node) take their own loops:
a cells kernel's one-column branch (kernels/declare.py), the VJPs of two operands as cells bodies
with a skippable gradient, and slot_local without integer division for a stride of 1 and a span
that is a power of two. Oracle: numpy's elementwise formulas and Python's // and %; each kernel
runs on one column and on three (the general loops), so a wrong one-column branch fails."""
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
    "add_fwd": (lambda a, b, o: core.add_fwd(a, b, o), lambda a, b: a + b),
    "mul_fwd": (lambda a, b, o: core.mul_fwd(a, b, o), lambda a, b: a * b),
    "div_fwd": (lambda a, b, o: core.div_fwd(a, b, o), lambda a, b: a / b),
    "min": (lambda a, b, o: core.extremum_fwd(a, b, 1.0, o), np.minimum),
    "max": (lambda a, b, o: core.extremum_fwd(a, b, -1.0, o), np.maximum),
    "copy_fwd": (lambda a, b, o: core.copy_fwd(a, o), lambda a, b: a),
    "pow_fwd": (lambda a, b, o: core.pow_fwd(np.abs(b), 1.5, o), lambda a, b: np.abs(b) ** 1.5),
}


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("name", list(FORWARD))
def test_forward_cells_on_one_column_and_three(name, width):
    a, b = _arrays(width)
    run, want = FORWARD[name]
    out = np.full_like(a, np.nan)
    run(a, b, out)
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


def _vjp_run(name, a, b, g, ga, gb):
    if name == "add_bwd":
        core.add_bwd(g, ga, gb)
    elif name == "mul_bwd":
        core.mul_bwd(a, b, g, ga, gb)
    elif name == "div_bwd":
        core.div_bwd(a, b, a / b, g, ga, gb)
    else:
        core.extremum_bwd(a, b, 1.0, g, ga, gb)


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("skip", ["none", "a", "b"])
@pytest.mark.parametrize("name", ["add_bwd", "mul_bwd", "div_bwd", "extremum_bwd"])
def test_vjps_accumulate_and_skip_on_one_column_and_three(name, skip, width):
    a, b = _arrays(width, 1)
    g = np.random.default_rng(2).normal(size=a.shape)
    ga0, gb0 = np.full_like(a, 0.25), np.full_like(a, -0.5)   # the VJPs add to what is there
    ga = EMPTY if skip == "a" else ga0.copy()
    gb = EMPTY if skip == "b" else gb0.copy()
    _vjp_run(name, a, b, g, ga, gb)
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
