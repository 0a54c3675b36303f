"""Kernels over arrays of one column (a simulation's state, a scalar node) take their own loops:
a cells kernel's one-column twin `<name>_col1` (kernels/declare.py, `narrow`; the CPU step's pass
"narrow cells" calls it), a rows kernel's twin with the widths it reads 1, the VJPs of two operands as cells bodies
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


def _narrow_model(name="narrow_cells"):
    import ppl
    from ppl import Model
    with Model(name) as m:
        x = m.input("x", 1)
        y = m.input("y", 3)
        w = ppl.param("w", 1, 0.5)
        narrow = ppl.exp(w * x) + ppl.maximum(w * x, ppl.exp(x * 0.5))
        wide = ppl.exp(y * 0.5) + ppl.maximum(ppl.exp(y * w), y)   # exp, add and maximum over 3 columns too
        m.cost("f", ppl.total(narrow + ppl.rowsum(wide)))
    return m


def test_the_cpu_step_calls_the_twin_on_one_column_only():
    """Pass "narrow cells": a cells kernel over a buffer of one column that reads its arrays
    at other cells than its own (broadcast_rows_fwd: a parameter's row to every row) calls
    `<name>_col1`, over three columns the kernel itself; the twin is found in its family module
    too (where the step's symbol records name it, kernels/_link.py)."""
    import ppl
    from ppl import Model
    from ppl.kernels.one_row import one_row
    with Model("narrow_twin") as m:
        x = m.input("x", 1)
        b = m.latent("b", ppl.dist.Normal(0.0, 1.0))
        c = m.latent("c", ppl.dist.Normal(0.0, 1.0), width=3)
        m.cost("f", ppl.total(b * x))
        m.cost("g", ppl.total(ppl.rowsum(c)))
    src = m.compile(dtype=np.float64, lowering="arrays").source
    assert "broadcast_rows_fwd_col1(" in src and "broadcast_rows_fwd(" in src
    assert core.broadcast_rows_fwd.__declared__.shape == "cells" and one_row(core.broadcast_rows_fwd) is None
    family = __import__(core.broadcast_rows_fwd.py_func.__module__, fromlist=["_"])
    assert getattr(family, "broadcast_rows_fwd_col1") is core.broadcast_rows_fwd_col1


def test_which_cells_kernels_compute_the_same_on_one_row():
    """kernels/one_row.py, `one_row`: a cells kernel that reads and writes each array at its own
    cell only (a skippable gradient tested by its rows) gives its arrays and the arguments it does
    not read; one that reads another row or column, a row's count or a width gives None."""
    from ppl.kernels.one_row import one_row
    assert one_row(core.exp_fwd) == (("x", "out"), ())
    assert one_row(core.add_bwd) == (("gout", "ga", "gb"), ())
    assert one_row(core.pow_fwd) == (("x", "out"), ())   # p, a constant, is read: a scalar
    assert one_row(core.softplus_bwd) == (("x", "gout", "gx"), ("out",))
    for name in ("broadcast_rows_fwd", "repeat_rows", "enum_bernoulli", "mul_rows", "add_to_cols"):
        assert one_row(getattr(core, name)) is None, name
    assert one_row(core.normal_log_prob) is None   # a rows kernel


def test_one_column_buffers_as_one_row_give_the_twins_values_bit_for_bit(monkeypatch):
    """Pass "narrow cells": an elementwise cells kernel over workspace buffers of one column, which
    the step also calls over wider ones, is called itself on them laid out as one row
    (`rows.as_row(x)`), no twin (a data input, which a user's own @njit code may pass in any
    layout, keeps the twin; so does a kernel the step calls on one column only); its loss and
    gradient equal the twins' bit for bit (the same per-cell arithmetic), a skipped gradient
    (maximum's, where one side is a constant) included. Oracle: the same program with the
    one-row calls off (the twins, as before). Test of the test: that program's source calls
    the twins and no reshaped row."""
    from ppl.compiler import pipeline
    prog = _narrow_model().compile(dtype=np.float64, lowering="arrays")
    src = prog.source
    assert "exp_fwd(rows.as_row(" in src and "exp_fwd_col1(" not in src and "mul_fwd_col1(" in src
    assert "extremum_bwd(" in src and "extremum_bwd_col1(" not in src
    monkeypatch.setattr(pipeline, "_one_row", lambda alias, name: None)
    twins = _narrow_model("narrow_cells_twins").compile(dtype=np.float64, lowering="arrays")
    assert "exp_fwd_col1(" in twins.source and "extremum_bwd_col1(" in twins.source
    assert "as_row(" not in twins.source
    g = np.random.default_rng(4)
    data = {"x": g.normal(size=(7, 1)), "y": g.normal(size=(7, 3))}
    (loss, grad), (loss_twins, grad_twins) = prog.grad(data), twins.grad(data)
    assert loss == loss_twins and np.isfinite(loss)
    assert np.array_equal(grad["w"], grad_twins["w"]) and np.all(grad["w"] != 0)
    assert np.array_equal(prog.grad_buffer, twins.grad_buffer)


def _sd_rows_cases(width, seed=3):
    """Arguments of rows kernels that read their arrays' widths (a path's, a unit's, a direction's):
    `width` columns each (one path where a kernel writes its alternative rows: the digit has two
    rows, the drawn row at even indices, stride 1, span 2)."""
    g = np.random.default_rng(seed)
    R = 10
    x = np.floor(3 * g.uniform(size=(R, width)))
    sw = (g.uniform(size=(R, 1)) < 0.5) * 1.0   # one path: its alternative rows at local index 1 of 2
    flag = (g.uniform(size=(R, width)) < 0.5) * 1.0
    W = g.uniform(size=(R, width)) * (g.uniform(size=(R, width)) < 0.7)
    return {
        "alt_reset": (x, sw, 1, 1, 2),
        "alt_differs": (x, flag[:, :1].copy(), 1, 1, 2),
        "sd_bank": (flag, 1, 2, W, g.normal(size=(R, width)), g.normal(size=(R, width * width)),
                    g.normal(size=(R, width)), EMPTY, np.zeros(4)),
        "row_sum_fwd": (g.normal(size=(R, width)), np.zeros(R)),
        "tangent_seed": (np.full((R, width), np.nan), 0),
    }


@pytest.mark.parametrize("name", ["alt_reset", "alt_differs", "sd_bank", "row_sum_fwd", "tangent_seed"])
def test_rows_kernels_twins_on_one_column_equal_the_kernel(name):
    """A rows kernel reading its arrays' widths has a twin with each width 1 (`declare.narrow`):
    on one column it writes what the kernel writes (oracle: the kernel itself, whose general loops
    the tests above and the parity cases check), every array compared; on three columns the
    kernel's own loops run (the twin would read one)."""
    from ppl.kernels.declare import narrowed
    kernel = getattr(core, name)
    assert narrowed(kernel), name
    want, got = _sd_rows_cases(1), _sd_rows_cases(1)
    kernel(*want[name])
    getattr(core, name + "_col1")(*got[name])
    for a, b in zip(want[name], got[name]):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
    three = _sd_rows_cases(3)[name]
    kernel(*three)   # the general loops run on three columns (its parity case checks them)


def test_the_cpu_step_calls_a_rows_twin_only_where_every_read_width_is_one():
    """Pass "narrow cells" for rows kernels: a one-unit Bernoulli scan under stochastic_derivative
    banks with `sd_bank_col1` (one path, one direction), two parameters' directions over two paths
    with `sd_bank` (its W and acc have two columns)."""
    import ppl
    from ppl import Model

    def walk(n_params):
        with Model(f"narrow_rows_{n_params}") as m:
            X0 = m.input("X0", 1)
            ps = [ppl.param(f"p{i}", 1, 20.0) for i in range(n_params)]

            def step(X, t):
                rate = ps[0] if n_params == 1 else ps[0] + ps[1]
                up = ppl.Bernoulli("up", probs=ppl.exp(-ppl.relu(X) / rate))
                return X + 2.0 * up - 1.0, None
            X, _ = ppl.scan(step, X0, length=3)
            m.cost("sq", ppl.total(X * X))
        return m.compile(estimators={"up": "stochastic_derivative"}, dtype=np.float64, lowering="arrays").source
    one, two = walk(1), walk(2)
    assert "core.sd_bank_col1(" in one and "core.sd_bank(" not in one
    assert "core.sd_bank(" in two and "core.sd_bank_col1(" not in two
